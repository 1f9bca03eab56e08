"""Shipped pretrained models: `checkpoints/`, their names, checksums and the export that makes them.

    from csrip_lib.models import zoo
    zoo.available()                      # ["c-srip-quick", "csrip-quick", ...]
    zoo.resolve("csrip-quick")           # -> checkpoints/csrip-quick.pt, SHA-256 checked
    zoo.resolve("runs/sr/best.pt")       # a path is returned as is (it must exist)
    zoo.resolve(None)                    # the default SR model (DEFAULT_SR), saying which
    csrip export runs/sr/best.pt --name csrip-quick --description "..."   # (re)make a shipped file

checkpoints/manifest.json is the registry: for every name its kind ("sr": one SR checkpoint for
`load_sr`; "recognizers": a folder laid out as `csrip train-recognizers` writes it, rec48/ rec96/
rec192/ best.pt, for `load_recognizers` and `--recognizers`), its files with their SHA-256, and a
one-line description. checkpoints/MODEL_CARD.md documents each model (data, degradation, command,
scores, limits) and repeats the checksums; tests/test_zoo.py checks that the two agree.

A shipped file is an *exported* checkpoint: the csrip checkpoint format (see checkpoint.py) with the
model weights, the configs that built them, the training metrics of the kept epoch and the training
identities, without optimizer, scheduler or RNG state, so it is small and loads with
`torch.load(weights_only=True)` (only tensors and plain Python values).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ..core.checkpoint import atomic_write, clean_state_dict, load_checkpoint, read_manifest, save_checkpoint
from ..core.config import SCALES
from ..core.console import CSRIPError
from ..core.outputs import check_dir, locked, plain_name

CHECKPOINTS_DIR = Path(__file__).resolve().parents[2] / "checkpoints"
MANIFEST = "manifest.json"
DEFAULT_SR = "csrip-base"
# Table 2's quick shipped pair, alpha 0 then 0.001 (tutorial.tour.shipped_pair("quick") names them from the
# ablation's naming rule; tests/test_figures.py checks the two agree): `csrip figures` draws Fig. 9 from it.
ABLATION_PAIR = ("c-ssim-m-quick", "c-srip-quick")
KINDS = {"sr": "one SR checkpoint (csrip train-sr)",
         "recognizers": "a folder of three recognizers (csrip train-recognizers)"}
# What an exported checkpoint drops of a training checkpoint (train.py's resume state).
TRAINING_ONLY_KEYS = ("optimizer", "scheduler", "state")


def _root(root: str | Path | None) -> Path:
    return Path(root) if root is not None else CHECKPOINTS_DIR


def manifest(root: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """{name: {"kind", "path", "files": {relative path: sha256}, "description"}} of checkpoints/."""
    return read_manifest(_root(root) / MANIFEST)


def available(kind: str | None = None, root: str | Path | None = None) -> list[str]:
    """Names of the shipped models (of one kind, if given), sorted."""
    return sorted(n for n, e in manifest(root).items() if kind is None or e["kind"] == kind)


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(name: str, entry: dict[str, Any], root: Path) -> None:
    """Every file of a shipped model exists and has its recorded SHA-256."""
    for rel, expected in entry["files"].items():
        path = root / rel
        if not path.is_file():
            raise CSRIPError(f"shipped model {name!r} is incomplete: {path} is missing "
                             "(restore it with `git checkout checkpoints/`)")
        got = sha256(path)
        if got != expected:
            raise CSRIPError(f"checksum mismatch for shipped model {name!r}: {path} has SHA-256 {got[:16]}..., "
                             f"the manifest records {expected[:16]}...; the file is corrupted or was "
                             "changed (restore it with `git checkout checkpoints/`, or regenerate it as "
                             "docs/pretrained.md says)")


def resolve(name_or_path: str | Path | None, kind: str = "sr", root: str | Path | None = None) -> Path:
    """The file (kind "sr") or folder (kind "recognizers") a checkpoint argument means.

    None: the default shipped SR model (one line says which). A shipped name: its path in
    checkpoints/, after checking every file's SHA-256 (CSRIPError "checksum mismatch" if one differs).
    Anything else is a path and is returned as is; it must exist. Names win over same-named paths.
    """
    root = _root(root)
    if name_or_path is None:
        if kind != "sr":
            raise CSRIPError(f"no default {kind} model; choose one of {available(kind, root) or 'none shipped'}")
        name_or_path = DEFAULT_SR
        models = manifest(root)
        if DEFAULT_SR in models:
            print(f"using the shipped SR model {DEFAULT_SR!r} ({root / models[DEFAULT_SR]['path']}); "
                  "pass --checkpoint NAME_OR_PATH to choose another")
    models = manifest(root)
    if isinstance(name_or_path, str) and name_or_path in models:
        entry = models[name_or_path]
        if entry["kind"] != kind:
            raise CSRIPError(f"{name_or_path!r} is a shipped {entry['kind']} model, expected {kind}; "
                             f"shipped {kind} models: {', '.join(available(kind, root)) or 'none'}")
        _verify(name_or_path, entry, root)
        return root / entry["path"]
    path = Path(name_or_path)
    if path.exists():
        return path
    looks_like_path = path.suffix or len(path.parts) > 1
    if looks_like_path:
        raise CSRIPError(f"checkpoint not found: {path} (expected a .pt file written by csrip, or a "
                         f"shipped name: {', '.join(available(kind, root)) or 'none shipped'})")
    raise CSRIPError(f"unknown model {str(name_or_path)!r}: neither a file nor a shipped name; available "
                     f"{kind} models: {', '.join(available(kind, root)) or 'none (checkpoints/manifest.json is missing)'}")


# ------------------------------------------------------------------------------------------ export
def export_checkpoint(src: str | Path, dst: str | Path, kind: str, name: str | None = None) -> Path:
    """Write the inference-only copy of training checkpoint `src` to `dst` (see module docstring).

    `name` becomes config["name"], the model's name in `csrip evaluate` tables and figures.
    """
    ckpt = load_checkpoint(src, kind=kind)
    state = {k: v for k, v in ckpt.items() if k not in (*TRAINING_ONLY_KEYS, "format", "version", "kind")}
    state["model"] = {k: v.detach().cpu().clone() for k, v in clean_state_dict(state["model"]).items()}
    if name is not None:
        state["config"] = {**state["config"], "name": name}
    return save_checkpoint(state, dst, kind)


def export(src: str | Path, name: str, kind: str = "sr", description: str = "",
           root: str | Path | None = None, force: bool = False, **provenance: str) -> dict[str, Any]:
    """Export a training run as shipped model `name` into checkpoints/ and record it in the manifest.

    kind "sr": src is a checkpoint (runs/Y/best.pt) -> checkpoints/<name>.pt.
    kind "recognizers": src is a `csrip train-recognizers` folder -> checkpoints/<name>/rec{48,96,192}/best.pt
    (and its accuracy.csv, if any). Returns the manifest entry, which also records `provenance`
    (e.g. command="csrip reproduce table1 ...", result="table1", configuration="SRCNN").
    `name` is a plain name (`outputs.plain_name`): everything is written inside `root`. Anything already
    at `<root>/<name>[.pt]` (a shipped model, another file or folder, a symbolic link) is replaced only
    with `force`. The new files are written beside it first and swapped in only when all are written,
    so a failed export changes nothing: neither the old files nor the manifest.
    """
    if kind not in KINDS:
        raise CSRIPError(f"unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    name = plain_name(name, "shipped model name")
    root, src = check_dir(_root(root), "checkpoints folder"), Path(src)
    if not src.exists():
        raise CSRIPError(f"{src} not found (expected {KINDS[kind]})")
    rel = f"{name}.pt" if kind == "sr" else name
    target = root / rel
    shipped = manifest(root)  # a damaged manifest is refused before any work, --force or not
    if not force and (name in shipped or os.path.lexists(target)):
        what = f"ships {name!r}" if name in shipped else f"already has {target}"
        raise CSRIPError(f"{root} {what}; pass --force to replace it")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.export.", dir=root))
    try:
        if kind == "sr":
            files = [export_checkpoint(src, staging / rel, "sr", name)]
        else:
            files = [export_checkpoint(src / f"rec{s}" / "best.pt", staging / rel / f"rec{s}" / "best.pt",
                                       "recognizer") for s in SCALES]
            if (src / "accuracy.csv").is_file():
                files.append(Path(shutil.copyfile(src / "accuracy.csv", staging / rel / "accuracy.csv")))
        entry = {"kind": kind, "path": rel, "description": description, **provenance,
                 "files": {f.relative_to(staging).as_posix(): sha256(f) for f in files}}
        with locked(root):  # of concurrent exports into one root, each entry is recorded (none lost)
            _swap_in(staging / rel, target, staging / ".replaced", root / MANIFEST, name, entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return entry


def _swap_in(new: Path, target: Path, aside: Path, manifest_path: Path, name: str, entry: dict[str, Any]) -> None:
    """Move `new` to `target` (what was there goes `aside`) and record `entry` in the manifest; if the
    manifest cannot be written, the old `target` is put back."""
    data = {"format": 1, "models": dict(sorted({**read_manifest(manifest_path), name: entry}.items()))}
    if os.path.lexists(target):
        os.replace(target, aside)
    os.replace(new, target)
    try:
        atomic_write(manifest_path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))
    except BaseException:
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        if os.path.lexists(aside):
            os.replace(aside, target)
        raise


# ---------------------------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", type=Path, help="best.pt of `csrip train-sr`, or a `csrip train-recognizers` folder")
    p.add_argument("--name", required=True, help="shipped name, e.g. csrip-quick")
    p.add_argument("--kind", choices=sorted(KINDS), default="sr", help="what src holds (default: sr)")
    p.add_argument("--description", default="", help="one line for the manifest")
    p.add_argument("--trained-by", default=None, metavar="COMMAND", help="the command that trained src, recorded "
                   "in the manifest as its \"command\"")
    p.add_argument("--dest", type=Path, default=None, help=f"checkpoints folder (default: {CHECKPOINTS_DIR})")
    p.add_argument("--force", action="store_true", help="replace a shipped model of the same name")


def run(args: argparse.Namespace) -> int:
    provenance = {"command": args.trained_by} if args.trained_by else {}
    entry = export(args.src, args.name, args.kind, args.description, args.dest, force=args.force, **provenance)
    root = _root(args.dest)
    for rel, digest in entry["files"].items():
        print(f"{root / rel}  {(root / rel).stat().st_size / 1e6:.2f} MB  sha256 {digest}")
    print(f"recorded {args.name!r} in {root / MANIFEST}; copy the SHA-256 into checkpoints/MODEL_CARD.md")
    return 0
