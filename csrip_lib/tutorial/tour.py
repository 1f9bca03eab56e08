"""What the tutorial notebooks train live and what they load, by their PRESET parameter.

These helpers are the notebooks' boundary: they take the notebook's PRESET name (which may be
"pretrained") and hand the library below a `config.Preset`, never a name.

`PRESET = "quick"` trains tiny models on the CPU while you watch, reusing what an earlier notebook
trained (runs are shared through `config.runs_dir()`), and shows the shipped models of
`checkpoints/` (csrip_lib.models.zoo) next to the short live runs, so a result is visible in minutes.
`PRESET = "pretrained"` trains nothing: notebooks 03, 05 and 06 load the shipped models (they are
`quick`-preset models, so data and sizes follow `quick`). `"small"` / `"paper"` train everything.

The tour works on any face folder. The shipped identity priors saved the names of the identities they
were trained on (`identities` in their checkpoints); `prior_coverage` looks those names up among the
training identities of the user's data (full LFW holds all of them; synthetic faces or a user's own
folder none), and notebook 05 says in one computed sentence which faces get an identity term.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..core.checkpoint import load_checkpoint
from ..core.config import degradation_of, get_preset, runs_dir
from ..core.console import CSRIPError
from ..data.faces import per_identity_split, resolve_data
from ..models import load_sr, zoo
from ..training.ablation import COMPETITOR_NAMES, VARIANTS, run_dir, shipped_name, train_variants, variant_runs
from ..training.recognizers import ensure_recognizers, training_folder
from ..training.sr import sr_datasets, sr_run, train_sr

PRETRAINED = "pretrained"
SHIPPED_RECOGNIZERS = "recognizers-quick"
# Table 2's pair (seed 0 of `csrip reproduce table2`) and Table 1's models, as shipped in checkpoints/
SHIPPED_PAIR = {name: shipped_name(name, "quick") for name in ("C-SRIP", "C+SSIM+M")}
SHIPPED_TABLE1 = {name: shipped_name(name, "quick") for name in (*COMPETITOR_NAMES, "C+SSIM+M", "C-SRIP")}


def model_preset(preset: str) -> str:
    """The model/data preset behind a notebook PRESET (the shipped models are `quick` models)."""
    return "quick" if preset == PRETRAINED else preset


def has_shipped(name: str, kind: str = "sr") -> bool:
    """True when checkpoints/ ships model `name` of `kind`."""
    try:
        return name in zoo.available(kind)
    except CSRIPError:
        return False


def shipped(name: str, kind: str = "sr") -> Path:
    """Path of shipped model `name` (SHA-256 checked by csrip_lib.models.zoo); a clear error if absent."""
    if name not in zoo.available(kind):
        raise CSRIPError(f"no shipped {kind} model {name!r} in checkpoints/ (shipped: "
                         f"{', '.join(zoo.available(kind)) or 'none'}); use PRESET = \"quick\" to train "
                         "the models here")
    return zoo.resolve(name, kind=kind)


def describe(path: str | Path, kind: str = "sr") -> str:
    """How a checkpoint was trained, in one line: steps, batch size, wall time, kept epoch."""
    ckpt = load_checkpoint(path, kind=kind)
    metrics, train = ckpt.get("metrics") or {}, ckpt.get("train_config") or {}
    parts = [f"{metrics['step']:,} steps" if "step" in metrics else None,
             f"batch {train['batch_size']}" if "batch_size" in train else None,
             f"{metrics['seconds'] / 60:.1f} min of training" if "seconds" in metrics else None,
             f"kept epoch {ckpt['epoch']}" if "epoch" in ckpt else None]
    return ", ".join(p for p in parts if p)


def recognizers(root: str | Path, preset: str) -> tuple[Path, pd.DataFrame]:
    """(run folder, accuracy table) of the three identity priors (Sec. 3.3).

    "pretrained": the shipped recognizers (the quick models of notebook 03 trained for tens of epochs, so
    that the identity terms of notebook 05 carry identity). "quick": the same when checkpoints/ ships them
    and they know at least half of the data's training identities (`prior_coverage`: the LFW development
    subset, full LFW); otherwise notebook 03's run under runs/<preset>/ (trained now if missing, reused).
    """
    if preset == PRETRAINED or (preset == "quick" and has_shipped(SHIPPED_RECOGNIZERS, kind="recognizers")
                                and prior_coverage(root, preset, shipped_priors()).mostly_known):
        folder = shipped_priors()
        table = folder / "accuracy.csv"
        return folder, pd.read_csv(table) if table.is_file() else pd.DataFrame()
    folder = runs_dir() / preset / "recognizers"
    return folder, ensure_recognizers(root, get_preset(preset), folder)


def shipped_priors() -> Path:
    """The folder of the shipped identity priors (checksums verified)."""
    return shipped(SHIPPED_RECOGNIZERS, kind="recognizers")


def prior_identities(folder: str | Path) -> list[str]:
    """The identity names a recognizers folder was trained on, as its checkpoints saved them."""
    return list(load_checkpoint(Path(folder) / "rec192" / "best.pt", kind="recognizer")["identities"])


@dataclass(frozen=True)
class PriorCoverage:
    """Which of the data's training identities (the identity universe of both training stages) the
    identity priors know. Faces of the others get no identity term in Eq. 4 (`CSRIPLoss`)."""
    priors: int        # identities the priors were trained on
    identities: int    # training identities of the data
    known: int         # training identities of the data that the priors know
    images: int        # training images of the data
    known_images: int  # of those, images of known identities

    @property
    def mostly_known(self) -> bool:
        return self.known > 0 and 2 * self.known >= self.identities

    def sentence(self) -> str:
        """One sentence for the notebook, computed from the counts."""
        if self.identities == 0:
            return ("This data has no training identity with enough images for the identity universe of both "
                    "training stages (the preset's minimum per identity, in the train split), so the identity term "
                    "of Eq. 4 has no face to act on here and there is nothing for alpha to weigh.")
        if self.known == 0:
            return (f"The identity priors know none of the {self.identities:,} training identities of this data "
                    f"(they were trained on {self.priors:,} other identities), so the identity term of Eq. 4 is "
                    "zero on every face here and there is nothing for alpha to weigh.")
        if self.known == self.identities:
            return (f"The identity priors know all {self.identities:,} training identities of this data "
                    f"({self.images:,} images): every training face gets the identity term.")
        return (f"The identity priors know {self.known:,} of the {self.identities:,} training identities of this "
                f"data ({self.known_images:,} of {self.images:,} images); the faces of the other "
                f"{self.identities - self.known:,} get the reconstruction terms only, no identity term.")


def _training_identities(root: str | Path, preset: str):
    """The data's identity universe for `preset` (`training_folder`), or None for a small folder of one's
    own where no identity has the preset's minimum of images."""
    folder = resolve_data(root, verbose=False)  # a missing folder stays an error
    try:
        return training_folder(folder, get_preset(model_preset(preset)).selection)
    except CSRIPError:
        return None


