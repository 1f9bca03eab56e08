"""SRCNN (Dong, Loy, He, Tang, "Learning a deep convolutional network for image super-resolution",
ECCV 2014; paper ref. [9]), a Table 1 competitor (Sec. 4.2).

Three convolutions on the bicubic upscale (192 px): 9x9 (n1) - ReLU - 1x1 (n2) - ReLU - 5x5 to RGB,
trained with MSE. Where ours differs: "same" padding (the original trains on unpadded patches and
crops the border), RGB instead of the Y channel, Adam with the shared schedule instead of SGD, the
clipping layer on the output, and in the quick size a bicubic skip (models/common.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import ToRGB, bicubic_up, check_lr, init_weights, no_scales


@dataclass
class SRCNNConfig:
    n1: int = 64  # 9x9 feature extraction (the paper's 9-1-5 network)
    n2: int = 32  # 1x1 non-linear mapping
    global_skip: bool = False  # not in SRCNN: predict the detail on top of bicubic (quick size)

    @classmethod
    def preset(cls, name: str) -> "SRCNNConfig":
        return cls(16, 8, global_skip=True) if name in ("tiny", "quick") else cls()


class SRCNN(nn.Module):
    """model(lr 24 px) -> N x 3 x 192 x 192 in [0, 1]."""

    def __init__(self, cfg: SRCNNConfig = SRCNNConfig()):
        super().__init__()
        self.cfg = cfg
        self.body = nn.Sequential(nn.Conv2d(3, cfg.n1, 9, padding=4), nn.ReLU(inplace=True),
                                  nn.Conv2d(cfg.n1, cfg.n2, 1), nn.ReLU(inplace=True))
        self.out = ToRGB(cfg.n2, 5)
        init_weights(self, cfg.global_skip)

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor:
        no_scales(all_scales, "SRCNN")
        check_lr(lr)
        up = bicubic_up(lr)
        return self.out(self.body(up), up if self.cfg.global_skip else None)
