"""`csrip train-sr`: the second training stage of C-SRIP (paper Sec. 3.3, 3.4): the SR network under Eq. 4.

    csrip train-sr --data DIR --preset P --recognizers runs/X --alpha 0.001 --out runs/Y
                   [--resume] [--force] [--loss ssim|mse] [--single-scale] [--arch cascaded|baseline]
                   [--sigma S] [--lr LR]

Python: `train_sr(data, sr_run(get_preset(name), loss=LossConfig(...)), out, recognizers=...)` -> the per-epoch log.

What one step does: a batch of uint8 HR faces goes to the device, is degraded there into the
quadruplet {24, 48, 96, 192} px (`make_pyramid` under the preset's `DegradationConfig`, or --sigma; Sec. 3.3;
always in float32; saved in the checkpoints, so evaluation degrades as training did), the network maps 24 px
to [48, 96, 192] px and `CSRIPLoss` scores every scale (SSIM/MSE + alpha x identity CE of the frozen
recognizers). The shared harness `csrip_lib.training.harness.fit` does the rest: Adam, the preset's lr schedule
(`paper`: batch 8, lr 1e-3/3, x1/3 after epochs 10, 25, 50, 80; Sec. 3.4), bf16 + channels_last on
CUDA, checkpoints (runs/Y/last.pt every epoch, best.pt), exact resume, log.csv with every loss term.

Early stopping (Sec. 3.4): "converged if both SSIM and MSE show no improvements over 10 epochs".
The harness follows one monitored number, so validation reports `val_improvements`, the number of
epochs so far at which the validation SSIM rose to a new best or the validation MSE fell to a new
best. It grows exactly when either improves, so "no improvement for `patience` epochs" of this
counter is the paper's combined criterion; best.pt is the last epoch that improved either metric.

Multi-GPU: `torchrun --nproc_per_node G -m csrip_lib train-sr ...` (the batch size stays global: each
of the G processes takes batch_size / G images). One process with batch B and G processes with B/G
each see the same images per step (the batch order comes from a DistributedSampler in both cases) and
take the same optimizer step, provided BatchNorm normalizes over the global batch: on CUDA the model
uses `nn.SyncBatchNorm`; torch's SyncBatchNorm is CUDA-only, so on CPU (gloo) `GlobalBatchNorm2d`
below does the same with a differentiable all-reduce of the per-channel sums. tests/test_train_sr.py
checks 2 gloo processes against 1 process.
"""
from __future__ import annotations

import argparse
import copy
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.nn.functional import all_reduce
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from ..core.checkpoint import load_checkpoint, state_digest
from ..core.config import (DEFAULT_PRESET, PRESETS, DegradationConfig, FaceSelection, LossConfig, Preset, RunSpec,
                           SpeedConfig, TrainConfig, get_preset, runs_dir, to_dict)
from ..core.console import CSRIPError, nonnegative_float
from ..core.degradation import DEFAULT, for_models, make_pyramid
from ..core.outputs import check_runs
from ..core.runtime import pick_device, step_speed
from ..data.faces import FaceFolder, identities_digest, load_cached
from ..evaluation.metrics import psnr, ssim_eval
from ..losses import CSRIPLoss, check_identity_prior
from ..models.recognizer import load_recognizers
from ..models.sr import CascadedSR, build_model
from ..models.zoo import resolve
from .harness import add_schedule_arguments, add_speed_arguments, fit, schedule_from_args, speed_from_args
from .recognizers import data_config, load_identities

KIND = "sr"
MONITOR = "val_improvements"


# ---------------------------------------------------------------------------------------- batches
def pyramid(hr_u8: torch.Tensor, device: torch.device, degradation: DegradationConfig = DEFAULT,
            channels_last: bool = False) -> dict[str, torch.Tensor]:
    """uint8 HR batch -> float {lr, x2, x4, hr} on `device`, computed in float32 even under autocast;
    `channels_last`: every image in NHWC (the blurs of the degradation are ~3x faster so on a CPU, and
    the network's input matches a channels_last model, `SpeedConfig`)."""
    hr = hr_u8.to(device, non_blocking=True).float().div_(255)
    if channels_last:
        hr = hr.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, enabled=False):
        return make_pyramid(hr, degradation)


