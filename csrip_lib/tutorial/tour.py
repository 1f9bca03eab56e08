"""What the tutorial notebooks train live and what they load, by their PRESET parameter.

These helpers are the notebooks' boundary: they take the notebook's PRESET name (which may be
"pretrained") and hand the library below a `config.Preset`, never a name.

`PRESET = "quick"` trains tiny models on the CPU while you watch, reusing what an earlier notebook
trained (runs are shared through `config.runs_dir()`), and shows the shipped models of
`checkpoints/` (csrip_lib.models.zoo) next to the short live runs, so a result is visible in minutes;
its Table 2 pair is the quick one (`c-ssim-m-quick` / `c-srip-quick`, priors `recognizers-quick`).
`PRESET = "pretrained"` trains nothing: notebooks 03, 05 and 06 load the shipped models. Its data sizes,
notebook 03's recognizers and Table 1 follow `quick` (`model_preset`), but the Table 2 pair of notebooks
05 and 06 is the base-scale one of issue 31 (`pair_preset`: `c-ssim-m-base` / `c-srip-base`, the 404K-parameter
`base` cascade, priors `recognizers-base`; results/table2-base reads it over seeds). Table 1's C+SSIM+M and
C-SRIP rows stay the quick models `csrip reproduce table1` measured at one budget (`table1_models`).
`"small"` / `"paper"` train everything.

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
from ..core.config import LossConfig, degradation_of, from_dict, get_preset, runs_dir
from ..core.console import CSRIPError
from ..data.faces import per_identity_split, resolve_data
from ..models import load_sr, zoo
from ..training.ablation import COMPETITOR_NAMES, VARIANTS, run_dir, shipped_name, train_variants, variant_runs
from ..training.recognizers import ensure_recognizers, training_folder
from ..training.sr import sr_datasets, sr_run, train_sr

PRETRAINED = "pretrained"
# The preset of the Table 2 pair that PRESET = "pretrained" shows in notebooks 05 and 06 (issue 31).
PAIR_PRESET = "base"
PAIR = ("C+SSIM+M", "C-SRIP")  # Table 2's pair: alpha 0, then alpha > 0; otherwise the same training
# The committed seed-level reading of each shipped pair: the quick pair is seed 0 of results/table2.
PAIR_RESULTS = {"quick": "table2", "base": "table2-base"}
SHIPPED_RECOGNIZERS = "recognizers-quick"  # notebook 03's priors (its quick recognizers trained longer)
# Table 1's models, as `csrip reproduce table1` shipped them: quick models at one budget, in every mode
SHIPPED_TABLE1 = {name: shipped_name(name, "quick") for name in (*COMPETITOR_NAMES, *PAIR)}


def model_preset(preset: str) -> str:
    """The preset of a notebook PRESET's live runs, data sizes and Table 1: "pretrained" trains nothing and
    follows `quick` (its Table 2 pair is `pair_preset`'s)."""
    return "quick" if preset == PRETRAINED else preset


def pair_preset(preset: str) -> str:
    """The preset of the Table 2 pair (C+SSIM+M vs C-SRIP) of notebooks 05 and 06: "pretrained" shows the
    shipped base pair (`PAIR_PRESET`), every other PRESET its own models."""
    return PAIR_PRESET if preset == PRETRAINED else preset


def shipped_pair(preset: str) -> dict[str, str]:
    """The checkpoints/ names of the pair `pair_preset(preset)`, alpha 0 first: "quick" -> c-ssim-m-quick,
    c-srip-quick; "pretrained" -> c-ssim-m-base, c-srip-base (`ablation.shipped_name`)."""
    return {name: shipped_name(name, pair_preset(preset)) for name in PAIR}


def pair_checkpoints(preset: str) -> dict[str, Path]:
    """The shipped pair a notebook uses instead of training one: always in "pretrained" mode (a clear error
    if it is not shipped), in "quick" mode when both are shipped; otherwise {} (the notebook trains)."""
    names = shipped_pair(preset)
    if preset == PRETRAINED or (preset == "quick" and all(map(has_shipped, names.values()))):
        return {name: shipped(n) for name, n in names.items()}
    return {}


def pair_result(preset: str) -> str:
    """The results/ block that reads the pair of `preset` over seeds (`core.results.render_block`); the
    quick pair's for a preset that ships none."""
    return PAIR_RESULTS.get(pair_preset(preset), PAIR_RESULTS["quick"])


def priors_name(preset: str) -> str:
    """The shipped identity priors the pair of `preset` was trained with: recognizers-quick, recognizers-base."""
    return f"recognizers-{pair_preset(preset)}"


def trained_loss(path: str | Path) -> LossConfig:
    """The Eq. 4 configuration (reconstruction, scales, alpha) an SR checkpoint was trained with."""
    return from_dict(LossConfig, load_checkpoint(path, kind="sr")["config"]["loss"])


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
    """(run folder, accuracy table) of notebook 03's three identity priors (Sec. 3.3).

    "pretrained": the shipped recognizers-quick (the quick models of notebook 03 trained for tens of epochs,
    so that their identity terms carry identity). "quick": the same when checkpoints/ ships them and they
    know at least half of the data's training identities (`prior_coverage`: the LFW development subset,
    full LFW); otherwise notebook 03's run under runs/<preset>/ (trained now if missing, reused).
    """
    if preset == PRETRAINED or (preset == "quick" and has_shipped(SHIPPED_RECOGNIZERS, kind="recognizers")
                                and prior_coverage(root, preset, shipped_priors()).mostly_known):
        return _with_accuracy(shipped_priors())
    folder = runs_dir() / preset / "recognizers"
    return folder, ensure_recognizers(root, get_preset(preset), folder)


def pair_recognizers(root: str | Path, preset: str) -> tuple[Path, pd.DataFrame]:
    """(folder, accuracy table) of the identity priors of notebook 05's SR models: in "pretrained" mode
    those the shipped base pair was trained with (`priors_name`: recognizers-base), otherwise `recognizers`."""
    if preset == PRETRAINED:
        return _with_accuracy(shipped_priors(preset))
    return recognizers(root, preset)


def _with_accuracy(folder: Path) -> tuple[Path, pd.DataFrame]:
    table = folder / "accuracy.csv"
    return folder, pd.read_csv(table) if table.is_file() else pd.DataFrame()


def shipped_priors(preset: str = "quick") -> Path:
    """The folder of the shipped identity priors of `preset`'s pair (`priors_name`; checksums verified)."""
    return shipped(priors_name(preset), kind="recognizers")


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
    """The data's identity universe of the pair of `preset` (`training_folder` with the selection of
    `pair_preset`: the base preset's in "pretrained" mode), or None for a small folder of one's own where
    no identity has that preset's minimum of images."""
    folder = resolve_data(root, verbose=False)  # a missing folder stays an error
    try:
        return training_folder(folder, get_preset(pair_preset(preset)).selection)
    except CSRIPError:
        return None


def prior_coverage(root: str | Path, preset: str, priors: str | Path) -> PriorCoverage:
    """Look the identity names saved with the priors in `priors` up among the training identities of the
    face folder `root` (`training_folder` of the preset of the PRESET's pair: `base` in "pretrained" mode)."""
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
    """`n` seeded SR training faces (`prior_coverage`'s training identities of the pair of `preset`; the 90%
    of each identity's images, `per_identity_split`) whose identities the priors in `priors` know: (the
    data's identity names, uint8 N x 3 x 192 x 192 HR, labels indexing those names), for the identity terms
    of notebook 05's alpha explorer. Only these n images are decoded. Empty tensors when the priors know
    none, or the data has no training identity (`prior_coverage` says so)."""
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
    beside the `given` ones (Table 2's, or CHECKPOINTS), by row name.

    A Table 1 row is the model measured at Table 1's budget, never a given model of another size or budget:
    it is read from the given model of its name only when that is the same file (quick mode, where the
    shipped pair is both). Where the given model of its name is another file (pretrained mode's base pair,
    or CHECKPOINTS), Table 1's own is loaded beside it under `table1_label` ("C-SRIP (quick)"), and a
    printed line says so. A Table 1 model trained under another degradation than the given ones cannot
    share their LR input (`degradation.for_models`): it is left out, and a printed line says so."""
    trained = {degradation_of(load_checkpoint(path, kind="sr")["config"]) for path in given.values()}
    rows, extra = ["bicubic"], {}
    for name, path in table1.items():
        if name in given and Path(given[name]).resolve() == Path(path).resolve():
            rows.append(name)  # the very same file: scored once, as the given model
            continue
        model = load_sr(path, map_location=device)
        if trained and model.degradation not in trained:
            print(f"Table 1's {name} left out: trained under {model.degradation}, the given models under "
                  f"{', '.join(map(str, trained))}; evaluate it separately (csrip evaluate)")
            continue
        row = table1_label(name, path) if name in given else name
        if row != name:
            print(f"Table 1's {name} row is {row!r}, {path}, measured at Table 1's budget; the given {name} "
                  f"({given[name]}) is scored beside it, not in Table 1")
        extra[row] = model
        rows.append(row)
    return rows, extra


def table1_label(name: str, path: str | Path) -> str:
    """The row of Table 1's model `name` scored beside a given model of that name: "C-SRIP (quick)", by the
    preset the checkpoint records ("Table 1" where it records none). The paper's tables still match it
    (`evaluate.compare_to_paper` ignores a parenthesis)."""
    preset = load_checkpoint(path, kind="sr")["config"].get("preset")
    return f"{name} ({preset or 'Table 1'})"


def table2_checkpoints(root: str | Path, preset: str, runs: Path, train: bool) -> dict[str, Path]:
    """Notebook 06's models by name: the Table 2 variants (Sec. 4.3) it finds or trains.

    "pretrained" (or "quick" when they are shipped): the shipped C+SSIM+M / C-SRIP pair (`pair_checkpoints`:
    the base pair in "pretrained" mode, the quick one in "quick"), each printed with how it was trained.
    Otherwise the ablation runs under <runs>/ablation (all five trained or resumed when `train`, else those
    with a best.pt) with notebook 03's identity priors (`recognizers`), and C-SRIP from notebook 05's
    <runs>/sr when the ablation has none (trained or resumed there).
    """
    paths = pair_checkpoints(preset)
    if paths:
        for name, n in shipped_pair(preset).items():
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
