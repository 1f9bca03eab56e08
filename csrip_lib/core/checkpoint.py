"""Checkpoints: atomic save, safe validated load, and the one check before a model is built from one.

A csrip checkpoint is a dict saved with `torch.save`:
    {"format": "csrip", "version": 2, "kind": "sr" | "recognizer" | ...,
     "config": {...},            # asdict() of the configs that built the model (see config.py)
     "model": state_dict, ...}   # plus optimizer/scheduler/step/rng state written by train.py
Everything in it is tensors and plain Python data (dicts, lists, tuples, str, numbers, None), so it
is read with `torch.load(weights_only=True)`: a file from a stranger cannot run code when loaded
(a pickled object with a `__reduce__` payload is refused, `CSRIPError`).
Format versions: 1 stored the numpy RNG state of `last.pt` as a numpy array (not loadable safely);
2 stores it as plain data. Files of a newer version than this code knows are refused with a message.

A loaded file is validated before anything uses it (`load_checkpoint`): a dict "config", a "model" of
named tensors whose floating-point values are all finite (NaN or Inf weights only ever give black
images), and plain data of bounded size (a pickle can share one list many times over, which a repr or
a comparison then walks exponentially). A model is built from it by `restore` only: first on the meta
device (no memory), stopped as soon as it would hold more tensors or values than the file does, and
compared with the file's weights tensor by tensor, so an edited config (negative or huge channel
counts) is a one-line error, never a multi-GB allocation or a traceback.

Writes go to a temporary file in the same folder and are renamed into place (`atomic_write`), so a
killed run or a full disk never leaves a half-written checkpoint, and files get the umask's
permissions (0644 under umask 022), not the temporary file's 0600.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn
from torch.nn.modules import module as nn_module

from .config import from_dict
from .console import CSRIPError, describe_os_error

FORMAT, VERSION = "csrip", 2
MIN_VERSION = 1  # the oldest format whose model weights this code reads
MAX_PLAIN_ITEMS = 1_000_000  # values in a checkpoint's plain data, counted as often as they are reached
MAX_STRING = 4096  # characters of any string in a checkpoint (names, paths, descriptions)
MAX_TENSOR_BYTES = 2 << 30  # tensor data a checkpoint declares (the paper-size models need < 100 MB)
MAX_MODEL_VALUES = MAX_TENSOR_BYTES // 4  # values of a model's weights, counted by shape (a view can be huge)
TRAINING_STATE = ("state", "optimizer", "scheduler")  # what train.py's last.pt adds to a model checkpoint


# ------------------------------------------------------------------------------------------ writing
def umask() -> int:
    """The process's file-creation mask (read by setting it, then restoring it at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write file `path` through `write(f)`: into a temporary file in the same folder, renamed into place.

    A failure (full disk, killed process) leaves an existing file at `path` as it was; a symbolic link
    at `path` is replaced, never written through. Errors are one-line CSRIPErrors: torch.save reports a
    full disk as a RuntimeError ("unexpected pos"), so any exception of `write` is a failed write.
    """
    tmp = staged(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Path(path)


def staged(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """The temporary file (in `path`'s folder, flushed to disk) that `write(f)` filled, for the caller to
    rename onto `path`; on any failure nothing is left and the error is a one-line CSRIPError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide the file from everyone else
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if not isinstance(e, Exception):  # KeyboardInterrupt, SystemExit
            raise
        full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or "unexpected pos" in str(e)
        why = describe_os_error(e) if isinstance(e, OSError) else " ".join(str(e).split())[:160]
        kept = f"the earlier {path.name} is unchanged" if os.path.lexists(path) else "no file was left behind"
        raise CSRIPError(f"could not write {path}: {'the disk is full (' + why + ')' if full else why}; "
                         f"{kept}") from None
    return Path(tmp)


def save_checkpoint(state: dict[str, Any], path: str | Path, kind: str) -> Path:
    """Atomically write `state` (must contain "model" and "config") as a csrip checkpoint."""
    missing = {"model", "config"} - state.keys()
    if missing:
        raise ValueError(f"checkpoint state is missing {sorted(missing)}")
    payload = {"format": FORMAT, "version": VERSION, "kind": kind, **state}
    return atomic_write(path, lambda f: torch.save(payload, f))


# ------------------------------------------------------------------------------------------ loading
def _unpickling_error(path: Path, e: pickle.UnpicklingError) -> CSRIPError:
    """weights_only refused an object that could run code, or the pickle is simply damaged: say which."""
    detail = " ".join(str(e).split())
    detail = detail.split("WeightsUnpickler error:")[-1].split("Check the documentation")[0].strip()[:160]
    if any(w in detail for w in ("GLOBAL", "Can only create", "Can only build", "persistent_load")):
        return CSRIPError(f"refused to load {path}: it holds Python objects other than tensors and plain "
                          f"data, which could run code when loaded ({detail}). csrip checkpoints never do; "
                          "a last.pt of csrip before format version 2 cannot be resumed (start over with "
                          "--force)")
    return CSRIPError(f"{path} is not a readable checkpoint: its data is damaged ({detail}); nothing in it "
                      "was run. Restore it from a copy, or retrain")


def _plain_items(value: Any, limit: int = MAX_PLAIN_ITEMS) -> int:
    """How many values a repr of `value` would visit (tensors count as one); stops past `limit`, and
    returns more than `limit` for a string longer than MAX_STRING."""
    count, todo = 0, [value]
    while todo and count <= limit:
        v = todo.pop()
        count += 1
        if isinstance(v, str) and len(v) > MAX_STRING:
            return limit + 1
        if isinstance(v, dict):
            todo.extend(v.keys())
            todo.extend(v.values())
        elif isinstance(v, list | tuple | set):
            todo.extend(v)
    return count


def _check_structure(path: Path, ckpt: dict[str, Any]) -> None:
    """A config dict, a model of named finite tensors, plain data of bounded size; else CSRIPError."""
    if not isinstance(ckpt.get("config"), dict):
        raise CSRIPError(f"{path}: its 'config' is a {type(ckpt.get('config')).__name__}, expected a dict of "
                         "settings (edited or damaged file?)")
    model = ckpt.get("model")
    if not isinstance(model, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in model.items()):
        raise CSRIPError(f"{path}: its 'model' is not a dict of named tensors (edited or damaged file?)")
    values = sum(t.numel() for t in model.values())
    if values > MAX_MODEL_VALUES:
        raise CSRIPError(f"{path}: its weights declare {values:,} values, more than any csrip model "
                         f"({MAX_MODEL_VALUES:,}); an edited file? refused before reading them")
    for key, t in model.items():
        if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all()):
            raise CSRIPError(f"{path}: weight {key} holds NaN or infinite values, so the model cannot produce "
                             "images (a diverged or damaged run?); use another checkpoint")
    if _plain_items(ckpt) > MAX_PLAIN_ITEMS:
        raise CSRIPError(f"{path}: its data holds more than {MAX_PLAIN_ITEMS:,} values once shared parts are "
                         f"counted, or a string longer than {MAX_STRING:,} characters (an edited file built to "
                         "exhaust memory?); refused")


