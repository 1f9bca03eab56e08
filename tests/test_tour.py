"""What the notebooks load per PRESET (csrip_lib.tutorial.tour): the shipped models, found without training, and
the identity priors looked up in any face folder (a superset of their data, or faces they never saw)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from csrip_lib.core.config import DegradationConfig
from csrip_lib.models import zoo
from csrip_lib.models.registry import competitor_key
from csrip_lib.training.ablation import COMPETITOR_NAMES
from csrip_lib.tutorial import tour


@pytest.mark.skipif(not all(map(tour.has_shipped, tour.SHIPPED_PAIR.values())), reason="no shipped models")
def test_pretrained_notebook_06_uses_the_shipped_pair_and_trains_nothing(tmp_path, capsys):
    paths = tour.table2_checkpoints(tmp_path / "data-unused", tour.PRETRAINED, tmp_path / "runs", train=True)
    assert paths == {name: tour.shipped(n) for name, n in tour.SHIPPED_PAIR.items()}
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
    assert "C-SRIP: shipped c-srip-quick" in capsys.readouterr().out


@pytest.mark.skipif(not all(map(tour.has_shipped, tour.SHIPPED_TABLE1.values())), reason="Table 1 not shipped")
def test_pretrained_table1_is_every_competitor_and_the_pair_as_results_table1_shipped_them(tmp_path):
    paths = tour.table1_checkpoints(tour.PRETRAINED, tmp_path / "runs")
    assert list(paths) == [*COMPETITOR_NAMES, "C+SSIM+M", "C-SRIP"]
    manifest = zoo.manifest()
    for name, path in paths.items():
        entry = manifest[tour.SHIPPED_TABLE1[name]]
        # the row name it was measured under (files shipped before a rename keep theirs: registry.competitor_key)
        assert entry["configuration"] == name or competitor_key(entry["configuration"]) == competitor_key(name)
        assert entry["result"] == "table1"
        assert entry["command"].startswith("csrip reproduce table1 ") and path == tour.shipped(tour.SHIPPED_TABLE1[name])
    assert not (tmp_path / "runs").exists()


def _tiny_cascade(path: Path, sigma: float | None = None) -> Path:
    """A random tiny C-SRIP checkpoint; trained under the default degradation, or Gaussian `sigma` if given."""
    from csrip_lib.core.checkpoint import save_checkpoint
    from csrip_lib.core.config import DegradationConfig, get_preset, to_dict
    from csrip_lib.models import CascadedSR

    cfg = get_preset("tiny").sr
    config = {"sr": to_dict(cfg), **({"degradation": to_dict(DegradationConfig(sigma=sigma))} if sigma else {})}
    return save_checkpoint({"model": CascadedSR(cfg).state_dict(), "config": config}, path, kind="sr")


@pytest.mark.skipif(not all(map(tour.has_shipped, tour.SHIPPED_TABLE1.values())), reason="Table 1 not shipped")
def test_notebook_06_loads_each_table1_model_once_beside_the_pair(tmp_path, capsys):
    """Notebook 06 scores every model in one pass: with the shipped pair as its Table 2 models, Table 1 reads
    C+SSIM+M and C-SRIP from the pair and loads only the six competitors. A C-SRIP given by hand replaces
    Table 1's, and a given model trained under another degradation keeps Table 1's models out (they cannot
    share its LR input); printed lines say both."""
    table1 = tour.table1_checkpoints(tour.PRETRAINED, tmp_path / "runs")
    pair = tour.table2_checkpoints(tmp_path, tour.PRETRAINED, tmp_path / "runs", train=False)
    capsys.readouterr()
    rows, competitors = tour.table1_models(table1, pair)
    assert rows == ["bicubic", *table1] and list(competitors) == list(COMPETITOR_NAMES)
    assert all(model.degradation == DegradationConfig() for model in competitors.values())
    assert capsys.readouterr().out == ""

    mine = _tiny_cascade(tmp_path / "mine.pt")
    rows, competitors = tour.table1_models(table1, {**pair, "C-SRIP": mine})
    assert rows == ["bicubic", *table1] and "C-SRIP" not in competitors
    assert f"Table 1's C-SRIP row is the given {mine}" in capsys.readouterr().out

    rows, competitors = tour.table1_models(table1, {"C-SRIP": _tiny_cascade(tmp_path / "blurry.pt", sigma=0.5)})
    assert rows == ["bicubic", "C-SRIP"] and competitors == {}
    printed = capsys.readouterr().out.splitlines()
    left_out = [line.removeprefix("Table 1's ").split(" left out: trained under")[0] for line in printed
                if "left out: trained under" in line]  # row names may hold spaces: "SRGAN-like (...)"
    assert left_out == [name for name in table1 if name != "C-SRIP"]  # the competitors and C+SSIM+M
    assert len(printed) == len(left_out) + 1 and "Table 1's C-SRIP row is the given" in printed[-1]


def test_without_shipped_table1_notebook_06_scores_only_finished_runs(tmp_path):
    """Another preset: the runs of `csrip ablation --experiment table1` that have a best.pt, nothing trained."""
    srcnn = tmp_path / "ablation" / "srcnn" / "best.pt"
    srcnn.parent.mkdir(parents=True)
    srcnn.write_bytes(b"")
    assert tour.table1_checkpoints("small", tmp_path) == {"SRCNN": srcnn}


# ------------------------------------------------------------------ the identity priors on any data
# Notebook 05 looks the shipped priors' identity names (saved in their checkpoints) up in the user's data.
shipped_priors = pytest.mark.skipif(not tour.has_shipped(tour.SHIPPED_RECOGNIZERS, kind="recognizers"),
                                    reason="no shipped recognizers")
SYNTHETIC = 8  # identities of 10 images: 4 in the train split (synthetic_0000, 0004, 0006, 0007), 3 in test


@pytest.fixture(scope="module")
def synthetic_faces(tmp_path_factory) -> Path:
    """Faces of identities the shipped priors never saw, enough for the quick preset's universe
    (>= 10 images per identity) and for notebook 05's test images."""
    from csrip_lib.data.faces import make_synthetic_faces
    return make_synthetic_faces(tmp_path_factory.mktemp("synthetic") / "faces", SYNTHETIC, 10, seed=0,
                                progress=False)