class Convergence:
    """eval_fn of the harness: validation SSIM / MSE / PSNR of the 192 px output and the paper's
    combined early-stopping counter (see module docstring). Metrics follow csrip_lib.evaluation.metrics."""

    def __init__(self, degradation: DegradationConfig = DEFAULT, history: list[dict[str, Any]] = ()):
        self.degradation, self.best_ssim, self.best_mse, self.count = degradation, -float("inf"), float("inf"), 0
        for row in history:  # a resumed run continues the counter
            self.update(row["val_ssim"], row["val_mse"])

    def update(self, ssim: float, mse: float) -> int:
        if ssim > self.best_ssim or mse < self.best_mse:
            self.count += 1
        self.best_ssim, self.best_mse = max(self.best_ssim, ssim), min(self.best_mse, mse)
        return self.count

    @torch.no_grad()
    def __call__(self, model: nn.Module, loader: DataLoader, device: torch.device) -> dict[str, float]:
        sums = torch.zeros(4, dtype=torch.float64, device=device)  # ssim, mse, psnr, images
        for hr_u8, _ in loader:
            pyr = pyramid(hr_u8, device, self.degradation)
            sr, hr = model(pyr["lr"]).float(), pyr["hr"]
            sums += torch.stack([ssim_eval(sr, hr).sum(), (sr - hr).pow(2).flatten(1).mean(1).double().sum(),
                                 psnr(sr, hr).sum(), torch.tensor(len(sr), device=device, dtype=torch.float64)])
        if dist.is_initialized():
            dist.all_reduce(sums)  # every rank sees the global numbers, so the counters agree
        ssim, mse, db = (sums[:3] / sums[3]).tolist()
        return {"val_ssim": ssim, "val_mse": mse, "val_psnr": db, MONITOR: float(self.update(ssim, mse))}


