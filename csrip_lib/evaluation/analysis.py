"""Measurements of the degradation model and the residual images (paper Sec. 3.3, Fig. 3 and 4).

Used by notebooks 01/02, their sliders (`csrip_lib.tutorial.widgets`) and the tests: bicubic-baseline
scores as a function of the degradation sigma, the detail an SR module has to add at each scale,
how well the paper's residual images match that detail, and radially averaged power spectra.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..core.config import RESIDUAL_SIGMAS
from ..core.degradation import DEFAULT_SIGMA, gaussian_blur, kernel_size, make_pyramid, residual, upsample_bicubic
from .metrics import psnr, ssim_eval

COARSER = {"x2": "lr", "x4": "x2", "hr": "x4"}  # pyramid level -> the level one 2x step below
SIZES = {"lr": 24, "x2": 48, "x4": 96, "hr": 192}


def downsample2x_naive(x: torch.Tensor, sigma: float = DEFAULT_SIGMA) -> torch.Tensor:
    """The trap `downsample2x` avoids: blur, then keep every second pixel (`x[..., ::2, ::2]`).

    Coarse pixel i then samples fine pixel 2i, while bicubic upsampling (`align_corners=False`)
    places it at 2i + 0.5: every step shifts the content by half a fine pixel, 3.5 HR pixels
    after 24 -> 192. Shown in notebook 01 and used as the negative control of the tests.
    """
    return gaussian_blur(x, sigma)[..., ::2, ::2]


def centre_of_mass(x: torch.Tensor) -> torch.Tensor:
    """Intensity-weighted centre (row, col) in pixel indices of each image of N x C x H x W."""
    w = x.sum(1)
    rows = torch.arange(x.shape[-2], dtype=x.dtype, device=x.device)
    cols = torch.arange(x.shape[-1], dtype=x.dtype, device=x.device)
    total = w.sum((-2, -1))
    return torch.stack([(w.sum(-1) * rows).sum(-1) / total, (w.sum(-2) * cols).sum(-1) / total], -1)


def bicubic_scores(hr: torch.Tensor, sigmas: list[float], batch_size: int = 64) -> pd.DataFrame:
    """PSNR/SSIM (csrip_lib.evaluation.metrics conventions) of the 8x bicubic baseline per degradation sigma.

    One row per sigma: mean and standard deviation over the images of `hr` (N x 3 x 192 x 192).
    """
    rows = []
    for s in sigmas:
        p, q = [], []
        for batch in hr.split(batch_size):
            sr = upsample_bicubic(make_pyramid(batch, s)["lr"], 8)
            p.append(psnr(sr, batch))
            q.append(ssim_eval(sr, batch))
        p, q = torch.cat(p), torch.cat(q)
        rows.append({"sigma": float(s), "psnr": p.mean().item(), "psnr_std": p.std().item(),
                     "ssim": q.mean().item(), "ssim_std": q.std().item()})
    return pd.DataFrame(rows)


def module_detail(pyramid: dict[str, torch.Tensor], level: str, cumulative: bool = False,
                  ) -> torch.Tensor:
    """What the SR module producing `level` ("x2", "x4" or "hr") must add (Fig. 3 left).

    The image at that level minus the bicubic upsampling of the level one 2x step below, or with
    `cumulative=True` minus the bicubic upsampling of the LR input (all detail added so far).
    """
    if level not in COARSER:
        raise ValueError(f"level must be one of {sorted(COARSER)}, got {level!r}")
    source = "lr" if cumulative else COARSER[level]
    factor = SIZES[level] // SIZES[source]
    return pyramid[level] - upsample_bicubic(pyramid[source], factor)


def correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per image of two N x C x H x W tensors."""
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-12)


