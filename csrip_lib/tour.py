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
from .checkpoint import load_checkpoint
from .config import runs_dir
from .errors import CSRIPError
from .train_recognizers import ensure_recognizers

PRETRAINED = "pretrained"
SHIPPED_RECOGNIZERS = "recognizers-quick"


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

    "pretrained": the shipped recognizers; otherwise notebook 03's run under runs/<preset>/
    (trained now if missing, reused if finished).
    """
    if preset == PRETRAINED:
        folder = shipped(SHIPPED_RECOGNIZERS, kind="recognizers")
        table = folder / "accuracy.csv"
        return folder, pd.read_csv(table) if table.is_file() else pd.DataFrame()
    folder = runs_dir() / preset / "recognizers"
    return folder, ensure_recognizers(root, preset, folder)
