"""The paper's figures, one function per figure (numbering as in the paper).

Each function returns a matplotlib Figure and, with `save=True`, writes figures/figNN_name.png.
`csrip figures` regenerates all of them from checkpoints without executing notebooks. Faces are
degraded as the models shown were trained (`degradation.for_models`); `degradation=` / `--sigma`
override it, with a warning for each model trained otherwise.
"""
from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Rectangle
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from skimage import data as skdata

from ..core.config import HR_SIZE, RESIDUAL_SIGMAS, DegradationConfig, figures_dir, get_preset, project_root
from ..core.console import CSRIPError, nonnegative_float, positive_int
from ..core.degradation import degrade, for_models, make_pyramid, residual, upsample_bicubic
from ..core.outputs import check_dir
from ..data.faces import current_data, load_hr, resolve_data
from ..data.synthetic import is_synthetic
from ..evaluation.analysis import COARSER, SIZES, correlation, module_detail, radial_power_spectrum
from ..evaluation.error_analysis import MARGIN, concentration_curve, error_maps, loss_gradients, mass_fraction
from ..evaluation.evaluate import (csd_curve, evaluate_models, image_attributes, load_models, one_line_warnings,
                                   sample_images, sharpen, super_resolve, worst_images)
from ..evaluation.hallucinate import crop_square, detect_faces, face_crop_box
from ..evaluation.metrics import psnr, ssim_eval
from ..models.sr import CascadedSR, shape_table
from ..models.zoo import ABLATION_PAIR, DEFAULT_SR, available, manifest, resolve


TITLE_CHARS_PER_INCH = 13  # characters of a 9-point column title per inch of figure


def model_label(model) -> str:
    """A figure's name for an SR model: what `load_sr` read from its checkpoint (`describe_model`), else
    the class name (a model built in the notebook)."""
    return getattr(model, "label", type(model).__name__)


def made_by(models=None) -> tuple[str, str]:
    """(models, data) of a figure, as its footer says them: the SR models named from their checkpoint
    config (`model_label`; strings are names already), and the face folder of this process
    (`faces.current_data`), SYNTHETIC in capitals when it is the generated set."""
    names = ", ".join(m if isinstance(m, str) else model_label(m) for m in (models or [])) or "no SR model"
    data = current_data()
    where = ("not recorded" if data is None else
             f"SYNTHETIC faces ({data.name}), not LFW: not comparable to the paper" if is_synthetic(data) else
             f"faces of {data.name}")
    return names, where


def save_figure(fig: plt.Figure, name: str, dpi: int = 150, models=None) -> Path:
    """Write `fig` to figures_dir()/name (PNG) with a footer naming what made it (`made_by`), also kept
    in the PNG's text fields "Model" and "Data"; returns the path."""
    names, data = made_by(models)
    fig.text(0.5, 0, f"model: {names}  |  data: {data}", ha="center", va="top", fontsize=8,
             color="darkred" if data.startswith("SYNTHETIC") else "dimgray")
    path = figures_dir() / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight", metadata={"Model": names, "Data": data})
    return path


def figure_model(path: Path) -> str:
    """The "Model" a figure written by `save_figure` records ("" if none)."""
    with Image.open(path) as image:
        return image.text.get("Model", "") if hasattr(image, "text") else ""


def to_image(x: torch.Tensor):
    """C x H x W float tensor in [0, 1] -> H x W x C numpy array for imshow."""
    return x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()


