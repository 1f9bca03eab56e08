"""VDSR (Kim, Lee, Lee, "Accurate image super-resolution using very deep convolutional networks",
CVPR 2016; paper ref. [6]), a Table 1 competitor (Sec. 4.2).

`depth` 3x3 convolutions of width `channels` (20 x 64 in the paper) with ReLUs on the bicubic upscale
and a global residual: the network predicts HR - bicubic. MSE loss with gradient clipping
(`TrainConfig.grad_clip`, set by csrip_lib.training.competitors). Where ours differs: Adam with the shared
schedule and norm clipping instead of SGD at lr 0.1 with adjustable value clipping, RGB instead of Y,
the clipping layer on the output, and in the quick size 20 layers of 20 channels (66K parameters, the
quick cascade's size; the paper's 64 channels are 665K).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import ToRGB, bicubic_up, check_lr, init_weights, no_scales


@dataclass
class VDSRConfig:
    depth: int = 20  # convolutions, including the first and the one to RGB
    channels: int = 64

    @classmethod
    def preset(cls, name: str) -> "VDSRConfig":
        return cls(20, 20) if name in ("tiny", "quick") else cls()


class VDSR(nn.Module):
    """model(lr 24 px) -> N x 3 x 192 x 192 in [0, 1]: bicubic + predicted residual."""

    def __init__(self, cfg: VDSRConfig = VDSRConfig()):
        super().__init__()
        if cfg.depth < 2:
            raise ValueError(f"VDSR needs depth >= 2, got {cfg.depth}")
        self.cfg = cfg
        layers: list[nn.Module] = [nn.Conv2d(3, cfg.channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(cfg.depth - 2):
            layers += [nn.Conv2d(cfg.channels, cfg.channels, 3, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.out = ToRGB(cfg.channels, 3)
        init_weights(self, global_skip=True)  # the residual starts at zero: the untrained model is bicubic

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor:
        no_scales(all_scales, "VDSR")
        check_lr(lr)
        up = bicubic_up(lr)
        return self.out(self.body(up), up)
