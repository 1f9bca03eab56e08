"""The paper's figures, one function per figure (numbering as in the paper).

Each function returns a matplotlib Figure and, with `save=True`, writes figures/figNN_name.png.
`csrip figures` regenerates all of them from checkpoints without executing notebooks.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .config import figures_dir


def save_figure(fig: plt.Figure, name: str, dpi: int = 150) -> Path:
    """Write `fig` to figures_dir()/name (PNG) and return the path."""
    path = figures_dir() / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def to_image(x: torch.Tensor):
    """C x H x W float tensor in [0, 1] -> H x W x C numpy array for imshow."""
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
