"""One place that maps an SR model's name to its class and config: C-SRIP and the Table 1 competitors.

Every SR checkpoint has kind "sr". Its config names the model in "model" (absent in C-SRIP runs, which
store their SRConfig under "sr") and holds that model's config dataclass under the same key, so
`load_sr` rebuilds any of them; `csrip evaluate`, `hallucinate` and `figures` all load through it, and
`describe_model` names any of them from the same config (labels and printouts never hard-code "C-SRIP").
"""
from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..core.checkpoint import checked_config, load_checkpoint, restore
from ..core.config import Preset, SRConfig, degradation_of, from_dict
from ..core.console import CSRIPError, printable
from .lp import LP, LPConfig
from .nbsrf import NBSRF, NBSRFConfig
from .sr import build_model
from .srcnn import SRCNN, SRCNNConfig
from .srgan import SRGAN, SRGANConfig
from .urdgn import URDGN, URDGNConfig
from .vdsr import VDSR, VDSRConfig

# name -> (model class, config class); "csrip" is C-SRIP's cascade (or the ablation Baseline).
COMPETITORS: dict[str, tuple[type[nn.Module], type]] = {
    "nbsrf": (NBSRF, NBSRFConfig), "srcnn": (SRCNN, SRCNNConfig), "vdsr": (VDSR, VDSRConfig),
    "lp": (LP, LPConfig), "srgan": (SRGAN, SRGANConfig), "urdgn": (URDGN, URDGNConfig)}
MODEL_NAMES = ("csrip", *COMPETITORS)
# Table 1's row names for the competitors, the one place they are written (results, shipped models'
# "configuration", notebook 06 and printouts all use these). Where ours differs from the cited method in
# a way that changes results, the name says so (the model files list every difference): NBSRF-like is a
# plain forest; lp-like trains SRResNet with our face priors' features and a pixel term; SRGAN-like has
# our SqueezeNet's features as its content loss instead of VGG19's.
COMPETITOR_LABELS = {"nbsrf": "NBSRF-like", "srcnn": "SRCNN", "vdsr": "VDSR",
                     "lp": "lp-like (SRResNet, face-prior features)",
                     "srgan": "SRGAN-like (SqueezeNet content loss)", "urdgn": "URDGN"}
# Folder and file names of their runs and shipped checkpoints (<stem>-<preset>, e.g. srgan-quick): fixed
# identifiers, so that renaming a row does not orphan the files already trained or shipped.
COMPETITOR_STEMS = {"nbsrf": "nbsrf-like", "srcnn": "srcnn", "vdsr": "vdsr", "lp": "lp", "srgan": "srgan",
                    "urdgn": "urdgn"}


def competitor_key(name: str) -> str | None:
    """The registry name of a Table 1 competitor row under its name now or before (up to "-like" or " (",
    case and punctuation aside): "SRGAN", "SRGAN-like (SqueezeNet content loss)" -> "srgan"; else None.
    Result files and shipped models measured before a rename keep the name they were measured under."""
    key = re.sub(r"[^a-z0-9]", "", name.lower().split(" (")[0].split("-like")[0])
    return key if key in COMPETITORS else None


def size_and_flops(model: nn.Module) -> tuple[int | None, float | None]:
    """(parameters, GFLOP per face) of the network that makes the face: a GAN's generator (its discriminator
    only trains it), counted on one 24 px input by torch's FlopCounterMode (convolutions and matrix
    products, 2 FLOP per multiply-add; interpolation and pointwise ops are not counted). A model without
    trainable parameters (the NBSRF-like forest: tree look-ups, not FLOPs) gets (None, None)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = getattr(model, "generator", model)
    params = sum(p.numel() for p in net.parameters() if p.requires_grad)
    if not params:
        return None, None
    device = next(net.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, 3, 24, 24, device=device))
    return params, counter.get_total_flops() / 1e9


def check_name(name: str) -> str:
    """`name` lower-cased if it is a known SR model, else CSRIPError listing the known ones."""
    key = name.lower().replace("-", "")
    if key not in MODEL_NAMES:
        raise CSRIPError(f"unknown SR model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    return key


def model_config(name: str, preset: Preset) -> Any:
    """The config of model `name` at a preset's size (competitors: quick/tiny -> quick size, else paper)."""
    name = check_name(name)
    return preset.sr if name == "csrip" else COMPETITORS[name][1].preset(preset.name)


def build_sr(name: str, cfg: Any) -> nn.Module:
    """Model `name` from its config (a dataclass or the dict a checkpoint stores)."""
    name = check_name(name)
    if name == "csrip":
        return build_model(cfg if isinstance(cfg, SRConfig) else from_dict(SRConfig, cfg))
    cls, cfg_cls = COMPETITORS[name]
    return cls(cfg if isinstance(cfg, cfg_cls) else from_dict(cfg_cls, cfg))


