"""Identity preservation: an independent evaluation face recognizer and identity metrics.

Beyond the paper. C-SRIP claims to be *identity preserving* (Sec. 1, 3.2) but reports only PSNR
and SSIM (Tables 1-2). Judging identity with the SqueezeNet priors used in training would be
circular: the SR network was optimised to please exactly those networks. So the evaluation
recognizer here is independent of them on every axis we control:

* a different architecture (torchvision ResNet-18, randomly initialised: nothing is downloaded),
* full HR images, not residual images,
* its own seed,
* trained only on development identities (the `train` split), never on the test identities.

Metrics (computed by `csrip_lib.evaluate` for every model, for bicubic and for HR itself):

* ``id_cosine``: cosine similarity of the embeddings of the SR image and its HR target (per image);
* ``rank1``: closed-set identification of SR probes against an HR gallery of the test identities
  (gallery = the first HR image of every identity, probes = the SR outputs of all other images);
* ``auc``: verification ROC AUC over all (SR probe, HR reference) pairs of different images in the
  split, genuine = same identity; computed with the Mann-Whitney rank statistic (no sklearn).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import resnet18

from .checkpoint import load_checkpoint, load_weights
from .config import TrainConfig, from_dict, get_preset, to_dict
from .errors import CSRIPError

KIND = "identity"
# Per-channel statistics of LFW-like face photos; the network normalises its own input, so callers
# pass plain [0, 1] RGB images of any size.
_MEAN, _STD = (0.5, 0.42, 0.37), (0.27, 0.24, 0.24)


@dataclass
class IdentityConfig:
    """The evaluation recognizer and its training schedule (saved in its checkpoint)."""

    input_size: int = 192  # images are resized (antialiased) to this size before the network
    embedding_dim: int = 128  # linear projection of the 512-d ResNet-18 pooled features
    min_images: int = 2  # identities with fewer images cannot be split into train/val
    max_identities: int | None = None
    max_images: int | None = None
    val_fraction: float = 0.1  # per-identity split of the development images (as Sec. 4.1)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        epochs=40, batch_size=64, lr=1e-3, lr_milestones=(20, 30), lr_gamma=0.1, patience=8,
        weight_decay=5e-4, seed=1234))


def identity_preset(name: str) -> IdentityConfig:
    """Evaluation-recognizer settings matching an SR preset's budget (`paper`/`small`/`tiny`/`quick`)."""
    p = get_preset(name)  # validates the name
    if name in ("paper", "small"):
        return IdentityConfig(input_size=192 if name == "paper" else 128)
    # tiny/quick: about a minute on a 2-core CPU; enough to rank bicubic < SR < HR, not a strong FR model
    return IdentityConfig(
        input_size=64, max_identities=p.max_identities or 40, max_images=p.max_images or 600,
        train=TrainConfig(epochs=5, batch_size=32, lr=2e-3, steps_per_epoch=8, patience=5,
                          weight_decay=5e-4, seed=1234))