@pytest.fixture()
def no_training(monkeypatch):
    """Fail instead of training recognizers; records the data they would have been trained on."""
    calls = []
    monkeypatch.setattr(tour, "ensure_recognizers", lambda root, preset, folder: calls.append(root) or pd.DataFrame())
    return calls


@shipped_priors
def test_a_superset_of_the_priors_data_uses_the_shipped_priors_in_both_modes(lfw_root, synthetic_faces, tmp_path,
                                                                               no_training):
    """Full LFW holds every identity the shipped priors know, plus others. Stand-in: the LFW of $CSRIP_DATA
    (the priors' own data) linked beside synthetic identities. The priors are looked up by name: all
    their identities are found, the others are counted as unknown, and quick mode trains nothing."""
    superset = tmp_path / "superset"
    superset.mkdir()
    for folder in [*Path(lfw_root).iterdir(), *Path(synthetic_faces).iterdir()]:
        if folder.is_dir():
            (superset / folder.name).symlink_to(folder)
    priors = tour.prior_identities(tour.shipped_priors())
    coverage = tour.prior_coverage(superset, "quick", tour.shipped_priors())
    extra = coverage.identities - len(priors)
    assert (coverage.priors, coverage.known, extra) == (len(priors), len(priors), 4)  # the 4 synthetic train ids
    assert coverage.known_images == coverage.images - 4 * 10
    assert coverage.sentence().startswith(f"The identity priors know {len(priors)} of the {len(priors) + 4} "
                                          "training identities of this data")
    assert "the other 4 get the reconstruction terms only" in coverage.sentence()
    for preset in (tour.PRETRAINED, "quick"):
        assert tour.recognizers(superset, preset)[0] == tour.shipped_priors()
    assert no_training == []
    ids, hr, labels = tour.known_faces(superset, "quick", tour.shipped_priors(), n=16)
    assert hr.shape == (16, 3, 192, 192) and {ids[k] for k in labels.tolist()} <= set(priors)


