"""SRGAN (Ledig et al., "Photo-realistic single image super-resolution using a generative adversarial
network", CVPR 2017; paper ref. [12]), a Table 1 competitor (Sec. 4.2), and its SRResNet generator,
which the lp model reuses (csrip_lib/models/lp.py).

Generator (SRResNet): 9x9 conv + PReLU, B residual blocks (conv-BN-PReLU-conv-BN + skip), conv-BN and
a long skip, three sub-pixel 2x upsamplings (conv to 4C, PixelShuffle, PReLU) for 8x, 9x9 conv to RGB.
Discriminator: 3x3 conv + LReLU, then conv-BN-LReLU blocks with strides 2, 1, 2, 1, ... and the widths
of `d_channels`, global average pooling, dense 1024 - LReLU - dense 1 (a logit; BCE-with-logits loss).
Training (csrip_lib.training.competitors), Ledig et al.'s two stages inside the one stated step budget:
stage 1 the SRResNet generator alone with pixel MSE for `pretrain_fraction` of the steps (0.5 in both
presets; Ledig et al. train SRResNet for 10^6 updates, then SRGAN for 2 x 10^5), stage 2 the GAN from
that generator: content + adv_weight x adversarial (1e-3 as in the paper).

Where ours differs, so that Table 1 calls it "SRGAN-like (SqueezeNet content loss)": the content loss
is lp.PerceptualLoss, the fire2-fire4 features of the project's own SqueezeNet recognizer (residual
images at 192 px) plus a pixel MSE, each term relative to bicubic's, because no ImageNet VGG19 is
available offline (Ledig et al.: VGG19 relu5_4 features alone); the stage split is a fraction of our
small budget, not 10^6 + 2 x 10^5 updates; the discriminator has one more conv-BN-LReLU layer than
Ledig et al.'s (a last stride-1 layer at the widest width: the `zip` in `Discriminator` pairs the last
width with itself); the real labels of its loss are 0.9, not 1 (one-sided label smoothing,
`competitors.GANStep`); global average pooling before the dense layers (the input is 192 px, not
96 px); the clipping layer instead of tanh; Adam at our schedule's learning rate (at most 1e-4) in
both stages; and in the quick size 6 blocks of 16 channels (66K generator parameters, the quick
cascade's size) with a narrower discriminator and a bicubic skip (models/common.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .common import ToRGB, bicubic_up, check_lr, init_weights, no_scales


@dataclass
class SRResNetConfig:
    channels: int = 64
    blocks: int = 16
    global_skip: bool = False  # not in SRResNet: add the bicubic upscale to the output (quick size)

    @classmethod
    def preset(cls, name: str) -> "SRResNetConfig":
        return cls(16, 6, global_skip=True) if name in ("tiny", "quick") else cls()


@dataclass
class SRGANConfig(SRResNetConfig):
    d_channels: tuple[int, ...] = (64, 64, 128, 128, 256, 256, 512, 512)  # discriminator widths
    adv_weight: float = 1e-3  # weight of the adversarial term in the generator loss
    pixel_weight: float = 1.0  # weight of the pixel MSE next to the feature content loss
    # Defaults of the two fields below are what runs written before they existed trained with (no
    # pre-training, raw content terms); both presets set Ledig et al.'s two stages and balanced terms.
    pretrain_fraction: float = 0.0  # share of the step budget for stage 1, SRResNet with pixel MSE
    balance: str = "none"  # content terms: "none" raw, "bicubic" each divided by bicubic's (lp.PerceptualLoss)

    def __post_init__(self) -> None:
        if not 0 <= self.pretrain_fraction < 1:
            raise ValueError(f"pretrain_fraction must be in [0, 1) (the adversarial stage needs steps), "
                             f"got {self.pretrain_fraction!r}")

    @classmethod
    def preset(cls, name: str) -> "SRGANConfig":
        if name in ("tiny", "quick"):
            return cls(16, 6, global_skip=True, d_channels=(8, 8, 16, 16, 32, 32), pretrain_fraction=0.5,
                       balance="bicubic")
        return cls(pretrain_fraction=0.5, balance="bicubic")


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.PReLU(c),
                                  nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """SRGAN's generator: model(lr 24 px) -> N x 3 x 192 x 192 in [0, 1]."""

    def __init__(self, cfg: SRResNetConfig = SRResNetConfig()):
        super().__init__()
        self.cfg, c = cfg, cfg.channels
        self.head = nn.Sequential(nn.Conv2d(3, c, 9, padding=4), nn.PReLU(c))
        self.body = nn.Sequential(*(ResBlock(c) for _ in range(cfg.blocks)),
                                  nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.upsample = nn.Sequential(*(m for _ in range(3) for m in
                                        (nn.Conv2d(c, 4 * c, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(c))))
        self.out = ToRGB(c, 9)
        init_weights(self, cfg.global_skip)
        if cfg.global_skip:  # ours (an initialisation; the network is SRResNet's)
            # Adam's first steps move every weight of the zero RGB conv by about lr, over a fan-in of 81 x C
            # features of unit scale: at C = 16 and lr 1e-4 the output left bicubic by ~0.02 rms per step, a
            # noise that costs SSIM while the MSE barely moves (measured; the first lp-quick and srgan-quick
            # never recovered from it). The last upsampling conv starts at 1/10 of Kaiming's scale, and so
            # do the features it hands the RGB conv: the first steps move the output by ~0.002.
            self.upsample[-3].weight.data.mul_(0.1)

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor:
        no_scales(all_scales, type(self).__name__)
        check_lr(lr)
        x = self.head(lr)
        y = self.upsample(x + self.body(x))
        return self.out(y, bicubic_up(lr) if self.cfg.global_skip else None)


class Discriminator(nn.Module):
    """SRGAN's discriminator on 192 px images: one real/fake logit per image."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, channels[0], 3, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        for i, (cin, cout) in enumerate(zip(channels, channels[1:] + channels[-1:])):
            layers += [nn.Conv2d(cin, cout, 3, stride=2 if i % 2 == 0 else 1, padding=1),
                       nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Linear(channels[-1], 1024), nn.LeakyReLU(0.2, inplace=True), nn.Linear(1024, 1))
        init_weights(self, global_skip=False, negative_slope=0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3))).squeeze(1)


class GAN(nn.Module):
    """A generator and its discriminator in one module, so that one checkpoint holds both (exact
    resume); model(lr) is the generator, which is all that evaluation and hallucination use."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module):
        super().__init__()
        self.generator, self.discriminator = generator, discriminator

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor:
        return self.generator(lr, all_scales=all_scales)


class SRGAN(GAN):
    def __init__(self, cfg: SRGANConfig = SRGANConfig()):
        super().__init__(SRResNet(cfg), Discriminator(tuple(cfg.d_channels)))
        self.cfg = cfg
