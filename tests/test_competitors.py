"""Table 1 competitors (paper Sec. 4.2): each trains through the shared harness, round-trips its
checkpoint through `csrip evaluate`, and fails clearly on bad input; each is built at the cascade's size;
lp's terms are balanced; SRGAN trains in Ledig et al.'s two stages; none collapses from its bicubic start."""
from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
import torch

from csrip_lib.cli import main as cli_main
from csrip_lib.core.checkpoint import load_checkpoint
from csrip_lib.core.config import TrainConfig, get_preset
from csrip_lib.core.console import CSRIPError
from csrip_lib.data.faces import FaceFolder
from csrip_lib.models import CascadedSR
from csrip_lib.models.registry import COMPETITORS, build_sr, load_sr, model_config, size_and_flops
from csrip_lib.training.competitors import PRETRAIN, competitor_run, train_competitor, training_cost
from csrip_lib.training.sr import sr_datasets

from test_train_sr import write_recognizers
from test_zoo import shortfalls

TINY = get_preset("tiny")
FEW = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=4, lr=1e-3)
GAN_STEPS = TrainConfig(epochs=4, steps_per_epoch=3, batch_size=4, lr=1e-3)  # SRGAN: 6 steps per stage
NBSRF_SMALL = {"trees": 2, "max_depth": 4, "patches": 2000}
FEW_STEP_FAILURES = {  # competitors expected to leave bicubic's neighbourhood in the runs below, and why
    "lp": "its whole gradient beside the pixel term comes from the features of untrained priors "
          "(write_recognizers): two Adam steps took it 0.045 SSIM below bicubic (measured); with the trained "
          "recognizers-quick it also falls below bicubic in SSIM (issue 32's validation run)",
}


@pytest.fixture(scope="module")
def priors(synthetic_root, tmp_path_factory):
    ids = FaceFolder(synthetic_root, "train", min_images=2).identities
    return write_recognizers(tmp_path_factory.mktemp("rec"), ids, sizes=(192,))


@pytest.fixture(scope="module")
def small(synthetic_root):
    """Faster runs for the tests: NBSRF's quick size made smaller still and 32 training / 8 validation
    faces (what the harness does per step and per epoch does not depend on how many there are)."""
    from csrip_lib.models.nbsrf import NBSRFConfig

    mp = pytest.MonkeyPatch()
    mp.setattr(NBSRFConfig, "preset", classmethod(lambda cls, name: cls(**NBSRF_SMALL)))
    full = sr_datasets(synthetic_root, TINY.selection, progress=False)  # loaded once, for every competitor
    yield replace(full, hr=full.hr[:32], labels=full.labels[:32], val_hr=full.val_hr[:8], val_labels=full.val_labels[:8])
    mp.undo()


@pytest.fixture(scope="module")
def runs(synthetic_root, priors, small, tmp_path_factory):
    """Every competitor trained for a few steps (NBSRF: a two-tree forest) on synthetic faces; the GANs
    for four epochs of three steps at their quick size (SRGAN: two in each stage)."""
    out = tmp_path_factory.mktemp("runs")
    logs = {name: train_competitor(small, competitor_run(name, TINY, GAN_STEPS if name in ("srgan", "urdgn") else FEW),
                                   out / name, recognizers=priors, device="cpu", progress=False)
            for name in COMPETITORS}
    return out, logs


def test_every_competitor_trains_and_round_trips_through_csrip_evaluate(synthetic_root, runs, tmp_path):
    out, logs = runs
    for name, log in logs.items():
        assert (out / name / "log.csv").is_file() and log["val_psnr"].notna().all(), name
        ckpt = torch.load(out / name / "best.pt", weights_only=True)  # no pickled sklearn or config objects
        assert ckpt["kind"] == "sr" and ckpt["config"]["model"] == name
    ckpts = [str(out / name / "best.pt") for name in COMPETITORS]
    assert cli_main(["evaluate", "--checkpoint", *ckpts, "--data", str(synthetic_root), "--out",
                     str(tmp_path / "r.csv"), "--device", "cpu", "--max-images", "6", "--workers", "0", "--no-identity"]) == 0
    df = pd.read_csv(tmp_path / "r.csv")
    assert set(df["model"]) == {"bicubic", *COMPETITORS}
    # every model starts at bicubic (global skip) and a few steps move it little: a collapse (a constant
    # image, half the resolution: test_the_near_bicubic_check_fails_a_collapsed_model) is outside these bounds
    for name in COMPETITORS:
        if name in FEW_STEP_FAILURES:
            assert not near_bicubic(df, name), f"{name} now stays near bicubic: drop it from FEW_STEP_FAILURES"
        else:
            assert near_bicubic(df, name), (name, df.groupby("model")[["psnr", "ssim"]].mean())