def checkpoint_config(name: str, cfg: Any) -> dict[str, Any]:
    """The part of a checkpoint's config that `load_sr` rebuilds the model from."""
    name = check_name(name)
    return {"sr": asdict(cfg)} if name == "csrip" else {"model": name, name: asdict(cfg)}


def stored_model(config: dict[str, Any]) -> str:
    """Which model a checkpoint config describes ("csrip" when it has no "model" entry)."""
    return config.get("model") or "csrip"


def variant(config: dict[str, Any]) -> tuple[str, float | None]:
    """The paper's name for what a checkpoint config trained, and its alpha where Eq. 4 has one: a Table 2
    variant for C-SRIP's networks (Sec. 4.3: Baseline, B+SSIM, C+SSIM, C+SSIM+M with alpha 0, C-SRIP with
    alpha > 0), a Table 1 name for a competitor (alpha None)."""
    name = stored_model(config)
    if name != "csrip":
        return COMPETITOR_LABELS.get(name, name), None
    if not config.get("loss"):  # a checkpoint that did not record its loss
        return ("baseline network" if (config.get("sr") or {}).get("arch") == "baseline" else "cascade"), None
    loss = config["loss"]
    rec = "SSIM" if loss.get("reconstruction", "ssim") == "ssim" else "MSE"
    if (config.get("sr") or {}).get("arch") == "baseline":
        return ("B+SSIM" if rec == "SSIM" else "Baseline"), None
    if not loss.get("multiscale", True):
        return f"C+{rec}", None
    alpha = float(loss.get("alpha", 0.0))
    return ("C-SRIP" if alpha > 0 else f"C+{rec}+M"), alpha


def describe_model(config: dict[str, Any], name: str | None = None, short: bool = False) -> str:
    """A model named from its checkpoint config, for labels and printouts: "csrip-quick (C+SSIM+M, alpha 0)"
    (short) or "csrip-quick: quick cascade, C+SSIM+M (alpha 0)". `name` defaults to the config's shipped or
    run name; without one, only what the config says."""
    name = name or config.get("name") or config.get("variant")
    name = printable(name, 80) if name else name  # a name from a file: never a newline or an escape code
    what, alpha = variant(config)
    if short:
        what += "" if alpha is None else f", alpha {alpha:g}"
        return f"{name} ({what})" if name else what
    what += "" if alpha is None else f" (alpha {alpha:g})"
    arch = "baseline network" if (config.get("sr") or {}).get("arch") == "baseline" else "cascade"
    kind = arch if stored_model(config) == "csrip" else "size"
    size = f"{config['preset']} {kind}, " if config.get("preset") else ""
    return f"{name + ': ' if name else ''}{size}{what}"


def load_sr(path: str | Path, map_location: str | torch.device = "cpu", model: str | None = None) -> nn.Module:
    """Any SR model in eval mode from a checkpoint of kind "sr"; `model` (if given) must match. The model's
    `.degradation` is the one it was trained under (`config.degradation_of`), which evaluation uses.
    The file, its config and its degradation are checked before any model is built (`checkpoint.restore`):
    every problem is a one-line CSRIPError."""
    ckpt = load_checkpoint(path, kind="sr", map_location=map_location)
    config = ckpt["config"]
    name = stored_model(config)
    if not isinstance(name, str) or name not in MODEL_NAMES:
        raise CSRIPError(f"{path}: the checkpoint names an unknown SR model {name!r:.80}; known: "
                         f"{', '.join(MODEL_NAMES)}")
    if model is not None and check_name(model) != name:
        raise CSRIPError(f"{path} holds a {name!r} model, not {check_name(model)!r}")
    section = config.get("sr" if name == "csrip" else name)
    if section is None:
        raise CSRIPError(f"{path}: the checkpoint's config has no {name!r} model section; "
                         "was it written by csrip train-sr or csrip train-competitor?")
    cfg = checked_config(SRConfig if name == "csrip" else COMPETITORS[name][1], section, path, name)
    try:
        degradation = degradation_of(config)
    except (TypeError, ValueError) as e:
        raise CSRIPError(f"{path}: its degradation config is not valid ({e})") from None
    net = restore(lambda: build_sr(name, cfg), ckpt, path, map_location)
    net.degradation = degradation
    net.label = describe_model(config, short=True)  # figure and panel labels (hallucinate, figures)
    net.description = describe_model(config, name=config.get("name") or str(path))  # printouts
    return net.eval()
