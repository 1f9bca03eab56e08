"""Seconds per C+SSIM+M training step (Eq. 2 at 48/96/192 px, alpha 0) of cascades of several sizes on the CPU:
the measurement that sized the `base` preset (checkpoints/MODEL_CARD.md, csrip-base, "What we tried").

    python benchmarks/bench_train_step.py [--threads 1] [--batch-size 16] [--steps 4]

One step = uint8 HR batch -> pyramid (Sec. 3.3) -> model(lr, all_scales=True) -> multi-scale SSIM loss ->
backward -> Adam. Random faces (speed only); the fastest of the steps after the first is reported.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from csrip_lib.core.config import LossConfig, get_preset  # noqa: E402
from csrip_lib.losses import CSRIPLoss  # noqa: E402
from csrip_lib.models.sr import CascadedSR  # noqa: E402
from csrip_lib.training.sr import pyramid  # noqa: E402

TINY = get_preset("tiny").sr
SIZES = {  # name: the SRConfig measured (widths x2 / x3 / x4 of tiny's, blocks per SR module, head kernel)
    "tiny": TINY,
    "x2 wide, 3 blocks, 9x9": replace(TINY, stem_channels=64, channels=(64, 32, 16), shuffle_channels=(128, 64, 32),
                                      blocks=3, final_channels=16),
    "x2 wide, 3 blocks, 5x5 (base)": get_preset("base").sr,
    "x3 wide, 4 blocks, 5x5": replace(TINY, stem_channels=96, channels=(96, 48, 24), shuffle_channels=(192, 96, 48),
                                      blocks=4, final_channels=16, kernel_size=5),
    "x4 wide, 4 blocks, 5x5": replace(TINY, stem_channels=128, channels=(128, 64, 32),
                                      shuffle_channels=(256, 128, 64), blocks=4, final_channels=32, kernel_size=5),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=4, help="timed steps per size (the first is a warm-up)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    hr = torch.randint(0, 256, (args.batch_size, 3, 192, 192), dtype=torch.uint8)
    labels = torch.zeros(args.batch_size, dtype=torch.long)
    loss_fn = CSRIPLoss.from_config(LossConfig(alpha=0.0), None, identities=None)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}")
    for name, cfg in SIZES.items():
        torch.manual_seed(0)
        model = CascadedSR(cfg)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            pyr = pyramid(hr, torch.device("cpu"))
            total, _ = loss_fn(model(pyr["lr"], all_scales=True), pyr, labels)
            opt.zero_grad()
            total.backward()
            opt.step()
            times.append(time.perf_counter() - t)
        best = min(times[1:] or times)
        print(f"{name:32s} {model.num_parameters():>10,} parameters  {best:6.2f} s/step")


if __name__ == "__main__":
    main()
