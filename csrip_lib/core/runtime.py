"""Where a network runs, how fast, and what it accepts: the one device choice, the training step's
speed settings (`step_speed`), the one LR input check; and the one rule for helper processes
(`die_with_parent`, `usable_cores`).

Training (`train.fit`), evaluation, inference and the notebooks all pick their device with
`pick_device`, and every SR network (paper Sec. 3.1, 24 px inputs) and `inference.Upscaler` check their
input with `check_lr`, so a wrong device or a wrong image gets the same one-line message everywhere.
"""
from __future__ import annotations

import ctypes
import os
import signal
from functools import cache

import torch
import torch.distributed as dist

from .config import LR_SIZE, SpeedConfig
from .console import CSRIPError

RANGE_TOLERANCE = 1e-3  # allowed excursion of LR inputs outside [0, 1] (interpolation overshoot)


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or (None / "auto") CUDA when available (this process's GPU under torchrun), else CPU.

    An unknown name or a CUDA device that is not there is a CSRIPError."""
    if device is None or str(device) == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda", dist.get_rank() % torch.cuda.device_count()
                            if dist.is_initialized() else torch.cuda.current_device())
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise CSRIPError(f"unknown device {device!r}; expected 'cpu', 'cuda', 'cuda:N' or 'auto'") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise CSRIPError(f"device {device!r} requested but PyTorch sees no CUDA GPU; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise CSRIPError(f"device {device!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    return dev


def check_lr(lr: torch.Tensor) -> None:
    """The one input check of the SR networks (their forward) and `inference.Upscaler`: a TypeError or
    ValueError saying what was expected unless `lr` is N x 3 x 24 x 24 float in [0, 1] (no NaN).

    The value check costs one min/max over the 24 px input; it is skipped for meta tensors (shape and
    FLOP counting), while torch.compile traces or while a CUDA graph is captured (`inference.Upscaler`
    checks before those)."""
    if not isinstance(lr, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor N x 3 x {LR_SIZE} x {LR_SIZE}, got {type(lr).__name__}")
    if lr.ndim != 4 or tuple(lr.shape[1:]) != (3, LR_SIZE, LR_SIZE):
        raise ValueError(f"expected low-resolution faces N x 3 x {LR_SIZE} x {LR_SIZE} (float RGB in [0, 1]), "
                         f"got shape {tuple(lr.shape)}; degrade HR faces with "
                         "csrip_lib.core.degradation.degrade(hr, 8) or make_pyramid, or resize them to 24 x 24")
    if not lr.is_floating_point():
        raise TypeError(f"expected float values in [0, 1], got dtype {lr.dtype}; "
                        "convert 8-bit images with `x.float() / 255`")
    if not lr.numel() or lr.is_meta or torch.compiler.is_compiling() or (
            lr.is_cuda and torch.cuda.is_current_stream_capturing()):
        return
    lo, hi = (float(v) for v in torch.aminmax(lr.detach()))
    if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):  # also catches NaN
        raise ValueError(f"expected values in [0, 1], got min {lo:.4g} and max {hi:.4g}; "
                         "images in 0..255 must be divided by 255")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's instruction-set flags (Linux /proc/cpuinfo; empty where it does not exist)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with AVX-512
    BF16 or AMX (oneDNN emulates bf16 on other CPUs, which is slower than float32, so not there)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


PRECISIONS = ("auto", "bf16", "fp32")


def step_speed(device: torch.device, precision: str = "auto", channels_last: bool = True) -> SpeedConfig:
    """The training step's `SpeedConfig` on `device`: bf16 autocast where the hardware has it ("auto"), or
    as `precision` says, and channels_last; `--precision fp32 --no-channels-last` is the plain float32
    step. benchmarks/bench_train_step.py measures each against it (ratios in benchmarks/README.md)."""
    if precision not in PRECISIONS:
        raise CSRIPError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and device.type == "cpu" and not native_bf16(device):
        print("note: this CPU has no native bf16 (AVX-512 BF16 or AMX); bf16 is emulated and may be slower "
              "than --precision fp32")
    bf16 = native_bf16(device) if precision == "auto" else precision == "bf16"
    return SpeedConfig(bf16=bf16, channels_last=channels_last)


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity), at least 1: the cap of every worker count."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def die_with_parent() -> None:
    """Make this (helper) process end when the process that started it ends, however it ends (SIGTERM,
    SIGHUP, SIGKILL): Linux's PR_SET_PDEATHSIG, so a killed `csrip evaluate` never leaves its judge
    workers (hundreds of MB each) running under PID 1. Ctrl-C is ignored: it belongs to the parent,
    which stops its workers itself. A no-op where the call is missing (not Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent ended before the call: nothing would signal us
        os._exit(1)
