"""Identity metrics on judge embeddings (beyond the paper; the judge is `csrip_lib.evaluation.judge`).

C-SRIP claims to be *identity preserving* (Sec. 1, 3.2) but reports only PSNR and SSIM (Tables 1-2).
`csrip_lib.evaluation.evaluate` embeds every SR output (and bicubic, and the HR images themselves) with the
independent judge and scores them against HR embeddings with the functions here:

* ``id_dist`` (per image): distance between the output's and its HR target's descriptors;
  ``id_match``: id_dist < 0.6, dlib's same-person threshold;
* ``rank1``: closed-set identification of each output against a gallery of the HR images of the
  *other* test images (all identities; the probe's own HR image is left out). A probe whose identity
  has no other image cannot be identified and is excluded (counted in ``rank1_excluded``);
* ``auc``: verification ROC AUC over all (output i, HR j), i != j pairs, genuine = same identity,
  with the Mann-Whitney rank statistic; ``tar`` at FAR = 1e-3: the share of genuine pairs accepted
  at the distance that accepts 0.1% of impostor pairs, reported only when there are at least
  10 / FAR impostor pairs (else NaN, with the reason in ``tar_note``).

Faces the judge could not embed (NaN descriptors) take part in nothing and are counted (``failed``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

FAR = 1e-3
MIN_IMPOSTORS_PER_FAR = 10  # TAR@FAR needs >= 10 / FAR impostor pairs: 10 of them above threshold


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative),
    ties counting 1/2 (Mann-Whitney U with average ranks). NaN if a class is empty."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # average rank (1-based) of each group of tied scores
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks = np.empty_like(s)
    ranks[order] = np.repeat(avg, counts)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float = FAR) -> tuple[float, str]:
    """(true accept rate, note) of distances at the threshold accepting a `far` share of impostors.
    Accept = distance below the threshold. NaN with the reason when there are too few impostors."""
    genuine, impostor = np.asarray(genuine, float), np.sort(np.asarray(impostor, float))
    need = int(np.ceil(MIN_IMPOSTORS_PER_FAR / far))
    if len(impostor) < need:
        return float("nan"), f"{len(impostor):,} impostor pairs, < {need:,} needed for FAR={far:g}"
    if len(genuine) == 0:
        return float("nan"), "no genuine pairs"
    threshold = impostor[int(np.floor(far * len(impostor)))]  # <= far of impostors lie below it
    return float((genuine < threshold).mean()), f"threshold {threshold:.4f}"


def identity_metrics(probe: np.ndarray, gallery: np.ndarray, labels: Any, far: float = FAR) -> dict[str, Any]:
    """Identity metrics of probe descriptors (row i: output for test image i) against HR gallery
    descriptors (row i: HR image i), both N x D with NaN rows where the judge failed.

    Returns per image "id_dist" (N, NaN where either face failed) and "rank1_hit" (N, 1/0, NaN where
    excluded or failed), and per set "rank1", "rank1_probes", "rank1_excluded", "auc", "tar",
    "tar_note", "failed" (probes the judge could not embed).
    """
    probe, gallery = np.asarray(probe, np.float64), np.asarray(gallery, np.float64)
    y = np.asarray(labels)
    if probe.shape != gallery.shape or len(y) != len(probe):
        raise ValueError(f"probe {probe.shape}, gallery {gallery.shape} and {len(y)} labels must "
                         "describe the same images")
    n = len(y)
    ok_p, ok_g = np.isfinite(probe).all(1), np.isfinite(gallery).all(1)
    id_dist = np.linalg.norm(probe - gallery, axis=1)  # NaN where either is NaN
    a, b = np.where(ok_p[:, None], probe, 0), np.where(ok_g[:, None], gallery, 0)
    d = np.sqrt(np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T, 0))
    valid = ok_p[:, None] & ok_g[None, :] & ~np.eye(n, dtype=bool)  # other images, both embedded
    same = y[:, None] == y[None, :]
    has_mate = (valid & same).any(1)
    hits = np.full(n, np.nan)
    probes = np.flatnonzero(ok_p & has_mate)
    if len(probes):
        masked = np.where(valid[probes], d[probes], np.inf)
        hits[probes] = (y[masked.argmin(1)] == y[probes]).astype(float)
    genuine, impostor = d[valid & same], d[valid & ~same]
    auc = roc_auc(-np.concatenate([genuine, impostor]),
                  np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)]))
    tar, note = tar_at_far(genuine, impostor, far)
    return {"id_dist": id_dist, "rank1_hit": hits,
            "rank1": float(np.nanmean(hits)) if len(probes) else float("nan"),
            "rank1_probes": int(len(probes)), "rank1_excluded": int((ok_p & ~has_mate).sum()),
            "auc": auc, "tar": tar, "tar_note": note, "failed": int((~ok_p).sum())}