def test_loaded_model_matches_the_trained_weights(runs):
    out, _ = runs
    for name in COMPETITORS:
        model = load_sr(out / name / "best.pt", model=name)
        state = load_checkpoint(out / name / "best.pt")["model"]
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()), name
        with torch.no_grad():
            y = model(torch.rand(2, 3, 24, 24))
        assert y.shape == (2, 3, 192, 192) and 0 <= y.min() and y.max() <= 1


def near_bicubic(df: pd.DataFrame, name: str, psnr_db: float = 1.0, ssim: float = 0.03) -> bool:
    """Model `name` of `evaluate_models` scores `df` within `psnr_db` / `ssim` below bicubic on average:
    where a few steps leave a model that starts at bicubic, and where no collapsed model is."""
    s = df.groupby("model")[["psnr", "ssim"]].mean()
    return bool(s.loc[name, "psnr"] > s.loc["bicubic", "psnr"] - psnr_db and s.loc[name, "ssim"] > s.loc["bicubic", "ssim"] - ssim)


def test_gans_stay_finite_and_near_bicubic(synthetic_root, runs):
    """Both losses finite in every epoch, two optimizers checkpointed, and the generator still near the
    bicubic it starts from on held-out faces (a collapsed generator is not: the test below feeds one)."""
    from csrip_lib.evaluation.evaluate import evaluate_models

    out, logs = runs
    for name in ("srgan", "urdgn"):
        log = logs[name]
        assert len(log) == 2 if name == "srgan" else len(log) == 4  # SRGAN's log is its adversarial stage
        for col in ("train_loss", "train_d_loss", "train_adversarial", "val_psnr"):
            assert log[col].map(math.isfinite).all(), (name, col)
        assert set(load_checkpoint(out / name / "last.pt")["optimizer"]) == {"generator", "discriminator"}
        df = evaluate_models({name: load_sr(out / name / "best.pt")}, synthetic_root, "test", max_images=6,
                             progress=False)
        assert near_bicubic(df, name), df.groupby("model")[["psnr", "ssim"]].mean()


def test_the_near_bicubic_check_fails_a_collapsed_model(synthetic_root):
    """The checks above, fed collapsed outputs: each face's mean colour, a black image and a model that lost
    half the resolution (bicubic from 12 px) fail `near_bicubic`; they and a mildly blurred bicubic (7 px
    box), which the few-steps tolerance of `near_bicubic` lets through, fail `test_zoo.shortfalls`, the
    check of the shipped models; bicubic itself passes `near_bicubic`."""
    from torch.nn import functional as F

    from csrip_lib.evaluation.evaluate import bicubic, evaluate_models

    collapsed = {"constant": lambda lr: lr.mean((2, 3), keepdim=True).expand(-1, -1, 192, 192),
                 "black": lambda lr: torch.zeros(len(lr), 3, 192, 192),
                 "half": lambda lr: F.interpolate(F.avg_pool2d(lr, 2), size=(192, 192), mode="bicubic").clamp(0, 1)}
    blurred = {"blurred": lambda lr: F.avg_pool2d(F.pad(bicubic(lr), (3, 3, 3, 3), mode="replicate"), 7, stride=1)}
    df = evaluate_models({**collapsed, **blurred, "same": bicubic}, synthetic_root, "test", max_images=6, progress=False)
    for name in collapsed:
        assert not near_bicubic(df, name), name
    for name in [*collapsed, *blurred]:
        assert shortfalls(df, name, ("ssim",)), name
    assert near_bicubic(df, "same")


def test_srgan_trains_in_two_stages_within_its_budget(runs):
    """Stage 1 (SRResNet, pixel MSE) in <run>/pretrain, stage 2 (adversarial) from its kept generator; the
    two stages' steps add up to the budget, and the kept model is stage 2's."""
    out, logs = runs
    pre = load_checkpoint(out / "srgan" / PRETRAIN / "best.pt")
    best = load_checkpoint(out / "srgan" / "best.pt")
    assert pre["config"]["stage"] == "srresnet-mse" and "stage" not in best["config"]
    assert pd.read_csv(out / "srgan" / PRETRAIN / "log.csv")["step"].iloc[-1] == 6
    assert logs["srgan"]["step"].iloc[-1] == 6 and "train_adversarial" in logs["srgan"]
    assert training_cost(out / "srgan")[1] == 12 == GAN_STEPS.epochs * GAN_STEPS.steps_per_epoch
    from csrip_lib.core.checkpoint import state_digest
    assert best["config"]["init"] == state_digest(pre["model"])  # stage 2 started from stage 1's kept model
    assert not all(torch.equal(v, pre["model"][k]) for k, v in best["model"].items())


