"""The shared training harness: exact resume, early stopping, logs, checkpoints, error cases."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from csrip_lib.core.checkpoint import load_checkpoint
from csrip_lib.core.config import SpeedConfig, TrainConfig
from csrip_lib.core.console import CSRIPError
from csrip_lib.core.runtime import pick_device
from csrip_lib.training.harness import OwnStep, fit, seed_everything


class Killed(Exception):
    """Stands in for a process being killed in the middle of training."""


def make_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)  # the caller builds (and seeds) the model, fit trains it
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout(0.3),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 3))


def make_loaders(n: int = 48) -> tuple[DataLoader, DataLoader]:
    g = torch.Generator().manual_seed(1)
    y = torch.arange(n) % 3
    x = torch.randn(n, 1, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()  # learnable
    data = TensorDataset(x, y)
    return (DataLoader(data, batch_size=8, shuffle=True), DataLoader(data, batch_size=16))


def step_fn(model, batch, device, kill_at: list[int] | None = None):
    x, y = (t.to(device) for t in batch)
    x = x + 0.1 * torch.randn_like(x)  # augmentation noise: the RNG state matters for exactness
    loss = F.cross_entropy(model(x), y)
    if kill_at is not None:
        kill_at[0] -= 1
        if kill_at[0] < 0:
            raise Killed
    return {"loss": loss, "ce": loss}


def eval_fn(model, loader, device):
    correct = sum((model(x.to(device)).argmax(1) == y.to(device)).sum().item() for x, y in loader)
    return {"acc": correct / len(loader.dataset)}


CFG = TrainConfig(epochs=4, batch_size=8, lr=1e-2, lr_milestones=(2,), patience=0, seed=3)


def run(out, cfg=CFG, resume=False, kill_at=None, **kw):
    train, val = make_loaders()
    model = make_model()
    step = (lambda m, b, d: step_fn(m, b, d, kill_at)) if kill_at is not None else step_fn
    log = fit(model, step, eval_fn, train, val, cfg, out, kind="toy", config={"arch": "toy"},
              monitor="acc", resume=resume, device="cpu", **kw)
    return model, log


def test_learns_and_writes_log_and_checkpoints(tmp_path):
    model, log = run(tmp_path)
    assert list(log["epoch"]) == [1, 2, 3, 4]
    assert list(log["step"]) == [6, 12, 18, 24]
    assert {"lr", "train_loss", "train_ce", "acc", "seconds"} <= set(log.columns)
    assert log["lr"].iloc[0] == pytest.approx(1e-2) and log["lr"].iloc[-1] == pytest.approx(1e-2 / 3)
    assert log["acc"].max() > 0.6  # chance is 1/3
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "log.csv"), log, check_dtype=False)
    best = load_checkpoint(tmp_path / "best.pt", kind="toy")
    assert best["metrics"]["acc"] == log["acc"].max() and best["config"] == {"arch": "toy"}
    last = load_checkpoint(tmp_path / "last.pt", kind="toy")
    assert {"optimizer", "scheduler", "state", "train_config"} <= last.keys()
    # the state's keys are the format of last.pt: runs written by earlier versions resume with them
    assert set(last["state"]) == {"epoch", "batch", "step", "best", "bad_epochs", "history", "sums", "seconds",
                                  "finished", "epoch_rng", "rng", "sittings"}
    assert torch.equal(last["model"]["0.weight"], model[0].weight.detach())


@pytest.mark.parametrize("mid_epoch", [False, True], ids=["epoch-checkpoint", "mid-epoch-checkpoint"])
def test_killed_and_resumed_run_matches_uninterrupted_run_bit_exactly(tmp_path, mid_epoch):
    full, full_log = run(tmp_path / "full")
    # Killed during step 10 (epoch 2). With save_every_s=0 a checkpoint follows every step, so the
    # resume starts inside epoch 2; otherwise from the end-of-epoch-1 checkpoint.
    with pytest.raises(Killed):
        run(tmp_path / "killed", kill_at=[9], save_every_s=0 if mid_epoch else 600)
    state = load_checkpoint(tmp_path / "killed" / "last.pt")["state"]
    assert (state["epoch"], state["batch"]) == ((1, 3) if mid_epoch else (1, 0))
    resumed, resumed_log = run(tmp_path / "killed", resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    cols = ["epoch", "step", "lr", "train_loss", "acc"]
    pd.testing.assert_frame_equal(full_log[cols], resumed_log[cols])


def test_checkpoints_record_the_training_that_made_them_and_each_resume_adds_a_sitting(tmp_path):
    """Issue 33: a result that scores a run lists which command and code trained it, when, on what, for how long."""
    for folder in ("a", "b"):
        with pytest.raises(Killed):
            run(tmp_path / folder, kill_at=[9])
    run(tmp_path / "a", resume=True)
    best, last = (load_checkpoint(tmp_path / "a" / f)["provenance"] for f in ("best.pt", "last.pt"))
    assert len(last["sittings"]) == 2 and last["steps"] == 24 and 0 < best["wall_s"] <= last["wall_s"]
    for s in last["sittings"]:
        assert s["command"] and s["date"].endswith("UTC") and s["hardware"]["cores"] >= 1 and s["torch"]
        assert s["commit"] is None or len(s["commit"]) == 40 and isinstance(s["dirty"], bool)
    ckpt = torch.load(tmp_path / "b" / "last.pt", weights_only=True)  # as a run begun before sittings were recorded
    del ckpt["state"]["sittings"], ckpt["provenance"]
    torch.save(ckpt, tmp_path / "b" / "last.pt")
    run(tmp_path / "b", resume=True)
    sittings = load_checkpoint(tmp_path / "b" / "last.pt")["provenance"]["sittings"]
    assert sittings[0] == {"commit": None, "note": "earlier sittings not recorded"} and len(sittings) == 2


def test_resuming_a_finished_run_trains_nothing(tmp_path):
    _, log = run(tmp_path)
    model, again = run(tmp_path, resume=True)
    pd.testing.assert_frame_equal(log, again)
    assert torch.equal(model[0].weight, load_checkpoint(tmp_path / "last.pt")["model"]["0.weight"])


def test_early_stopping_and_max_steps(tmp_path):
    constant = lambda m, loader, d: {"acc": 0.5}  # never improves after the first epoch
    train, val = make_loaders()
    log = fit(make_model(), step_fn, constant, train, val, TrainConfig(epochs=50, patience=2, lr=1e-3),
              tmp_path / "es", kind="toy", config={}, monitor="acc", device="cpu")
    assert len(log) == 3
    assert "no acc improvement" in load_checkpoint(tmp_path / "es" / "last.pt")["state"]["finished"]
    log = fit(make_model(), step_fn, eval_fn, train, val, TrainConfig(epochs=50, max_steps=8, steps_per_epoch=5),
              tmp_path / "ms", kind="toy", config={}, monitor="train_loss", mode="min", device="cpu")
    assert list(log["step"]) == [5, 8]


def test_nan_loss_is_an_error_and_keeps_the_last_good_checkpoint(tmp_path):
    calls = [0]

    def exploding(model, batch, device):
        calls[0] += 1
        terms = step_fn(model, batch, device)
        return {"loss": terms["loss"] * (float("nan") if calls[0] > 8 else 1.0)}

    train, val = make_loaders()
    with pytest.raises(CSRIPError, match="loss became nan at step 9"):
        fit(make_model(), exploding, eval_fn, train, val, CFG, tmp_path, kind="toy", config={},
            monitor="acc", device="cpu")
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["state"]["step"] == 6
    assert all(torch.isfinite(v).all() for v in last["model"].values())


def test_existing_run_needs_resume_or_force_and_the_same_config(tmp_path):
    run(tmp_path, cfg=TrainConfig(epochs=1, lr=1e-2))
    with pytest.raises(CSRIPError, match="already holds a training run"):
        run(tmp_path, cfg=TrainConfig(epochs=1, lr=1e-2))
    _, log = run(tmp_path, cfg=TrainConfig(epochs=2, lr=1e-2), force=True)
    assert list(log["epoch"]) == [1, 2]  # started over
    train, val = make_loaders()
    with pytest.raises(CSRIPError, match="different configuration"):
        fit(make_model(), step_fn, eval_fn, train, val, CFG, tmp_path, kind="toy", config={"arch": "other"},
            monitor="acc", resume=True, device="cpu")
    with pytest.raises(CSRIPError, match="holds a 'toy' model"):
        fit(make_model(), step_fn, eval_fn, train, val, CFG, tmp_path, kind="sr", config={"arch": "toy"},
            monitor="acc", resume=True, device="cpu")
    with pytest.raises(CSRIPError, match="monitor 'psnr'"):
        fit(make_model(), step_fn, eval_fn, train, val, CFG, tmp_path / "new", kind="toy", config={},
            monitor="psnr", device="cpu")


def test_pick_device_and_seed_everything():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device().type == pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))


class TwoPartStep(OwnStep):
    """A step owning two optimizers (as a GAN's): part "a" and part "b" of the model, each its own Adam."""

    def __init__(self, kill_at: list[int] | None = None):
        self.kill_at = kill_at

    def optimizers(self, model, cfg):
        self.opt = {"a": torch.optim.Adam(model[0].parameters(), lr=cfg.lr),
                    "b": torch.optim.Adam(model[4].parameters(), lr=cfg.lr / 2)}
        return self.opt

    def __call__(self, model, batch, device):
        terms = step_fn(model, batch, device, self.kill_at)
        for opt in self.opt.values():
            opt.zero_grad()
        terms["loss"].backward()
        for opt in self.opt.values():
            opt.step()
        return {k: v.detach() for k, v in terms.items()}


def test_a_step_owning_two_optimizers_is_scheduled_checkpointed_and_resumed_exactly(tmp_path):
    def own_run(out, resume=False, kill_at=None):
        train, val = make_loaders()
        model = make_model()
        log = fit(model, TwoPartStep(kill_at), eval_fn, train, val, CFG, out, kind="toy", config={"arch": "toy"},
                  monitor="acc", resume=resume, device="cpu", save_every_s=0)
        return model, log

    full, full_log = own_run(tmp_path / "full")
    last = load_checkpoint(tmp_path / "full" / "last.pt")
    assert set(last["optimizer"]) == set(last["scheduler"]) == {"a", "b"}
    assert [g["lr"] for g in last["optimizer"]["b"]["param_groups"]] == [pytest.approx(1e-2 / 2 / 3)]
    with pytest.raises(Killed):
        own_run(tmp_path / "killed", kill_at=[9])
    resumed, resumed_log = own_run(tmp_path / "killed", resume=True)
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    pd.testing.assert_frame_equal(full_log[["step", "train_loss", "acc"]], resumed_log[["step", "train_loss", "acc"]])


# ------------------------------------------------------------------------------ the step's speed
def test_step_speed_is_bf16_exactly_where_the_hardware_has_it(monkeypatch):
    from csrip_lib.core import runtime
    cpu = torch.device("cpu")
    for flags, native in ((frozenset({"avx2", "avx512f"}), False), (frozenset({"avx512_bf16"}), True),
                          (frozenset({"amx_bf16"}), True)):
        monkeypatch.setattr(runtime, "cpu_flags", lambda flags=flags: flags)
        assert runtime.step_speed(cpu) == SpeedConfig(bf16=native, channels_last=True)
        assert runtime.step_speed(cpu, "fp32", channels_last=False) == SpeedConfig(False, False)
        assert runtime.step_speed(cpu, "bf16").bf16
    with pytest.raises(CSRIPError, match="precision must be one of auto, bf16, fp32"):
        runtime.step_speed(cpu, "fp16")


def test_the_step_runs_at_the_speed_it_is_given_and_checkpoints_record_it(tmp_path, capsys):
    seen, kill_at = [], [8]  # killed in epoch 2: last.pt holds epoch 1

    def probe(model, batch, device):  # the second conv has 4 input channels, so its layout is visible
        seen.append((model(batch[0]).dtype, model[2].weight.is_contiguous(memory_format=torch.channels_last)))
        return step_fn(model, batch, device, kill_at)

    def make_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1),
                             nn.Flatten(), nn.Linear(4 * 8 * 8, 3))

    train, val = make_loaders()
    fast, plain = SpeedConfig(bf16=True, channels_last=True), SpeedConfig()
    cfg = TrainConfig(epochs=3, batch_size=8, lr=1e-2, seed=3)
    with pytest.raises(Killed):
        fit(make_model(), probe, eval_fn, train, val, cfg, tmp_path, kind="toy", config={"arch": "toy"},
            monitor="acc", device="cpu", speed=fast)
    assert set(seen) == {(torch.bfloat16, True)}  # autocast on, NHWC weights: what the speed says
    def speeds(name):
        return [s["speed"] for s in load_checkpoint(tmp_path / name, kind="toy")["provenance"]["sittings"]]
    assert speeds("last.pt") == speeds("best.pt") == [{"bf16": True, "channels_last": True}]
    # the speed is not the run's configuration: a run resumes under another one, and says so
    seen.clear()
    kill_at[0] = 10**6
    log = fit(make_model(), probe, eval_fn, train, val, cfg, tmp_path, kind="toy", config={"arch": "toy"},
              monitor="acc", device="cpu", resume=True, speed=plain)
    assert list(log["epoch"]) == [1, 2, 3] and set(seen) == {(torch.float32, False)}
    assert "continues with {'bf16': False, 'channels_last': False}" in capsys.readouterr().out
    assert speeds("last.pt") == [{"bf16": True, "channels_last": True}, {"bf16": False, "channels_last": False}]