# ---------------------------------------------------------------------------- BatchNorm under DDP
class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span the global batch of all processes.

    For CPU/gloo DDP, where torch's `nn.SyncBatchNorm` is unavailable: the per-channel sums of x and
    x^2 are all-reduced with the differentiable `torch.distributed.nn.functional.all_reduce`, so the
    backward pass also sees the other processes' samples, as in SyncBatchNorm. Outside a process
    group, or in eval mode, it is a plain BatchNorm2d (same state_dict).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized()):
            return super().forward(x)
        c, xf = x.shape[1], x.float()
        count = xf.new_full((1,), xf.numel() // c)
        stats = all_reduce(torch.cat([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3)), count]))
        n = stats[-1]
        mean = stats[:c] / n
        var = stats[c:2 * c] / n - mean * mean
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)  # unbiased, as BatchNorm2d
        shape = (1, c, 1, 1)
        y = (xf - mean.view(shape)) * torch.rsqrt(var + self.eps).view(shape)
        return (y * self.weight.view(shape) + self.bias.view(shape)).to(x.dtype)


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """BatchNorm over the global batch under DDP: nn.SyncBatchNorm on CUDA, GlobalBatchNorm2d on CPU."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for parent in list(model.modules()):
        for name, bn in parent.named_children():
            if type(bn) is nn.BatchNorm2d:
                new = GlobalBatchNorm2d(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
                new.load_state_dict(bn.state_dict())
                setattr(parent, name, new)
    return model


def _init_distributed(device: str | torch.device | None) -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1); True if this call created it."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


# ------------------------------------------------------------------------------------------- data
@dataclass
class SRData:
    """The SR stage's faces, decoded once (uint8 HR on the CPU) and shared by every run on one selection
    (`csrip ablation` and `csrip reproduce` train all their models on one SRData)."""

    root: Path
    selection: FaceSelection
    identities: list[str]  # the recognizers' classes: labels index into this
    hr: torch.Tensor
    labels: torch.Tensor
    val_hr: torch.Tensor
    val_labels: torch.Tensor

    def __repr__(self) -> str:
        return (f"SRData({str(self.root)!r}: {len(self.hr):,} training faces of {len(self.identities):,} "
                f"identities, {len(self.val_hr):,} validation faces)")


def sr_datasets(data: str | Path | None, selection: FaceSelection, progress: bool = True) -> SRData:
    """The SR stage's training and validation faces for a `FaceSelection` (a preset's `.selection`).

    Train: exactly the images the recognizers of that selection are trained on (`recognizers.
    load_identities`: the same identities and the same 90% of each identity's images), as in the paper,
    where both stages use the same training set (Sec. 4.1), so the identity loss knows every face it sees.
    Val: the "val" split (other identities), for early stopping and the kept epoch. That choice is ours:
    the paper (Sec. 4.1) selects the SR network on its per-identity 10% too; ours selects on people the
    network never saw, as it is then tested. The recognizers' validation images (val_idx, the other 10%)
    are never trained on (tests/test_train_sr.py checks it).
    """
    train_ds, images, labels, train_idx, _ = load_identities(data, selection, progress=progress)
    val_hr, val_labels = load_cached(FaceFolder(train_ds.root, "val", max_images=selection.max_val_images),
                                     progress=progress)
    return SRData(train_ds.root, selection, train_ds.identities, images[train_idx], labels[train_idx],
                  val_hr, val_labels)


def sr_run(preset: Preset, *, loss: LossConfig | None = None, arch: str | None = None,
           train: TrainConfig | None = None, degradation: DegradationConfig | None = None) -> RunSpec:
    """C-SRIP's network at `preset` as one `RunSpec`: the preset's loss (Eq. 4), architecture, schedule and
    degradation unless given. arch: "cascaded" or "baseline" (Sec. 4.3; needs loss.multiscale=False)."""
    loss = loss or preset.loss
    net = replace(preset.sr, arch=arch or preset.sr.arch)
    if net.arch == "baseline" and loss.multiscale:
        raise CSRIPError("the Baseline network has no 2x/4x outputs (all upscaling is at the end, Sec. 4.3): "
                         "train it with single-scale supervision (--single-scale / LossConfig(multiscale=False))")
    return RunSpec(preset.name, "csrip", net, train or preset.train_sr, degradation or preset.degradation,
                   preset.selection, loss)


def training_data(data: str | Path | SRData | None, run: RunSpec, progress: bool = True) -> SRData:
    """`data` as the SR stage's faces of `run`: loaded now from a folder, or checked if already loaded."""
    if not isinstance(data, SRData):
        return sr_datasets(data, run.selection, progress=progress)
    if data.selection != run.selection:
        raise CSRIPError(f"{data!r} was selected by {data.selection}, but this run trains on {run.selection}")
    return data


def check_identity_universe(recognizers: dict, identities: list[str], recognizers_dir, preset: str,
                            root: Path, partial: bool = False) -> None:
    """Fail before training if the recognizers were trained on another identity set than the SR data
    (compares the `identities_sha256` their checkpoints saved with the digest of `identities`).
    partial: accept recognizers that know only some of the identities (the others get no identity term,
    `CSRIPLoss`), e.g. shipped priors on a superset of their data; they must know at least one."""
    want = identities_digest(identities)
    for size, rec in recognizers.items():
        have = getattr(rec, "identities_sha256", None) or identities_digest(rec.identities)
        if have != want and not (partial and set(rec.identities) & set(identities)):
            raise CSRIPError(
                f"the recognizers in {recognizers_dir} ({size} px) were trained on another identity set "
                f"({len(rec.identities)} identities, sha256 {have}) than this SR training data "
                f"({len(identities)} identities, sha256 {want}; preset {preset!r}, {root}). Train them on "
                f"this data first: `csrip train-recognizers --data {root} --preset {preset} --out DIR`, "
                "then pass --recognizers DIR")


def _load_priors(recognizers: str | Path | dict | None, data: SRData, run: RunSpec,
                 partial: bool = False) -> tuple[CSRIPLoss, dict[str, str] | None]:
    """`run`'s Eq. 4 loss with the recognizers of `recognizers` (a run folder or a loaded dict), checked
    against the training data (they must cover the loss's scales and know exactly its identities), and
    the priors' record for the checkpoints (`priors_record`; None without an identity term)."""
    recs, loss = None, run.loss
    check_identity_prior(loss.alpha, recognizers)
    if loss.alpha > 0:
        if isinstance(recognizers, dict):
            recs = recognizers
        else:
            recs = load_recognizers(recognizers, scales=(48, 96, 192) if loss.multiscale else (192,))
        check_identity_universe(recs, data.identities, recognizers, run.preset, data.root, partial)
    try:
        loss_fn = CSRIPLoss.from_config(loss, recs, identities=data.identities)
    except ValueError as e:
        raise CSRIPError(f"recognizers {recognizers}: {e}") from e
    if loss_fn.uses_identity:
        known = loss_fn.known_fraction(data.labels)
        if not dist.is_initialized() or dist.get_rank() == 0:
            print(f"identity loss: the recognizers know {known:.0%} of the training images' identities "
                  "(the others get the reconstruction terms only)")
    return loss_fn, priors_record(recs)


def priors_record(recognizers: dict | None) -> dict[str, str] | None:
    """The identity priors as a run's config records them: {scale: SHA-256 of the recognizer's weights}.
    By content, not by folder, so a run resumes from any clone or folder holding the same priors."""
    return None if not recognizers else {str(s): state_digest(m.state_dict()) for s, m in sorted(recognizers.items())}


def as_recorded(config: dict[str, Any], saved: dict[str, Any]) -> dict[str, Any]:
    """`config` in the form an older run of it recorded, so that the run resumes: runs written before
    priors were recorded by content saved the face folder ("data") and the priors' folder
    ("recognizers") as paths. The folder path is provenance only (the identity digest under
    "identities" is compared); an old priors path is accepted when it still holds the same weights."""
    config = dict(config)
    if isinstance(saved.get("data"), str) and "data" not in config:
        config["data"] = saved["data"]
    old = saved.get("recognizers")
    if isinstance(old, str) and isinstance(config.get("recognizers"), dict) and Path(old).is_dir():
        try:
            same = priors_record(load_recognizers(old, scales=tuple(int(s) for s in config["recognizers"])))
        except CSRIPError:
            same = None
        if same == config["recognizers"]:
            config["recognizers"] = old
    return config


# ------------------------------------------------------------------------------------------ train
def _load_init(model: nn.Module, path: str | Path, sr_cfg) -> None:
    """Start `model` from the weights of an SR checkpoint of the same architecture."""
    ckpt = load_checkpoint(path, kind=KIND)
    if ckpt["config"].get("sr") != to_dict(sr_cfg):
        raise CSRIPError(f"--init {path} holds another SR network ({ckpt['config'].get('sr')}); "
                         f"expected {to_dict(sr_cfg)}")
    model.load_state_dict(ckpt["model"])


def train_sr(data: str | Path | SRData | None, run: RunSpec, out: str | Path | None = None, *,
             recognizers: str | Path | dict | None = None, resume: bool = False, force: bool = False,
             device: str | torch.device | None = None, init: str | Path | None = None, progress: bool = True,
             strict_resume: bool = False, partial_priors: bool = False, speed: SpeedConfig | None = None
             ) -> pd.DataFrame:
    """Train C-SRIP's network as `run` says (`sr_run`: Eq. 4's parts, architecture, schedule, degradation,
    faces) and return the per-epoch log (also out/log.csv).

    data: a face folder (None: `resolve_data`'s order) or the faces already loaded (`sr_datasets`);
    recognizers: a `csrip train-recognizers` run folder or loaded dict (needed when run.loss.alpha > 0);
    init: an SR checkpoint of the same network to start from (e.g. a shared C+SSIM+M start for runs
    that differ only in alpha), instead of the seeded initialisation. The run folder is checked before
    any data is read (`outputs.check_runs`); `strict_resume` (the --resume flag) makes "nothing to
    resume" an error instead of a new run. partial_priors: accept recognizers that know only some of the
    training identities (`check_identity_universe`; the tour's shipped priors on a superset of their data).
    speed: how the step runs (default: `step_speed`, bf16 and channels_last where the hardware has them).
    The batch size is global under DDP.
    """
    loss, tcfg = run.loss, run.train
    out = Path(out) if out is not None else runs_dir() / run.preset / "sr"
    check_runs([out], resume=resume, force=force, strict_resume=strict_resume)
    owns_group = _init_distributed(device)
    try:
        world, rank = (dist.get_world_size(), dist.get_rank()) if dist.is_initialized() else (1, 0)
        if tcfg.batch_size % world:
            raise CSRIPError(f"batch size {tcfg.batch_size} is not divisible by the {world} processes")
        dev = pick_device(device)
        speed = speed or step_speed(dev)
        data = training_data(data, run, progress=progress and rank == 0)
        if len(data.hr) < tcfg.batch_size:
            raise CSRIPError(f"{data.root}: {len(data.hr)} training images, fewer than one batch ({tcfg.batch_size})")
        loss_fn, priors = _load_priors(recognizers, data, run, partial_priors)
        loss_fn = loss_fn.to(dev)
        if speed.channels_last:
            loss_fn = loss_fn.to(memory_format=torch.channels_last)  # the frozen priors, like the network

        torch.manual_seed(tcfg.seed)  # the same initial weights in every process
        model = build_model(run.net)
        if init is not None:
            _load_init(model, init, run.net)
        if isinstance(model, CascadedSR) and not loss.multiscale:
            model.heads.requires_grad_(False)  # unused branches: no gradient, not optimized (and DDP-safe)
        if world > 1:
            model = sync_batchnorm(model, dev)

        train_set = TensorDataset(data.hr, data.labels)
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                     seed=tcfg.seed, drop_last=True)
        train_loader = DataLoader(train_set, batch_size=tcfg.batch_size // world, sampler=sampler,
                                  drop_last=True, num_workers=tcfg.num_workers, pin_memory=dev.type == "cuda")
        val_loader = DataLoader(TensorDataset(data.val_hr, data.val_labels), batch_size=max(tcfg.batch_size, 32))

        def step(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device):
            hr_u8, y = batch
            pyr = pyramid(hr_u8, device, run.degradation, speed.channels_last)
            total, terms = loss_fn(net(pyr["lr"], all_scales=loss.multiscale), pyr, y.to(device))
            return {"loss": total, **terms}

        config = {"preset": run.preset, "sr": to_dict(run.net), "loss": to_dict(loss), "train": to_dict(tcfg),
                  "degradation": to_dict(run.degradation), "identities": data_config(run.selection, data.identities),
                  "recognizers": priors, "init": None if init is None else str(init)}
        history = []
        if resume and (out / "last.pt").exists():
            last = load_checkpoint(out / "last.pt", kind=KIND)
            history, config = last["state"]["history"], as_recorded(config, last["config"])
        return fit(model, step, Convergence(run.degradation, history), train_loader, val_loader, tcfg, out,
                   kind=KIND, config=config, monitor=MONITOR, mode="max", resume=resume, force=force, device=dev,
                   extra={"identities": data.identities, "data": str(data.root)}, speed=speed)
    finally:
        if owns_group:
            dist.destroy_process_group()


