"""The named development subset (issue 33): the repository defines `lfw-dev` by the rule of
../shared/data/lfw_dev/MANIFEST.txt, `csrip data --subset dev` derives it from LFW and checks it by counts and
the content digest the repository stores, and `--data lfw-dev` names it."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest

from csrip_lib.cli import main as cli_main
from csrip_lib.core.config import project_root
from csrip_lib.core.console import CSRIPError
from csrip_lib.data import download, faces
from csrip_lib.data.faces import list_faces, resolve_data
from csrip_lib.data.subsets import LFW_DEV, NamedSubset, bucket, identify


def shared_lfw_dev() -> Path | None:
    """The LFW development subset of this machine ($CSRIP_DATA or ../shared/data/lfw_dev), if there is one."""
    here = project_root()
    for root in (os.environ.get("CSRIP_DATA"), here.parent / "shared/data/lfw_dev",
                 here.parent.parent / "shared/data/lfw_dev"):
        if root and (Path(root) / "SHA256SUMS.txt").is_file():
            return Path(root)
    return None


@pytest.mark.skipif(shared_lfw_dev() is None, reason="needs ../shared/data/lfw_dev (SHA256SUMS.txt, identities.tsv)")
def test_the_rule_counts_and_digest_the_repository_stores_are_those_of_the_shared_subset():
    root = shared_lfw_dev()
    threshold = re.search(r"% 1000 < (\d+)", (root / "MANIFEST.txt").read_text())
    assert threshold and int(threshold[1]) == LFW_DEV.held_back_below  # the MANIFEST's rule is ours
    rows = [line.split("\t") for line in (root / "identities.tsv").read_text().splitlines()[1:]]
    assert len(rows) == LFW_DEV.identities and sum(int(n) for _, n in rows) == LFW_DEV.images
    assert all(LFW_DEV.keeps(name) for name, _ in rows)  # not one identity the rule holds back
    sums = (root / "SHA256SUMS.txt").read_text().splitlines()
    assert hashlib.sha256("".join(f"{s}\n" for s in sorted(sums)).encode()).hexdigest() == LFW_DEV.sha256
    items = list_faces(root, progress=False)  # the image bytes themselves, hashed
    assert identify(root, items) == {"name": "lfw-dev", "images": 10_845, "identities": 4_741, "sha256": LFW_DEV.sha256}


@pytest.mark.skipif(shared_lfw_dev() is None, reason="needs ../shared/data/lfw_dev")
def test_lfw_dev_gives_the_identities_and_test_faces_the_published_results_used():
    """The identity universe the results trained on and the test faces they scored, by the digests results/ record."""
    import json

    from csrip_lib.core import results
    from csrip_lib.core.config import get_preset
    from csrip_lib.data.faces import FaceFolder, identities_digest

    root = shared_lfw_dev()
    prov = json.loads((project_root() / "results" / "table1.json").read_text())
    universe = FaceFolder.select(root, get_preset(prov["preset"]).selection).identities
    assert identities_digest(universe) == prov["train_data"]["identities_sha256"]
    test = FaceFolder(root, "test")
    assert results.digest([p.relative_to(root).as_posix() for p, _ in test.items]) == prov["test_data"]["sha256"]


NAMES = [f"Person_{k:02d}" for k in range(40)]


def lfw_like(folder: Path) -> Path:
    """A small 'LFW' folder: 40 identities, 1-3 files each (a JPEG header, then bytes that differ per file)."""
    for k, name in enumerate(NAMES):
        (folder / name).mkdir(parents=True)
        for j in range(1 + k % 3):
            (folder / name / f"{name}_{j + 1:04d}.jpg").write_bytes(b"\xff\xd8\xff" + f"{name} {j}".encode() * 50)
    return folder


def expected_subset(source: Path) -> NamedSubset:
    """The subset the rule gives of `source`, its digest computed here independently of the library."""
    kept = [n for n in NAMES if bucket(n) >= LFW_DEV.held_back_below]
    files = sorted(p for n in kept for p in (source / n).iterdir())
    lines = sorted(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.parent.name}/{p.name}" for p in files)
    return NamedSubset("toy-dev", "lfw-deepfunneled", len(files), len(kept),
                       hashlib.sha256("".join(f"{s}\n" for s in lines).encode()).hexdigest(), LFW_DEV.held_back_below)


def test_make_subset_keeps_exactly_the_identities_the_rule_keeps_and_checks_the_digest(tmp_path, capsys):
    source = lfw_like(tmp_path / "lfw-deepfunneled")
    subset = expected_subset(source)
    held = [n for n in NAMES if not subset.keeps(n)]
    assert held and subset.identities < len(NAMES)  # the toy set exercises both sides of the rule
    assert bucket("AJ_Cook") == int(hashlib.sha256(b"AJ_Cook").hexdigest()[:8], 16) % 1000
    dest = download.make_subset(source, tmp_path / "toy-dev", subset)
    assert sorted(p.name for p in dest.iterdir()) == sorted(set(NAMES) - set(held))
    some = next(dest.rglob("*.jpg"))
    assert some.stat().st_ino == (source / some.parent.name / some.name).stat().st_ino  # a hard link, no copy
    assert identify(dest, list_faces(dest, progress=False)) is None  # only LFW_DEV is a named subset
    download.make_subset(source, dest, subset)  # made already: checked, kept
    assert "nothing to do" in capsys.readouterr().out
    some.unlink()
    some.write_bytes(b"edited")
    with pytest.raises(CSRIPError, match="content sha256"):
        download.make_subset(source, dest, subset)
    download.make_subset(source, dest, subset, force=True)
    assert download.check_subset(dest, subset, "{}") is None
    (source / NAMES[-1] / "extra.jpg").write_bytes(b"x")  # a source that is not the archive it should be
    with pytest.raises(CSRIPError, match="does not give toy-dev"):
        download.make_subset(source, tmp_path / "other", subset if subset.keeps(NAMES[-1]) else
                             NamedSubset(**{**subset.__dict__, "images": subset.images - 1}))
    assert not (tmp_path / "other").exists()


def test_csrip_data_subset_dev_then_data_lfw_dev_names_it(tmp_path, monkeypatch, capsys):
    source = lfw_like(tmp_path / "data" / "lfw-deepfunneled")
    subset = expected_subset(source)
    subset = NamedSubset("lfw-dev", *list(subset.__dict__.values())[1:])
    monkeypatch.setitem(download.SUBSETS, "dev", subset)
    monkeypatch.setattr(faces, "project_root", lambda: tmp_path)
    with pytest.raises(CSRIPError, match="csrip data --subset dev"):
        resolve_data("lfw-dev")
    assert cli_main(["data", "--dest", str(tmp_path / "data"), "--subset", "dev", "--expect-images", "0",
                     "--expect-identities", "0"]) == 0
    assert "--data lfw-dev" in capsys.readouterr().out
    assert resolve_data("lfw-dev") == tmp_path / "data" / "lfw-dev"
    monkeypatch.setenv("CSRIP_DATA", "lfw-dev")
    assert resolve_data() == tmp_path / "data" / "lfw-dev"
    assert len(list_faces(resolve_data(), progress=False)) == subset.images
