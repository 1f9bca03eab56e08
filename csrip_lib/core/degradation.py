"""Degradation model and residual images (paper Sec. 3.3, Fig. 3 and Fig. 4).

HR 192 -> 96 -> 48 -> LR 24: every 2x step is a Gaussian blur (`DegradationConfig.sigma`, in pixels
of the finer image) followed by 2x decimation. Decimation averages each 2x2 block, so the pixel centres
of the coarse image sit exactly between fine pixels, the convention of `F.interpolate(...,
align_corners=False)`. The bicubic baseline therefore has no half-pixel shift. `config.
DegradationConfig` owns the parameters; every function here takes one (default: DegradationConfig()),
and a trained model carries the one it was trained under (`model.degradation`, set by `load_sr`), which
`for_models` picks for evaluation.

Residual images (the details an SR module hallucinates, Fig. 3 right) are `x - g_sigma * x`
with sigma 1/3, 1 and 7/3 at 48, 96 and 192 px (`config.RESIDUAL_SIGMAS`), a different blur.
"""
from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from .config import HR_SIZE, LR_SIZE, RESIDUAL_SIGMAS, DegradationConfig
from .console import CSRIPError

DEFAULT = DegradationConfig()
DEFAULT_SIGMA, TRUNCATE = DEFAULT.sigma, DEFAULT.truncate  # for the plots of analysis.py and notebook 01


def _check_images(x: torch.Tensor, name: str = "images") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name}: expected a float batch N x C x H x W with C in (1, 3), "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected float values in [0, 1], got dtype {x.dtype}; "
                        "convert uint8 images with `x.float() / 255`")


def as_degradation(degradation: DegradationConfig | float | None) -> DegradationConfig:
    """`degradation` as a DegradationConfig: None is the default, a number is shorthand for
    DegradationConfig(sigma=number) (sweeps over the blur, e.g. `analysis.bicubic_scores`)."""
    if degradation is None:
        return DEFAULT
    return degradation if isinstance(degradation, DegradationConfig) else DegradationConfig(sigma=degradation)


def kernel_size(sigma: float, truncate: float = TRUNCATE) -> int:
    """Odd Gaussian kernel size covering +-truncate sigma, with scipy.ndimage's rounding of the
    radius, so `gaussian_blur` equals `skimage.filters.gaussian(mode="mirror", truncate=4)`."""
    return 2 * int(truncate * sigma + 0.5) + 1


