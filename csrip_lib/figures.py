"""The paper's figures, one function per figure (numbering as in the paper).

Each function returns a matplotlib Figure and, with `save=True`, writes figures/figNN_name.png.
`csrip figures` regenerates all of them from checkpoints without executing notebooks.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import torch

from .config import figures_dir


def save_figure(fig: plt.Figure, name: str, dpi: int = 150) -> Path:
    """Write `fig` to figures_dir()/name (PNG) and return the path."""
    path = figures_dir() / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def to_image(x: torch.Tensor):
    """C x H x W float tensor in [0, 1] -> H x W x C numpy array for imshow."""
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


# ---------------------------------------------------------------- SSIM loss vs squared error (Fig. 5)
def fig05_error_maps(hr: torch.Tensor, sizes: tuple[int, ...] = (24, 48, 96), index: int = 0,
                     sigma: float | None = None, save: bool = False,
                     name: str = "fig05_error_maps.png") -> plt.Figure:
    """Fig. 5: squared error (the MSE loss) vs 1 - SSIM (Eq. 3) of degraded faces against the truth.

    One row per input size in `sizes`: face `index` of `hr` (N x 3 x 192 x 192 in [0, 1]) degraded to
    that size (`degradation.degrade`, blur `sigma`) and upsampled back with bicubic interpolation;
    its squared-error map and its 1 - SSIM map (182 x 182 'valid' windows, mean over channels, each
    shown up to its own 99.5th percentile; the title gives the share of pixels that carries 90 % of
    the map's total, `metrics.mass_fraction`); and, over all faces of `hr`, concentration curves:
    the share of each signal on the top x % of pixels, for both maps (solid) and for the per-pixel
    gradient magnitudes of both losses (dashed). The diagonal is a perfectly uniform signal.
    """
    from .degradation import degrade, upsample_bicubic
    from .metrics import concentration_curve, error_maps, loss_gradients, mass_fraction, psnr, ssim_eval

    hr = hr.detach().float().cpu()
    fig, axes = plt.subplots(len(sizes), 4, figsize=(14, 3.4 * len(sizes)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.15, 1.15, 1.2]})
    for row, size in enumerate(sizes):
        factor = hr.shape[-1] // size
        if factor not in (2, 4, 8) or factor * size != hr.shape[-1]:
            raise ValueError(f"sizes must be {hr.shape[-1]} / 2, 4 or 8 (e.g. 24, 48, 96), got {size}")
        sr = upsample_bicubic(degrade(hr, factor, sigma), factor)
        se, dssim = error_maps(sr, hr)
        grads = loss_gradients(sr, hr)
        one, target = sr[index:index + 1], hr[index:index + 1]
        ax = axes[row, 0]
        ax.imshow(to_image(sr[index]), interpolation="nearest")
        ax.set_title(f"{size} px -> {hr.shape[-1]} px (bicubic)\n"
                     f"{psnr(one, target).item():.2f} dB, SSIM {ssim_eval(one, target).item():.3f}", fontsize=9)
        for ax, m, title in ((axes[row, 1], se, "squared error"), (axes[row, 2], dssim, "1 - SSIM")):
            img = m[index]
            im = ax.imshow(img.numpy(), cmap="inferno", vmin=0, vmax=img.quantile(0.995).item(),
                           interpolation="nearest")
            share = 100 * mass_fraction(m[index:index + 1]).item()
            ax.set_title(f"{title}\n90 % of it on {share:.0f} % of the pixels", fontsize=9)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=7)
        for ax in axes[row, :3]:
            ax.set_xticks([])
            ax.set_yticks([])
        ax = axes[row, 3]
        for label, e, color, style in (("squared error", se, "C0", "-"), ("1 - SSIM", dssim, "C3", "-"),
                                       ("|grad| MSE loss", grads["mse"], "C0", "--"),
                                       ("|grad| SSIM loss", grads["ssim"], "C3", "--")):
            f, c = concentration_curve(e)
            ax.plot(100 * f, 100 * c, style, color=color, label=label)
        ax.plot([0, 100], [0, 100], color="0.6", lw=0.8, label="uniform")
        ax.axhline(90, color="0.8", lw=0.6)
        ax.set_xlabel("% of pixels (largest first)", fontsize=8)
        ax.set_ylabel("% of the total", fontsize=8)
        ax.set_title(f"concentration over {len(hr)} face(s)", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        if row == 0:
            ax.legend(fontsize=7, loc="lower right")
    fig.suptitle("Fig. 5: squared error (MSE loss) is sparse, 1 - SSIM (Eq. 3) covers the whole face",
                 fontsize=11)
    fig.tight_layout()
    if save:
        save_figure(fig, name)
    return fig