def residual_vs_detail(pyramid: dict[str, torch.Tensor], sigmas: list[float] | None = None,
                       ) -> pd.DataFrame:
    """How well residual images `x - g_sigma * x` match the detail SR modules add, per scale.

    For each level (48, 96, 192 px) and each sigma (default: the paper's, Sec. 3.3), the mean
    correlation of the residual with the one-step detail (`module_detail`) and with the
    cumulative detail since the LR input, and the residual's energy relative to each.
    """
    rows = []
    for level in COARSER:
        x = pyramid[level]
        step, cum = module_detail(pyramid, level), module_detail(pyramid, level, cumulative=True)
        for s in ([RESIDUAL_SIGMAS[SIZES[level]]] if sigmas is None else sigmas):
            r = residual(x, s)
            rows.append({"size": SIZES[level], "sigma": float(s),
                         "paper_sigma": math.isclose(s, RESIDUAL_SIGMAS[SIZES[level]]),
                         "corr_step": correlation(r, step).mean().item(),
                         "corr_cumulative": correlation(r, cum).mean().item(),
                         "energy_vs_step": (r.square().sum() / step.square().sum()).item(),
                         "energy_vs_cumulative": (r.square().sum() / cum.square().sum()).item()})
    return pd.DataFrame(rows)


def power_spectrum_2d(x: torch.Tensor, window: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Power |FFT|^2 / (H W) averaged over images and channels, and |f| in cycles per pixel.

    A Hann window (default) keeps the image borders from leaking energy into every frequency.
    """
    h, w = x.shape[-2:]
    x = x.double()
    if window:
        x = x * torch.outer(torch.hann_window(h, periodic=False, dtype=x.dtype, device=x.device),
                            torch.hann_window(w, periodic=False, dtype=x.dtype, device=x.device))
    power = torch.fft.fft2(x).abs().square().mean((0, 1)) / (h * w)
    fy, fx = torch.meshgrid(torch.fft.fftfreq(h, dtype=x.dtype, device=x.device),
                            torch.fft.fftfreq(w, dtype=x.dtype, device=x.device), indexing="ij")
    return power, torch.sqrt(fy**2 + fx**2)


def radial_power_spectrum(x: torch.Tensor, bins: int | None = None, window: bool = True,
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of N x C x H x W images, up to the Nyquist frequency.

    Returns (frequency in cycles per pixel at the bin centres, mean power per ring); multiply
    the frequency by the image size for cycles per face.
    """
    power, f = power_spectrum_2d(x, window)
    bins = bins or min(x.shape[-2:]) // 2
    edges = torch.linspace(0, 0.5, bins + 1, dtype=f.dtype, device=f.device)
    idx = torch.bucketize(f.flatten(), edges, right=True) - 1
    keep = (idx >= 0) & (idx < bins)
    total = torch.bincount(idx[keep], weights=power.flatten()[keep], minlength=bins)
    count = torch.bincount(idx[keep], minlength=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    return centres.cpu().numpy(), (total / count.clamp_min(1)).cpu().numpy()


def energy_above(x: torch.Tensor, cutoff: float, window: bool = True) -> float:
    """Fraction of the spectral energy of `x` at |f| > cutoff (cycles per pixel)."""
    power, f = power_spectrum_2d(x, window)
    return (power[f > cutoff].sum() / power.sum()).item()


def residual_transfer(f: np.ndarray, sigma: float) -> np.ndarray:
    """Amplitude response of `x - g_sigma * x` along one image axis at f cycles per pixel.

    Computed for the sampled, truncated kernel that `gaussian_blur` applies, not the continuous
    1 - exp(-2 pi^2 sigma^2 f^2): the two agree for sigma >= 1 px, but the paper's sigma = 1/3
    samples to weights (0.011, 0.978, 0.011), a residual about 10x weaker at Nyquist than the
    continuous formula predicts.
    """
    radius = kernel_size(sigma) // 2
    k = np.arange(-radius, radius + 1)
    w = np.exp(-(k**2) / (2 * sigma**2))
    w /= w.sum()
    return 1 - np.cos(2 * np.pi * np.outer(np.asarray(f, dtype=float), k)) @ w
