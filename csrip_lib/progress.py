"""Progress bars: plain-text tqdm everywhere, also inside Jupyter.

`tqdm.auto` would draw an ipywidgets bar in a notebook; once the notebook is saved and reopened
that bar is a dead widget ("Error displaying widget: model not found"). A text bar leaves its final
line in the saved output. In a kernel it writes to stdout (no stderr highlighting), refreshes at
most twice a second (short saved streams) and has a fixed width that fits the notebook page.
"""
from __future__ import annotations

import sys

from tqdm.std import tqdm as _text_tqdm

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
