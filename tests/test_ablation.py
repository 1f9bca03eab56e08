"""`csrip ablation` (paper Sec. 4.3 Table 2, A.3 Tables 3-4): every variant trains through one code path."""
from __future__ import annotations

import pandas as pd
import pytest

from csrip_lib.cli import main as cli_main
from csrip_lib.core.checkpoint import load_checkpoint
from csrip_lib.core.console import CSRIPError
from csrip_lib.data.faces import FaceFolder, make_synthetic_faces
from csrip_lib.training.ablation import EXPERIMENTS, VARIANTS, run_ablation, run_dir

from test_train_sr import write_recognizers

FAST = ["--preset", "tiny", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "4", "--device", "cpu",
        "--max-images", "6"]


def test_variants_are_the_papers_table2():
    assert list(VARIANTS) == ["Baseline", "B+SSIM", "C+SSIM", "C+SSIM+M", "C-SRIP"]
    arch = {k: a for k, (a, _) in VARIANTS.items()}
    assert arch["Baseline"] == arch["B+SSIM"] == "baseline" and arch["C-SRIP"] == "cascaded"
    assert [VARIANTS[k][1].reconstruction for k in VARIANTS] == ["mse", "ssim", "ssim", "ssim", "ssim"]
    assert [VARIANTS[k][1].multiscale for k in VARIANTS] == [False, False, False, True, True]
    assert [VARIANTS[k][1].alpha > 0 for k in VARIANTS] == [False] * 4 + [True]
    assert EXPERIMENTS["table34"] == ["Baseline", "B+SSIM"]


def test_missing_recognizers_or_a_test_folder_that_is_the_training_folder_fail_before_any_training(
        synthetic_root, tmp_path):
    with pytest.raises(CSRIPError, match="--recognizers"):
        run_ablation(synthetic_root, "tiny", tmp_path, experiment="table2")
    with pytest.raises(CSRIPError, match="is the training folder"):
        run_ablation(synthetic_root, "tiny", tmp_path, experiment="table34", test_data=synthetic_root)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_table34_trains_mse_and_ssim_baselines_and_scores_train_and_test(synthetic_root, tmp_path):
    """Also --test-data: the test table scores every image of another face folder (the paper: train on
    CASIA-WebFace, test on LFW), here 2 identities x 2 images, fewer than --max-images."""
    other = make_synthetic_faces(tmp_path / "other", 2, 2, seed=1, progress=False)
    assert cli_main(["ablation", "--data", str(synthetic_root), "--out", str(tmp_path / "abl"), "--experiment",
                     "table34", "--test-data", str(other), *FAST]) == 0
    tmp_path = tmp_path / "abl"
    for name in ("table3_train", "table4_test"):
        t = pd.read_csv(tmp_path / f"{name}.csv", index_col=0)
        assert list(t.index) == ["bicubic", "Baseline", "B+SSIM"] and t["psnr"].notna().all()
    assert set(pd.read_csv(tmp_path / "table4_test.csv", index_col=0)["images"]) == {4}
    tested = pd.read_csv(tmp_path / "table4_test_per_image.csv")["identity"]
    assert set(tested) == set(FaceFolder(other, "all").identities)
    cfg = load_checkpoint(tmp_path / "baseline" / "best.pt")["config"]
    assert cfg["sr"]["arch"] == "baseline" and cfg["loss"]["reconstruction"] == "mse"
    assert load_checkpoint(tmp_path / "b_ssim" / "best.pt")["config"]["loss"]["reconstruction"] == "ssim"
    # a second call reuses the finished runs instead of training again
    mtime = (tmp_path / "baseline" / "last.pt").stat().st_mtime
    assert cli_main(["ablation", "--data", str(synthetic_root), "--out", str(tmp_path), "--experiment", "table34",
                     "--test-data", str(other), *FAST]) == 0
    assert (tmp_path / "baseline" / "last.pt").stat().st_mtime == mtime


@pytest.mark.slow
def test_table2_trains_all_five_configurations(synthetic_root, tmp_path):
    priors = write_recognizers(tmp_path / "rec", FaceFolder(synthetic_root, "train", min_images=2).identities)
    assert cli_main(["ablation", "--data", str(synthetic_root), "--out", str(tmp_path / "abl"),
                     "--recognizers", str(priors), *FAST]) == 0
    t = pd.read_csv(tmp_path / "abl" / "table2.csv", index_col=0)
    assert {"Baseline", "B+SSIM", "C+SSIM", "C+SSIM+M", "C-SRIP"} <= set(t.index)
    assert t.loc["C-SRIP", "paper_psnr"] == pytest.approx(27.1638)
    assert t.loc[list(VARIANTS), "measured_ssim"].notna().all()
    logs = {k: pd.read_csv(run_dir(tmp_path / "abl", k) / "log.csv") for k in VARIANTS}
    assert "train_ce192" in logs["C-SRIP"] and "train_ce192" not in logs["C+SSIM+M"]
    assert "train_ssim48" in logs["C+SSIM+M"] and "train_ssim48" not in logs["C+SSIM"]
