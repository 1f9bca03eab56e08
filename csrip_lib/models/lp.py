"""lp: the perceptual loss of Johnson, Alahi, Fei-Fei ("Perceptual losses for real-time style transfer
and super-resolution", ECCV 2016; paper ref. [11]) as the paper uses it (Sec. 4.2): "features from the
fire2, fire3 and fire4 layers of SqueezeNet for the learning criterion".

The SqueezeNet is the project's own 192 px identity prior (models/recognizer.py, trained by `csrip
train-recognizers`), frozen and in eval mode. Feeding it residual images (Sec. 3.3), because that is
what it was trained on, is ours: the paper names the fire layers, not the input. The loss compares
the fire2/fire3/fire4 activations of residual(SR) and residual(HR):

    L = mean over layers l of MSE(phi_l(res(SR)), phi_l(res(HR)))  +  pixel_weight x MSE(SR, HR)

The SR network trained with it is SRGAN's SRResNet generator (models/srgan.py): Johnson et al.'s SR
network is also residual blocks followed by learned upsampling, and SRResNet is its closest relative
among the models here. Where ours differs: SqueezeNet on residual images instead of ImageNet VGG16
relu2_2, a small pixel term (Johnson et al. use total variation instead) that keeps colours anchored.
SRGAN's content loss is this same module (no VGG19 offline).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..core.degradation import residual
from .recognizer import BypassFire, SqueezeNetRecognizer
from .srgan import SRResNet, SRResNetConfig


@dataclass
class LPConfig(SRResNetConfig):
    pixel_weight: float = 1.0  # weight of the pixel MSE next to the feature loss

    @classmethod
    def preset(cls, name: str) -> "LPConfig":
        base = SRResNetConfig.preset(name)
        return cls(base.channels, base.blocks, base.global_skip)


class LP(SRResNet):
    """The lp model: an SRResNet generator (trained with `PerceptualLoss`)."""


class PerceptualLoss(nn.Module):
    """Feature loss on fire2, fire3, fire4 of a frozen 192 px SqueezeNet recognizer, plus pixel MSE."""

    def __init__(self, recognizer: SqueezeNetRecognizer, pixel_weight: float = 1.0, fires: int = 3):
        super().__init__()
        if recognizer.image_size != 192:
            raise ValueError(f"the perceptual loss needs the 192 px recognizer, got {recognizer.image_size} px")
        body = list(recognizer.body)
        last = [i for i, m in enumerate(body) if isinstance(m, BypassFire)][fires - 1]
        self.layers = nn.Sequential(*body[:last + 1]).eval().requires_grad_(False)  # up to fire4
        self.sigma, self.pixel_weight = recognizer.sigma, pixel_weight

    def train(self, mode: bool = True) -> "PerceptualLoss":
        super().train(mode)
        self.layers.eval()  # the recognizer's BatchNorm keeps its running statistics
        return self

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        out, h = [], residual(x.float(), self.sigma)
        for m in self.layers:
            h = m(h)
            if isinstance(m, BypassFire):
                out.append(h)
        return out

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, {"feature": ..., "pixel": ...})."""
        with torch.no_grad():
            target = self.features(hr)
        feat = torch.stack([F.mse_loss(a, b) for a, b in zip(self.features(sr), target)]).mean()
        pixel = F.mse_loss(sr.float(), hr.float())
        return feat + self.pixel_weight * pixel, {"feature": feat.detach(), "pixel": pixel.detach()}
