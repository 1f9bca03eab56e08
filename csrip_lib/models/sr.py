"""The cascaded SR network of C-SRIP (paper Sec. 3.1, 3.4, Fig. 2/11) and the ablation Baseline (Sec. 4.3).

CascadedSR, 24 px -> 192 px in three 2x SR modules:

    stem      9x9 conv (stem_channels) + LReLU                                    24 px
    module i  p residual blocks (channels[i]) -> 3x3 conv (shuffle_channels[i])
              -> PixelShuffle(2) -> LReLU                                          48 / 96 / 192 px
    branch    after modules 1 and 2: 9x9 conv to RGB + clipping (2x, 4x outputs; training only)
    tail      one residual block (final_channels) -> 9x9 conv to RGB + clipping   192 px

A residual block is conv-BN-LReLU, conv-BN, element-wise sum with the input, then a post-activation
LReLU (all 3x3). The paper's text (Sec. 3.1) reads "two convolution-batch-norm-activation sub-blocks,
followed by a post-activation element-wise sum", "similarly to [12]" (SRGAN, whose blocks are conv-BN-
PReLU, conv-BN, sum, no activation after it). Ours is neither literally: the second sub-block has no
activation before the sum, and one LReLU follows the sum; we read "post-activation element-wise sum"
as a sum followed by an activation. We keep it because the shipped checkpoints were trained with it
(checkpoints/*.pt; a different forward pass would change their outputs and scores).

Where a pixel shuffle leaves a width different from the next stage (shuffle_channels[2] / 4 = 64 vs
final_channels = 128 in the `paper` preset) a 3x3 conv adapts it; the paper does not say how 64
channels become 128, this is the smallest choice.

Branch heads. Fig. 11 draws each branch as "k9n3s1" (the "k9n512s1" next to it is the stem): a single
9x9 conv to 3 channels (a k9n512s1 + k9n3s1 head would add 16.7M parameters).

Size: our reading, not the paper's numbers. The paper gives no parameter count or FLOPs, only a
"53-layer deep" network (Sec. 3.1) and the widths of Sec. 3.4. Built from those widths, the `paper`
preset has 50 convolutions on the main path (stem; 3 modules x (7 blocks x 2 + the pre-shuffle conv);
the 64 -> 128 adapter; the final block's 2; the RGB conv), 52 with the two branch heads. The paper
does not say what it counts as a layer (BN, activations, shuffles and clipping are layers in some
counts), so its 53 neither confirms nor refutes this reading. These widths give 50,190,729 parameters
and 160.1 GFLOP (80.0 G multiply-adds) per 24x24 image at the main output (160.9 with both
branches); halving the width at every 2x step gives each SR module the same compute (Sec. 3.1).
tests/test_sr_model.py checks these counts as a check of our reading.

Clipping (Sec. 3.4) to [0, 1]. In eval mode it is a hard clamp. In training mode it is a
straight-through clamp (forward clamps, backward passes the gradient unchanged): a hard clamp has zero
gradient once a pixel leaves [0, 1], and a whole output stuck outside can never come back (seen before
this repository existed, in a plain-PyTorch run of the project's design phase on one H200: a `small`
cascade at lr 1e-3 collapsed to a black output, SSIM ~ 0, and never recovered).

Global skip (`SRConfig.global_skip`, not in the paper, on only in the `tiny`/`quick` preset): every
RGB output adds the bicubic upsampling of the input before clipping, so the network only learns the
detail on top of it (residual learning as in VDSR). A tiny network trained for two CPU minutes cannot
learn the whole 8x mapping from scratch; with the skip it starts at bicubic quality and improves on it.

Initialisation: Kaiming-normal for the LReLU convs and the last BN of every residual block with
gamma = 0 (Goyal et al. 2017): each block's residual branch starts at zero, so a block starts as
x -> LReLU(x), one more activation rather than the identity (because of the LReLU after the sum).
RGB heads start near mid-grey (small weights, bias 0.5), inside the clipping range; with the global
skip they start at zero, so the untrained network is exactly bicubic.
"""
from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from ..core.config import HR_SIZE, LR_SIZE, SRConfig, get_preset
from ..core.runtime import check_lr


def _conv(cin: int, cout: int, k: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)


def _adapter(cin: int, cout: int) -> nn.Module:
    """3x3 conv when the width changes between stages, else nothing."""
    return nn.Identity() if cin == cout else _conv(cin, cout, 3)


