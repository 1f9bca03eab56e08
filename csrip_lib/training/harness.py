"""The shared training harness: one `fit` for the recognizers (paper Sec. 3.3/3.4) and the SR network.

The caller says *what* one step and one evaluation are; `fit` does the rest:
    step_fn(model, batch, device) -> {"loss": Tensor, <other terms>: Tensor}   (terms are logged)
    eval_fn(model, loader, device) -> {<metric>: float}                         (`monitor` picks one)
Adam + MultiStepLR (stepped per epoch), the step's `SpeedConfig` (bf16 autocast and channels_last where the
hardware has them: `core.runtime.step_speed`; recorded in each sitting of the provenance), early stopping on
`monitor`, one tqdm bar per run, out_dir/log.csv (one row per epoch), atomic checkpoints:
    out_dir/last.pt  everything needed to continue: model, optimizer, scheduler and the `FitState`
                     (epoch, batch in epoch, best metric, patience counter, history, RNG states of
                     torch/numpy/python/cuda and the loader's generator at the start of the epoch and
                     now). Written every epoch, every `save_every_s` seconds and when training stops.
    out_dir/best.pt  model weights of the best epoch (+ config, metrics, `extra`).
Both carry the run's "provenance" (`provenance`): one `sitting` per start or resume (command line, git
commit and dirty flag of the code, UTC date, hardware, torch, the step's speed) and the logged wall time and steps so far, so
a result that scores the run can say which code trained it, and when (core.results lists it).
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
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from ..core.checkpoint import TRAINING_STATE, atomic_write, load_checkpoint, save_checkpoint
from ..core.config import SpeedConfig, TrainConfig, to_dict, with_legacy_degradation
from ..core.console import CSRIPError, command_line, nonnegative_int, positive_float, positive_int, tqdm
from ..core.outputs import check_runs, lock_runs
from ..core.results import code_state, hardware
from ..core.runtime import PRECISIONS, pick_device, step_speed

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


def sitting(speed: SpeedConfig) -> dict[str, Any]:
    """Who trains now, and how: the command line, the code's git commit and dirty flag (as this process
    first read them, `results.code_state`), the date (UTC), hardware, torch version and the step's `speed`.
    A run records one per start or resume (`FitState.sittings`), so a resume under another speed shows."""
    return {"command": command_line(), **code_state(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "hardware": hardware(), "torch": str(torch.__version__), "speed": to_dict(speed)}


def provenance(state: FitState) -> dict[str, Any]:
    """What a checkpoint records of the training that made it: every sitting, the logged wall time and steps."""
    return {"sittings": state.sittings, "wall_s": round(state.seconds, 3), "steps": state.step}


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


@dataclass
class FitState:
    """Where a run is. last.pt stores it as the plain dict `to_dict` gives (keys as named here), so it
    loads with weights_only=True and runs written before this class existed resume."""
    epoch: int = 0                       # epochs finished
    batch: int = 0                       # batches trained in the current epoch
    step: int = 0                        # optimizer steps in all
    best: float | None = None            # best value of `monitor` so far
    bad_epochs: int = 0                  # epochs since it last improved (early stopping)
    history: list[dict[str, Any]] = field(default_factory=list)  # one log row per epoch
    sums: dict[str, float] = field(default_factory=dict)         # this epoch's summed training terms
    seconds: float = 0.0                 # time spent training and evaluating
    finished: str | None = None          # why training stopped; None while it runs
    epoch_rng: dict[str, Any] | None = None  # RNG states at the start of this epoch (replays its batches)
    rng: dict[str, Any] | None = None        # RNG states when last.pt was written
    sittings: list[dict[str, Any]] = field(default_factory=list)  # `sitting()` of each start and resume

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitState:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class _Run:
    """What stays fixed while `fit` runs: model, optimizers, loaders, device and where files go."""

    def __init__(self, model: torch.nn.Module, step_fn: StepFn, train_loader: DataLoader, cfg: TrainConfig,
                 out_dir: Path, kind: str, config: dict[str, Any], extra: dict[str, Any] | None,
                 device: torch.device, save_every_s: float, speed: SpeedConfig):
        self.model, self.step_fn, self.train_loader, self.cfg = model, step_fn, train_loader, cfg
        self.out_dir, self.kind, self.config = out_dir, kind, config
        self.extra = extra or {}
        self.device, self.rank, self.save_every_s, self.speed = device, _rank(), save_every_s, speed
        self.last_path, self.best_path = out_dir / "last.pt", out_dir / "best.pt"
        model.to(device)
        if speed.channels_last:
            model.to(memory_format=torch.channels_last)
        self.own = isinstance(step_fn, OwnStep)
        self.optimizers = step_fn.optimizers(model, cfg) if self.own else {"model": torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)}
        self.optimizer = next(iter(self.optimizers.values()))  # its lr is logged
        self.schedulers = {k: torch.optim.lr_scheduler.MultiStepLR(o, list(cfg.lr_milestones), cfg.lr_gamma)
                           for k, o in self.optimizers.items()}
        self.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
            if dist.is_initialized() else model

    @property
    def steps_per_epoch(self) -> int:
        return min(len(self.train_loader), self.cfg.steps_per_epoch or len(self.train_loader))

    @property
    def total_steps(self) -> int:
        every_epoch = self.cfg.epochs * self.steps_per_epoch
        return min(every_epoch, self.cfg.max_steps or every_epoch)

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.speed.bf16)

    def start(self) -> FitState:
        """A new run: seeded, with this epoch's RNG state recorded."""
        seed_everything(self.cfg.seed + self.rank)
        state = FitState(sittings=[sitting(self.speed)])
        state.epoch_rng = state.rng = _rng_state(self.train_loader)
        return state

    def resume(self) -> FitState:
        """Model, optimizers, schedulers and state from last.pt (same `config` and `kind` required)."""
        ckpt = load_checkpoint(self.last_path, kind=self.kind)
        missing = [k for k in TRAINING_STATE if not isinstance(ckpt.get(k), dict)]
        if missing:
            raise CSRIPError(f"cannot resume from {self.last_path}: it has no {', '.join(missing)} (a csrip "
                             "last.pt has the model, optimizer, scheduler and training state); start over "
                             "with --force, or choose another folder")
        # a run started before checkpoints saved "degradation" keeps its own form of the same config
        self.config = with_legacy_degradation(self.config, ckpt["config"])
        if ckpt["config"] != self.config:
            raise CSRIPError(f"{self.last_path} was trained with a different configuration; resume it with "
                             "the same preset/options, or use force=True (--force) / another out_dir")
        self.model.load_state_dict(ckpt["model"])
        before = (ckpt["state"].get("sittings") or [{}])[-1].get("speed")  # not compared: `SpeedConfig`
        if before is not None and before != to_dict(self.speed) and self.rank == 0:
            print(f"note: {self.last_path} was trained with {before}, it continues with {to_dict(self.speed)} "
                  "(the same arithmetic, other rounding: not bit-identical to an uninterrupted run)")
        for k in self.optimizers:  # one optimizer is saved flat (the layout of runs before OwnStep)
            self.optimizers[k].load_state_dict(ckpt["optimizer"][k] if self.own else ckpt["optimizer"])
            self.schedulers[k].load_state_dict(ckpt["scheduler"][k] if self.own else ckpt["scheduler"])
        state = FitState.from_dict(ckpt["state"])
        if "sittings" not in ckpt["state"]:  # a run begun before checkpoints recorded their sittings
            state.sittings = [{"commit": None, "note": "earlier sittings not recorded"}]
        state.sittings.append(sitting(self.speed))
        return state

    def save(self, path: Path, **more: Any) -> None:
        if self.rank == 0:
            save_checkpoint({"model": self.model.state_dict(), "config": self.config,
                             "train_config": to_dict(self.cfg), **self.extra, **more}, path, self.kind)

    def save_last(self, state: FitState) -> None:
        state.rng = _rng_state(self.train_loader)
        opt = {k: o.state_dict() for k, o in self.optimizers.items()}
        sch = {k: o.state_dict() for k, o in self.schedulers.items()}
        self.save(self.last_path, optimizer=opt if self.own else opt["model"],
                  scheduler=sch if self.own else sch["model"], state=state.to_dict(), provenance=provenance(state))

    def batches(self, state: FitState) -> Iterator[Any]:
        """This epoch's batches, in the order an uninterrupted run sees them, from `state.batch` on."""
        _set_rng_state(state.epoch_rng, self.train_loader)  # replays this epoch's batch order exactly
        if isinstance(self.train_loader.sampler, DistributedSampler):
            self.train_loader.sampler.set_epoch(state.epoch)
        batches = iter(self.train_loader)
        if state.batch:  # resumed mid-epoch: skip what was already trained, then continue the RNGs
            for _ in range(state.batch):
                next(batches)
            _set_rng_state(state.rng, self.train_loader)
        return batches

    def step(self, batch: Any, state: FitState) -> float:
        """One optimizer step (the step's own, for an OwnStep); returns the loss."""
        with self.autocast():
            terms = self.step_fn(self.net, batch, self.device)
        loss = terms["loss"]
        finite = torch.isfinite(torch.stack([v.detach().float() for v in terms.values()])).all().float()
        if dist.is_initialized():
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        if not finite.item():
            raise CSRIPError(f"the training loss became {loss.item()} at step {state.step + 1} "
                             f"({ {k: float(v) for k, v in terms.items()} }); {self.last_path} keeps the last "
                             "good state. Lower the learning rate or check the data, then resume or "
                             "start over with --force")
        if not self.own:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            self.optimizer.step()
        for k, v in terms.items():
            state.sums[k] = state.sums.get(k, 0.0) + float(v.detach())
        state.batch += 1
        state.step += 1
        return loss.item()

    def train_epoch(self, state: FitState, bar: Any) -> float:
        """Train the rest of this epoch (until max_steps at most), writing last.pt every
        `save_every_s` seconds; returns when the time not yet in `state.seconds` began."""
        self.net.train()
        batches = self.batches(state)
        t0 = saved_at = time.time()
        while state.batch < self.steps_per_epoch and state.step != self.cfg.max_steps:
            loss = self.step(next(batches), state)
            bar.update()
            bar.set_postfix_str(f"epoch {state.epoch + 1}/{self.cfg.epochs} loss {loss:.4f}", refresh=False)
            if time.time() - saved_at > self.save_every_s and state.batch < self.steps_per_epoch:
                state.seconds += time.time() - t0
                t0 = saved_at = time.time()
                self.save_last(state)
        return t0

    def log_row(self, state: FitState, eval_fn: EvalFn | None, val_loader: DataLoader | None) -> dict[str, Any]:
        """The epoch's log row: mean training terms (over ranks) and the validation metrics."""
        n = max(state.batch, 1)
        means = _mean_over_ranks({f"train_{k}": v / n for k, v in state.sums.items()}, self.device)
        row = {"epoch": state.epoch + 1, "step": state.step, "lr": self.optimizer.param_groups[0]["lr"], **means}
        if eval_fn is not None and val_loader is not None:
            self.net.eval()
            with torch.no_grad(), self.autocast():
                row.update(eval_fn(self.model, val_loader, self.device))  # every rank sees all of val_loader
        return row

    def write_log(self, state: FitState) -> None:
        if self.rank == 0:
            csv = pd.DataFrame(state.history).to_csv(index=False).encode()
            atomic_write(self.out_dir / "log.csv", lambda f: f.write(csv))


