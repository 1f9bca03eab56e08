"""csrip_lib.data.faces: face folders, identity-disjoint splits, the HR crop protocol, bad input,
caching, data resolution and the synthetic face generator. Real LFW when $CSRIP_DATA is set."""
from __future__ import annotations

import collections
import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from csrip_lib.core.console import CSRIPError
from csrip_lib.data import faces as data
from csrip_lib.data.faces import (FaceDataWarning, FaceFolder, decode_rgb, hr_crop, identity_split, load_cached,
                                  load_hr, per_identity_split, resolve_data)
from csrip_lib.data.synthetic import MARKER, make_synthetic_faces, render_faces

# ----------------------------------------------------------------------------- helpers


def smooth_image(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """A smooth random uint8 image (compresses like a photo, unlike white noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, channels, max(2, h // 16), max(2, w // 16), generator=g)
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    a = (x[0] * 255).round().byte().permute(1, 2, 0).numpy()
    return a[..., 0] if channels == 1 else a


def jpeg_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def messy_root(tmp_path: Path) -> Path:
    """A face folder with every kind of file a real collection throws at us."""
    root = tmp_path / "faces"
    good = jpeg_bytes(smooth_image(250, 250, 1))
    for ident, n in (("Alice", 3), ("Bob", 2)):
        (root / ident).mkdir(parents=True)
        for j in range(n):
            (root / ident / f"{ident}_{j + 1:04d}.jpg").write_bytes(jpeg_bytes(smooth_image(250, 250, 10 * j + n)))
    bad = root / "Mallory"
    bad.mkdir()
    corrupt = bytearray(good)
    corrupt[600:2000] = bytes(1400)
    (bad / "corrupt.jpg").write_bytes(bytes(corrupt))
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (bad / "notes.jpg").write_text("this is not an image\n")
    Image.fromarray(smooth_image(100, 100, 3)).save(bad / "small.png")
    Image.fromarray(smooth_image(250, 250, 4, channels=1)).save(bad / "gray.jpg", quality=95)
    rgba = np.dstack([smooth_image(250, 250, 5), np.full((250, 250), 90, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(bad / "rgba.png")
    deep = (smooth_image(250, 250, 6, channels=1).astype(np.uint16) * 257 + 100)
    Image.fromarray(deep).save(bad / "deep16.png")
    (root / "MANIFEST.txt").write_text("top-level files are not identities\n")
    (root / "Alice" / "Thumbs.db").write_bytes(b"\0" * 10)  # no image extension: ignored
    return root


# ----------------------------------------------------------------------------- splits


def test_identity_split_is_a_stable_hash():
    # Regression values: changing them silently reshuffles every train/test split.
    assert [identity_split(n) for n in ("Aaron_Eckhart", "Colin_Powell", "Zico", "synthetic_0001")] \
        == ["train", "test", "val", "test"]
    code = "from csrip_lib.data.faces import identity_split as s; print([s(f'id{k}') for k in range(50)])"
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in (1, 2)}
    assert len(runs) == 1  # independent of Python's per-process string hashing


def test_splits_are_identity_disjoint_deterministic_and_cover(face_root):
    sets = {s: FaceFolder(face_root, split=s) for s in ("train", "val", "test")}
    every = FaceFolder(face_root, split="all")
    ids = {s: set(ds.identities) for s, ds in sets.items()}
    assert all(ids.values()), {s: len(v) for s, v in ids.items()}  # every split non-empty
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])
    assert ids["train"] | ids["val"] | ids["test"] == set(every.identities)
    assert sorted(p for ds in sets.values() for p, _ in ds.items) == [p for p, _ in every.items]
    assert FaceFolder(face_root, split="val").items == sets["val"].items
    n = len(every.identities)
    if n > 1000:  # 80/10/10 of the identities, up to sampling noise
        assert abs(len(ids["train"]) / n - 0.8) < 0.03 and abs(len(ids["test"]) / n - 0.1) < 0.03


def test_labels_index_sorted_identities(face_root):
    ds = FaceFolder(face_root, split="val")
    assert ds.identities == sorted(ds.identities)
    assert [ds.identities[k] for k in ds.labels] == [ident for _, ident in ds.items]
    assert all(p.parent.name == ident for p, ident in ds.items)


def test_subset_options(face_root):
    ds = FaceFolder(face_root, split="train", min_images=3, max_identities=5, max_images=12, seed=1)
    counts = collections.Counter(ds.labels)
    assert len(ds) <= 12 and len(ds.identities) <= 5 and min(counts.values()) >= 3
    again = FaceFolder(face_root, split="train", min_images=3, max_identities=5, max_images=12, seed=1)
    assert again.items == ds.items
    other = FaceFolder(face_root, split="train", min_images=3, max_identities=5, max_images=12, seed=2)
    assert other.items != ds.items
    spread = FaceFolder(face_root, split="train", max_images=10)  # balanced: one per identity first
    assert len(spread) == 10 and len(spread.identities) == 10


def test_per_identity_cap(face_root):
    """max_per_identity keeps at most that many images of every identity (seeded), never fewer
    identities, and leaves smaller identities whole."""
    full = FaceFolder(face_root, split="train", min_images=3)
    capped = FaceFolder(face_root, split="train", min_images=3, max_per_identity=3)
    assert capped.identities == full.identities
    counts, full_counts = collections.Counter(capped.labels), collections.Counter(full.labels)
    assert all(counts[k] == min(3, full_counts[k]) for k in full_counts)
    assert set(capped.items) <= set(full.items)
    assert FaceFolder(face_root, split="train", min_images=3, max_per_identity=3).items == capped.items


def test_real_lfw_counts(lfw_root):
    ds = FaceFolder(lfw_root, split="all")
    tsv = lfw_root / "identities.tsv"
    if tsv.is_file():  # the development subset lists its per-identity counts
        rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:] if line]
        expected = {name: int(n) for name, n in rows}
        assert collections.Counter(ident for _, ident in ds.items) == expected
        if lfw_root.name == "lfw_dev":
            assert (len(ds.identities), len(ds)) == (4741, 10845)
    else:  # the full LFW deep-funneled set
        assert (len(ds.identities), len(ds)) == (5749, 13233)


# ----------------------------------------------------------------------------- crop protocol


def test_hr_crop_of_250_is_the_centre_192(face_root):
    ds = FaceFolder(face_root, split="test")
    path = ds.items[0][0]
    full = decode_rgb(path)
    assert full.shape == (3, 250, 250) and full.dtype == torch.uint8
    hr, label = ds[0]
    assert hr.shape == (3, 192, 192) and hr.dtype == torch.uint8 and label == ds.labels[0]
    assert torch.equal(hr, full[:, 29:221, 29:221])
    assert torch.equal(load_hr(path), hr)


def test_hr_crop_of_other_sizes_is_centre_square_resized():
    img = torch.zeros(3, 300, 400, dtype=torch.uint8)
    img[:, :, 50:350] = torch.from_numpy(smooth_image(300, 300, 7)).permute(2, 0, 1)
    img[0, :, :50] = img[1, :, 350:] = 255  # red left and green right borders must be cut off
    hr = hr_crop(img)
    expected = F.interpolate(img[None, :, :, 50:350].float(), size=(192, 192), mode="bicubic",
                             antialias=True, align_corners=False)[0].round().clamp(0, 255).byte()
    assert hr.shape == (3, 192, 192) and torch.equal(hr, expected)
    exact = torch.randint(0, 256, (3, 192, 260), dtype=torch.uint8)
    assert torch.equal(hr_crop(exact), exact[:, :, 34:226])  # 192 square: no resampling


def test_small_images_are_rejected_unless_upsampling_is_asked_for(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(smooth_image(100, 120, 8)).save(path)
    with pytest.raises(CSRIPError, match="smaller than the 192 px"):
        load_hr(path)
    up = load_hr(path, upsample_small=True)
    assert up.shape == (3, 192, 192) and up.dtype == torch.uint8


def test_decoding_modes(messy_root):
    bad = messy_root / "Mallory"
    gray = decode_rgb(bad / "gray.jpg")
    assert gray.shape == (3, 250, 250) and torch.equal(gray[0], gray[1]) and torch.equal(gray[1], gray[2])
    rgba = decode_rgb(bad / "rgba.png")  # alpha dropped, colour kept, like PIL convert("RGB")
    assert torch.equal(rgba, torch.from_numpy(np.asarray(Image.open(bad / "rgba.png"))[..., :3].copy()).permute(2, 0, 1))
    deep = decode_rgb(bad / "deep16.png")
    raw = torch.from_numpy(np.asarray(Image.open(bad / "deep16.png")).astype(np.int64))
    assert deep.dtype == torch.uint8 and torch.equal(deep[0].long(), (raw * 255 + 32767) // 65535)
    for name, match in (("corrupt.jpg", "corrupt or truncated JPEG"), ("truncated.jpg", "truncated"),
                        ("notes.jpg", "not a readable image")):
        with pytest.raises(CSRIPError, match=match):
            decode_rgb(bad / name)


# ----------------------------------------------------------------------------- bad input


def test_bad_files_are_skipped_with_one_warning_each(messy_root):
    with pytest.warns(FaceDataWarning, match=r"skipped 1 file\(s\) that are not images.*notes\.jpg"):
        ds = FaceFolder(messy_root, split="all")
    assert ds.identities == ["Alice", "Bob", "Mallory"]  # MANIFEST.txt and Thumbs.db ignored
    names = {p.name for p, _ in ds.items}
    assert "notes.jpg" not in names and "Thumbs.db" not in names and len(ds) == 5 + 6

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        epoch = [ds[i] for i in range(len(ds))]  # never raises mid-epoch
        second = [ds[i] for i in range(len(ds))]
    messages = [str(w.message) for w in caught if issubclass(w.category, FaceDataWarning)]
    assert len(messages) == 3  # corrupt, truncated, small: once each, not again in epoch two
    for name in ("corrupt.jpg", "truncated.jpg", "small.png"):
        assert sum(name in m for m in messages) == 1
    assert {p.name for p in ds.skipped} == {"corrupt.jpg", "truncated.jpg", "small.png"}
    for (img, label), (img2, _) in zip(epoch, second):
        assert img.shape == (3, 192, 192) and img.dtype == torch.uint8 and torch.equal(img, img2)
    by_path = {p: k for k, (p, _) in enumerate(ds.items)}
    i = by_path[messy_root / "Mallory" / "corrupt.jpg"]
    sub = next(k for k in range(i + 1, len(ds)) if ds.items[k][0] not in ds.skipped)
    assert torch.equal(epoch[i][0], load_hr(ds.items[sub][0])) and epoch[i][1] == ds.labels[sub]


def test_load_cached_drops_bad_files_with_one_warning(messy_root):
    with pytest.warns(FaceDataWarning):
        ds = FaceFolder(messy_root, split="all")
    with pytest.warns(FaceDataWarning) as record:
        images, labels = load_cached(ds, progress=False)
    cached = [str(w.message) for w in record if issubclass(w.category, FaceDataWarning)]
    assert len(cached) == 2 and "skipped 2 file(s) that could not be decoded" in cached[0]
    assert "skipped 1 file(s) that are too small" in cached[1] and "small.png (100x100 px)" in cached[1]
    keep = [k for k, (p, _) in enumerate(ds.items) if p.name not in {"corrupt.jpg", "truncated.jpg", "small.png"}]
    assert images.shape == (len(keep), 3, 192, 192) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == [ds.labels[k] for k in keep]
    assert torch.equal(images, torch.stack([load_hr(ds.items[k][0]) for k in keep]))


@pytest.mark.parametrize("layout", ["missing", "empty", "files_only", "empty_identities", "no_images"])
def test_unusable_folders_say_what_layout_is_expected(tmp_path, layout):
    root = tmp_path / "faces"
    if layout != "missing":
        root.mkdir()
    if layout == "files_only":
        Image.fromarray(smooth_image(250, 250)).save(root / "face.jpg")
    if layout == "empty_identities":
        (root / "Alice").mkdir()
    if layout == "no_images":
        (root / "Alice").mkdir()
        (root / "Alice" / "notes.jpg").write_text("not an image")
    with pytest.raises(CSRIPError, match=r"<root>/<identity>/<image>"), warnings.catch_warnings():
        warnings.simplefilter("ignore", FaceDataWarning)
        FaceFolder(root, split="all")


def test_bad_split_name(face_root):
    with pytest.raises(ValueError, match="split must be one of"):
        FaceFolder(face_root, split="training")


# ----------------------------------------------------------------------------- per-identity split


def test_per_identity_split_is_90_10_within_every_identity():
    labels = torch.tensor([0] * 40 + [1] * 2 + [2] + [3] * 10)[torch.randperm(53, generator=torch.Generator().manual_seed(0))]
    train, val = per_identity_split(labels, val_fraction=0.1, seed=3)
    assert sorted(train.tolist() + val.tolist()) == list(range(53))
    per_val = collections.Counter(labels[val].tolist())
    assert per_val == {0: 4, 1: 1, 3: 1}  # 10% (at least one) of every identity with >= 2 images
    assert set(labels[val].tolist()) <= set(labels[train].tolist())  # val identities are train classes
    again = per_identity_split(labels, val_fraction=0.1, seed=3)
    assert torch.equal(again[0], train) and torch.equal(again[1], val)
    assert not torch.equal(per_identity_split(labels, 0.1, seed=4)[1], val)


def test_load_cached_matches_getitem(face_root):
    ds = FaceFolder(face_root, split="val", max_images=6)
    images, labels = load_cached(ds, progress=False)
    assert images.shape == (len(ds), 3, 192, 192)
    for k in range(len(ds)):
        img, label = ds[k]
        assert torch.equal(images[k], img) and labels[k].item() == label


# ----------------------------------------------------------------------------- resolve_data


def test_resolve_data_order(tmp_path, monkeypatch, capsys):
    arg, env, repo = tmp_path / "arg", tmp_path / "env", tmp_path / "repo"
    for d in (arg, env):
        d.mkdir()
    monkeypatch.setattr(data, "project_root", lambda: repo)
    made = []

    def make(root):  # the banner must already be out when the (minute-long) generation starts
        made.append((root, "NO FACE DATA FOUND" in capsys.readouterr().out))
        return root

    monkeypatch.setattr(data, "make_synthetic_faces", make)
    monkeypatch.setenv("CSRIP_DATA", str(env))
    assert resolve_data(arg) == arg.resolve()
    assert resolve_data() == env.resolve()
    assert "from $CSRIP_DATA" in capsys.readouterr().out
    monkeypatch.setenv("CSRIP_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(CSRIPError, match="does not exist"):
        resolve_data()
    monkeypatch.delenv("CSRIP_DATA")
    assert resolve_data() == repo / "data" / "synthetic" and made == [(repo / "data" / "synthetic", True)]
    assert data.current_data() == repo / "data" / "synthetic"  # what figures name
    (repo / "data" / "lfw-deepfunneled").mkdir(parents=True)
    assert resolve_data() == repo / "data" / "lfw-deepfunneled"


# ----------------------------------------------------------------------------- synthetic faces


def test_synthetic_faces_are_deterministic_and_extendable():
    a = [im for *_, im in render_faces(3, 2, seed=5, progress=False)]
    b = [im for *_, im in render_faces(3, 2, seed=5, progress=False)]
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and a[0].shape == (250, 250, 3)
    assert not np.array_equal(a[0], next(render_faces(1, 1, seed=6, progress=False))[2])


def test_synthetic_set_on_disk(synthetic_root):
    from conftest import SYNTHETIC_IDENTITIES, SYNTHETIC_IMAGES
    ds = FaceFolder(synthetic_root, split="all")
    assert (len(ds.identities), len(ds)) == (SYNTHETIC_IDENTITIES, SYNTHETIC_IDENTITIES * SYNTHETIC_IMAGES)
    first = Image.open(ds.items[0][0])
    assert first.size == (250, 250) and first.mode == "RGB"
    mtime = (synthetic_root / MARKER).stat().st_mtime_ns
    assert make_synthetic_faces(synthetic_root, SYNTHETIC_IDENTITIES, SYNTHETIC_IMAGES, progress=False) == synthetic_root
    assert (synthetic_root / MARKER).stat().st_mtime_ns == mtime  # reused, not re-rendered
    with pytest.raises(CSRIPError, match="other parameters"):
        make_synthetic_faces(synthetic_root, SYNTHETIC_IDENTITIES + 1, SYNTHETIC_IMAGES)


def test_synthetic_identities_are_distinguishable(synthetic_root):
    ds = FaceFolder(synthetic_root, split="all")
    images, labels = load_cached(ds, progress=False)
    x = F.avg_pool2d(images.float() / 255, 4).flatten(1)
    k = len(ds.identities)
    halves = [torch.stack([x[(labels == c).nonzero().flatten()[h::2]].mean(0) for c in range(k)]) for h in (0, 1)]
    d = torch.cdist(*halves)  # mean of half the images of identity i vs the other half of identity j
    within, between = d.diag().mean(), (d.sum() - d.diag().sum()) / (k * k - k)
    assert within < 0.75 * between, (within, between)


def test_make_synthetic_faces_never_overwrites(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(CSRIPError, match="not overwriting"):
        make_synthetic_faces(foreign, 1, 1, progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious"
