"""Where commands write: one check of an output folder before any work starts, and the rules of writing.

Every command that writes (`train-sr`, `train-recognizers`, `ablation`, `evaluate --out`,
`hallucinate -o`, `figures`, `csrip data --dest`) calls `check_dir` (and training runs
`check_runs`) first, so an unwritable folder, a file where a folder belongs, or a run that would be
overwritten or lost is a one-line `CSRIPError` before data is loaded, downloaded or trained on.
`check_dir` creates nothing: folders are made when the first file is written.

The rules every write follows, each in one place here:
- `plain_name`: a name a user gives an output (`csrip export --name`) is one plain file name, resolved
  inside the chosen folder: never empty, ".", "..", a path or absolute.
- `checkpoint.atomic_write`: a file is written to a temporary file in its folder and renamed into place, so a
  killed or failed write (full disk) leaves the old file, and a symbolic link at the name is replaced,
  never written through; the new file gets the permissions the umask gives (0644 under umask 022).
- `write_output` / `write_outputs`: an existing entry at an output name (a dangling symbolic link
  included) is kept unless `force`; `check_outputs` is that check made before the work. `write_outputs`
  writes several files as one: every name is checked, then all are written to temporary files, then
  renamed in order (the last, e.g. a result's JSON sidecar, last), so a failed write changes none of them.
  Every file a command writes (results, evaluate's CSVs, ablation tables, executed notebooks, exports,
  rendered documents) goes through these.
- `locked`: a shared file that several processes update (checkpoints/manifest.json) is read, changed
  and written under an exclusive `fcntl.flock` on its folder, so concurrent updates queue, none is lost.
- Paths: `cli` expands a `~` the shell left (`--out=~/x`) once, for every argument; `check_dir` refuses
  a path that still starts with `~` (a folder literally named "~" is never what was meant).
- `lock_runs`: a run folder is locked (`fcntl.flock` on the folder) by the process that trains in it,
  for the whole of `train.fit`; `check_runs` refuses a folder locked by another process before any data
  is read, and `fit` checks again under its lock, so of two processes started on one folder exactly one
  trains (the other stops with a one-line error) instead of both overwriting each other's files.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .checkpoint import check_resumable, staged
from .console import CSRIPError, describe_os_error

RUN_FILES = ("last.pt", "best.pt", "log.csv")  # what csrip_lib.training.harness.fit writes into a run folder
_LOCKS: dict[Path, int] = {}  # run folder -> open descriptor holding its lock, for this process


def check_dir(path: str | Path, what: str = "output folder") -> Path:
    """`path` if it is, or can be created as, a folder this process can write to; else CSRIPError."""
    path = Path(path)
    if path.parts and path.parts[0].startswith("~"):
        raise CSRIPError(f"{what} {path} starts with a literal '~' (not expanded by the shell); "
                         f"write it as {os.path.expanduser(str(path))} or $HOME/...")
    if path.exists() and not path.is_dir():
        raise CSRIPError(f"{what} {path} is a file; expected a folder (it is created if missing)")
    probe = path
    while not probe.exists():  # the nearest existing ancestor is where a new folder would be made
        if probe.is_symlink():
            raise CSRIPError(f"{what} {path}: {probe} is a broken symbolic link")
        probe = probe.parent
    if not probe.is_dir():
        raise CSRIPError(f"{what} {path} cannot be created: {probe} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise CSRIPError(f"{what} {path} is not writable ({describe_os_error(e)}); "
                         "choose another folder or fix its permissions") from None
    return path


def plain_name(name: str, what: str = "name") -> str:
    """`name` if it is one plain file name (no folder part, not "." or "..", not hidden); else CSRIPError."""
    if (not isinstance(name, str) or not name.strip() or name != os.path.basename(name) or "\0" in name
            or name.startswith(".") or os.sep in name or (os.altsep and os.altsep in name)):
        raise CSRIPError(f"{what} {name!r} is not a plain name: expected letters, digits, '-', '_' "
                         "(e.g. csrip-quick), without a folder part; it names a file inside the chosen folder")
    return name


def check_outputs(paths: Sequence[str | Path], force: bool = False) -> None:
    """CSRIPError if any of `paths` exists (a dangling symbolic link included) and not `force`; also
    made before a long computation, so that it never ends in a refusal."""
    held = [str(p) for p in paths if os.path.lexists(p)]
    if held and not force:
        raise CSRIPError(f"{', '.join(held)} {'exists' if len(held) == 1 else 'exist'}; pass --force to replace "
                         f"{'it' if len(held) == 1 else 'them'}")


def write_output(path: str | Path, data: bytes, force: bool = False) -> Path:
    """Write `data` to output file `path` (atomically); an existing entry there, even a dangling symbolic
    link, is an error unless `force`, which replaces it (the link itself, never its target)."""
    return write_outputs({Path(path): data}, force)[0]


def write_outputs(files: dict[Path, bytes], force: bool = False) -> list[Path]:
    """Write several output files as one (see the module docstring): checked, staged, then renamed in
    order; a failure before the renames leaves every old file as it was."""
    check_outputs(list(files), force)
    staging: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            staging.append((staged(path, lambda f, d=data: f.write(d)), Path(path)))
        for tmp, path in staging:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staging:
            tmp.unlink(missing_ok=True)
    return [Path(p) for p in files]


def check_runs(runs: Sequence[str | Path], *, resume: bool, force: bool, strict_resume: bool = True) -> None:
    """The training-run check, for every run folder a command will write, before training any of them.

    - a run (last.pt, best.pt or log.csv) exists and neither `resume` nor `force`: error;
    - `resume` where a run has best.pt or log.csv but no last.pt: error, since it cannot continue
      exactly and starting over would replace the trained model (use `force` to do that);
    - `resume` with no last.pt anywhere: error if `strict_resume` (the `--resume` flag: nothing to
      resume, probably a wrong folder), else the caller starts new runs (continue-or-start helpers);
    - `resume` of a last.pt without training state (`checkpoint.check_resumable`): error;
    - another process trains in one of them (holds its `lock_runs` lock): error.
    """
    runs = [check_dir(r, "run folder") for r in runs]
    _check_held(runs, resume, force, strict_resume)
    with lock_runs(runs):  # refused now if another process trains there (fit holds the lock for the run)
        _check_held(runs, resume, force, strict_resume)  # what it wrote before we looked
    if resume:
        for last in (r / "last.pt" for r in runs if (r / "last.pt").exists()):
            check_resumable(last)  # a best.pt or an exported model copied to last.pt: say so now


def _check_held(runs: list[Path], resume: bool, force: bool, strict_resume: bool) -> None:
    held = [r for r in runs if any(os.path.lexists(r / f) for f in RUN_FILES)]
    if held and not (resume or force):
        holds = "already holds a training run" if len(held) == 1 else "already hold training runs"
        raise CSRIPError(f"{', '.join(map(str, held))} {holds}; pass --resume "
                         "(resume=True) to continue it or --force (force=True) to start over")
    if resume and not force:
        stranded = [r for r in held if not (r / "last.pt").exists()]
        if stranded:
            kept = ", ".join(f.name for f in (stranded[0] / n for n in RUN_FILES) if f.exists())
            raise CSRIPError(f"cannot resume {stranded[0]}: it has {kept} but no last.pt, so the run cannot "
                             "continue exactly; nothing was changed. Restore last.pt, or start over with "
                             "--force (replaces best.pt and log.csv), or choose another folder")
        if strict_resume and not any((r / "last.pt").exists() for r in runs):
            raise CSRIPError(f"nothing to resume in {', '.join(map(str, runs))}: no last.pt there (wrong "
                             "folder?); drop --resume to start a new run")


@contextlib.contextmanager
def locked(folder: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (waiting for another process that holds it) while the block runs:
    for a read-modify-write of a file in it that other processes update too."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def lock_runs(runs: Sequence[str | Path]) -> Iterator[None]:
    """Hold an exclusive lock (`fcntl.flock`) on every run folder (created if missing) while the block runs;
    CSRIPError at once if another process holds one. Re-entrant: folders this process has locked already
    stay locked until their outer block ends. Under torchrun only rank 0 locks (for its process group)."""
    taken: list[Path] = []
    try:
        for run in map(Path, runs if int(os.environ.get("RANK", "0")) == 0 else []):
            key = run.resolve()
            if key in _LOCKS:
                continue
            run.mkdir(parents=True, exist_ok=True)
            fd = os.open(run, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise CSRIPError(f"{run} is in use: another csrip process is training in it right now; wait "
                                 "for it to finish, or choose another folder") from None
            _LOCKS[key] = fd
            taken.append(key)
        yield
    finally:
        for key in taken:
            os.close(_LOCKS.pop(key))  # closing the descriptor releases the lock
