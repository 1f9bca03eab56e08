"""csrip_lib: C-SRIP face hallucination (Grm, Scheirer, Struc), a tested reimplementation.

The notebooks import from here, as d2l's notebooks import from `d2l`:

    from csrip_lib import evaluate_models, pick_device, resolve_data
    from csrip_lib.tutorial import tour

`API` says which module owns each name. Names are looked up on first use (PEP 562 `__getattr__`), so
`import csrip_lib` (and `csrip --help`) imports no torch. Modules themselves (`figures`, `tour`, ...)
import the usual way. The modules and their floors: docs/library.md, tests/test_layering.py.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# module -> the names the notebooks use. A name never equals a module's name: importing module
# csrip_lib.x binds csrip_lib.x to the module, which would hide a function x of this facade; so the
# entry points `train_sr` and `train_recognizers` are imported from their modules.
API: dict[str, tuple[str, ...]] = {
    "core.config": ("RESIDUAL_SIGMAS", "SCALES", "DegradationConfig", "figures_dir", "get_preset", "runs_dir"),
    "core.runtime": ("pick_device",),
    "core.degradation": ("DEFAULT_SIGMA", "degrade", "gaussian_blur", "kernel_size", "make_pyramid", "residual",
                    "upsample_bicubic"),
    "data.faces": ("FaceFolder", "load_cached", "resolve_data"),
    "losses": ("K1", "K2", "CSRIPLoss", "SSIMLoss", "ssim"),
    "evaluation.metrics": ("psnr", "ssim_eval"),
    "evaluation.error_analysis": ("MARGIN", "error_maps", "error_statistics", "loss_gradients"),
    "models": ("CascadedSR", "SqueezeNetRecognizer", "load_sr"),
    "models.recognizer": ("load_recognizers",),
    "models.sr": ("complexity", "shape_table"),
    "training.recognizers": ("ensure_recognizers", "load_identities", "plot_learning_curves", "residual_batch",
                          "training_folder"),
    "training.sr": ("batch_terms", "sr_datasets", "term_gradients"),
    "evaluation.evaluate": ("attribute_correlations", "compare_to_paper", "evaluate_models", "gain_over_bicubic",
                 "headroom", "image_attributes", "paired_bootstrap", "paired_effect", "sample_images", "sharpened",
                 "summarize_results", "super_resolve", "unmeasured", "verdict", "worst_images"),
    "tutorial.figures": ("fig02_architecture", "fig04_training_data", "fig05_error_maps", "fig12_intermediate",
                "image_grid", "save_figure", "to_image"),
    "training.ablation": ("VARIANTS", "run_ablation", "trained"),
    "tutorial.widgets": ("alpha_explorer",),
}
_OWNER = {name: module for module, names in API.items() for name in names}
__all__ = sorted(_OWNER)


def __getattr__(name: str) -> Any:
    if name not in _OWNER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_OWNER[name]}", __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
