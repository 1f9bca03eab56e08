"""URDGN (Yu and Porikli, "Ultra-resolving face images by discriminative generative networks", ECCV
2016; paper ref. [32]), a Table 1 competitor (Sec. 4.2).

Generator: a deconvolutional network on the 24 px face: a conv stem, then three stride-2 transposed
convolutions (4x4) with BN + ReLU, each doubling the size and halving the width (24 -> 48 -> 96 -> 192,
8x), then a 5x5 conv to RGB. Discriminator: strided 4x4 convs with BN + LReLU down to a logit. Loss:
pixel MSE + adv_weight x adversarial, as the paper's "pixel-wise L2 + discriminative" objective.

Where ours differs: 24 -> 192 px (the original is 16 -> 128 px, also 8x), the clipping layer on the
output, Adam with the shared schedule instead of RMSprop, global average pooling in the discriminator,
and in the quick size a generator of width 80 (71K parameters, within 25% of the quick cascade's 66K)
and a narrower discriminator, with a bicubic skip (models/common.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import ToRGB, bicubic_up, check_lr, init_weights, no_scales
from .srgan import GAN


@dataclass
class URDGNConfig:
    channels: int = 512  # generator width at 24 px, halved at each 2x step
    d_channels: tuple[int, ...] = (64, 128, 256, 512)  # discriminator widths, stride 2 each
    adv_weight: float = 1e-2
    global_skip: bool = False

    @classmethod
    def preset(cls, name: str) -> "URDGNConfig":
        return cls(80, (16, 32, 64, 64), global_skip=True) if name in ("tiny", "quick") else cls()


class URDGNGenerator(nn.Module):
    def __init__(self, cfg: URDGNConfig):
        super().__init__()
        self.cfg, c = cfg, cfg.channels
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
        for _ in range(3):
            layers += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1), nn.BatchNorm2d(c // 2),
                       nn.ReLU(inplace=True)]
            c //= 2
        self.body = nn.Sequential(*layers)
        self.out = ToRGB(c, 5)
        init_weights(self, cfg.global_skip)

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor:
        no_scales(all_scales, "URDGN")
        check_lr(lr)
        return self.out(self.body(lr), bicubic_up(lr) if self.cfg.global_skip else None)


class URDGNDiscriminator(nn.Module):
    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, c in enumerate(channels):
            layers += [nn.Conv2d(cin, c, 4, stride=2, padding=1),
                       nn.BatchNorm2d(c) if i else nn.Identity(), nn.LeakyReLU(0.2, inplace=True)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, 1)
        init_weights(self, global_skip=False, negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3))).squeeze(1)


class URDGN(GAN):
    def __init__(self, cfg: URDGNConfig = URDGNConfig()):
        if cfg.channels % 8:
            raise ValueError(f"URDGN's width must be divisible by 8 (halved three times), got {cfg.channels}")
        super().__init__(URDGNGenerator(cfg), URDGNDiscriminator(tuple(cfg.d_channels)))
        self.cfg = cfg
