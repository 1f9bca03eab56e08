"""Fast inference: run a trained SR network as fast as the device allows, with one call.

    up = Upscaler(load_sr("runs/sr/best.pt"))     # picks CUDA when there is one
    sr = up(lr)                                   # N x 3 x 24 x 24 float in [0, 1] -> N x 3 x 192 x 192

What `Upscaler` does, by device:

- CUDA: eval mode, channels-last memory format, bf16 autocast, cuDNN autotuning, `torch.compile`
  (falls back to eager with a warning if compilation fails), and CUDA graphs for small batches: for
  each batch size in `graph_batch_sizes` the forward pass is captured once into a graph with a static
  input buffer and later replayed, which removes the kernel-launch overhead that dominates batch-1
  latency (batch-1 eager is launch-bound: a plain-PyTorch measurement made before this repository,
  quoted in benchmarks/README.md "GPU: pending", took 7.3 ms at batch 1 against 1.01 ms per image at
  batch 64). Batches are split into chunks of `max_batch`; a chunk is padded up to the next fixed
  size, so compiled code and graphs only ever see a handful of shapes (padding rows are zeros;
  eval-mode BatchNorm treats images independently, so they never change the real rows).
- CPU: plain fp32 eval under `torch.inference_mode` (no compile, no graphs unless asked for).

Decode-once policy. Datasets are decoded once into a uint8 HR cache (`data.load_cached`: N x 3 x 192 x
192, 1 byte per value) and degraded on the device batch by batch (`upscale_batches`), so JPEG decoding
happens once per run, host-to-device traffic is a quarter of float32, and the LR images are exactly
the training degradation (paper Sec. 3.3, `degradation.degrade`).

The speed of these paths is measured by benchmarks/bench_sr.py (tables in benchmarks/README.md).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import torch
from torch import nn

from ..core.config import HR_SIZE, LR_SIZE, DegradationConfig
from ..core.console import CSRIPError, tqdm
from ..core.degradation import degrade, for_models
from ..core.runtime import check_lr, pick_device

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if cuda_bf16 else torch.float32
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if dtype in DTYPES:
        return DTYPES[dtype]
    raise ValueError(f"dtype must be 'auto' or one of {sorted(DTYPES)}, got {dtype!r}")


def _auto(value: bool | str, default: bool, name: str) -> bool:
    if value == "auto":
        return default
    if isinstance(value, bool):
        return value
    raise ValueError(f"{name} must be True, False or 'auto', got {value!r}")


class Upscaler:
    """The project's fast inference path for a 24 -> 192 SR model (see the module docstring).

    model: CascadedSR / BaselineSR (or any module mapping N x 3 x 24 x 24 to N x 3 x 192 x 192). It is put
        in eval mode and moved to `device` in place (no copy of the weights is made).
    device: None/"auto" -> CUDA if available, else CPU.
    dtype: "auto" -> bf16 autocast on CUDA GPUs that support it, fp32 elsewhere.
    compile: torch.compile the model; "auto" -> on CUDA only. Failure -> warning, eager.
    cuda_graphs: capture CUDA graphs for chunks of up to max(graph_batch_sizes) images; "auto" -> on CUDA.
    compile_mode: passed to torch.compile. "default" compiles in seconds; "max-autotune-no-cudagraphs"
        also searches kernel configurations (minutes per batch size). Not "reduce-overhead": this class
        captures its own graphs.
    compile_backend: torch.compile backend ("inductor"; "eager" / "aot_eager" only trace, for debugging).
    max_batch: largest chunk run at once (default 256 on CUDA, 16 on CPU).

    up(lr) accepts any batch size and returns float32 N x 3 x 192 x 192 in [0, 1] on lr's device.
    """

    def __init__(self, model: nn.Module, device: str | torch.device | None = None,
                 dtype: str | torch.dtype = "auto", compile: bool | str = "auto",
                 cuda_graphs: bool | str = "auto", *, compile_mode: str | None = "default",
                 compile_backend: str | Callable = "inductor",
                 max_batch: int | None = None, graph_batch_sizes: Sequence[int] = (1, 4, 16, 64)):
        self.device = pick_device(device)
        cuda = self.device.type == "cuda"
        self.dtype = _resolve_dtype(dtype, self.device)
        self.cuda_graphs = _auto(cuda_graphs, cuda, "cuda_graphs")
        if self.cuda_graphs and not cuda:
            raise ValueError(f"cuda_graphs=True needs a CUDA device, got {self.device}")
        self.max_batch = int(max_batch or (256 if cuda else 16))
        self.graph_batch_sizes = tuple(sorted(b for b in set(graph_batch_sizes) if b <= self.max_batch))
        if self.max_batch < 1 or any(b < 1 for b in self.graph_batch_sizes):
            raise ValueError("max_batch and graph_batch_sizes must be positive")
        self.memory_format = torch.channels_last if cuda else torch.contiguous_format
        self.model = model.eval().to(self.device, memory_format=self.memory_format)
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest conv kernels
        self.compiled = False
        self._fn: nn.Module = self.model
        if _auto(compile, cuda, "compile"):
            try:
                mode = compile_mode if compile_backend == "inductor" else None  # modes are inductor's
                self._fn = torch.compile(self.model, mode=mode, backend=compile_backend, dynamic=False)
                self.compiled = True
            except Exception as e:  # compilation itself is lazy; this only catches a missing backend
                warnings.warn(f"torch.compile unavailable ({type(e).__name__}: {e}); running eager")
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor, torch.Tensor] | None] = {}

    def __repr__(self) -> str:
        return (f"Upscaler({type(self.model).__name__}, device={self.device}, dtype={self.dtype}, "
                f"compiled={self.compiled}, cuda_graphs={self.cuda_graphs}, max_batch={self.max_batch})")

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        """SR faces for LR faces: N x 3 x 24 x 24 float in [0, 1] -> float32 N x 3 x 192 x 192, lr's device."""
        check_lr(lr)
        with torch.inference_mode():
            chunks = [self._run_chunk(c.to(self.device, torch.float32, non_blocking=True))
                      for c in lr.split(self.max_batch)]
        if not chunks:
            return torch.empty(0, 3, HR_SIZE, HR_SIZE, device=lr.device)
        # Outside inference mode, so callers get ordinary tensors they may modify in place.
        return torch.cat(chunks).to(lr.device).contiguous()

    # ---- internals -----------------------------------------------------------------------------------
    def _fixed_size(self, n: int) -> int:
        """The batch size a chunk of n images runs at: fixed sizes when compiled code or graphs are used."""
        if not (self.compiled or self.cuda_graphs):
            return n
        for b in self.graph_batch_sizes:
            if n <= b:
                return b
        return self.max_batch if self.compiled else n

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        # cache_enabled=False: autocast's weight-cast cache must not outlive a CUDA graph capture.
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32,
                            cache_enabled=False):
            return self._fn(x)

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        """Forward pass; the first failure of compiled code switches to eager for good (with a warning)."""
        if self.compiled:
            try:
                return self._forward(x)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as e:
                warnings.warn(f"torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                              "falling back to eager execution")
                self._fn, self.compiled = self.model, False
        return self._forward(x)

    def _run_chunk(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        size = self._fixed_size(n)
        graph = self._graph(size) if self.cuda_graphs and size in self.graph_batch_sizes else None
        if graph is not None:
            g, static_in, static_out = graph
            static_in[:n].copy_(x)
            static_in[n:].zero_()
            g.replay()
            return static_out[:n].to(torch.float32, copy=True)  # the next replay overwrites static_out
        if size > n:
            x = torch.cat([x, x.new_zeros(size - n, *x.shape[1:])])
        return self._call(x.contiguous(memory_format=self.memory_format))[:n].float()

    def _graph(self, size: int):
        """Capture (once) and return the CUDA graph for batch `size`; None if capture failed."""
        if size not in self._graphs:
            static_in = torch.zeros(size, 3, LR_SIZE, LR_SIZE, device=self.device).contiguous(
                memory_format=self.memory_format)
            try:
                with torch.cuda.device(self.device):  # graphs capture on the current device
                    side = torch.cuda.Stream()
                    side.wait_stream(torch.cuda.current_stream())
                    with torch.cuda.stream(side):  # warm-up: compilation, cuDNN autotuning, lazy init
                        for _ in range(3):
                            self._call(static_in)
                    torch.cuda.current_stream().wait_stream(side)
                    g = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(g):
                        static_out = self._forward(static_in)
                self._graphs[size] = (g, static_in, static_out)
            except torch.cuda.OutOfMemoryError:
                raise
            except Exception as e:
                warnings.warn(f"CUDA graph capture failed for batch {size} ({type(e).__name__}: {e}); "
                              "running without a graph")
                torch.cuda.synchronize(self.device)
                self._graphs[size] = None
        return self._graphs[size]


class UpscaledBatch(NamedTuple):
    """One batch from `upscale_batches`, all float on the upscaler's device."""

    index: slice  # rows of the input this batch covers
    lr: torch.Tensor  # B x 3 x 24 x 24, the network input
    sr: torch.Tensor  # B x 3 x 192 x 192, the network output
    hr: torch.Tensor | None  # B x 3 x 192 x 192 ground truth when the input was HR, else None


def upscale_batches(upscaler: Upscaler, images: torch.Tensor, batch_size: int | None = None,
                    progress: bool = True, degradation: DegradationConfig | None = None,
                    desc: str = "upscaling") -> Iterator[UpscaledBatch]:
    """Stream a uint8 image cache through `upscaler`, one batch at a time (decode-once policy).

    images: uint8 N x 3 x 192 x 192 HR faces (e.g. `data.load_cached`), degraded on the device with the
        paper's model (Sec. 3.3) under the degradation the upscaler's model was trained with
        (`degradation.for_models`; `degradation` overrides it), or uint8 N x 3 x 24 x 24 LR faces used as is.
    Yields UpscaledBatch(index, lr, sr, hr) so metrics can be computed batch by batch on the device
    without holding N float images in memory.
    """
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"expected a uint8 image cache (N x 3 x H x W, values 0..255), got {got}")
    if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) not in {
            (HR_SIZE, HR_SIZE), (LR_SIZE, LR_SIZE)}:
        raise ValueError(f"expected N x 3 x {HR_SIZE} x {HR_SIZE} (HR) or N x 3 x {LR_SIZE} x {LR_SIZE} (LR) "
                         f"uint8 images, got shape {tuple(images.shape)}")
    is_hr = images.shape[-1] == HR_SIZE
    degradation = for_models({"model": upscaler}, degradation)
    bs = int(batch_size or upscaler.max_batch)
    n = images.shape[0]
    with tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
        for start in range(0, n, bs):
            x = images[start:start + bs].to(upscaler.device, non_blocking=True).float().div_(255)
            hr, lr = (x, degrade(x, HR_SIZE // LR_SIZE, degradation)) if is_hr else (None, x)
            sr = upscaler(lr)
            bar.update(x.shape[0])
            yield UpscaledBatch(slice(start, start + x.shape[0]), lr, sr, hr)
