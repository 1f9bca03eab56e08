"""What the tutorial notebooks train live and what they load, by their PRESET parameter.

`PRESET = "quick"` trains tiny models on the CPU while you watch, reusing what an earlier notebook
trained (runs are shared through `config.runs_dir()`), and shows the shipped models of
`checkpoints/` (csrip_lib.zoo) next to the short live runs, so a result is visible in minutes.
`PRESET = "pretrained"` trains nothing: notebooks 03, 05 and 06 load the shipped models (they are
`quick`-preset models, so data and sizes follow `quick`). `"small"` / `"paper"` train everything.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import zoo
from .ablation import VARIANTS, run_dir, train_variants
from .checkpoint import load_checkpoint
from .config import runs_dir
from .errors import CSRIPError
from .data import identities_digest, resolve_data
from .train_recognizers import ensure_recognizers, training_folder
from .train_sr import train_sr

PRETRAINED = "pretrained"
SHIPPED_RECOGNIZERS = "recognizers-quick"
SHIPPED_PAIR = {"C-SRIP": "c-srip-quick", "C+SSIM+M": "c-ssim-m-quick"}  # Table 2's equal-budget pair


def model_preset(preset: str) -> str:
    """The model/data preset behind a notebook PRESET (the shipped models are `quick` models)."""
    return "quick" if preset == PRETRAINED else preset


def has_shipped(name: str, kind: str = "sr") -> bool:
    """True when checkpoints/ ships model `name` of `kind`."""
    try:
        return name in zoo.available(kind)
    except CSRIPError:
        return False


def shipped(name: str, kind: str = "sr") -> Path:
    """Path of shipped model `name` (SHA-256 checked by csrip_lib.zoo); a clear error if absent."""
    if name not in zoo.available(kind):
        raise CSRIPError(f"no shipped {kind} model {name!r} in checkpoints/ (shipped: "
                         f"{', '.join(zoo.available(kind)) or 'none'}); use PRESET = \"quick\" to train "
                         "the models here")
    return zoo.resolve(name, kind=kind)


def describe(path: str | Path, kind: str = "sr") -> str:
    """How a checkpoint was trained, in one line: steps, batch size, wall time, kept epoch."""
    ckpt = load_checkpoint(path, kind=kind)
    metrics, train = ckpt.get("metrics") or {}, ckpt.get("train_config") or {}
    parts = [f"{metrics['step']:,} steps" if "step" in metrics else None,
             f"batch {train['batch_size']}" if "batch_size" in train else None,
             f"{metrics['seconds'] / 60:.1f} min of training" if "seconds" in metrics else None,
             f"kept epoch {ckpt['epoch']}" if "epoch" in ckpt else None]
    return ", ".join(p for p in parts if p)


def recognizers(root: str | Path, preset: str) -> tuple[Path, pd.DataFrame]:
    """(run folder, accuracy table) of the three identity priors (Sec. 3.3).

    "pretrained", and "quick" when checkpoints/ ships them: the shipped recognizers (the quick models
    of notebook 03 trained for tens of epochs, so that the identity terms of notebook 05 carry identity);
    otherwise notebook 03's run under runs/<preset>/ (trained now if missing, reused if finished).
    """
    if preset == PRETRAINED or (preset == "quick" and _shipped_priors_know(root)):
        folder = shipped(SHIPPED_RECOGNIZERS, kind="recognizers")
        table = folder / "accuracy.csv"
        return folder, pd.read_csv(table) if table.is_file() else pd.DataFrame()
    folder = runs_dir() / preset / "recognizers"
    return folder, ensure_recognizers(root, preset, folder)


def _shipped_priors_know(root: str | Path) -> bool:
    """True when checkpoints/ ships recognizers trained on exactly the quick identities of `root` (the
    digest they saved), e.g. the LFW development subset; other data trains its own (notebook 03)."""
    if not has_shipped(SHIPPED_RECOGNIZERS, kind="recognizers"):
        return False
    folder = shipped(SHIPPED_RECOGNIZERS, kind="recognizers")
    saved = load_checkpoint(folder / "rec192" / "best.pt", kind="recognizer")["config"]["data"]["identities_sha256"]
    return saved == identities_digest(training_folder(resolve_data(root, verbose=False), "quick").identities)


def table2_checkpoints(root: str | Path, preset: str, runs: Path, train: bool) -> dict[str, Path]:
    """Notebook 06's models by name: the Table 2 variants (Sec. 4.3) it finds or trains.

    "pretrained" (or "quick" when they are shipped): the shipped C-SRIP / C+SSIM+M pair, each printed
    with how it was trained. Otherwise the ablation runs under <runs>/ablation (all five trained or
    resumed when `train`, else those with a best.pt) with notebook 03's identity priors (`recognizers`),
    and C-SRIP from notebook 05's <runs>/sr when the ablation has none (trained or resumed there).
    """
    if preset == PRETRAINED or (preset == "quick" and all(map(has_shipped, SHIPPED_PAIR.values()))):
        paths = {name: shipped(n) for name, n in SHIPPED_PAIR.items()}
        for name, n in SHIPPED_PAIR.items():
            print(f"{name}: shipped {n}, {describe(paths[name])}")
        return paths
    rec, _ = recognizers(root, preset)
    if train:
        paths = train_variants(list(VARIANTS), root, preset, runs / "ablation", recognizers=rec, progress=False)
    else:
        paths = {name: run_dir(runs / "ablation", name) / "best.pt" for name in VARIANTS}
        paths = {name: path for name, path in paths.items() if path.is_file()}
    if "C-SRIP" not in paths:
        train_sr(root, preset, runs / "sr", recognizers=rec, resume=True, progress=False)
        paths["C-SRIP"] = runs / "sr" / "best.pt"
    return paths