def _stop_reason(state: FitState, cfg: TrainConfig, monitor: str) -> str | None:
    if state.step == cfg.max_steps:
        return "max_steps"
    if state.epoch >= cfg.epochs:
        return "epochs"
    if cfg.patience and state.bad_epochs >= cfg.patience:
        return f"no {monitor} improvement for {cfg.patience} epochs"
    return None


def _prepare_out_dir(out_dir: Path, resume: bool, force: bool) -> None:
    """Refuse to overwrite a run unless `resume` or `force`; `force` without a resumable run deletes it."""
    check_runs([out_dir], resume=resume, force=force, strict_resume=False)
    if force and not (resume and (out_dir / "last.pt").exists()) and _rank() == 0:
        for p in (out_dir / "last.pt", out_dir / "best.pt", out_dir / "log.csv"):
            p.unlink(missing_ok=True)


def fit(model: torch.nn.Module, step_fn: StepFn, eval_fn: EvalFn | None, train_loader: DataLoader,
        val_loader: DataLoader | None, cfg: TrainConfig, out_dir: str | Path, *, kind: str,
        config: dict[str, Any], monitor: str, mode: str = "max", resume: bool = False,
        device: str | torch.device | None = None, force: bool = False,
        extra: dict[str, Any] | None = None, save_every_s: float = 600.0,
        speed: SpeedConfig | None = None) -> pd.DataFrame:
    """Train `model` and return the log (one row per epoch, as in out_dir/log.csv).

    `config` (plain data describing the model/run) and `extra` (e.g. identities) go into every
    checkpoint; a resumed run must have the same `config` and `kind`. `monitor` names a validation
    metric of `eval_fn` or a training term as "train_<term>"; `mode` "max" or "min" says which is better.
    An existing run in `out_dir` is an error unless `resume` (continue) or `force` (start over);
    `resume` of a run that has best.pt or log.csv but no last.pt is an error (it cannot continue
    exactly, and starting over would replace them); `resume` with no run there starts one (announced).
    `out_dir` is locked for the whole run (`outputs.lock_runs`): another process training there is an error.
    `speed`: how the step runs (default `step_speed(device)`); the step function prepares its inputs
    in the same memory format (e.g. `sr.pyramid(..., channels_last=speed.channels_last)`).
    """
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    out_dir, device = Path(out_dir), pick_device(device)
    speed = speed or step_speed(device)
    with lock_runs([out_dir]):  # no other process trains in out_dir while this one does
        _prepare_out_dir(out_dir, resume, force)
        run = _Run(model, step_fn, _sharded(train_loader, seed=cfg.seed), cfg, out_dir, kind, config, extra,
                   device, save_every_s, speed)
        if resume and run.last_path.exists():
            state = run.resume()
            if run.rank == 0:
                print(f"resuming {out_dir} at epoch {state.epoch + 1}, batch {state.batch} (step {state.step})")
        else:
            if resume and run.rank == 0:
                print(f"{out_dir}: nothing to resume (no last.pt): starting a new run")
            state = run.start()
        _train(run, state, eval_fn, val_loader, monitor, mode)
    return pd.DataFrame(state.history)


