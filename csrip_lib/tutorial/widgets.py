"""Notebook sliders (ipywidgets): redraw a matplotlib figure live while a parameter changes.

`live_figure(draw, name=slider, ...)` is the one mechanism; the explorers below only pick the
sliders and a drawing function from `csrip_lib.tutorial.figures`. The first draw happens on construction,
so a notebook executed headless (nbclient, `make demo`) still records a figure.

The figure is rendered to PNG here and written into the Output widget's `outputs` state, instead
of capturing `display()` inside `with out:`. Capturing depends on the front end routing messages
by parent id; headless nbclient runs intermittently hung on it (jupyter/nbclient#312), while a
state update is an ordinary widget message that every front end renders.

Figures survive a saved notebook in two ways: the explorer's display bundle also carries the
current figure as a plain `image/png` (what viewers without widgets show: GitHub, nbviewer, a
front end without the widget state), and JupyterLab saves the widget state with the notebook
(`install_lab_settings`, done by `make venv`), so a reopened notebook shows sliders and figure
instead of "Error displaying widget: model not found".

Sliders update continuously while dragged (the widget front end sends at most one update while
the kernel is busy and merges the rest, so a slow redraw never queues up stale values), show
"redrawing ..." while the kernel draws, and start on their step grid so one arrow key press is
one step.
"""
from __future__ import annotations

import base64
import io
import json
import math
import sys
from pathlib import Path
from typing import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt

from ..core.config import RESIDUAL_SIGMAS, DegradationConfig
from .figures import fig03_residuals, fig04_training_data, fig_alpha_balance

LABEL_WIDTH = "150px"  # every slider's description column, so the tracks line up
SLIDER_WIDTH = "640px"
# JupyterLab setting that stores widget state (incl. the Output's PNG) in the saved notebook
LAB_SETTINGS = {"@jupyter-widgets/jupyterlab-manager:plugin": {"saveState": True}}