@pytest.mark.parametrize("preset", ["tiny", "quick"])
def test_every_competitor_is_within_25_percent_of_the_cascade(preset):
    """Table 1 compares methods at one size: each network (a GAN's generator) has the preset's cascade's
    parameter count +-25%; the NBSRF-like forest has no parameters (nothing to match)."""
    target = CascadedSR.from_preset(preset).num_parameters()
    for name in COMPETITORS:
        params, gflop = size_and_flops(build_sr(name, model_config(name, get_preset(preset))))
        if name == "nbsrf":
            assert params is None and gflop is None
            continue
        assert 0.75 * target <= params <= 1.25 * target, (name, params, target)
        assert gflop > 0


def test_old_checkpoint_configs_still_build_their_networks():
    """Configs saved before issue 32 (srcnn-quick: 16/8 channels, a 1x1 mapping; lp without "balance")
    rebuild the networks they describe, so the shipped files load until they are retrained."""
    srcnn = build_sr("srcnn", {"n1": 16, "n2": 8, "global_skip": True})
    assert srcnn.body[2].kernel_size == (1, 1) and sum(p.numel() for p in srcnn.parameters()) == 4643
    assert build_sr("lp", {"channels": 16, "blocks": 4, "global_skip": True, "pixel_weight": 1.0}).cfg.balance == "none"
    assert build_sr("srgan", {"channels": 16, "blocks": 4}).cfg.pretrain_fraction == 0


def test_lp_terms_are_balanced_against_bicubic(priors):
    """Each term of lp's loss is measured against the bicubic upscale: both are 1 for bicubic itself,
    below 1 only for an image closer to HR than bicubic, whatever their raw scales (1.135 vs 0.0082)."""
    from csrip_lib.core.degradation import make_pyramid
    from csrip_lib.models.common import bicubic_up
    from csrip_lib.models.lp import PerceptualLoss
    from csrip_lib.models.recognizer import load_recognizers

    rec = load_recognizers(priors, scales=(192,))[192]
    hr = torch.rand(2, 3, 192, 192, generator=torch.Generator().manual_seed(0))
    lr = make_pyramid(hr)["lr"]
    balanced, raw = PerceptualLoss(rec, balance="bicubic"), PerceptualLoss(rec, balance="none")
    total, terms = balanced(bicubic_up(lr), hr, lr)
    assert terms["feature"] == pytest.approx(1) and terms["pixel"] == pytest.approx(1) and total == pytest.approx(2)
    _, perfect = balanced(hr, hr, lr)
    assert perfect["feature"] == 0 and perfect["pixel"] == 0
    _, raw_terms = raw(bicubic_up(lr), hr, lr)
    assert raw_terms["pixel"] != pytest.approx(1)  # the raw terms have their own scales
    with pytest.raises(ValueError, match="balance"):
        PerceptualLoss(rec, balance="magnitudes")


def test_nbsrf_forest_predicts_like_sklearn(synthetic_root):
    from sklearn.ensemble import RandomForestRegressor

    from csrip_lib.models.nbsrf import NBSRF, NBSRFConfig

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 64, generator=g), torch.randn(500, 64, generator=g)
    forest = RandomForestRegressor(3, max_depth=5, random_state=0).fit(x.numpy(), y.numpy())
    model = NBSRF(NBSRFConfig(trees=3, max_depth=5)).load_forest(forest)
    probe = torch.randn(100, 64, generator=g)
    expected = torch.from_numpy(forest.predict(probe.numpy())).float()
    assert torch.allclose(model.predict(probe), expected, atol=1e-5)


def test_resume_of_another_models_run_is_a_clear_error(synthetic_root, runs):
    out, _ = runs
    with pytest.raises(CSRIPError, match="holds a 'srcnn' run, not 'vdsr'"):
        train_competitor(synthetic_root, competitor_run("vdsr", TINY, FEW), out / "srcnn", resume=True, device="cpu")
    with pytest.raises(CSRIPError, match="holds a 'srcnn' model, not 'vdsr'"):
        load_sr(out / "srcnn" / "best.pt", model="vdsr")


