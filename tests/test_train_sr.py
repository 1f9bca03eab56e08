"""`csrip train-sr` / train_sr (paper Sec. 3.3-3.4): logs, checkpoints, exact resume, DDP, bad input."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from csrip_lib.cli import main as cli_main
from csrip_lib.core.checkpoint import load_checkpoint, save_checkpoint
from csrip_lib.core.config import DegradationConfig, LossConfig, RecognizerConfig, TrainConfig, get_preset, to_dict
from csrip_lib.core.console import CSRIPError
from csrip_lib.core.degradation import degrade
from csrip_lib.data.faces import FaceFolder, load_hr
from csrip_lib.evaluation.evaluate import evaluate_models, super_resolve
from csrip_lib.losses import CSRIPLoss
from csrip_lib.models import CascadedSR, SqueezeNetRecognizer
from csrip_lib.models.registry import load_sr
from csrip_lib.training.recognizers import load_identities
from csrip_lib.training.sr import Convergence, GlobalBatchNorm2d, sr_datasets, sr_run, train_sr

SHORT = TrainConfig(epochs=2, batch_size=4, lr=1e-3, steps_per_epoch=2, seed=5)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def faces(synthetic_root) -> Path:
    return synthetic_root  # conftest: synthetic faces, rendered once per session


def write_recognizers(run_dir: Path, identities: list[str], sizes=(48, 96, 192), seed: int = 0) -> Path:
    """Untrained recognizers in the layout of `csrip train-recognizers` (rec48/best.pt, ...)."""
    torch.manual_seed(seed)
    cfg = RecognizerConfig(width=0.25, dropout=0.0)
    for s in sizes:
        m = SqueezeNetRecognizer(len(identities), cfg, image_size=s)
        save_checkpoint({"model": m.state_dict(), "config": {"recognizer": to_dict(cfg)},
                         "identities": identities, "image_size": s}, run_dir / f"rec{s}" / "best.pt", "recognizer")
    return run_dir


@pytest.fixture(scope="module")
def priors(faces, tmp_path_factory) -> Path:
    return write_recognizers(tmp_path_factory.mktemp("rec"), FaceFolder(faces, "train", min_images=2).identities)


def run(faces, out, priors=None, loss=LossConfig(), train=SHORT, arch=None, degradation=None, **kw):
    spec = sr_run(get_preset("tiny"), loss=loss, arch=arch, train=train, degradation=degradation)
    return train_sr(faces, spec, out, recognizers=priors, device="cpu", progress=False, **kw)


def test_log_has_every_term_and_the_checkpoint_loads(faces, priors, tmp_path):
    log = run(faces, tmp_path, priors, loss=LossConfig(alpha=0.01))
    terms = {f"train_{t}{s}" for t in ("ssim", "ce") for s in (48, 96, 192)}
    assert terms | {"val_ssim", "val_mse", "val_psnr", "val_improvements", "lr"} <= set(log.columns)
    assert list(log["step"]) == [2, 4]
    torch.testing.assert_close(torch.tensor(log["train_loss"].values), torch.tensor(
        log[[f"train_ssim{s}" for s in (48, 96, 192)]].sum(axis=1).values
        + 0.01 * log[[f"train_ce{s}" for s in (48, 96, 192)]].sum(axis=1).values), rtol=1e-5, atol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "log.csv"), log, check_dtype=False)
    model = load_sr(tmp_path / "best.pt")
    ckpt = load_checkpoint(tmp_path / "best.pt", kind="sr")
    assert ckpt["config"]["loss"]["alpha"] == 0.01 and ckpt["identities"] == FaceFolder(faces, "train", min_images=2).identities
    assert model(torch.rand(1, 3, 24, 24)).shape == (1, 3, 192, 192)


def test_single_scale_mse_baseline_is_one_code_path(faces, tmp_path):
    log = run(faces, tmp_path, loss=LossConfig("mse", multiscale=False, alpha=0), arch="baseline")
    assert {c for c in log.columns if c.startswith("train_") and c != "train_loss"} == {"train_mse192"}
    assert type(load_sr(tmp_path / "best.pt")).__name__ == "BaselineSR"
    log = run(faces, tmp_path / "c", loss=LossConfig("ssim", multiscale=False, alpha=0))
    assert "train_ssim192" in log and "train_ssim48" not in log
    # the unused 2x/4x branches were not trained (no gradient, frozen at their initial values)
    torch.manual_seed(SHORT.seed)  # train_sr's initial weights
    init, trained = CascadedSR.from_preset("tiny"), load_sr(tmp_path / "c" / "best.pt")
    assert torch.equal(init.heads[0].conv.weight, trained.heads[0].conv.weight)
    assert not torch.equal(init.tail[-1].conv.weight, trained.tail[-1].conv.weight)


def test_convergence_counter_is_the_papers_combined_criterion():
    """Sec. 3.4: stop only when neither SSIM nor MSE improved; the counter grows when either does."""
    c = Convergence()
    seq = [(0.5, 0.10), (0.6, 0.12), (0.55, 0.09), (0.55, 0.09), (0.59, 0.095), (0.61, 0.2)]
    assert [c.update(s, m) for s, m in seq] == [1, 2, 3, 3, 3, 4]
    resumed = Convergence(history=[{"val_ssim": s, "val_mse": m} for s, m in seq[:3]])
    assert [resumed.update(s, m) for s, m in seq[3:]] == [3, 3, 4]


class Killed(Exception):
    pass


def test_killed_and_resumed_run_continues_exactly(faces, priors, tmp_path, monkeypatch):
    loss = LossConfig(alpha=0.01)
    full = run(faces, tmp_path / "full", priors, loss)
    calls = {"n": 0}
    forward = CSRIPLoss.forward

    def dying(self, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 4:  # during the second step of epoch 2
            raise Killed
        return forward(self, *a, **kw)

    monkeypatch.setattr(CSRIPLoss, "forward", dying)
    with pytest.raises(Killed):
        run(faces, tmp_path / "killed", priors, loss)
    monkeypatch.setattr(CSRIPLoss, "forward", forward)
    with pytest.raises(CSRIPError, match="already holds"):
        run(faces, tmp_path / "killed", priors, loss)
    resumed = run(faces, tmp_path / "killed", priors, loss, resume=True)
    pd.testing.assert_frame_equal(full.drop(columns="seconds"), resumed.drop(columns="seconds"))
    a = load_checkpoint(tmp_path / "full" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "killed" / "last.pt")["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(faces, tmp_path, monkeypatch):
    forward, calls = CSRIPLoss.forward, {"n": 0}

    def poisoned(self, *a, **kw):
        total, terms = forward(self, *a, **kw)
        calls["n"] += 1
        return (total * float("nan"), terms) if calls["n"] == 3 else (total, terms)

    monkeypatch.setattr(CSRIPLoss, "forward", poisoned)
    with pytest.raises(CSRIPError, match="nan"):
        run(faces, tmp_path, loss=LossConfig(alpha=0))
    good = load_checkpoint(tmp_path / "last.pt")
    assert good["state"]["step"] == 2 and all(torch.isfinite(v).all() for v in good["model"].values()
                                               if v.is_floating_point())


def test_bad_recognizers_and_options_are_clear_errors(faces, priors, tmp_path):
    with pytest.raises(CSRIPError, match="needs trained recognizers"):
        run(faces, tmp_path / "a", None, LossConfig(alpha=0.01))
    strangers = write_recognizers(tmp_path / "strangers", ["nobody", "we", "know"])
    with pytest.raises(CSRIPError, match="another identity set"):
        run(faces, tmp_path / "b", strangers, LossConfig(alpha=0.01))
    partial = write_recognizers(tmp_path / "partial", FaceFolder(faces, "train", min_images=2).identities, sizes=(192,))
    with pytest.raises(CSRIPError, match="rec48"):
        run(faces, tmp_path / "c", partial, LossConfig(alpha=0.01))
    run(faces, tmp_path / "d", partial, LossConfig(alpha=0.01, multiscale=False), train=replace(SHORT, epochs=1))
    wrong = write_recognizers(tmp_path / "wrong", FaceFolder(faces, "train", min_images=2).identities, sizes=(96, 192))
    (wrong / "rec96").rename(wrong / "rec48")  # a 96 px recognizer where the 48 px one belongs
    write_recognizers(wrong, FaceFolder(faces, "train", min_images=2).identities, sizes=(96,))
    with pytest.raises(CSRIPError, match="expected 48 px"):
        run(faces, tmp_path / "e", wrong, LossConfig(alpha=0.01))
    with pytest.raises(CSRIPError, match="single-scale"):
        run(faces, tmp_path / "f", loss=LossConfig(alpha=0), arch="baseline")
    with pytest.raises(CSRIPError, match="fewer than one batch"):
        run(faces, tmp_path / "g", loss=LossConfig(alpha=0), train=replace(SHORT, batch_size=10 ** 4))


def test_global_batchnorm_outside_a_process_group_is_batchnorm():
    torch.manual_seed(0)
    bn, ref = GlobalBatchNorm2d(4), torch.nn.BatchNorm2d(4)
    x = torch.randn(3, 4, 5, 5)
    torch.testing.assert_close(bn(x), ref(x))
    torch.testing.assert_close(bn.running_var, ref.running_var)


def _cli(faces: Path, out: Path, priors: Path) -> list[str]:
    return ["train-sr", "--data", str(faces), "--preset", "tiny", "--recognizers", str(priors), "--alpha", "0.01",
            "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "4", "--device", "cpu", "--out", str(out)]


@pytest.mark.slow
def test_two_gloo_processes_train_like_one_process_with_the_same_global_batch(faces, priors, tmp_path):
    """torchrun with 2 CPU processes (gloo): the same images per step, BatchNorm over the global batch
    (GlobalBatchNorm2d), gradients averaged by DDP -> the same weights as one process. In float32: under
    bf16 each process rounds its own gradients before the all-reduce, a difference of precision, not of DDP."""
    fp32 = ["--precision", "fp32"]
    assert cli_main([*_cli(faces, tmp_path / "one", priors), *fp32]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "csrip_lib", *_cli(faces, tmp_path / "two", priors), *fp32], check=True, env=env,
                   cwd=ROOT, timeout=600)
    one, two = (load_checkpoint(tmp_path / d / "last.pt")["model"] for d in ("one", "two"))
    torch.manual_seed(SHORT.seed)
    init = CascadedSR.from_preset("tiny").state_dict()
    # Float rounding differs (all-reduce order, E[x^2] - E[x]^2 variance) and Adam's first steps amplify it
    # for the few weights whose gradient is ~0 (update ~ lr * sign(g)); so compare the updates as vectors.
    update = torch.cat([(one[k] - init[k]).flatten() for k in init if "running" not in k and init[k].is_floating_point()])
    apart = torch.cat([(two[k] - one[k]).flatten() for k in init if "running" not in k and init[k].is_floating_point()])
    assert update.norm() > 0 and apart.norm() < 1e-2 * update.norm()
    for k in (k for k in init if "running" in k):  # BatchNorm statistics of the global batch
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-5, msg=k)
    a, b = (pd.read_csv(tmp_path / d / "log.csv") for d in ("one", "two"))
    cols = [c for c in a.columns if c.startswith(("train_", "val_"))]
    pd.testing.assert_frame_equal(a[cols], b[cols], rtol=1e-4)


def test_term_gradients_recombine_to_the_full_gradient_for_any_alpha(faces, priors):
    """What the alpha slider of notebook 05 relies on: grad(L) = sum g_rec + alpha * sum g_ce (Eq. 4)."""
    from csrip_lib.tutorial.figures import fig02_architecture, fig_alpha_balance
    from csrip_lib.models.recognizer import load_recognizers
    from csrip_lib.models.sr import shape_table
    from csrip_lib.training.sr import batch_terms, pyramid, sr_datasets, term_gradients
    from csrip_lib.tutorial.widgets import alpha_explorer

    ds = sr_datasets(faces, get_preset("tiny").selection, progress=False)
    hr, labels = ds.hr, ds.labels
    torch.manual_seed(0)
    model = CascadedSR(replace(CascadedSR.from_preset("tiny").cfg, global_skip=False))
    loss = CSRIPLoss(load_recognizers(priors), alpha=1.0, identities=ds.identities)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    terms = term_gradients(model, loss, hr[:4], labels[:4])
    assert set(terms) == {f"{t}{s}" for t in ("ssim", "ce") for s in (48, 96, 192)}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # caller's model untouched
    alpha = 0.3
    model.train()
    pyr = pyramid(hr[:4], torch.device("cpu"))
    total, _ = CSRIPLoss(load_recognizers(priors), alpha=alpha, identities=ds.identities)(
        model(pyr["lr"], all_scales=True), pyr, labels[:4])
    grads = torch.autograd.grad(total, [q for q in model.parameters() if q.requires_grad])
    full = torch.cat([g.flatten() for g in grads])
    recombined = sum(g for k, (_, g) in terms.items() if k.startswith("ssim")) + \
        alpha * sum(g for k, (_, g) in terms.items() if k.startswith("ce"))
    torch.testing.assert_close(recombined, full, rtol=1e-4, atol=1e-7)
    assert set(batch_terms(model, loss, hr[:4], labels[:4])) == set(terms) and model.training
    import matplotlib.pyplot as plt
    plt.close(fig_alpha_balance(terms, 1e-3))
    plt.close(fig02_architecture(shape_table(model)))
    assert alpha_explorer(terms).children[0].value == pytest.approx(1e-3)
    plt.close("all")


@pytest.mark.slow
def test_quick_run_beats_bicubic_on_faces_of_unseen_people(face_root, tmp_path):
    """200 CPU steps of the quick (tiny) model improve on bicubic for test identities never trained on:
    real LFW faces when $CSRIP_DATA is set (CI), the synthetic faces otherwise. Measured on a shared
    2-core CPU: synthetic 27.71 vs 25.61 dB (SSIM 0.726 vs 0.706); LFW 24.82 vs 22.37 dB."""
    from csrip_lib.core.config import get_preset
    from csrip_lib.evaluation.evaluate import evaluate_models

    quick = get_preset("quick").train_sr
    spec = sr_run(get_preset("quick"), loss=LossConfig("mse", multiscale=True, alpha=0),
                  train=replace(quick, lr=3e-3, epochs=100, max_steps=200))
    train_sr(face_root, spec, tmp_path, device="cpu", progress=False)
    scores = evaluate_models({"sr": load_sr(tmp_path / "best.pt")}, face_root, "test", max_images=64,
                             progress=False).groupby("model")[["psnr", "ssim"]].mean()
    assert scores.loc["sr", "psnr"] > scores.loc["bicubic", "psnr"] + 0.3
    assert scores.loc["sr", "ssim"] > scores.loc["bicubic", "ssim"]


def test_recognizers_of_another_identity_set_are_refused_before_training(faces, tmp_path):
    """Recognizers that know all but one training identity: the saved digests differ, so train-sr
    stops before the first step with both sets' sizes and digests and the command to run."""
    from csrip_lib.data.faces import identities_digest

    ids = FaceFolder(faces, "train", min_images=2).identities
    fewer = write_recognizers(tmp_path / "fewer", ids[:-1])
    with pytest.raises(CSRIPError) as e:
        run(faces, tmp_path / "out", fewer, LossConfig(alpha=0.01))
    msg = str(e.value)
    assert f"({len(ids) - 1} identities, sha256 {identities_digest(ids[:-1])})" in msg
    assert f"({len(ids)} identities, sha256 {identities_digest(ids)}" in msg
    assert "csrip train-recognizers" in msg and "--preset tiny" in msg
    assert not (tmp_path / "out" / "last.pt").exists()  # refused before training