# ---------------------------------------------------------------- degradation and residual figures (Figs. 3, 4)
def _show(ax, x: torch.Tensor, title: str) -> None:
    ax.imshow(to_image(x), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _show_detail(ax, d: torch.Tensor, title: str) -> None:
    """A zero-mean detail/residual image C x H x W as 0.5 + gain * d (gain printed in the title)."""
    gain = 0.45 / d.abs().flatten().float().quantile(0.995).clamp_min(1e-6).item()
    _show(ax, 0.5 + gain * d, f"{title} (x{gain:.0f})" if title else f"x{gain:.0f}")


def fig03_residuals(hr: torch.Tensor, degradation: DegradationConfig | None = None,
                    residual_sigmas: dict[int, float] | None = None, index: int = 0,
                    save: bool = False, name: str = "fig03_residuals.png") -> plt.Figure:
    """Fig. 3: each SR module adds fine details (left); recognizers see only such details (right).

    One row per scale (48, 96, 192 px) for face `index` of `hr` (N x 3 x 192 x 192): the bicubic 2x
    upsampling of the level below (what a module starts from), the target, the detail the module
    must add (their difference) and the residual image `x - g_sigma * x` a recognizer sees, with
    its correlation to that detail. The last column: radially averaged power spectra over all of
    `hr`, in cycles per face, with the Nyquist limit of the level below (dashed). `degradation`: the
    pyramid's (default DegradationConfig()); `residual_sigmas`: the residual images' blur per size.
    """
    sigmas = {**RESIDUAL_SIGMAS, **(residual_sigmas or {})}
    p = make_pyramid(hr, degradation)
    fig, axes = plt.subplots(3, 5, figsize=(10, 7), gridspec_kw={"width_ratios": [1, 1, 1, 1, 1.7]})
    for row, level in enumerate(COARSER):
        size, s = SIZES[level], sigmas[SIZES[level]]
        x, below = p[level], COARSER[level]
        detail, res = module_detail(p, level), residual(x, s)
        r = correlation(res[index:index + 1], detail[index:index + 1]).item()
        _show(axes[row, 0], upsample_bicubic(p[below][index:index + 1], 2)[0],
              f"bicubic 2x of {SIZES[below]} px")
        _show(axes[row, 1], x[index], f"target {size} px")
        _show_detail(axes[row, 2], detail[index], "module detail")
        _show_detail(axes[row, 3], res[index], f"residual Δx, σ={s:.2f}\ncorr {r:.2f}")
        ax = axes[row, 4]
        for label, img in [("image", x - x.mean((-2, -1), keepdim=True)), ("module detail", detail),
                           ("residual Δx (σ of its row)", res)]:
            f, power = radial_power_spectrum(img)
            ax.semilogy(f[1:] * size, power[1:], label=label)
        ax.axvline(SIZES[below] / 2, color="k", ls="--", lw=0.8, label="Nyquist limit of the level below")
        ax.set_xlabel("cycles per face", fontsize=9)
        ax.set_ylabel("power", fontsize=9)
        ax.tick_params(labelsize=9)
    fig.suptitle("Fig. 3: what each SR module adds (detail) and what its recognizer sees (residual)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.legend(*axes[0, 4].get_legend_handles_labels(), loc="lower center", ncol=4, fontsize=9,
               frameon=False)
    if save:
        save_figure(fig, name)
    return fig


def fig04_training_data(hr: torch.Tensor, degradation: DegradationConfig | None = None,
                        residual_sigmas: dict[int, float] | None = None, residuals: bool = True,
                        bicubic: bool = False, save: bool = False,
                        name: str = "fig04_training_data.png") -> plt.Figure:
    """Fig. 4: the quadruplet {lr, x2, x4, hr} of the degradation model (left) and the residual
    images of recognizer training (right), one row per face of `hr` (N x 3 x 192 x 192).

    `degradation` (default DegradationConfig()) makes the pyramid; `bicubic=True` adds the 8x bicubic
    baseline with its PSNR / SSIM (csrip_lib.evaluation.metrics); `residuals=False` drops the right half.
    """
    sigmas = {**RESIDUAL_SIGMAS, **(residual_sigmas or {})}
    degradation = degradation or DegradationConfig()
    p = make_pyramid(hr, degradation)
    columns = [(f"LR 24 px (σ={degradation.sigma:.2f})", p["lr"], False), ("2x 48 px", p["x2"], False),
               ("4x 96 px", p["x4"], False), ("HR 192 px", p["hr"], False)]
    if bicubic:
        sr = upsample_bicubic(p["lr"], 8)
        columns.append(("bicubic 8x", sr, False))
        scores = [f"{a:.2f} dB / {b:.3f}" for a, b in zip(psnr(sr, hr), ssim_eval(sr, hr))]
    if residuals:
        columns += [(f"Δx {SIZES[k]} px\nσ={sigmas[SIZES[k]]:.2f}",
                     residual(p[k], sigmas[SIZES[k]]), True) for k in ("x2", "x4", "hr")]
    n = len(hr)
    fig, axes = plt.subplots(n, len(columns), figsize=(1.45 * len(columns), 1.7 * n), squeeze=False)
    for i in range(n):
        for ax, (title, x, is_detail) in zip(axes[i], columns):
            (_show_detail if is_detail else _show)(ax, x[i], title if i == 0 else "")
        if bicubic:
            axes[i, 4].set_xlabel(scores[i], fontsize=9)
    fig.tight_layout()
    if save:
        save_figure(fig, name)
    return fig


# ---------------------------------------------------------------- SSIM loss vs squared error (Fig. 5)
def fig05_error_maps(hr: torch.Tensor, sizes: tuple[int, ...] = (24, 48, 96), index: int = 0,
                     degradation: DegradationConfig | None = None, save: bool = False,
                     name: str = "fig05_error_maps.png") -> plt.Figure:
    """Fig. 5: squared error (the MSE loss) vs 1 - SSIM (Eq. 3) of degraded faces against the truth.

    One row per input size in `sizes`: face `index` of `hr` (N x 3 x 192 x 192 in [0, 1]) degraded to
    that size (`degradation.degrade` under `degradation`) and upsampled back with bicubic interpolation;
    its squared-error map and its 1 - SSIM map (182 x 182 'valid' windows, mean over channels, each
    shown up to its own 99.5th percentile; the title gives the share of pixels that carries 90 % of
    the map's total, `error_analysis.mass_fraction`); and, over all faces of `hr`, concentration curves:
    the share of each signal on the top x % of pixels, for both maps (solid) and for the per-pixel
    gradient magnitudes of both losses (dashed; same 182 x 182 pixels). The diagonal is a perfectly
    uniform signal.
    """
    hr = hr.detach().float().cpu()
    fig, axes = plt.subplots(len(sizes), 4, figsize=(10, 2.9 * len(sizes)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.15, 1.15, 1.2]})
    for row, size in enumerate(sizes):
        factor = hr.shape[-1] // size
        if factor not in (2, 4, 8) or factor * size != hr.shape[-1]:
            raise ValueError(f"sizes must be {hr.shape[-1]} / 2, 4 or 8 (e.g. 24, 48, 96), got {size}")
        sr = upsample_bicubic(degrade(hr, factor, degradation), factor)
        se, dssim = error_maps(sr, hr)
        grads = {k: g[:, MARGIN:-MARGIN, MARGIN:-MARGIN] for k, g in loss_gradients(sr, hr).items()}
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
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=9)
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
        ax.set_xlabel("% of pixels (largest first)", fontsize=9)
        ax.set_ylabel("% of the total", fontsize=9)
        ax.set_title(f"concentration over {len(hr)} face(s)", fontsize=9)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        if row == 0:
            ax.legend(fontsize=9, loc="lower right")
    fig.suptitle("Fig. 5: squared error (MSE loss) is sparse, 1 - SSIM (Eq. 3) covers the whole face",
                 fontsize=11)
    fig.tight_layout()
    if save:
        save_figure(fig, name)
    return fig


