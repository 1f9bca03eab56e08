"""What a user sees on the terminal: one-line errors, argument types, progress bars.

- `CSRIPError`: a problem the user can fix; `describe_os_error` words a file-system error in one line.
- argparse types for numeric options: a bad number is a usage error (exit 2) before any work starts
  (`--epochs 0`, `--alpha nan`, `--sigma -1` are refused with one line naming what is accepted).
- `tqdm`: plain-text progress bars everywhere, also inside Jupyter (`tqdm.auto` would draw an ipywidgets
  bar, a dead widget once the notebook is saved and reopened; a text bar leaves its final line in the
  saved output). In a kernel it writes to stdout, refreshes at most twice a second and has a fixed width.
"""
from __future__ import annotations

import argparse
import errno
import math
import os
import shlex
import sys
from pathlib import Path

from tqdm.std import tqdm as _text_tqdm


class CSRIPError(Exception):
    """A problem the user can fix; the message says what was expected and what to do."""


def command_line() -> str:
    """This process's command line as a user would type it (what provenance records): `csrip ...` for the
    command line, else the interpreter's arguments (a script, a notebook kernel, pytest)."""
    argv = sys.argv or [""]
    if Path(argv[0]).name in ("csrip", "__main__.py"):
        return shlex.join(["csrip", *argv[1:]])
    return shlex.join(["python", *argv])


def describe_os_error(e: OSError) -> str:
    """One line for a file-system error: what went wrong and on which path(s), no traceback.

    The one place that words OSErrors for users: `csrip` turns any OSError that reaches it into
    "csrip <command>: error: <this>", and data listing uses it for the files it skips."""
    what = e.strerror or (errno.errorcode.get(e.errno, "") if e.errno else "") or type(e).__name__
    paths = [os.fsdecode(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{what}: {' -> '.join(paths)}" if paths else f"{what} ({e})" if str(e) != what else what


def printable(text: object, limit: int = 120) -> str:
    """`text` safe to print on one terminal line: control characters (newlines, ANSI escapes) and bytes
    that are not UTF-8 as backslash escapes, at most `limit` characters (a longer name ends in "...")."""
    text = str(text)
    short = text[:limit]
    safe = "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in short)
    return safe + ("..." if len(text) > limit else "")


def _number(text: str, kind: type, minimum: float, strict: bool) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                         f"got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    if value < minimum or (strict and value == minimum):
        raise argparse.ArgumentTypeError(f"expected a number {'>' if strict else '>='} {minimum:g}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (epochs, steps, batch sizes, image counts)."""
    return _number(text, int, 0, strict=True)


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (worker processes; counts where 0 means "no check")."""
    return _number(text, int, 0, strict=False)


def positive_float(text: str) -> float:
    """A finite number > 0."""
    return _number(text, float, 0.0, strict=True)


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (alpha: 0 switches the identity prior off; sigma: 0 is no blur)."""
    return _number(text, float, 0.0, strict=False)


NOTEBOOK_COLUMNS = 100


def in_kernel() -> bool:
    """True inside a Jupyter (ipykernel) process, whose stdout is a message stream, not a terminal."""
    return type(sys.stdout).__module__.startswith("ipykernel")


class tqdm(_text_tqdm):  # noqa: N801 (a drop-in for tqdm.tqdm)
    """tqdm's text bar with notebook-friendly defaults when running in a kernel."""

    def __init__(self, *args, **kwargs):
        if in_kernel():
            kwargs.setdefault("file", sys.stdout)
            kwargs.setdefault("ncols", NOTEBOOK_COLUMNS)
            kwargs.setdefault("mininterval", 0.5)
        super().__init__(*args, **kwargs)