@shipped_priors
def test_data_the_priors_do_not_know_is_said_in_one_sentence(synthetic_faces, no_training):
    """Synthetic faces: no identity the priors know, which the sentence says instead of a zero identity
    loss; quick mode trains its own priors on them (notebook 03's run); no known face to show."""
    coverage = tour.prior_coverage(synthetic_faces, tour.PRETRAINED, tour.shipped_priors())
    assert (coverage.known, coverage.identities) == (0, 4)
    assert coverage.sentence().startswith("The identity priors know none of the 4 training identities of this data")
    assert tour.known_faces(synthetic_faces, tour.PRETRAINED, tour.shipped_priors())[1].shape[0] == 0
    tour.recognizers(synthetic_faces, "quick")
    assert no_training == [synthetic_faces]


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    """A folder of one's own that is too small for the quick universe: 8 identities of 8 images each."""
    from csrip_lib.data.faces import make_synthetic_faces
    return make_synthetic_faces(tmp_path_factory.mktemp("small") / "faces", SYNTHETIC, 8, seed=0, progress=False)


@shipped_priors
def test_a_small_folder_of_ones_own_is_said_in_one_sentence_not_an_error(small_folder):
    """A user's own folder where no identity has the quick universe's 10 images (8 each here): pretrained
    notebook 05 used to stop with "no identity with >= 10 images"; now the coverage is empty, its sentence
    says why there is no identity term, and there is no known face."""
    coverage = tour.prior_coverage(small_folder, tour.PRETRAINED, tour.shipped_priors())
    assert (coverage.identities, coverage.known, coverage.images) == (0, 0, 0)
    assert coverage.sentence().startswith("This data has no training identity with enough images")
    assert not coverage.mostly_known
    ids, hr, labels = tour.known_faces(small_folder, tour.PRETRAINED, tour.shipped_priors())
    assert ids == [] and hr.shape == (0, 3, 192, 192) and labels.numel() == 0


@pytest.mark.slow
@shipped_priors
@pytest.mark.skipif(not all(map(tour.has_shipped, tour.SHIPPED_PAIR.values())), reason="no shipped models")
def test_pretrained_notebook_05_on_faces_the_priors_do_not_know(synthetic_faces, tmp_path, monkeypatch):
    """The pretrained tour's notebook 05 on synthetic faces: it says that the priors know none of them and
    leaves the identity panel out, so no "0.000 -> 0.000" identity finding and no alpha slider appear."""
    import nbformat

    from csrip_lib.tutorial.notebook_runner import find_notebooks, run_notebook

    monkeypatch.setenv("CSRIP_DATA", str(synthetic_faces))
    monkeypatch.setenv("CSRIP_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("CSRIP_RUNS", str(tmp_path / "runs"))
    (path,) = find_notebooks(only="05_")
    out = run_notebook(path, tmp_path / "build", {"PRESET": tour.PRETRAINED, "MAX_IMAGES": 8})
    executed = nbformat.read(out, as_version=4)
    text = "\n".join(o.get("text", "") for c in executed.cells for o in c.get("outputs", []))
    widgets = [o for c in executed.cells for o in c.get("outputs", [])
               if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    sentence = "The identity priors know none of the 4 training identities of this data"
    assert text.count(sentence) == 2  # under the priors' table, and where the alpha explorer would be
    assert "The alpha explorer is left out." in text
    assert " -> " not in text and "train ce" not in text and not widgets
    assert not (tmp_path / "runs").exists()  # pretrained: nothing trained
