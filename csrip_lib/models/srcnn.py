"""SRCNN (Dong, Loy, He, Tang, "Learning a deep convolutional network for image super-resolution",
ECCV 2014; paper ref. [9]), a Table 1 competitor (Sec. 4.2).

Three convolutions on the bicubic upscale (192 px): 9x9 (n1) - ReLU - f2 x f2 (n2) - ReLU - 5x5 to RGB,
trained with MSE. Both presets build the 9-5-5 network with n1 = 64, n2 = 32 (the paper's widths; its
Y-channel network has 57K parameters, ours on RGB 69K, within 25% of the quick cascade's 66K);
`SRCNNConfig()`'s f2 = 1 is the ECCV paper's base 9-1-5, and what checkpoints written before f2
existed hold. Where ours differs: "same" padding (the original trains on unpadded patches and crops
the border), RGB instead of the Y channel, Adam with the shared schedule instead of SGD, the clipping
layer on the output, and in the quick size a bicubic skip (models/common.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import ToRGB, bicubic_up, check_lr, init_weights, no_scales


@dataclass
class SRCNNConfig:
    n1: int = 64  # 9x9 feature extraction (the paper's 9-1-5 network)
    n2: int = 32  # f2 x f2 non-linear mapping
    global_skip: bool = False  # not in SRCNN: predict the detail on top of bicubic (quick size)
    f2: int = 1  # kernel of the mapping layer: 1 (9-1-5) or 5 (9-5-5)

    @classmethod
    def preset(cls, name: str) -> "SRCNNConfig":
        return cls(64, 32, global_skip=name in ("tiny", "quick"), f2=5)


class SRCNN(nn.Module):
    """model(lr 24 px) -> N x 3 x 192 x 192 in [0, 1]."""

    def __init__(self, cfg: SRCNNConfig = SRCNNConfig()):
        super().__init__()
        self.cfg = cfg
        self.body = nn.Sequential(nn.Conv2d(3, cfg.n1, 9, padding=4), nn.ReLU(inplace=True),
                                  nn.Conv2d(cfg.n1, cfg.n2, cfg.f2, padding=cfg.f2 // 2), nn.ReLU(inplace=True))
        self.out = ToRGB(cfg.n2, 5)
        init_weights(self, cfg.global_skip)

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor:
        no_scales(all_scales, "SRCNN")
        check_lr(lr)
        up = bicubic_up(lr)
        return self.out(self.body(up), up if self.cfg.global_skip else None)
