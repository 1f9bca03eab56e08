"""results/ and `csrip reproduce` (issue 20): every published table is a file with provenance, one command
remakes it, and README.md, docs/*.md and checkpoints/MODEL_CARD.md show exactly what results/ renders."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from csrip_lib.cli import main as cli_main
from csrip_lib.core import results
from csrip_lib.core.config import project_root
from csrip_lib.core.console import CSRIPError
from csrip_lib.data.faces import FaceFolder
from csrip_lib.models.registry import load_sr

from test_train_sr import write_recognizers

TOY = ["--preset", "tiny", "--max-steps", "1", "--batch-size", "4", "--device", "cpu"]
TOY2 = [*TOY[:3], "2", *TOY[4:]]  # Table 1: SRGAN's two stages need a step each


def a_result(folder: Path, psnr: float = 25.5) -> list[Path]:
    """A made-up default-model result (the test's own numbers) in `folder`."""
    t = pd.DataFrame({"model": ["bicubic", "csrip-quick"], "images": [10, 10], "psnr": [22.4, psnr],
                      "ssim": [0.66, 0.75], "dpsnr": [None, psnr - 22.4], "dpsnr_low": [None, 2.9],
                      "dpsnr_high": [None, 3.2], "dssim": [None, 0.09], "dssim_low": [None, 0.08],
                      "dssim_high": [None, 0.1], "configuration": [None, "C+SSIM+M"], "steps": [None, 425],
                      "batch_size": [None, 16]})
    prov = results.provenance("csrip reproduce default-model --force", time.time() - 90, results.git_state(),
                              models=["csrip-quick"], compare_to="csrip-quick", judge="none",
                              test_data={"images": 10, "identities": 4, "sha256": "0123"})
    return results.write(folder, "default-model", {"": t}, prov, force=True)


def test_render_fills_each_block_and_a_hand_edit_makes_the_document_stale(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text("# title\n\n<!-- results:default-model -->\nold typed numbers\n<!-- /results:default-model -->\n"
                   "text between\n<!-- results:table2 -->\n<!-- /results:table2 -->\nend\n")
    folder = tmp_path / "results"
    a_result(folder)
    assert results.stale_docs(folder, tmp_path) == [doc]
    assert results.render_docs(folder, tmp_path) == [doc]
    text = doc.read_text()
    assert text.startswith("# title\n\n<!-- results:default-model -->\n") and "text between\n" in text
    assert "old typed numbers" not in text
    assert "| `csrip-quick` (C+SSIM+M, 425 steps of batch 16) | 25.50 | 0.750 | +3.10 [+2.90, +3.20] |" in text
    assert "`csrip reproduce default-model --force`" in text
    assert "<!-- results:table2 -->\nnot measured yet: run `csrip reproduce table2`\n<!-- /results:table2 -->" in text
    assert results.stale_docs(folder, tmp_path) == []
    doc.write_text(text.replace("25.50", "25.60"))  # a number typed over the rendered one
    assert results.stale_docs(folder, tmp_path) == [doc]
    results.render_docs(folder, tmp_path)
    a_result(folder, psnr=26.0)  # a new measurement
    assert results.stale_docs(folder, tmp_path) == [doc]
    page = tmp_path / "docs" / "results.md"  # a docs/ page is rendered like the README
    page.parent.mkdir()
    page.write_text("<!-- results:default-model -->\n<!-- /results:default-model -->\n")
    assert results.render_docs(folder, tmp_path) == [doc, page] and "| `csrip-quick` (" in page.read_text()
    doc.write_text("<!-- results:table1 -->\nno closing marker\n")
    with pytest.raises(CSRIPError, match="closing marker"):
        results.stale_docs(folder, tmp_path)


def test_the_committed_readme_and_model_card_are_rendered_from_results():
    root = project_root()
    assert results.stale_docs() == [], "a results block differs from results/: run `csrip reproduce --render`"
    readme, card = root / "README.md", root / "checkpoints/MODEL_CARD.md"
    docs = readme.read_text() + "".join(p.read_text() for p in sorted((root / "docs").glob("*.md")))
    for name in ("table1", "table2", "default-model", "recognizers-quick"):
        assert docs.count(f"<!-- results:{name} -->") == 1, name  # each block shown once, README or docs/
    assert "<!-- results:default-model -->" in readme.read_text()  # the first screen's results
    for name in ("default-model", "recognizers-quick", "table1-models"):
        assert f"<!-- results:{name} -->" in card.read_text(), name
    assert cli_main(["reproduce", "--render", "--check"]) == 0


def test_a_result_is_never_overwritten_without_force(tmp_path, synthetic_root, capsys):
    a_result(tmp_path)
    before = (tmp_path / "default-model.json").read_text()
    assert cli_main(["reproduce", "default-model", "--data", str(synthetic_root), "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "default-model.json").read_text() == before
    assert cli_main(["reproduce", "table9", "--out", str(tmp_path)]) == 2


def test_training_sittings_record_the_code_the_process_first_read_not_a_later_checkout(tmp_path):
    """A long `csrip reproduce` starts its runs one after another: a checkout (or edit) of the tree meanwhile
    must not label the runs it starts later with code the process never imported (`results.code_state`)."""
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    (repo / "a.py").write_text("x = 1\n")
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "a.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    first = results._first_state(repo)
    (repo / "a.py").write_text("x = 2\n")  # the tree moves on while the process runs
    assert results.git_state(repo)["dirty"] and results._first_state(repo) == first and not first["dirty"]
    assert results.code_state() == results.code_state() and "commit" in results.code_state()


def test_a_result_records_the_code_it_started_with_not_edits_made_while_it_ran(tmp_path, monkeypatch):
    """The commit and dirty flag are taken when `csrip reproduce` starts: a tree edited (or a commit made)
    during a long measurement is not the code that measured, and must not be recorded as it."""
    from csrip_lib import reproduce

    states = iter([{"commit": "a" * 40, "dirty": False}])  # at the start; every later look: edited
    monkeypatch.setattr(results, "git_state", lambda root=None: next(states, {"commit": "b" * 40, "dirty": True}))

    def measure(root, args):  # the stand-in measurement, during which the tree is edited
        assert results.git_state()["dirty"], "the state was not taken before measuring"
        return {"": pd.DataFrame({"model": ["bicubic"], "psnr": [22.4]})}, {}

    monkeypatch.setitem(reproduce.MEASURE, "default-model", measure)
    (tmp_path / "faces").mkdir()
    out = tmp_path / "res"
    assert cli_main(["reproduce", "default-model", "--data", str(tmp_path / "faces"), "--out", str(out)]) == 0
    prov = results.read(out, "default-model")[1]
    assert (prov["commit"], prov["dirty"]) == ("a" * 40, False)


def test_reproduce_default_model_scores_shipped_models_against_bicubic(tmp_path, synthetic_root):
    out = tmp_path / "res"
    args = ["reproduce", "default-model", "--data", str(synthetic_root), "--out", str(out), "--max-images", "6",
            "--no-identity", "--device", "cpu"]
    assert cli_main([*args, "--models", "csrip-quick", "c-ssim-m-quick", "--compare-to", "nobody"]) == 2
    assert cli_main([*args, "--models", "csrip-quick", "c-ssim-m-quick"]) == 0
    (t, paired), prov = (lambda r: ((r[0][""], r[0]["paired"]), r[1]))(results.read(out, "default-model"))
    assert list(t["model"]) == ["bicubic", "csrip-quick", "c-ssim-m-quick"]
    assert t.set_index("model").loc["csrip-quick", ["configuration", "steps"]].tolist() == ["C+SSIM+M", 425]
    assert t.set_index("model").loc["csrip-quick", "paper_dpsnr"] == pytest.approx(26.4511 - 24.256)  # like with like
    assert set(paired["model"]) == {"c-ssim-m-quick"} and prov["test_data"]["images"] == 6
    assert "not measured" not in results.render_block("default-model", out)


@pytest.mark.slow
def test_reproduce_table2_writes_results_with_provenance_and_its_recorded_command_remakes_them(
        tmp_path, synthetic_root):
    priors = write_recognizers(tmp_path / "rec", FaceFolder(synthetic_root, "train", min_images=2).identities)
    out, runs = tmp_path / "results", tmp_path / "runs"
    assert cli_main(["reproduce", "table2", "--data", str(synthetic_root), "--out", str(out), "--runs", str(runs),
                     "--recognizers", str(priors), "--seeds", "0", "1", "--max-images", "8", *TOY]) == 0
    (tables, prov) = results.read(out, "table2")
    t, paired = tables[""], tables["paired"]
    trained = t.dropna(subset=["seed"])
    assert sorted(zip(trained["model"], trained["seed"])) == [("C+SSIM+M", 0), ("C+SSIM+M", 1), ("C-SRIP", 0),
                                                              ("C-SRIP", 1)]
    assert set(trained.loc[trained["model"] == "C-SRIP", "alpha"]) == {0.001} and t["psnr"].notna().sum() == 5
    assert {"psnr", "ssim"} <= set(paired["metric"]) and set(paired["model"]) == {"C-SRIP"}
    assert paired["per_seed"].str.count(";").eq(1).all() and paired["seed_sd"].notna().all()
    assert len(prov["commit"]) == 40 and isinstance(prov["dirty"], bool) and prov["preset"] == "tiny"
    assert prov["budget"] == {"steps": 1, "batch_size": 4, "validate_every": 1} and prov["seeds"] == [0, 1]
    assert prov["max_images"] == 8 and prov["test_data"]["images"] == 8 and prov["wall_s"] > 0
    assert prov["train_data"]["identities_sha256"] and prov["hardware"]["cores"] >= 1 and prov["torch"]
    assert prov["files"] == ["table2.csv", "table2_paired.csv", "table2_per_image.csv.gz"]
    assert prov["data"]["name"] is None and prov["data"]["root"] == str(synthetic_root)  # not a named subset
    assert sorted(prov["runs"]) == ["C+SSIM+M seed0", "C+SSIM+M seed1", "C-SRIP seed0", "C-SRIP seed1"]
    assert {r["sittings"][-1]["commit"] for r in prov["runs"].values()} == {prov["commit"]}
    block = results.render_block("table2", out)
    assert "not measured" not in block and "the scoring commit" in block
    from csrip_lib.reproduce import interval
    r = interval(out, "table2", "C-SRIP", "psnr", baseline="C+SSIM+M")
    assert r[["diff", "diff_low", "diff_high"]].tolist() == pytest.approx(paired.set_index("metric").loc[
        "psnr", ["diff", "diff_low", "diff_high"]].tolist(), rel=1e-5)  # the CSV keeps 6 digits

    command = shlex.split(prov["command"])  # as written, from the repository root
    assert command[:3] == ["csrip", "reproduce", "table2"] and "--force" in command
    lasts = {p: p.stat().st_mtime_ns for p in runs.rglob("last.pt")}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(project_root()), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "csrip_lib", *command[1:]], cwd=project_root(), env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    again = results.read(out, "table2")[1]
    assert again["command"] == prov["command"] and again["date"] >= prov["date"]
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("last.pt")} == lasts  # finished runs reused, not retrained
    assert (pd.read_csv(out / "table2.csv")["psnr"].dropna().to_numpy() ==
            pytest.approx(t["psnr"].dropna().to_numpy(), abs=1e-4))


@pytest.mark.slow
def test_reproduce_table1_trains_every_competitor_and_both_cascades_at_one_budget(tmp_path, synthetic_root,
                                                                                 monkeypatch, capsys):
    from csrip_lib.models.nbsrf import NBSRFConfig

    monkeypatch.setattr(NBSRFConfig, "preset", classmethod(lambda cls, name: cls(trees=2, max_depth=4, patches=2000)))
    priors = write_recognizers(tmp_path / "rec", FaceFolder(synthetic_root, "train", min_images=2).identities)
    out = tmp_path / "results"
    assert cli_main(["reproduce", "table1", "--data", str(synthetic_root), "--out", str(out), "--runs",
                     str(tmp_path / "runs"), "--recognizers", str(priors), "--max-images", "6", "--no-identity",
                     *TOY2]) == 0
    tables, prov = results.read(out, "table1")
    t = tables[""].set_index("model")
    srgan = "SRGAN-like (SqueezeNet content loss)"
    assert list(t.index) == ["bicubic", "NBSRF-like", "SRCNN", "VDSR", "lp-like (SRResNet, face-prior features)", srgan,
                             "URDGN", "C+SSIM+M", "C-SRIP"]
    assert t["psnr"].notna().all() and t.loc["C-SRIP", "paper_dpsnr"] == pytest.approx(27.1638 - 24.256)  # Table 2 gives the same C-SRIP to 4 decimals
    assert t.drop(index=["bicubic", "NBSRF-like", srgan])["kept_step"].eq(2).all()
    assert t.loc[srgan, "kept_step"] == 1  # the step of its adversarial stage, after one SRResNet step
    assert t.drop(index=["bicubic", "hr", "NBSRF-like"], errors="ignore")["params"].between(0.75 * 65793, 1.25 * 65793).all()
    assert (t.drop(index=["bicubic", "NBSRF-like"])[["gflop", "s_per_step"]] > 0).all().all()
    assert prov["budget"]["steps"] == 2 and prov["judge"].startswith("skipped")
    assert [r["stage"] for r in prov["runs"][srgan]["validation"]] == ["mse", "main"]  # one validation per stage
    assert prov["runs"]["SRCNN"]["validation"][-1]["step"] == 2
    assert (tmp_path / "runs" / "tiny-2x4" / "seed0" / "c_srip" / "best.pt").is_file()  # table2's seed 0 reuses it
    block = results.render_block("table1", out)
    assert "Clearly above bicubic" in block and "| GFLOP / face | train s / step |" in block

    # --ship exports exactly the measured runs, names them by one rule, records the command, replaces only with --force
    from csrip_lib.models import zoo
    home = tmp_path / "repo"
    monkeypatch.setattr(zoo, "CHECKPOINTS_DIR", home / "checkpoints")
    ship = ["reproduce", "table1", "--ship", "--out", str(out), "--runs", str(tmp_path / "runs"), *TOY2]
    assert cli_main([*ship[:-2], "--batch-size", "8"]) == 2  # not the budget results/table1 measured
    edited = shutil.copytree(out, tmp_path / "edited")  # a result that kept another step than the runs hold
    kept = pd.read_csv(edited / "table1.csv")
    kept.loc[kept["model"] == "SRCNN", "kept_step"] = 3
    kept.to_csv(edited / "table1.csv", index=False)
    assert cli_main([*ship[:3], "--out", str(edited), *ship[5:]]) == 2
    assert "not the measured run" in capsys.readouterr().err and not zoo.manifest()
    assert cli_main(ship) == 0
    manifest = zoo.manifest()
    assert sorted(manifest) == sorted(["nbsrf-like-tiny", "srcnn-tiny", "vdsr-tiny", "lp-tiny", "srgan-tiny",
                                       "urdgn-tiny", "c-ssim-m-tiny", "c-srip-tiny"])
    assert {e["command"] for e in manifest.values()} == {prov["command"]}
    assert manifest["c-srip-tiny"]["configuration"] == "C-SRIP"
    assert load_sr(zoo.resolve("c-srip-tiny")).description.startswith("c-srip-tiny")
    block = results.render_block("table1-models", out, root=home)
    assert "### srgan-tiny" in block and manifest["srgan-tiny"]["files"]["srgan-tiny.pt"] in block
    (home / "checkpoints" / "srcnn-tiny.pt").unlink()  # a name not shipped any more is not exported beside the others
    assert cli_main(ship) == 2 and not (home / "checkpoints" / "srcnn-tiny.pt").exists()  # already shipped: --force
    assert cli_main([*ship, "--force"]) == 0



def test_reproduce_table2_base_trains_the_pair_on_the_presets_own_schedule_with_partial_priors(
        tmp_path, synthetic_root, monkeypatch, capsys):
    """Issue 31: table2-base trains C+SSIM+M / C-SRIP per seed on its preset's own schedule (not the equal
    budget), with priors that know only some identities, records both, and ships seed 0's pair."""
    from dataclasses import replace

    from csrip_lib import reproduce
    from csrip_lib.core.checkpoint import load_checkpoint
    from csrip_lib.core.config import get_preset
    from csrip_lib.models import zoo

    ids = FaceFolder(synthetic_root, "train", min_images=2).identities
    priors = write_recognizers(tmp_path / "rec", ids[: len(ids) // 2])  # they know half the identities
    tiny = get_preset("tiny")
    own = replace(tiny, train_sr=replace(tiny.train_sr, epochs=2, steps_per_epoch=1, batch_size=4))
    monkeypatch.setattr(reproduce, "get_preset", lambda name: own)  # the base preset's schedule, in small
    monkeypatch.setattr(reproduce, "BASE", {"preset": "tiny", "recognizers": str(priors), "seeds": (0, 1)})
    out, runs = tmp_path / "results", tmp_path / "runs"
    base = ["reproduce", "table2-base", "--data", str(synthetic_root), "--out", str(out), "--runs", str(runs)]
    assert cli_main([*base, "--preset", "quick"]) == 2 and "takes no other --preset" in capsys.readouterr().err
    assert cli_main([*base, "--max-images", "8", "--no-identity", "--device", "cpu"]) == 0
    tables, prov = results.read(out, "table2-base")
    assert "budget" not in prov and prov["schedule"]["steps"] == 2 and prov["schedule"]["epochs"] == 2
    assert 0 < prov["priors_known_fraction"] < 1 and prov["seeds"] == [0, 1] and prov["preset"] == "tiny"
    assert sorted(prov["runs"]) == ["C+SSIM+M seed0", "C+SSIM+M seed1", "C-SRIP seed0", "C-SRIP seed1"]
    for seed in (0, 1):
        saved = load_checkpoint(runs / "tiny-own-schedule" / f"seed{seed}" / "c_srip" / "last.pt", kind="sr")
        assert saved["config"]["train"]["seed"] == seed and saved["config"]["train"]["epochs"] == 2
        assert saved["config"]["loss"]["alpha"] == 0.001
    command = shlex.split(prov["command"])
    assert command[2] == "table2-base" and not {"--preset", "--max-steps", "--batch-size"} & set(command)
    assert command[command.index("--seeds") + 1:command.index("--seeds") + 3] == ["0", "1"]
    block = results.render_block("table2-base", out)
    assert "preset's own schedule: 2 epochs of 1 Adam steps of batch 4" in block
    assert f"they know {prov['priors_known_fraction']:.0%} of the training images' identities" in block
    assert "Default model rule:" in block and "mean of seeds [95% CI over seeds]" in block
    short = results.render_block("table2-base-decision", out)  # the README's form
    assert short.count("\n| ") == len(tables["paired"]) + 1 and short.startswith(block.rsplit("\n\n", 1)[1])

    monkeypatch.setattr(zoo, "CHECKPOINTS_DIR", tmp_path / "repo" / "checkpoints")
    assert cli_main(["reproduce", "table2-base", "--ship", "--out", str(out), "--runs", str(runs)]) == 0
    manifest = zoo.manifest()
    assert sorted(manifest) == ["c-srip-tiny", "c-ssim-m-tiny"]
    assert {e["result"] for e in manifest.values()} == {"table2-base"}
    kept = tables[""].query("seed == 0").set_index("model")["kept_step"]
    assert load_checkpoint(zoo.resolve("c-srip-tiny"), kind="sr")["metrics"]["step"] == kept["C-SRIP"]
    cards = results.render_block("table2-base-models", out, root=tmp_path / "repo")
    assert "### c-srip-tiny" in cards and "Test split (results/table2-base)" in cards


def test_the_interval_over_seeds_is_a_t_interval_and_a_reading_needs_both_intervals():
    """Issue 31: per-seed differences +0.084, +0.226, +0.108 dB (Table 2's PSNR) give about [-0.05, +0.33]
    over seeds: a face-level interval above 0 no longer reads "higher"."""
    import numpy as np
    diffs = [0.084, 0.226, 0.108]
    mean, lo, hi = results.seed_interval(diffs)
    half = 4.302653 * np.std(diffs, ddof=1) / np.sqrt(3)  # t(0.975, 2 degrees of freedom)
    assert (mean, lo, hi) == pytest.approx((np.mean(diffs), np.mean(diffs) - half, np.mean(diffs) + half), rel=1e-5)
    assert np.isnan(results.seed_interval([0.1])[1])

    def paired(**rows):  # metric -> (face-level low, high, per-seed differences)
        return pd.DataFrame([{"model": "C-SRIP", "metric": m, "diff": float(np.mean(d)), "diff_low": lo,
                              "diff_high": hi, "per_seed": ";".join(map(str, d))} for m, (lo, hi, d) in rows.items()])

    shown = paired(psnr=(0.10, 0.20, [0.15, 0.16]), id_dist=(-0.01, 0.01, [0.0, 0.001]))
    assert results.seed_rows(shown).set_index("metric").loc["psnr", "reading"].startswith("higher (both")
    assert results.identity_prior_decision(shown)[0]
    noisy = paired(psnr=(0.10, 0.20, [0.084, 0.226, 0.108]))
    assert results.seed_rows(noisy)["reading"].iloc[0].startswith("not shown")
    assert not results.identity_prior_decision(noisy)[0]
    closer_but_worse = paired(psnr=(0.10, 0.20, [0.15, 0.16]), id_dist=(0.01, 0.02, [0.015, 0.016]))
    met, why = results.identity_prior_decision(closer_but_worse)  # id_dist: lower is closer, so higher is worse
    assert not met and why == "better on PSNR; worse on id_dist"
    committed = results.read(project_root() / "results", "table2")  # the review's finding
    assert results.seed_rows(committed[0]["paired"]).set_index("metric").loc["psnr", "reading"].startswith("not shown")
    assert results.render_decision(*committed).startswith("**Not met: at this scale the identity prior did not help")


def per_image_rows(models: list[str], seed: int = 0) -> pd.DataFrame:
    """Generated per-image scores: bicubic and `models` on 30 identities of 1-4 images, full precision."""
    import numpy as np
    rng = np.random.default_rng(seed)
    images = [(f"id{k:02d}/id{k:02d}_{j:04d}.jpg", f"id{k:02d}") for k in range(30) for j in range(1 + k % 4)]
    rows = []
    for g, m in enumerate(["bicubic", *models]):
        for image, ident in images:
            rows.append({"model": m, "image": image, "identity": ident, "psnr": 22.4 + 0.7 * g + rng.normal(0, 1),
                         "ssim": 0.66 + 0.03 * g + rng.normal(0, 0.02), "id_dist": 0.6 - 0.02 * g + rng.normal(0, .05),
                         "id_rank1": float(rng.random() < 0.3 + 0.1 * g), "id_match": 1.0, "id_failed": 0.0,
                         "id_auc": 0.9, "id_tar": 0.5})
    return pd.DataFrame(rows)


def test_one_command_recomputes_a_rendered_interval_from_the_per_image_file(tmp_path, capsys):
    """Issue 33: per-image rows are kept beside each summary, and `csrip reproduce --interval` remakes a rendered
    interval from them exactly (the summary is computed from the same rounded values the file holds)."""
    from csrip_lib import reproduce

    df = per_image_rows(["SRCNN", "C-SRIP"])
    kept = results.per_image(df)
    assert kept["psnr"].equals(kept["psnr"].round(4)) and "id_match" not in kept
    t = reproduce.summary(df.assign(**{c: kept[c] for c in results.PER_IMAGE}))  # as reproduce.score hands it on
    prov = results.provenance("csrip reproduce table1 --force", time.time() - 60, results.git_state(), preset="tiny",
                              budget={"steps": 1, "batch_size": 4, "validate_every": 1}, recognizers="rec", alpha=0.001,
                              bootstrap=reproduce.BOOTSTRAP, judge="none", runs={},
                              test_data={"images": 81, "identities": 30, "sha256": "0123"})
    written = results.write(tmp_path, "table1", {"": t, "per_image": kept}, prov)
    gz = tmp_path / "table1_per_image.csv.gz"
    assert gz in written and gz.stat().st_size < 20_000 and list(pd.read_csv(gz).columns) == list(kept.columns)
    block = results.render_block("table1", tmp_path)
    for model in ("SRCNN", "C-SRIP"):
        for metric, col, digits in (("psnr", "dpsnr", 2), ("ssim", "dssim", 3)):
            r = reproduce.interval(tmp_path, "table1", model, metric)
            row = t.set_index("model").loc[model]
            assert (r["diff"], r["diff_low"], r["diff_high"]) == (row[col], row[f"{col}_low"], row[f"{col}_high"])
            assert f"{r['diff']:+.{digits}f} [{r['diff_low']:+.{digits}f}, {r['diff_high']:+.{digits}f}]" in block
    assert cli_main(["reproduce", "--interval", "table1", "--out", str(tmp_path), "--model", "C-SRIP"]) == 0
    r = reproduce.interval(tmp_path, "table1", "C-SRIP", "psnr")
    assert f"[{r['diff_low']:+.6g}, {r['diff_high']:+.6g}]" in capsys.readouterr().out
    assert cli_main(["reproduce", "--interval", "table1", "--out", str(tmp_path), "--model", "VDSR"]) == 2
    assert cli_main(["reproduce", "--interval", "default-model", "--out", str(tmp_path), "--model", "x"]) == 2


def test_table1_says_where_a_row_not_above_bicubic_lost_from_its_validation_log():
    """Issue 32: a competitor below bicubic gets its measured account beside the table (first, kept and last
    validation; for SRGAN what the adversarial stage did to its MSE stage's SSIM); rows above bicubic get none."""
    from csrip_lib import reproduce

    srgan = "SRGAN-like (SqueezeNet content loss)"
    df = per_image_rows(["VDSR", srgan])
    df.loc[df["model"] == srgan, "ssim"] -= 0.2  # clearly below bicubic in SSIM
    t = reproduce.summary(df)
    t["kept_step"] = t["model"].map({"VDSR": 100, srgan: 100})
    curve = [{"stage": "mse", "step": 50, "val_psnr": 22.9, "val_ssim": 0.661},
             {"stage": "mse", "step": 100, "val_psnr": 23.1, "val_ssim": 0.665},
             {"stage": "main", "step": 50, "val_psnr": 23.0, "val_ssim": 0.640},
             {"stage": "main", "step": 100, "val_psnr": 23.2, "val_ssim": 0.632}]
    runs = {"VDSR": {"validation": curve[:2]}, srgan: {"validation": curve}}
    prov = {"budget": {"steps": 200, "batch_size": 4, "validate_every": 50}, "preset": "tiny", "recognizers": "rec",
            "hardware": {"cpu": "cpu", "cores": 2, "gpus": []}, "date": "2026-12-08", "wall_s": 60, "torch": "2",
            "command": "csrip reproduce table1", "commit": "abc1234", "judge": "none", "runs": runs,
            "test_data": {"images": 81, "identities": 30, "sha256": "0123"}}
    text = results.render_table1({"": t}, prov)
    assert f"not: {srgan}" in text and "- **VDSR**" not in text
    note = text.split(f"- **{srgan}**")[1]
    assert "first validation SSIM 0.640 / PSNR 23.00 dB at step 50" in note
    assert "kept SSIM 0.632 / PSNR 23.20 dB at step 100" in note
    assert "ended at SSIM 0.665 / PSNR 23.10 dB at step 100; the adversarial stage from it lowered validation " \
           "SSIM by 0.033" in note and "still rising" not in note  # it fell at its last validation
    curve[-1]["val_ssim"] = 0.650  # now it rises to the end, and its last step is the kept one
    assert "still rising when the budget ended (+0.010 over" in results.render_table1({"": t}, prov)


def test_table2s_pooled_interval_is_recomputed_from_its_per_image_file(tmp_path):
    from csrip_lib import reproduce

    full = per_image_rows([f"{m} seed{s}" for s in (0, 1) for m in reproduce.PAIR])
    df = results.per_image(full)
    per_seed = reproduce.summary(full.assign(**{c: df[c] for c in results.PER_IMAGE})).drop(columns="auc")
    pooled = reproduce.pooled(df, [0, 1], per_seed)
    prov = {"command": "csrip reproduce table2", "seeds": [0, 1]}
    results.write(tmp_path, "table2", {"": per_seed, "paired": pooled, "per_image": df}, prov)
    r = reproduce.interval(tmp_path, "table2", "C-SRIP", "ssim", baseline="C+SSIM+M")
    row = pooled.set_index("metric").loc["ssim"]
    assert (r["diff"], r["diff_low"], r["diff_high"]) == (row["diff"], row["diff_low"], row["diff_high"])
    one = reproduce.interval(tmp_path, "table2", "C-SRIP seed1", "psnr", baseline="C+SSIM+M seed1")
    assert one["diff"] == pytest.approx(float(pooled.set_index("metric").loc["psnr", "per_seed"].split(";")[1]),
                                        rel=1e-5)


def test_the_rendered_paragraph_lists_the_faces_by_name_and_says_which_runs_another_commit_trained(tmp_path):
    a_result(tmp_path)
    prov = json.loads((tmp_path / "default-model.json").read_text())
    scoring = prov["commit"] or "f" * 40
    sitting = {"command": "csrip train-sr --preset quick", "dirty": False, "date": "2026-12-01 10:00 UTC",
               "hardware": {"cpu": "x", "cores": 2}, "torch": "2"}
    prov.update(commit=scoring, data={"name": "lfw-dev", "sha256": "f094c1c0d06c2183" + "0" * 48},
                runs={"csrip-quick": {"sittings": [{**sitting, "commit": scoring}], "wall_s": 60.0},
                      "csrip-base": {"sittings": [{**sitting, "commit": "1234567" + "0" * 33}], "wall_s": 60.0},
                      "old": {"checkpoint": "old.pt"}})
    (tmp_path / "default-model.json").write_text(json.dumps(prov))
    block = results.render_block("default-model", tmp_path)
    assert "of `lfw-dev` (content sha256 f094c1c0d06c2183" in block
    assert f"csrip-quick were trained at {scoring[:7]}, the scoring commit" in block
    assert f"csrip-base were trained at 1234567, not the scoring commit {scoring[:7]}" in block
    assert "old recorded no provenance" in block


def test_csrip_demo_records_its_notebook_times_as_a_result_the_readme_renders(tmp_path):
    """Issue 33: tour times come from a file `csrip demo --record` writes (date, commit, machine, load), never typed."""
    from csrip_lib.tutorial.notebook_runner import record_times

    assert results.render_block("tour-quick", tmp_path) == \
        "not measured yet: run `csrip demo --preset quick --record results`"
    git = {"commit": "c" * 40, "dirty": False}
    record_times(tmp_path, "quick", [("01_degradation_model.ipynb", 31.4, 20.2), ("02_residual_images.ipynb", 9.6, 7.1)],
                 time.time() - 45, git, (1.5, 0.75, 0.25))
    block = results.render_block("tour-quick", tmp_path)
    assert "| 01_degradation_model.ipynb | 31 | 20 |" in block and "| all | 41 | 27 |" in block
    assert "commit ccccccc" in block and "load average 1.5 / 0.75 / 0.25" in block
    assert results.read(tmp_path, "tour-quick")[1]["hardware"]["cores"] >= 1