# --------------------------------------------------------------------------- notebook diagnostics
def term_gradients(model: nn.Module, loss_fn: CSRIPLoss, hr_u8: torch.Tensor, labels: torch.Tensor,
                   degradation: DegradationConfig | None = None) -> dict[str, tuple[float, torch.Tensor]]:
    """Each Eq. 4 term on one batch: {name: (value, its gradient w.r.t. the SR weights, flattened)}.
    The batch is degraded as the model was trained (`degradation.for_models`) unless `degradation` is given.

    The gradient is linear in alpha: for any alpha the total is sum(g_rec) + alpha * sum(g_ce), so the
    alpha slider of notebook 05 recombines these exactly without another backward pass.
    """
    degradation = for_models({"the model": model}, degradation)
    model = copy.deepcopy(model).train()  # training-mode BatchNorm, without touching the caller's model
    device = next(model.parameters()).device
    params = [q for q in model.parameters() if q.requires_grad]
    pyr = pyramid(hr_u8, device, degradation)
    _, terms = loss_fn(model(pyr["lr"], all_scales=loss_fn.multiscale), pyr, labels.to(device),
                       detach_terms=False)
    out = {}
    for name, term in terms.items():
        if not term.requires_grad:  # an identity term with no known identity in the batch
            out[name] = (float(term), torch.zeros(sum(q.numel() for q in params), device=device))
            continue
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        flat = torch.cat([(g if g is not None else torch.zeros_like(q)).flatten() for g, q in zip(grads, params)])
        out[name] = (float(term.detach()), flat)
    return out