def test_partial_priors_train_with_no_identity_term_for_the_identities_they_do_not_know(faces, tmp_path, capsys):
    """partial_priors (the tour's shipped priors on a superset of their data): the same recognizers that
    are refused above train, the unknown identity's faces get the reconstruction terms only (the
    printed share), and priors that know none of the identities are still refused."""
    ids = FaceFolder(faces, "train", min_images=2).identities
    fewer = write_recognizers(tmp_path / "fewer", ids[:-1])
    # the command line's --partial-priors is the same switch
    assert cli_main(["train-sr", "--data", str(faces), "--preset", "tiny", "--alpha", "0.01", "--recognizers",
                     str(fewer), "--partial-priors", "--out", str(tmp_path / "out"), "--epochs", "1",
                     "--steps-per-epoch", "1", "--batch-size", "4", "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "best.pt").is_file()
    known = re.search(r"the recognizers know (\d+)% of the training images' identities", capsys.readouterr().out)
    assert known and 0 < int(known.group(1)) < 100
    strangers = write_recognizers(tmp_path / "strangers", ["nobody_1", "nobody_2"])
    with pytest.raises(CSRIPError, match="another identity set"):
        run(faces, tmp_path / "out2", strangers, LossConfig(alpha=0.01), partial_priors=True)


def _with_images_per_identity(src: Path, dst: Path, n: int) -> Path:
    """A face folder linking src's images, each identity padded to n files by repeating its images."""
    for ident in sorted(d for d in src.iterdir() if d.is_dir()):
        files = sorted(ident.iterdir())
        (dst / ident.name).mkdir(parents=True)
        for k in range(max(n, len(files))):
            f = files[k % len(files)]
            (dst / ident.name / f"{k:04d}{f.suffix}").symlink_to(f)
    return dst


@pytest.mark.slow
def test_default_commands_train_a_csrip_whose_identity_term_sees_every_image(faces, tmp_path, capsys):
    """`csrip train-recognizers` then `csrip train-sr --recognizers` with default presets and alpha:
    one preset, one identity universe, and every SR training image has a label the priors know."""
    from csrip_lib.cli import build_parser
    from csrip_lib.core.config import DEFAULT_PRESET
    from csrip_lib.losses import CSRIPLoss
    from csrip_lib.models.recognizer import load_recognizers
    from csrip_lib.training.sr import sr_datasets

    defaults = {c: build_parser(c).parse_args([c, "--out", "x"]).preset for c in ("train-recognizers", "train-sr")}
    assert set(defaults.values()) == {DEFAULT_PRESET}
    faces = _with_images_per_identity(faces, tmp_path / "faces", get_preset(DEFAULT_PRESET).selection.min_images)
    short = ["--epochs", "1", "--steps-per-epoch", "1", "--device", "cpu"]  # the schedule, not the data
    rec = tmp_path / "rec"
    assert cli_main(["train-recognizers", "--data", str(faces), "--out", str(rec), *short]) == 0
    assert cli_main(["train-sr", "--data", str(faces), "--recognizers", str(rec), "--out", str(tmp_path / "sr"),
                 "--max-steps", "1", *short]) == 0
    assert "know 100% of the training images' identities" in capsys.readouterr().out
    ds = sr_datasets(faces, get_preset(DEFAULT_PRESET).selection, progress=False)
    loss = CSRIPLoss(load_recognizers(rec), alpha=0.001, identities=ds.identities)
    assert loss.known_fraction(ds.labels) == 1.0
    saved = load_checkpoint(tmp_path / "sr" / "best.pt", kind="sr")["config"]["identities"]
    rec_config = load_checkpoint(rec / "rec192" / "best.pt", kind="recognizer")["config"]
    assert saved == rec_config["data"] and rec_config["degradation"] == to_dict(DegradationConfig())


def test_init_starts_from_a_checkpoint_of_the_same_network(faces, tmp_path):
    first = run(faces, tmp_path / "a", loss=LossConfig(alpha=0), train=replace(SHORT, epochs=1))
    log = run(faces, tmp_path / "b", loss=LossConfig(alpha=0), train=replace(SHORT, epochs=1),
              init=tmp_path / "a" / "last.pt")
    # same seed and batches: only a start other than the seeded one can change the result
    assert log["val_ssim"].iloc[-1] != first["val_ssim"].iloc[-1]
    with pytest.raises(CSRIPError, match="another SR network"):
        run(faces, tmp_path / "d", loss=LossConfig(alpha=0, multiscale=False), arch="baseline",
            init=tmp_path / "a" / "last.pt")


def test_sr_training_never_sees_the_recognizers_validation_images(faces):
    """Sec. 4.1: both stages keep the same 90/10 split per identity; the SR network trains on the 90%."""
    _, images, _, train_idx, val_idx = load_identities(faces, get_preset("tiny").selection, progress=False)
    hr = sr_datasets(faces, get_preset("tiny").selection, progress=False).hr
    key = lambda x: x.numpy().tobytes()
    assert len(hr) == len(train_idx) and len(val_idx) > 0
    assert {key(x) for x in hr} == {key(x) for x in images[train_idx]}
    assert not {key(x) for x in hr} & {key(x) for x in images[val_idx]}


def test_a_model_trained_with_sigma_05_is_evaluated_with_05_unless_overridden(faces, tmp_path, capsys):
    """`csrip train-sr --sigma 0.5` saves DegradationConfig(sigma=0.5); `evaluate_models`, `super_resolve`
    and `csrip evaluate` then degrade with 0.5 by default; `--sigma 1.0` overrides it with a warning."""
    out = tmp_path / "sr"
    assert cli_main(["train-sr", "--data", str(faces), "--preset", "tiny", "--alpha", "0", "--sigma", "0.5",
                     "--lr", "2e-3", "--out", str(out), "--epochs", "1", "--steps-per-epoch", "1",
                     "--batch-size", "4", "--device", "cpu"]) == 0
    config = load_checkpoint(out / "best.pt", kind="sr")["config"]
    assert config["degradation"] == to_dict(DegradationConfig(sigma=0.5)) and config["train"]["lr"] == 2e-3
    model = load_sr(out / "best.pt")
    assert model.degradation == DegradationConfig(sigma=0.5)

    seen = []  # the LR inputs evaluation feeds the model
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    df = evaluate_models({"m": model}, faces, "test", max_images=4, device="cpu", progress=False)
    hr = torch.stack([load_hr(faces / p) for p in df.loc[df.model == "m", "image"]]).float() / 255
    lr = torch.cat(seen)
    torch.testing.assert_close(lr, degrade(hr, 8, DegradationConfig(sigma=0.5)))
    assert (lr - degrade(hr, 8, DegradationConfig(sigma=1.0))).abs().max() > 0.01
    assert df.attrs["degradation"]["sigma"] == 0.5
    cols = super_resolve({"m": model}, hr[:1], device="cpu")
    torch.testing.assert_close(cols["LR input"][..., ::8, ::8], degrade(hr[:1], 8, DegradationConfig(sigma=0.5)))
    with pytest.warns(UserWarning, match=r"m was trained with DegradationConfig\(sigma=0.5"):
        assert evaluate_models({"m": model}, faces, "test", max_images=2, device="cpu", progress=False,
                               degradation=DegradationConfig()).attrs["degradation"]["sigma"] == 1.0
    other = CascadedSR.from_preset("tiny")
    other.degradation = DegradationConfig()
    with pytest.raises(CSRIPError, match="different degradations"):
        evaluate_models({"m": model, "other": other}, faces, "test", max_images=2, device="cpu", progress=False)

    capsys.readouterr()
    args = ["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(faces), "--no-identity",
            "--max-images", "2", "--device", "cpu", "--workers", "0"]
    assert cli_main([*args, "--out", str(tmp_path / "a.csv")]) == 0
    quiet = capsys.readouterr()
    assert "warning" not in quiet.err and "DegradationConfig(sigma=0.5" in quiet.out
    assert cli_main([*args, "--out", str(tmp_path / "b.csv"), "--sigma", "1.0"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1 and "trained with DegradationConfig(sigma=0.5" in warned[0]


def test_a_run_started_before_checkpoints_saved_the_degradation_still_resumes(faces, tmp_path):
    first = run(faces, tmp_path, loss=LossConfig(alpha=0))
    for name in ("last.pt", "best.pt"):  # as written before: a loose "sigma" (None: the default)
        ckpt = load_checkpoint(tmp_path / name, kind="sr")
        ckpt["config"] = {**{k: v for k, v in ckpt["config"].items() if k != "degradation"}, "sigma": None}
        save_checkpoint(ckpt, tmp_path / name, "sr")
    assert load_sr(tmp_path / "best.pt").degradation == DegradationConfig()
    with pytest.raises(CSRIPError, match="different configuration"):  # another degradation: not this run
        run(faces, tmp_path, loss=LossConfig(alpha=0), resume=True, degradation=DegradationConfig(sigma=0.5))
    log = run(faces, tmp_path, loss=LossConfig(alpha=0), resume=True)  # finished: reused as it is
    pd.testing.assert_frame_equal(log, first, check_dtype=False)


def test_a_run_records_its_priors_by_content_and_resumes_from_any_folder_holding_them(faces, priors, tmp_path):
    """The priors are recorded by weight digest, not by path: the same recognizers copied to another folder
    (another clone or worktree) resume the run; other weights under the same identities do not. A run
    written before (paths in its config) resumes while its recorded folder still holds the same weights."""
    import shutil

    loss, out = LossConfig(alpha=0.01), tmp_path / "sr"
    first = run(faces, out, priors, loss)
    config = load_checkpoint(out / "last.pt", kind="sr")["config"]
    assert set(config["recognizers"]) == {"48", "96", "192"} and str(priors) not in repr(config)
    moved = shutil.copytree(priors, tmp_path / "elsewhere")
    pd.testing.assert_frame_equal(run(faces, out, moved, loss, resume=True), first, check_dtype=False)
    ids = FaceFolder(faces, "train", min_images=2).identities
    other = write_recognizers(tmp_path / "other", ids, seed=1)
    with pytest.raises(CSRIPError, match="different configuration"):
        run(faces, out, other, loss, resume=True)

    for name in ("last.pt", "best.pt"):  # the form written before: the folders' paths
        ckpt = load_checkpoint(out / name, kind="sr")
        ckpt["config"] = {**ckpt["config"], "recognizers": str(moved), "data": str(faces)}
        save_checkpoint(ckpt, out / name, "sr")
    pd.testing.assert_frame_equal(run(faces, out, priors, loss, resume=True), first, check_dtype=False)
    shutil.rmtree(moved)
    write_recognizers(moved, ids, seed=1)  # the recorded folder now holds other weights
    with pytest.raises(CSRIPError, match="different configuration"):
        run(faces, out, priors, loss, resume=True)


def test_faces_loaded_for_one_selection_are_refused_by_a_run_of_another(faces, tmp_path):
    """One SRData serves every run of an experiment (loaded once); a run that selects other faces says so."""
    tiny = get_preset("tiny")
    data = sr_datasets(faces, tiny.selection, progress=False)
    other = sr_run(replace(tiny, selection=replace(tiny.selection, max_identities=3)), train=SHORT)
    with pytest.raises(CSRIPError, match="this run trains on FaceSelection"):
        train_sr(data, other, tmp_path, device="cpu", progress=False)


def test_seed_flag_gives_another_start_and_is_saved_with_the_run(faces, tmp_path):
    """`csrip train-sr --seed k`: the seed is the one training-noise knob an interval over seeds needs;
    it is recorded in the checkpoint (so `--resume` under another seed is refused) and changes the weights."""
    short = ["--data", str(faces), "--preset", "tiny", "--alpha", "0", "--max-steps", "1", "--batch-size", "4",
             "--device", "cpu"]
    weights = {}
    for seed in (0, 3):
        out = tmp_path / f"seed{seed}"
        assert cli_main(["train-sr", *short, "--seed", str(seed), "--out", str(out)]) == 0
        ckpt = load_checkpoint(out / "last.pt", kind="sr")
        assert ckpt["config"]["train"]["seed"] == seed
        weights[seed] = next(iter(ckpt["model"].values()))
    assert not torch.equal(weights[0], weights[3])
    with pytest.raises((CSRIPError, SystemExit)):
        cli_main(["train-sr", *short, "--seed", "-1", "--out", str(tmp_path / "bad")])
