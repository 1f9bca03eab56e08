"""Checkpoints: atomic save, validated load.

A csrip checkpoint is a dict saved with `torch.save`:
    {"format": "csrip", "version": 1, "kind": "sr" | "recognizer" | ...,
     "config": {...},            # asdict() of the configs that built the model (see config.py)
     "model": state_dict, ...}   # plus optimizer/scheduler/step/rng state written by train.py
Writes go to a temporary file in the same folder and are renamed into place, so a killed run
never leaves a half-written checkpoint.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CSRIPError

FORMAT, VERSION = "csrip", 1


def save_checkpoint(state: dict[str, Any], path: str | Path, kind: str) -> Path:
    """Atomically write `state` (must contain "model" and "config") as a csrip checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    missing = {"model", "config"} - state.keys()
    if missing:
        raise ValueError(f"checkpoint state is missing {sorted(missing)}")
    payload = {"format": FORMAT, "version": VERSION, "kind": kind, **state}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, kind: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a csrip checkpoint; `kind` (if given) must match what was saved."""
    path = Path(path)
    if not path.is_file():
        raise CSRIPError(f"checkpoint not found: {path} (expected a .pt file written by csrip)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:  # truncated file, pickle from elsewhere, not a torch file at all
        raise CSRIPError(f"{path} is not a readable checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CSRIPError(f"{path} is not a csrip checkpoint (no 'format': 'csrip' marker); "
                         "use a file written by `csrip train-sr` or `csrip train-recognizers`")
    if kind is not None and ckpt.get("kind") != kind:
        raise CSRIPError(f"{path} holds a {ckpt.get('kind')!r} model, expected {kind!r}")
    return ckpt
