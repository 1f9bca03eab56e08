"""lp: the perceptual loss of Johnson, Alahi, Fei-Fei ("Perceptual losses for real-time style transfer
and super-resolution", ECCV 2016; paper ref. [11]) as the paper uses it (Sec. 4.2): "features from the
fire2, fire3 and fire4 layers of SqueezeNet for the learning criterion".

The SqueezeNet is the project's own 192 px identity prior (models/recognizer.py, trained by `csrip
train-recognizers`), frozen and in eval mode. Feeding it residual images (Sec. 3.3), because that is
what it was trained on, is ours: the paper names the fire layers, not the input.

Balance (`balance="bicubic"`, what both presets train with): the raw terms differ by two orders of
magnitude (in the first lp-quick, trained with them unbalanced, the fire2-4 feature MSE was 1.135 and
the pixel MSE 0.0082 at the kept step: the pixel term was 0.7% of the loss and the images drifted
away from the faces). So each term is divided by the same term of the bicubic upscale of the same batch
(what every quick model starts from, models/common.py), per fire layer for the features:

    L = mean over l of MSE(phi_l(res(SR)), phi_l(res(HR))) / MSE(phi_l(res(BIC)), phi_l(res(HR)))
        + pixel_weight x MSE(SR, HR) / MSE(BIC, HR)

Both terms are 1 for the untrained model, below 1 where SR is closer to HR than bicubic is, and
neither can vanish beside the other whatever the feature scale; the denominators are measured and
detached (they weigh the terms, they are not trained). `balance="none"` is the raw sum, what
checkpoints written before this field existed trained with.

Balanced, the terms no longer wreck the model, but the features still cost SSIM: in a 150-step run of
`csrip train-competitor --model lp --preset quick --recognizers checkpoints/recognizers-quick` on the
LFW development subset, lp-like ended above bicubic in validation PSNR and below it in SSIM, as did
SRGAN-like's adversarial stage, while its MSE stage matched bicubic's SSIM (issue 32 has the logs).

The SR network trained with it is SRGAN's SRResNet generator (models/srgan.py): Johnson et al.'s SR
network is also residual blocks followed by learned upsampling, and SRResNet is its closest relative
among the models here. Where ours differs, so that Table 1 calls it "lp-like": the SRResNet generator
instead of Johnson et al.'s network; the features of our residual-image SqueezeNet trained on the
SR stage's own identities (C-SRIP's lp uses SqueezeNet fire2-4 features, Johnson et al. ImageNet VGG16
relu2_2); a pixel term where Johnson et al. use total variation. SRGAN's content loss is this same
module (no VGG19 offline).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..core.degradation import residual
from .common import bicubic_up
from .recognizer import BypassFire, SqueezeNetRecognizer
from .srgan import SRResNet, SRResNetConfig


@dataclass
class LPConfig(SRResNetConfig):
    pixel_weight: float = 1.0  # weight of the pixel MSE next to the feature loss
    balance: str = "none"  # "bicubic": each term divided by bicubic's (see above); "none": raw (old runs)

    @classmethod
    def preset(cls, name: str) -> "LPConfig":
        base = SRResNetConfig.preset(name)
        return cls(base.channels, base.blocks, base.global_skip, balance="bicubic")


class LP(SRResNet):
    """The lp model: an SRResNet generator (trained with `PerceptualLoss`)."""


class PerceptualLoss(nn.Module):
    """Feature loss on fire2, fire3, fire4 of a frozen 192 px SqueezeNet recognizer, plus pixel MSE,
    each term relative to bicubic's with `balance="bicubic"` (module docstring)."""

    BALANCES = ("none", "bicubic")

    def __init__(self, recognizer: SqueezeNetRecognizer, pixel_weight: float = 1.0, balance: str = "bicubic",
                 fires: int = 3):
        super().__init__()
        if recognizer.image_size != 192:
            raise ValueError(f"the perceptual loss needs the 192 px recognizer, got {recognizer.image_size} px")
        if balance not in self.BALANCES:
            raise ValueError(f"balance must be one of {self.BALANCES}, got {balance!r}")
        body = list(recognizer.body)
        last = [i for i, m in enumerate(body) if isinstance(m, BypassFire)][fires - 1]
        self.layers = nn.Sequential(*body[:last + 1]).eval().requires_grad_(False)  # up to fire4
        self.sigma, self.pixel_weight, self.balance = recognizer.sigma, pixel_weight, balance

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

    def forward(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, {"feature": ..., "pixel": ...}) for SR from `lr` against `hr`."""
        hr = hr.float()
        with torch.no_grad():
            target = self.features(hr)
        feat = torch.stack([F.mse_loss(a, b) for a, b in zip(self.features(sr), target)])
        pixel = F.mse_loss(sr.float(), hr)
        if self.balance == "bicubic":
            with torch.no_grad():
                up = bicubic_up(lr.float())
                feat0 = torch.stack([F.mse_loss(a, b) for a, b in zip(self.features(up), target)])
                pixel0 = F.mse_loss(up, hr)
            feat, pixel = feat / feat0.clamp_min(1e-12), pixel / pixel0.clamp_min(1e-12)
        feat = feat.mean()
        return feat + self.pixel_weight * pixel, {"feature": feat.detach(), "pixel": pixel.detach()}
