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


quick_pair = pytest.mark.skipif(not all(map(tour.has_shipped, tour.shipped_pair("quick").values())),
                                reason="no shipped quick pair")
base_pair = pytest.mark.skipif(not all(map(tour.has_shipped, tour.shipped_pair(tour.PRETRAINED).values())),
                               reason="no shipped base pair (issue 31)")


def test_pretrained_shows_the_base_pair_and_quick_the_quick_one():
    """Notebooks 05 and 06: "pretrained" is issue 31's base-scale pair with recognizers-base and results/table2-base,
    "quick" the quick pair with recognizers-quick and results/table2; data sizes and Table 1 stay quick."""
    assert tour.shipped_pair(tour.PRETRAINED) == {"C+SSIM+M": "c-ssim-m-base", "C-SRIP": "c-srip-base"}
    assert tour.shipped_pair("quick") == {"C+SSIM+M": "c-ssim-m-quick", "C-SRIP": "c-srip-quick"}
    assert (tour.priors_name(tour.PRETRAINED), tour.priors_name("quick")) == ("recognizers-base", "recognizers-quick")
    assert (tour.pair_result(tour.PRETRAINED), tour.pair_result("quick")) == ("table2-base", "table2")
    assert tour.model_preset(tour.PRETRAINED) == "quick" and tour.pair_preset(tour.PRETRAINED) == "base"
    assert set(tour.SHIPPED_TABLE1.values()) >= set(tour.shipped_pair("quick").values())  # Table 1: quick models
    assert tour.pair_checkpoints("small") == {}  # another preset trains its own pair


@base_pair
def test_pretrained_notebook_06_uses_the_shipped_base_pair_and_trains_nothing(tmp_path, capsys):
    paths = tour.table2_checkpoints(tmp_path / "data-unused", tour.PRETRAINED, tmp_path / "runs", train=True)
    assert paths == {"C+SSIM+M": tour.shipped("c-ssim-m-base"), "C-SRIP": tour.shipped("c-srip-base")}
    assert not (tmp_path / "runs").exists()  # nothing trained, nothing written
    assert "C-SRIP: shipped c-srip-base" in capsys.readouterr().out


@quick_pair
def test_quick_notebook_06_keeps_the_shipped_quick_pair(tmp_path, capsys):
    paths = tour.table2_checkpoints(tmp_path / "data-unused", "quick", tmp_path / "runs", train=False)
    assert paths == {"C+SSIM+M": tour.shipped("c-ssim-m-quick"), "C-SRIP": tour.shipped("c-srip-quick")}
    assert "C-SRIP: shipped c-srip-quick" in capsys.readouterr().out


