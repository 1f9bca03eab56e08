"""The evaluation figures (Figs. 6-10, 12, 13) and `csrip figures`."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from csrip_lib.tutorial import figures
from csrip_lib.models import zoo# noqa: E402
from csrip_lib.core.checkpoint import save_checkpoint  # noqa: E402
from csrip_lib.cli import main  # noqa: E402
from csrip_lib.core.config import get_preset, to_dict  # noqa: E402
from csrip_lib.evaluation.evaluate import evaluate_models, image_attributes  # noqa: E402
from csrip_lib.models import CascadedSR  # noqa: E402


@pytest.fixture(scope="module")
def faces(face_root) -> Path:
    return face_root


@pytest.fixture()
def fig_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CSRIP_FIGURES", str(tmp_path / "figures"))
    return tmp_path / "figures"


@pytest.fixture(scope="module")
def model() -> CascadedSR:
    torch.manual_seed(0)
    return CascadedSR(replace(get_preset("tiny").sr, global_skip=False)).eval()


def _hr(n: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 192, 192, generator=g)


def _titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_qualitative_grid_columns_and_scores(model, fig_dir):
    fig = figures.fig06_qualitative({"tiny": model}, _hr(2), save=True)
    assert _titles(fig) == ["LR input", "Bicubic", "tiny", "Target"]
    assert len(fig.axes) == 2 * 4
    assert fig.axes[1].get_xlabel().endswith(tuple("0123456789")) and "dB" in fig.axes[1].get_xlabel()
    assert (fig_dir / "fig06_qualitative.png").stat().st_size > 1000
    fig7 = figures.fig07_details({"tiny": model}, _hr(1), save=True)
    assert len(fig7.axes) == 2 * 4 and len(fig7.axes[0].patches) == 1  # full image with box + zoom row
    assert (fig_dir / "fig07_details.png").is_file()


def test_long_model_names_wrap_instead_of_running_into_the_next_column(model):
    """Model labels name the checkpoint and its configuration; they wrap within their column."""
    fig = figures.image_grid({"LR": _hr(1), "c-srip-quick (C-SRIP, alpha 0.001)": _hr(1), "Target": _hr(1)})
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        assert ax.title.get_window_extent(renderer).width <= ax.get_window_extent(renderer).width * 1.15
    assert _titles(fig)[1] == "c-srip-quick (C-SRIP,\nalpha 0.001)"


def test_intermediate_and_sharpening_figures(model, fig_dir):
    fig = figures.fig12_intermediate(model, _hr(2), save=True)
    assert _titles(fig) == ["LR input", "Bicubic 48", "SR 48", "GT 48", "Bicubic 96", "SR 96", "GT 96"]
    assert "CascadedSR" in fig._suptitle.get_text()  # no checkpoint: the class, never a made-up "C-SRIP"
    assert fig.axes[1].get_images()[0].get_array().shape[:2] == (48, 48)
    assert fig.axes[5].get_images()[0].get_array().shape[:2] == (96, 96)
    fig13 = figures.fig13_sharpening(model, _hr(1), save=True)
    assert _titles(fig13) == ["LR input", "CascadedSR", "Enhanced", "Target"]
    assert {p.name for p in fig_dir.iterdir()} == {"fig12_intermediate.png", "fig13_sharpening.png"}


def test_csd_and_failure_figures(faces, model, fig_dir):
    from csrip_lib.data.faces import FaceFolder

    ds = FaceFolder(faces, split="test", max_images=8)
    results = evaluate_models({"tiny": model}, ds, progress=False)
    fig = figures.fig08_csd(results, save=True)
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]  # bicubic and tiny, PSNR and SSIM
    attrs = image_attributes(ds, progress=False)
    fig10 = figures.fig10_failures(results, "tiny", model, faces, attrs, k=3, save=True)
    assert len(fig10.axes) == 3 * 4
    worst = results[results.model == "tiny"].nsmallest(1, "ssim")["image"].item()
    assert Path(worst).parent.name[:22] in fig10.axes[0].get_xlabel() and "high-freq." in fig10.axes[0].get_xlabel()
    assert {p.name for p in fig_dir.iterdir()} == {"fig08_csd.png", "fig10_failures.png"}


@pytest.mark.slow
def test_csrip_figures_command(faces, model, fig_dir, tmp_path, capsys, monkeypatch):
    from csrip_lib.data.synthetic import is_synthetic
    from csrip_lib.models.registry import load_sr

    fig_dir.mkdir(parents=True)
    (fig_dir / "fig06_qualitative.png").write_bytes(b"made by another model")  # stale
    with monkeypatch.context() as m:  # no shipped model and no --checkpoint: model figures are skipped
        m.setattr(zoo, "CHECKPOINTS_DIR", tmp_path / "no-checkpoints")
        assert main(["figures", "--data", str(faces), "--examples", "2"]) == 0
    out = capsys.readouterr().out
    assert "skipping fig06_qualitative.png: it needs a trained SR model" in out and "removed the older" in out
    assert sorted(p.name for p in fig_dir.iterdir()) == [
        "fig02_architecture.png", "fig03_residuals.png", "fig04_training_data.png", "fig05_error_maps.png"]
    assert figures.figure_model(fig_dir / "fig02_architecture.png") == "the paper preset's shapes (no weights)"
    ckpt = tmp_path / "runs" / "tiny" / "best.pt"
    save_checkpoint({"model": model.state_dict(), "config": {"sr": to_dict(model.cfg)}}, ckpt, kind="sr")
    label = load_sr(ckpt).label
    assert main(["figures", "--data", str(faces), "--checkpoint", str(ckpt), "--examples", "2",
                 "--max-images", "8", "--only", "fig06", "fig07", "fig08", "fig09", "fig10", "fig12",
                 "fig13"]) == 0
    out = capsys.readouterr().out
    assert f"using {label}" in out and "using the shipped SR model" not in out  # it names the model it uses
    assert {p.name for p in fig_dir.iterdir()} == {*figures.FIGURES}  # Fig. 9 from the shipped pair
    for name in figures.FIGURES[4:]:
        made = figures.figure_model(fig_dir / name)
        assert f"wrote {fig_dir / name} (model: {made})" in out
        pair = ", ".join(load_sr(zoo.resolve(n)).label for n in zoo.ABLATION_PAIR)
        assert made == {"fig09": pair, "fig08": "tiny"}.get(name[:5], label), name  # fig08: the CSV's name
    from PIL import Image
    data = Image.open(fig_dir / "fig06_qualitative.png").text["Data"]
    assert data.startswith("SYNTHETIC") == is_synthetic(faces), data  # synthetic faces say so
    (fig_dir / "fig06_qualitative.png").unlink()
    assert main(["figures", "--data", str(faces), "--examples", "2", "--only", "fig06"]) == 0  # the default
    assert f"using the shipped SR model '{zoo.DEFAULT_SR}'" in capsys.readouterr().out
    assert figures.figure_model(fig_dir / "fig06_qualitative.png").startswith(zoo.DEFAULT_SR)


def test_the_ablation_pair_is_the_tours_shipped_pair():
    from csrip_lib.tutorial import tour

    assert zoo.ABLATION_PAIR == tuple(tour.shipped_pair("quick").values())  # alpha 0, then 0.001


def test_the_committed_gallery_shows_the_current_default_model_and_the_readme_names_it():
    """docs/gallery.png records the model that drew it (name and SHA-256, in the PNG); both must be the
    default model of today's code and manifest, and the README's caption must name it."""
    from PIL import Image

    from csrip_lib.core.config import project_root

    path = project_root() / figures.GALLERY
    png = Image.open(path)
    entry = zoo.manifest()[zoo.DEFAULT_SR]
    assert png.text["Model"] == zoo.DEFAULT_SR, "the gallery shows another model: `csrip figures --only gallery`"
    assert png.text["Model SHA-256"] == entry["files"][entry["path"]], "the default model changed since"
    assert path.stat().st_size < 300_000
    readme = (project_root() / "README.md").read_text()
    caption = readme[readme.index(f"]({figures.GALLERY.as_posix()})"):][:400]
    assert f"`{zoo.DEFAULT_SR}`" in caption and "Labeled Faces in the" in caption and "commercial" in readme


def test_the_gallery_refuses_synthetic_faces_and_more_than_eight(synthetic_root, monkeypatch, tmp_path):
    monkeypatch.setattr(figures, "GALLERY", tmp_path / "gallery.png")  # never the committed one
    with pytest.raises(figures.CSRIPError, match="synthetic"):
        figures.save_gallery(zoo.DEFAULT_SR, synthetic_root)
    with pytest.raises(figures.CSRIPError, match="1 to 8 faces"):
        figures.save_gallery(zoo.DEFAULT_SR, synthetic_root, n=9)
    assert main(["figures", "--only", "gallery", "--checkpoint", "runs/x/best.pt"]) == 2
    assert not (tmp_path / "gallery.png").exists()


def test_csrip_figures_only_gallery_draws_real_faces_with_the_default_model(lfw_root, monkeypatch, tmp_path):
    from PIL import Image

    monkeypatch.setattr(figures, "GALLERY", tmp_path / "gallery.png")
    assert main(["figures", "--only", "gallery", "--data", str(lfw_root)]) == 0
    png = Image.open(tmp_path / "gallery.png")
    assert png.text["Model"] == zoo.DEFAULT_SR and png.text["Data"].startswith("8 test-split faces")
    assert png.width >= 2 * png.height  # one column per face, four rows
