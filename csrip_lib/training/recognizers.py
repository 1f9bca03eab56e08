"""Stage 1 of C-SRIP: the three identity priors (paper Sec. 3.3 "Recognition-model training", 3.4, 4.1).

One complex SqueezeNet per SR scale (48, 96, 192 px) learns to tell identities apart from residual
images alone, `dx = x - g_sigma * x` with sigma 1/3, 1, 7/3 (Fig. 4 right), so that it responds only
to the details an SR module hallucinates. Data: the preset's identity universe (`training_folder`:
training-split identities with at least `min_images` images, at most `max_per_identity` of each:
the preset's `FaceSelection`), 90/10 of each identity's images for training/validation
(Sec. 4.1); `csrip train-sr` trains on the same 90% (`load_identities` is shared), and both save the
identity list's digest so a mismatch is caught before training. HR faces are decoded once into memory (uint8); each batch is moved to the device, degraded
to the model's scale (csrip_lib.core.degradation), augmented (random horizontal flip, reflect-padded random
crop; Sec. 3.4) and turned into residuals there. Training: cross-entropy (Eq. 1), Adam, batch 128,
lr 1e-4 x1/3 every 20 epochs, early stop after 10 epochs without validation-accuracy gain (the
`paper` preset; smaller presets shorten this). Output: <out>/rec48, rec96, rec192 (best.pt, last.pt,
log.csv) and <out>/accuracy.csv, the rank-1 train/validation accuracy per scale.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from functools import partial
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset, TensorDataset
from torchvision.transforms import v2

from ..core.checkpoint import atomic_write, load_checkpoint
from ..core.config import (DEFAULT_PRESET, HR_SIZE, PRESETS, RESIDUAL_SIGMAS, SCALES, DegradationConfig,
                           FaceSelection, Preset, SpeedConfig, TrainConfig, get_preset, runs_dir, to_dict)
from ..core.console import CSRIPError, positive_int
from ..core.degradation import DEFAULT, degrade, residual
from ..core.outputs import check_runs
from ..core.runtime import pick_device, step_speed
from ..data.faces import FaceFolder, identities_digest, load_cached, per_identity_split, resolve_data
from ..models.recognizer import SqueezeNetRecognizer
from .harness import (EvalFn, add_schedule_arguments, add_speed_arguments, fit, schedule_from_args, seed_everything,
                      speed_from_args)

# Rank-1 recognition rates the paper reports on CASIA-WebFace (Sec. 4.1): scale -> (train, val).
PAPER_ACCURACY = {48: (0.5138, 0.2974), 96: (0.7215, 0.4266), 192: (0.8569, 0.5713)}
EVAL_BATCH = 128
PRECISE_BN_IMAGES = 128  # training images for the BatchNorm statistics before each evaluation


def residual_batch(hr: torch.Tensor, size: int, augment: bool = False,
                   degradation: DegradationConfig = DEFAULT, channels_last: bool = False) -> torch.Tensor:
    """uint8 HR faces N x 3 x 192 x 192 (any device) -> residual images N x 3 x size x size (Fig. 4).

    The face is degraded to `size` exactly as the SR training pyramid is (`degradation`, the preset's,
    saved in the checkpoints), then (if `augment`) flipped and shifted at that scale (reflect padding
    of size/16 px), then high-pass filtered; in NHWC with `channels_last` (`SpeedConfig`).
    """
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.autocast(hr.device.type, enabled=False):  # fp32: residuals are small differences
        x = degrade((hr.float() / 255).contiguous(memory_format=fmt), HR_SIZE // size, degradation)
        if augment:
            aug = v2.Compose([v2.RandomHorizontalFlip(),
                              v2.RandomCrop(size, padding=size // 16, padding_mode="reflect")])
            x = torch.stack([aug(img) for img in x]).contiguous(memory_format=fmt)  # v2: one draw per call
        return residual(x, RESIDUAL_SIGMAS[size])


def _step(model: torch.nn.Module, batch, device: torch.device,
          degradation: DegradationConfig = DEFAULT, channels_last: bool = False) -> dict[str, torch.Tensor]:
    hr, y = (t.to(device, non_blocking=True) for t in batch)
    size = getattr(model, "module", model).image_size  # DistributedDataParallel wraps the model
    logits = model(residual_batch(hr, size, augment=True, degradation=degradation, channels_last=channels_last))
    loss = F.cross_entropy(logits, y)  # Eq. 1
    return {"loss": loss, "acc": (logits.argmax(1) == y).float().mean()}


@torch.no_grad()
def evaluate(model: SqueezeNetRecognizer, loader: DataLoader, device: torch.device,
             degradation: DegradationConfig = DEFAULT) -> dict[str, float]:
    """Rank-1 accuracy and mean cross-entropy of `model` over a loader of (uint8 HR, label)."""
    was_training = model.training
    model.eval()
    correct = loss = n = 0.0
    for hr, y in loader:
        hr, y = hr.to(device), y.to(device)
        logits = model(residual_batch(hr, model.image_size, degradation=degradation)).float()
        correct += (logits.argmax(1) == y).sum().item()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        n += len(y)
    model.train(was_training)
    return {"acc": correct / n, "loss": loss / n}


@torch.no_grad()
def recalibrate_bn(model: SqueezeNetRecognizer, loader: DataLoader, device: torch.device,
                   degradation: DegradationConfig = DEFAULT) -> None:
    """Precise BatchNorm (Wu & Johnson, "Rethinking BatchNorm", 2021): replace the running statistics
    by exact averages over the residuals of `loader`'s HR faces under the current weights.

    The running averages lag behind the weights early in training (momentum 0.1), which ruins
    evaluation of short runs; this makes evaluation match the network that was trained."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    for hr, _ in loader:
        model(residual_batch(hr.to(device), model.image_size, degradation=degradation))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.train(was_training)