# ---------------------------------------------------------------- evaluation figures (Figs. 6-10, 12, 13)
def _scores_label(x: torch.Tensor, target: torch.Tensor) -> str:
    x, target = x[None].float(), target[None].float()
    return f"{psnr(x, target).item():.2f} dB / {ssim_eval(x, target).item():.3f}"


def image_grid(columns: dict[str, torch.Tensor], scores: bool = True, cell: float = 1.7,
               title: str | None = None, notes: list[str] | None = None) -> plt.Figure:
    """Rows = images, columns = named N x 3 x H x W batches (e.g. `evaluate.super_resolve`). With
    `scores`, every column between the first and the last (the target) is labelled PSNR / SSIM;
    `notes` (one per row) go under the first column."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    note_lines = max((t.count("\n") + 1 for t in notes), default=0) if notes else 0
    fig, axes = plt.subplots(n, len(names), figsize=(cell * len(names), (cell + 0.3 + 0.16 * note_lines) * n),
                             squeeze=False)
    target = columns[names[-1]]
    for r in range(n):
        for c, name in enumerate(names):
            ax = axes[r, c]
            ax.imshow(to_image(columns[name][r]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:  # long model names (`describe_model` labels) wrap to the column's width
                ax.set_title(textwrap.fill(name, width=int(cell * TITLE_CHARS_PER_INCH)), fontsize=9)
            if scores and 0 < c < len(names) - 1 and columns[name].shape == target.shape:
                ax.set_xlabel(_scores_label(columns[name][r], target[r]), fontsize=9)
        if notes:
            axes[r, 0].set_xlabel(notes[r], fontsize=9)
    fig.tight_layout()
    if title:  # above the axes, after the layout: saved with bbox_inches="tight"
        fig.suptitle(title, fontsize=10, y=1.0, va="bottom")
    return fig


def fig06_qualitative(models: dict, hr: torch.Tensor, save: bool = False, name: str = "fig06_qualitative.png",
                      title: str | None = None, device=None, degradation: DegradationConfig | None = None
                      ) -> plt.Figure:
    """Fig. 6: LR input (nearest-upscaled) / bicubic / each model / target, PSNR / SSIM per image."""
    fig = image_grid(super_resolve(models, hr, degradation, device=device), title=title)
    if save:
        save_figure(fig, name, models=models.values())
    return fig


def photo_samples(models: dict, photo: torch.Tensor | None = None, title: str | None = None) -> plt.Figure:
    """Fig. 6's grid on a photo that is not LFW: the first face `csrip hallucinate` finds (framed as the
    training faces are), its 192 px crop as the target. Default photo: scikit-image's astronaut (NASA,
    public domain), so the figure can be shipped (checkpoints/MODEL_CARD.md's samples)."""
    photo = torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).contiguous() if photo is None else photo
    faces = detect_faces(photo)
    if not faces:
        raise CSRIPError("no face found in the photo")
    face = crop_square(photo, *face_crop_box(faces[0]["box"]))
    hr = torch.nn.functional.interpolate(face[None], size=(HR_SIZE, HR_SIZE), mode="bicubic", antialias=True,
                                         align_corners=False).clamp(0, 1)
    return image_grid(super_resolve(models, hr), title=title)