def png_output(fig: plt.Figure) -> dict:
    """A figure as one nbformat display_data output (base64 PNG), for an Output widget's state."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
                     "text/plain": repr(fig)}}


def on_grid(value: float, lo: float, step: float) -> float:
    """`value` rounded to the slider grid lo + k * step (an arrow key press is then exactly one step)."""
    return round(lo + round((value - lo) / step) * step, 10)


def float_slider(value: float, lo: float, hi: float, step: float, description: str,
                 readout_format: str = ".2f") -> widgets.FloatSlider:
    """A continuously updating FloatSlider on its step grid, with the shared label width and a wide track."""
    return widgets.FloatSlider(value=on_grid(value, lo, step), min=lo, max=hi, step=step,
                               description=description, continuous_update=True,
                               readout_format=readout_format,
                               style={"description_width": LABEL_WIDTH},
                               layout=widgets.Layout(width=SLIDER_WIDTH))


class LiveFigure(widgets.VBox):
    """Sliders, a status line and an Output with the current figure (see `live_figure`).

    Displayed, it also offers the current figure as `image/png`, the static fallback that a
    saved notebook keeps for viewers that cannot restore the widgets.
    """

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        figure = self.children[-1].outputs
        if bundle is not None and figure:
            bundle["image/png"] = figure[0]["data"]["image/png"]
        return bundle


def live_figure(draw: Callable[..., plt.Figure], **sliders: widgets.ValueWidget) -> LiveFigure:
    """Sliders above an Output showing `draw(**slider_values)`; redrawn whenever a slider moves.

    `draw` returns a matplotlib Figure; it is shown inside the Output and closed, so figures
    do not pile up. A status line says "redrawing ..." while the kernel draws. Returns the box
    (display it, or leave it as a cell's last expression).
    """
    out = widgets.Output()
    status = widgets.HTML(layout=widgets.Layout(height="1.6em", margin="0 0 0 " + LABEL_WIDTH))

    def redraw(_change=None) -> None:
        values = {name: s.value for name, s in sliders.items()}
        status.value = "<i>redrawing " + ", ".join(f"{s.description} = {s.value:.3g}"
                                                   for s in sliders.values()) + " ...</i>"
        fig = draw(**values)
        out.outputs = (png_output(fig),)
        plt.close(fig)
        status.value = ""

    for s in sliders.values():
        s.observe(redraw, names="value")
    redraw()
    return LiveFigure([*sliders.values(), status, out])


def install_lab_settings(prefix: str | Path = sys.prefix) -> Path:
    """Make JupyterLab of environment `prefix` save widget state with notebooks (`LAB_SETTINGS`).

    Writes <prefix>/share/jupyter/lab/settings/overrides.json (keeping other overrides there), the
    file JupyterLab reads for environment-wide defaults. Returns its path.
    """
    path = Path(prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    current = json.loads(path.read_text()) if path.is_file() else {}
    for plugin, values in LAB_SETTINGS.items():
        current[plugin] = {**current.get(plugin, {}), **values}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n")
    return path


def sigma_explorer(hr, sigma: float = 1.0, max_sigma: float = 3.0) -> LiveFigure:
    """Notebook 01: a slider on the degradation blur (paper Sec. 3.3, Fig. 4 left).

    Redraws LR / 2x / 4x / HR and the 8x bicubic baseline with its PSNR / SSIM for the faces in
    `hr` (N x 3 x 192 x 192, a few faces) under DegradationConfig(sigma=slider value). Sigma 0 is
    plain 2x2 averaging (most aliasing).
    """
    return live_figure(
        lambda sigma: fig04_training_data(hr, DegradationConfig(sigma=sigma), residuals=False, bicubic=True),
        sigma=float_slider(sigma, 0.0, max_sigma, 0.1, "degradation σ (px)"))


def residual_explorer(hr, index: int = 0, degradation: DegradationConfig | None = None, max_sigma: float = 4.0,
                      ) -> LiveFigure:
    """Notebook 02: one slider per scale on the residual-image sigma (paper Sec. 3.3, Fig. 3).

    Redraws `figures.fig03_residuals` for face `index` of `hr`: the detail each SR module adds,
    the residual image with the chosen sigma, their correlation and power spectra (over all `hr`).
    The sliders start at the paper's sigmas rounded to their 0.05 grid (1/3 -> 0.35, 7/3 -> 2.35);
    `degradation` makes the pyramid (default DegradationConfig()).
    """
    def draw(sigma_48: float, sigma_96: float, sigma_192: float):
        return fig03_residuals(hr, degradation, index=index,
                               residual_sigmas={48: sigma_48, 96: sigma_96, 192: sigma_192})

    return live_figure(draw, **{f"sigma_{size}": float_slider(s, 0.1, max_sigma, 0.05,
                                                              f"residual σ at {size} px")
                                for size, s in RESIDUAL_SIGMAS.items()})


def alpha_explorer(terms: dict, alpha: float = 1e-3) -> LiveFigure:
    """Notebook 05: a log slider on alpha, the weight of the identity terms in Eq. 4 (Sec. 3.3).

    `terms` is `train_sr.term_gradients(model, loss, hr, labels)`: each term's value and gradient on
    a fixed batch. Moving the slider recombines them (gradients are linear in alpha) and redraws
    `figures.fig_alpha_balance`: loss terms, gradient norms and the identity share of the gradient.
    """
    slider = widgets.FloatLogSlider(value=10 ** on_grid(math.log10(max(alpha, 1e-5)), -5, 0.25), base=10, min=-5,
                                    max=0, step=0.25, description="α (identity weight)",
                                    continuous_update=True, readout_format=".1e",
                                    style={"description_width": LABEL_WIDTH},
                                    layout=widgets.Layout(width=SLIDER_WIDTH))
    return live_figure(lambda alpha: fig_alpha_balance(terms, alpha), alpha=slider)
