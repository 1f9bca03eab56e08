"""Table 1 competitors (paper Sec. 4.2): each trains through the shared harness, round-trips its
checkpoint through `csrip evaluate`, and fails clearly on bad input; the GANs stay stable."""
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
from csrip_lib.models.registry import COMPETITORS, load_sr
from csrip_lib.training.competitors import competitor_run, train_competitor
from csrip_lib.training.sr import sr_datasets

from test_train_sr import write_recognizers

TINY = get_preset("tiny")
FEW = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=4, lr=1e-3)
GAN_STEPS = TrainConfig(epochs=2, steps_per_epoch=3, batch_size=4, lr=1e-3)
NBSRF_SMALL = {"trees": 2, "max_depth": 4, "patches": 2000}


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
    for two epochs of three steps at their quick size."""
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
    assert df["psnr"].notna().all() and (df["psnr"] > 10).all()


def test_loaded_model_matches_the_trained_weights(runs):
    out, _ = runs
    for name in COMPETITORS:
        model = load_sr(out / name / "best.pt", model=name)
        state = load_checkpoint(out / name / "best.pt")["model"]
        assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items()), name
        with torch.no_grad():
            y = model(torch.rand(2, 3, 24, 24))
        assert y.shape == (2, 3, 192, 192) and 0 <= y.min() and y.max() <= 1


def test_gans_stay_finite_and_beat_a_constant_image(synthetic_root, runs):
    """Both losses finite in every epoch, two optimizers checkpointed, and the generator's output
    closer to the faces than the best constant image (each face's mean colour)."""
    from csrip_lib.evaluation.evaluate import sample_images
    from csrip_lib.core.degradation import make_pyramid
    from csrip_lib.evaluation.metrics import psnr

    out, logs = runs
    hr, _ = sample_images(synthetic_root, "test", n=6)
    lr = make_pyramid(hr)["lr"]
    constant = psnr(hr.mean((2, 3), keepdim=True).expand_as(hr), hr).mean()
    for name in ("srgan", "urdgn"):
        log = logs[name]
        assert len(log) == 2
        for col in ("train_loss", "train_d_loss", "train_adversarial", "val_psnr"):
            assert log[col].map(math.isfinite).all(), (name, col)
        assert set(load_checkpoint(out / name / "last.pt")["optimizer"]) == {"generator", "discriminator"}
        with torch.no_grad():
            sr = load_sr(out / name / "best.pt")(lr)
        assert psnr(sr, hr).mean() > constant + 3, name


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

    assert EXPERIMENTS["table1"] == ["NBSRF-like", "SRCNN", "VDSR", "lp", "SRGAN", "URDGN", "C-SRIP"]
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
