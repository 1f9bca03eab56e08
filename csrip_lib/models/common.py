"""Pieces the competitor models of Table 1 share (srcnn, vdsr, srgan, urdgn).

The RGB output layer is C-SRIP's `ToRGB` (sr.py): a conv to 3 channels, the optional bicubic skip and
the clipping layer (straight-through in training), so every model's output is in [0, 1] like C-SRIP's.

Quick sizes start at bicubic (`global_skip`, a zero output conv) exactly as C-SRIP's `quick` preset
does (sr.py "Global skip"): a network trained for two CPU minutes from scratch is far below bicubic,
and the table would then compare training budgets, not models. Quick sizes have the quick cascade's
parameter count within +-25% (66K; each model's `preset`, tested in tests/test_competitors.py), so
Table 1 compares methods at one size; what a size costs per face differs (a network on the 192 px
bicubic upscale spends far more multiply-adds per parameter than the cascade), and Table 1 shows
parameters, GFLOP per face and training seconds per step beside the scores. Paper sizes follow the
original papers.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..core.config import HR_SIZE
from ..core.runtime import check_lr
from .sr import ToRGB

__all__ = ["ToRGB", "check_lr", "bicubic_up", "init_weights", "no_scales"]


def bicubic_up(lr: torch.Tensor) -> torch.Tensor:
    """The 8x bicubic upscale the pre-upsampling models work on (same call as C-SRIP's skip)."""
    return F.interpolate(lr, size=(HR_SIZE, HR_SIZE), mode="bicubic", align_corners=False)


def no_scales(all_scales: bool, name: str) -> None:
    """Competitors have one output; `all_scales` exists so they fit wherever C-SRIP's models go."""
    if all_scales:
        raise ValueError(f"{name} has no intermediate 2x/4x outputs; call it with all_scales=False")


def init_weights(model: nn.Module, global_skip: bool, negative_slope: float = 0.0) -> None:
    """Kaiming-normal convs; RGB heads at zero with the global skip (the model starts as bicubic),
    else small weights and bias 0.5 (mid-grey, inside the clipping range)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.kaiming_normal_(m.weight, a=negative_slope, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    for m in model.modules():
        if isinstance(m, ToRGB):
            m.conv.weight.data.mul_(0.0 if global_skip else 0.1)
            nn.init.constant_(m.conv.bias, 0.0 if global_skip else 0.5)