class IdentityNet(nn.Module):
    """ResNet-18 face classifier whose penultimate layer is the identity embedding."""

    def __init__(self, num_classes: int, cfg: IdentityConfig = IdentityConfig()):
        super().__init__()
        self.cfg = cfg
        backbone = resnet18(weights=None, num_classes=1000)
        backbone.fc = nn.Linear(512, cfg.embedding_dim)
        self.backbone = backbone
        self.head = nn.Sequential(nn.BatchNorm1d(cfg.embedding_dim), nn.Linear(cfg.embedding_dim, num_classes))
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.cfg.input_size or x.shape[-2] != self.cfg.input_size:
            x = F.interpolate(x, size=(self.cfg.input_size,) * 2, mode="bilinear",
                              align_corners=False, antialias=True)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Identity logits of [0, 1] RGB images N x 3 x H x W."""
        return self.head(self.backbone(self._prepare(x)))

    @torch.no_grad()
    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """L2-normalised identity embeddings N x embedding_dim (float32), taken after the head's
        BatchNorm ("BNNeck"): centred by the training statistics, so that cosine similarity compares
        identity directions rather than a component every face shares."""
        return F.normalize(self.head[0](self.backbone(self._prepare(x))).float(), dim=1)


# ----------------------------------------------------------------------------------------- training
def _augment(x: torch.Tensor) -> torch.Tensor:
    """Random horizontal flip and a small random translation (per image), [0, 1] floats."""
    flip = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    x = torch.where(flip, x.flip(-1), x)
    pad = x.shape[-1] // 16
    xp = F.pad(x, (pad,) * 4, mode="replicate")
    dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
    return xp[..., dy:dy + x.shape[-2], dx:dx + x.shape[-1]]


def _step(model: IdentityNet, batch, device) -> dict[str, torch.Tensor]:
    x, y = batch
    x = _augment(x.to(device).float() / 255)
    y = y.to(device)
    logits = model(x)
    return {"loss": F.cross_entropy(logits, y), "acc": (logits.argmax(1) == y).float().mean()}


@torch.no_grad()
def _evaluate(model: IdentityNet, loader, device) -> dict[str, float]:
    correct = total = 0
    loss = 0.0
    for x, y in loader:
        x, y = x.to(device).float() / 255, y.to(device)
        logits = model(x).float()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    return {"val_acc": correct / max(total, 1), "val_loss": loss / max(total, 1)}


def train_identity_model(data: str | Path | None, out_dir: str | Path, cfg: IdentityConfig | None = None,
                         *, preset: str = "quick", device=None, resume: bool = False):
    """Train the evaluation recognizer on HR images of the `train` split of `data`.

    Uses the shared harness (csrip_lib.train.fit): writes out_dir/best.pt (kind "identity"),
    last.pt and log.csv. Returns the training log (pandas DataFrame).
    """
    from .data import FaceFolder, load_cached, per_identity_split, resolve_data
    from .train import fit, seed_everything

    cfg = cfg or identity_preset(preset)
    seed_everything(cfg.train.seed)
    root = resolve_data(data)
    ds = FaceFolder(root, split="train", min_images=cfg.min_images, max_identities=cfg.max_identities,
                    max_images=cfg.max_images, seed=cfg.train.seed)
    if len(ds.identities) < 2:
        raise CSRIPError(f"{root}: the train split has {len(ds.identities)} identities with >= "
                         f"{cfg.min_images} images; the evaluation recognizer needs at least 2")
    hr, labels = load_cached(ds)
    tr, va = per_identity_split(labels, cfg.val_fraction, seed=cfg.train.seed)
    g = torch.Generator().manual_seed(cfg.train.seed)
    train_loader = DataLoader(TensorDataset(hr[tr], labels[tr]), batch_size=cfg.train.batch_size,
                              shuffle=True, drop_last=len(tr) > cfg.train.batch_size, generator=g)
    val_loader = DataLoader(TensorDataset(hr[va], labels[va]), batch_size=2 * cfg.train.batch_size)
    model = IdentityNet(len(ds.identities), cfg)
    config = {"identity": to_dict(cfg), "identities": list(ds.identities), "data": str(root)}
    return fit(model, _step, _evaluate, train_loader, val_loader, cfg.train, out_dir, kind=KIND,
               config=config, monitor="val_acc", mode="max", resume=resume, device=device)


def load_identity_model(path: str | Path, map_location: str | torch.device = "cpu") -> IdentityNet:
    """The evaluation recognizer in eval mode from a checkpoint of kind "identity"."""
    ckpt = load_checkpoint(path, kind=KIND, map_location=map_location)
    conf = ckpt.get("config", {})
    if "identity" not in conf or "identities" not in conf:
        raise CSRIPError(f"{path}: checkpoint config lacks the 'identity' settings or identity list")
    raw = dict(conf["identity"])
    train = from_dict(TrainConfig, raw.pop("train", {}))
    cfg = replace(from_dict(IdentityConfig, raw), train=train)
    model = IdentityNet(len(conf["identities"]), cfg)
    return load_weights(model, ckpt, path).to(map_location).eval()


def ensure_identity_model(data: str | Path | None, preset: str = "quick", out: str | Path | None = None,
                          device=None) -> Path:
    """Path of the evaluation recognizer's best.pt under `out` (default runs/<preset>/identity),
    training it first only if it is missing (an interrupted run is resumed)."""
    from .config import runs_dir

    out = Path(out) if out is not None else runs_dir() / preset / "identity"
    best = out / "best.pt"
    if not best.is_file():
        print(f"training the evaluation face recognizer ({preset}) into {out}")
        train_identity_model(data, out, preset=preset, device=device, resume=True)
    return best


# ------------------------------------------------------------------------------------------ metrics
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


def gallery_probe_split(labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Gallery = the first image of every identity; probes = every other image (identities with one
    image only act as gallery distractors)."""
    y = np.asarray(labels)
    _, first = np.unique(y, return_index=True)
    gallery = np.sort(first)
    probes = np.setdiff1d(np.arange(len(y)), gallery)
    return gallery, probes


