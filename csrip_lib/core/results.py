"""Published results as files, and the Markdown that README.md, docs/ and checkpoints/MODEL_CARD.md show of them.

A result NAME is `results/NAME.csv` (summary rows; more tables as `NAME_<part>.csv`) and its provenance
`results/NAME.json`: the exact command that made it (`csrip reproduce NAME ...`, csrip_lib.reproduce),
git commit and dirty flag, preset, budget, data digests, hardware, torch version, date and wall time.
`write` stores one (never over an existing one without `force`), `read` loads it.

The documents show results between markers, and only there:

    <!-- results:table1 -->
    (written by `render_docs`; edit the result, not this text)
    <!-- /results:table1 -->

`render_block(name)` is a result's Markdown (one line, "not measured yet: run `csrip reproduce NAME`",
while it is missing); `render_docs` rewrites every block of `DOCS`, `stale_docs` lists the documents
whose blocks differ from what results/ renders (tests/test_results.py fails on any). The recognizers'
accuracy table comes from the shipped checkpoints/recognizers-quick/accuracy.csv instead.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from .checkpoint import read_manifest
from .config import project_root
from .console import CSRIPError
from .outputs import check_dir

DOCS = ("README.md", "docs/*.md", "checkpoints/MODEL_CARD.md")  # glob patterns under the project root
RECOGNIZERS_CSV = "checkpoints/recognizers-quick/accuracy.csv"
MANIFEST = "checkpoints/manifest.json"
MARKER = re.compile(r"<!-- results:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /results:(?P=name) -->", re.S)
OPEN = re.compile(r"<!-- results:([\w-]+) -->")


def results_dir() -> Path:
    """The repository's results/ folder (what the documents render)."""
    return project_root() / "results"


# ----------------------------------------------------------------------------------- provenance
def digest(items: Sequence[str]) -> str:
    """A short SHA-256 of a list of names (image paths, identities), order-independent."""
    return hashlib.sha256("\n".join(sorted(map(str, items))).encode()).hexdigest()[:16]


def git_state(root: Path | None = None) -> dict[str, Any]:
    """{"commit": full hash or None, "dirty": uncommitted changes to tracked files (results/ aside)}."""
    root = root or project_root()

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    changes = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)results")
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(changes) if changes is not None else None}


def hardware() -> dict[str, Any]:
    """CPU model and cores, torch's CPU threads, GPU names (none: [])."""
    cpu = platform.processor() or platform.machine()
    try:
        names = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                 if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "gpus": gpus}


