"""Evaluation over datasets (paper Sec. 4.2-4.4, A.1-A.2): per-image scores, tables, failure analysis.

`evaluate_models` runs any number of SR models (and always the bicubic baseline) over the
identity-disjoint test split and returns one row per (model, image):

    model, image, identity, psnr, ssim [, id_dist, id_match, id_rank1, id_failed, id_auc, id_tar]

The identity columns (beyond the paper, see `csrip_lib.evaluation.identity`) appear when the identity judge
(`csrip_lib.evaluation.judge`, dlib's pre-trained face recognizer; `pip install 'csrip[judge]'`) is given; the HR
images themselves are then scored too (model "hr": the identity upper bound; their PSNR/SSIM against
themselves are left empty). Evaluation never trains a network. Everything else here turns that frame
into what the paper shows: Table 1/2 summaries (`summarize_results`, `compare_to_paper`), the
cumulative score distribution of Fig. 8 (`csd_curve`), image attributes that explain the failures
of Fig. 10 (`image_attributes`, `attribute_correlations`) and the sharpening of A.2 (`sharpen`).

Degradation. Every model is scored on LR inputs degraded as it was trained (`model.degradation`, saved
in its checkpoint; older checkpoints: the default DegradationConfig()), and bicubic (and the HR row) on
the same LR inputs. `--sigma` (`degradation=`) overrides it, with a warning for each model trained
otherwise. Models trained under different degradations are refused together (`degradation.for_models`):
one table would score them on different inputs, or some of them on inputs they were not trained for.

Command line: `csrip evaluate --checkpoint CKPT [CKPT ...] --data DIR --out results.csv [--sigma S]`.
"""
from __future__ import annotations

import argparse
import contextlib
import re
import sys
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from ..core.checkpoint import load_checkpoint
from ..core.config import RESIDUAL_SIGMAS, DegradationConfig, to_dict
from ..core.console import CSRIPError, nonnegative_float, nonnegative_int, positive_int, printable, tqdm
from ..core.degradation import for_models, make_pyramid, residual, upsample_bicubic
from ..core.outputs import check_dir, check_outputs, write_outputs
from ..core.runtime import pick_device
from ..data.faces import FaceDataWarning, FaceFolder, IndexedFaces, resolve_data
from ..models.registry import load_sr
from ..models.zoo import resolve
from . import judge as judge_mod
from .identity import identity_metrics
from .inference import Upscaler
from .metrics import psnr_ssim

SRFn = Callable[[torch.Tensor], torch.Tensor]  # LR N x 3 x 24 x 24 -> SR N x 3 x 192 x 192, [0, 1]

# Paper numbers (LFW, 24 -> 192 px), keyed by `_key(name)`.
PAPER_TABLE1: dict[str, tuple[float, float]] = {  # Table 1
    "bicubic": (24.256, 0.7060), "nbsrf": (25.092, 0.7268), "srcnn": (24.812, 0.7187),
    "vdsr": (25.415, 0.7411), "lp": (26.985, 0.7903), "srgan": (25.669, 0.6993),
    "urdgn": (25.575, 0.7516), "csrip": (27.164, 0.8171)}
PAPER_TABLE2: dict[str, tuple[float, float]] = {  # Table 2 (ablation)
    "baseline": (26.1748, 0.7547), "bssim": (26.0251, 0.7579), "cssim": (26.4137, 0.7731),
    "cssimm": (26.4511, 0.7841), "csrip": (27.1638, 0.8171)}
PAPER_NAMES = {"bicubic": "Bicubic", "nbsrf": "NBSRF", "srcnn": "SRCNN", "vdsr": "VDSR", "lp": "lp",
               "srgan": "SRGAN", "urdgn": "URDGN", "csrip": "C-SRIP", "baseline": "Baseline",
               "bssim": "B+SSIM", "cssim": "C+SSIM", "cssimm": "C+SSIM+M"}


def _key(name: str) -> str:
    """Model-name key for matching against the paper's tables: "C+SSIM+M", "c_ssim_m" -> "cssimm"; a
    stand-in named after the method matches the method's row, whatever its parenthesis says
    ("NBSRF-like" -> "nbsrf", "SRGAN-like (SqueezeNet content loss)" -> "srgan")."""
    return re.sub(r"[^a-z0-9]", "", name.lower().split(" (")[0].split("-like")[0])


def bicubic(lr: torch.Tensor) -> torch.Tensor:
    """The bicubic baseline of Table 1 (pixel-centre aligned with the degradation)."""
    return upsample_bicubic(lr, 8)


def sharpen(x: torch.Tensor) -> torch.Tensor:
    """The post-processing of paper A.2: the 3x3 sharpening kernel [0,-1,0; -1,5,-1; 0,-1,0] applied
    per channel (replicate padding), clipped to [0, 1]."""
    k = torch.tensor([[0., -1., 0.], [-1., 5., -1.], [0., -1., 0.]], dtype=x.dtype, device=x.device)
    k = k.expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1]).clamp(0, 1)


