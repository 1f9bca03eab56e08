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
   use_sample_covariance=False, data_range=1, channel_axis=...)`, computed in float64.

`results_frame` collects per-image records into a pandas DataFrame and `summarize` turns it into the
per-model table (mean, median, std, count); `csrip_lib.evaluate` runs models over datasets with these.
Scores are float64 (on the CPU for Apple-silicon "mps" tensors, which have no float64).
The error-map helpers at the end quantify paper Fig. 5 (how sparse squared error is next to 1 - SSIM).
"""
from __future__ import annotations

import math

from collections.abc import Iterable, Mapping, Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from .losses import RANGE_TOLERANCE, WINDOW_SIZE, SSIMLoss, gaussian_window, ssim, ssim_map

# ITU-R BT.601 luma for R, G, B in [0, 1], result in [16/255, 235/255] (MATLAB rgb2ycbcr).
BT601_WEIGHTS = (65.481 / 255, 128.553 / 255, 24.966 / 255)
BT601_OFFSET = 16 / 255
MARGIN = WINDOW_SIZE // 2  # SSIM maps cover only windows inside the image: H - 2 * MARGIN rows


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
    mse = (a - b).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse)


def ssim_eval(x: torch.Tensor, y: torch.Tensor, y_channel: bool = False, border: int = 0, *,
              data_range: float = 1.0, quantize: bool = True) -> torch.Tensor:
    """Per-image SSIM (N,), float64, under the module's evaluation convention."""
    a, b = _pair(x, y, data_range=data_range, quantize=quantize, y_channel=y_channel, border=border)
    return ssim(a, b, reduction="none", check_range=False)


def score_images(pred: torch.Tensor, target: torch.Tensor, model: str,
                 ids: Sequence[str] | None = None, **convention) -> list[dict]:
    """Records {model, image, psnr, ssim} for a batch (input to `results_frame`).

    `convention` takes psnr's/ssim_eval's keywords (y_channel, border, data_range, quantize).
    """
    ids = list(ids) if ids is not None else [str(i) for i in range(len(pred))]
    if len(ids) != len(pred):
        raise ValueError(f"got {len(ids)} image ids for {len(pred)} images")
    p, s = psnr(pred, target, **convention), ssim_eval(pred, target, **convention)
    return [{"model": model, "image": i, "psnr": float(a), "ssim": float(b)} for i, a, b in zip(ids, p, s)]


def results_frame(records: Iterable[Mapping] | pd.DataFrame) -> pd.DataFrame:
    """Per-image results (dicts with a "model" key and metric columns) -> a tidy DataFrame.

    0-d tensors become floats; a DataFrame passes through (copied).
    """
    if isinstance(records, pd.DataFrame):
        return records.copy()
    rows = [{k: (v.item() if isinstance(v, torch.Tensor) and v.numel() == 1 else v) for k, v in r.items()}
            for r in records]
    if not rows:
        raise ValueError("results_frame: no records")
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, by: str = "model", metrics: Sequence[str] | None = None,
              stats: Sequence[str] = ("mean", "median", "std")) -> pd.DataFrame:
    """The summary table: one row per `by` value (order of first appearance), columns (metric, stat)
    plus the image count `n`. Metrics default to every numeric column. Infinite PSNRs (identical
    images) are kept, so a mean can be inf; the median stays informative."""
    if by not in df.columns:
        raise ValueError(f"summarize: no column {by!r}; columns are {list(df.columns)}")
    metrics = list(metrics) if metrics is not None else [
        c for c in df.select_dtypes("number").columns if c != by]
    if not metrics:
        raise ValueError("summarize: no numeric metric columns to summarize")
    g = df.groupby(by, sort=False)
    table = g[metrics].agg(list(stats))
    table[("n", "")] = g.size()
    return table


# --- Error-map analysis (paper Fig. 5) -------------------------------------------------------------

def error_maps(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fig. 5's two maps for N x C x H x W images in [0, 1], both N x (H - 10) x (W - 10), mean
    over channels: the squared error (MSE loss density) and 1 - SSIM map (Eq. 3). The squared
    error is cropped to the SSIM map's 'valid' windows so the two cover the same pixels."""
    se = (pred.float() - target.float()).pow(2).mean(1)[:, MARGIN:-MARGIN, MARGIN:-MARGIN]
    dssim = 1 - ssim_map(pred, target).mean(1)
    return se, dssim


def local_contrast(x: torch.Tensor) -> torch.Tensor:
    """Local standard deviation under SSIM's Gaussian window (the sigma of Eq. 3), mean over
    channels: N x (H - 10) x (W - 10), aligned with `error_maps`. Small in flat skin, large on edges."""
    x = x.detach().float()
    c = x.shape[1]
    w = gaussian_window(device=x.device)
    k = torch.outer(w, w).expand(c, 1, WINDOW_SIZE, WINDOW_SIZE)
    mu = F.conv2d(x, k, groups=c)
    var = F.conv2d(x * x, k, groups=c) - mu * mu
    return var.clamp_min(0).sqrt().mean(1)


def concentration_curve(error: torch.Tensor, points: int = 101) -> tuple[torch.Tensor, torch.Tensor]:
    """Share of the total error (mean over images) carried by the top fraction of pixels, sorted by
    error: returns (pixel fraction 0..1, cumulative error share). The diagonal = uniform error."""
    e = error.detach().flatten(1).clamp_min(0).double().sort(1, descending=True).values
    cum = torch.cat([e.new_zeros(len(e), 1), e.cumsum(1)], 1) / e.sum(1, keepdim=True).clamp_min(1e-30)
    frac = torch.linspace(0, 1, points, dtype=torch.float64)
    idx = (frac * e.shape[1]).round().long()
    return frac, cum[:, idx].mean(0)


def mass_fraction(error: torch.Tensor, mass: float = 0.9) -> torch.Tensor:
    """Per image: the smallest fraction of pixels that carries `mass` of the total error.

    Small values = sparse error (a few pixels dominate); 0.9 would mean perfectly uniform."""
    e = error.detach().flatten(1).clamp_min(0).double()
    e = e.sort(1, descending=True).values
    cum = e.cumsum(1) / e.sum(1, keepdim=True).clamp_min(1e-30)
    k = (cum < mass).sum(1) + 1
    return k.double() / e.shape[1]


def loss_gradients(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """|dL/dpred| per pixel (N x H x W, summed over channels) for the MSE loss and the SSIM loss of
    Eq. 2 -- where each training signal pushes the prediction.

    The SSIM loss averages 'valid' windows only, so the outer MARGIN (5) pixels are reached by few
    windows and get almost no gradient; crop `[..., MARGIN:-MARGIN, MARGIN:-MARGIN]` to compare
    the two losses on the pixels both see fully."""
    out = {}
    for name, loss_fn in (("mse", F.mse_loss), ("ssim", SSIMLoss())):
        p = pred.detach().float().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(p, target.float()), p)
        out[name] = g.abs().sum(1)
    return out


def error_statistics(pred: torch.Tensor, target: torch.Tensor, mass: float = 0.9) -> pd.DataFrame:
    """How concentrated each Fig. 5 training signal is, per image: one row per (image, signal) for the
    squared error, 1 - SSIM, and the per-pixel gradient magnitudes of the MSE and SSIM losses, with

    - `pixels_for_90pct` (for mass=0.9): smallest fraction of pixels carrying `mass` of it (`mass_fraction`);
    - `low_contrast_share`: share of it falling on the half of the pixels with the lowest local
      contrast of the target (`local_contrast`: flat skin, cheeks, background).
    """
    se, dssim = error_maps(pred, target)
    grads = {k: v[:, MARGIN:-MARGIN, MARGIN:-MARGIN]  # the pixels of the maps
             for k, v in loss_gradients(pred, target).items()}
    contrast = local_contrast(target)
    low = (contrast <= contrast.flatten(1).median(1).values.view(-1, 1, 1)).double()
    rows, col = [], f"pixels_for_{round(100 * mass)}pct"
    for name, e in (("squared error", se), ("1 - SSIM", dssim),
                    ("|grad| MSE loss", grads["mse"]), ("|grad| SSIM loss", grads["ssim"])):
        e = e.detach().double().clamp_min(0)
        share = (e * low).flatten(1).sum(1) / e.flatten(1).sum(1).clamp_min(1e-30)
        for i, (m, s) in enumerate(zip(mass_fraction(e, mass), share)):
            rows.append({"image": i, "signal": name, col: float(m), "low_contrast_share": float(s)})
    return pd.DataFrame(rows)
