"""`csrip train-competitor`: the Table 1 competitors (paper Sec. 4.2) trained like C-SRIP.

    csrip train-competitor --model srcnn|vdsr|lp|srgan|urdgn|nbsrf --data DIR --preset quick|paper
                           [--recognizers runs/X] --out runs/Y [--resume] [--force]

Python: `train_competitor(data, competitor_run("vdsr", get_preset("quick")), out)` -> the per-epoch log (also
out/log.csv).

Same data, degradation and splits as `csrip train-sr` (`sr_datasets`, `pyramid`: the training images
of the preset's recognizers, degraded on the fly by `make_pyramid`, Sec. 3.3; the "val" split for
early stopping with C-SRIP's combined SSIM/MSE criterion), the same harness (`train.fit`: Adam, the
preset's schedule, exact resume, --force, log.csv, last.pt / best.pt of kind "sr" that every command
loads through models.registry.load_sr). Per model:

    srcnn, vdsr  pixel MSE (VDSR with gradient-norm clipping, TrainConfig.grad_clip, default 0.4)
    lp           lp.PerceptualLoss: fire2-4 features of the 192 px recognizer + pixel MSE, each term
                 divided by bicubic's on the same batch (balance="bicubic", lp.py)
    srgan        Ledig et al.'s two stages, both inside the stated budget: stage 1 the SRResNet generator
                 with pixel MSE for `pretrain_fraction` of the steps (0.5 in both presets), in
                 <out>/pretrain/; stage 2 from its kept generator, content = lp.PerceptualLoss (no
                 ImageNet VGG offline) + 1e-3 x adversarial, for the rest, in <out>/. Only stage 2's
                 epochs are candidates for best.pt: the kept model is always adversarially trained.
    urdgn        pixel MSE + 1e-2 x adversarial
    nbsrf        NBSRF-like: no SGD, a plain averaged scikit-learn forest fitted once (deterministic,
                 seeded), stored as tensors; no naive-Bayes tree selection, no per-leaf regressors

Sizes, not recipes: `--preset paper` (and `small`) builds each competitor at its original paper's size,
but trains it with our schedule and losses (Adam on the preset's SR schedule, `competitor_run`; the losses
above), not the original training recipe; `quick`/`tiny` are narrower CPU sizes with a bicubic skip.

The GANs train through `GANStep`, an `OwnStep` of the harness: one Adam for the generator and one for
the discriminator, both scheduled, checkpointed and resumed by `fit`. lp and srgan need trained
recognizers (`--recognizers`, from `csrip train-recognizers`). GAN training is single-process.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from ..core.checkpoint import load_checkpoint, save_checkpoint, state_digest
from ..core.config import (DegradationConfig, Preset, RunSpec, SpeedConfig, TrainConfig, get_preset, runs_dir,
                           to_dict, with_legacy_degradation)
from ..core.console import CSRIPError
from ..core.degradation import DEFAULT
from ..core.outputs import check_runs
from ..core.runtime import pick_device
from ..models.common import bicubic_up
from ..models.lp import PerceptualLoss
from ..models.nbsrf import NBSRF, block_features, block_targets
from ..models.recognizer import load_recognizers
from ..models.registry import COMPETITORS, build_sr, check_name, checkpoint_config, model_config, stored_model
from .harness import OwnStep, add_speed_arguments, fit, seed_everything, sitting, speed_from_args
from .sr import (MONITOR, Convergence, SRData, add_schedule_arguments, as_recorded, priors_record, pyramid,
                 schedule_from_args, training_data)

KIND = "sr"
NEEDS_RECOGNIZER = ("lp", "srgan")
PRETRAIN = "pretrain"  # SRGAN's stage 1 (SRResNet, pixel MSE): a run folder inside the SRGAN run's
ContentFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, torch.Tensor]]]


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Pixel MSE (a `ContentFn`: SR, HR and the LR input it came from, which MSE does not need)."""
    mse = F.mse_loss(sr.float(), hr)
    return mse, {"pixel": mse.detach()}