def sharpened(model: SRFn) -> SRFn:
    """`model` followed by `sharpen` (A.2), as one SR function for `evaluate_models`."""
    return lambda lr: sharpen(model(lr).float())


# ------------------------------------------------------------------------------------------ models
def model_name(path: str | Path, ckpt: Mapping[str, Any] | None = None) -> str:
    """A model's display name: the checkpoint config's "name"/"variant" if any, else its run folder
    (runs/quick/csrip/best.pt -> "csrip"), else the file stem; printable on one line (`printable`)."""
    conf = (ckpt or {}).get("config", {}) or {}
    for field in ("name", "variant"):
        if isinstance(conf.get(field), str) and conf[field].strip():
            return printable(conf[field], 80)
    path = Path(path)
    return printable(path.parent.name if path.stem in ("best", "last") and path.parent.name else path.stem, 80)


def load_models(checkpoints: list[str | Path], map_location: str | torch.device = "cpu") -> dict[str, torch.nn.Module]:
    """SR models from checkpoints (paths or shipped names), keyed by `model_name`, made unique: a name
    taken (by another model, or "bicubic"/"hr") gets its run's parent folder, then a number ("name #2").
    One file given twice is an error, not two rows. Each model carries the degradation it was trained
    under (`.degradation`)."""
    models: dict[str, torch.nn.Module] = {}
    seen: dict[Path, str] = {}
    for given, path in zip(checkpoints, map(resolve, checkpoints)):  # shipped names -> checkpoints/<name>.pt
        if Path(path).resolve() in seen:
            raise CSRIPError(f"{given} is given twice (the same file as {seen[Path(path).resolve()]}); "
                             "name each checkpoint once")
        seen[Path(path).resolve()] = str(given)
        ckpt = load_checkpoint(path, kind="sr", map_location="cpu")  # validates: CSRIPError if not ours
        name = base = model_name(path, ckpt)
        if name in models or name in ("bicubic", "hr"):
            name = base = f"{printable(Path(path).parent.parent.name, 40)}/{base}"
        k = 1
        while name in models or name in ("bicubic", "hr"):
            k += 1
            name = f"{base} #{k}"
        models[name] = load_sr(path, map_location=map_location)
    return models


def _autocast(device: torch.device):
    return (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
            else contextlib.nullcontext())


def _prepare(fn: SRFn, device: torch.device, compile: bool | str = "auto") -> SRFn:
    """SR modules go through the project's fast path (`inference.Upscaler`: bf16 autocast,
    channels_last, torch.compile and CUDA graphs on CUDA; fp32 on CPU); plain functions pass through."""
    return Upscaler(fn, device=device, compile=compile) if isinstance(fn, torch.nn.Module) else fn


@torch.no_grad()
def _run(fn: SRFn, lr: torch.Tensor, device: torch.device) -> torch.Tensor:
    with _autocast(device):
        out = fn(lr)
    return out.float().clamp(0, 1).contiguous()


# -------------------------------------------------------------------------------------------- data
def _dataset(data: Any, split: str, max_images: int | None = None) -> Dataset:
    """A FaceFolder from a path (or None: resolve_data's order), or a given dataset unchanged."""
    if isinstance(data, Dataset):
        return data
    if max_images is not None and max_images < 1:
        raise ValueError(f"max_images must be >= 1 (or None for all), got {max_images}")
    root = resolve_data(data)
    ds = FaceFolder(root, split=split)
    if len(ds) == 0:
        raise CSRIPError(f"{root}: no images in the {split!r} split; expected face folders "
                         "<root>/<identity>/<image>.jpg|png")
    return ds if max_images is None or len(ds) <= max_images else _identity_subset(ds, max_images)


def _identity_subset(ds: Dataset, max_images: int, seed: int = 0) -> Subset:
    """`max_images` images (or all, if fewer) made of whole identities taken in a seeded random order,
    the last identity cut to fit, so that a quick evaluation still has several images per identity for
    the identity metrics; the same subset on every call."""
    by_id: dict[int, list[int]] = {}
    for i, label in enumerate(ds.labels):
        by_id.setdefault(label, []).append(i)
    groups = list(by_id.values())
    keep: list[int] = []
    for k in torch.randperm(len(groups), generator=torch.Generator().manual_seed(seed)).tolist():
        keep += groups[k][: max_images - len(keep)]
        if len(keep) == max_images:
            break
    return Subset(ds, sorted(keep))