def prior_coverage(root: str | Path, preset: str, priors: str | Path) -> PriorCoverage:
    """Look the identity names saved with the priors in `priors` up among the training identities of the
    face folder `root` (`training_folder` of the notebook PRESET's model preset)."""
    known = set(prior_identities(priors))
    data = _training_identities(root, preset)
    if data is None:
        return PriorCoverage(priors=len(known), identities=0, known=0, images=0, known_images=0)
    counts = pd.Series([data.identities[k] for k in data.labels]).value_counts()
    hit = counts[counts.index.isin(known)]
    return PriorCoverage(priors=len(known), identities=len(counts), known=len(hit), images=int(counts.sum()),
                         known_images=int(hit.sum()))


def known_faces(root: str | Path, preset: str, priors: str | Path, n: int = 16,
                seed: int = 0) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """`n` seeded SR training faces (the 90% of each identity's images, `per_identity_split`) whose
    identities the priors in `priors` know: (the data's identity names, uint8 N x 3 x 192 x 192 HR, labels
    indexing those names), for the identity terms of notebook 05's alpha explorer. Only these n images
    are decoded. Empty tensors when the priors know none, or the data has no training identity
    (`prior_coverage` says so)."""
    known = set(prior_identities(priors))
    data = _training_identities(root, preset)
    if data is None:  # no training identity at all (`prior_coverage` says so)
        return [], torch.empty(0, 3, 192, 192, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    train_idx, _ = per_identity_split(data.labels, val_fraction=0.1, seed=0)
    pool = torch.tensor([i for i in train_idx.tolist() if data.identities[data.labels[i]] in known], dtype=torch.long)
    pick = pool[torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:n]].tolist()
    faces = [data[i] for i in pick]
    if not faces:
        return data.identities, torch.empty(0, 3, 192, 192, dtype=torch.uint8), torch.empty(0, dtype=torch.long)
    return data.identities, torch.stack([f[0] for f in faces]), torch.tensor([f[1] for f in faces])