class SRStep:
    """One supervised step: degrade, super-resolve, score with `content` (fit does the optimizer step)."""

    def __init__(self, content: ContentFn, degradation: DegradationConfig = DEFAULT):
        self.content, self.degradation = content, degradation

    def __call__(self, net: nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        pyr = pyramid(batch[0], device, self.degradation)
        total, terms = self.content(net(pyr["lr"]), pyr["hr"], pyr["lr"])
        return {"loss": total, **terms}


class GANStep(OwnStep):
    """One GAN step (SRGAN, URDGN): a discriminator update on real HR vs detached SR, then a generator
    update on content + adv_weight x BCE(D(SR), real). Real labels 0.9 (one-sided label smoothing,
    Salimans et al. 2016) keep the small quick-size discriminator from saturating; that smoothing is ours,
    neither SRGAN nor URDGN uses it."""

    def __init__(self, content: ContentFn, adv_weight: float, degradation: DegradationConfig = DEFAULT,
                 grad_clip: float | None = None):
        self.content, self.adv_weight, self.degradation, self.grad_clip = content, adv_weight, degradation, grad_clip
        self.opt: dict[str, torch.optim.Optimizer] = {}

    def optimizers(self, model: nn.Module, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        self.opt = {part: torch.optim.Adam(getattr(model, part).parameters(), lr=cfg.lr, betas=(0.9, 0.999),
                                           weight_decay=cfg.weight_decay)
                    for part in ("generator", "discriminator")}
        return self.opt

    def _update(self, part: str, loss: torch.Tensor, params) -> None:
        self.opt[part].zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        self.opt[part].step()

    def __call__(self, net: nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        model = getattr(net, "module", net)
        g, d = model.generator, model.discriminator
        pyr = pyramid(batch[0], device, self.degradation)
        hr = pyr["hr"]
        sr = g(pyr["lr"])
        real, fake = d(hr), d(sr.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real, torch.full_like(real, 0.9))
                  + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
        self._update("discriminator", d_loss, d.parameters())
        content, terms = self.content(sr, hr, pyr["lr"])
        d.requires_grad_(False)  # the generator's step does not touch D's gradients
        out = d(sr)
        d.requires_grad_(True)
        adv = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
        g_loss = content + self.adv_weight * adv
        self._update("generator", g_loss, g.parameters())
        return {"loss": g_loss.detach(), **terms, "adversarial": adv.detach(), "d_loss": d_loss.detach(),
                "d_real": torch.sigmoid(real).mean().detach(), "d_fake": torch.sigmoid(fake).mean().detach()}


def _priors(recognizers: str | Path | dict | None, name: str) -> dict:
    """{192: the 192 px recognizer} whose features lp and srgan's content loss compares."""
    if recognizers is None:
        raise CSRIPError(f"{name} is trained with a feature loss on the 192 px recognizer: pass --recognizers "
                         "runs/X (from `csrip train-recognizers`)")
    return {192: recognizers[192] if isinstance(recognizers, dict) else load_recognizers(recognizers, scales=(192,))[192]}


def make_step(name: str, cfg: Any, recognizers: dict | None, degradation: DegradationConfig, device: torch.device,
              train: TrainConfig):
    """The training step of model `name` (see the module docstring); lp and srgan need `_priors`."""
    content: ContentFn = pixel_loss
    if name in NEEDS_RECOGNIZER:
        content = PerceptualLoss(recognizers[192], cfg.pixel_weight, cfg.balance).to(device)
    if name in ("srgan", "urdgn"):
        return GANStep(content, cfg.adv_weight, degradation, train.grad_clip)
    return SRStep(content, degradation)


def competitor_run(name: str, preset: Preset, train: TrainConfig | None = None) -> RunSpec:
    """Table 1 competitor `name` at `preset`'s size as one `RunSpec`: the preset's SR schedule (or `train`),
    with VDSR's gradient clipping when none is set and at most SRGAN's learning rate 1e-4 for the SRResNet
    models (lp, srgan): at 1e-3 Adam's first steps move the 9x9 RGB conv over 32-64 unnormalised channels
    so far that the output leaves [0, 1] for good."""
    name = check_name(name)
    if name == "csrip":
        raise CSRIPError("C-SRIP is trained by `csrip train-sr`; train-competitor trains "
                         f"{', '.join(COMPETITORS)}")
    tcfg = train or preset.train_sr
    if name == "vdsr" and tcfg.grad_clip is None:
        tcfg = replace(tcfg, grad_clip=0.4)
    if name in ("lp", "srgan"):
        tcfg = replace(tcfg, lr=min(tcfg.lr, 1e-4))
    return RunSpec(preset.name, name, model_config(name, preset), tcfg, preset.degradation, preset.selection)


def _resumed(out: Path, name: str, resume: bool) -> dict[str, Any] | None:
    """The run in `out` that `resume` continues (None: none), never a run of another model (clear error)."""
    last = out / "last.pt"
    if not (resume and last.exists()):
        return None
    saved = load_checkpoint(last, kind=KIND)
    if stored_model(saved["config"]) != name:
        raise CSRIPError(f"{out} holds a {stored_model(saved['config'])!r} run, not {name!r}; use another --out, "
                         "or --force to replace it")
    return saved


def _prepare_out(out: Path, resume: bool, force: bool) -> None:
    """The harness's rule for an existing run folder: resume, or --force to start over, else an error."""
    runs = [p for p in (out / "last.pt", out / "best.pt") if p.exists()]
    if runs and not resume:
        if not force:
            raise CSRIPError(f"{out} already holds a training run ({runs[0].name}); pass resume=True (--resume) "
                             "to continue it or force=True (--force) to start over")
        for p in (*runs, out / "log.csv"):
            p.unlink(missing_ok=True)


def fit_forest(cfg, hr: torch.Tensor, val_loader: DataLoader, out: Path, config: dict[str, Any], *,
               seed: int = 0, degradation: DegradationConfig = DEFAULT, resume: bool = False, force: bool = False,
               device: torch.device = torch.device("cpu"), extra: dict[str, Any] | None = None) -> pd.DataFrame:
    """Fit the NBSRF-like forest on blocks of the training faces and write best.pt/last.pt/log.csv like `fit`.

    Deterministic (seeded block sampling and forest): a killed fit restarts from scratch and ends with
    the same forest; a finished one is reused with `resume`."""
    from sklearn.ensemble import RandomForestRegressor  # lazy: scikit-learn's import is slow, and only this fits

    _prepare_out(out, resume, force)
    last = out / "last.pt"
    if resume and last.exists():
        ckpt = load_checkpoint(last, kind=KIND)
        fitted = {k: v for k, v in ckpt["config"].items() if k != "nbsrf"}
        wanted = with_legacy_degradation(config, ckpt["config"])
        if fitted != {k: v for k, v in wanted.items() if k != "nbsrf"}:
            raise CSRIPError(f"{last} was fitted with a different configuration; use --force or another --out")
        print(f"{out}: finished (fitted)")
        return pd.DataFrame(ckpt["state"]["history"])
    t0, started = time.time(), sitting(SpeedConfig())  # a forest fit: float32, no autocast
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    per_image = max(1, -(-cfg.patches // len(hr)))  # blocks sampled per training face
    xs, ys = [], []
    for chunk in hr.split(64):
        pyr = pyramid(chunk, torch.device("cpu"), degradation)
        up = bicubic_up(pyr["lr"])
        x, y = block_features(up, cfg), block_targets(up, pyr["hr"])
        blocks = x.shape[0] // len(chunk)
        pick = torch.stack([torch.randperm(blocks, generator=g)[:per_image] + i * blocks for i in range(len(chunk))])
        xs.append(x[pick.flatten()])
        ys.append(y[pick.flatten()])
    x, y = torch.cat(xs)[:cfg.patches].numpy(), torch.cat(ys)[:cfg.patches].numpy()
    print(f"nbsrf: fitting {cfg.trees} trees on {len(x)} blocks of {len(hr)} faces ({x.shape[1]} features)")
    forest = RandomForestRegressor(cfg.trees, max_depth=cfg.max_depth, min_samples_leaf=cfg.min_samples_leaf,
                                   max_features=cfg.max_features, random_state=seed, n_jobs=1).fit(x, y)
    model = NBSRF(replace(cfg)).load_forest(forest).to(device).eval()
    config = {**config, "nbsrf": to_dict(model.cfg)}
    row = {"epoch": 1, "step": 0, **Convergence(degradation)(model, val_loader, device)}
    row["seconds"] = round(time.time() - t0, 2)
    state = {"model": model.state_dict(), "config": config, **(extra or {}), "metrics": row, "epoch": 1,
             "provenance": {"sittings": [started], "wall_s": row["seconds"], "steps": 0}}
    save_checkpoint(state, out / "best.pt", KIND)
    save_checkpoint({**state, "state": {"finished": "fitted", "history": [row]}}, last, KIND)
    log = pd.DataFrame([row])
    log.to_csv(out / "log.csv", index=False)
    print(f"{out}: finished (fitted); val_psnr = {row['val_psnr']:.4g}, val_ssim = {row['val_ssim']:.4g}")
    return log


def train_competitor(data: str | Path | SRData | None, run: RunSpec, out: str | Path | None = None, *,
                     recognizers: str | Path | dict | None = None, resume: bool = False, force: bool = False,
                     device: str | torch.device | None = None, progress: bool = True,
                     strict_resume: bool = False, speed: SpeedConfig | None = None) -> pd.DataFrame:
    """Train (fit, for nbsrf) the Table 1 competitor `run` describes (`competitor_run`); returns the
    per-epoch log. data: a face folder or the faces already loaded (`sr_datasets`). The run folder is
    checked before any data is read (`outputs.check_runs`; `strict_resume`, the --resume flag, makes
    "nothing to resume" an error). speed: how the step runs (default `step_speed`, as for C-SRIP)."""
    name, cfg, tcfg = run.model, run.net, run.train
    out = Path(out) if out is not None else runs_dir() / run.preset / name
    check_runs([out, *([out / PRETRAIN] if name == "srgan" else [])], resume=resume, force=force,
               strict_resume=strict_resume)
    saved = _resumed(out, name, resume)
    dev = pick_device(device)
    data = training_data(data, run, progress=progress)
    if len(data.hr) < tcfg.batch_size:
        raise CSRIPError(f"{data.root}: {len(data.hr)} training images, fewer than one batch ({tcfg.batch_size})")
    val_loader = DataLoader(TensorDataset(data.val_hr, data.val_labels), batch_size=max(tcfg.batch_size, 32))
    recs = _priors(recognizers, name) if name in NEEDS_RECOGNIZER else None
    config = {"preset": run.preset, **checkpoint_config(name, cfg), "degradation": to_dict(run.degradation),
              "recognizers": priors_record(recs)}
    extra = {"identities": data.identities, "data": str(data.root)}
    if saved is not None:
        config = as_recorded(config, saved["config"])
    if name == "nbsrf":
        return fit_forest(cfg, data.hr, val_loader, out, config, seed=tcfg.seed, degradation=run.degradation,
                          resume=resume, force=force, device=dev, extra=extra)
    step = make_step(name, cfg, recs, run.degradation, dev, tcfg)
    torch.manual_seed(tcfg.seed)
    model = build_sr(name, cfg)
    train_set = TensorDataset(data.hr, data.labels)
    sampler = DistributedSampler(train_set, num_replicas=1, rank=0, shuffle=True, seed=tcfg.seed, drop_last=True)
    train_loader = DataLoader(train_set, batch_size=tcfg.batch_size, sampler=sampler, drop_last=True,
                              num_workers=tcfg.num_workers, pin_memory=dev.type == "cuda")
    fit_args = dict(kind=KIND, monitor=MONITOR, mode="max", resume=resume, force=force, device=dev, extra=extra,
                    speed=speed)
    if name == "srgan" and cfg.pretrain_fraction > 0:  # Ledig et al.'s stage 1, then stage 2 from its generator
        stage1, tcfg = split_budget(cfg.pretrain_fraction, tcfg, len(train_loader))
        pre, pre_saved = out / PRETRAIN, _resumed(out / PRETRAIN, name, resume)
        fit(model, SRStep(pixel_loss, run.degradation), Convergence(run.degradation, _history(pre_saved)),
            train_loader, val_loader, stage1, pre, config={**config, "stage": "srresnet-mse"}, **fit_args)
        model.load_state_dict(load_checkpoint(pre / "best.pt", kind=KIND)["model"])
        config = {**config, "init": state_digest(model.state_dict())}  # a resumed stage 2 needs this start
    return fit(model, step, Convergence(run.degradation, _history(saved)), train_loader, val_loader, tcfg, out,
               config=config, **fit_args)


def _history(saved: dict[str, Any] | None) -> list[dict[str, Any]]:
    return saved["state"]["history"] if saved is not None else []


def split_budget(fraction: float, tcfg: TrainConfig, batches: int) -> tuple[TrainConfig, TrainConfig]:
    """`tcfg`'s step budget (max_steps, else epochs x steps per epoch of `batches` batches) split into
    SRGAN's stage 1 (round(fraction x budget) steps) and stage 2 (the rest), each as its own schedule."""
    per_epoch = min(batches, tcfg.steps_per_epoch or batches)
    total = min(tcfg.epochs * per_epoch, tcfg.max_steps or tcfg.epochs * per_epoch)
    first = round(fraction * total)
    if not 0 < first < total:
        raise CSRIPError(f"SRGAN's budget of {total} steps leaves no steps for one of its two stages "
                         f"(pretrain_fraction {fraction}); give it more steps")
    return replace(tcfg, max_steps=first), replace(tcfg, max_steps=total - first)


def run_logs(run: str | Path) -> dict[str, pd.DataFrame]:
    """A run folder's per-epoch logs by stage: SRGAN's stage 1 (<run>/pretrain/log.csv) as "mse", before
    the run's own log.csv as "main"; stages without a log are left out."""
    folders = {"mse": Path(run) / PRETRAIN, "main": Path(run)}
    return {stage: pd.read_csv(f / "log.csv") for stage, f in folders.items() if (f / "log.csv").is_file()}


def training_cost(run: str | Path) -> tuple[float, int]:
    """(seconds, optimizer steps) a finished run trained, from its logs (`run_logs`, cumulative columns),
    SRGAN's two stages added; the NBSRF-like forest: its fit time and 0 steps."""
    last = [log.iloc[-1] for log in run_logs(run).values()]
    return sum(float(r["seconds"]) for r in last), sum(int(r["step"]) for r in last)


def validation_curve(run: str | Path) -> list[dict[str, Any]]:
    """A finished run's validation scores per epoch (`run_logs`): [{stage, step, val_psnr, val_ssim}],
    SRGAN's stage "mse" before its adversarial stage "main" (steps count within each stage, as the kept
    step does), so that a result can say where a competitor's SSIM was won or lost."""
    return [{"stage": stage, "step": int(r.step), "val_psnr": round(float(r.val_psnr), 4),
             "val_ssim": round(float(r.val_ssim), 5)}
            for stage, log in run_logs(run).items() for r in log.dropna(subset=["val_ssim"]).itertuples()]


# ---------------------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=str.lower, choices=list(COMPETITORS),
                        help="which Table 1 competitor (Sec. 4.2; nbsrf is the NBSRF-like forest)")
    parser.add_argument("--data", default=None, help="face folder <root>/<identity>/<image> "
                        "(default: $CSRIP_DATA, data/lfw-deepfunneled, else synthetic faces)")
    parser.add_argument("--preset", default="paper", choices=["paper", "small", "tiny", "quick"],
                        help="quick/tiny: CPU-minutes sizes; paper/small: the original papers' sizes, "
                        "trained with our schedule and losses (not the original recipes)")
    parser.add_argument("--recognizers", default=None, help="run folder of `csrip train-recognizers` "
                        "(lp and srgan use its 192 px recognizer's features)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/<preset>/<model>)")
    add_schedule_arguments(parser)
    add_speed_arguments(parser)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: CUDA if available)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    parser.add_argument("--force", action="store_true", help="overwrite the run in --out")


def run(args: argparse.Namespace) -> int:
    preset = get_preset(args.preset)
    spec = competitor_run(args.model, preset, schedule_from_args(args, preset.train_sr))
    train_competitor(args.data, spec, args.out, recognizers=args.recognizers, resume=args.resume, force=args.force,
                     device=args.device, strict_resume=True, speed=speed_from_args(args, args.device))
    return 0