def test_existing_run_is_not_overwritten_without_force(synthetic_root, runs):
    out, _ = runs
    for name in ("srcnn", "nbsrf"):
        before = (out / name / "best.pt").stat().st_mtime
        with pytest.raises(CSRIPError, match="--force"):
            train_competitor(synthetic_root, competitor_run(name, TINY, FEW), out / name, device="cpu")
        assert (out / name / "best.pt").stat().st_mtime == before
    train_competitor(synthetic_root, competitor_run("srcnn", TINY, FEW), out / "srcnn", force=True, device="cpu",
                     progress=False)


def test_unknown_model_lists_the_known_ones(synthetic_root, capsys):
    with pytest.raises(CSRIPError, match="known models: csrip, nbsrf, srcnn, vdsr, lp, srgan, urdgn"):
        competitor_run("edsr", TINY)
    with pytest.raises(SystemExit):
        cli_main(["train-competitor", "--model", "edsr"])
    assert "invalid choice: 'edsr'" in capsys.readouterr().err


def test_lp_and_srgan_need_recognizers(synthetic_root, tmp_path):
    with pytest.raises(CSRIPError, match="--recognizers"):
        train_competitor(synthetic_root, competitor_run("lp", TINY, FEW), tmp_path / "lp", device="cpu")


def test_table1_puts_paper_numbers_gains_and_identity_columns_beside_ours():
    from csrip_lib.training.ablation import EXPERIMENTS, table

    assert EXPERIMENTS["table1"] == ["NBSRF-like", "SRCNN", "VDSR", "lp-like (SRResNet, face-prior features)",
                                     "SRGAN-like (SqueezeNet content loss)", "URDGN", "C-SRIP"]
    rows = [{"model": m, "image": f"{i}.jpg", "identity": str(i), "psnr": p + i, "ssim": s,
             "id_dist": 0.5, "id_match": True, "id_rank1": 1.0, "id_auc": 0.9, "id_tar": float("nan"),
             "id_failed": False}
            for m, p, s in (("bicubic", 24.0, 0.70), ("SRCNN", 25.0, 0.72), ("C-SRIP", 26.0, 0.75)) for i in range(2)]
    t = table(pd.DataFrame(rows), paper="table1")
    assert t.loc["SRCNN", "measured_psnr"] == pytest.approx(25.5)
    assert t.loc["SRCNN", "paper_psnr"] == pytest.approx(24.812)
    assert t.loc["SRCNN", "measured_dpsnr"] == pytest.approx(1.0)
    assert t.loc["C-SRIP", "paper_dssim"] == pytest.approx(0.8171 - 0.7060)
    assert t.loc["C-SRIP", "rank1"] == 1.0 and "auc" in t
    assert "VDSR" not in t.index and t["measured_psnr"].notna().all()  # no rows of empty measurements
    renamed = table(pd.DataFrame([{**r, "model": {"SRCNN": "SRGAN-like (SqueezeNet content loss)"}.get(r["model"], r["model"])}
                                  for r in rows]), paper="table1")  # a "-like (...)" row keeps its paper numbers
    assert renamed.loc["SRGAN-like (SqueezeNet content loss)", "paper_psnr"] == pytest.approx(25.669)
    assert "SRGAN" not in renamed.index


def test_figures_6_to_8_take_every_model(hr_faces):
    """Figs. 6/7 (gallery, zoomed details) and Fig. 8 (CSD) draw a column / curve per competitor."""
    import matplotlib.pyplot as plt

    from csrip_lib.tutorial import figures
    from csrip_lib.models.registry import build_sr, model_config

    models = {name: build_sr(name, model_config(name, get_preset("quick"))) for name in COMPETITORS}
    hr = hr_faces[:2].float()
    fig6 = figures.fig06_qualitative(models, hr, device="cpu")
    titles = [ax.get_title() for ax in fig6.axes[:len(models) + 3]]
    assert titles == ["LR input", "Bicubic", *COMPETITORS, "Target"]
    fig7 = figures.fig07_details(models, hr, device="cpu")
    assert len(fig7.axes) == 2 * len(hr) * (len(models) + 3)  # every face and its zoomed detail
    results = pd.DataFrame([{"model": m, "image": str(i), "psnr": 20.0 + i, "ssim": 0.5 + i / 10}
                            for m in ["bicubic", *COMPETITORS] for i in range(3)])
    fig8 = figures.fig08_csd(results)
    assert [t.get_text() for t in fig8.axes[1].get_legend().get_texts()] == ["bicubic", *COMPETITORS]
    plt.close("all")