@torch.no_grad()
def batch_terms(model: nn.Module, loss_fn: CSRIPLoss, hr_u8: torch.Tensor, labels: torch.Tensor,
                degradation: DegradationConfig | None = None) -> dict[str, float]:
    """The Eq. 4 terms of the model in eval mode on one batch (e.g. the identity loss on training faces),
    degraded as in `term_gradients`."""
    degradation = for_models({"the model": model}, degradation)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pyr = pyramid(hr_u8, device, degradation)
    _, terms = loss_fn(model(pyr["lr"], all_scales=loss_fn.multiscale), pyr, labels.to(device))
    model.train(was_training)
    return {k: float(v) for k, v in terms.items()}


# ---------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="face folder <root>/<identity>/<image> "
                        "(default: $CSRIP_DATA, data/lfw-deepfunneled, else synthetic faces)")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS),
                        help="model size, identity set and schedule; the same default as train-recognizers "
                        f"(default: {DEFAULT_PRESET}; paper = Sec. 3.4)")
    parser.add_argument("--recognizers", default=None, help="run folder of `csrip train-recognizers` "
                        "(rec48/, rec96/, rec192/) or a shipped name (recognizers-quick); needed unless --alpha 0")
    parser.add_argument("--partial-priors", action="store_true", help="accept recognizers that know only some of "
                        "the training identities (e.g. those with >= 2 images); faces of the others get the "
                        "reconstruction terms only, and the known fraction is printed")
    parser.add_argument("--alpha", type=nonnegative_float, default=None, help="weight of the identity terms "
                        "(default: the preset's, 0.001 as in Sec. 3.4; 0 = no identity prior)")
    parser.add_argument("--loss", choices=["ssim", "mse"], default="ssim", help="reconstruction loss (Eq. 2 or MSE)")
    parser.add_argument("--single-scale", action="store_true", help="supervise only the 192 px output")
    parser.add_argument("--arch", choices=["cascaded", "baseline"], default="cascaded",
                        help="C-SRIP's cascade or the ablation Baseline (Sec. 4.3; needs --single-scale)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<preset>/sr)")
    parser.add_argument("--init", default=None, metavar="CKPT", help="start from the weights of this SR "
                        "checkpoint of the same preset (e.g. runs sharing a start that differ only in alpha)")
    parser.add_argument("--sigma", type=nonnegative_float, default=None, help="degradation blur per 2x step in "
                        "pixels (Sec. 3.3; default: the preset's, 1.0); saved in the checkpoints")
    add_schedule_arguments(parser)
    add_speed_arguments(parser)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: CUDA if available)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    parser.add_argument("--force", action="store_true", help="overwrite the run in --out")


def run(args: argparse.Namespace) -> int:
    p = get_preset(args.preset)  # the one lookup of the name; everything below takes the RunSpec
    loss = replace(p.loss, reconstruction=args.loss, multiscale=not args.single_scale,
                   alpha=p.loss.alpha if args.alpha is None else args.alpha)
    spec = sr_run(p, loss=loss, arch=args.arch, train=schedule_from_args(args, p.train_sr),
                  degradation=None if args.sigma is None else replace(p.degradation, sigma=args.sigma))
    recognizers = None if args.recognizers is None else resolve(args.recognizers, kind="recognizers")
    train_sr(args.data, spec, args.out, recognizers=recognizers, resume=args.resume, force=args.force,
             device=args.device, init=args.init, strict_resume=True, partial_priors=args.partial_priors,
             speed=speed_from_args(args, args.device))
    return 0
