"""Notebook sliders (ipywidgets): redraw a matplotlib figure live while a parameter changes.

`live_figure(draw, name=slider, ...)` is the one mechanism; the explorers below only pick the
sliders and a drawing function from `csrip_lib.figures`. The first draw happens on construction,
so a notebook executed headless (nbclient, `make demo`) still records a figure, and the sliders
update on release (`continuous_update=False`) because a redraw takes a fraction of a second.

The figure is rendered to PNG here and written into the Output widget's `outputs` state, instead
of capturing `display()` inside `with out:`. Capturing depends on the front end routing messages
by parent id; headless nbclient runs intermittently hung on it (jupyter/nbclient#312), while a
state update is an ordinary widget message that every front end renders.
"""
from __future__ import annotations

import base64
import io
from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt


def png_output(fig: plt.Figure) -> dict:
    """A figure as one nbformat display_data output (base64 PNG), for an Output widget's state."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                     "text/plain": repr(fig)}}


def float_slider(value: float, lo: float, hi: float, step: float, description: str,
                 readout_format: str = ".2f") -> widgets.FloatSlider:
    """A FloatSlider that fires on release, with a readable label width."""
    return widgets.FloatSlider(value=value, min=lo, max=hi, step=step, description=description,
                               continuous_update=False, readout_format=readout_format,
                               style={"description_width": "initial"},
                               layout=widgets.Layout(width="420px"))


def live_figure(draw: Callable[..., plt.Figure], **sliders: widgets.ValueWidget) -> widgets.VBox:
    """Sliders above an Output showing `draw(**slider_values)`; redrawn whenever a slider moves.

    `draw` returns a matplotlib Figure; it is shown inside the Output and closed, so figures
    do not pile up. Returns the VBox (display it, or leave it as a cell's last expression).
    """
    out = widgets.Output()

    def redraw(_change=None) -> None:
        fig = draw(**{name: s.value for name, s in sliders.items()})
        out.outputs = (png_output(fig),)
        plt.close(fig)

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    return widgets.VBox([*sliders.values(), out])


def sigma_explorer(hr, sigma: float = 1.0, max_sigma: float = 3.0) -> widgets.VBox:
    """Notebook 01: a slider on the degradation blur (paper Sec. 3.3, Fig. 4 left).

    Redraws LR / 2x / 4x / HR and the 8x bicubic baseline with its PSNR / SSIM for the faces in
    `hr` (N x 3 x 192 x 192, a few faces). Sigma 0 is plain 2x2 averaging (most aliasing).
    """
    from .figures import fig04_training_data

    return live_figure(
        lambda sigma: fig04_training_data(hr, sigma=sigma, residuals=False, bicubic=True),
        sigma=float_slider(sigma, 0.0, max_sigma, 0.1, "degradation σ (px)"))


def residual_explorer(hr, index: int = 0, sigma: float | None = None, max_sigma: float = 4.0,
                      ) -> widgets.VBox:
    """Notebook 02: one slider per scale on the residual-image sigma (paper Sec. 3.3, Fig. 3).

    Redraws `figures.fig03_residuals` for face `index` of `hr`: the detail each SR module adds,
    the residual image with the chosen sigma, their correlation and power spectra (over all `hr`).
    """
    from .config import RESIDUAL_SIGMAS
    from .figures import fig03_residuals

    def draw(sigma_48: float, sigma_96: float, sigma_192: float):
        return fig03_residuals(hr, sigma=sigma, index=index,
                               residual_sigmas={48: sigma_48, 96: sigma_96, 192: sigma_192})

    return live_figure(draw, **{f"sigma_{size}": float_slider(s, 0.1, max_sigma, 0.05,
                                                              f"residual σ at {size} px")
                                for size, s in RESIDUAL_SIGMAS.items()})


def alpha_explorer(terms: dict, alpha: float = 1e-3) -> widgets.VBox:
    """Notebook 05: a log slider on alpha, the weight of the identity terms in Eq. 4 (Sec. 3.3).

    `terms` is `train_sr.term_gradients(model, loss, hr, labels)`: each term's value and gradient on
    a fixed batch. Moving the slider recombines them (gradients are linear in alpha) and redraws
    `figures.fig_alpha_balance`: loss terms, gradient norms and the identity share of the gradient.
    """
    from .figures import fig_alpha_balance

    slider = widgets.FloatLogSlider(value=alpha, base=10, min=-5, max=0, step=0.25, description="alpha",
                                    continuous_update=False, readout_format=".1e",
                                    layout=widgets.Layout(width="420px"))
    return live_figure(lambda alpha: fig_alpha_balance(terms, alpha), alpha=slider)
