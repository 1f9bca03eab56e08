"""Speed of `csrip evaluate` (csrip_lib.evaluation.evaluate.evaluate_models): where the time goes, and how much
faster it is than the code path it replaced, measured in the same run on the same faces.

    python benchmarks/bench_evaluate.py                      # 128 test faces, csrip-quick + bicubic
    python benchmarks/bench_evaluate.py --faces 256 --judge-workers 2 --repeats 2

1. Stages (ms per face and share of the total), timed one after another on the same batches:
   decode (JPEG -> 192 px HR crop), degradation (make_pyramid to 24 px), model (each SR model and
   bicubic), PSNR, SSIM (each with its 8-bit preparation), judge alignment (5-point landmarks) and
   descriptor (dlib's ResNet; HR included, as with a cold cache), I/O (per-image CSV and summary).
2. End to end: `reference_evaluate` below is evaluate's loop as it was before the fast path (float64
   SSIM through depthwise convolutions, each image prepared twice per model, the judge in this process
   between batches)
   and `evaluate_models` is today's. They run alternately, `--repeats` times, without and with the judge
   (HR descriptors cached for both, as from the second evaluation of a data set on); the median time
   of each and their ratio are reported, and the two result tables are compared: PSNR, SSIM and id_dist
   must agree to 1e-6, or the benchmark exits with status 1.

Single-threaded by default (`--threads 1`): the ratios hold on a machine that runs other work. Today's
judge runs in `--judge-workers` processes (one core each) while this one scores the next batch, so with
the judge, the ratio depends on how many cores are free.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from csrip_lib.evaluation import judge as judge_mod# noqa: E402
from csrip_lib.data.faces import IndexedFaces  # noqa: E402
from csrip_lib.core.degradation import for_models, make_pyramid  # noqa: E402
from csrip_lib.evaluation.evaluate import (_HREmbedder, _dataset, _prepare, _readable_info, _run, bicubic, evaluate_models,  # noqa: E402
                                           load_models, summarize_results)
from csrip_lib.evaluation.identity import identity_metrics  # noqa: E402
from csrip_lib.losses import K1, K2, WINDOW_SIZE, gaussian_window  # noqa: E402
from csrip_lib.evaluation.metrics import _pair, _psnr, _ssim, prepare  # noqa: E402

from bench_sr import device_name  # noqa: E402


# ---- the reference: evaluate's loop before the fast path ------------------------------------------------
def reference_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image SSIM as csrip_lib.losses computed it in float64 before: depthwise convolutions."""
    x, y = (t.to(torch.float64, memory_format=torch.channels_last) for t in (x, y))
    k = 4 * x.shape[1]
    m = torch.cat([x, y, x * x + y * y, x * y], dim=1)
    g = gaussian_window(dtype=torch.float64)
    m = F.conv2d(m, g.view(1, 1, 1, -1).expand(k, 1, 1, WINDOW_SIZE), groups=k)
    m = F.conv2d(m, g.view(1, 1, -1, 1).expand(k, 1, WINDOW_SIZE, 1), groups=k)
    mu1, mu2, sq, xy = m.contiguous().chunk(4, dim=1)
    c1, c2 = K1 ** 2, K2 ** 2
    s = ((2 * mu1 * mu2 + c1) * (2 * (xy - mu1 * mu2) + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (sq - mu1 * mu1 - mu2 * mu2 + c2))
    return s.flatten(1).mean(1)


@torch.no_grad()
def reference_evaluate(models: dict, data, max_images: int, batch_size: int, judge=None,
                       hr_cache: dict | None = None) -> pd.DataFrame:
    """evaluate_models as it was (CPU, bicubic + models, `hr_cache`: HR descriptors by image path)."""
    device = torch.device("cpu")
    degradation = for_models(models, None)
    ds = _dataset(data, "test", max_images)
    fns = {"bicubic": bicubic, **{n: _prepare(fn, device) for n, fn in models.items()}}
    loader = DataLoader(IndexedFaces(ds), batch_size=batch_size, shuffle=False)
    scores = {n: {"psnr": [], "ssim": [], "emb": []} for n in fns}
    hr_emb, labels, readable = [], [], []
    for hr_u8, y, ok in loader:
        start = sum(len(r) for r in readable)
        readable.append(ok)
        hr_u8, y = hr_u8[ok], y[ok]
        hr = hr_u8.float() / 255
        lr = make_pyramid(hr, degradation)["lr"]
        if judge is not None:
            hr_emb.append(np.stack([hr_cache[i] for i in range(start, start + len(y))]))
        labels.append(y)
        for name, fn in fns.items():
            sr = _run(fn, lr, device)
            a, b = prepare(sr), prepare(hr)  # psnr(sr, hr) prepared both images ...
            scores[name]["psnr"].append((10 * torch.log10(1.0 / (a - b).pow(2).flatten(1).mean(1))).float())
            a, b = prepare(sr), prepare(hr)  # ... and ssim_eval(sr, hr) again
            scores[name]["ssim"].append(reference_ssim(a, b).float())
            if judge is not None:
                scores[name]["emb"].append(judge.embed(sr))
    info = _readable_info(ds, torch.cat(readable))
    frames = []
    for name in fns:
        df = pd.DataFrame({"model": name, "image": [p for p, _ in info], "identity": [c for _, c in info],
                           "psnr": torch.cat(scores[name]["psnr"]).numpy(),
                           "ssim": torch.cat(scores[name]["ssim"]).numpy()})
        if judge is not None:
            m = identity_metrics(np.concatenate(scores[name]["emb"]), np.concatenate(hr_emb), torch.cat(labels).numpy())
            df["id_dist"] = m["id_dist"]
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


# ---- stage timing -------------------------------------------------------------------------------------
class Stages:
    """Accumulated seconds per stage."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t

    def table(self, faces: int) -> pd.DataFrame:
        ms = pd.Series(self.seconds) * 1e3 / faces
        return pd.DataFrame({"ms/face": ms, "share": ms / ms.sum()})


@torch.no_grad()
def time_stages(models: dict, data, max_images: int, batch_size: int, judge) -> tuple[pd.DataFrame, int]:
    """Today's evaluate, stage by stage, single process (the judge in this process, HR not cached)."""
    ds = _dataset(data, "test", max_images)
    faces = IndexedFaces(ds)
    fns = {"bicubic": bicubic, **{n: _prepare(fn, torch.device("cpu")) for n, fn in models.items()}}
    degradation = for_models(models, None)
    st = Stages()
    rows = []
    for start in range(0, len(faces), batch_size):
        with st("decode"):
            hr_u8 = torch.stack([faces[i][0] for i in range(start, min(start + batch_size, len(faces)))])
        with st("degradation"):
            lr = make_pyramid(hr_u8.float() / 255, degradation)["lr"]
        outputs = {}
        for name, fn in fns.items():
            with st(f"model: {name}"):
                outputs[name] = _run(fn, lr, torch.device("cpu"))
        for name, sr in outputs.items():
            with st("PSNR"):
                a, b = _pair(sr, hr_u8)
                p = _psnr(a, b)
            with st("SSIM"):
                a, b = _pair(sr, hr_u8)
                s = _ssim(a, b)
            rows.append(pd.DataFrame({"model": name, "psnr": p.float().numpy(), "ssim": s.float().numpy()}))
        if judge is not None:
            for images in (hr_u8, *outputs.values()):
                arrays = judge_mod.to_uint8_hwc(images)
                with st("judge: alignment"):
                    for a in arrays:
                        judge._align(a)
                with st("judge: descriptor"):  # embed = alignment + descriptor; alignment taken out below
                    judge.embed(images)
    if judge is not None:
        st.seconds["judge: descriptor"] -= st.seconds["judge: alignment"]
    with st("I/O: CSV + summary"), tempfile.TemporaryDirectory() as tmp:
        df = pd.concat(rows, ignore_index=True)
        df.to_csv(Path(tmp) / "r.csv", index=False)
        summarize_results(df).to_csv(Path(tmp) / "r_summary.csv")
    return st.table(len(faces)), len(faces)


# ---- main ---------------------------------------------------------------------------------------------
def timed(fn: Callable[[], pd.DataFrame]) -> tuple[float, pd.DataFrame]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def max_diff(a: pd.DataFrame, b: pd.DataFrame, cols: list[str]) -> float:
    a, b = a[a.model != "hr"].reset_index(drop=True), b[b.model != "hr"].reset_index(drop=True)
    assert a[["model", "image"]].equals(b[["model", "image"]]), "the two paths scored different rows"
    return max(float(np.nanmax(np.abs(a[c].to_numpy(float) - b[c].to_numpy(float)))) for c in cols)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="face folder (default: $CSRIP_DATA, data/lfw-deepfunneled, ...)")
    p.add_argument("--checkpoint", nargs="*", default=["csrip-quick"])
    p.add_argument("--faces", type=int, default=128, help="test faces (a fixed subset of whole identities)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=1, help="end-to-end runs of each path (median)")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--judge-workers", type=int, default=1,
                   help="judge processes in today's path, next to the scoring (0: in this process)")
    p.add_argument("--no-judge", action="store_true", help="PSNR/SSIM only")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = load_models(args.checkpoint)
    use_judge = not args.no_judge and judge_mod.available()
    print(f"# bench_evaluate: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {device_name(torch.device('cpu'))}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, torch {torch.__version__} "
          f"({args.threads} thread(s)), Python {platform.python_version()}, judge: "
          f"{f'{args.judge_workers} worker(s)' if use_judge else 'off'}")
    print(f"# command: python {' '.join(sys.argv)}  (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    local = judge_mod.FaceJudge(workers=0) if use_judge else None
    stages, n = time_stages(models, args.data, args.faces, args.batch_size, local)
    print(f"\n## stages of today's evaluate, {n} faces, models: bicubic + {', '.join(models)}")
    with pd.option_context("display.float_format", "{:.2f}".format):
        print(stages.assign(share=stages["share"].map("{:.0%}".format)).to_string())

    runs = [("no judge", None)]
    if use_judge:
        runs.append(("judge, HR cached", judge_mod.FaceJudge(workers=args.judge_workers)))
    ok = True
    print("\n## end to end: reference (the path before) vs today's evaluate_models, same run, same faces")
    for label, judge in runs:
        hr_cache = None
        if judge is not None:  # warm today's cache on disk; the reference gets the same descriptors in memory
            ds = _dataset(args.data, "test", args.faces)
            hr = torch.stack([IndexedFaces(ds)[i][0] for i in range(len(ds))])
            hr_cache = dict(enumerate(_HREmbedder(judge, ds)(hr)))
        ref_t, new_t = [], []
        for _ in range(args.repeats):
            ref_judge = local if judge is not None else None  # the judge as it ran before: in this process
            t, ref = timed(lambda: reference_evaluate(models, args.data, args.faces, args.batch_size, ref_judge, hr_cache))
            ref_t.append(t)
            t, new = timed(lambda: evaluate_models(models, args.data, "test", judge=judge, max_images=args.faces,
                                                   batch_size=args.batch_size, device="cpu", progress=False))
            new_t.append(t)
        cols = ["psnr", "ssim"] + (["id_dist"] if judge is not None else [])
        diff = max_diff(ref, new, cols)
        ok &= diff <= 1e-6
        r, t = statistics.median(ref_t), statistics.median(new_t)
        per = n * (len(models) + 1)
        print(f"{label:18s} reference {r:7.1f} s ({r / per * 1e3:6.1f} ms per face and model)   today "
              f"{t:7.1f} s ({t / per * 1e3:6.1f} ms)   ratio {r / t:4.2f}x   max |diff| {'/'.join(cols)}: {diff:.1e}")
        if judge is not None:
            judge.close()
    if not ok:
        print("FAILED: today's scores differ from the reference's by more than 1e-6")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
