"""Where commands write: one check of an output folder before any work starts.

Every command that writes (`train-sr`, `train-recognizers`, `ablation`, `evaluate --out`,
`hallucinate -o`, `figures`, `csrip data --dest`) calls `check_dir` (and training runs
`check_runs`) first, so an unwritable folder, a file where a folder belongs, or a run that would be
overwritten or lost is a one-line `CSRIPError` before data is loaded, downloaded or trained on.
Nothing is created here: folders are made when the first file is written.
"""
from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from .errors import CSRIPError, describe_os_error

RUN_FILES = ("last.pt", "best.pt", "log.csv")  # what csrip_lib.train.fit writes into a run folder


def check_dir(path: str | Path, what: str = "output folder") -> Path:
    """`path` if it is, or can be created as, a folder this process can write to; else CSRIPError."""
    path = Path(path).expanduser()
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


def check_runs(runs: Sequence[str | Path], *, resume: bool, force: bool, strict_resume: bool = True) -> None:
    """The training-run check, for every run folder a command will write, before training any of them.

    - a run (last.pt, best.pt or log.csv) exists and neither `resume` nor `force`: error;
    - `resume` where a run has best.pt or log.csv but no last.pt: error, since it cannot continue
      exactly and starting over would replace the trained model (use `force` to do that);
    - `resume` with no last.pt anywhere: error if `strict_resume` (the `--resume` flag: nothing to
      resume, probably a wrong folder), else the caller starts new runs (continue-or-start helpers).
    """
    runs = [check_dir(r, "run folder") for r in runs]
    held = [r for r in runs if any((r / f).exists() for f in RUN_FILES)]
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