def verification_pairs(labels: Any, max_impostors: int = 1_000_000, seed: int = 0
                       ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Ordered pairs (i, j), i != j, for verification: every genuine pair (same identity) and every
    impostor pair, or a fixed random sample of `max_impostors` of them on large splits.
    Returns index tensors i, j and the boolean genuine mask."""
    y = np.asarray(labels)
    n = len(y)
    order = np.argsort(y, kind="stable")
    _, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    gi, gj = [], []
    for s0, c in zip(starts, counts):
        if c > 1:
            members = order[s0:s0 + c]
            a, b = np.meshgrid(members, members, indexing="ij")
            keep = a != b
            gi.append(a[keep])
            gj.append(b[keep])
    gi = np.concatenate(gi) if gi else np.zeros(0, dtype=np.int64)
    gj = np.concatenate(gj) if gj else np.zeros(0, dtype=np.int64)
    n_impostor = n * (n - 1) - len(gi)
    if n_impostor <= max_impostors:
        a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        keep = y[a] != y[b]
        ii, ij = a[keep], b[keep]
    else:
        rng = np.random.default_rng(seed)
        ii, ij = rng.integers(0, n, 2 * max_impostors), rng.integers(0, n, 2 * max_impostors)
        keep = y[ii] != y[ij]
        ii, ij = ii[keep][:max_impostors], ij[keep][:max_impostors]
    i = np.concatenate([gi, ii]).astype(np.int64)
    j = np.concatenate([gj, ij]).astype(np.int64)
    same = np.concatenate([np.ones(len(gi), bool), np.zeros(len(ii), bool)])
    return torch.from_numpy(i), torch.from_numpy(j), same


def identity_scores(probe: torch.Tensor, reference: torch.Tensor, labels: Any) -> dict[str, Any]:
    """Identity metrics of probe embeddings (e.g. of SR images) against reference embeddings (their HR
    images), both N x D and L2-normalised, row i of each from image i with identity labels[i].

    Both sets are first centred on the mean reference embedding and re-normalised.
    Returns {"cosine": per-image cos(probe_i, reference_i) (N,), "rank1_hit": per-image 1/0 for
    probes and NaN for gallery images (N,), "rank1": mean hit rate, "auc": verification ROC AUC}.
    """
    probe, reference = probe.float().cpu(), reference.float().cpu()
    y = torch.as_tensor(np.asarray(labels))
    if probe.shape != reference.shape or len(y) != len(probe):
        raise ValueError(f"probe {tuple(probe.shape)}, reference {tuple(reference.shape)} and "
                         f"{len(y)} labels must describe the same images")
    # centre both on the mean reference embedding: a component every face shares (strong in weak,
    # briefly trained recognizers) would otherwise push every cosine towards 1
    mean = reference.mean(0, keepdim=True)
    probe, reference = F.normalize(probe - mean, dim=1), F.normalize(reference - mean, dim=1)
    cosine = (probe * reference).sum(1)
    gallery, probes = gallery_probe_split(y.numpy())
    hits = np.full(len(y), np.nan)
    if len(probes):
        sim = probe[probes] @ reference[gallery].T
        hits[probes] = (y[gallery][sim.argmax(1)] == y[probes]).float().numpy()
    i, j, same = verification_pairs(y.numpy())
    auc = roc_auc((probe[i] * reference[j]).sum(1).numpy(), same)
    return {"cosine": cosine.numpy(), "rank1_hit": hits,
            "rank1": float(np.nanmean(hits)) if len(probes) else float("nan"), "auc": auc}