@base_pair
def test_the_shipped_base_pair_differs_only_in_alpha_and_was_trained_with_recognizers_base():
    """What pretrained mode shows as Table 2's pair: two `base` cascades with the same training, C+SSIM+M at
    alpha 0 and C-SRIP at 0.001 with the priors `recognizers-base`, which section 5's explorer uses with the
    loss C-SRIP was trained with (`trained_loss`)."""
    from csrip_lib import load_recognizers
    from csrip_lib.core.checkpoint import load_checkpoint
    from csrip_lib.models.registry import variant
    from csrip_lib.training.sr import priors_record

    pair = tour.pair_checkpoints(tour.PRETRAINED)
    configs = {name: load_checkpoint(path, kind="sr")["config"] for name, path in pair.items()}
    assert {name: variant(c) for name, c in configs.items()} == {"C+SSIM+M": ("C+SSIM+M", 0.0),
                                                                 "C-SRIP": ("C-SRIP", 0.001)}
    a, b = configs.values()
    assert a["preset"] == b["preset"] == "base"
    for key in ("sr", "train", "degradation", "identities"):
        assert a[key] == b[key], key
    assert {k: v for k, v in a["loss"].items() if k != "alpha"} == {k: v for k, v in b["loss"].items() if k != "alpha"}
    assert tour.priors_name(tour.PRETRAINED) == "recognizers-base" and a["recognizers"] is None
    assert b["recognizers"] == priors_record(load_recognizers(tour.shipped_priors(tour.PRETRAINED)))  # by content
    assert tour.trained_loss(pair["C-SRIP"]).alpha == 0.001 and tour.trained_loss(pair["C+SSIM+M"]).alpha == 0


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
def test_notebook_06_loads_each_table1_model_once_beside_the_quick_pair(tmp_path, capsys):
    """Notebook 06 scores every model in one pass: with the shipped quick pair as its Table 2 models (quick
    mode), Table 1 reads C+SSIM+M and C-SRIP from the very same files and loads only the six competitors. A
    C-SRIP given by hand does not become Table 1's row: Table 1's own is scored beside it as "C-SRIP (quick)".
    A given model trained under another degradation keeps Table 1's models out (they cannot share its LR
    input). Printed lines say both."""
    table1 = tour.table1_checkpoints(tour.PRETRAINED, tmp_path / "runs")
    pair = tour.table2_checkpoints(tmp_path, "quick", tmp_path / "runs", train=False)
    capsys.readouterr()
    rows, competitors = tour.table1_models(table1, pair)
    assert rows == ["bicubic", *table1] and list(competitors) == list(COMPETITOR_NAMES)
    assert all(model.degradation == DegradationConfig() for model in competitors.values())
    assert capsys.readouterr().out == ""

    mine = _tiny_cascade(tmp_path / "mine.pt")
    rows, competitors = tour.table1_models(table1, {**pair, "C-SRIP": mine})
    assert rows == ["bicubic", *COMPETITOR_NAMES, "C+SSIM+M", "C-SRIP (quick)"]
    assert list(competitors) == [*COMPETITOR_NAMES, "C-SRIP (quick)"]
    assert competitors["C-SRIP (quick)"].description.startswith("c-srip-quick: quick cascade")
    assert f"the given C-SRIP ({mine}) is scored beside it, not in Table 1" in capsys.readouterr().out

    rows, competitors = tour.table1_models(table1, {"C-SRIP": _tiny_cascade(tmp_path / "blurry.pt", sigma=0.5)})
    assert rows == ["bicubic"] and competitors == {}
    printed = capsys.readouterr().out.splitlines()
    left_out = [line.removeprefix("Table 1's ").split(" left out: trained under")[0] for line in printed
                if "left out: trained under" in line]  # row names may hold spaces: "SRGAN-like (...)"
    assert left_out == list(table1) and len(printed) == len(left_out)  # C-SRIP's own too: none is the given file


@base_pair
@pytest.mark.skipif(not all(map(tour.has_shipped, tour.SHIPPED_TABLE1.values())), reason="Table 1 not shipped")
def test_pretrained_table1_keeps_its_quick_cascades_beside_the_base_pair(tmp_path, capsys):
    """Pretrained notebook 06: Table 2's C+SSIM+M / C-SRIP are the base pair, but Table 1's rows of those names
    stay the quick models `csrip reproduce table1` measured at one budget, scored under their own labels; no
    Table 1 row is a base model."""
    table1 = tour.table1_checkpoints(tour.PRETRAINED, tmp_path / "runs")
    pair = tour.table2_checkpoints(tmp_path, tour.PRETRAINED, tmp_path / "runs", train=False)
    capsys.readouterr()
    rows, extra = tour.table1_models(table1, pair)
    assert rows == ["bicubic", *COMPETITOR_NAMES, "C+SSIM+M (quick)", "C-SRIP (quick)"]
    assert list(extra) == rows[1:] and not set(rows) & set(pair)  # every row loaded here, none read from the pair
    assert extra["C-SRIP (quick)"].description.startswith("c-srip-quick: quick cascade")
    assert extra["C+SSIM+M (quick)"].description.startswith("c-ssim-m-quick: quick cascade")
    printed = capsys.readouterr().out
    for name in ("C+SSIM+M", "C-SRIP"):
        assert f"Table 1's {name} row is '{name} (quick)', {table1[name]}" in printed


def test_without_shipped_table1_notebook_06_scores_only_finished_runs(tmp_path):
    """Another preset: the runs of `csrip ablation --experiment table1` that have a best.pt, nothing trained."""
    srcnn = tmp_path / "ablation" / "srcnn" / "best.pt"
    srcnn.parent.mkdir(parents=True)
    srcnn.write_bytes(b"")
    assert tour.table1_checkpoints("small", tmp_path) == {"SRCNN": srcnn}


