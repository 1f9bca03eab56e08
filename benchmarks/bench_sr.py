"""Speed of C-SRIP's SR network: inference (naive fp32 eager vs the fast path) and one training step.

    python benchmarks/bench_sr.py                  # GPU: paper/small/tiny, batch 1 and 256; train 8 and 64
    python benchmarks/bench_sr.py --device cpu     # CPU: tiny/small, batch 1 and 8; train 8

Rows, per preset (same run, same device, so the ratios are fair):
  inference  fp32 eager   model.eval() under torch.inference_mode, PyTorch defaults (what a user writes first)
  inference  fast         csrip_lib.evaluation.inference.Upscaler: on CUDA bf16 autocast + channels_last + torch.compile
                          + CUDA graphs for small batches; on CPU fp32 inference_mode (no compile)
  train step fp32 eager   one C-SRIP step (Eq. 4): multi-scale SSIM + identity terms of three frozen
                          SqueezeNet recognizers (48/96/192 px), backward, Adam step; HR uint8 -> pyramid on device
  train step bf16 CL      the same step as the training harness runs it on CUDA (bf16 autocast, channels_last)

Timing: warm-up calls first (compilation, cuDNN autotuning and graph capture happen there and are
reported as warmup_s), then repeated calls, each timed with CUDA events (GPU) or perf_counter (CPU);
the median is reported. FLOPs are counted once per preset with torch.utils.flop_counter.FlopCounterMode
(2 FLOPs per multiply-add) and give the achieved TFLOP/s, also as a share of the device's dense bf16 peak
when the device is known (PEAK_BF16_TFLOPS). Results: a pandas table on stdout and JSON (rewritten after
every row, so an interrupted run keeps what it measured) in benchmarks/results/<device>-<date>.json.
"""
from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import re
import statistics
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
import torch._dynamo
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from csrip_lib.core.config import HR_SIZE, LR_SIZE, get_preset  # noqa: E402
from csrip_lib.core.degradation import make_pyramid  # noqa: E402
from csrip_lib.evaluation.inference import Upscaler  # noqa: E402
from csrip_lib.core.runtime import pick_device  # noqa: E402
from csrip_lib.losses import CSRIPLoss  # noqa: E402
from csrip_lib.models import CascadedSR, SqueezeNetRecognizer  # noqa: E402

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s; first match wins.
PEAK_BF16_TFLOPS = [
    (r"H200", 989), (r"H100.*PCIe", 756), (r"H100.*NVL", 835), (r"H100|GH200", 989),
    (r"A100", 312), (r"L40S", 362), (r"\bL4\b", 121), (r"A10\b", 125), (r"RTX 4090", 165),
]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
NUM_CLASSES = 1000  # recognizer classes for the training step (LFW train identities are of this order)


# ---- device facts -------------------------------------------------------------------------------------
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # the CPU model, as lscpu shows it
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def peak_tflops(name: str) -> float | None:
    return next((float(p) for pattern, p in PEAK_BF16_TFLOPS if re.search(pattern, name)), None)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# ---- timing -------------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(fn, device: torch.device, warmup: int, repeats: int, max_seconds: float) -> tuple[float, float, int]:
    """(median ms per call, warm-up seconds, calls timed): warm-up calls, then up to `repeats` timed calls
    (at least 3, fewer once `max_seconds` of timing have passed)."""
    t0 = time.perf_counter()
    for _ in range(warmup):
        fn()
    sync(device)
    warm_s = time.perf_counter() - t0
    times: list[float] = []
    spent = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - spent < max_seconds):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), warm_s, len(times)


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ---- workloads ----------------------------------------------------------------------------------------
def lr_batch(n: int, device: torch.device) -> torch.Tensor:
    return torch.rand(n, 3, LR_SIZE, LR_SIZE, device=device)


def naive_inference(model: torch.nn.Module, x: torch.Tensor):
    model = copy.deepcopy(model).eval().to(x.device)

    def fn():
        with torch.inference_mode():
            return model(x)
    return fn


