"""Where the training signal goes: the error-map analysis of paper Fig. 5 (notebook 04, `figures.fig05`).

The paper shows (Sec. 3.3, Fig. 5) that 1 - SSIM error maps (Eq. 3) are "less sparse" than the
squared differences of an MSE loss, which "results in better training characteristics" (Eq. 2).
The functions here measure that: the two maps, how many pixels carry most of each, the per-pixel
gradients of both losses, and how much of each falls on low-contrast pixels (our addition).
"""
from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from ..losses import WINDOW_SIZE, SSIMLoss, gaussian_window, ssim_map

MARGIN = WINDOW_SIZE // 2  # SSIM maps cover only windows inside the image: H - 2 * MARGIN rows


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