def _train(run: _Run, state: FitState, eval_fn: EvalFn | None, val_loader: DataLoader | None, monitor: str,
           mode: str) -> None:
    """`fit`'s loop: epochs until a stop reason, each evaluated, logged and checkpointed."""
    cfg, out_dir = run.cfg, run.out_dir
    better = (lambda a, b: a > b) if mode == "max" else (lambda a, b: a < b)
    # one bar per run, closed also on an error (whose message then starts on a line of its own); each
    # epoch's results go into its postfix (the full rows are in log.csv)
    with tqdm(total=run.total_steps, initial=state.step, desc=out_dir.name, unit="step",
              disable=run.rank != 0) as bar:
        while state.finished is None:
            t0 = run.train_epoch(state, bar)
            # End of an epoch (or of training, at max_steps): evaluate, log, keep the best, maybe stop.
            row = run.log_row(state, eval_fn, val_loader)
            if monitor not in row:
                raise CSRIPError(f"monitor {monitor!r} is not among the logged metrics {sorted(row)}")
            state.seconds += time.time() - t0
            row["seconds"] = round(state.seconds, 2)
            state.history.append(row)
            if state.best is None or better(row[monitor], state.best):
                state.best, state.bad_epochs = row[monitor], 0
                run.save(run.best_path, metrics=row, epoch=row["epoch"], provenance=provenance(state))
            else:
                state.bad_epochs += 1
            for sch in run.schedulers.values():
                sch.step()
            state.epoch, state.batch, state.sums = state.epoch + 1, 0, {}
            state.finished = _stop_reason(state, cfg, monitor)
            bar.set_postfix_str(f"epoch {row['epoch']}/{cfg.epochs} {monitor} {row[monitor]:.4g}")
            state.epoch_rng = _rng_state(run.train_loader)
            run.save_last(state)
            run.write_log(state)
    if run.rank == 0:
        print(f"{out_dir}: finished ({state.finished}); best {monitor} = {state.best:.4g}")