class ResidualBlock(nn.Module):
    """conv-BN-LReLU, conv-BN, sum with the input, post-activation LReLU (our reading of Sec. 3.1, see
    the module docstring)."""

    def __init__(self, channels: int, negative_slope: float = 0.2):
        super().__init__()
        self.body = nn.Sequential(
            _conv(channels, channels, 3, bias=False), nn.BatchNorm2d(channels),
            nn.LeakyReLU(negative_slope, inplace=True),
            _conv(channels, channels, 3, bias=False), nn.BatchNorm2d(channels),
        )
        self.act = nn.LeakyReLU(negative_slope, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class Upsample2x(nn.Sequential):
    """Sub-pixel convolution [45]: 3x3 conv to `cout` channels, PixelShuffle(2) (cout/4 left), LReLU."""

    def __init__(self, cin: int, cout: int, negative_slope: float = 0.2):
        if cout % 4:
            raise ValueError(f"pixel-shuffle conv width must be divisible by 4, got {cout}")
        super().__init__(_conv(cin, cout, 3), nn.PixelShuffle(2), nn.LeakyReLU(negative_slope, inplace=True))
        self.out_channels = cout // 4


class ToRGB(nn.Module):
    """9x9 conv to 3 channels and the clipping layer (Sec. 3.4): straight-through in training."""

    def __init__(self, cin: int, kernel_size: int = 9):
        super().__init__()
        self.conv = _conv(cin, 3, kernel_size)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        y = self.conv(x) if skip is None else self.conv(x) + skip
        if self.training:  # forward clamps, backward is the identity (see module docstring)
            return y + (y.clamp(0, 1) - y).detach()
        return y.clamp(0, 1)


def _blocks(n: int, channels: int, slope: float) -> nn.Sequential:
    return nn.Sequential(*(ResidualBlock(channels, slope) for _ in range(n)))


class SRModule(nn.Module):
    """One 2x SR module (Sec. 3.1): [width adapter], p residual blocks, sub-pixel 2x upscaling."""

    def __init__(self, cin: int, channels: int, shuffle_channels: int, blocks: int, negative_slope: float):
        super().__init__()
        self.adapt = _adapter(cin, channels)
        self.blocks = _blocks(blocks, channels, negative_slope)
        self.upsample = Upsample2x(channels, shuffle_channels, negative_slope)
        self.out_channels = self.upsample.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.blocks(self.adapt(x)))