def _validator(train_loader: DataLoader, degradation: DegradationConfig) -> EvalFn:
    def validate(model, loader, device) -> dict[str, float]:
        recalibrate_bn(model, train_loader, device, degradation)
        return {f"val_{k}": v for k, v in evaluate(model, loader, device, degradation).items()}
    return validate


def _overridden(p: Preset, min_images: int | None, max_identities: int | None, train: TrainConfig | None) -> Preset:
    selection = replace(p.selection, min_images=min_images or p.selection.min_images,
                        max_identities=max_identities or p.selection.max_identities)
    return replace(p, selection=selection, train_recognizer=train or p.train_recognizer)


def data_config(selection: FaceSelection, identities: list[str]) -> dict:
    """The identity universe as checkpoints save it: the selection and the identity list's digest."""
    return {"min_images": selection.min_images, "max_identities": selection.max_identities,
            "max_images": selection.max_images, "max_images_per_identity": selection.max_per_identity,
            "identities": len(identities), "identities_sha256": identities_digest(identities)}


def training_folder(root: str | Path, selection: FaceSelection) -> FaceFolder:
    """The identity universe of both training stages (Sec. 4.1; `FaceSelection`, a preset's `.selection`)."""
    return FaceFolder.select(root, selection)


def load_identities(data: str | Path | None, selection: FaceSelection, progress: bool = True):
    """The training data of both stages: `training_folder`'s faces decoded into memory and the paper's
    90/10 split of each identity's images -> (dataset, images, labels, train_idx, val_idx).
    Recognizers train on train_idx and validate on val_idx; the SR network trains on train_idx."""
    dataset = training_folder(resolve_data(data, verbose=progress), selection)
    images, labels = load_cached(dataset, progress=progress)
    train_idx, val_idx = per_identity_split(labels, val_fraction=0.1, seed=0)
    if len(dataset.identities) < 2 or len(val_idx) == 0:
        raise CSRIPError(
            f"{dataset!r} is too small to train recognizers: they need >= 2 identities with >= 2 images "
            f"each (for the 90/10 split), found {len(dataset.identities)} identities and "
            f"{len(val_idx)} validation images. Use more data (`make data`) or a lower --min-images")
    return dataset, images, labels, train_idx, val_idx


