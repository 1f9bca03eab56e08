"""argparse types for numeric options: a bad number is a usage error (exit 2) before any work starts.

`--epochs 0`, `--max-steps -1`, `--batch-size 0`, `--workers -1`, `--alpha nan`, `--sigma -1`: each
is refused with one line naming the option and what it accepts, instead of being ignored, silently
changing meaning, or failing with a traceback later.
"""
from __future__ import annotations

import argparse
import math


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