def gaussian_blur(x: torch.Tensor, sigma: float, truncate: float = TRUNCATE) -> torch.Tensor:
    """Gaussian blur `g_sigma * x` with reflect padding (torchvision's kernel: k samples of the Gaussian at
    integer offsets, summing to 1); sigma 0 returns x.

    The kernel is separable, so it runs as a 1 x k and a k x 1 depthwise convolution: 2k multiply-adds per
    pixel instead of k^2 (k = 19 for the 192 px residuals). Both run in channels_last, where oneDNN's
    depthwise convolutions are several times faster, and in float32 even inside a bf16 autocast region
    (e.g. lp's residual features of an SR output); the result has the input's layout and dtype. Blurs were most
    of a recognizer's training step before (benchmarks/README.md); tests/test_degradation.py checks the
    numbers against scikit-image."""
    _check_images(x)
    sigma = DegradationConfig(sigma, truncate).sigma  # the one check of a blur: finite, >= 0 (also residuals)
    if sigma == 0:
        return x
    k = kernel_size(sigma, truncate)
    if k > min(x.shape[-2:]):  # reflect padding needs the image to be larger than the radius
        k = max(3, (min(x.shape[-2:]) - 1) | 1)
    dtype = x.dtype if x.dtype == torch.float64 else torch.float32  # a fixed filter, always float32 (or 64):
    g = torch.exp(-0.5 * (torch.linspace(-(k // 2), k // 2, k, dtype=dtype, device=x.device) / sigma) ** 2)
    g, c, r = g / g.sum(), x.shape[1], k // 2
    layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    with (torch.autocast(x.device.type, enabled=False) if x.device.type in ("cpu", "cuda")  # oneDNN's bf16
          else contextlib.nullcontext()):  # depthwise convolution is a slow path; meta tensors: shapes only
        y = F.pad(x.to(dtype).contiguous(memory_format=torch.channels_last), [r, r, r, r], mode="reflect")
        y = F.conv2d(y, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
        y = F.conv2d(y, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)
    return y.to(x.dtype).contiguous(memory_format=layout)


def downsample2x(x: torch.Tensor, degradation: DegradationConfig | float | None = None) -> torch.Tensor:
    """One degradation step (Fig. 4 left): Gaussian blur, then 2x decimation by 2x2 averaging."""
    d = as_degradation(degradation)
    return F.avg_pool2d(gaussian_blur(x, d.sigma, d.truncate), 2)


def make_pyramid(hr: torch.Tensor, degradation: DegradationConfig | float | None = None
                 ) -> dict[str, torch.Tensor]:
    """Image quadruplet {lr, x2, x4, hr} from HR images (paper Sec. 3.3, Fig. 4 left).

    hr: N x 3 x 192 x 192 float in [0, 1] (any device). Returns lr 24, x2 48, x4 96, hr 192.
    """
    _check_images(hr, "hr")
    if hr.shape[-2:] != (HR_SIZE, HR_SIZE):
        raise ValueError(f"hr: expected {HR_SIZE}x{HR_SIZE} images, got {tuple(hr.shape[-2:])}")
    d = as_degradation(degradation)
    x4 = downsample2x(hr, d)
    x2 = downsample2x(x4, d)
    lr = downsample2x(x2, d)
    assert lr.shape[-1] == LR_SIZE
    return {"lr": lr, "x2": x2, "x4": x4, "hr": hr}


def degrade(x: torch.Tensor, factor: int, degradation: DegradationConfig | float | None = None) -> torch.Tensor:
    """Apply `log2(factor)` degradation steps (factor 1, 2, 4 or 8)."""
    _check_images(x)
    if factor not in (1, 2, 4, 8):
        raise ValueError(f"factor must be 1, 2, 4 or 8, got {factor}")
    d = as_degradation(degradation)
    for _ in range(int(math.log2(factor))):
        x = downsample2x(x, d)
    return x


def for_models(models: Mapping[str, Any], override: DegradationConfig | None = None) -> DegradationConfig:
    """The degradation to evaluate `models` under: the one they were trained with (`.degradation` of
    a model or of an `inference.Upscaler`'s model, set by `load_sr`; plain functions such as bicubic
    have none), so the LR inputs match training (Sec. 3.3).

    `override` wins, with a warning for each model trained under another degradation. Models trained
    under different degradations cannot share one LR input: a CSRIPError unless `override` is given.
    """
    trained = {name: getattr(m, "degradation", None) or getattr(getattr(m, "model", None), "degradation", None)
               for name, m in models.items()}
    trained = {name: d for name, d in trained.items() if d is not None}
    if override is not None:
        for name, d in trained.items():
            if d != override:
                warnings.warn(f"{name} was trained with {d}; evaluating it with {override}", stacklevel=2)
        return override
    if len(set(trained.values())) > 1:
        raise CSRIPError("these models were trained under different degradations, so no one LR input is "
                         f"fair to all: {'; '.join(f'{n}: {d}' for n, d in trained.items())}. Evaluate "
                         "them separately, or choose one degradation (--sigma)")
    return next(iter(trained.values()), DEFAULT)


def upsample_bicubic(x: torch.Tensor, factor: int = 8) -> torch.Tensor:
    """Bicubic baseline, pixel-centre aligned with `downsample2x`, clipped to [0, 1]."""
    _check_images(x)
    return F.interpolate(x, scale_factor=factor, mode="bicubic", align_corners=False).clamp(0, 1)


def residual(x: torch.Tensor, sigma: float | None = None) -> torch.Tensor:
    """Residual image `dx = x - g_sigma * x` (paper Sec. 3.3); sigma defaults by image size."""
    _check_images(x)
    if sigma is None:
        size = x.shape[-1]
        if size not in RESIDUAL_SIGMAS:
            raise ValueError(f"no default residual sigma for {size}px images; "
                             f"pass sigma (defaults exist for {sorted(RESIDUAL_SIGMAS)})")
        sigma = RESIDUAL_SIGMAS[size]
    return x - gaussian_blur(x, sigma)