def train_recognizers(data: str | Path | None, preset: Preset, out: str | Path | None = None,
                      scales: tuple[int, ...] = SCALES, *,
                      resume: bool = False, force: bool = False, device: str | None = None,
                      min_images: int | None = None, max_identities: int | None = None,
                      train: TrainConfig | None = None, progress: bool = True, strict_resume: bool = False,
                      speed: SpeedConfig | None = None) -> pd.DataFrame:
    """Train one recognizer per scale into out/rec<scale>/ and return the accuracy table (Sec. 4.1).

    `out` defaults to runs_dir()/<preset>/recognizers. `min_images`, `max_identities` and `train` (the
    schedule) override the preset; changing the identity selection makes the recognizers unusable for
    `csrip train-sr` with that preset (their identity digests differ). Existing runs are continued with
    `resume` or replaced with `force`; every requested scale's run folder is checked before anything is
    trained (`outputs.check_runs`; `strict_resume`, the --resume flag, makes "nothing to resume" an
    error). out/accuracy.csv keeps the rows of scales not trained in this call; the returned table
    has this call's rows. speed: how the step runs (default `step_speed`: bf16 and channels_last where
    the hardware has them).
    """
    p = _overridden(preset, min_images, max_identities, train)
    out = Path(out) if out is not None else runs_dir() / p.name / "recognizers"
    bad = [s for s in scales if s not in RESIDUAL_SIGMAS]
    if bad or not scales:
        raise CSRIPError(f"scales must be among {sorted(RESIDUAL_SIGMAS)}, got {list(scales)}")
    kept = _kept_accuracy(out / "accuracy.csv", scales, force)  # a bad file is an error now, not after training
    check_runs([out / f"rec{s}" for s in scales], resume=resume, force=force, strict_resume=strict_resume)
    device = pick_device(device)
    speed = speed or step_speed(device)
    dataset, images, labels, train_idx, val_idx = load_identities(data, p.selection, progress)
    ids = dataset.identities
    print(f"recognizers: {len(ids):,} identities, {len(train_idx):,} training / {len(val_idx):,} "
          f"validation images; device {device}\n  output: {out}")
    cfg = p.train_recognizer
    pin = device.type == "cuda"
    train_set = TensorDataset(images[train_idx], labels[train_idx])
    val_loader = DataLoader(TensorDataset(images[val_idx], labels[val_idx]), batch_size=EVAL_BATCH,
                            pin_memory=pin)
    # train accuracy on a fixed random subset as large as the validation set (at least 256 images):
    # comparable to val_acc, and cheap next to a pass over every training image at 192 px
    n_train_eval = min(len(train_set), max(256, len(val_idx)))
    train_eval = DataLoader(Subset(train_set, torch.randperm(len(train_set), generator=torch.Generator()
                                   .manual_seed(1))[:n_train_eval].tolist()), batch_size=EVAL_BATCH, pin_memory=pin)
    bn_subset = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(0))[:PRECISE_BN_IMAGES]
    bn_loader = DataLoader(Subset(train_set, bn_subset.tolist()), batch_size=EVAL_BATCH)
    # The most frequent training identity: what "always answer the majority" scores (LFW is unbalanced).
    majority = (labels[val_idx] == labels[train_idx].mode().values).float().mean().item()
    rows = []
    for size in scales:
        config = {"preset": p.name, "recognizer": to_dict(p.recognizer), "image_size": size,
                  "train": to_dict(cfg), "data": data_config(p.selection, ids), "degradation": to_dict(p.degradation)}
        seed_everything(cfg.seed)  # each scale starts from the same seeds, trained alone or not
        model = SqueezeNetRecognizer(len(ids), p.recognizer, image_size=size)
        train_loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, pin_memory=pin,
                                  generator=torch.Generator().manual_seed(cfg.seed),
                                  drop_last=len(train_set) > cfg.batch_size)
        t0 = time.time()
        log = fit(model, partial(_step, degradation=p.degradation, channels_last=speed.channels_last),
                  _validator(bn_loader, p.degradation), train_loader, val_loader, cfg, out / f"rec{size}",
                  kind="recognizer", config=config, monitor="val_acc", mode="max", resume=resume,
                  device=device, force=force, extra={"identities": ids, "image_size": size}, speed=speed)
        best = load_checkpoint(out / f"rec{size}" / "best.pt", kind="recognizer", map_location=device)
        model.load_state_dict(best["model"])
        rows.append({"scale": size, "identities": len(ids), "train_images": len(train_idx),
                     "val_images": len(val_idx), "train_acc": evaluate(model, train_eval, device, p.degradation)["acc"],
                     "val_acc": best["metrics"]["val_acc"], "chance": 1 / len(ids), "majority": majority,
                     "paper_train": PAPER_ACCURACY[size][0], "paper_val": PAPER_ACCURACY[size][1],
                     "best_epoch": best["epoch"], "epochs": len(log), "minutes": (time.time() - t0) / 60})
    table = pd.DataFrame(rows)
    merged = pd.concat([t for t in (kept, table) if len(t)]).sort_values("scale", ignore_index=True)
    csv = merged.to_csv(index=False).encode()
    atomic_write(out / "accuracy.csv", lambda f: f.write(csv))
    return table