def _item_info(ds: Dataset, i: int) -> tuple[str, str]:
    """(image path relative to the dataset root, identity) of item i of a FaceFolder-like dataset."""
    if isinstance(ds, Subset):
        return _item_info(ds.dataset, ds.indices[i])
    items = getattr(ds, "items", None)
    if items is None:
        return str(i), str(ds[i][1])
    path, identity = items[i]
    root = getattr(ds, "root", None)
    try:
        return str(Path(path).relative_to(root)) if root is not None else str(path), str(identity)
    except ValueError:
        return str(path), str(identity)


def _readable_info(ds: Dataset, readable: torch.Tensor) -> list[tuple[str, str]]:
    """`_item_info` of the items read from their own file; one warning counts (and names) the others,
    which were unreadable and are left out. CSRIPError if none was readable."""
    info = [_item_info(ds, i) for i in range(len(ds))]
    bad = [info[i][0] for i in torch.nonzero(~readable).flatten().tolist()]
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable image(s) of {len(info)}: {', '.join(bad[:5])}"
                      f"{' ...' if len(bad) > 5 else ''}", FaceDataWarning, stacklevel=3)
    if len(bad) == len(info):
        raise CSRIPError(f"none of the {len(info)} images could be read")
    return [info[i] for i in torch.nonzero(readable).flatten().tolist()]


def sample_images(data: Any = None, split: str = "test", n: int = 6, seed: int = 0,
                  indices: list[int] | None = None) -> tuple[torch.Tensor, list[str]]:
    """`n` HR test images (N x 3 x 192 x 192 float in [0, 1]) picked at random with `seed` (or the
    given `indices`), with their relative paths: the examples of Figs. 6, 7, 9, 12, 13."""
    ds = _dataset(data, split)
    if indices is None:
        g = torch.Generator().manual_seed(seed)
        indices = torch.randperm(len(ds), generator=g)[:n].tolist()
    items = IndexedFaces(ds)
    picked = [(image, i) for i in indices for image, _, ok in [items[i]] if ok]  # unreadable: left out
    hr = torch.stack([image for image, _ in picked]).float() / 255
    return hr, [_item_info(ds, i)[0] for _, i in picked]


