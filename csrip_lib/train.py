"""The shared training harness: one `fit` for the recognizers (paper Sec. 3.3/3.4) and the SR network.

The caller says *what* one step and one evaluation are; `fit` does the rest:
    step_fn(model, batch, device) -> {"loss": Tensor, <other terms>: Tensor}   (terms are logged)
    eval_fn(model, loader, device) -> {<metric>: float}                         (`monitor` picks one)
Adam + MultiStepLR (stepped per epoch), bf16 autocast and channels_last on CUDA, early stopping on
`monitor`, one tqdm bar per run, out_dir/log.csv (one row per epoch), atomic checkpoints:
    out_dir/last.pt  everything needed to continue: model, optimizer, scheduler, epoch, batch in epoch,
                     best metric, patience counter, history, RNG states (torch/numpy/python/cuda and
                     the loader's generator) at the start of the epoch and now. Written every epoch,
                     every `save_every_s` seconds and when training stops.
    out_dir/best.pt  model weights of the best epoch (+ config, metrics, `extra`).
`resume=True` continues a killed run exactly: the epoch's batch order is replayed from the saved
epoch-start RNG state, the batches already trained are skipped, then the current RNG state is
restored, so a single-process CPU run ends with bit-identical weights to an uninterrupted one.
Under torch.distributed, the model is wrapped in DistributedDataParallel, the train loader gets a
DistributedSampler (same batch size per rank), training terms are averaged over ranks, every rank
evaluates the whole val_loader (so eval_fn needs no distributed logic) and only rank 0 writes files.
"""
from __future__ import annotations

import argparse
import random
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from .argtypes import positive_int
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, to_dict
from .errors import CSRIPError
from .outputs import check_runs
from .progress import tqdm
from .runtime import pick_device

StepFn = Callable[[torch.nn.Module, Any, torch.device], dict[str, torch.Tensor]]