def provenance(command: str, started: float, git: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The sidecar of a result measured since `started` (time.time()) by `command`, with `fields`
    (preset, budget, data digests, ...). `git` is `git_state()` taken when the run started, before any
    measuring: the code a process runs is the code it started with, and an edit made during a long run
    must not mark its result dirty (nor a commit made meanwhile claim it)."""
    now = datetime.now(timezone.utc)
    return {"command": command, **git, **fields, "hardware": hardware(), "torch": torch.__version__,
            "python": platform.python_version(), "date": now.strftime("%Y-%m-%d %H:%M UTC"),
            "wall_s": round(now.timestamp() - started, 1)}


# ------------------------------------------------------------------------------------ the files
def paths(folder: Path, name: str, parts: Sequence[str]) -> list[Path]:
    """results/NAME.json and its CSVs (part "" -> NAME.csv, else NAME_<part>.csv)."""
    return [folder / f"{name}.json", *(folder / (f"{name}_{p}.csv" if p else f"{name}.csv") for p in parts)]


def check_writable(folder: str | Path, name: str, force: bool = False) -> Path:
    """`folder` if result `name` may be written there (before any training); else CSRIPError."""
    folder = check_dir(folder, "results folder")
    old = folder / f"{name}.json"
    if old.exists() and not force:
        raise CSRIPError(f"{old} exists; pass --force to measure {name} again and overwrite it")
    return folder


def write(folder: str | Path, name: str, tables: dict[str, pd.DataFrame], prov: dict[str, Any],
          force: bool = False) -> list[Path]:
    """Write result `name`: one CSV per table (key "" is NAME.csv) and NAME.json (prov + the file list)."""
    folder = check_writable(folder, name, force)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, *csvs = paths(folder, name, list(tables))
    if json_path.is_file():  # --force: tables the old result had and the new one lacks go with it
        for stale in set(json.loads(json_path.read_text()).get("files", ())) - {p.name for p in csvs}:
            (folder / stale).unlink(missing_ok=True)
    for path, table in zip(csvs, tables.values()):
        table.to_csv(path, index=False, float_format="%.6g")
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"name": name, **prov, "files": [p.name for p in csvs]}, indent=1) + "\n")
    tmp.replace(json_path)  # the sidecar last: a result with a JSON is complete
    return [json_path, *csvs]


def read(folder: str | Path, name: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]] | None:
    """(tables keyed like `write`'s, provenance) of result `name`, or None if it was not measured."""
    json_path = Path(folder) / f"{name}.json"
    if not json_path.is_file():
        return None
    prov = json.loads(json_path.read_text())
    tables = {f[len(name) + 1:-4] if f != f"{name}.csv" else "": pd.read_csv(Path(folder) / f)
              for f in prov["files"]}
    return tables, prov


# ------------------------------------------------------------------------------------- rendering
def _num(x: Any, digits: int, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _ci(row: pd.Series, col: str, digits: int) -> str:
    """"+2.84 [+2.80, +2.88]": a difference with its 95% interval."""
    if col not in row or pd.isna(row[col]):
        return ""
    lo, hi = row.get(f"{col}_low"), row.get(f"{col}_high")
    interval = "" if lo is None or pd.isna(lo) else f" [{_num(lo, digits, True)}, {_num(hi, digits, True)}]"
    return _num(row[col], digits, True) + interval


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("--:" if a == "r" else "---" for a in align) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _has(t: pd.DataFrame, col: str) -> bool:
    return col in t and t[col].notna().any()


IDENTITY = {"id_dist": "id_dist (lower: closer)", "rank1": "rank-1", "auc": "AUC"}  # the judge's columns
COSTS = {"params": "parameters", "gflop": "GFLOP / face", "s_per_step": "train s / step"}  # Table 1's size columns
METRICS = {"psnr": "PSNR [dB]", "ssim": "SSIM", "id_rank1": "rank-1", "id_dist": "id_dist (lower: closer)",
           "auc": "AUC"}  # rows of the paired tables


def scores_table(t: pd.DataFrame, label: Callable[[pd.Series], str] = lambda r: str(r["model"])) -> str:
    """The common table: PSNR, SSIM, paired gains over bicubic with 95% intervals, the judge's identity
    metrics where measured, the paper's gain for the same configuration (Tables 1-2), and where the result
    has them (Table 1) each model's parameters, GFLOP per face and training seconds per step."""
    ident = [c for c in IDENTITY if _has(t, c)]
    cost = [c for c in COSTS if _has(t, c)]
    header = ["model", "PSNR [dB]", "SSIM", "dPSNR vs bicubic [95% CI]", "dSSIM [95% CI]",
              *(IDENTITY[c] for c in ident), "paper dPSNR / dSSIM", *(COSTS[c] for c in cost)]
    rows = []
    for _, r in t.iterrows():
        paper = f"{_num(r.get('paper_dpsnr'), 2, True)} / {_num(r.get('paper_dssim'), 3, True)}" \
            if pd.notna(r.get("paper_dpsnr", float("nan"))) else ""
        sizes = [f"{int(r[c]):,}" if c == "params" and pd.notna(r.get(c)) else _num(r.get(c), 2) for c in cost]
        rows.append([label(r), _num(r.get("psnr"), 2), _num(r.get("ssim"), 3), _ci(r, "dpsnr", 2),
                     _ci(r, "dssim", 3), *[_num(r.get(c), 3) for c in ident], paper, *sizes])
    return _table(header, rows, "lrrrr" + "r" * len(ident) + "r" + "r" * len(cost))


def _setup(prov: dict[str, Any]) -> str:
    """Where, when, on what and by which command a result was measured, in one paragraph."""
    hw = prov["hardware"]
    gpu = ", ".join(hw["gpus"]) if hw["gpus"] else "no GPU"
    commit = (prov.get("commit") or "unknown")[:7] + (" with uncommitted changes" if prov.get("dirty") else "")
    test = prov.get("test_data", {})
    subset = " (a fixed subset: --max-images)" if prov.get("max_images") else ""
    return (f"Scored on {test.get('images', '?'):,} test faces of {test.get('identities', '?'):,} identities "
            f"that no model trained on{subset}, sha256 {test.get('sha256', '?')}; "
            f"judge: {prov.get('judge', 'none')}. Measured {prov['date']} at commit {commit} in "
            f"{prov['wall_s'] / 60:.1f} min wall on {hw['cpu']} ({hw['cores']} cores, {gpu}), torch "
            f"{prov['torch']}, by\n`{prov['command']}`")


def _budget(prov: dict[str, Any]) -> str:
    b = prov["budget"]
    return (f"{b['steps']:,} Adam steps of batch {b['batch_size']} ({b['steps'] * b['batch_size']:,} images), "
            f"the `{prov['preset']}` preset's sizes and learning rate, validation every {b['validate_every']} "
            "steps with the best validation epoch kept, no early stop")


def _reading(low: float, high: float) -> str:
    """What a 95% interval supports, in either direction."""
    if pd.isna(low):
        return "no interval (one value per model)"
    return "higher (interval above 0)" if low > 0 else "lower (interval below 0)" if high < 0 else \
        "no difference shown (interval contains 0)"


def render_table1(tables: dict[str, pd.DataFrame], prov: dict[str, Any]) -> str:
    t = tables[""]
    models = t[~t["model"].isin(["bicubic", "hr"])]
    clear = models[(models["dpsnr_low"] > 0) & (models["dssim_low"] > 0)]["model"].tolist()
    not_clear = [m for m in models["model"] if m not in clear]
    verdict = (f"Clearly above bicubic in PSNR and SSIM (both 95% intervals above 0): {', '.join(clear) or 'none'}"
               f"; not: {', '.join(not_clear) or 'none'}.")
    sizes = (" Sizes: parameters of the network that makes the face (a GAN's generator), GFLOP per face "
             "counted by torch's FlopCounterMode, train s / step the run's wall seconds (training and "
             "validation; SRGAN's two stages together) over its steps on the machine below; the forest has "
             "neither parameters nor FLOPs." if _has(t, "params") else "")
    return (f"Every network trained from scratch at one budget: {_budget(prov)}; NBSRF-like is one forest "
            f"fit (no steps). Identity priors (lp, SRGAN, C-SRIP): `{prov['recognizers']}`.{sizes} {_setup(prov)}"
            f"\n\n{scores_table(t)}\n\n{verdict}")


def render_table2(tables: dict[str, pd.DataFrame], prov: dict[str, Any]) -> str:
    t, paired = tables[""], tables["paired"]
    label = (lambda r: f"{r['model']} (alpha {r['alpha']:g}), seed {int(r['seed'])}" if pd.notna(r.get("seed"))
             else str(r["model"]))
    rows = []
    for _, r in paired.iterrows():
        digits = 2 if r["metric"] == "psnr" else 3
        seeds = ", ".join(_num(float(x), digits + 1, True) for x in str(r["per_seed"]).split(";"))
        rows.append([METRICS[r["metric"]], _ci(r, "diff", digits + 1), seeds, _num(r["seed_sd"], digits + 1),
                     _reading(r["diff_low"], r["diff_high"])])
    pooled = _table([f"{prov['compared'][1]} - {prov['compared'][0]}", "pooled over seeds [95% CI]",
                     "per seed", "seed-to-seed sd", "reading"], rows, "lrrrl")
    return (f"C+SSIM+M (alpha 0) and C-SRIP (alpha {prov['alpha']:g}) trained from scratch, seeds "
            f"{', '.join(map(str, prov['seeds']))}, each at {_budget(prov)}, with the identity priors "
            f"`{prov['recognizers']}`. {_setup(prov)}\n\n{scores_table(t, label)}\n\n"
            f"Paired differences on the same test faces, pooled over seeds; 95% intervals from "
            f"{prov['bootstrap']:,} bootstrap resamples of identities (AUC: one value per model and seed, so no "
            f"interval; rank-1: over the probes both models rank). The intervals resample test identities, not "
            f"trainings: how much a difference moves from one training seed to the next is the seed-to-seed sd, "
            f"from {len(prov['seeds'])} seeds.\n\n{pooled}")


def render_default_model(tables: dict[str, pd.DataFrame], prov: dict[str, Any]) -> str:
    t = tables[""]

    def label(r: pd.Series) -> str:
        if pd.isna(r.get("steps")):
            return str(r["model"])
        after = f" after `{r['init']}`" if pd.notna(r.get("init")) else ""
        steps = f"{int(r['steps']):,} steps of batch {int(r['batch_size'])}{after}"
        return f"`{r['model']}` ({r['configuration']}, {steps})"

    text = (f"`csrip evaluate` of the shipped SR models ({', '.join(prov['models'])}) with bicubic and HR; the "
            f"paper's gain is that of the same configuration (Table 2). {_setup(prov)}\n\n{scores_table(t, label)}")
    if "paired" in tables:
        p = tables["paired"]
        rows = [[r["model"], METRICS[r["metric"]], _ci(r, "diff", 2 if r["metric"] == "psnr" else 3),
                 _reading(r["diff_low"], r["diff_high"])] for _, r in p.iterrows()]
        text += (f"\n\nPaired against `{prov['compare_to']}` on the same faces (95% intervals, identities "
                 f"resampled):\n\n" + _table(["model", "metric", f"minus {prov['compare_to']} [95% CI]", "reading"],
                                            rows, "llrl"))
    return text


def render_recognizers(root: Path) -> str:
    path = root / RECOGNIZERS_CSV
    if not path.is_file():
        return f"not shipped: {RECOGNIZERS_CSV} is missing"
    t = pd.read_csv(path)
    rows = [[f"{int(r['scale'])} px", f"{int(r['best_epoch'])} of {int(r['epochs'])}", _num(r["train_acc"], 3),
             _num(r["val_acc"], 3), f"{r['val_acc'] / r['chance']:.0f}x", f"{r['chance']:.4f} / {r['majority']:.4f}",
             f"{r['paper_train']:.4f} / {r['paper_val']:.4f}"] for _, r in t.iterrows()]
    r0 = t.iloc[0]
    return (f"Rank-1 of the shipped `recognizers-quick` ({int(r0['identities'])} identities, "
            f"{int(r0['train_images']):,} training / {int(r0['val_images'])} validation images; from "
            f"`{RECOGNIZERS_CSV}`, which their training wrote):\n\n"
            + _table(["scale", "kept epoch", "train", "val", "val / chance", "chance / majority (val)",
                      "paper train / val (CASIA-WebFace)"], rows, "lrrrrrr"))


def render_shipped(root: Path, folder: Path) -> str:
    """A model-card section per shipped model of results/table1 (`csrip reproduce table1 --ship`): what it is,
    its file and SHA-256 from checkpoints/manifest.json, and its scores from results/table1."""
    entries = {n: e for n, e in read_manifest(root / MANIFEST).items() if e.get("result") == "table1"}
    result = read(folder, "table1")
    if not entries or result is None:
        return "not shipped yet: run `csrip reproduce table1`, then `csrip reproduce table1 --ship`"
    (tables, prov), sections = result, []
    rows = tables[""].set_index("model")
    for name, e in entries.items():
        r = rows.loc[e["configuration"]]
        files = ", ".join(f"`{rel}` ({(root / 'checkpoints' / rel).stat().st_size / 1e6:.2f} MB) sha256 `{d}`"
                          for rel, d in e["files"].items())
        kept = f"kept step {int(r['kept_step'])}" if r.get("kept_step", 0) > 0 else "one forest fit, no steps"
        sections.append(f"### {name}\n\n{e['description']}; {kept}. {files}.\nTest split (results/table1): PSNR "
                        f"{_num(r['psnr'], 2)} dB ({_ci(r, 'dpsnr', 2)} over bicubic), SSIM {_num(r['ssim'], 3)} "
                        f"({_ci(r, 'dssim', 3)}).")
    return (f"Trained and scored by\n`{prov['command']}`\n(measured {prov['date']}; results/table1.json has "
            "the rest of the provenance), shipped by `csrip reproduce table1 --ship`.\n\n" + "\n\n".join(sections))


RENDERERS: dict[str, Callable[[dict[str, pd.DataFrame], dict[str, Any]], str]] = {
    "table1": render_table1, "table2": render_table2, "default-model": render_default_model}


def render_block(name: str, folder: Path | None = None, root: Path | None = None) -> str:
    """The Markdown of block `name` (a result of `folder`, or "recognizers-quick")."""
    root = root or project_root()
    if name == "recognizers-quick":
        return render_recognizers(root)
    if name == "table1-models":
        return render_shipped(root, folder or root / "results")
    if name not in RENDERERS:
        raise CSRIPError(f"unknown results block {name!r}; known: "
                         f"{', '.join([*RENDERERS, 'recognizers-quick', 'table1-models'])}")
    result = read(folder or root / "results", name)
    if result is None:
        return f"not measured yet: run `csrip reproduce {name}`"
    return RENDERERS[name](*result)


def render_text(text: str, folder: Path | None = None, root: Path | None = None, where: str = "") -> str:
    """`text` with every marked block rendered; an opening marker without its closing one is an error."""
    opened, closed = OPEN.findall(text), [m["name"] for m in MARKER.finditer(text)]
    if sorted(opened) != sorted(closed):
        raise CSRIPError(f"{where}: results blocks {sorted(set(opened) - set(closed))} lack their closing "
                         "marker <!-- /results:NAME -->")
    return MARKER.sub(lambda m: f"<!-- results:{m['name']} -->\n{render_block(m['name'], folder, root)}\n"
                                f"<!-- /results:{m['name']} -->", text)


def render_docs(folder: Path | None = None, root: Path | None = None, write: bool = True) -> list[Path]:
    """Render the blocks of every document of `DOCS` under `root`; returns those that changed (or, with
    write=False, would change)."""
    root = root or project_root()
    changed = []
    for doc in (path for pattern in DOCS for path in sorted(root.glob(pattern))):
        text = doc.read_text()
        new = render_text(text, folder, root, where=str(doc))
        if new != text:
            changed.append(doc)
            if write:
                doc.write_text(new)
    return changed


def stale_docs(folder: Path | None = None, root: Path | None = None) -> list[Path]:
    """The documents whose result blocks differ from what `folder` (results/) renders."""
    return render_docs(folder, root, write=False)
