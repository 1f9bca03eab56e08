"""`csrip ablation`: the paper's ablation study (Sec. 4.3, Table 2) and SSIM-vs-MSE experiment (A.3, Tables 3-4).

    csrip ablation --data DIR --preset P --recognizers runs/X --out runs/ablation [--experiment table1|table2|table34]
                   [--test-data LFW_DIR]

Every model is one `train_sr` configuration (one code path, see `CSRIPLoss`):

    Baseline   BaselineSR (21 blocks, 3 pixel shuffles at the end)  MSE,  final output only
    B+SSIM     BaselineSR                                            SSIM, final output only
    C+SSIM     CascadedSR                                            SSIM, final output only
    C+SSIM+M   CascadedSR                                            SSIM, 48/96/192 px
    C-SRIP     CascadedSR                                            SSIM, 48/96/192 px + alpha x identity

table1 (Sec. 4.2) trains the six competitors (csrip_lib.training.competitors: NBSRF-like, SRCNN, VDSR, lp-like,
SRGAN-like, URDGN; names and docstrings say where ours differs from the cited method) and C-SRIP on the same data
and scores them with bicubic, with each model's parameters, GFLOP per face and training s/step (`costs`); without --recognizers it uses the priors of runs/<preset>/recognizers
(lp and SRGAN use their features, C-SRIP their identity loss), trained there first if missing. table2 trains all five and scores them (and bicubic) on the test split (identities never seen in
training); table34 trains Baseline and B+SSIM and scores them on their training images (Table 3) and
on the test split (Table 4). Scores follow csrip_lib.evaluation.metrics (8-bit RGB PSNR / SSIM per image, averaged).
Test images come from the test split of --data, or with --test-data from every image of another face
folder: the paper trains on CASIA-WebFace and tests on LFW (Sec. 4.1), two datasets with no identity
in common, so `--data CASIA --test-data LFW` runs Tables 1-2 as the paper ran them.
Runs go to <out>/<model>/ (a finished run is reused, an unfinished one resumed; --force retrains);
tables to <out>/table1.csv (paper numbers and gains over bicubic beside ours), <out>/table2.csv, or table3_train.csv and table4_test.csv, with per-image scores next to them; tables already there are
replaced by a rerun that rescores the finished runs of the same experiment there, else only with --force
(checked before any training; a link at a table's name is replaced, never written through).
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import pandas as pd
from torch.utils.data import Subset

from ..core.checkpoint import load_checkpoint
from ..core.config import DEFAULT_PRESET, PRESETS, LossConfig, Preset, RunSpec, TrainConfig, get_preset, runs_dir
from ..core.console import CSRIPError, nonnegative_float, positive_int
from ..core.outputs import check_dir, check_outputs, write_outputs
from ..data.faces import resolve_data
from ..evaluation.evaluate import compare_to_paper, evaluate_models, gain_over_bicubic, headroom, summarize_results
from ..losses import check_identity_prior
from ..models.registry import COMPETITOR_LABELS, COMPETITOR_STEMS, load_sr, size_and_flops
from .competitors import competitor_run, train_competitor, training_cost
from .harness import add_schedule_arguments, schedule_from_args
from .recognizers import ensure_recognizers, training_folder
from .sr import SRData, sr_datasets, sr_run, train_sr

# name -> (architecture, loss without alpha); C-SRIP's alpha comes from the preset / --alpha.
VARIANTS: dict[str, tuple[str, LossConfig]] = {
    "Baseline": ("baseline", LossConfig("mse", multiscale=False, alpha=0.0)),
    "B+SSIM": ("baseline", LossConfig("ssim", multiscale=False, alpha=0.0)),
    "C+SSIM": ("cascaded", LossConfig("ssim", multiscale=False, alpha=0.0)),
    "C+SSIM+M": ("cascaded", LossConfig("ssim", multiscale=True, alpha=0.0)),
    "C-SRIP": ("cascaded", LossConfig("ssim", multiscale=True, alpha=0.001)),
}
COMPETITOR_NAMES = {label: key for key, label in COMPETITOR_LABELS.items()}  # Table 1 row -> registry name
EXPERIMENTS = {"table1": [*COMPETITOR_NAMES, "C-SRIP"], "table2": list(VARIANTS),
               "table34": ["Baseline", "B+SSIM"]}
TABLE_FILES = {"table1": ("table1_per_image.csv", "table1.csv"), "table2": ("table2_per_image.csv", "table2.csv"),
               "table34": ("table3_train_per_image.csv", "table4_test_per_image.csv", "table3_train.csv",
                           "table4_test.csv")}  # what each experiment writes into --out


def check_tables(out: Path, experiment: str, force: bool) -> None:
    """Tables already in `out` are replaced only by a rerun that rescores this experiment's finished runs
    there (every run's best.pt present: the folder is this experiment's), or with `force`; anything else
    at a table's name (a user's file, a link) is kept: CSRIPError before any training."""
    if force or all((run_dir(out, name) / "best.pt").is_file() for name in EXPERIMENTS[experiment]):
        return
    check_outputs([out / f for f in TABLE_FILES[experiment]], force)


def run_dir(out: Path, name: str) -> Path:
    """<out>/baseline, b_ssim, c_ssim, c_ssim_m, c_srip (competitors by `COMPETITOR_STEMS`: srcnn, nbsrf_like, ...)."""
    stem = COMPETITOR_STEMS[COMPETITOR_NAMES[name]] if name in COMPETITOR_NAMES else name
    return out / stem.lower().replace("+", "_").replace("-", "_")


def shipped_name(name: str, preset: str) -> str:
    """The checkpoints/ name of a Table 1/2 model trained at `preset`: "C-SRIP" -> "c-srip-quick",
    "NBSRF-like" -> "nbsrf-like-quick" (`csrip reproduce table1 --ship`)."""
    return f"{run_dir(Path(), name).name.replace('_', '-')}-{preset}"


def variant_runs(names: list[str], preset: Preset, alpha: float | None = None, train: TrainConfig | None = None
                 ) -> dict[str, RunSpec]:
    """Each named model at `preset` as one `RunSpec` (`VARIANTS`, `COMPETITOR_NAMES`): the one place where
    an experiment reads its preset. C-SRIP's alpha is `alpha` or the preset's; `train` overrides the schedule."""
    alpha = preset.loss.alpha if alpha is None else alpha
    runs = {}
    for name in names:
        if name in COMPETITOR_NAMES:
            runs[name] = competitor_run(COMPETITOR_NAMES[name], preset, train)
            continue
        arch, loss = VARIANTS[name]
        runs[name] = sr_run(preset, loss=replace(loss, alpha=alpha) if loss.alpha > 0 else loss, arch=arch,
                            train=train)
    return runs


def train_variants(runs: dict[str, RunSpec], data: SRData | str | Path, out: Path, recognizers=None, force: bool = False,
                   device=None, progress: bool = True, partial_priors: bool = False) -> dict[str, Path]:
    """Train (or reuse / resume) each run (`variant_runs`) on the same loaded faces; returns {name: best.pt}.
    `partial_priors`: C-SRIP's recognizers may know only some training identities (`train_sr`)."""
    best = {}
    for name, run in runs.items():
        d = run_dir(out, name)
        if run.model == "csrip":
            print(f"--- {name} ({run.net.arch}, {run.loss})")
            train_sr(data, run, d, recognizers=recognizers, resume=not force, force=force, device=device,
                     progress=progress, partial_priors=partial_priors)
        else:
            print(f"--- {name} ({run.model})")
            train_competitor(data, run, d, recognizers=recognizers, resume=not force, force=force, device=device,
                             progress=progress)
        best[name] = d / "best.pt"
    return best


