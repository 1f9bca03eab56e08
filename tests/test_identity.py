"""Identity metrics (csrip_lib.evaluation.identity) with known answers, and the dlib judge (csrip_lib.evaluation.judge)
on real faces: genuine pairs are closer than impostor pairs and HR beats bicubic at rank-1."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from csrip_lib.evaluation import judge
from csrip_lib.evaluation.identity import identity_metrics, roc_auc, tar_at_far

needs_judge = pytest.mark.skipif(not judge.available(),
                                 reason="the judge is not installed: pip install 'csrip[judge]'")


def test_roc_auc_known_values():
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert roc_auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert roc_auc([0.5] * 6, [0, 1, 0, 1, 0, 1]) == 0.5  # ties count 1/2
    assert np.isnan(roc_auc([1, 2], [1, 1]))


def test_roc_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    s = rng.integers(0, 10, 200).astype(float)  # many ties
    y = rng.random(200) < 0.3
    pos, neg = s[y][:, None], s[~y][None, :]
    assert roc_auc(s, y) == pytest.approx(((pos > neg) + 0.5 * (pos == neg)).mean())


def _clusters(labels, noise, dim=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(int(max(labels)) + 1, dim))
    return centres[labels] + noise * rng.normal(size=(len(labels), dim))


def test_identity_metrics_known_answers():
    labels = np.array([0, 0, 1, 1, 2, 3, 3])  # identity 2 has one image: no rank-1 probe
    gallery = _clusters(labels, noise=0.01)
    m = identity_metrics(gallery, gallery, labels)
    assert np.allclose(m["id_dist"], 0)
    assert m["rank1"] == 1.0 and m["auc"] == 1.0
    assert m["rank1_probes"] == 6 and m["rank1_excluded"] == 1 and np.isnan(m["rank1_hit"][4])
    # the probe's own HR image is not in its gallery: a probe equal to another identity's HR face misses
    probe = gallery.copy()
    probe[0] = gallery[2]
    m = identity_metrics(probe, gallery, labels)
    assert m["rank1_hit"][0] == 0 and m["rank1"] == pytest.approx(5 / 6) and m["id_dist"][0] > 0.5


def test_identity_metrics_count_faces_the_judge_failed_on():
    labels = np.repeat(np.arange(5), 3)
    gallery = _clusters(labels, noise=0.05)
    probe = gallery + 0.01
    probe[[1, 7]] = np.nan
    m = identity_metrics(probe, gallery, labels)
    assert m["failed"] == 2 and m["rank1_probes"] == 13
    assert np.isnan(m["id_dist"][[1, 7]]).all() and np.isfinite(np.delete(m["id_dist"], [1, 7])).all()
    assert m["rank1"] == 1.0


def test_tar_at_far():
    rng = np.random.default_rng(0)
    impostor = rng.uniform(0.5, 1.5, 20_000)
    tar, note = tar_at_far(np.array([0.1, 0.2, 0.49, 0.6]), impostor, far=1e-3)
    assert tar == 0.75 and "threshold" in note  # the threshold lies just above 0.5
    tar, note = tar_at_far(np.array([0.1]), impostor[:500], far=1e-3)
    assert np.isnan(tar) and "500 impostor pairs" in note


@needs_judge
def test_judge_separates_real_identities_and_hr_from_bicubic(lfw_root):
    """40 held-out LFW faces (20 identities x 2): a genuine pair is closer than an impostor pair on
    average and below dlib's 0.6, and rank-1 against the other image of each identity is higher
    for HR than for bicubic upscales of the 24 px inputs."""
    from csrip_lib.data.faces import FaceFolder, load_cached
    from csrip_lib.core.degradation import make_pyramid
    from csrip_lib.evaluation.evaluate import bicubic

    ds = FaceFolder(lfw_root, "test", min_images=2, max_identities=20, max_per_identity=2)
    hr, labels = load_cached(ds, progress=False)
    j = judge.FaceJudge()
    gallery = j.embed(hr)
    assert gallery.shape == (40, 128) and np.isfinite(gallery).all()
    assert np.allclose(j.embed(hr[:4].float() / 255), gallery[:4], atol=1e-5)  # uint8 == float input
    d = np.linalg.norm(gallery[:, None] - gallery[None], axis=-1)
    same = labels.numpy()[:, None] == labels.numpy()[None]
    genuine, impostor = d[same & ~np.eye(40, dtype=bool)], d[~same]
    assert genuine.mean() < judge.MATCH_THRESHOLD < impostor.mean()
    hr_m = identity_metrics(gallery, gallery, labels)
    bic_m = identity_metrics(j.embed(bicubic(make_pyramid(hr.float() / 255)["lr"])), gallery, labels)
    assert hr_m["rank1"] >= 0.9 and hr_m["rank1"] > bic_m["rank1"] + 0.2
    assert bic_m["id_dist"].mean() > 0.2


@needs_judge
def test_judge_counts_faces_it_cannot_align(monkeypatch):
    j = judge.FaceJudge(workers=0)  # the stand-in _align lives in this process
    monkeypatch.setattr(j, "_align", lambda img: None)  # as for landmarks outside the image
    assert np.isnan(j.embed(torch.zeros(3, 3, 192, 192))).all()


def test_hr_embedding_cache(tmp_path, hr_faces):
    """Descriptors are stored per HR face and found again; the key is the face's pixels, so the same
    file cropped or resized otherwise (issue 20) is a new key, never a stale descriptor."""
    from csrip_lib.data.faces import hr_crop

    face = (hr_faces[:1] * 255).round().to(torch.uint8)
    cache = judge.EmbeddingCache(tmp_path, tmp_path / "cache")
    emb, keys = cache.lookup(face)
    assert np.isnan(emb).all() and keys[0] not in cache
    cache.store(keys, np.ones((1, 128)))
    cache.save()
    again = judge.EmbeddingCache(tmp_path, tmp_path / "cache")
    assert (again.lookup(face)[0] == 1).all()
    assert (again.lookup(face.float() / 255)[0] == 1).all()  # float input: the same 8-bit face
    other_crop = hr_crop(torch.nn.functional.pad(face[0], (4, 4, 4, 4), mode="replicate"), size=192)
    shifted = face.roll(1, dims=-1)
    for changed in (other_crop[None], shifted):
        assert np.isnan(again.lookup(changed)[0]).all()


@needs_judge
def test_judge_workers_give_the_same_descriptors(hr_faces):
    """The judge's processes share a call's faces: the descriptors are exactly those of this process."""
    faces = (hr_faces * 255).round().to(torch.uint8)
    here = judge.FaceJudge(workers=0).embed(faces)
    assert np.isfinite(here).all()
    with judge.FaceJudge(workers=2) as pooled:
        first, second = pooled.submit(faces), pooled.submit(faces[:1])  # both queued, then collected
        np.testing.assert_array_equal(first(), here)
        np.testing.assert_array_equal(second(), here[:1])
    with pytest.raises(ValueError, match="workers"):
        judge.FaceJudge(workers=-1)