FIGURES = ("fig02_architecture.png", "fig03_residuals.png", "fig04_training_data.png", "fig05_error_maps.png",
           "fig06_qualitative.png", "fig07_details.png", "fig08_csd.png", "fig09_ablation.png", "fig10_failures.png",
           "fig12_intermediate.png", "fig13_sharpening.png")  # what `csrip figures` makes, or removes
GALLERY = Path("docs") / "gallery.png"  # the README's picture, under the project root (committed)
GALLERY_FACES = 8  # at most this many LFW faces (test split, with the citation) are committed: the only LFW pixels here


def gallery(model, hr: torch.Tensor, degradation: DegradationConfig | None = None, device=None,
            cell: float = 1.0) -> plt.Figure:
    """The README's first picture: one column per face, rows the 24 px input, bicubic, `model` and the
    photo (Fig. 6's comparison turned on its side, without scores, to fit a screen's width)."""
    label = model_label(model)
    cols = super_resolve({label: model}, hr, degradation, device=device)
    rows = {"24 px input": cols["LR input"], "bicubic": cols["Bicubic"], label.split(" (")[0]: cols[label],
            "photo": cols["Target"]}
    fig, axes = plt.subplots(len(rows), len(hr), figsize=(cell * len(hr), cell * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows.items()):
        for c, image in enumerate(images):
            axes[r, c].imshow(to_image(image))
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=9)
    fig.subplots_adjust(wspace=0.03, hspace=0.03, left=0.06, right=1, bottom=0, top=0.93)
    fig.suptitle(f"8x from 24 px by {label}; test-split LFW faces it never saw", fontsize=9, y=0.99)
    return fig


def save_gallery(name: str, data=None, n: int = GALLERY_FACES, seed: int = 0, device=None) -> Path:
    """Draw `gallery` for the shipped model `name` on `n` test-split faces of real `data` and write it to
    GALLERY, recording the model's name and SHA-256 in the PNG (tests/test_gallery.py compares them
    with the default model)."""
    if not 0 < n <= GALLERY_FACES:
        raise CSRIPError(f"the gallery shows 1 to {GALLERY_FACES} faces, not {n}")
    root = resolve_data(data)
    if is_synthetic(root):
        raise CSRIPError(f"{root} is the synthetic face set; the gallery shows real faces: pass --data with "
                         "LFW (`make data`) or set CSRIP_DATA")
    hr, _ = sample_images(root, "test", n=n, seed=seed)
    model = load_models([name])[name]
    fig = gallery(model, hr, device=device)
    entry = manifest()[name]
    path = project_root() / GALLERY
    path.parent.mkdir(exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100)
    plt.close(fig)
    info = PngInfo()  # what made it, read back by tests/test_gallery.py
    for key, value in {"Title": f"csrip gallery: {model_label(model)}", "Model": name,
                       "Model SHA-256": entry["files"][entry["path"]],
                       "Data": f"{len(hr)} test-split faces of {root.name}, seed {seed}",
                       "Colours": "256 (median cut), to keep the committed file small"}.items():
        info.add_text(key, value)
    Image.open(buffer).convert("RGB").quantize(256).save(path, pnginfo=info, optimize=True)
    return path


