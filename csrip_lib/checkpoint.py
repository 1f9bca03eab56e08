"""Checkpoints: atomic save, safe validated load.

A csrip checkpoint is a dict saved with `torch.save`:
    {"format": "csrip", "version": 2, "kind": "sr" | "recognizer" | ...,
     "config": {...},            # asdict() of the configs that built the model (see config.py)
     "model": state_dict, ...}   # plus optimizer/scheduler/step/rng state written by train.py
Everything in it is tensors and plain Python data (dicts, lists, tuples, str, numbers, None), so it
is read with `torch.load(weights_only=True)`: a file from a stranger cannot run code when loaded
(a pickled object with a `__reduce__` payload is refused, `CSRIPError`).
Format versions: 1 stored the numpy RNG state of `last.pt` as a numpy array (not loadable safely);
2 stores it as plain data. Files of a newer version than this code knows are refused with a message.
Writes go to a temporary file in the same folder and are renamed into place, so a killed run
never leaves a half-written checkpoint.
"""
from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import CSRIPError

FORMAT, VERSION = "csrip", 2
MIN_VERSION = 1  # the oldest format whose model weights this code reads


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
    """Load (safely: tensors and plain data only) and validate a csrip checkpoint; `kind` (if given)
    must match what was saved. Every problem is a one-line CSRIPError."""
    path = Path(path)
    if not path.is_file():
        raise CSRIPError(f"checkpoint not found: {path} (expected a .pt file written by csrip)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused a global: code or a foreign object
        detail = " ".join(str(e).split())
        detail = detail[detail.find("Unsupported"):][:160] if "Unsupported" in detail else detail[:160]
        raise CSRIPError(f"refused to load {path}: it holds Python objects other than tensors and plain "
                         f"data, which could run code when loaded ({detail}). csrip checkpoints never do; "
                         "a last.pt of csrip before format version 2 cannot be resumed (start over with "
                         "--force)") from None
    except Exception as e:  # truncated file, not a torch file at all
        raise CSRIPError(f"{path} is not a readable checkpoint ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:160] if str(e) else ''})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CSRIPError(f"{path} is not a csrip checkpoint (no 'format': 'csrip' marker); "
                         "use a file written by `csrip train-sr` or `csrip train-recognizers`")
    version = ckpt.get("version")
    if not isinstance(version, int) or version < MIN_VERSION:
        raise CSRIPError(f"{path} has an unknown checkpoint format version {version!r}; this csrip reads "
                         f"versions {MIN_VERSION} to {VERSION}")
    if version > VERSION:
        raise CSRIPError(f"{path} was written by a newer csrip (checkpoint format version {version}; this "
                         f"csrip reads up to {VERSION}); update csrip (git pull; make venv) to load it")
    if kind is not None and ckpt.get("kind") != kind:
        raise CSRIPError(f"{path} holds a {ckpt.get('kind')!r} model, expected {kind!r}")
    return ckpt


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`state` with the DDP "module." and torch.compile "_orig_mod." prefixes dropped from its keys."""
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state.items()}


def load_weights(model: torch.nn.Module, ckpt: dict[str, Any], path: str | Path) -> torch.nn.Module:
    """Put a checkpoint's "model" weights (`clean_state_dict`) into `model`; CSRIPError when they do
    not fit the architecture its config describes."""
    try:
        model.load_state_dict(clean_state_dict(ckpt["model"]))
    except (RuntimeError, KeyError, TypeError) as e:
        raise CSRIPError(f"{path}: the weights do not fit the model its config describes (edited or "
                         f"mixed-up file?): {str(e).splitlines()[0][:200]}") from None
    return model
