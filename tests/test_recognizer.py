"""Identity priors: the complex SqueezeNet, recognizer training (Sec. 3.3/3.4), checkpoints, errors."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
import torch.nn as nn
from torchvision.models.squeezenet import Fire

from csrip_lib.cli import main
from csrip_lib.core.checkpoint import load_checkpoint, save_checkpoint
from csrip_lib.core.config import FaceSelection, Preset, RecognizerConfig, TrainConfig, get_preset
from csrip_lib.core.console import CSRIPError
from csrip_lib.models import SqueezeNetRecognizer
from csrip_lib.models.recognizer import BypassFire, load_recognizers
from csrip_lib.training.recognizers import ensure_recognizers, residual_batch, train_recognizers

TINY = RecognizerConfig(width=0.25, dropout=0.0)


def preset(epochs: int, batch_size: int = 8, max_identities: int = 4, **kw) -> Preset:
    """A CPU-sized preset: tiny recognizer, few identities (synthetic faces: 8 images each)."""
    return Preset(name="test", recognizer=TINY, selection=FaceSelection(max_identities=max_identities),
                  train_recognizer=TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, patience=0, **kw))


@pytest.mark.parametrize("size, grid", [(48, 6), (96, 6), (192, 12)])
def test_shapes_at_every_scale(size, grid):
    model = SqueezeNetRecognizer(7, TINY, image_size=size).eval()
    x = torch.randn(2, 3, size, size)
    assert model.body(x).shape == (2, model.embedding_dim, grid, grid)  # 48 px keeps a 6x6 map
    assert model.features(x).shape == (2, model.embedding_dim) == (2, 128)  # 512 * width
    assert model(x).shape == (2, 7)
    with pytest.raises(ValueError, match=f"3 x {size} x {size}"):
        model(torch.randn(2, 3, size // 2, size // 2))  # a 96 px image fed to the 192 px prior


def test_complex_squeezenet_topology():
    model = SqueezeNetRecognizer(10)  # width 1: SqueezeNet v1.0 channel counts
    fires = [m for m in model.modules() if isinstance(m, BypassFire)]
    assert len(fires) == 8 and all(isinstance(f.fire, Fire) for f in fires)
    simple = [i + 2 for i, f in enumerate(fires) if isinstance(f.shortcut, nn.Identity)]
    complex_ = [i + 2 for i, f in enumerate(fires) if isinstance(f.shortcut, nn.Conv2d)]
    assert simple == [3, 5, 7, 9] and complex_ == [2, 4, 6, 8]  # Iandola et al., Fig. 2 right
    assert [f.fire.expand1x1.out_channels * 2 for f in fires] == [128, 128, 256, 256, 384, 384, 512, 512]
    plain = SqueezeNetRecognizer(10, RecognizerConfig(batch_norm=False))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules()) == 1  # input standardization only


def test_residual_batch_is_high_pass_at_the_models_scale(hr_faces):
    hr = (hr_faces[:2] * 255).round().to(torch.uint8)
    for size in (48, 96, 192):
        r = residual_batch(hr, size)
        assert r.shape == (2, 3, size, size) and r.dtype == torch.float32
        assert r.mean().abs() < 0.01 < (hr.float() / 255).std()  # no low-frequency content left
    torch.manual_seed(0)
    a = residual_batch(hr, 96, augment=True)
    assert a.shape == (2, 3, 96, 96) and not torch.equal(a, residual_batch(hr, 96))


@pytest.fixture(scope="module")
def trained(synthetic_root, tmp_path_factory):
    """All three priors, trained for one short epoch on four synthetic identities."""
    out = tmp_path_factory.mktemp("recognizers")
    table = train_recognizers(synthetic_root, preset(epochs=1, steps_per_epoch=2), out, progress=False)
    return out, table


def test_training_writes_checkpoints_logs_and_the_accuracy_table(trained):
    out, table = trained
    assert list(table["scale"]) == [48, 96, 192]
    assert (table["identities"] == 4).all() and (table["val_images"] == 4).all()  # 1 of 8 per identity
    assert table["train_acc"].between(0, 1).all() and table["val_acc"].between(0, 1).all()
    pd.testing.assert_frame_equal(pd.read_csv(out / "accuracy.csv"), table, check_dtype=False)
    for size in (48, 96, 192):
        log = pd.read_csv(out / f"rec{size}" / "log.csv")
        assert list(log.columns[:5]) == ["epoch", "step", "lr", "train_loss", "train_acc"]
        assert {"val_acc", "val_loss", "seconds"} <= set(log.columns) and log["step"].iloc[-1] == 2
        ckpt = load_checkpoint(out / f"rec{size}" / "best.pt", kind="recognizer")
        assert ckpt["image_size"] == size and len(ckpt["identities"]) == 4
        assert ckpt["config"]["preset"] == "test" and ckpt["config"]["recognizer"]["width"] == 0.25


def test_checkpoints_round_trip_as_frozen_priors(trained, synthetic_root):
    out, _ = trained
    priors = load_recognizers(out)
    assert sorted(priors) == [48, 96, 192]
    for size, model in priors.items():
        ckpt = load_checkpoint(out / f"rec{size}" / "best.pt")
        assert not model.training and not any(p.requires_grad for p in model.parameters())
        assert model.image_size == size and model.identities == ckpt["identities"]
        fresh = SqueezeNetRecognizer(4, TINY, image_size=size).eval()
        fresh.load_state_dict(ckpt["model"])
        x = torch.randn(3, 3, size, size)
        assert torch.equal(model(x), fresh(x))
        x.requires_grad_(True)  # as in Eq. 4: gradients reach the SR output, not the prior
        model(x).sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_existing_runs_resume_or_need_force(trained, synthetic_root, capsys):
    out, table = trained
    with pytest.raises(CSRIPError, match="--resume.*--force"):
        train_recognizers(synthetic_root, preset(epochs=1, steps_per_epoch=2), out, scales=(48,), progress=False)
    with pytest.raises(CSRIPError, match="different configuration"):  # another preset, same folder
        train_recognizers(synthetic_root, preset(epochs=2, steps_per_epoch=2), out, scales=(48,),
                          resume=True, progress=False)
    again = ensure_recognizers(synthetic_root, preset(epochs=1, steps_per_epoch=2), out)
    assert "reusing" in capsys.readouterr().out
    pd.testing.assert_frame_equal(again, pd.read_csv(out / "accuracy.csv"))
    with pytest.raises(CSRIPError, match="preset \\['test'\\], not 'quick'"):
        ensure_recognizers(synthetic_root, get_preset("quick"), out)


def test_recognizer_learns_synthetic_identities(synthetic_root, tmp_path):
    # 4 identities (chance 0.25), 7 training images each: 45 Adam steps at 48 px on residuals only.
    table = train_recognizers(synthetic_root, preset(epochs=15), tmp_path, scales=(48,), progress=False)
    assert table["train_acc"].item() >= 0.5
    log = pd.read_csv(tmp_path / "rec48" / "log.csv")
    assert log["train_loss"].iloc[-3:].mean() < 0.8 * log["train_loss"].iloc[0]


def test_bad_input_errors(trained, synthetic_root, tmp_path):
    with pytest.raises(CSRIPError, match="no trained recognizer.*csrip train-recognizers"):
        load_recognizers(tmp_path / "nothing")
    out, _ = trained
    other = tmp_path / "other"
    shutil.copytree(out, other)
    save_checkpoint({"model": {}, "config": {}}, other / "rec96" / "best.pt", kind="sr")
    with pytest.raises(CSRIPError, match="holds a 'sr' model, expected 'recognizer'"):
        load_recognizers(other)
    with pytest.raises(ValueError, match="unknown preset"):  # resolved once, where a name comes in
        get_preset("huge")
    with pytest.raises(CSRIPError, match="scales must be among"):
        train_recognizers(synthetic_root, preset(1), tmp_path / "x", scales=(64,))
    singles = tmp_path / "singles"  # identities of the training split, one image each
    for ident in ("synthetic_0000", "synthetic_0004", "synthetic_0006"):
        (singles / ident).mkdir(parents=True)
        src = sorted((synthetic_root / ident).iterdir())[0]
        shutil.copy(src, singles / ident / src.name)
    with pytest.raises(CSRIPError, match="no identity with >= 2 "):
        train_recognizers(singles, preset(1), tmp_path / "x")
    with pytest.raises(CSRIPError, match="too small to train recognizers"):
        train_recognizers(singles, preset(1), tmp_path / "x", min_images=1)
    with pytest.raises(ValueError, match="at least 2 identities"):
        SqueezeNetRecognizer(1)


def test_command_line(synthetic_root, tmp_path, capsys):
    args = ["train-recognizers", "--data", str(synthetic_root), "--preset", "tiny", "--out", str(tmp_path),
            "--scales", "48", "--epochs", "1", "--max-identities", "3"]
    assert main(args) == 0
    assert "train_acc" in capsys.readouterr().out and (tmp_path / "rec48" / "best.pt").is_file()
    assert main(args) == 2
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0


def test_real_faces_pipeline(lfw_root, tmp_path):
    """On LFW ($CSRIP_DATA): identities with >= 20 images, 90/10 split of each, two steps per scale."""
    table = train_recognizers(lfw_root, preset(epochs=1, steps_per_epoch=2, max_identities=3), tmp_path,
                              min_images=20, progress=False)
    assert (table["identities"] == 3).all()
    assert (table["val_images"] >= 3 * 2).all() and (table["train_images"] >= 3 * 18).all()
    assert sorted(load_recognizers(tmp_path)) == [48, 96, 192]