def trained(out: str | Path, experiment: str = "table1") -> bool:
    """True when every model of `experiment` has a finished run in `out` (then `run_ablation` only scores)."""
    lasts = [run_dir(Path(out), name) / "last.pt" for name in EXPERIMENTS[experiment]]
    return all(p.is_file() and load_checkpoint(p, kind="sr")["state"]["finished"] for p in lasts)


def score(checkpoints: dict[str, Path], data, split_or_dataset, device=None, max_images: int | None = None,
          progress: bool = True) -> pd.DataFrame:
    """Per-image PSNR/SSIM of bicubic and every checkpoint (csrip_lib.evaluation.evaluate.evaluate_models)."""
    models = {name: load_sr(path, model=COMPETITOR_NAMES.get(name, "csrip")) for name, path in checkpoints.items()}
    if isinstance(split_or_dataset, str):
        return evaluate_models(models, data, split_or_dataset, device=device, max_images=max_images,
                               progress=progress)
    return evaluate_models(models, split_or_dataset, device=device, progress=progress)


def costs(checkpoints: dict[str, Path]) -> pd.DataFrame:
    """Per model (index): `params` and `gflop` per face (`registry.size_and_flops`: a GAN's generator; the
    NBSRF-like forest none) and `s_per_step`, the wall seconds of its run folder's log.csv (training and
    validation, SRGAN's two stages together: `competitors.training_cost`) over its optimizer steps."""
    rows = {}
    for name, path in checkpoints.items():
        params, gflop = size_and_flops(load_sr(path))
        seconds, steps = training_cost(Path(path).parent)
        rows[name] = {"params": params, "gflop": gflop, "s_per_step": seconds / steps if steps else None}
    return pd.DataFrame.from_dict(rows, orient="index")