def table1_checkpoints(preset: str, runs: Path) -> dict[str, Path]:
    """Notebook 06's Table 1 models by name (Sec. 4.2): in "pretrained" mode (or "quick" when all are
    shipped) the shipped competitors and C+SSIM+M / C-SRIP, trained from scratch at one budget by
    `csrip reproduce table1`; otherwise the finished runs of `csrip ablation --experiment table1` under
    <runs>/ablation."""
    if preset == PRETRAINED or (preset == "quick" and all(map(has_shipped, SHIPPED_TABLE1.values()))):
        return {name: shipped(n) for name, n in SHIPPED_TABLE1.items()}
    paths = {name: run_dir(runs / "ablation", name) / "best.pt" for name in SHIPPED_TABLE1}
    return {name: path for name, path in paths.items() if path.is_file()}


def table1_models(table1: Mapping[str, Path], given: Mapping[str, Path],
                  device: str | torch.device = "cpu") -> tuple[list[str], dict[str, nn.Module]]:
    """Notebook 06 scores every model once, in one `evaluate_models` pass, and reads Table 1 and Table 2
    from it. Returns Table 1's rows (bicubic first) and the Table 1 models (`table1_checkpoints`) to load
    beside the `given` ones (Table 2's, or CHECKPOINTS), by name.

    A Table 1 name that `given` holds is read from the given model, not loaded twice (in quick and
    pretrained mode both are the same shipped file; a printed line says when CHECKPOINTS put another file
    there). A Table 1 model trained under another degradation than the given ones cannot share their LR
    input (`degradation.for_models`): it is left out, and a printed line says so."""
    trained = {degradation_of(load_checkpoint(path, kind="sr")["config"]) for path in given.values()}
    rows, extra = ["bicubic"], {}
    for name, path in table1.items():
        if name in given:
            if Path(given[name]).resolve() != Path(path).resolve():
                print(f"Table 1's {name} row is the given {given[name]}, not {path}")
        else:
            model = load_sr(path, map_location=device)
            if trained and model.degradation not in trained:
                print(f"Table 1's {name} left out: trained under {model.degradation}, the given models under "
                      f"{', '.join(map(str, trained))}; evaluate it separately (csrip evaluate)")
                continue
            extra[name] = model
        rows.append(name)
    return rows, extra


def table2_checkpoints(root: str | Path, preset: str, runs: Path, train: bool) -> dict[str, Path]:
    """Notebook 06's models by name: the Table 2 variants (Sec. 4.3) it finds or trains.

    "pretrained" (or "quick" when they are shipped): the shipped C-SRIP / C+SSIM+M pair, each printed
    with how it was trained. Otherwise the ablation runs under <runs>/ablation (all five trained or
    resumed when `train`, else those with a best.pt) with notebook 03's identity priors (`recognizers`),
    and C-SRIP from notebook 05's <runs>/sr when the ablation has none (trained or resumed there).
    """
    if preset == PRETRAINED or (preset == "quick" and all(map(has_shipped, SHIPPED_PAIR.values()))):
        paths = {name: shipped(n) for name, n in SHIPPED_PAIR.items()}
        for name, n in SHIPPED_PAIR.items():
            print(f"{name}: shipped {n}, {describe(paths[name])}")
        return paths
    rec, _ = recognizers(root, preset)
    p = get_preset(preset)
    if train:
        paths = train_variants(variant_runs(list(VARIANTS), p), sr_datasets(root, p.selection, progress=False),
                               runs / "ablation", recognizers=rec, progress=False)
    else:
        paths = {name: run_dir(runs / "ablation", name) / "best.pt" for name in VARIANTS}
        paths = {name: path for name, path in paths.items() if path.is_file()}
    if "C-SRIP" not in paths:
        train_sr(root, sr_run(p), runs / "sr", recognizers=rec, resume=True, progress=False, partial_priors=True)
        paths["C-SRIP"] = runs / "sr" / "best.pt"
    return paths
