"""Where a CPU training step's time goes, against the core's peak, and what each speed setting buys.

    python benchmarks/bench_train_step.py [--threads 1] [--repeats 5] [--parts cascade recognizers csrip]
    python benchmarks/bench_train_step.py --sizes        # the cascade sizes that sized the `base` preset
    python benchmarks/bench_train_step.py --curve 200 --data DIR   # 200-step loss curves: before vs now

Parts, each the step the library trains with (random faces, speed only):
    cascade      `base` cascade, C+SSIM+M (Eq. 2 at 48/96/192 px, alpha 0), batch 16: csrip-base's step
    recognizers  `base` recognizers (1,133 classes) at 48, 96 and 192 px on augmented residuals, batch 32
    csrip        the cascade step plus Eq. 4's identity terms of the three frozen recognizers (alpha 0.001)
Variants, cumulative, all in this one run (ratios are against the first):
    before       62f2f71's step: float32, NCHW, torchvision's 2-D Gaussian blurs (k x k taps)
    separable    + the separable channels_last blur of `core.degradation.gaussian_blur`
    channels_last + NHWC model and inputs (`SpeedConfig.channels_last`)
    bf16         + bf16 autocast of the networks (`SpeedConfig.bf16`): the default where the CPU has
                 AVX-512 BF16 or AMX (`core.runtime.step_speed`)
Per step: data (degradation pyramid or residual images), forward (network + loss), backward, optimizer;
the median of `--repeats` steps after one warm-up. GFLOP are counted once per part with
torch.utils.flop_counter (2 FLOP per multiply-add, forward + backward); GFLOP/s = GFLOP / (forward +
backward time), set against the core's peak (`peak_gflops`: clock x FLOP per cycle, an estimate stated
with its rule). Data time is also measured with 1 and 2 threads. Results: benchmarks/results/train_step.csv.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from torchvision.transforms.v2 import functional as TF

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from csrip_lib.core import degradation  # noqa: E402
from csrip_lib.core.config import LossConfig, SpeedConfig, get_preset  # noqa: E402
from csrip_lib.core.runtime import cpu_flags  # noqa: E402
from csrip_lib.losses import CSRIPLoss  # noqa: E402
from csrip_lib.models.recognizer import SqueezeNetRecognizer  # noqa: E402
from csrip_lib.models.sr import CascadedSR  # noqa: E402
from csrip_lib.training.recognizers import residual_batch  # noqa: E402
from csrip_lib.training.sr import pyramid  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"
CLASSES = 1133  # the base priors' identities (training-split identities with >= 2 images)
VARIANTS = {  # name: (torchvision's 2-D blur, SpeedConfig, batch multiple)
    "before": (True, SpeedConfig(bf16=False, channels_last=False), 1),
    "separable": (False, SpeedConfig(bf16=False, channels_last=False), 1),
    "channels_last": (False, SpeedConfig(bf16=False, channels_last=True), 1),
    "bf16": (False, SpeedConfig(bf16=True, channels_last=True), 1),
    "bf16, 2x batch": (False, SpeedConfig(bf16=True, channels_last=True), 2),  # per face: does a larger batch pay?
}
FLAGS = ("fma", "avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16")


# ------------------------------------------------------------------------------------- the machine
def cpu_model() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if os.path.exists("/usr/bin/lscpu") else ""
    m = re.search(r"Model name:\s*(.+)", out)
    return m.group(1).strip() if m else platform.processor() or "unknown CPU"


def clock_ghz() -> float:
    """The highest clock lscpu reports (max MHz), else /proc/cpuinfo's current MHz."""
    out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout if os.path.exists("/usr/bin/lscpu") else ""
    m = re.search(r"CPU max MHz:\s*([\d.]+)", out)
    if m:
        return float(m.group(1)) / 1000
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        mhz = re.findall(r"cpu MHz\s*:\s*([\d.]+)", f.read())
        if mhz:
            return max(map(float, mhz)) / 1000
    return float("nan")


def flop_per_cycle() -> tuple[int, str]:
    """fp32 FLOP per cycle of one core and the rule used: 2 (FMA) x 2 FMA pipes x fp32 lanes of the
    pipe. AMD's AVX-512 cores (Zen 4) execute 512-bit FMAs on 256-bit pipes, so 8 lanes there."""
    flags, amd = cpu_flags(), "AMD" in cpu_model() or "AuthenticAMD" in platform.processor()
    if "avx512f" in flags and not amd:
        return 64, "2 FMA x 2 pipes x 16 fp32 lanes (AVX-512; Intel parts with one 512-bit pipe have half)"
    if "fma" in flags:
        return 32, "2 FMA x 2 pipes x 8 fp32 lanes (256-bit pipes" + (", AVX-512 double-pumped)" if amd else ")")
    return 8, "no FMA: 2 x 4 SSE lanes (rough)"