def _kept_accuracy(path: Path, scales: tuple[int, ...], force: bool) -> pd.DataFrame:
    """The rows of `path` (accuracy.csv) for the scales not trained now, checked before any training:
    a file that is not such a table (one row per scale) is an error, or with `force` replaced."""
    if not os.path.lexists(path):
        return pd.DataFrame()
    try:
        kept = pd.read_csv(path)
        ok = "scale" in kept and kept["scale"].isin(SCALES).all() and not kept["scale"].duplicated().any()
    except (OSError, ValueError, UnicodeError) as e:  # pandas' ParserError and EmptyDataError are ValueErrors
        kept, ok = None, False
        why = " ".join(str(e).split())[:120]
    else:
        why = f"expected a 'scale' column with one row per scale among {list(SCALES)}"
    if ok:
        return kept[~kept["scale"].isin(scales)]
    if not force:
        raise CSRIPError(f"{path} is not an accuracy table written by csrip ({why}); move it away, or pass "
                         "--force to replace it; nothing was trained")
    return pd.DataFrame()


def ensure_recognizers(data: str | Path | None, p: Preset, out: str | Path | None = None, **kw) -> pd.DataFrame:
    """The recognizers of `out` (trained if missing or unfinished) and their accuracy table.

    A finished run of the same preset is reused as is; a run of another preset is an error.
    """
    out = Path(out) if out is not None else runs_dir() / p.name / "recognizers"
    lasts = [out / f"rec{s}" / "last.pt" for s in kw.get("scales", SCALES)]
    if all(f.is_file() for f in lasts) and (out / "accuracy.csv").is_file():
        ckpts = [load_checkpoint(f, kind="recognizer") for f in lasts]
        other = {c["config"]["preset"] for c in ckpts} - {p.name}
        if other:
            raise CSRIPError(f"{out} holds recognizers of preset {sorted(other)}, not {p.name!r}; pass "
                             "another out folder, or retrain with `csrip train-recognizers --force`")
        if all(isinstance(c.get("state"), dict) and c["state"].get("finished") for c in ckpts):
            print(f"recognizers: reusing {out}")
            return pd.read_csv(out / "accuracy.csv")
    return train_recognizers(data, p, out, resume=True, **kw)


def plot_learning_curves(run_dir: str | Path, scales: tuple[int, ...] = SCALES):
    """Loss and rank-1 accuracy per epoch (train: augmented batches; val: held-out images) from log.csv."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, len(scales), figsize=(3.6 * len(scales), 5.2), squeeze=False, sharex="col")
    for col, size in enumerate(scales):
        log = pd.read_csv(Path(run_dir) / f"rec{size}" / "log.csv")
        for row, (metric, label) in enumerate([("loss", "cross-entropy (Eq. 1)"),
                                                ("acc", "rank-1 accuracy")]):
            ax = axes[row, col]
            ax.plot(log["epoch"], log[f"train_{metric}"], "o-", label="train (augmented)")
            ax.plot(log["epoch"], log[f"val_{metric}"], "s-", label="validation")
            if metric == "acc":
                ax.axhline(PAPER_ACCURACY[size][1], color="gray", ls="--", lw=0.8, label="paper, validation")
                ax.set_xlabel("epoch")
            ax.set_ylabel(label, fontsize=8)
            ax.set_title(f"{size} px residuals" if row == 0 else "", fontsize=9)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes[1, col].legend(fontsize=7)
    fig.tight_layout()
    return fig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="face folder <root>/<identity>/<image> (default: $CSRIP_DATA, "
                        "data/lfw-deepfunneled, else synthetic faces)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help=f"model size, identity set and schedule; the same default as train-sr "
                        f"(default: {DEFAULT_PRESET})")
    parser.add_argument("--out", type=Path, help="run folder (default: runs/<preset>/recognizers)")
    parser.add_argument("--scales", type=int, nargs="+", default=list(SCALES), choices=SCALES,
                        help="which recognizers to train (default: 48 96 192)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    parser.add_argument("--force", action="store_true", help="replace an existing run in --out")
    parser.add_argument("--min-images", type=positive_int, metavar="N", help="only identities with at least N "
                        "images (default: the preset's; another value makes them unusable for train-sr)")
    parser.add_argument("--max-identities", type=positive_int, metavar="K",
                        help="at most K identities (as --min-images)")
    add_schedule_arguments(parser)
    add_speed_arguments(parser)
    parser.add_argument("--device", help="cuda, cuda:1, cpu (default: CUDA if available)")


def run(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    train = schedule_from_args(args, preset.train_recognizer)
    table = train_recognizers(args.data, preset, args.out, tuple(args.scales), resume=args.resume,
                              force=args.force, device=args.device, min_images=args.min_images,
                              max_identities=args.max_identities, train=train, strict_resume=True,
                              speed=speed_from_args(args, args.device))
    print(table.round(4).to_string(index=False))
    return 0 if len(table) else 1