class OwnStep:
    """A step that owns its optimizers (GANs: one for the generator, one for the discriminator).

    `fit` calls `optimizers(model, cfg)` once, schedules, checkpoints and resumes every optimizer it
    returns, and then calls the step as usual; the step does its own zero_grad/backward/step and returns
    detached terms for the log ("loss" is the one checked for NaN). Subclass and implement both.
    """

    def optimizers(self, model: torch.nn.Module, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def __call__(self, model: torch.nn.Module, batch: Any, device: torch.device) -> dict[str, torch.Tensor]:
        raise NotImplementedError
EvalFn = Callable[[torch.nn.Module, DataLoader, torch.device], dict[str, float]]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def _generator(loader: DataLoader) -> torch.Generator | None:
    return getattr(loader.sampler, "generator", None) or loader.generator


def _rng_state(loader: DataLoader) -> dict[str, Any]:
    """Every RNG state as tensors and plain data, so last.pt loads with weights_only=True."""
    gen = _generator(loader)
    kind, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    return {"torch": torch.get_rng_state(), "python": random.getstate(),
            "numpy": {"kind": kind, "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "loader": gen.get_state() if gen is not None else None}


def _set_rng_state(state: dict[str, Any], loader: DataLoader) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if state["loader"] is not None and _generator(loader) is not None:
        _generator(loader).set_state(state["loader"])


def _sharded(loader: DataLoader, seed: int) -> DataLoader:
    """The same loader with a shuffling DistributedSampler when torch.distributed is initialized."""
    if not dist.is_initialized() or isinstance(loader.sampler, DistributedSampler):
        return loader
    return DataLoader(loader.dataset, batch_size=loader.batch_size, drop_last=loader.drop_last,
                      sampler=DistributedSampler(loader.dataset, shuffle=True, seed=seed),
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory)


def _mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    if not dist.is_initialized() or not values:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(values, (t / dist.get_world_size()).tolist()))


def fit(model: torch.nn.Module, step_fn: StepFn, eval_fn: EvalFn | None, train_loader: DataLoader,
        val_loader: DataLoader | None, cfg: TrainConfig, out_dir: str | Path, *, kind: str,
        config: dict[str, Any], monitor: str, mode: str = "max", resume: bool = False,
        device: str | torch.device | None = None, force: bool = False,
        extra: dict[str, Any] | None = None, save_every_s: float = 600.0) -> pd.DataFrame:
    """Train `model` and return the log (one row per epoch, as in out_dir/log.csv).

    `config` (plain data describing the model/run) and `extra` (e.g. identities) go into every
    checkpoint; a resumed run must have the same `config` and `kind`. `monitor` names a validation
    metric of `eval_fn` or a training term as "train_<term>"; `mode` "max" or "min" says which is better.
    An existing run in `out_dir` is an error unless `resume` (continue) or `force` (start over);
    `resume` of a run that has best.pt or log.csv but no last.pt is an error (it cannot continue
    exactly, and starting over would replace them); `resume` with no run there starts one (announced).
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    out_dir, device, rank = Path(out_dir), pick_device(device), _rank()
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    check_runs([out_dir], resume=resume, force=force, strict_resume=False)
    if force and not (resume and last_path.exists()) and rank == 0:
        for p in (last_path, best_path, out_dir / "log.csv"):
            p.unlink(missing_ok=True)
    train_loader = _sharded(train_loader, seed=cfg.seed)

    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    own = isinstance(step_fn, OwnStep)
    optimizers = step_fn.optimizers(model, cfg) if own else {"model": torch.optim.Adam(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)}
    optimizer = next(iter(optimizers.values()))
    schedulers = {k: torch.optim.lr_scheduler.MultiStepLR(o, list(cfg.lr_milestones), cfg.lr_gamma)
                  for k, o in optimizers.items()}
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    s = {"epoch": 0, "batch": 0, "step": 0, "best": None, "bad_epochs": 0, "history": [],
         "sums": {}, "seconds": 0.0, "finished": None}  # everything that defines "where we are"
    if resume and last_path.exists():
        ckpt = load_checkpoint(last_path, kind=kind)
        if ckpt["config"] != config:
            raise CSRIPError(f"{last_path} was trained with a different configuration; resume it with "
                             "the same preset/options, or use force=True (--force) / another out_dir")
        model.load_state_dict(ckpt["model"])
        for k in optimizers:  # one optimizer is saved flat (the layout of runs before OwnStep)
            optimizers[k].load_state_dict(ckpt["optimizer"][k] if own else ckpt["optimizer"])
            schedulers[k].load_state_dict(ckpt["scheduler"][k] if own else ckpt["scheduler"])
        s = ckpt["state"]
        if rank == 0:
            print(f"resuming {out_dir} at epoch {s['epoch'] + 1}, batch {s['batch']} (step {s['step']})")
    else:
        if resume and rank == 0:
            print(f"{out_dir}: nothing to resume (no last.pt): starting a new run")
        seed_everything(cfg.seed + rank)
        s["epoch_rng"] = s["rng"] = _rng_state(train_loader)
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if dist.is_initialized() else model
    autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def save(path: Path, **more: Any) -> None:
        if rank == 0:
            save_checkpoint({"model": model.state_dict(), "config": config, "train_config": to_dict(cfg),
                             **(extra or {}), **more}, path, kind)

    def save_last() -> None:
        s["rng"] = _rng_state(train_loader)
        opt = {k: o.state_dict() for k, o in optimizers.items()}
        sch = {k: o.state_dict() for k, o in schedulers.items()}
        save(last_path, optimizer=opt if own else opt["model"], scheduler=sch if own else sch["model"], state=s)

    steps_per_epoch = min(len(train_loader), cfg.steps_per_epoch or len(train_loader))
    total = min(cfg.epochs * steps_per_epoch, cfg.max_steps or cfg.epochs * steps_per_epoch)
    # one bar per run; each epoch's results go into its postfix (the full rows are in log.csv)
    bar = tqdm(total=total, initial=s["step"], desc=out_dir.name, unit="step", disable=rank != 0)
    while s["finished"] is None:
        _set_rng_state(s["epoch_rng"], train_loader)  # replays this epoch's batch order exactly
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(s["epoch"])
        batches = iter(train_loader)
        if s["batch"]:  # resumed mid-epoch: skip what was already trained, then continue the RNGs
            for _ in range(s["batch"]):
                next(batches)
            _set_rng_state(s["rng"], train_loader)
        net.train()
        t0, saved_at = time.time(), time.time()
        while s["batch"] < steps_per_epoch and s["step"] != cfg.max_steps:
            with autocast():
                terms = step_fn(net, next(batches), device)
            loss = terms["loss"]
            finite = torch.isfinite(torch.stack([v.detach().float() for v in terms.values()])).all().float()
            if dist.is_initialized():
                dist.all_reduce(finite, op=dist.ReduceOp.MIN)
            if not finite.item():
                raise CSRIPError(f"the training loss became {loss.item()} at step {s['step'] + 1} "
                                 f"({ {k: float(v) for k, v in terms.items()} }); {last_path} keeps the last "
                                 "good state. Lower the learning rate or check the data, then resume or "
                                 "start over with --force")
            if not own:
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
            for k, v in terms.items():
                s["sums"][k] = s["sums"].get(k, 0.0) + float(v.detach())
            s["batch"] += 1
            s["step"] += 1
            bar.update()
            bar.set_postfix_str(f"epoch {s['epoch'] + 1}/{cfg.epochs} loss {loss.item():.4f}", refresh=False)
            if time.time() - saved_at > save_every_s and s["batch"] < steps_per_epoch:
                s["seconds"] += time.time() - t0
                t0 = saved_at = time.time()
                save_last()

        # End of an epoch (or of training, at max_steps): evaluate, log, keep the best, maybe stop.
        n = max(s["batch"], 1)
        row = {"epoch": s["epoch"] + 1, "step": s["step"], "lr": optimizer.param_groups[0]["lr"],
               **_mean_over_ranks({f"train_{k}": v / n for k, v in s["sums"].items()}, device)}
        if eval_fn is not None and val_loader is not None:
            net.eval()
            with torch.no_grad(), autocast():
                row.update(eval_fn(model, val_loader, device))  # every rank sees all of val_loader
        if monitor not in row:
            raise CSRIPError(f"monitor {monitor!r} is not among the logged metrics {sorted(row)}")
        s["seconds"] += time.time() - t0
        row["seconds"] = round(s["seconds"], 2)
        s["history"].append(row)
        if s["best"] is None or better(row[monitor], s["best"]):
            s["best"], s["bad_epochs"] = row[monitor], 0
            save(best_path, metrics=row, epoch=row["epoch"])
        else:
            s["bad_epochs"] += 1
        for sch in schedulers.values():
            sch.step()
        s["epoch"], s["batch"], s["sums"] = s["epoch"] + 1, 0, {}
        if s["step"] == cfg.max_steps:
            s["finished"] = "max_steps"
        elif s["epoch"] >= cfg.epochs:
            s["finished"] = "epochs"
        elif cfg.patience and s["bad_epochs"] >= cfg.patience:
            s["finished"] = f"no {monitor} improvement for {cfg.patience} epochs"
        bar.set_postfix_str(f"epoch {row['epoch']}/{cfg.epochs} {monitor} {row[monitor]:.4g}")
        s["epoch_rng"] = _rng_state(train_loader)
        save_last()
        if rank == 0:
            pd.DataFrame(s["history"]).to_csv(out_dir / "log.csv.tmp", index=False)
            shutil.move(out_dir / "log.csv.tmp", out_dir / "log.csv")
    bar.close()
    if rank == 0:
        print(f"{out_dir}: finished ({s['finished']}); best {monitor} = {s['best']:.4g}")
    return pd.DataFrame(s["history"])


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line overrides of a preset's schedule (`csrip train-sr`, `train-recognizers`, `ablation`)."""
    parser.add_argument("--epochs", type=positive_int, default=None, help="override the preset's epoch budget")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="override the preset's (global) batch size")
    parser.add_argument("--steps-per-epoch", type=positive_int, default=None, help="cap on optimizer steps per epoch")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many optimizer steps")


def schedule_from_args(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """`base` with the schedule flags of `add_schedule_arguments` that were given."""
    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size", "steps_per_epoch", "max_steps")}
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})