def train_step(preset: str, batch: int, device: torch.device, fast: bool):
    """One C-SRIP optimisation step (Eq. 4) as csrip_lib.training.sr runs it; returns the step function."""
    p = get_preset(preset)
    model = CascadedSR(p.sr).to(device).train()
    recognizers = {s: SqueezeNetRecognizer(NUM_CLASSES, p.recognizer, image_size=s).to(device)
                   for s in (48, 96, 192)}
    loss_fn = CSRIPLoss(recognizers, alpha=p.loss.alpha).to(device)
    if fast:
        model.to(memory_format=torch.channels_last)
        loss_fn.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    hr_u8 = torch.randint(0, 256, (batch, 3, HR_SIZE, HR_SIZE), dtype=torch.uint8, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    use_bf16 = fast and device.type == "cuda"

    def fn():
        pyr = make_pyramid(hr_u8.float().div_(255))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            total, _ = loss_fn(model(pyr["lr"], all_scales=True), pyr, labels)
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
    return fn


# ---- the run ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")
    p.add_argument("--presets", nargs="+", help="default: paper small tiny on CUDA, tiny small on CPU")
    p.add_argument("--batch-sizes", nargs="+", type=int, help="inference batches (default 1 256 / CPU 1 8)")
    p.add_argument("--train-batch-sizes", nargs="+", type=int, help="default 8 64 / CPU 8; 0 = no training")
    p.add_argument("--repeats", type=int, help="timed calls per row (default 30 / CPU 5)")
    p.add_argument("--warmup", type=int, help="untimed calls first (default 5 / CPU 1)")
    p.add_argument("--max-seconds", type=float, default=10.0, help="stop timing a row after this (>= 3 calls)")
    p.add_argument("--no-compile", action="store_true", help="fast path without torch.compile")
    p.add_argument("--compile-mode", default="default",
                   help="torch.compile mode of the fast path (e.g. max-autotune-no-cudagraphs)")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--out", type=Path, help="JSON file (default benchmarks/results/<device>-<date>.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    device = pick_device(args.device)
    cuda = device.type == "cuda"
    if args.threads:
        torch.set_num_threads(args.threads)
    presets = args.presets or (["paper", "small", "tiny"] if cuda else ["tiny", "small"])
    batches = args.batch_sizes or ([1, 256] if cuda else [1, 8])
    train_batches = [b for b in (args.train_batch_sizes or ([8, 64] if cuda else [8])) if b > 0]
    repeats, warmup = args.repeats or (30 if cuda else 5), args.warmup or (5 if cuda else 1)
    name = device_name(device)
    peak = peak_tflops(name) if cuda else None
    date = dt.datetime.now(dt.timezone.utc)
    out = args.out or RESULTS_DIR / f"{slug(name)}-{date:%Y-%m-%d}.json"
    meta = {"device": str(device), "device_name": name, "peak_bf16_tflops": peak,
            "torch": torch.__version__, "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None, "threads": torch.get_num_threads(),
            "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32 if cuda else None,
            "python": platform.python_version(), "date_utc": date.isoformat(timespec="seconds"),
            "command": " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:]) if argv is None else str(argv),
            "repeats": repeats, "warmup": warmup,
            "loadavg_1m_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    print(f"# {name} ({device}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"bf16 peak {peak or 'unknown'} TFLOP/s, load average {meta['loadavg_1m_at_start']}", flush=True)
    rows: list[dict] = []

    def record(preset: str, task: str, mode: str, batch: int, ms: float, warm_s: float, calls: int,
               flops_per_image: float) -> None:
        tflops = flops_per_image * batch / (ms * 1e-3) / 1e12
        row = {"preset": preset, "task": task, "mode": mode, "batch": batch, "ms_per_batch": ms,
               "ms_per_image": ms / batch, "images_per_s": batch / (ms * 1e-3), "tflops": tflops,
               "pct_bf16_peak": 100 * tflops / peak if peak else None, "warmup_s": warm_s, "calls": calls,
               "gflop_per_image": flops_per_image / 1e9}
        base = next((r for r in rows if (r["preset"], r["task"], r["batch"], r["mode"]) ==
                     (preset, task, batch, "fp32 eager")), None)
        row["speedup_vs_fp32"] = base["ms_per_batch"] / ms if base else 1.0
        rows.append(row)
        print(f"{preset:>6} {task:<10} {mode:<34} batch {batch:>4}: {ms / batch:9.3f} ms/img "
              f"{row['images_per_s']:9.1f} img/s {tflops:7.2f} TFLOP/s  x{row['speedup_vs_fp32']:.2f} "
              f"(warm-up {warm_s:.1f} s)", flush=True)
        RESULTS_DIR.mkdir(exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
        os.replace(tmp, out)

    for preset in presets:
        torch._dynamo.reset()  # fresh compile caches: dynamo's recompile limit counts across presets
        torch.manual_seed(0)
        model = CascadedSR.from_preset(preset).to(device).eval()
        with torch.inference_mode():
            flops_inf = count_flops(lambda: model(lr_batch(1, device)))
        up = Upscaler(copy.deepcopy(model), device=device, compile=False if args.no_compile else "auto",
                      compile_mode=args.compile_mode)  # one per preset: compiled once per batch size
        for b in batches:
            x = lr_batch(b, device)
            torch.backends.cudnn.benchmark = False  # the naive baseline: PyTorch's defaults
            ms, warm_s, calls = measure(naive_inference(model, x), device, warmup, repeats, args.max_seconds)
            record(preset, "inference", "fp32 eager", b, ms, warm_s, calls, flops_inf)
            torch.backends.cudnn.benchmark = cuda  # what Upscaler sets on CUDA
            with warnings.catch_warnings():
                warnings.simplefilter("always")  # a compile fallback must show in the log
                ms, warm_s, calls = measure(lambda: up(x), device, warmup, repeats, args.max_seconds)
            graphed = up.cuda_graphs and up._graphs.get(up._fixed_size(b)) is not None
            mode = "fast: " + "+".join([str(up.dtype).removeprefix("torch."),
                                        *(["channels_last"] if up.memory_format == torch.channels_last else []),
                                        *(["compile"] if up.compiled else []), *(["graph"] if graphed else [])])
            record(preset, "inference", mode, b, ms, warm_s, calls, flops_inf)
            del x
        del model, up
        for b in train_batches:
            flops_train = count_flops(train_step(preset, 2, device, fast=False)) / 2
            for fast in ([False, True] if cuda else [False]):
                torch.backends.cudnn.benchmark = fast
                ms, warm_s, calls = measure(train_step(preset, b, device, fast), device, max(2, warmup // 2),
                                            repeats, args.max_seconds)
                record(preset, "train step", "bf16+channels_last" if fast else "fp32 eager", b, ms, warm_s,
                       calls, flops_train)
        if cuda:
            torch.cuda.empty_cache()

    df = pd.DataFrame(rows)
    df["pct_bf16_peak"] = pd.to_numeric(df["pct_bf16_peak"])  # None (unknown peak) -> NaN -> "-"
    show = df[["preset", "task", "mode", "batch", "ms_per_image", "images_per_s", "tflops", "pct_bf16_peak",
               "speedup_vs_fp32", "gflop_per_image", "warmup_s"]]
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3g}".format):
        print("\n" + show.to_string(index=False, na_rep="-"))
    print(f"\nwrote {out}")
    return df


if __name__ == "__main__":
    main()