def load_checkpoint(path: str | Path, kind: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load (safely: tensors and plain data only) and validate a csrip checkpoint; `kind` (if given)
    must match what was saved. Every problem is a one-line CSRIPError."""
    path = Path(path)
    if path.is_dir():
        raise CSRIPError(f"{path} is a folder; expected a checkpoint file (.pt) such as {path / 'best.pt'}")
    if not path.is_file():
        raise CSRIPError(f"checkpoint not found: {path} (expected a .pt file written by csrip)")
    declared = _declared_bytes(path)
    if declared > MAX_TENSOR_BYTES:
        raise CSRIPError(f"{path} declares {declared / 1e9:.1f} GB of tensor data, more than any csrip checkpoint "
                         f"({MAX_TENSOR_BYTES / 1e9:.1f} GB); refused before loading (an edited file?)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only refused a global, or the pickle is damaged
        raise _unpickling_error(path, e) from None
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
    _check_structure(path, ckpt)
    return ckpt


def _declared_bytes(path: Path) -> int:
    """The tensor data a torch zip file declares (the sizes of its data/ records, read from the zip's
    directory, nothing decompressed); 0 for anything else (torch.load then says what it is)."""
    try:
        with zipfile.ZipFile(path) as z:
            return sum(i.file_size for i in z.infolist() if "/data/" in i.filename)
    except (zipfile.BadZipFile, OSError, ValueError):
        return 0


def read_manifest(path: str | Path) -> dict[str, dict[str, Any]]:
    """The models a checkpoints/manifest.json lists ({name: entry}; {} when there is no manifest).

    Every entry is checked (`_check_entry`): a manifest that is not of this form, or whose paths leave
    its folder, is a one-line CSRIPError, so nothing outside checkpoints/ is ever loaded by name and no
    model is loaded without the SHA-256 of each of its files."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, RecursionError) as e:
        raise CSRIPError(f"{path} is not a csrip model manifest ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:120]})") from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise CSRIPError(f"{path} is not a csrip model manifest: expected a JSON object whose \"models\" maps "
                         "names to entries (restore it with `git checkout checkpoints/manifest.json`)")
    for name, entry in models.items():
        _check_entry(path, name, entry)
    return models


def _check_entry(path: Path, name: str, entry: Any) -> None:
    """A manifest entry: a plain name; "kind" a string; "path" and every key of "files" relative paths inside
    the manifest's folder; each file's SHA-256 (64 hex digits); the model's path among its files (an SR
    file) or above them (a recognizers folder)."""
    def bad(why: str) -> CSRIPError:
        return CSRIPError(f"{path}: entry {str(name)[:60]!r} {why} (edited file? restore it with "
                          "`git checkout checkpoints/manifest.json`)")
    if not _inside(name) or "/" in name:
        raise bad("is not a plain model name")
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
        raise bad("is not an object with a \"kind\"")
    rel, files = entry.get("path"), entry.get("files")
    if not _inside(rel):
        raise bad(f"has path {str(rel)[:80]!r}; expected a relative path inside {path.parent}")
    if not isinstance(files, dict) or not files:
        raise bad("lists no \"files\" with their SHA-256; a model is never loaded unchecked")
    for f, digest in files.items():
        if not _inside(f) or not (isinstance(digest, str) and len(digest) == 64
                                  and all(c in "0123456789abcdef" for c in digest)):
            raise bad(f"lists file {str(f)[:80]!r} with SHA-256 {str(digest)[:70]!r}; expected a relative path "
                      f"inside {path.parent} and 64 hex digits")
    if rel not in files and not all(f.startswith(rel + "/") for f in files):
        raise bad(f"has path {rel!r}, but its \"files\" do not cover it")


def _inside(rel: Any) -> bool:
    """`rel` is a relative POSIX path whose every part is a plain, visible name (no "..", no absolute)."""
    return (isinstance(rel, str) and 0 < len(rel) <= 255 and "\0" not in rel and "\\" not in rel
            and all(part and not part.startswith(".") for part in rel.split("/")))


def check_resumable(path: str | Path) -> dict[str, Any]:
    """The last.pt of a training run, with the training state `--resume` continues from; CSRIPError if it
    has none (a best.pt or an exported model copied to last.pt)."""
    ckpt = load_checkpoint(path)
    state = ckpt.get("state")
    if not isinstance(state, dict) or not isinstance(state.get("history", []), list):
        raise CSRIPError(f"cannot resume from {path}: it holds a model but no training state ('state': the "
                         "epoch, optimizer and RNG state that csrip's last.pt has; a copy of best.pt or an "
                         "exported model?). Start over with --force, or choose another folder")
    return ckpt


def checked_config(cls: type, data: Any, path: str | Path, what: str) -> Any:
    """Config dataclass `cls` from a checkpoint's `data`, every field of the type its default has (ints
    >= 0, finite numbers, tuples of the same kind); CSRIPError naming the first bad field."""
    if not isinstance(data, dict):
        raise CSRIPError(f"{path}: its {what} config is a {type(data).__name__}, expected a dict")
    for f in fields(cls):
        default = getattr(cls(), f.name)
        if f.name not in data or default is None or default == ():
            continue  # no default to compare with: from_dict and the model's own checks decide
        value = data[f.name]
        seq = isinstance(default, tuple)
        kinds = {type(d) for d in default} if seq else {type(default)}
        items = list(value) if seq and isinstance(value, list | tuple) else [value]
        if (seq and not isinstance(value, list | tuple)) or not all(_same_kind(v, kinds) for v in items):
            raise CSRIPError(f"{path}: {what} config field {f.name}={value!r:.80} is not a valid value "
                             f"(expected {' or '.join(sorted(k.__name__ for k in kinds))}"
                             f"{' values' if seq else ''}; edited file?)")
    try:
        return from_dict(cls, data)
    except (TypeError, ValueError) as e:  # unknown fields, or a value its __post_init__ refuses
        raise CSRIPError(f"{path}: its {what} config does not describe a csrip model "
                         f"({' '.join(str(e).split())[:160]})") from None


def _same_kind(value: Any, kinds: set[type]) -> bool:
    if type(value) is bool or bool in kinds:
        return type(value) in kinds
    if isinstance(value, int):
        return (int in kinds or float in kinds) and value >= 0
    if isinstance(value, float):
        return float in kinds and math.isfinite(value)
    return type(value) in kinds


def restore(build: Callable[[], nn.Module], ckpt: dict[str, Any], path: str | Path,
            map_location: str | torch.device = "cpu") -> nn.Module:
    """The model `build()` makes from a checkpoint's config, with the checkpoint's weights.

    It is built on the meta device first, stopped as soon as it would hold more tensors or values than
    the file does, and its tensors are compared with the file's weights; only a model that matches is
    built for real. Every mismatch is a one-line CSRIPError."""
    weights = clean_state_dict(ckpt["model"])
    budget = {"tensors": len(weights) + 8, "values": sum(t.numel() for t in weights.values()) + 1}

    def count(module: nn.Module, name: str, tensor: torch.Tensor | None) -> None:
        if tensor is not None:
            budget["tensors"] -= 1
            budget["values"] -= tensor.numel()
            if budget["tensors"] < 0 or budget["values"] < 0:
                raise CSRIPError("the weights do not fit the model its config describes: that model "
                                 "would hold more tensors or values than the file does")

    hooks = [nn_module.register_module_parameter_registration_hook(count),
             nn_module.register_module_buffer_registration_hook(count)]
    try:
        with torch.device("meta"):
            shape = build()
    except CSRIPError as e:
        raise CSRIPError(f"{path}: {e} (edited or mixed-up file?)") from None
    except Exception as e:  # noqa: BLE001 - negative sizes and the like fail in torch with any type
        raise CSRIPError(f"{path}: its config does not describe a model that can be built "
                         f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
    finally:
        for h in hooks:
            h.remove()
    expected = {k: tuple(v.shape) for k, v in shape.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected != found:
        diff = sorted(set(expected.items()) ^ set(found.items()))[0]
        raise CSRIPError(f"{path}: the weights do not fit the model its config describes (edited or mixed-up "
                         f"file?): {diff[0]} {'expected' if diff in expected.items() else 'found'} {diff[1]}")
    return load_weights(build(), ckpt, path).to(map_location)


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a model's weights (names, dtypes, shapes and bytes): the same on every device, clone and
    folder, so runs record the networks they depend on by content, not by path."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


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
