"""Faults and bad input, third round (issue 36): a hostile round of 79 cases found 18 defect classes on
62f2f71. One test (or a few) per class, numbered as in the issue; each fails on 62f2f71.

The rules they check, each in one place: every output through `core.outputs` (refused without --force,
never written through a link, atomic, several files as one); a `~` the shell left expanded once in
`cli`; names read from result JSON and the manifest confined to their folder and schema-checked with a
one-line error; checkpoint sizes and strings bounded before any allocation; children that die with their
parent; a locked manifest update; bounded extraction; unique output names; an escaping, validating
renderer. Everything is tiny and synthetic: no training, no real faces.
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from csrip_lib.cli import main
from csrip_lib.core import results
from csrip_lib.core.console import CSRIPError
from csrip_lib.core.outputs import check_dir
from csrip_lib.data.faces import make_synthetic_faces
from csrip_lib.models import zoo

from test_faults import assert_one_line_error, cli, tiny_sr_checkpoint


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> Path:
    """A tiny synthetic face folder: enough for a bicubic-only `evaluate --max-images 2`."""
    return make_synthetic_faces(tmp_path_factory.mktemp("faces") / "f", 6, 3, seed=0, progress=False)


def result_tables(psnr: float = 25.5, model: str = "csrip-quick") -> dict[str, pd.DataFrame]:
    return {"": pd.DataFrame({"model": ["bicubic", model], "images": [4, 4], "psnr": [22.4, psnr],
                              "ssim": [0.66, 0.75], "dpsnr": [None, psnr - 22.4], "dpsnr_low": [None, 2.9],
                              "dpsnr_high": [None, 3.2], "dssim": [None, 0.09], "dssim_low": [None, 0.08],
                              "dssim_high": [None, 0.1], "configuration": [None, "C+SSIM+M"],
                              "steps": [None, 425], "batch_size": [None, 16]})}


def result_prov(**extra) -> dict:
    return results.provenance("csrip reproduce default-model --force", time.time() - 60,
                              {"commit": "0" * 40, "dirty": False}, models=["csrip-quick"],
                              compare_to="csrip-quick", judge="none",
                              test_data={"images": 4, "identities": 2, "sha256": "0123"}, **extra)


# -- 1. reproduce --force deleted whatever the old result JSON listed under "files", anywhere on disk
def test_a_forced_result_never_deletes_files_its_old_json_names_outside_its_own(tmp_path):
    folder, victims = tmp_path / "res", tmp_path / "victims"
    victims.mkdir()
    (victims / "thesis.txt").write_text("years of work")
    (victims / "abs.txt").write_text("also mine")
    results.write(folder, "default-model", result_tables(), result_prov())
    sidecar = folder / "default-model.json"
    prov = json.loads(sidecar.read_text())
    prov["files"] = ["default-model.csv", "../victims/thesis.txt", str(victims / "abs.txt")]
    sidecar.write_text(json.dumps(prov))
    with pytest.raises(CSRIPError, match="among its files"):
        results.write(folder, "default-model", result_tables(26.0), result_prov(), force=True)
    assert (victims / "thesis.txt").read_text() == "years of work" and (victims / "abs.txt").exists()


def test_a_forced_result_still_removes_its_own_stale_tables(tmp_path):
    folder = tmp_path / "res"
    results.write(folder, "default-model", {**result_tables(), "paired": pd.DataFrame({"x": [1]})}, result_prov())
    results.write(folder, "default-model", result_tables(26.0), result_prov(), force=True)
    assert sorted(p.name for p in folder.iterdir()) == ["default-model.csv", "default-model.json"]


# -- 2. a literal `~` (bash leaves --out=~/x alone) bypassed every check
def test_a_tilde_the_shell_left_is_expanded_once_for_checks_and_writes(faces, tmp_path, capsys, monkeypatch):
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir(), cwd.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    (home / "r.csv").write_text("my results")
    code, err = cli(["evaluate", "--data", str(faces), "--out=~/r.csv", "--max-images", "2", "--no-identity",
                     "--device", "cpu", "--workers", "0"], capsys)
    assert_one_line_error(code, err, "pass --force")
    assert (home / "r.csv").read_text() == "my results" and list(cwd.iterdir()) == []
    src = tiny_sr_checkpoint(tmp_path / "run" / "best.pt")
    assert main(["export", str(src), "--name", "m", "--dest=~/ck"]) == 0
    assert (home / "ck" / "m.pt").is_file() and list(cwd.iterdir()) == []  # no folder literally named "~"


def test_the_library_refuses_a_literal_tilde_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CSRIPError, match="literal '~'"):
        check_dir("~/runs/x")
    assert list(tmp_path.iterdir()) == []


# -- 3. writers that skipped the output rule: reproduce, evaluate's siblings, ablation, demo
def test_a_result_never_overwrites_a_users_table_or_writes_through_a_link(tmp_path):
    folder, outside = tmp_path / "res", tmp_path / "outside.txt"
    folder.mkdir()
    (folder / "default-model.csv").write_text("my own table")
    with pytest.raises(CSRIPError, match="pass --force"):
        results.check_writable(folder, "default-model")
    with pytest.raises(CSRIPError, match="pass --force"):
        results.write(folder, "default-model", result_tables(), result_prov())
    assert (folder / "default-model.csv").read_text() == "my own table"
    (folder / "default-model.csv").unlink()
    (folder / "default-model.csv").symlink_to(outside)  # dangling: its target does not exist
    with pytest.raises(CSRIPError, match="pass --force"):
        results.write(folder, "default-model", result_tables(), result_prov())
    results.write(folder, "default-model", result_tables(), result_prov(), force=True)
    assert not outside.exists() and not (folder / "default-model.csv").is_symlink()


def test_evaluate_checks_its_paired_sibling_before_work_even_a_dangling_link(faces, tmp_path, capsys):
    out, outside = tmp_path / "r.csv", tmp_path / "outside.csv"
    (tmp_path / "r_paired.csv").symlink_to(outside)
    code, err = cli(["evaluate", "--data", str(faces), "--out", str(out), "--compare-to", "bicubic",
                     "--max-images", "2", "--no-identity", "--device", "cpu", "--workers", "0"], capsys)
    assert_one_line_error(code, err, "pass --force")
    assert not outside.exists() and not out.exists()


def test_ablation_keeps_existing_tables_and_says_so_before_training(faces, tmp_path, monkeypatch):
    from csrip_lib.training import ablation

    def no_training(*a, **k):
        raise AssertionError("trained before checking the outputs")
    monkeypatch.setattr(ablation, "train_variants", no_training)
    (tmp_path / "table2.csv").write_text("my table")
    with pytest.raises(CSRIPError, match="pass --force"):
        ablation.run_ablation(faces, "tiny", tmp_path, experiment="table2", alpha=0.0, progress=False)
    assert (tmp_path / "table2.csv").read_text() == "my table"


def test_demo_out_keeps_executed_copies_and_never_targets_the_source_notebooks(tmp_path, capsys, monkeypatch):
    from csrip_lib.core.config import project_root
    from csrip_lib.tutorial import notebook_runner

    def no_kernel(*a, **k):
        raise AssertionError("ran a notebook before checking the outputs")
    monkeypatch.setattr(notebook_runner, "run_notebook", no_kernel)
    monkeypatch.setenv("CSRIP_FIGURES", str(tmp_path / "figures"))
    nb = notebook_runner.find_notebooks(only="01")[0]
    code, err = cli(["demo", "--only", "01", "--out", str(project_root() / "notebooks"), "--data", "x"], capsys)
    assert_one_line_error(code, err, "source notebooks")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / nb.name).write_text("my executed copy")
    code, err = cli(["demo", "--only", "01", "--out", str(tmp_path / "out"), "--data", "x"], capsys)
    assert_one_line_error(code, err, "pass --force")
    assert (tmp_path / "out" / nb.name).read_text() == "my executed copy"


# -- 4. reproduce --render --out <a folder that does not exist> replaced every result with "not measured yet"
def test_render_from_a_missing_results_folder_is_refused(tmp_path, capsys):
    doc = tmp_path / "README.md"
    doc.write_text("<!-- results:default-model -->\nthe measured table\n<!-- /results:default-model -->\n")
    with pytest.raises(CSRIPError, match="does not exist"):
        results.render_docs(tmp_path / "typo", tmp_path)
    assert "the measured table" in doc.read_text()
    code, err = cli(["reproduce", "--render", "--check", "--out", str(tmp_path / "typo")], capsys)
    assert_one_line_error(code, err, "does not exist")


# -- 5. four exports into one --dest at once: all printed "recorded", the manifest kept three
def test_concurrent_exports_each_record_their_model(tmp_path, monkeypatch):
    src, dest = tiny_sr_checkpoint(tmp_path / "run" / "best.pt"), tmp_path / "ck"
    slow = zoo.atomic_write

    def slow_write(path, write):  # widens the read-modify-write window, as a busy disk does
        if Path(path).name == zoo.MANIFEST:
            time.sleep(0.3)
        return slow(path, write)
    monkeypatch.setattr(zoo, "atomic_write", slow_write)
    errors = []

    def export(name: str) -> None:
        try:
            zoo.export(src, name, root=dest)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
    threads = [threading.Thread(target=export, args=(f"m{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and zoo.available(root=dest) == ["m0", "m1", "m2", "m3"]


# -- 6. a reproduce that failed between the CSVs and the JSON left new CSVs beside the old JSON
def test_a_result_write_that_fails_leaves_the_old_result_whole(tmp_path):
    folder = tmp_path / "res"
    results.write(folder, "default-model", result_tables(), result_prov())
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(TypeError):
        results.write(folder, "default-model", result_tables(30.0), result_prov(bad=object()), force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temporary files either


# -- 7. manifest paths were not confined to checkpoints/, and an entry with no files loaded unchecked
@pytest.mark.parametrize("entry", [
    {"kind": "sr", "path": "../../outside.pt", "files": {}},
    {"kind": "sr", "path": "../outside.pt", "files": {"../outside.pt": "0" * 64}},
    {"kind": "sr", "path": "/abs/outside.pt", "files": {"/abs/outside.pt": "0" * 64}},
    {"kind": "sr", "path": "m.pt", "files": {}},
])
def test_manifest_paths_stay_inside_checkpoints_and_every_file_is_checksummed(entry, tmp_path, capsys):
    dest = tmp_path / "checkpoints"
    dest.mkdir()
    tiny_sr_checkpoint(tmp_path / "outside.pt")
    tiny_sr_checkpoint(dest / "m.pt")
    (dest / "manifest.json").write_text(json.dumps({"format": 1, "models": {"m": entry}}))
    with pytest.raises(CSRIPError, match="manifest.json: entry 'm'"):
        zoo.resolve("m", root=dest)