def peak_gflops(bf16: bool) -> float:
    """One core's peak: clock x FLOP/cycle; bf16 dot products (AVX-512 BF16) do twice fp32's work per
    instruction, AMX far more (not modelled: reported against the AVX-512 BF16 rate)."""
    return clock_ghz() * flop_per_cycle()[0] * (2 if bf16 and {"avx512_bf16", "amx_bf16"} & cpu_flags() else 1)


# ------------------------------------------------------------------------------------------- steps
@contextlib.contextmanager
def blur(torchvision_2d: bool):
    """`core.degradation.gaussian_blur` as it was before (torchvision's k x k kernel) or as it is."""
    now = degradation.gaussian_blur

    def before(x: torch.Tensor, sigma: float, truncate: float = degradation.TRUNCATE) -> torch.Tensor:
        if sigma == 0:
            return x
        k = min(degradation.kernel_size(sigma, truncate), max(3, (min(x.shape[-2:]) - 1) | 1))
        return TF.gaussian_blur(x, kernel_size=[k, k], sigma=[sigma, sigma])

    degradation.gaussian_blur = before if torchvision_2d else now
    try:
        yield
    finally:
        degradation.gaussian_blur = now


class Step:
    """One part's training step in four timed pieces: data(), forward(data) -> loss, backward, optimizer."""

    def __init__(self, part: str, speed: SpeedConfig, batch: int, scale: int = 192):
        torch.manual_seed(0)
        p, self.part, self.speed, self.scale = get_preset("base"), part, speed, scale
        self.hr = torch.randint(0, 256, (batch, 3, 192, 192), dtype=torch.uint8)
        self.labels = torch.randint(0, CLASSES, (batch,))
        fmt = torch.channels_last if speed.channels_last else torch.contiguous_format
        if part == "recognizers":
            self.model = SqueezeNetRecognizer(CLASSES, p.recognizer, image_size=scale).to(memory_format=fmt)
        else:
            self.model = CascadedSR(p.sr).to(memory_format=fmt)
            recs = None
            if part == "csrip":
                recs = {s: SqueezeNetRecognizer(CLASSES, p.recognizer, image_size=s).eval() for s in (48, 96, 192)}
            self.loss = CSRIPLoss.from_config(LossConfig(alpha=0.001 if recs else 0.0), recs).to(memory_format=fmt)
        self.opt = torch.optim.Adam(self.model.parameters(), 1e-3)

    def data(self):
        if self.part == "recognizers":
            return residual_batch(self.hr, self.scale, augment=True, channels_last=self.speed.channels_last)
        return pyramid(self.hr, torch.device("cpu"), channels_last=self.speed.channels_last)

    def forward(self, batch) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.speed.bf16):
            if self.part == "recognizers":
                return F.cross_entropy(self.model(batch), self.labels)
            return self.loss(self.model(batch["lr"], all_scales=True), batch, self.labels)[0]

    def time(self) -> dict[str, float]:
        t = [time.perf_counter()]
        batch = self.data()
        t.append(time.perf_counter())
        loss = self.forward(batch)
        t.append(time.perf_counter())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        t.append(time.perf_counter())
        self.opt.step()
        t.append(time.perf_counter())
        return dict(zip(("data", "forward", "backward", "optimizer"), (b - a for a, b in zip(t, t[1:]))))

    def gflop(self) -> float:
        batch = self.data()
        with FlopCounterMode(display=False) as counter:
            self.forward(batch).backward()
        self.opt.zero_grad(set_to_none=True)
        return counter.get_total_flops() / 1e9


def measure(part: str, scale: int, batch: int, repeats: int) -> list[dict]:
    """Every variant of one part, interleaved step by step so a change of machine load hits all alike."""
    steps = {}
    for name, (old_blur, speed, times_batch) in VARIANTS.items():
        with blur(old_blur):
            steps[name] = Step(part, speed, batch * times_batch, scale)
            steps[name].time()  # warm-up (oneDNN primitive creation)
    times = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            with blur(VARIANTS[name][0]):
                times[name].append(step.time())
    gflop = steps["before"].gflop()
    rows = []
    for name, ts in times.items():
        med = pd.DataFrame(ts).median()
        compute = med["forward"] + med["backward"]
        n = batch * VARIANTS[name][2]
        flops = gflop * n / batch
        rows.append({"part": part if part != "recognizers" else f"recognizer {scale}", "variant": name,
                     "batch": n, **{f"{k}_ms": round(1000 * v, 1) for k, v in med.items()},
                     "s_per_step": round(med.sum(), 3), "ms_per_face": round(1000 * med.sum() / n, 1),
                     "gflop_per_step": round(flops, 2), "gflop_per_s": round(flops / compute, 1),
                     "peak_fraction": round(flops / compute / peak_gflops(VARIANTS[name][1].bf16), 3)})
    base = rows[0]["ms_per_face"]
    for r in rows:
        r["speedup"] = round(base / r["ms_per_face"], 2)  # per face: the batch rows compare fairly
    return rows