# ------------------------------------------------------------------ the identity priors on any data
# Notebook 05 looks the shipped priors' identity names (saved in their checkpoints) up in the user's data.
shipped_priors = pytest.mark.skipif(not all(tour.has_shipped(tour.priors_name(p), kind="recognizers")
                                            for p in ("quick", tour.PRETRAINED)), reason="no shipped recognizers")
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


@base_pair
def test_pretrained_notebook_05_uses_recognizers_base_over_the_base_presets_identities(lfw_root, no_training):
    """Pretrained notebook 05 shows the base pair's priors, recognizers-base, and counts the training identities
    the base pair trained on (every identity of the training split), not the quick universe's; notebook 03's
    pretrained priors stay recognizers-quick."""
    from csrip_lib.core.config import get_preset
    from csrip_lib.training.recognizers import training_folder

    folder, accuracy = tour.pair_recognizers(lfw_root, tour.PRETRAINED)
    assert folder == tour.shipped_priors(tour.PRETRAINED) == tour.shipped("recognizers-base", kind="recognizers")
    assert set(accuracy["identities"]) == {len(tour.prior_identities(folder))}
    assert tour.recognizers(lfw_root, tour.PRETRAINED)[0] == tour.shipped_priors() != folder
    coverage = tour.prior_coverage(lfw_root, tour.PRETRAINED, folder)
    base = training_folder(lfw_root, get_preset("base").selection)
    assert coverage.identities == len(set(base.labels)) and coverage.images == len(base.labels)
    assert coverage.identities > tour.prior_coverage(lfw_root, "quick", tour.shipped_priors()).identities
    assert coverage.known == coverage.priors  # the LFW development subset holds every identity they know
    ids, hr, labels = tour.known_faces(lfw_root, tour.PRETRAINED, folder, n=4)
    assert hr.shape == (4, 3, 192, 192) and {ids[k] for k in labels.tolist()} <= set(tour.prior_identities(folder))
    assert no_training == []


@shipped_priors
def test_data_the_priors_do_not_know_is_said_in_one_sentence(synthetic_faces, no_training):
    """Synthetic faces: no identity the priors know, which the sentence says instead of a zero identity
    loss; quick mode trains its own priors on them (notebook 03's run); no known face to show."""
    coverage = tour.prior_coverage(synthetic_faces, tour.PRETRAINED, tour.shipped_priors(tour.PRETRAINED))
    assert (coverage.known, coverage.identities) == (0, 4)
    assert coverage.sentence().startswith("The identity priors know none of the 4 training identities of this data")
    assert tour.known_faces(synthetic_faces, tour.PRETRAINED, tour.shipped_priors(tour.PRETRAINED))[1].shape[0] == 0
    tour.recognizers(synthetic_faces, "quick")
    assert no_training == [synthetic_faces]


@pytest.fixture(scope="module")
def small_folder(tmp_path_factory) -> Path:
    """A folder of one's own that is too small for the quick universe: 8 identities of 8 images each."""
    from csrip_lib.data.faces import make_synthetic_faces
    return make_synthetic_faces(tmp_path_factory.mktemp("small") / "faces", SYNTHETIC, 8, seed=0, progress=False)


@shipped_priors
def test_a_small_folder_of_ones_own_is_said_in_one_sentence_not_an_error(small_folder):
    """A user's own folder where no identity has the quick universe's 10 images (8 each here): notebook 05
    used to stop with "no identity with >= 10 images"; now the coverage is empty, its sentence says why
    there is no identity term, and there is no known face."""
    coverage = tour.prior_coverage(small_folder, "quick", tour.shipped_priors())
    assert (coverage.identities, coverage.known, coverage.images) == (0, 0, 0)
    assert coverage.sentence().startswith("This data has no training identity with enough images")
    assert not coverage.mostly_known
    ids, hr, labels = tour.known_faces(small_folder, "quick", tour.shipped_priors())
    assert ids == [] and hr.shape == (0, 3, 192, 192) and labels.numel() == 0


@pytest.mark.slow
@base_pair
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
