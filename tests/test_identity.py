"""Identity metrics (csrip_lib.identity): AUC, pairs, rank-1 on embeddings with known answers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from csrip_lib.identity import (IdentityConfig, IdentityNet, gallery_probe_split, identity_scores,
                                roc_auc, verification_pairs)


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
    expected = ((pos > neg) + 0.5 * (pos == neg)).mean()
    assert roc_auc(s, y) == pytest.approx(expected)


def test_gallery_probe_split():
    labels = [2, 0, 2, 1, 0, 2]
    gallery, probes = gallery_probe_split(labels)
    assert gallery.tolist() == [0, 1, 3]  # first image of each identity
    assert probes.tolist() == [2, 4, 5]


@pytest.mark.parametrize("max_impostors", [10_000, 20])
def test_verification_pairs(max_impostors):
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    i, j, same = verification_pairs(labels, max_impostors=max_impostors)
    assert (i != j).all()
    assert (labels[i] == labels[j]).tolist() == same.tolist()
    assert same.sum() == 3 * 2 + 2 * 1 + 2 * 1  # every ordered genuine pair
    n_impostor = 8 * 7 - 10
    assert (~same).sum() == min(n_impostor, max_impostors)


def _identity_embeddings(labels, noise, dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = F.normalize(torch.randn(int(max(labels)) + 1, dim, generator=g), dim=1)
    x = centres[torch.as_tensor(labels)] + noise * torch.randn(len(labels), dim, generator=g)
    return F.normalize(x, dim=1)


def test_identity_scores_perfect_and_random():
    labels = np.repeat(np.arange(20), 4)
    ref = _identity_embeddings(labels, noise=0.05)
    perfect = identity_scores(ref, ref, labels)
    assert perfect["auc"] == pytest.approx(1.0)
    assert perfect["rank1"] == 1.0
    assert np.allclose(perfect["cosine"], 1.0, atol=1e-5)
    assert np.isnan(perfect["rank1_hit"][::4]).all() and not np.isnan(perfect["rank1_hit"][1::4]).any()


def test_identity_scores_random_embedding_is_chance():
    labels = np.repeat(np.arange(50), 6)
    g = torch.Generator().manual_seed(1)
    probe, ref = (F.normalize(torch.randn(len(labels), 64, generator=g), dim=1) for _ in range(2))
    random = identity_scores(probe, ref, labels)
    assert random["auc"] == pytest.approx(0.5, abs=0.03)
    assert random["rank1"] < 0.1  # chance is 1/50
    assert abs(random["cosine"].mean()) < 0.05


def test_identity_scores_degrade_with_noise():
    """A probe that keeps less identity information scores lower on every metric."""
    labels = np.repeat(np.arange(30), 3)
    ref = _identity_embeddings(labels, noise=0.1)
    good = F.normalize(ref + 0.2 * torch.randn_like(ref), dim=1)
    bad = F.normalize(ref + 1.5 * torch.randn_like(ref), dim=1)
    sg, sb = identity_scores(good, ref, labels), identity_scores(bad, ref, labels)
    assert sg["auc"] > sb["auc"] and sg["rank1"] > sb["rank1"]
    assert sg["cosine"].mean() > sb["cosine"].mean()


def test_identity_net_embeddings_any_size():
    net = IdentityNet(5, IdentityConfig(input_size=64, embedding_dim=16)).eval()
    for size in (64, 192):
        e = net.embed(torch.rand(2, 3, size, size))
        assert e.shape == (2, 16)
        assert torch.allclose(e.norm(dim=1), torch.ones(2), atol=1e-5)
    assert net(torch.rand(2, 3, 96, 96)).shape == (2, 5)


@pytest.mark.slow
def test_trained_recognizer_ranks_hr_above_bicubic(synthetic_root, tmp_path):
    """End to end on synthetic identities: train the evaluation recognizer on the train split with the
    shared harness, reload it, and score the test split: identity survives in HR images better than
    in 8x bicubic reconstructions, and far above chance."""
    from csrip_lib.config import TrainConfig
    from csrip_lib.evaluate import evaluate_models, summarize_results
    from csrip_lib.identity import ensure_identity_model, load_identity_model, train_identity_model

    cfg = IdentityConfig(input_size=64, max_images=160, train=TrainConfig(
        epochs=4, batch_size=32, lr=2e-3, steps_per_epoch=5, patience=4, seed=1234))
    log = train_identity_model(synthetic_root, tmp_path / "identity", cfg)
    assert len(log) == 4 and log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
    best = tmp_path / "identity" / "best.pt"
    stamp = best.stat().st_mtime_ns
    assert ensure_identity_model(synthetic_root, "quick", tmp_path / "identity") == best
    assert best.stat().st_mtime_ns == stamp  # reused, not retrained

    model = load_identity_model(best)
    df = evaluate_models({}, synthetic_root, "test", identity_model=model, progress=False)
    s = summarize_results(df)
    assert s.index.tolist() == ["bicubic", "hr"]
    n_ids = df["identity"].nunique()
    assert s.loc["hr", "rank1"] > 2 / n_ids  # well above chance (1 / n_ids)
    assert s.loc["hr", "auc"] > max(0.6, s.loc["bicubic", "auc"])
    assert s.loc["bicubic", "id_cosine"] < s.loc["hr", "id_cosine"] == pytest.approx(1.0)