def fig07_details(models: dict, hr: torch.Tensor, box: tuple[int, int, int] = (56, 48, 96),
                  save: bool = False, device=None, degradation: DegradationConfig | None = None) -> plt.Figure:
    """Fig. 7: every image of Fig. 6 followed by a row of zoomed crops of the highlighted `box`
    (top, left, size in 192 px coordinates; default: eyes and nose)."""
    top, left, size = box
    cols = super_resolve(models, hr, degradation, device=device)
    rows = {}
    for k, v in cols.items():
        zoom = torch.nn.functional.interpolate(v[..., top:top + size, left:left + size],
                                               size=v.shape[-2:], mode="nearest")
        rows[k] = torch.stack([t for pair in zip(v, zoom) for t in pair])
    fig = image_grid(rows, scores=False)
    for r in range(0, 2 * len(hr), 2):
        for c in range(len(cols)):
            fig.axes[r * len(cols) + c].add_patch(
                Rectangle((left - 0.5, top - 0.5), size, size, fill=False, ec="yellow", lw=1))
    if save:
        save_figure(fig, "fig07_details.png", models=models.values())
    return fig


def fig08_csd(results, models: list[str] | None = None, save: bool = False) -> plt.Figure:
    """Fig. 8: cumulative score distributions of PSNR (left) and SSIM (right): the fraction of test
    images scoring at least x. Curves further right are better."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, unit in zip(axes, ("psnr", "ssim"), ("PSNR [dB]", "SSIM")):
        curve = csd_curve(results, metric, models)
        for name, c in curve.groupby("model", sort=False):
            ax.plot(c["threshold"], c["fraction"], label=name, lw=2 if name.lower() in ("c-srip", "csrip") else 1.3)
        ax.set_xlabel(unit)
        ax.set_ylabel("fraction of images with score >= x")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=9)
    fig.suptitle("Cumulative score distribution (Fig. 8)", fontsize=10)
    fig.tight_layout()
    if save:
        save_figure(fig, "fig08_csd.png", models=[str(m) for m in (models or results["model"].unique())
                                                  if m not in ("bicubic", "hr")])
    return fig


def fig09_ablation(models: dict, hr: torch.Tensor, save: bool = False, device=None,
                   degradation: DegradationConfig | None = None) -> plt.Figure:
    """Fig. 9: the ablation variants (Baseline, B+SSIM, C+SSIM, C+SSIM+M, C-SRIP) side by side."""
    return fig06_qualitative(models, hr, save=save, name="fig09_ablation.png", device=device, degradation=degradation)


def fig10_failures(results, model_name: str, model, root, attributes=None, k: int = 6,
                   save: bool = False, device=None, degradation: DegradationConfig | None = None) -> plt.Figure:
    """Fig. 10: the `k` test images with the lowest SSIM for `model_name` (LR / bicubic / model /
    target), annotated with the image attributes of `evaluate.image_attributes` (Sec. 4.4)."""
    worst = worst_images(results, model_name, k)
    hr = torch.stack([load_hr(Path(root) / p) for p in worst["image"]]).float() / 255
    notes = [f"{p.split('/')[0][:20]}" for p in worst["image"]]
    if attributes is not None:  # spelled out; `evaluate.image_attributes` defines them
        attrs = attributes.set_index("image").loc[worst["image"]]
        notes = [f"{n}\nhigh-freq. energy {a.hf_energy:.3f}\natypicality {a.atypicality:.3f}\n"
                 f"asymmetry {a.asymmetry:.3f}" for n, a in zip(notes, attrs.itertuples())]
    fig = image_grid(super_resolve({model_name: model}, hr, degradation, device=device), notes=notes, cell=2.0,
                     title=f"Worst {k} test images by SSIM for {model_name} (Fig. 10)")
    if save:
        save_figure(fig, "fig10_failures.png", models=[model])
    return fig


@torch.no_grad()
def fig12_intermediate(model, hr: torch.Tensor, save: bool = False,
                       degradation: DegradationConfig | None = None, filename: str = "fig12_intermediate.png"
                       ) -> plt.Figure:
    """Fig. 12 (A.1): the 2x (48 px) and 4x (96 px) outputs of the first two SR modules,
    `model(lr, all_scales=True)`, next to bicubic and the ground truth at the same size."""
    label = model_label(model)
    degradation = for_models({label: model}, degradation)
    model = model.eval()
    device = next(model.parameters()).device
    pyr = make_pyramid(hr.to(device), degradation)
    x48, x96, _ = model(pyr["lr"], all_scales=True)
    lr = pyr["lr"]
    cols = {"LR input": lr, "Bicubic 48": upsample_bicubic(lr, 2), "SR 48": x48, "GT 48": pyr["x2"],
            "Bicubic 96": upsample_bicubic(lr, 4), "SR 96": x96, "GT 96": pyr["x4"]}
    cols = {k: v.float().clamp(0, 1).cpu() for k, v in cols.items()}
    fig = image_grid(cols, scores=False, cell=1.4)
    for r in range(len(hr)):
        for c, (name, gt) in enumerate([("Bicubic 48", "GT 48"), ("SR 48", "GT 48"),
                                        ("Bicubic 96", "GT 96"), ("SR 96", "GT 96")]):
            col = list(cols).index(name)
            fig.axes[r * len(cols) + col].set_xlabel(_scores_label(cols[name][r], cols[gt][r]), fontsize=9)
    fig.suptitle(f"Intermediate scales: 2x and 4x outputs (SR) of {label} (Fig. 12)", fontsize=10, y=1.0,
                 va="bottom")
    if save:
        save_figure(fig, filename, models=[model])
    return fig


def fig13_sharpening(model, hr: torch.Tensor, save: bool = False, device=None,
                     degradation: DegradationConfig | None = None) -> plt.Figure:
    """Fig. 13 (A.2): the model's output and the same output sharpened with the 3x3 kernel
    [0,-1,0; -1,5,-1; 0,-1,0] (clipped), next to the LR input and the target."""
    label = model_label(model)
    cols = super_resolve({label: model}, hr, degradation, device=device)
    cols = {"LR input": cols["LR input"], label: cols[label], "Enhanced": sharpen(cols[label]),
            "Target": cols["Target"]}
    fig = image_grid(cols, title="Sharpening post-process (A.2, Fig. 13)")
    if save:
        save_figure(fig, "fig13_sharpening.png", models=[model])
    return fig


# ------------------------------------------------------------- the cascade and its loss (notebook 05)
def fig02_architecture(table, title: str = "", save: bool = False, model=None) -> plt.Figure:
    """Fig. 2/11 as measured: channels and resolution after every layer of a real forward pass.

    `table` is `models.sr.shape_table(model)` (`model`, if given, is named in the footer); branch heads (the 2x/4x RGB outputs used in training)
    are drawn in orange, the main path in blue, pixel shuffles as dashed lines.
    """
    rows = table[~table["type"].isin(["LeakyReLU"])].reset_index(drop=True)
    ch = [s[0] for s in rows["output (C, H, W)"]]
    px = [s[1] for s in rows["output (C, H, W)"]]
    colors = ["tab:orange" if n.startswith("heads") else "tab:blue" for n in rows["layer"]]
    fig, (a, b) = plt.subplots(2, 1, figsize=(min(10.0, max(7.0, 0.32 * len(rows))), 6), sharex=True)
    x = range(len(rows))
    a.bar(x, ch, color=colors)
    a.set_yscale("log", base=2)
    a.set_ylabel("channels")
    b.bar(x, px, color=colors)
    b.set_yscale("log", base=2)
    b.set_yticks([24, 48, 96, 192], ["24", "48", "96", "192"])
    b.set_ylabel("resolution (px)")
    for i, t in enumerate(rows["type"]):
        if t == "PixelShuffle":
            for ax in (a, b):
                ax.axvline(i, color="grey", ls="--", lw=0.8)
    b.set_xticks(list(x), [f"{n} ({t})" for n, t in zip(rows["layer"], rows["type"])], rotation=90, fontsize=9)
    total = int(table["parameters"].sum())
    fig.suptitle(title or f"Cascaded SR network: {total:,} parameters (blue: main path, orange: 2x/4x "
                 "branches, dashed: pixel shuffle)", fontsize=10)
    fig.tight_layout()
    if save:
        save_figure(fig, "fig02_architecture.png", models=None if model is None else [model])
    return fig


def fig_alpha_balance(terms: dict, alpha: float, alphas=None) -> plt.Figure:
    """How alpha balances Eq. 4 on one batch, from `train_sr.term_gradients` output.

    Left: each scale's reconstruction term and alpha x its identity term. Middle: the norms of the
    reconstruction gradient, of alpha x the identity gradient and of their sum (gradients are linear
    in alpha, so this is exact for every alpha). Right: the identity share of the gradient over a
    range of alphas, the chosen alpha and the paper's 0.001 marked.
    """
    rec = {k: v for k, v in terms.items() if not k.startswith("ce")}
    ce = {k: v for k, v in terms.items() if k.startswith("ce")}
    g_rec = sum(g for _, g in rec.values())
    g_ce = sum(g for _, g in ce.values()) if ce else torch.zeros_like(g_rec)
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(10, 3.4))
    scales = [int("".join(filter(str.isdigit, k))) for k in rec]
    x = np.arange(len(scales))
    a.bar(x - 0.2, [v for v, _ in rec.values()], 0.4, label="reconstruction")
    a.bar(x + 0.2, [alpha * ce.get(f"ce{s}", (0.0, None))[0] for s in scales], 0.4, label="α x identity CE")
    a.set_xticks(x, [f"{s} px" for s in scales])
    a.set_title("loss terms", fontsize=9)
    a.legend(fontsize=9)
    norms = [g_rec.norm().item(), alpha * g_ce.norm().item(), (g_rec + alpha * g_ce).norm().item()]
    b.bar(["recon-\nstruction", "α x\nidentity", "total"], norms, color=["tab:blue", "tab:orange", "tab:grey"])
    cos = torch.nn.functional.cosine_similarity(g_rec, g_ce, dim=0).item() if ce else float("nan")
    b.set_title(f"gradient norms (cos between the two: {cos:+.2f})", fontsize=9)
    b.tick_params(labelsize=9)
    alphas = np.logspace(-5, 0, 60) if alphas is None else np.asarray(alphas)
    nr, nc = g_rec.norm().item(), g_ce.norm().item()
    c.semilogx(alphas, alphas * nc / (nr + alphas * nc + 1e-30), color="tab:orange")
    c.axvline(alpha, color="k", lw=1, label=f"α = {alpha:.2g}")
    c.axvline(1e-3, color="grey", ls="--", lw=1, label="paper: 0.001")
    c.set_ylim(0, 1)
    c.set_xlabel("α")
    c.set_title("identity share of the gradient", fontsize=9)
    c.legend(fontsize=9)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------ `csrip figures`
def add_arguments(p) -> None:
    p.add_argument("--checkpoint", nargs="*", default=[], metavar="CKPT",
                   help="SR checkpoints or shipped names; the first is the main model, all appear "
                        f"in Figs. 6/7, two or more also give the ablation Fig. 9 (default: the shipped {DEFAULT_SR})")
    p.add_argument("--data", default=None, help="face folder (default: $CSRIP_DATA, data/lfw-deepfunneled, "
                   "else synthetic faces); examples come from its identity-disjoint test split")
    p.add_argument("--results", default=None, metavar="CSV",
                   help="per-image results of `csrip evaluate` for Figs. 8/10 (default: evaluate now)")
    p.add_argument("--max-images", type=positive_int, default=300,
                   help="test images evaluated for Figs. 8/10 when --results is not given")
    p.add_argument("--examples", type=positive_int, default=4, help="faces per qualitative figure")
    p.add_argument("--seed", type=int, default=0, help="which test faces are shown")
    p.add_argument("--only", nargs="*", default=None, metavar="FIG",
                   help="regenerate only these figures, e.g. --only fig06 fig08; `--only gallery` rewrites the "
                        f"README's {GALLERY} from real test faces (never made otherwise)")
    p.add_argument("--sigma", type=nonnegative_float, default=None, help="degradation blur per 2x step in pixels "
                   "(default: the one the models were trained with, saved in their checkpoints; older ones: 1.0)")
    p.add_argument("--device", default=None)


def run(args) -> int:
    """Regenerate every figure the notebooks make, from checkpoints, without running notebooks."""
    with one_line_warnings("figures"):
        return _run(args)


FIGURE_KEYS = tuple(f.split("_")[0] for f in FIGURES)  # what --only names: fig02 ... fig13
RESULT_COLUMNS = ("model", "image", "psnr", "ssim")  # what Figs. 8 and 10 read of `csrip evaluate`'s CSV


def read_results(path: str | Path) -> pd.DataFrame:
    """The per-image results CSV of `csrip evaluate` (`--results`); CSRIPError if it is not one."""
    try:
        df = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:  # empty, not a CSV
        raise CSRIPError(f"--results {path} is not a readable CSV ({' '.join(str(e).split())[:100]})") from None
    missing = [c for c in RESULT_COLUMNS if c not in df]
    if missing:
        raise CSRIPError(f"--results {path} lacks the column(s) {', '.join(missing)}; expected the per-image CSV "
                         "that `csrip evaluate --out` writes")
    return df


def _run(args) -> int:
    if args.only and "gallery" in args.only:  # only when named: it rewrites a committed file
        name = args.checkpoint[0] if args.checkpoint else DEFAULT_SR
        if name not in available("sr") or len(args.checkpoint) > 1:
            raise CSRIPError(f"the gallery shows one shipped model (default {DEFAULT_SR}), not {args.checkpoint}")
        print(f"wrote {save_gallery(name, args.data, seed=args.seed, device=args.device)} (model {name})")
        args.only = [f for f in args.only if f != "gallery"]
        if not args.only:
            return 0
    unknown = [f for f in args.only or [] if f.split("_")[0] not in FIGURE_KEYS]
    if unknown:
        raise CSRIPError(f"--only {' '.join(unknown)}: no such figure; known: {' '.join(FIGURE_KEYS)}, gallery")
    check_dir(figures_dir(create=False), "figures folder")
    root = resolve_data(args.data)
    hr, _ = sample_images(root, "test", n=args.examples, seed=args.seed)
    written = []
    want = lambda name: not args.only or name.split("_")[0] in {f.split("_")[0] for f in args.only}

    def done(name: str, fig: plt.Figure) -> None:
        written.append(figures_dir() / name)
        plt.close(fig)
        print(f"wrote {figures_dir() / name} (model: {figure_model(figures_dir() / name)})")

    def skip(name: str, why: str) -> None:  # an older copy, made by another model or run, would mislead
        stale = figures_dir() / name
        removed = stale.is_file()
        if removed:
            stale.unlink()
        print(f"skipping {name}: {why}" + (f"; removed the older {stale}" if removed else ""))

    if args.checkpoint:
        models = load_models(args.checkpoint, map_location="cpu")
        for label in (model_label(m) for m in models.values()):
            print(f"using {label}")
    else:  # the default model, if shipped (resolve says which)
        models = load_models([resolve(None)] if DEFAULT_SR in available("sr") else [], map_location="cpu")
    main_name, main = next(iter(models.items()), (None, None))
    deg = for_models(models, None if args.sigma is None else DegradationConfig(sigma=args.sigma))
    if want("fig02"):  # the architecture of the main model (or of the paper preset)
        if main is not None:
            arch, made = main, [main]
        else:
            with torch.device("meta"):  # shapes only: no weights, no compute
                arch, made = CascadedSR(get_preset("paper").sr), ["the paper preset's shapes (no weights)"]
        done("fig02_architecture.png", fig02_architecture(shape_table(arch), save=True, model=made[0]))
    for name, fn in (("fig03_residuals.png", fig03_residuals), ("fig04_training_data.png", fig04_training_data),
                     ("fig05_error_maps.png", fig05_error_maps)):
        if want(name):
            done(name, fn(hr, degradation=deg, save=True))
    if main is None:
        for name in FIGURES[4:]:
            if want(name):
                skip(name, "it needs a trained SR model; pass --checkpoint runs/<preset>/sr/best.pt "
                           "(from `csrip train-sr`)")
        print(f"{len(written)} figures in {figures_dir()}")
        return 0
    if want("fig06"):
        done("fig06_qualitative.png", fig06_qualitative(models, hr, save=True, device=args.device, degradation=deg))
    if want("fig07"):
        done("fig07_details.png", fig07_details(models, hr[:3], save=True, device=args.device, degradation=deg))
    if not (want("fig08") or want("fig10")):
        results = None
    elif args.results:
        results = read_results(args.results)
        missing = set(models) - set(results["model"])
        if missing:
            raise CSRIPError(f"{args.results} has no rows for {sorted(missing)}; evaluate those checkpoints first")
    else:
        results = evaluate_models(models, root, "test", max_images=args.max_images, device=args.device,
                                  degradation=deg)
    if want("fig08"):
        done("fig08_csd.png", fig08_csd(results, save=True))
    pair = models if len(models) > 1 else (
        load_models(list(ABLATION_PAIR), map_location="cpu") if set(ABLATION_PAIR) <= set(available("sr")) else {})
    if want("fig09") and pair:
        override = None if args.sigma is None else DegradationConfig(sigma=args.sigma)
        done("fig09_ablation.png", fig09_ablation(pair, hr, save=True, device=args.device,
                                                  degradation=for_models(pair, override)))
    elif want("fig09"):
        skip("fig09_ablation.png", "pass two or more checkpoints, e.g. the runs of `csrip ablation` (the shipped "
                                   f"pair {', '.join(ABLATION_PAIR)} is not there)")
    if want("fig10"):
        attrs = image_attributes(root, "test", max_images=args.max_images)
        done("fig10_failures.png", fig10_failures(results, main_name, main, root, attrs, save=True,
                                                  device=args.device, degradation=deg))
    if want("fig12") and isinstance(main, CascadedSR):
        done("fig12_intermediate.png", fig12_intermediate(main, hr, save=True, degradation=deg))
    elif want("fig12"):
        skip("fig12_intermediate.png", f"{main_name} is not a cascade (no 2x/4x outputs)")
    if want("fig13"):
        done("fig13_sharpening.png", fig13_sharpening(main, hr, save=True, device=args.device, degradation=deg))
    print(f"{len(written)} figures in {figures_dir()}")
    return 0
