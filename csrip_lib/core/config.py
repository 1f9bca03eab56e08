"""Configuration as dataclasses: model presets, training schedules, paths.

Every checkpoint stores the `asdict()` of the configs that produced it, so a run can be
rebuilt from its checkpoint alone. Paper values are cited where they come from.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

# Residual-image sigmas per scale (paper Sec. 3.3, Fig. 3/4): 48 px -> 1/3, 96 px -> 1, 192 px -> 7/3.
RESIDUAL_SIGMAS: dict[int, float] = {48: 1 / 3, 96: 1.0, 192: 7 / 3}
LR_SIZE, HR_SIZE = 24, 192
SCALES: tuple[int, ...] = (48, 96, 192)  # SR outputs supervised by Eq. 4 (D = {2x, 4x, hr})


@dataclass(frozen=True)
class DegradationConfig:
    """The degradation model (paper Sec. 3.3, Fig. 4 left): "Gaussian blurring followed by image
    decimation", applied three times, HR 192 -> 96 -> 48 -> LR 24 (`csrip_lib.core.degradation`).

    The paper names the two operations but not their parameters; these are ours. `sigma`: the blur of
    each 2x step in pixels of the finer image (0: no blur); `truncate`: the Gaussian kernel's radius in
    sigmas (scipy/scikit-image's rounding); `decimation`: "average", each 2x2 block averaged (pixel
    centres stay aligned with bicubic upsampling, see degradation.py). A model is trained and evaluated
    under one degradation, so SR and recognizer checkpoints save it (`degradation_of` reads it back).
    """

    sigma: float = 1.0
    truncate: float = 4.0
    decimation: str = "average"

    def __post_init__(self) -> None:
        try:
            sigma = float(self.sigma)
        except (TypeError, ValueError):
            raise ValueError(f"sigma must be a number of pixels, got {self.sigma!r}") from None
        if not (math.isfinite(sigma) and sigma >= 0):
            raise ValueError(f"sigma must be a finite number of pixels >= 0 (0: no blur), got {self.sigma!r}")
        if not (isinstance(self.truncate, int | float) and math.isfinite(self.truncate) and self.truncate > 0):
            raise ValueError(f"truncate must be a finite number of sigmas > 0, got {self.truncate!r}")
        if self.decimation != "average":
            raise ValueError(f"decimation must be 'average' (2x2 means), got {self.decimation!r}")
        object.__setattr__(self, "sigma", sigma)  # 1 and 1.0 are one degradation


@dataclass
class SRConfig:
    """Cascaded SR network (paper Sec. 3.1, 3.4, Fig. 2/11) or the ablation Baseline (Sec. 4.3)."""

    arch: str = "cascaded"  # "cascaded" (C-SRIP) or "baseline" (21 blocks, three shuffles at the end)
    stem_channels: int = 512  # 9x9 stem convolution
    channels: tuple[int, int, int] = (512, 256, 128)  # residual-block width of SR modules 1..3
    shuffle_channels: tuple[int, int, int] = (1024, 512, 256)  # conv before each pixel shuffle
    blocks: int = 7  # residual blocks per SR module (p = 7)
    final_channels: int = 128  # the last residual block at 192 px
    kernel_size: int = 9  # stem, branch heads and output convolution
    negative_slope: float = 0.2  # LeakyReLU
    # Not in the paper: add the bicubic upsampling of the input to every RGB output, so the network
    # learns only the detail on top of it. On in `tiny`/`quick` (minutes of CPU training), off otherwise.
    global_skip: bool = False


@dataclass
class RecognizerConfig:
    """Complex SqueezeNet identity prior (paper Sec. 3.2, 3.4; Iandola et al. simple+complex bypass)."""

    width: float = 1.0  # multiplies the fire-module channel counts (1.0 = SqueezeNet v1.0)
    dropout: float = 0.5
    batch_norm: bool = True  # BatchNorm after stem and fire modules (not in SqueezeNet v1.0; see recognizer.py)


@dataclass
class TrainConfig:
    """One training schedule for the shared harness (csrip_lib.training.harness)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-4
    lr_milestones: tuple[int, ...] = ()  # epochs at which lr *= lr_gamma
    lr_gamma: float = 1 / 3
    patience: int = 10  # early stopping: epochs without validation improvement
    max_steps: int | None = None  # hard cap on optimizer steps (quick runs)
    steps_per_epoch: int | None = None  # cap on steps per epoch (quick runs); None = whole loader
    weight_decay: float = 0.0
    seed: int = 0
    num_workers: int = 0
    grad_clip: float | None = None

    def __post_init__(self) -> None:  # a schedule that cannot run is refused where it is made
        counts = {"epochs": self.epochs, "batch_size": self.batch_size, "max_steps": self.max_steps,
                  "steps_per_epoch": self.steps_per_epoch}
        bad = [f"{k}={v!r}" for k, v in counts.items() if v is not None and (not isinstance(v, int) or v < 1)]
        bad += [f"{k}={v!r}" for k, v in {"lr": self.lr, "lr_gamma": self.lr_gamma}.items()
                if not (isinstance(v, int | float) and math.isfinite(v) and v > 0)]
        bad += [f"{k}={v!r}" for k, v in {"patience": self.patience, "num_workers": self.num_workers}.items()
                if not isinstance(v, int) or v < 0]
        if not (isinstance(self.weight_decay, int | float) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            bad.append(f"weight_decay={self.weight_decay!r}")
        if bad:
            raise ValueError(f"invalid training schedule: {', '.join(bad)} (counts and lr must be positive, "
                             "patience and num_workers >= 0, all finite)")


@dataclass(frozen=True)
class SpeedConfig:
    """How a training step is computed on the hardware, not what it computes (benchmarks/README.md,
    "Training step"): `bf16` autocasts the networks' convolutions and matrix products to bfloat16 (the
    degradation, the residual images and the losses stay float32, as Eq. 2-4 are written); `channels_last`
    keeps images and weights in NHWC, the layout oneDNN (CPU) and tensor cores (GPU) are fastest in.
    `core.runtime.step_speed` picks the default for a device; every checkpoint records the one each
    sitting used (`harness.sitting`, its "provenance"). It is not part of a run's compared config: a run resumes under another speed (the same
    arithmetic, other rounding)."""

    bf16: bool = False
    channels_last: bool = False


@dataclass
class LossConfig:
    """Eq. 4 with switchable parts, so every Table 2 ablation is a configuration of one loss."""

    reconstruction: str = "ssim"  # "ssim" (Eq. 2) or "mse"
    multiscale: bool = True  # supervise 2x and 4x branch outputs too
    alpha: float = 0.001  # weight of the identity (cross-entropy) terms; 0 switches them off


@dataclass(frozen=True)
class FaceSelection:
    """Which faces of a folder both training stages use: the identity universe (Sec. 4.1: recognizers and
    SR network train on the same identities and the same 90/10 split of their images).

    Training-split identities with >= `min_images` images, at most `max_per_identity` of each (seeded),
    then the `max_identities` / `max_images` caps (`data.faces.FaceFolder.select`, the one selection);
    `max_val_images` caps the SR stage's validation faces (the "val" split, early stopping). Checkpoints
    save it with the digest of the identities it chose (`training.recognizers.data_config`)."""

    min_images: int = 2
    max_identities: int | None = None  # cap on recognizer classes
    max_images: int | None = None  # cap on the number of images loaded
    max_per_identity: int | None = None  # so one person does not dominate (LFW: 530 of G. W. Bush)
    max_val_images: int | None = None  # cap on the SR validation images


@dataclass
class Preset:
    """Everything a named preset fixes: model sizes, the two training stages and their faces."""

    name: str
    sr: SRConfig = field(default_factory=SRConfig)
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    train_recognizer: TrainConfig = field(default_factory=TrainConfig)
    train_sr: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    degradation: DegradationConfig = field(default_factory=DegradationConfig)
    selection: FaceSelection = field(default_factory=FaceSelection)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the SR stage (C-SRIP's network or a Table 1 competitor), resolved from a
    preset once, at the command or notebook boundary (`training.sr.sr_run`,
    `training.competitors.competitor_run`), and passed down whole: every function below takes this,
    never a preset name, so two parts of one run cannot read two presets."""

    preset: str  # the preset's name, recorded in the checkpoints
    model: str  # "csrip" (the cascade or the ablation Baseline, Sec. 4.3) or a competitor (models.registry)
    net: Any  # that model's config dataclass at the preset's size (SRConfig, VDSRConfig, ...)
    train: TrainConfig
    degradation: DegradationConfig
    selection: FaceSelection
    loss: LossConfig | None = None  # Eq. 4's parts (csrip only: the competitors' losses are their own)


# Epochs. Milestones and patience count epochs, as the paper does (Sec. 3.4), but a paper epoch is a pass
# over CASIA-WebFace (494,414 images, Sec. 4.1). On the LFW development set the `paper` selection holds
# 6,029 images of 1,133 identities (measured with `train_recognizers.training_folder`), ~5.4k after the
# 90/10 split: one of our epochs is ~90x fewer optimizer steps, so the `paper` schedule decays the lr
# and stops early after ~90x fewer steps than the paper's. To match the paper in steps, scale epochs,
# milestones and patience, or train on a CASIA-sized face folder.


def _paper() -> Preset:
    return Preset(
        name="paper",
        # Sec. 3.4: Adam, batch 128, lr 1e-4, x1/3 every 20 epochs, early stop after 10 epochs.
        train_recognizer=TrainConfig(epochs=200, batch_size=128, lr=1e-4,
                                     lr_milestones=tuple(range(20, 200, 20)), patience=10),
        # Sec. 3.4: Adam, batch 8, x1/3 after epochs 10, 25, 50, 80; early stop after 10. The initial lr
        # is ambiguous: the paper's extracted text reads "10 / 3 x 10^-3", a stacked fraction that is
        # either 1/3 x 10^-3 (a lost typesetting of "1") or 10/3 x 10^-3 = 3.3e-3. Our reading is
        # 1/3 x 10^-3: the same 1/3 factor as its decay, and 3.3x the recognizers' 1e-4 instead of 33x
        # (the SRGAN generator [12], whose blocks C-SRIP follows, trains at 1e-4). `--lr` sets either.
        train_sr=TrainConfig(epochs=120, batch_size=8, lr=1e-3 / 3,
                             lr_milestones=(10, 25, 50, 80), patience=10),
    )


def _small() -> Preset:
    return Preset(
        name="small",
        sr=SRConfig(stem_channels=128, channels=(128, 64, 32), shuffle_channels=(256, 128, 64),
                    blocks=4, final_channels=32),
        recognizer=RecognizerConfig(width=0.5),
        train_recognizer=TrainConfig(epochs=60, batch_size=128, lr=1e-3,
                                     lr_milestones=(20, 40), patience=10),
        train_sr=TrainConfig(epochs=40, batch_size=32, lr=2e-4, lr_milestones=(20, 30), patience=8),
    )


def _tiny() -> Preset:
    return Preset(
        name="tiny",
        sr=SRConfig(stem_channels=32, channels=(32, 16, 8), shuffle_channels=(64, 32, 16),
                    blocks=1, final_channels=8, global_skip=True),
        recognizer=RecognizerConfig(width=0.25, dropout=0.0),
        train_recognizer=TrainConfig(epochs=3, batch_size=32, lr=1e-3, patience=3),
        train_sr=TrainConfig(epochs=3, batch_size=16, lr=1e-3, patience=3),
    )


def _quick() -> Preset:
    """What notebooks and `make demo` use on a 2-core CPU: tiny model, a few minutes in all."""
    p = _tiny()
    return replace(
        p, name="quick",
        # notebook 03's live run: 30 steps, enough to show stage 1 working, not to learn 116 identities (the
        # shipped recognizers-quick are these models trained for 20-30 epochs: checkpoints/MODEL_CARD.md)
        train_recognizer=replace(p.train_recognizer, epochs=2, steps_per_epoch=15, batch_size=16),
        train_sr=replace(p.train_sr, epochs=4, steps_per_epoch=25),
        # 116 LFW development identities with >= 10 images, 16 at most of each (1,667 images), so that no
        # one person dominates.
        selection=FaceSelection(min_images=10, max_per_identity=16, max_val_images=96),
    )


def _base() -> Preset:
    """The shipped default model (`csrip-base`): the cascade size chosen, by step time, for about 90 minutes of a
    2-core CPU on every identity of the training split (checkpoints/MODEL_CARD.md has the run and its recipe log).

    Sizes are `tiny`'s x2 in width and x3 in depth (404,153 parameters, ~1.6 s per step of 16 faces on one
    CPU thread): 64/32/16 channels at 48/96/192 px, 3 residual blocks per SR module, the global bicubic
    skip of `tiny`. Ours, for CPU time, not the paper's: kernel_size 5 for stem, branch heads and output
    (the paper's 9x9 costs 1.3x the step time at this width). Loss: C+SSIM+M of Table 2 (multi-scale SSIM,
    Eq. 2 at 48/96/192 px, alpha 0: at this scale C-SRIP with the priors `recognizers-base` scored lower in
    PSNR and SSIM over two seeds and no better on identity, results/table2-base). Schedule: Adam 1e-3,
    batch 16, 11 epochs of 250 steps (2,750 steps, 44k faces, ~5.9 passes over the 7,434 training
    faces of the LFW development subset), lr x 1/3 after epochs 6 and 9; model selection on 200 val-split
    faces.
    """
    return Preset(
        name="base",
        sr=SRConfig(stem_channels=64, channels=(64, 32, 16), shuffle_channels=(128, 64, 32), blocks=3,
                    final_channels=16, kernel_size=5, global_skip=True),
        recognizer=RecognizerConfig(width=0.25, dropout=0.0),
        train_recognizer=TrainConfig(epochs=20, batch_size=32, lr=1e-3, weight_decay=5e-4,
                                     lr_milestones=(12, 17), patience=20),
        train_sr=TrainConfig(epochs=11, batch_size=16, lr=1e-3, lr_milestones=(6, 9), patience=11,
                             steps_per_epoch=250),
        loss=LossConfig(alpha=0.0),
        # every training-split identity, single-image ones included (they train only; Sec. 4.1's 90/10
        # split of the others keeps 10% out for recognizers that a later C-SRIP run may train)
        selection=FaceSelection(min_images=1, max_val_images=200),
    )


PRESETS = {"paper": _paper, "small": _small, "tiny": _tiny, "quick": _quick, "base": _base}
# The one default of `csrip train-recognizers` and `csrip train-sr`, so that running them one after the
# other with defaults trains priors and SR network on the same identities (minutes on a CPU).
DEFAULT_PRESET = "quick"


def get_preset(name: str) -> Preset:
    """A fresh copy of a named preset (`paper`, `small`, `tiny`, `quick`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]()


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (what checkpoints store)."""
    return asdict(cfg)


def from_dict(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from `to_dict` output; nested dataclasses and tuples restored."""
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = {"sr": SRConfig, "recognizer": RecognizerConfig, "train_recognizer": TrainConfig,
               "train_sr": TrainConfig, "loss": LossConfig,
               "degradation": DegradationConfig, "selection": FaceSelection}.get(f.name) if cls is Preset else None
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def degradation_of(config: dict[str, Any]) -> DegradationConfig:
    """The degradation a checkpoint's config was trained under: its "degradation" entry; files written
    before checkpoints saved it (the shipped checkpoints/*.pt among them) were all trained with the
    default, DegradationConfig(), unless an early SR run stored a number under "sigma"."""
    if isinstance(config.get("degradation"), dict):
        return from_dict(DegradationConfig, config["degradation"])
    sigma = config.get("sigma")
    return DegradationConfig() if sigma is None else DegradationConfig(sigma=sigma)


def with_legacy_degradation(config: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """`config` in the form a run started before checkpoints saved "degradation" recorded it (no entry,
    or a loose "sigma"), when both describe the same degradation, so that such a run still resumes
    (`train.fit` refuses to resume under another config); else `config` unchanged."""
    if "degradation" in saved or degradation_of(saved) != degradation_of(config):
        return config
    legacy = {k: v for k, v in config.items() if k != "degradation"}
    return {**legacy, "sigma": saved["sigma"]} if "sigma" in saved else legacy


def project_root() -> Path:
    """The repository root: the first parent of the working directory holding csrip's pyproject."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "csrip_lib").is_dir():
            return d
    return Path(__file__).resolve().parents[2]


def figures_dir(create: bool = True) -> Path:
    """Where figures go: $CSRIP_FIGURES (a leading `~` expanded, as for every user path) or <repo>/figures
    (created on demand unless `create` is False)."""
    d = Path(os.path.expanduser(os.environ.get("CSRIP_FIGURES", project_root() / "figures")))
    if create:
        d.mkdir(parents=True, exist_ok=True)
    return d


def runs_dir() -> Path:
    """Where training runs go: $CSRIP_RUNS (a leading `~` expanded) or <repo>/runs."""
    return Path(os.path.expanduser(os.environ.get("CSRIP_RUNS", project_root() / "runs")))