@torch.no_grad()
def super_resolve(models: Mapping[str, SRFn], hr: torch.Tensor, degradation: DegradationConfig | None = None,
                  device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """Columns of a qualitative figure (Figs. 6, 7, 9): the 24 px input upscaled by nearest
    neighbour ("LR input"), "Bicubic", every model, and the "Target" HR image (CPU tensors). The LR
    input is degraded as the models were trained (`degradation.for_models`; `degradation` overrides)."""

    device = pick_device(device)
    hr = hr.to(device)
    lr = make_pyramid(hr, for_models(models, degradation))["lr"]
    cols = {"LR input": F.interpolate(lr, scale_factor=8, mode="nearest"), "Bicubic": bicubic(lr)}
    for name, fn in models.items():
        cols[name] = _run(_prepare(fn, device, compile=False), lr, device)  # a few images: no compile
    cols["Target"] = hr
    return {k: v.float().cpu() for k, v in cols.items()}


# -------------------------------------------------------------------------------------- evaluation
def evaluate_models(models: Mapping[str, SRFn], data: Any = None, split: str = "test", *,
                    batch_size: int = 32, device: str | torch.device | None = None,
                    judge: Any = None, judged: Collection[str] | None = None, include_bicubic: bool = True,
                    include_hr: bool | None = None, degradation: DegradationConfig | None = None,
                    max_images: int | None = None, num_workers: int = 0,
                    progress: bool = True) -> pd.DataFrame:
    """Score every model on every image of `split` of `data` (a face folder path, None for
    `resolve_data`'s default, or a Dataset yielding (uint8 3x192x192, label)).

    Each HR image is degraded to 24 px with `make_pyramid` (paper Sec. 3.3) under the models' training
    degradation (`degradation.for_models`; `degradation` overrides it, see the module docstring; it is
    recorded in `df.attrs["degradation"]`), super-resolved by each model (and bicubic) and compared with the HR image (csrip_lib.evaluation.metrics.psnr_ssim). `max_images` takes a
    fixed random subset of (mostly whole) identities (see `_identity_subset`). Returns one row per
    (model, image): model, image, identity, psnr, ssim, and with a `judge` (`judge.FaceJudge`) also
    id_dist, id_match, id_rank1 (1/0, empty where excluded), id_failed and per model id_auc, id_tar
    (see `identity.identity_metrics`; per-model counts and notes in `df.attrs["identity"]`); `judged`
    names the models the judge scores (None: all; bicubic and HR always), the others' identity cells stay
    empty (the judge takes most of an evaluation's time on a CPU). HR
    descriptors of image files are cached on disk (`judge.EmbeddingCache`). SR modules run through
    `inference.Upscaler` (CUDA: bf16, channels_last, torch.compile, CUDA graphs; CPU: fp32).
    """

    device = pick_device(device)
    degradation = for_models(models, degradation)
    ds = _dataset(data, split, max_images)
    fns: dict[str, SRFn] = {"bicubic": bicubic} if include_bicubic else {}
    fns.update({name: _prepare(fn, device) for name, fn in models.items()})
    if include_hr is None:
        include_hr = judge is not None
    hr_embed = _HREmbedder(judge, ds) if judge is not None else None
    if judged is not None and set(judged) - set(fns):
        raise CSRIPError(f"judged names models that are not evaluated: {sorted(set(judged) - set(fns))}")
    judged = (set(fns if judged is None else judged) | {"bicubic", "hr"}) if judge is not None else set()

    loader = DataLoader(IndexedFaces(ds), batch_size=batch_size, shuffle=False, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    scores: dict[str, dict[str, list]] = {name: {"psnr": [], "ssim": [], "emb": []} for name in fns}
    hr_emb, labels, readable = [], [], []
    bar = tqdm(loader, desc="evaluate", unit="batch", disable=not progress)
    for hr_u8, y, ok in bar:
        readable.append(ok)  # rows only for images read from their own file (IndexedFaces)
        if not ok.any():
            continue
        hr_u8, y = hr_u8[ok], y[ok]
        if hr_embed is not None:
            hr_emb.append(hr_embed(hr_u8))
        hr_u8 = hr_u8.to(device, non_blocking=True)
        lr = make_pyramid(hr_u8.float() / 255, degradation)["lr"]
        labels.append(y)
        if judge is not None:  # the judge's processes may run one batch behind, no further
            bar.set_postfix_str("identity judge")  # the bar shows what runs: a batch takes minutes on a busy CPU
            for scored in scores.values():
                for wait in scored["emb"][-1:]:
                    wait()
        for name, fn in fns.items():
            bar.set_postfix_str(name)
            sr = _run(fn, lr, device)
            psnr_db, ssim_mean = psnr_ssim(sr, hr_u8)  # each image prepared once; uint8: the exact 8-bit values
            scores[name]["psnr"].append(psnr_db.float().cpu())
            scores[name]["ssim"].append(ssim_mean.float().cpu())
            if name in judged:
                scores[name]["emb"].append(judge.submit(sr))  # judged while the next batch is scored

    info = _readable_info(ds, torch.cat(readable))
    base = pd.DataFrame({"image": [p for p, _ in info], "identity": [c for _, c in info]})
    labels_np = torch.cat(labels).numpy()
    frames, id_info = [], {}
    names = list(fns) + (["hr"] if include_hr else [])
    for name in names:
        df = base.copy()
        df.insert(0, "model", name)
        if name == "hr":
            df["psnr"] = np.nan
            df["ssim"] = np.nan
        else:
            df["psnr"] = torch.cat(scores[name]["psnr"]).numpy()
            df["ssim"] = torch.cat(scores[name]["ssim"]).numpy()
        if name in judged:  # the others get empty identity cells (pd.concat)
            gallery = np.concatenate(hr_emb)
            probe = gallery if name == "hr" else np.concatenate([wait() for wait in scores[name]["emb"]])
            m = identity_metrics(probe, gallery, labels_np)
            df["id_dist"] = m["id_dist"]
            df["id_match"] = np.where(np.isnan(m["id_dist"]), np.nan, m["id_dist"] < judge_mod.MATCH_THRESHOLD)
            df["id_rank1"] = m["rank1_hit"]
            df["id_failed"] = ~np.isfinite(probe).all(1)
            df["id_auc"], df["id_tar"] = m["auc"], m["tar"]
            id_info[name] = {k: m[k] for k in ("rank1_probes", "rank1_excluded", "failed", "tar_note")}
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.attrs["root"] = str(getattr(getattr(ds, "dataset", ds), "root", ""))
    out.attrs["identity"] = id_info
    out.attrs["degradation"] = to_dict(degradation)
    return out


class _HREmbedder:
    """Judge descriptors of HR batches, read from / added to the on-disk cache (`judge.EmbeddingCache`,
    keyed by the faces' pixels) when the dataset is a face folder, computed otherwise."""

    def __init__(self, judge: Any, ds: Dataset):
        self.judge = judge
        root = getattr(getattr(ds, "dataset", ds), "root", None)
        self.cache = judge_mod.EmbeddingCache(root) if root is not None else None

    def __call__(self, hr_u8: torch.Tensor) -> np.ndarray:
        """Descriptors of the HR faces `hr_u8` (N x 3 x 192 x 192 uint8)."""
        if self.cache is None:
            return self.judge.embed(hr_u8)
        emb, keys = self.cache.lookup(hr_u8)
        todo = [k for k, key in enumerate(keys) if key not in self.cache]
        if todo:
            emb[todo] = self.judge.embed(hr_u8[todo])
            self.cache.store([keys[k] for k in todo], emb[todo])
            self.cache.save()  # per batch: an interrupted evaluation keeps what it computed
        return emb


def summarize_results(df: pd.DataFrame) -> pd.DataFrame:
    """Per-model summary in the layout of Tables 1/2 (models as rows, in the order of `df`): images,
    mean / median / std of PSNR and SSIM, and, when present, the judge's mean id_dist, id_match rate,
    rank-1 (over rank1_probes probes), verification AUC, TAR at FAR=1e-3 and the faces it failed on."""
    g = df.groupby("model", sort=False)
    out = pd.DataFrame({"images": g.size()})
    for metric in ("psnr", "ssim"):
        for stat in ("mean", "median", "std"):
            out[f"{metric}_{stat}"] = g[metric].agg(stat)
    if "id_dist" in df:
        judged = g["id_failed"].count() > 0  # False: left to PSNR/SSIM (`evaluate_models(judged=...)`), all empty
        out["id_dist"] = g["id_dist"].mean()  # pandas means skip NaN (faces the judge failed on)
        out["id_match"] = g["id_match"].mean()
        out["rank1"] = g["id_rank1"].mean()
        out["rank1_probes"] = g["id_rank1"].count().where(judged)
        out["auc"] = g["id_auc"].first()
        out["tar_far1e-3"] = g["id_tar"].first()
        out["judge_failed"] = g["id_failed"].sum().astype(int).where(judged)
    return out


def compare_to_paper(summary: pd.DataFrame, table: str = "table1") -> pd.DataFrame:
    """Measured means next to the paper's (Table 1 or Table 2) for every model of `summary`, matched by
    name ("C-SRIP", "csrip", "c_srip" all match); a model the paper lacks gets empty paper cells. The
    paper's rows we did not measure are left out (rows of empty measurements mislead): `unmeasured` names them."""
    paper = {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2}[table]
    rows = []
    for model, r in summary.iterrows():
        p = paper.get(_key(str(model)), (np.nan, np.nan))
        rows.append({"model": model, "paper_psnr": p[0], "measured_psnr": r["psnr_mean"],
                     "paper_ssim": p[1], "measured_ssim": r["ssim_mean"]})
    return pd.DataFrame(rows).set_index("model")


def unmeasured(summary: pd.DataFrame, table: str = "table1") -> list[str]:
    """The paper's models of Table 1 or 2 that `summary` has no row for (by `compare_to_paper`'s matching)."""
    measured = {_key(str(m)) for m in summary.index}
    paper = {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2}[table]
    return [PAPER_NAMES[key] for key in paper if key not in measured]


def gain_over_bicubic(summary: pd.DataFrame) -> pd.DataFrame:
    """Each model's mean PSNR/SSIM gain over bicubic, measured and in the paper (Tables 1-2 share one
    test set and one bicubic row, so Table 2's gains are taken against Table 1's bicubic). Gains are
    less tied to the degradation, crop and scoring protocol than absolute scores."""
    paper = {**PAPER_TABLE1, **PAPER_TABLE2}
    b, pb = summary.loc["bicubic"], PAPER_TABLE1["bicubic"]
    rows = {}
    for model, r in summary.iterrows():
        if model == "bicubic" or np.isnan(r["psnr_mean"]):
            continue
        p = paper.get(_key(str(model)), (np.nan, np.nan))
        rows[model] = {"measured_dpsnr": r["psnr_mean"] - b["psnr_mean"], "paper_dpsnr": p[0] - pb[0],
                       "measured_dssim": r["ssim_mean"] - b["ssim_mean"], "paper_dssim": p[1] - pb[1]}
    return pd.DataFrame(rows).T


def headroom(summary: pd.DataFrame) -> str:
    """The sentence that goes beside `gain_over_bicubic`'s two columns: the gains start from two different
    bicubics (ours on these faces, the paper's Table 1 row), so they differ in headroom and compare in order,
    not in size."""
    ours, paper = float(summary.loc["bicubic", "psnr_mean"]), PAPER_TABLE1["bicubic"][0]
    if abs(ours - paper) < 0.05:
        return f"Bicubic scores {ours:.2f} dB here and {paper:.2f} dB in the paper: the gains start from the same place."
    more = "ours have" if ours < paper else "the paper's have"
    return (f"Bicubic scores {ours:.2f} dB here and {paper:.2f} dB in the paper (Table 1): our faces start "
            f"{abs(paper - ours):.2f} dB {'lower' if ours < paper else 'higher'}, so {more} more headroom, and the two "
            "gain columns compare in their order, not in their size.")


# ---------------------------------------------------------------------------- analysis (Fig. 8, 10)
def csd_curve(df: pd.DataFrame, metric: str = "ssim", models: list[str] | None = None,
              thresholds: np.ndarray | int = 200) -> pd.DataFrame:
    """Cumulative score distribution (paper Fig. 8): for each model and threshold x, the fraction of
    images with score >= x. Returns a long frame (model, threshold, fraction); curves further to the
    right are better. `thresholds`: an array, or the number of points spanning all scores."""
    models = models or [m for m in df["model"].unique() if df.loc[df["model"] == m, metric].notna().any()]
    values = df.loc[df["model"].isin(models), metric].dropna().to_numpy()
    if isinstance(thresholds, int | np.integer):
        thresholds = np.linspace(values.min(), values.max(), int(thresholds)) if len(values) else np.zeros(0)
    x = np.asarray(thresholds, dtype=float)
    rows = []
    for m in models:
        s = np.sort(df.loc[df["model"] == m, metric].dropna().to_numpy())
        frac = 1.0 - np.searchsorted(s, x, side="left") / max(len(s), 1)  # share of scores >= x
        rows.append(pd.DataFrame({"model": m, "threshold": x, "fraction": frac}))
    return pd.concat(rows, ignore_index=True)


@torch.no_grad()
def image_attributes(data: Any = None, split: str = "test", *, batch_size: int = 64,
                     max_images: int | None = None, progress: bool = True) -> pd.DataFrame:
    """Per-image attributes that may explain SR failures (paper Sec. 4.4), keyed by `image`:

    hf_energy   RMS of the 192 px residual image (sigma 7/3, Sec. 3.3): hair, background texture,
                noise, i.e. detail that a 24 px input cannot carry;
    atypicality RMS distance (48 px grey) from the mean face of the evaluated set: occlusion,
                unusual crops and lighting;
    asymmetry   RMS difference between the 48 px grey image and its mirror image: pose (profiles);
    brightness, contrast   mean and standard deviation of the grey values.
    """
    ds = _dataset(data, split, max_images)
    loader = DataLoader(IndexedFaces(ds), batch_size=batch_size, shuffle=False)
    cols: dict[str, list] = {"hf_energy": [], "asymmetry": [], "brightness": [], "contrast": []}
    small, readable = [], []
    for hr_u8, _, ok in tqdm(loader, desc="attributes", unit="batch", disable=not progress):
        readable.append(ok)
        if not ok.any():
            continue
        hr = hr_u8[ok].float() / 255
        cols["hf_energy"].append(residual(hr, RESIDUAL_SIGMAS[192]).pow(2).mean((1, 2, 3)).sqrt())
        grey = hr.mean(1, keepdim=True)
        cols["brightness"].append(grey.mean((1, 2, 3)))
        cols["contrast"].append(grey.std((1, 2, 3)))
        g48 = F.interpolate(grey, size=(48, 48), mode="area")
        cols["asymmetry"].append((g48 - g48.flip(-1)).pow(2).mean((1, 2, 3)).sqrt())
        small.append(g48)
    small_t = torch.cat(small)
    out = pd.DataFrame({"image": [p for p, _ in _readable_info(ds, torch.cat(readable))]})
    for name, parts in cols.items():
        out[name] = torch.cat(parts).numpy()
    out["atypicality"] = (small_t - small_t.mean(0, keepdim=True)).pow(2).mean((1, 2, 3)).sqrt().numpy()
    return out


def attribute_correlations(results: pd.DataFrame, attributes: pd.DataFrame, metric: str = "ssim",
                           models: list[str] | None = None, method: str = "spearman") -> pd.DataFrame:
    """Correlation (Spearman by default) between each image attribute and each model's `metric`:
    attributes as rows, models as columns. Negative = the attribute makes that model worse."""
    models = models or [m for m in results["model"].unique()
                        if results.loc[results["model"] == m, metric].notna().any()]
    names = [c for c in attributes.columns if c != "image"]
    table = {}
    for m in models:
        merged = results.loc[results["model"] == m, ["image", metric]].merge(attributes, on="image")
        table[m] = merged[names].corrwith(merged[metric], method=method)
    return pd.DataFrame(table)


def worst_images(results: pd.DataFrame, model: str, k: int = 6, metric: str = "ssim") -> pd.DataFrame:
    """The `k` images with the lowest `metric` for `model` (paper Fig. 10), worst first."""
    rows = results[results["model"] == model]
    if rows.empty:
        raise CSRIPError(f"no results for model {model!r}; have {sorted(results['model'].unique())}")
    return rows.nsmallest(k, metric).reset_index(drop=True)


def paired_effect(results: pd.DataFrame, before: str, after: str) -> pd.DataFrame:
    """Per-metric effect of going from model `before` to `after` on the same images (e.g. C-SRIP ->
    C-SRIP + sharpening, A.2): means, mean difference and the share of images that improved."""
    a = results[results["model"] == before].set_index("image")
    b = results[results["model"] == after].set_index("image").reindex(a.index)
    rows = {}
    for metric in ("psnr", "ssim"):
        d = b[metric] - a[metric]
        rows[metric] = {before: a[metric].mean(), after: b[metric].mean(), "mean_change": d.mean(),
                        "improved_share": float((d > 0).mean())}
    return pd.DataFrame(rows).T


def paired_bootstrap(results: pd.DataFrame, baseline: str, models: list[str] | None = None,
                     metrics: tuple[str, ...] = ("psnr", "ssim", "id_rank1", "id_dist"),
                     n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Paired differences `model - baseline` on the same test images, with bootstrap intervals.

    For each model and metric: the mean over images where both have a value (id_rank1: the probes
    both rank; so its mean difference is the rank-1 difference), and a percentile interval at `level`
    from `n_boot` resamples of *identities* with replacement (a cluster bootstrap: images of one person
    are not independent). Every (model, metric) draws its resamples from `seed` afresh, so an interval does
    not depend on which other models or metrics were computed with it (`csrip reproduce --interval`).
    Rows: model, metric, baseline, model_mean, diff, ci_low, ci_high, images.
    """
    base = results[results["model"] == baseline].set_index("image")
    if base.empty:
        raise CSRIPError(f"no results for baseline {baseline!r}; have {sorted(results['model'].unique())}")
    models = models or [m for m in results["model"].unique() if m not in (baseline, "hr", "bicubic")]
    rows = []
    for m in models:
        other = results[results["model"] == m].set_index("image").reindex(base.index)
        for metric in metrics:
            if metric not in base or base[metric].isna().all():
                continue
            rng = np.random.default_rng(seed)  # each interval from its own draws: recomputable alone
            d = (other[metric].astype(float) - base[metric].astype(float))
            keep = d.notna().to_numpy()
            ids, inverse = np.unique(base["identity"].to_numpy()[keep], return_inverse=True)
            sums = np.bincount(inverse, weights=d.to_numpy()[keep], minlength=len(ids))
            counts = np.bincount(inverse, minlength=len(ids)).astype(float)
            draw = rng.integers(0, len(ids), size=(n_boot, len(ids))) if len(ids) else np.zeros((0, 0), int)
            boot = sums[draw].sum(1) / np.maximum(counts[draw].sum(1), 1)
            tail = (1 - level) / 2 * 100
            lo, hi = np.percentile(boot, [tail, 100 - tail]) if len(ids) else (np.nan, np.nan)
            rows.append({"model": m, "metric": metric, "baseline": base[metric][keep].mean(),
                         "model_mean": other[metric][keep].mean(), "diff": d[keep].mean(),
                         "ci_low": lo, "ci_high": hi, "images": int(keep.sum())})
    return pd.DataFrame(rows)


def verdict(row: Mapping[str, Any], unit: str = "", lower_is_better: bool = False, digits: int = 3) -> str:
    """A `paired_bootstrap` row as one sentence: the difference, its interval, and only what the interval
    supports ("better"/"worse" when it excludes 0, else "no difference shown"), never a bare number."""
    d, lo, hi = row["diff"], row["ci_low"], row["ci_high"]
    text = f"{d:+.{digits}f}{unit} [95% interval {lo:+.{digits}f}, {hi:+.{digits}f}]"
    if pd.isna(lo) or not (lo > 0 or hi < 0):
        return f"{text}: no difference shown (the interval contains 0)"
    better = (hi < 0) == lower_is_better
    return f"{text}: {'better' if better else 'worse'} (the interval is {'below' if hi < 0 else 'above'} 0)"


# ------------------------------------------------------------------------------------ command line
def check_output(path: str | Path, force: bool = False, paired: bool = False) -> Path:
    """Fail early (CSRIPError) if results cannot be written to `path` or would overwrite a file (or a
    link) there or at its *_summary.csv (and *_paired.csv, with `paired`) sibling."""
    path = Path(path)
    if path.is_dir():
        raise CSRIPError(f"{path} is a directory; expected a .csv file path")
    check_dir(path.parent)  # a missing folder is created when the results are written
    check_outputs([path, summary_path(path), *([paired_path(path)] if paired else [])], force)
    return path


def summary_path(results: str | Path) -> Path:
    """results.csv -> results_summary.csv (the printed per-model table)."""
    results = Path(results)
    return results.with_name(results.stem + "_summary.csv")


def paired_path(results: str | Path) -> Path:
    """results.csv -> results_paired.csv (`--compare-to`: paired differences with intervals)."""
    results = Path(results)
    return results.with_name(results.stem + "_paired.csv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", nargs="*", default=[], metavar="CKPT",
                   help="SR checkpoints (best.pt of `csrip train-sr`) or shipped names (e.g. csrip-quick); "
                        "bicubic is always included")
    p.add_argument("--data", default=None, help="face folder <root>/<identity>/<image> "
                   "(default: $CSRIP_DATA, data/lfw-deepfunneled, else synthetic faces)")
    p.add_argument("--out", required=True, help="per-image results CSV (a *_summary.csv is written next to it)")
    p.add_argument("--all", action="store_true", help="evaluate every image, not only the test split")
    p.add_argument("--force", action="store_true", help="overwrite existing results")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--max-images", type=positive_int, default=None, help="evaluate a fixed random subset of N images, made of whole identities (the last one cut to fit)")
    p.add_argument("--no-identity", action="store_true",
                   help="skip the identity judge (PSNR/SSIM only; faster)")
    p.add_argument("--sigma", type=nonnegative_float, default=None, help="degradation blur per 2x step in pixels "
                   "(default: the one the models were trained with, saved in their checkpoints; older ones: 1.0)")
    p.add_argument("--compare-to", metavar="MODEL", default=None,
                   help="also report every other model's paired difference to MODEL (a model name as the "
                        "summary prints it, e.g. bicubic) with 95%% bootstrap intervals over identities "
                        "(written to *_paired.csv)")
    p.add_argument("--device", default=None, help="cuda, cpu, ... (default: best available)")
    p.add_argument("--workers", type=nonnegative_int, default=2, help="data-loading processes")
    p.add_argument("--judge-workers", type=nonnegative_int, default=None, metavar="N",
                   help="processes running the identity judge next to the scoring (dlib uses one core "
                        "each; 0: in this process; default: the usable CPU cores, at most 8; never more than those cores)")


@contextlib.contextmanager
def one_line_warnings(command: str) -> Iterator[None]:
    """Warnings of a CLI command as one line each on stderr ("csrip <command>: warning: ..."), each
    distinct message once (e.g. `--sigma` differing from a model's training degradation)."""
    seen: set[str] = set()

    def show(message, *_, **__) -> None:
        if str(message) not in seen:
            seen.add(str(message))
            print(f"csrip {command}: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = show
        yield


def run(args: argparse.Namespace) -> int:

    out = check_output(args.out, args.force, paired=args.compare_to is not None)
    device = pick_device(args.device)
    models = load_models(args.checkpoint, map_location=device)
    if args.compare_to is not None and args.compare_to not in ("bicubic", *models):
        raise CSRIPError(f"--compare-to {args.compare_to!r} is not among the evaluated models "
                         f"{['bicubic', *models]}")
    judge = None
    if not args.no_identity:
        if judge_mod.available():
            judge = judge_mod.FaceJudge(workers=args.judge_workers)
        else:
            print(f"note: {judge_mod.INSTALL_HINT}; reporting PSNR/SSIM only")
    split = "all" if args.all else "test"
    print(f"evaluating {['bicubic', *models]} on the {split!r} split on {device}")
    with one_line_warnings("evaluate"), judge or contextlib.nullcontext():  # warnings: e.g. --sigma
        df = evaluate_models(models, args.data, split, batch_size=args.batch_size, device=device, judge=judge,
                             degradation=None if args.sigma is None else DegradationConfig(sigma=args.sigma),
                             max_images=args.max_images, num_workers=args.workers)
    summary = summarize_results(df)
    tables = {out: df.to_csv(index=False).encode(errors="backslashreplace"),  # a non-UTF-8 name: \udcXX
              summary_path(out): summary.to_csv().encode(errors="backslashreplace")}
    if args.compare_to is not None:
        others = [m for m in df["model"].unique() if m not in (args.compare_to, "hr")]
        paired = paired_bootstrap(df, args.compare_to, others)
        tables[paired_path(out)] = paired.to_csv(index=False).encode()
    write_outputs(tables, args.force)
    with pd.option_context("display.float_format", "{:.4f}".format, "display.width", 200):
        print(summary.to_string())
    for name, info in df.attrs.get("identity", {}).items():
        if info["failed"] or info["rank1_excluded"] or "needed" in info["tar_note"]:
            print(f"{name}: judge failed on {info['failed']} face(s); {info['rank1_excluded']} probe(s) "
                  f"without another image of their identity left out of rank-1; TAR: {info['tar_note']}")
    print(f"degradation: {DegradationConfig(**df.attrs['degradation'])}")
    print(f"wrote {len(df)} rows to {out} and the summary to {summary_path(out)}")
    if args.compare_to is not None:
        with pd.option_context("display.float_format", "{:+.4f}".format, "display.width", 200):
            print(f"paired differences, model - {args.compare_to} (95% intervals, identities resampled):")
            print(paired.drop(columns="images").to_string(index=False))
        print(f"wrote the paired differences to {paired_path(out)}")
    return 0