class _SRBase(nn.Module):
    """Shared init, input checks and the preset constructor of both architectures."""

    cfg: SRConfig

    @classmethod
    def from_preset(cls, name: str) -> "_SRBase":
        """The model of a named preset ("paper", "small", "tiny"; "quick" uses tiny's model)."""
        return cls(get_preset(name).sr)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=self.cfg.negative_slope, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, ResidualBlock):
                nn.init.zeros_(m.body[-1].weight)  # last BN gamma = 0: the block starts as LReLU(x)
        for m in self.modules():
            if isinstance(m, ToRGB):  # start near mid-grey, or exactly at bicubic with the global skip
                m.conv.weight.data.mul_(0.0 if self.cfg.global_skip else 0.1)
                nn.init.constant_(m.conv.bias, 0.0 if self.cfg.global_skip else 0.5)

    def _skip(self, lr: torch.Tensor, size: int) -> torch.Tensor | None:
        """Bicubic upsampling of the input to `size` px for the optional global skip, else None."""
        if not self.cfg.global_skip:
            return None
        return F.interpolate(lr, size=(size, size), mode="bicubic", align_corners=False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class CascadedSR(_SRBase):
    """C-SRIP's generator: 24x24 -> 192x192 through three 2x SR modules (Sec. 3.1, Fig. 2).

    model(lr) -> N x 3 x 192 x 192 in [0, 1];
    model(lr, all_scales=True) -> [x48, x96, x192] (the 2x and 4x branches are used in training, Eq. 4).
    """

    def __init__(self, cfg: SRConfig = SRConfig()):
        super().__init__()
        if cfg.arch != "cascaded":
            raise ValueError(f"CascadedSR needs SRConfig(arch='cascaded'), got {cfg.arch!r}; use build_model")
        self.cfg = cfg
        s, k = cfg.negative_slope, cfg.kernel_size
        self.stem = nn.Sequential(_conv(3, cfg.stem_channels, k), nn.LeakyReLU(s, inplace=True))
        stages, width = [], cfg.stem_channels
        for ch, shuffle in zip(cfg.channels, cfg.shuffle_channels):
            stages.append(SRModule(width, ch, shuffle, cfg.blocks, s))
            width = stages[-1].out_channels
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(ToRGB(m.out_channels, k) for m in stages[:2])  # 2x and 4x branches
        self.tail = nn.Sequential(_adapter(width, cfg.final_channels),
                                  ResidualBlock(cfg.final_channels, s), ToRGB(cfg.final_channels, k))
        self._init_weights()

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor | list[torch.Tensor]:
        check_lr(lr)
        x = self.stem(lr)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if all_scales and i < 2:
                outs.append(self.heads[i](x, self._skip(lr, x.shape[-1])))
        y = self.tail[-1](self.tail[:-1](x), self._skip(lr, HR_SIZE))
        return [*outs, y] if all_scales else y


class BaselineSR(_SRBase):
    """Ablation Baseline (Sec. 4.3, A.3): 3p = 21 residual blocks at 24 px, then all three pixel shuffles.

    The same layers as CascadedSR (stem, residual blocks, sub-pixel convs, final block, RGB conv),
    but every residual block works at the LR scale at width channels[0] and there are no branches, so
    only the final output can be supervised. The paper gives no width; at channels[0] the Baseline has
    exactly the cascade's compute (160.1 GFLOP per image for `paper`: a block at width c on n pixels costs
    what a block at c/2 on 4n pixels costs) but 105.9M parameters instead of our cascade's 50.2M.
    """

    def __init__(self, cfg: SRConfig = SRConfig(arch="baseline")):
        super().__init__()
        if cfg.arch != "baseline":
            raise ValueError(f"BaselineSR needs SRConfig(arch='baseline'), got {cfg.arch!r}; use build_model")
        self.cfg = cfg
        s, k, ch = cfg.negative_slope, cfg.kernel_size, cfg.channels[0]
        self.stem = nn.Sequential(_conv(3, cfg.stem_channels, k), nn.LeakyReLU(s, inplace=True),
                                  _adapter(cfg.stem_channels, ch))
        self.body = _blocks(3 * cfg.blocks, ch, s)
        ups, width = [], ch
        for shuffle in cfg.shuffle_channels:
            ups.append(Upsample2x(width, shuffle, s))
            width = ups[-1].out_channels
        self.upsample = nn.Sequential(*ups)
        self.tail = nn.Sequential(_adapter(width, cfg.final_channels),
                                  ResidualBlock(cfg.final_channels, s), ToRGB(cfg.final_channels, k))
        self._init_weights()

    @classmethod
    def from_preset(cls, name: str) -> "BaselineSR":
        cfg = get_preset(name).sr
        cfg.arch = "baseline"
        return cls(cfg)

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor:
        if all_scales:
            raise ValueError("BaselineSR has no intermediate 2x/4x outputs (all upscaling is at the end, "
                             "Sec. 4.3); train it with single-scale supervision (LossConfig(multiscale=False))")
        check_lr(lr)
        x = self.tail[:-1](self.upsample(self.body(self.stem(lr))))
        return self.tail[-1](x, self._skip(lr, HR_SIZE))


def build_model(cfg: SRConfig) -> CascadedSR | BaselineSR:
    """The SR network that `cfg.arch` names ("cascaded" or "baseline")."""
    archs = {"cascaded": CascadedSR, "baseline": BaselineSR}
    if cfg.arch not in archs:
        raise ValueError(f"unknown SR architecture {cfg.arch!r}; expected one of {sorted(archs)}")
    return archs[cfg.arch](cfg)


def shape_table(model: nn.Module, all_scales: bool = True) -> pd.DataFrame:
    """One row per layer (residual blocks as one row): output shape and parameter count, recorded by
    forward hooks during a real forward pass of one random 24x24 image."""
    blocks = [n for n, m in model.named_modules() if isinstance(m, ResidualBlock)]

    def shown(name: str, m: nn.Module) -> bool:
        if not name or isinstance(m, nn.Identity):
            return False
        inside = any(name.startswith(b + ".") for b in blocks)
        return isinstance(m, ResidualBlock) or (not any(m.children()) and not inside)

    rows: list[tuple] = []
    hooks = [m.register_forward_hook(lambda m, i, o, name=name: rows.append(
                 (name, type(m).__name__, tuple(o.shape[1:]), sum(p.numel() for p in m.parameters()))))
             for name, m in model.named_modules() if shown(name, m)]
    was_training = model.training
    model.eval()
    try:
        x = torch.rand(1, 3, LR_SIZE, LR_SIZE, device=next(model.parameters()).device)
        with torch.no_grad():
            model(x, all_scales=all_scales and isinstance(model, CascadedSR))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return pd.DataFrame(rows, columns=["layer", "type", "output (C, H, W)", "parameters"])


def complexity(cfg: SRConfig, all_scales: bool = False) -> dict[str, float]:
    """Parameters and GFLOP (2 x multiply-adds, torch.utils.flop_counter) for one 24x24 image.

    The model is built on the meta device, so even the `paper` preset costs no memory or time.
    """
    with torch.device("meta"):
        model = build_model(cfg).eval()
        x = torch.empty(1, 3, LR_SIZE, LR_SIZE)
    with FlopCounterMode(display=False) as counter:
        model(x, all_scales=all_scales) if all_scales else model(x)
    return {"parameters": sum(p.numel() for p in model.parameters()), "gflop": counter.get_total_flops() / 1e9}

