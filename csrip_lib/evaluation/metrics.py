"""Evaluation metrics (paper Sec. 4, Tables 1-4): PSNR and SSIM per image, and result tables.

The evaluation convention, defined here and nowhere else
----------------------------------------------------------
The paper scores 8-bit images (0..255). Every score in this repository is computed the same way:

1. Inputs are N x C x H x W tensors (C = 1 or 3): float in [0, `data_range`] or uint8. Float images
   are scaled to [0, 1], clamped (an SR output that overshoots is clipped as it would be when
   saved) and, with `quantize=True` (default), rounded to the 256 levels of an 8-bit image, so a
   score does not change when an output is written to PNG and read back.
2. Colour: RGB by default, every channel scored and averaged (SSIM: mean over channels and
   windows; PSNR: one MSE over all channels and pixels). `y_channel=True` scores only the
   ITU-R BT.601 luma of the (quantized) image, Y = 16/255 + (65.481 R + 128.553 G + 24.966 B) / 255,
   as MATLAB's rgb2ycbcr and most SR papers do (values in [16/255, 235/255], not rounded).
3. `border` pixels are cropped from every side before scoring (0 by default; SR papers sometimes
   crop the scale factor).
4. PSNR = 10 log10(1 / MSE) in dB on the [0, 1] scale (= 255^2 / MSE on 0..255); identical images
   give +inf, as in scikit-image.
5. SSIM is `csrip_lib.losses.ssim`: Gaussian window 11 x 11, sigma 1.5, K1 = 0.01, K2 = 0.03,
   population covariances, mean over 'valid' windows -- numerically the same as
   `skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
   use_sample_covariance=False, data_range=1, channel_axis=...)`, computed in float64 (its
   Gaussian passes as BLAS matrix products, see `csrip_lib.losses`; `psnr_ssim` gives both scores
   of a pair preparing each image once, as `csrip_lib.evaluation.evaluate` does).

`csrip_lib.evaluation.evaluate` runs models over datasets with these and summarizes them per model.
Scores are float64 (on the CPU for Apple-silicon "mps" tensors, which have no float64).
"""
from __future__ import annotations

import math

import torch

from ..losses import RANGE_TOLERANCE, ssim

# ITU-R BT.601 luma for R, G, B in [0, 1], result in [16/255, 235/255] (MATLAB rgb2ycbcr).
BT601_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
BT601_OFFSET = 16 / 255
SSIM_CHUNK = 4  # images per float64 SSIM call (cache-sized; measured in benchmarks/bench_evaluate.py)


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of an N x 3 x H x W RGB batch in [0, 1] -> N x 1 x H x W."""
    w = torch.tensor(BT601_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True) + BT601_OFFSET


def prepare(x: torch.Tensor, *, data_range: float = 1.0, quantize: bool = True,
            y_channel: bool = False, border: int = 0) -> torch.Tensor:
    """Apply the evaluation convention (module docstring, steps 1-3): float64 N x C' x H' x W' in [0, 1]."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(x).__name__}")
    if not (isinstance(data_range, int | float) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number, got {data_range!r}")
    if x.ndim == 3:
        raise ValueError(f"expected a batch N x C x H x W, got a single image of shape {tuple(x.shape)}; "
                         "use x.unsqueeze(0)")
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected a batch N x C x H x W with C = 1 or 3, got shape {tuple(x.shape)}")
    if x.device.type == "mps":  # no float64 there
        x = x.cpu()
    if x.dtype == torch.uint8:
        x = x.double() / 255
    elif x.is_floating_point():
        x = x.detach().double() / data_range
        lo, hi = torch.aminmax(x)
        if not (float(lo) >= -RANGE_TOLERANCE and float(hi) <= 1 + RANGE_TOLERANCE):
            raise ValueError(f"expected float images in [0, {data_range:g}], found values in "
                             f"[{float(lo) * data_range:.4g}, {float(hi) * data_range:.4g}]; "
                             "set data_range (e.g. 255) or pass uint8 images")
        x = x.clamp(0, 1)
        if quantize:
            x = torch.round(x * 255) / 255
    else:
        raise TypeError(f"expected a float or uint8 tensor, got dtype {x.dtype}")
    if y_channel:
        if x.shape[1] != 3:
            raise ValueError(f"y_channel=True needs RGB images (C = 3), got C = {x.shape[1]}")
        x = rgb_to_y(x)
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border:
        if 2 * border >= min(x.shape[-2:]):
            raise ValueError(f"border={border} leaves nothing of a {x.shape[-2]} x {x.shape[-1]} image")
        x = x[..., border:-border, border:-border]
    return x


def _pair(x: torch.Tensor, y: torch.Tensor, **convention) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape != y.shape:
        raise ValueError(f"images must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    return prepare(x, **convention), prepare(y, **convention)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, y_channel: bool = False,
         border: int = 0, *, quantize: bool = True) -> torch.Tensor:
    """Per-image PSNR in dB (N,), float64, under the module's evaluation convention."""
    a, b = _pair(x, y, data_range=data_range, quantize=quantize, y_channel=y_channel, border=border)
    return _psnr(a, b)


def ssim_eval(x: torch.Tensor, y: torch.Tensor, y_channel: bool = False, border: int = 0, *,
              data_range: float = 1.0, quantize: bool = True) -> torch.Tensor:
    """Per-image SSIM (N,), float64, under the module's evaluation convention."""
    a, b = _pair(x, y, data_range=data_range, quantize=quantize, y_channel=y_channel, border=border)
    return _ssim(a, b)


def psnr_ssim(x: torch.Tensor, y: torch.Tensor, **convention) -> tuple[torch.Tensor, torch.Tensor]:
    """(`psnr`, `ssim_eval`) of the same pair, each image prepared once: what an evaluation loop
    needs. The same numbers as the two calls; `convention`: their keyword arguments."""
    a, b = _pair(x, y, **convention)
    return _psnr(a, b), _ssim(a, b)


def _psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1.0 / (a - b).pow(2).flatten(1).mean(1))


def _ssim(a: torch.Tensor, b: torch.Tensor, chunk: int = SSIM_CHUNK) -> torch.Tensor:
    # a few images at a time: the float64 moment images of a whole batch outgrow the CPU caches
    return torch.cat([ssim(a[i:i + chunk], b[i:i + chunk], reduction="none", check_range=False)
                      for i in range(0, len(a), chunk)]) if len(a) else a.new_zeros(0)
