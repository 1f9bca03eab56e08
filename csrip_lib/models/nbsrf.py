"""NBSRF-like: a plain regression forest on patches of the bicubic upscale, standing in for NBSRF
(Salvador and Perez-Pellitero, "Naive Bayes super-resolution forest", ICCV 2015; paper ref. [10]) as a
Table 1 competitor (Sec. 4.2). It is not NBSRF: see "Where ours differs"; tables call it NBSRF-like.

Every 24 px LR pixel owns one 8x8 block of the 192 px output. Its features are the luminance of the
bicubic upscale in a `window` x `window` neighbourhood centred on the block, average-pooled by `pool`
and with its mean removed; its target is the luminance detail HR - bicubic of the block (64 values).
A forest of regression trees (scikit-learn's RandomForestRegressor, fitted by csrip_lib.training.competitors)
predicts the detail, which is added to all three bicubic channels (a luminance change with chroma
kept, as SR methods working on Y do), then clipped to [0, 1].

Where ours differs: NBSRF's trees split patches by PCA-like hyperplanes and hold a linear regressor per
leaf, chosen per patch by a naive-Bayes selection over trees; here the trees are scikit-learn's
axis-aligned CART trees with constant leaves (the detail averaged over the leaf's patches), averaged
over trees, on non-overlapping output blocks. The forest is stored as tensors (buffers: children,
split features, thresholds, leaf values), so the checkpoint needs no pickle and the prediction runs in
torch on any device; sklearn is needed only to fit.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .common import bicubic_up, check_lr, no_scales

BLOCK = 8  # output pixels per LR pixel (8x)
LUMA = (0.299, 0.587, 0.114)


@dataclass
class NBSRFConfig:
    trees: int = 32
    max_depth: int = 16
    min_samples_leaf: int = 5
    max_features: float = 0.5  # share of features tried per split
    patches: int = 400_000  # training blocks sampled from the training images
    window: int = 16  # bicubic neighbourhood (px) around each 8x8 block
    pool: int = 2  # average pooling of that window (features = (window / pool)^2)
    max_nodes: int = 0  # nodes of the largest tree; set when fitted (the buffers' shape)

    @classmethod
    def preset(cls, name: str) -> "NBSRFConfig":
        if name in ("tiny", "quick"):
            return cls(trees=8, max_depth=10, min_samples_leaf=20, patches=40_000)
        return cls()


def luma(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def block_features(up: torch.Tensor, cfg: NBSRFConfig) -> torch.Tensor:
    """Bicubic upscale N x 3 x 192 x 192 -> features (N * 576) x (window / pool)^2, one row per 8x8 block
    (blocks in row-major order per image)."""
    pad = (cfg.window - BLOCK) // 2
    y = F.avg_pool2d(F.pad(luma(up), (pad,) * 4, mode="replicate"), cfg.pool)
    k, s = cfg.window // cfg.pool, BLOCK // cfg.pool
    cols = F.unfold(y, k, stride=s)  # N x k*k x 576
    feats = cols.transpose(1, 2).reshape(-1, k * k)
    return feats - feats.mean(1, keepdim=True)


def block_targets(up: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
    """The luminance detail HR - bicubic as (N * 576) x 64 rows, in the order of `block_features`."""
    cols = F.unfold(luma(hr) - luma(up), BLOCK, stride=BLOCK)
    return cols.transpose(1, 2).reshape(-1, BLOCK * BLOCK)


class NBSRF(nn.Module):
    """model(lr 24 px) -> N x 3 x 192 x 192 in [0, 1]: bicubic + the forest's luminance detail."""

    def __init__(self, cfg: NBSRFConfig = NBSRFConfig()):
        super().__init__()
        if cfg.window < BLOCK or (cfg.window - BLOCK) % 2 or BLOCK % cfg.pool or cfg.window % cfg.pool:
            raise ValueError(f"window {cfg.window} / pool {cfg.pool} must centre a {BLOCK} px block evenly")
        self.cfg = cfg
        t, m = cfg.trees, max(cfg.max_nodes, 1)
        self.register_buffer("left", torch.full((t, m), -1, dtype=torch.long))
        self.register_buffer("right", torch.full((t, m), -1, dtype=torch.long))
        self.register_buffer("feature", torch.zeros(t, m, dtype=torch.long))
        self.register_buffer("threshold", torch.zeros(t, m))
        self.register_buffer("value", torch.zeros(t, m, BLOCK * BLOCK))
        self.dummy = nn.Parameter(torch.zeros(()), requires_grad=False)  # gives the module a device/dtype

    def load_forest(self, forest) -> "NBSRF":
        """Copy a fitted sklearn RandomForestRegressor into the buffers (sets cfg.max_nodes)."""
        trees = [e.tree_ for e in forest.estimators_]
        self.cfg.max_nodes = max(t.node_count for t in trees)
        t, m = len(trees), self.cfg.max_nodes
        left, right = torch.full((t, m), -1, dtype=torch.long), torch.full((t, m), -1, dtype=torch.long)
        feature, threshold = torch.zeros(t, m, dtype=torch.long), torch.zeros(t, m)
        value = torch.zeros(t, m, BLOCK * BLOCK)
        for i, tr in enumerate(trees):
            n = tr.node_count
            left[i, :n], right[i, :n] = torch.from_numpy(tr.children_left), torch.from_numpy(tr.children_right)
            feature[i, :n] = torch.from_numpy(tr.feature).clamp(min=0)
            threshold[i, :n] = torch.from_numpy(tr.threshold).float()
            value[i, :n] = torch.from_numpy(tr.value[:, :, 0]).float()
        for name, v in dict(left=left, right=right, feature=feature, threshold=threshold, value=value).items():
            setattr(self, name, v.to(self.dummy.device))
        return self

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Mean leaf value over the trees for feature rows x (P x F) -> P x 64."""
        t = self.left.shape[0]
        node = torch.zeros(t, len(x), dtype=torch.long, device=x.device)
        rows = torch.arange(t, device=x.device)[:, None]
        for _ in range(self.cfg.max_depth + 1):
            left = self.left[rows, node]
            leaf = left < 0
            go_left = x.gather(1, self.feature[rows, node].T).T <= self.threshold[rows, node]
            node = torch.where(leaf, node, torch.where(go_left, left, self.right[rows, node]))
        return self.value[rows, node].mean(0)

    def forward(self, lr: torch.Tensor, all_scales: bool = False) -> torch.Tensor:
        no_scales(all_scales, "NBSRF-like")
        check_lr(lr)
        up = bicubic_up(lr.float())
        n, size = len(up), up.shape[-1]
        detail = self.predict(block_features(up, self.cfg)).view(n, -1, BLOCK * BLOCK).transpose(1, 2)
        detail = F.fold(detail, (size, size), BLOCK, stride=BLOCK)
        return (up + detail).clamp(0, 1)