def data_threads(repeats: int) -> list[dict]:
    """The data piece alone (now's code, channels_last) with 1 and 2 threads."""
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for part, scale, batch in (("cascade", 192, 16), ("recognizers", 48, 32), ("recognizers", 192, 32)):
            step = Step(part, VARIANTS["bf16"][1], batch, scale)
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                step.data()
                ts.append(time.perf_counter() - t0)
            rows.append({"threads": threads, "part": part if part == "cascade" else f"recognizer {scale}",
                         "data_ms": round(1000 * sorted(ts)[len(ts) // 2], 1)})
    return rows


# ------------------------------------------------------------------------------ the size sweep
def sizes(batch: int, repeats: int) -> None:
    """s/step of C+SSIM+M cascades of several sizes (what sized `base`: MODEL_CARD.md, csrip-base)."""
    tiny = get_preset("tiny").sr
    configs = {"tiny": tiny,
               "x2 wide, 3 blocks, 9x9": replace(tiny, stem_channels=64, channels=(64, 32, 16),
                                                 shuffle_channels=(128, 64, 32), blocks=3, final_channels=16),
               "x2 wide, 3 blocks, 5x5 (base)": get_preset("base").sr,
               "x3 wide, 4 blocks, 5x5": replace(tiny, stem_channels=96, channels=(96, 48, 24),
                                                 shuffle_channels=(192, 96, 48), blocks=4, final_channels=16,
                                                 kernel_size=5)}
    for name, cfg in configs.items():
        step = Step("cascade", VARIANTS["bf16"][1], batch)
        step.model = CascadedSR(cfg).to(memory_format=torch.channels_last)
        step.opt = torch.optim.Adam(step.model.parameters(), 1e-3)
        ts = [sum(step.time().values()) for _ in range(repeats + 1)][1:]
        print(f"{name:32s} {step.model.num_parameters():>10,} parameters  {sorted(ts)[len(ts) // 2]:6.2f} s/step")


# ------------------------------------------------------------------------------ loss curves
def curves(steps: int, data: str, out: Path) -> None:
    """`steps` real C+SSIM+M training steps of the `base` cascade on `data`, three times: before's speed
    (float32, NCHW) and now's (bf16, channels_last) at seed 0, and now's at seed 1 (training noise)."""
    from csrip_lib.training.sr import sr_datasets, sr_run, train_sr
    p = get_preset("base")
    faces = sr_datasets(data, p.selection)
    train = replace(p.train_sr, max_steps=steps, steps_per_epoch=steps // 4, epochs=4, lr_milestones=())
    logs = []
    for name, speed, seed in (("before", VARIANTS["before"][1], 0), ("now", VARIANTS["bf16"][1], 0),
                              ("now, seed 1", VARIANTS["bf16"][1], 1)):
        with blur(speed == VARIANTS["before"][1]):
            log = train_sr(faces, sr_run(p, train=replace(train, seed=seed)), out / name.replace(", ", "-"),
                           force=True, speed=speed)
        logs.append(log.assign(run=name))
    table = pd.concat(logs)[["run", "step", "train_ssim48", "train_ssim96", "train_ssim192", "val_ssim", "val_psnr",
                             "seconds"]]
    print(table.round(4).to_string(index=False))
    table.to_csv(OUT / "train_step_curves.csv", index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--parts", nargs="+", default=["cascade", "recognizers", "csrip"],
                    choices=["cascade", "recognizers", "csrip"])
    ap.add_argument("--sizes", action="store_true", help="only the cascade size sweep (batch 16)")
    ap.add_argument("--curve", type=int, default=0, metavar="STEPS", help="only the loss-curve check (needs --data)")
    ap.add_argument("--data", default=None, help="face folder for --curve")
    ap.add_argument("--runs", default="runs/bench-curves", help="run folders of --curve")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    OUT.mkdir(exist_ok=True)
    flags = sorted(set(FLAGS) & cpu_flags())
    fpc, rule = flop_per_cycle()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs, {clock_ghz():.2f} GHz; flags: {' '.join(flags)}")
    print(f"peak per core: fp32 {peak_gflops(False):.0f} GFLOP/s ({fpc} FLOP/cycle: {rule}); "
          f"bf16 {peak_gflops(True):.0f} GFLOP/s")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), load average "
          f"{os.getloadavg()[0]:.1f}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    if args.sizes:
        return sizes(16, args.repeats)
    if args.curve:
        if not args.data:
            ap.error("--curve needs --data DIR (real faces: the loss curve of random ones means nothing)")
        return curves(args.curve, args.data, Path(args.runs))
    rows = []
    for part in args.parts:
        for scale in ((48, 96, 192) if part == "recognizers" else (192,)):
            rows += measure(part, scale, 32 if part == "recognizers" else 16, args.repeats)
            print(pd.DataFrame(rows[-len(VARIANTS):]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    table.to_csv(OUT / "train_step.csv", index=False)
    print("\ndata piece alone, now's code:\n" + pd.DataFrame(data_threads(args.repeats)).to_string(index=False))


if __name__ == "__main__":
    main()