def add_schedule_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line overrides of a preset's schedule (`csrip train-sr`, `train-recognizers`, `ablation`)."""
    parser.add_argument("--epochs", type=positive_int, default=None, help="override the preset's epoch budget")
    parser.add_argument("--batch-size", type=positive_int, default=None,
                        help="override the preset's (global) batch size")
    parser.add_argument("--steps-per-epoch", type=positive_int, default=None, help="cap on optimizer steps per epoch")
    parser.add_argument("--max-steps", type=positive_int, default=None, help="stop after this many optimizer steps")
    parser.add_argument("--lr", type=positive_float, default=None, help="override the preset's initial learning "
                        "rate (the paper's stage-2 value is ambiguous; see config._paper)")
    parser.add_argument("--seed", type=nonnegative_int, default=None,
                        help="override the preset's seed (weights, batch order, degradation noise); one run per seed "
                        "gives an interval over training noise")


def schedule_from_args(args: argparse.Namespace, base: TrainConfig) -> TrainConfig:
    """`base` with the schedule flags of `add_schedule_arguments` that were given."""
    overrides = {k: getattr(args, k) for k in ("epochs", "batch_size", "steps_per_epoch", "max_steps", "lr", "seed")}
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def add_speed_arguments(parser: argparse.ArgumentParser) -> None:
    """How the training step runs (`core.runtime.step_speed`; `csrip train-sr`, `train-recognizers`,
    `train-competitor`, `ablation`); the default is the fastest step the hardware has."""
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="bf16 autocast of the networks (losses stay float32) or plain fp32 (default: auto, "
                        "bf16 where the GPU or CPU computes it natively: AVX-512 BF16 or AMX)")
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false",
                        help="keep NCHW tensors (default: channels_last, oneDNN's and tensor cores' fast layout)")


def speed_from_args(args: argparse.Namespace, device: str | torch.device | None) -> SpeedConfig:
    """The `SpeedConfig` of the flags of `add_speed_arguments` on `device`."""
    return step_speed(pick_device(device), args.precision, args.channels_last)