def table(per_image: pd.DataFrame, paper: str | None = None) -> pd.DataFrame:
    """Mean PSNR/SSIM per model (rows in training order), next to the paper's Table 1/2 when asked.

    Table 1 also gets each model's gain over bicubic, measured and in the paper, and every further
    per-model column of `summarize_results` (e.g. identity metrics) for the models we ran."""
    summary = summarize_results(per_image)
    if paper is None:
        return summary[["images", "psnr_mean", "ssim_mean"]].rename(columns={"psnr_mean": "psnr",
                                                                            "ssim_mean": "ssim"})
    out = compare_to_paper(summary, paper)
    if paper != "table1":
        return out
    extra = [c for c in summary.columns if c != "images" and not c.startswith(("psnr_", "ssim_"))]
    gains = gain_over_bicubic(summary)[["paper_dpsnr", "measured_dpsnr", "paper_dssim", "measured_dssim"]]
    return out.join(gains).join(summary[extra])


def run_ablation(data=None, preset: str | Preset = DEFAULT_PRESET, out: str | Path | None = None, recognizers=None,
                 experiment: str = "table2", alpha: float | None = None, train: TrainConfig | None = None,
                 force: bool = False, device=None, max_images: int | None = None,
                 progress: bool = True, test_data=None) -> dict[str, pd.DataFrame]:
    """Run one experiment; returns its tables ({"table2": ...} or {"table3": ..., "table4": ...}).

    `preset` is a Preset or its name (this entry point resolves it; everything below takes the object).
    Test scores come from the "test" split of `data`, or from every image of `test_data` (another
    face folder, e.g. LFW for models trained on CASIA-WebFace, Sec. 4.1)."""
    if experiment not in EXPERIMENTS:
        raise CSRIPError(f"unknown experiment {experiment!r}; expected one of {sorted(EXPERIMENTS)}")
    preset = get_preset(preset) if isinstance(preset, str) else preset
    alpha = preset.loss.alpha if alpha is None else alpha
    out = check_dir(Path(out) if out is not None else runs_dir() / preset.name / "ablation")
    check_tables(out, experiment, force)  # before any training
    root = resolve_data(data)
    test_root, test_split = (root, "test") if test_data is None else (resolve_data(test_data), "all")
    if test_data is not None and test_root.resolve() == root.resolve():
        raise CSRIPError(f"--test-data {test_root} is the training folder; omit --test-data to score its "
                         "identity-disjoint test split")
    if experiment == "table1" and recognizers is None:
        recognizers = runs_dir() / preset.name / "recognizers"  # notebook 03's, shared with train-sr
        ensure_recognizers(root, preset, recognizers, device=device, progress=progress)
    if "C-SRIP" in EXPERIMENTS[experiment]:
        check_identity_prior(alpha, recognizers)  # before any training
    runs = variant_runs(EXPERIMENTS[experiment], preset, alpha, train)
    ckpts = train_variants(runs, sr_datasets(root, preset.selection, progress), out, recognizers, force, device,
                           progress)
    tables: dict[str, pd.DataFrame] = {}
    test = score(ckpts, test_root, test_split, device, max_images, progress)
    written: dict[Path, bytes] = {}
    if experiment in ("table1", "table2"):
        written[out / f"{experiment}_per_image.csv"] = test.to_csv(index=False).encode()
        tables[experiment] = table(test, paper=experiment)
        if experiment == "table1":  # sizes and training cost beside the scores
            tables[experiment] = tables[experiment].join(costs(ckpts))
    else:
        train_ds = training_folder(root, preset.selection)
        if max_images is not None and len(train_ds) > max_images:
            train_ds = Subset(train_ds, range(max_images))
        train_scores = score(ckpts, root, train_ds, device, progress=progress)
        written[out / "table3_train_per_image.csv"] = train_scores.to_csv(index=False).encode()
        written[out / "table4_test_per_image.csv"] = test.to_csv(index=False).encode()
        tables["table3_train"], tables["table4_test"] = table(train_scores), table(test)
    written.update({out / f"{name}.csv": t.to_csv().encode() for name, t in tables.items()})
    write_outputs(written, force=True)  # checked by check_tables; atomic, a link replaced, never written through
    for name, t in tables.items():
        with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 160):
            print(f"\n{name} ({root.name if name.startswith('table3') else test_root.name}, preset {preset.name}):"
                  f"\n{t.to_string()}")
        if name == "table1":
            print(headroom(summarize_results(test)))
    return tables


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="face folder <root>/<identity>/<image> "
                        "(default: $CSRIP_DATA, data/lfw-deepfunneled, else synthetic faces)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help="sizes, schedule and identity universe (csrip_lib/core/config.py); table1's competitors at "
                        "paper/small get their original papers' sizes, trained with our schedule and losses")
    parser.add_argument("--recognizers", default=None, help="run folder of `csrip train-recognizers` "
                        "(needed for C-SRIP in table2 unless --alpha 0; table1 uses runs/<preset>/recognizers, trained if missing)")
    parser.add_argument("--out", default=None, help="folder for the runs and tables (default: runs/<preset>/ablation)")
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), default="table2",
                        help="table1: the six competitors (NBSRF-like, SRCNN, VDSR, lp-like, SRGAN-like, URDGN) and C-SRIP "
                        "(Sec. 4.2); table2: five-model ablation "
                        "(Sec. 4.3); table34: MSE vs SSIM on Baseline (A.3)")
    parser.add_argument("--alpha", type=nonnegative_float, default=None, help="C-SRIP's identity weight (default 0.001)")
    parser.add_argument("--test-data", default=None, help="score every image of this face folder instead of the "
                        "test split of --data (the paper: train on CASIA-WebFace, test on LFW)")
    parser.add_argument("--max-images", type=positive_int, default=None, help="score at most this many images per table")
    parser.add_argument("--device", default=None)
    parser.add_argument("--force", action="store_true", help="retrain models whose runs exist")
    add_schedule_arguments(parser)


def run(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    train = schedule_from_args(args, preset.train_sr)
    run_ablation(args.data, preset, args.out, args.recognizers, args.experiment, args.alpha, train,
                 args.force, args.device, args.max_images, test_data=args.test_data)
    return 0
