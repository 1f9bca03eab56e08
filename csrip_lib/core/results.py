"""Published results as files, and the Markdown that README.md, docs/ and checkpoints/MODEL_CARD.md show of them.

A result NAME is `results/NAME.csv` (summary rows; more tables as `NAME_<part>.csv`) and its provenance
`results/NAME.json`: the exact command that made it (`csrip reproduce NAME ...`, csrip_lib.reproduce),
git commit and dirty flag, preset, budget, data digests, hardware, torch version, date and wall time.
`write` stores one (never over an existing one without `force`), `read` loads it. Beside the summary,
`NAME_per_image.csv.gz` holds the per-image scores every summary number and interval was computed from
(`PER_IMAGE` columns, rounded by `per_image`, so that the file recomputes them exactly: `csrip reproduce
--interval NAME --model M --metric psnr`). The provenance also names the faces (`data`: a named subset such
as `lfw-dev` by name and content digest, see data.subsets) and lists every training run a result scored,
each with the provenance its checkpoint recorded (`runs`: command, commit, dirty flag, date, wall time,
hardware; `training.harness`), and the rendered paragraph says which runs another commit trained.

The documents show results between markers, and only there:

    <!-- results:table1 -->
    (written by `render_docs`; edit the result, not this text)
    <!-- /results:table1 -->

`render_block(name)` is a result's Markdown (one line, "not measured yet: run `csrip reproduce NAME`",
while it is missing); `render_docs` rewrites every block of `DOCS`, `stale_docs` lists the documents
whose blocks differ from what results/ renders (tests/test_results.py fails on any). The recognizers'
accuracy tables come from the shipped checkpoints/recognizers-<preset>/accuracy.csv instead.
"""
from __future__ import annotations

import functools
import glob
import gzip
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

import numpy as np
import pandas as pd
import torch
from scipy import stats

from .checkpoint import load_checkpoint, read_manifest
from .config import project_root
from .console import CSRIPError
from .outputs import check_dir, write_output, write_outputs

DOCS = ("README.md", "docs/*.md", "checkpoints/MODEL_CARD.md")  # glob patterns under the project root
RECOGNIZERS = ("recognizers-quick", "recognizers-base")  # shipped priors: checkpoints/<name>/accuracy.csv
MANIFEST = "checkpoints/manifest.json"
MARKER = re.compile(r"<!-- results:(?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /results:(?P=name) -->", re.S)
OPEN = re.compile(r"<!-- results:([\w-]+) -->")
PER_IMAGE = {"psnr": 4, "ssim": 5, "id_dist": 4, "id_rank1": 0}  # the per-image scores kept, and their decimals
COMPRESSED = ("per_image",)  # parts written as NAME_<part>.csv.gz


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


_first_state = functools.cache(git_state)  # bound to the function itself, not to a later monkeypatch


def code_state() -> dict[str, Any]:
    """`git_state()` of the project as this process first read it: the code it imported. A training run
    that a long process starts later (`harness.sitting`) records this, so a checkout or edit of the tree
    meanwhile does not relabel runs trained by the code loaded before it."""
    return _first_state(project_root())


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
    """results/NAME.json and its CSVs (part "" -> NAME.csv, else NAME_<part>.csv, .csv.gz if COMPRESSED)."""
    return [folder / f"{name}.json", *(folder / (f"{name}_{p}.csv" if p else f"{name}.csv")
                                       if p not in COMPRESSED else folder / f"{name}_{p}.csv.gz" for p in parts)]


def per_image(df: pd.DataFrame) -> pd.DataFrame:
    """The per-image rows a result keeps (model, image, identity and the `PER_IMAGE` scores it has),
    rounded. The caller computes its summary from these rounded values, so the file remakes it exactly."""
    cols = ["model", "image", "identity", *(c for c in PER_IMAGE if c in df and df[c].notna().any())]
    return df[cols].round({c: d for c, d in PER_IMAGE.items() if c in cols}).reset_index(drop=True)


def check_writable(folder: str | Path, name: str, force: bool = False) -> Path:
    """`folder` if result `name` may be written there (before any training); else CSRIPError. Without
    `force`, any file of the result's names (NAME.json, NAME.csv, NAME_*.csv, even a dangling link) is
    kept; with it, an existing NAME.json must be readable (`read`), since `write` deletes the tables it
    lists, so a damaged one is refused now, not after the measuring."""
    folder = check_dir(folder, "results folder")
    old = folder / f"{name}.json"
    if not force:
        taken = [old, folder / f"{name}.csv", *sorted(folder.glob(f"{glob.escape(name)}_*.csv"))]
        held = [p for p in taken if os.path.lexists(p)]
        if held:
            raise CSRIPError(f"{held[0]} exists; pass --force to measure {name} again and overwrite it")
    elif os.path.lexists(old):
        files(folder, name, sidecar(folder, name))
    return folder


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def write(folder: str | Path, name: str, tables: dict[str, pd.DataFrame], prov: dict[str, Any],
          force: bool = False) -> list[Path]:
    """Write result `name`: one CSV per table (key "" is NAME.csv) and NAME.json (prov + the file list),
    as one `outputs.write_outputs` (the sidecar last: a result with a JSON is complete, and a failure
    leaves the old result whole). With `force`, tables the old result listed and the new one lacks go;
    only names of this result's form inside `folder` are ever deleted (`files`)."""
    folder = check_writable(folder, name, force)
    json_path, *csvs = paths(folder, name, list(tables))
    stale = set(files(folder, name, sidecar(folder, name))) if os.path.lexists(json_path) else set()
    data = {path: gzip.compress(table.to_csv(index=False).encode(), mtime=0) if part in COMPRESSED  # rounded
            else table.to_csv(index=False, float_format="%.6g").encode()  # already: read back as written
            for path, (part, table) in zip(csvs, tables.items())}
    data[json_path] = (json.dumps({"name": name, **prov, "files": [p.name for p in csvs]}, indent=1)
                       + "\n").encode()
    written = write_outputs(data, force)
    for old in stale - set(csvs):
        old.unlink(missing_ok=True)
    return [written[-1], *written[:-1]]


RESULT_FILE = r"(?:_[\w-]+)?\.csv(?:\.gz)?"  # NAME.csv, NAME_<part>.csv or NAME_<part>.csv.gz


def files(folder: Path, name: str, prov: Any) -> list[Path]:
    """The tables result JSON `prov` lists, each a plain name of the form NAME.csv or NAME_<part>.csv[.gz]
    inside `folder` and, if present, a regular file (not a device or FIFO); else CSRIPError."""
    where = folder / f"{name}.json"
    if not isinstance(prov, dict) or not isinstance(prov.get("files"), list) or not prov["files"]:
        raise CSRIPError(f"{where} is not a csrip result: expected a JSON object whose \"files\" lists its "
                         "tables (edited or damaged? measure it again with --force)")
    found = []
    for f in prov["files"]:
        if not isinstance(f, str) or not re.fullmatch(re.escape(name) + RESULT_FILE, f):
            raise CSRIPError(f"{where} lists {str(f)[:80]!r} among its files; expected names like {name}.csv or "
                             f"{name}_<part>.csv inside {folder} (edited file?); nothing was read or deleted")
        path = folder / f
        if os.path.lexists(path) and not path.is_symlink() and not path.is_file():
            raise CSRIPError(f"{path} is not a regular file (a device, FIFO or folder?); refused")
        found.append(path)
    return found


def sidecar(folder: Path, name: str) -> Any:
    """The parsed NAME.json of a result (a regular file, valid JSON; `files` checks its form)."""
    path = folder / f"{name}.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else None
    except (ValueError, RecursionError) as e:
        raise CSRIPError(f"{path} is not valid JSON ({type(e).__name__}); measure it again with --force") from None


def read(folder: str | Path, name: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]] | None:
    """(tables keyed like `write`'s, provenance) of result `name`, or None if it was not measured.
    A damaged or edited result (`files`, JSON that is not an object, a table missing, empty or not a
    regular file) is a one-line CSRIPError."""
    folder = Path(folder)
    json_path = folder / f"{name}.json"
    if not os.path.lexists(json_path):
        return None
    prov = sidecar(folder, name)
    tables = {}
    for path in files(folder, name, prov):
        if not path.is_file():
            raise CSRIPError(f"{path} is missing or not a regular file, but {json_path} lists it; "
                             "measure the result again with --force")
        try:
            tables[path.name.removesuffix(".gz")[len(name) + 1:-4]] = pd.read_csv(path)
        except (ValueError, pd.errors.ParserError) as e:  # EmptyDataError is a ValueError
            raise CSRIPError(f"{path} is not a readable table ({' '.join(str(e).split())[:120]})") from None
    return tables, prov


# ------------------------------------------------------------------------------------- rendering
ABSURD = 1e6  # no score, difference or interval of these tables comes near it


def _num(x: Any, digits: int, sign: bool = False) -> str:
    """A number as the tables show it; None or NaN (not measured) is an empty cell. A value that is not
    a number, infinite or absurdly large (an edited CSV) is a CSRIPError, never a 309-digit cell."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) or abs(x) > ABSURD:
        raise CSRIPError(f"a result holds the value {str(x)[:40]!r} where a finite number below {ABSURD:g} "
                         "belongs (edited or damaged CSV?); measure it again")
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def _cell(text: str) -> str:
    """A table cell: one line, its `|` escaped so that it never adds a column."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _ci(row: pd.Series, col: str, digits: int) -> str:
    """"+2.84 [+2.80, +2.88]": a difference with its 95% interval."""
    if col not in row or pd.isna(row[col]):
        return ""
    lo, hi = row.get(f"{col}_low"), row.get(f"{col}_high")
    interval = "" if lo is None or pd.isna(lo) else f" [{_num(lo, digits, True)}, {_num(hi, digits, True)}]"
    return _num(row[col], digits, True) + interval


def _table(header: list[str], rows: list[list[str]], align: str) -> str:
    header, rows = [_cell(h) for h in header], [[_cell(c) for c in r] for r in rows]
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
    metrics where measured, and where the result has them (Table 1) each model's parameters, GFLOP per face
    and training seconds per step. The paper's gains are not set beside ours: its bicubic starts higher than
    ours (its Table 1 against our bicubic rows), so gains over two different bicubics are not comparable in size."""
    ident = [c for c in IDENTITY if _has(t, c)]
    cost = [c for c in COSTS if _has(t, c)]
    header = ["model", "PSNR [dB]", "SSIM", "dPSNR vs bicubic [95% CI]", "dSSIM [95% CI]",
              *(IDENTITY[c] for c in ident), *(COSTS[c] for c in cost)]
    rows = []
    for _, r in t.iterrows():
        if r.get("model") != "hr" and any(pd.isna(r.get(c)) for c in ("psnr", "ssim")):  # HR: no scores
            raise CSRIPError(f"result row {str(r.get('model'))[:40]!r} has no PSNR or SSIM (edited or damaged CSV?)")
        sizes = [f"{int(r[c]):,}" if c == "params" and pd.notna(r.get(c)) else _num(r.get(c), 2) for c in cost]
        rows.append([label(r), _num(r.get("psnr"), 2), _num(r.get("ssim"), 3), _ci(r, "dpsnr", 2),
                     _ci(r, "dssim", 3), *[_num(r.get(c), 3) for c in ident], *sizes])
    return _table(header, rows, "lrrrr" + "r" * len(ident) + "r" * len(cost))


def _faces(prov: dict[str, Any]) -> str:
    """The face folder a result used: a named subset by name and content digest, else the folder."""
    data = prov.get("data") or {}
    if data.get("name"):
        return f" of `{data['name']}` (content sha256 {data['sha256'][:16]}, made by `make data`) "
    return f" of {data['root']} " if data.get("root") else " "


def _runs(prov: dict[str, Any]) -> str:
    """Which commit trained each scored run (from its checkpoint), and which were trained at another
    commit than the scoring one."""
    runs = prov.get("runs")
    if runs is None:
        return ("The training runs' provenance is not listed: this result was measured before results/ recorded "
                "it; measuring it again lists it.")
    scoring = (prov.get("commit") or "")[:7]
    groups: dict[str, list[str]] = {}
    for label, r in runs.items():
        sittings = r.get("sittings") or []
        commits = sorted({(s.get("commit") or "unknown")[:7] + (" with uncommitted changes" if s.get("dirty") else "")
                          for s in sittings})
        if not commits:
            key = "recorded no provenance (trained before checkpoints recorded it)"
        elif commits == [scoring]:
            key = f"were trained at {scoring}, the scoring commit"
        else:
            key = f"were trained at {' and '.join(commits)}, not the scoring commit {scoring or 'unknown'}"
        groups.setdefault(key, []).append(label)
    parts = [f"{', '.join(labels)} {key}" for key, labels in groups.items()]
    return (f"Training runs (each checkpoint's command, commit, date, wall time and hardware are in "
            f"results/{prov.get('name', 'NAME')}.json): {'; '.join(parts)}.")


MOVED = {"csrip_lib.judge": "csrip_lib.evaluation.judge"}  # modules a recorded result names that have moved since


def _judge(note: str) -> str:
    """The judge a result recorded, with a module that has moved since named where it is now."""
    for old, new in MOVED.items():
        note = note.replace(f"({old})", f"({old}, now {new})")
    return note


def _setup(prov: dict[str, Any]) -> str:
    """Where, when, on what and by which command a result was measured, in one paragraph."""
    hw = prov["hardware"]
    gpu = ", ".join(hw["gpus"]) if hw["gpus"] else "no GPU"
    commit = (prov.get("commit") or "unknown")[:7] + (" with uncommitted changes" if prov.get("dirty") else "")
    test = prov.get("test_data", {})
    subset = " (a fixed subset: --max-images)" if prov.get("max_images") else ""
    return (f"Scored on {test.get('images', '?'):,} test faces of {test.get('identities', '?'):,} identities"
            f"{_faces(prov)}that no model trained on{subset}, sha256 {test.get('sha256', '?')}; "
            f"judge: {_judge(prov.get('judge', 'none'))}. Measured {prov['date']} at commit {commit} in "
            f"{prov['wall_s'] / 60:.1f} min wall on {hw['cpu']} ({hw['cores']} cores, {gpu}), torch "
            f"{prov['torch']}, by\n`{prov['command']}`\n{_runs(prov)}")


def _budget(prov: dict[str, Any]) -> str:
    """The training budget a result's runs had: the equal budget, or their preset's own schedule."""
    if "schedule" in prov:
        c = prov["schedule"]
        decay = (f", lr x {c['lr_gamma']:.3g} after epochs {', '.join(map(str, c['lr_milestones']))}"
                 if c["lr_milestones"] else "")
        return (f"the `{prov['preset']}` preset's own schedule: {c['epochs']} epochs of {c['steps_per_epoch']} Adam "
                f"steps of batch {c['batch_size']} ({c['steps']:,} steps, {c['steps'] * c['batch_size']:,} images), "
                f"lr {c['lr']:g}{decay}, the best validation epoch kept")
    b = prov["budget"]
    return (f"{b['steps']:,} Adam steps of batch {b['batch_size']} ({b['steps'] * b['batch_size']:,} images), "
            f"the `{prov['preset']}` preset's sizes and learning rate, validation every {b['validate_every']} "
            "steps with the best validation epoch kept, no early stop")


def seed_interval(diffs: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed differences `model - baseline`, one per training seed: a Student-t
    interval at `level` with n - 1 degrees of freedom, an interval over *trainings*. The bootstrap intervals
    (`evaluate.paired_bootstrap`) resample test identities and say nothing about training noise; a claim
    about a training effect needs this one too. With 2 seeds t is 12.7, so only a difference that barely
    moves between seeds is shown. NaN bounds below 2 seeds."""
    x = np.asarray(list(diffs), dtype=float)
    mean = float(x.mean()) if len(x) else float("nan")
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean, mean - half, mean + half


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
    curves = {m: run.get("validation") for m, run in (prov.get("runs") or {}).items()}
    logs = [_validation_note(r, curves[r["model"]]) for _, r in models.iterrows()
            if r["model"] in not_clear and curves.get(r["model"])]
    why = ("\n\nWhere the rows not above bicubic won or lost, from their runs' validation logs (the val split, "
           "one validation per epoch):\n"
           + "\n".join(logs) if logs else "")
    return (f"Every network trained from scratch at one budget: {_budget(prov)}; NBSRF-like is one forest "
            f"fit (no steps). Identity priors (lp, SRGAN, C-SRIP): `{prov['recognizers']}`.{sizes} {_setup(prov)}"
            f"\n\n{scores_table(t)}\n\n{verdict}{why}")


def _validation_note(row: pd.Series, curve: list[dict[str, Any]]) -> str:
    """One row's validation curve (`competitors.validation_curve`) in a sentence: first validation, kept
    step and last of its main stage, whether SSIM was still rising at the end of the budget, and for SRGAN
    what its adversarial stage did to the MSE stage's SSIM."""
    def at(r: dict[str, Any]) -> str:
        return f"SSIM {r['val_ssim']:.3f} / PSNR {r['val_psnr']:.2f} dB at step {r['step']:,}"

    main, mse = [r for r in curve if r["stage"] == "main"], [r for r in curve if r["stage"] == "mse"]
    kept = next((r for r in main if r["step"] == row.get("kept_step")), main[-1])
    text = (f"- **{row['model']}** (test: dPSNR {_ci(row, 'dpsnr', 2)}, dSSIM {_ci(row, 'dssim', 3)}): "
            f"first validation {at(main[0])}; kept {at(kept)}; last {at(main[-1])}.")
    if len(main) > 1 and main[-1]["val_ssim"] > main[-2]["val_ssim"] and kept is main[-1]:
        text += (f" Its validation SSIM was still rising when the budget ended "
                 f"({main[-1]['val_ssim'] - main[-2]['val_ssim']:+.3f} over the validation before).")
    if mse:
        moved = kept["val_ssim"] - mse[-1]["val_ssim"]
        text += (f" Its MSE stage (SRResNet, pixel MSE) ended at {at(mse[-1])}; the adversarial stage from it "
                 f"{'raised' if moved > 0 else 'lowered'} validation SSIM by {abs(moved):.3f} to its kept step.")
    return text


def _order(t: pd.DataFrame) -> str:
    """The configurations of the first seed ordered by measured PSNR and SSIM, beside the paper's order (Table 2,
    from its gains, which share one bicubic); empty when that seed has fewer than three."""
    first = t[t["seed"] == t["seed"].min()]
    if len(first) < 3:
        return ""

    def order(col: str) -> list[str]:
        return first.sort_values(col, ascending=False, kind="stable")["model"].tolist()

    parts = []
    for metric, paper in (("psnr", "paper_dpsnr"), ("ssim", "paper_dssim")):
        ours, theirs = order(metric), order(paper)
        same = "the paper's order" if ours == theirs else f"the paper's: {' > '.join(theirs)}"
        parts.append(f"by {METRICS[metric].split(' ')[0]}, {' > '.join(ours)} ({same})")
    return f"\n\nOrder at seed {int(first['seed'].iloc[0])}, as measured: {'; '.join(parts)}."


def _side(low: float, high: float) -> int:
    """+1 when an interval lies above 0, -1 below, 0 when it contains 0 or is missing."""
    return 1 if low > 0 else -1 if high < 0 else 0


def _reading_over_seeds(face_low: float, face_high: float, seed_low: float, seed_high: float) -> str:
    """What a training effect's two intervals support together: a difference is read as one only when
    the interval over test identities and the interval over training seeds both exclude 0, on one side."""
    if pd.isna(seed_low):
        return f"{_reading(face_low, face_high)}; training noise not measured (one seed)"
    face, seeds = _side(face_low, face_high), _side(seed_low, seed_high)
    word = {1: "higher", -1: "lower"}
    if seeds and face == seeds:
        return f"{word[seeds]} (both intervals {'above' if seeds > 0 else 'below'} 0)"
    if seeds and pd.isna(face_low):
        return f"{word[seeds]} over seeds (no interval over faces: one value per model and seed)"
    if face and not seeds:
        return "not shown: the interval over faces excludes 0, the interval over seeds contains 0"
    return "no difference shown"


def seed_rows(paired: pd.DataFrame) -> pd.DataFrame:
    """Table 2's pooled rows with the interval over seeds (`seed_interval` of each metric's per-seed
    differences: seeds, seeds_low, seeds_high, so `_ci(row, "seeds")` shows it) and the reading that both
    intervals support."""
    over = [seed_interval(float(x) for x in str(v).split(";")) for v in paired["per_seed"]]
    out = paired.assign(**{c: [o[i] for o in over] for i, c in enumerate(("seeds", "seeds_low", "seeds_high"))})
    out["reading"] = [_reading_over_seeds(r.get("diff_low"), r.get("diff_high"), r["seeds_low"], r["seeds_high"])
                      for _, r in out.iterrows()]
    return out


LOWER_IS_BETTER = {"id_dist"}
RULE = ("C-SRIP becomes the default when it is better than C+SSIM+M on PSNR or judge rank-1 with both intervals "
        "(over test identities and over seeds) on the better side of 0, and worse on no metric by the same test")


def identity_prior_decision(paired: pd.DataFrame) -> tuple[bool, str]:
    """Issue 31's rule for the default model (`RULE`), applied to a Table 2 paired table: (met, the
    metrics that decided it)."""
    rows = seed_rows(paired).set_index("metric")
    better, worse = [], []
    for metric, r in rows.iterrows():
        sign = -1 if metric in LOWER_IS_BETTER else 1
        face = _side(r["diff_low"], r["diff_high"]) if pd.notna(r.get("diff_low")) else None
        seeds = _side(r["seeds_low"], r["seeds_high"])
        side = seeds * sign if face is None or face == seeds else 0
        (better if side > 0 else worse if side < 0 else []).append(metric)
    met = bool({"psnr", "id_rank1"} & set(better)) and not worse
    named = lambda ms: ", ".join(METRICS[m].split(" ")[0] for m in ms) or "none"  # noqa: E731
    return met, f"better on {named(better)}; worse on {named(worse)}"


def render_table2(tables: dict[str, pd.DataFrame], prov: dict[str, Any]) -> str:
    t, paired = tables[""], seed_rows(tables["paired"])
    label = (lambda r: f"{r['model']} (alpha {r['alpha']:g}), seed {int(r['seed'])}" if pd.notna(r.get("seed"))
             else str(r["model"]))
    rows = []
    for _, r in paired.iterrows():
        digits = 2 if r["metric"] == "psnr" else 3
        seeds = ", ".join(_num(float(x), digits + 1, True) for x in str(r["per_seed"]).split(";"))
        rows.append([METRICS[r["metric"]], _ci(r, "diff", digits + 1), seeds, _ci(r, "seeds", digits + 1), r["reading"]])
    pooled = _table([f"{prov['compared'][1]} - {prov['compared'][0]}", "pooled [95% CI over test identities]",
                     "per seed", "mean of seeds [95% CI over seeds]", "reading"], rows, "lrrrl")
    n = len(prov["seeds"])
    return (f"C+SSIM+M (alpha 0) and C-SRIP (alpha {prov['alpha']:g}) trained from scratch, seeds "
            f"{', '.join(map(str, prov['seeds']))}, each at {_budget(prov)}, with the identity priors "
            f"`{prov['recognizers']}`{_coverage(prov)}. {_setup(prov)}\n\n{scores_table(t, label)}{_order(t)}\n\n"
            f"Paired differences on the same test faces. Two intervals: over test identities ({prov['bootstrap']:,} "
            f"bootstrap resamples of identities, all seeds pooled; rank-1 over the probes both models rank; AUC has "
            f"one value per model and seed, so none), and over trainings (Student t with {n - 1} degree"
            f"{'s' if n != 2 else ''} of freedom over the {n} per-seed differences, `results.seed_interval`). The "
            f"first says the difference is not an accident of which faces were tested, the second that it is not "
            f"an accident of one training; a training effect is read only where both exclude 0.\n\n{pooled}")


def _coverage(prov: dict[str, Any]) -> str:
    """", which know 64% of the training images' identities" where the priors know only some of them."""
    known = prov.get("priors_known_fraction")
    return "" if known is None or known >= 1 else \
        f" (they know {known:.0%} of the training images' identities; the others get the reconstruction terms only)"


def render_decision(tables: dict[str, pd.DataFrame], prov: dict[str, Any]) -> str:
    """The README's short form of table2-base: the default-model rule's verdict first, then the pair's
    differences with both intervals (the whole table: docs/results.md)."""
    paired = seed_rows(tables["paired"])
    rows = [[METRICS[r["metric"]], _ci(r, "diff", 3 if r["metric"] == "psnr" else 4),
             _ci(r, "seeds", 3 if r["metric"] == "psnr" else 4), r["reading"]] for _, r in paired.iterrows()]
    test = prov.get("test_data", {})
    return (f"{_outcome(*identity_prior_decision(tables['paired']))}\n\n"
            f"C-SRIP (alpha {prov['alpha']:g}, identity priors `{prov['recognizers']}`) minus C+SSIM+M (alpha 0), "
            f"both the `{prov['preset']}` cascade trained from scratch on its own schedule, seeds "
            f"{', '.join(map(str, prov['seeds']))}, on {test.get('images', '?'):,} test faces (measured "
            f"{prov['date']}; `{prov['command']}`):\n\n"
            + _table(["C-SRIP - C+SSIM+M", "pooled [95% CI over test identities]", "mean of seeds [95% CI over seeds]",
                      "reading"], rows, "lrrl"))


def _outcome(met: bool, why: str) -> str:
    """The default-model rule's verdict on a table2-base result, as one paragraph."""
    outcome = ("**Met: C-SRIP is the default model.**" if met else
               "**Not met: at this scale the identity prior did not help by this test, and the default stays "
               "C+SSIM+M.**")
    return f"{outcome} Default model rule: {RULE}. Here: {why}."


def render_table2_base(tables: dict[str, pd.DataFrame], prov: dict[str, Any]) -> str:
    """Table 2's pair at the default model's scale, and what issue 31's rule makes of it."""
    return f"{render_table2(tables, prov)}\n\n{_outcome(*identity_prior_decision(tables['paired']))}"


def render_default_model(tables: dict[str, pd.DataFrame], prov: dict[str, Any]) -> str:
    t = tables[""]

    def label(r: pd.Series) -> str:
        if pd.isna(r.get("steps")):
            return str(r["model"])
        after = f" after `{r['init']}`" if pd.notna(r.get("init")) else ""
        steps = f"{int(r['steps']):,} steps of batch {int(r['batch_size'])}{after}"
        return f"`{r['model']}` ({r['configuration']}, {steps})"

    text = (f"`csrip evaluate` of the shipped SR models ({', '.join(prov['models'])}) with bicubic and HR. "
            f"{_setup(prov)}\n\n{scores_table(t, label)}")
    if "paired" in tables:
        p = tables["paired"]
        rows = [[r["model"], METRICS[r["metric"]], _ci(r, "diff", 2 if r["metric"] == "psnr" else 3),
                 _reading(r["diff_low"], r["diff_high"])] for _, r in p.iterrows()]
        text += (f"\n\nPaired against `{prov['compare_to']}` on the same faces (95% intervals, identities "
                 f"resampled):\n\n" + _table(["model", "metric", f"minus {prov['compare_to']} [95% CI]", "reading"],
                                            rows, "llrl"))
    return text


def render_recognizers(root: Path, name: str) -> str:
    """Rank-1 per scale of the shipped priors `name`, from the accuracy.csv their training wrote, and the
    training time each run logged up to its kept epoch (every sitting of a resumed run included: the
    CSV's own `minutes` column counts only the sitting that wrote it)."""
    csv = f"checkpoints/{name}/accuracy.csv"
    if not (root / csv).is_file():
        return f"not shipped: {csv} is missing"
    t = pd.read_csv(root / csv)
    logged = {s: load_checkpoint((root / csv).parent / f"rec{s}" / "best.pt")["metrics"]["seconds"] / 60
              for s in t["scale"]}
    rows = [[f"{int(r['scale'])} px", f"{int(r['best_epoch'])} of {int(r['epochs'])}", f"{logged[r['scale']]:.1f}",
             _num(r["train_acc"], 3), _num(r["val_acc"], 3), f"{r['val_acc'] / r['chance']:.0f}x",
             f"{r['chance']:.4f} / {r['majority']:.4f}", f"{r['paper_train']:.4f} / {r['paper_val']:.4f}"]
            for _, r in t.iterrows()]
    r0 = t.iloc[0]
    return (f"Rank-1 of the shipped `{name}` ({int(r0['identities']):,} identities, "
            f"{int(r0['train_images']):,} training / {int(r0['val_images']):,} validation images; from "
            f"`{csv}`, which their training wrote; minutes: the training and validation time each "
            f"run logged up to its kept epoch, `seconds` of its best.pt):\n\n"
            + _table(["scale", "kept epoch", "logged min", "train", "val", "val / chance", "chance / majority (val)",
                      "paper train / val (CASIA-WebFace)"], rows, "lrrrrrrr"))


SHIPPED_BY = {"table1-models": "table1", "table2-base-models": "table2-base"}  # block -> result it ships


def render_shipped(root: Path, folder: Path, result_name: str = "table1") -> str:
    """A model-card section per shipped model of result `result_name` (`csrip reproduce NAME --ship`): what it
    is, its file and SHA-256 from checkpoints/manifest.json, and its scores from results/NAME (seed 0's row
    where the result has seeds)."""
    entries = {n: e for n, e in read_manifest(root / MANIFEST).items() if e.get("result") == result_name}
    result = read(folder, result_name)
    if not entries or result is None:
        return (f"not shipped yet: run `csrip reproduce {result_name}`, then `csrip reproduce {result_name} "
                "--ship`")
    (tables, prov), sections = result, []
    t = tables[""]
    rows = (t[t["seed"] == 0] if "seed" in t else t).set_index("model")
    for name, e in entries.items():
        r = rows.loc[e["configuration"]]
        files = ", ".join(f"`{rel}` ({(root / 'checkpoints' / rel).stat().st_size / 1e6:.2f} MB) sha256 `{d}`"
                          for rel, d in e["files"].items())
        kept = f"kept step {int(r['kept_step'])}" if r.get("kept_step", 0) > 0 else "one forest fit, no steps"
        sections.append(f"### {name}\n\n{e['description']}; {kept}. {files}.\nTest split (results/{result_name}): "
                        f"PSNR {_num(r['psnr'], 2)} dB ({_ci(r, 'dpsnr', 2)} over bicubic), SSIM {_num(r['ssim'], 3)} "
                        f"({_ci(r, 'dssim', 3)}).")
    hw = prov["hardware"]
    return (f"Trained and scored by\n`{prov['command']}`\n(measured {prov['date']} on {hw['cpu']}, {hw['cores']} "
            f"cores, torch {prov['torch']}; results/{result_name}.json has the rest of the provenance), shipped by "
            f"`csrip reproduce {result_name} --ship`.\n\n" + "\n\n".join(sections))


def render_tour(tables: dict[str, pd.DataFrame], prov: dict[str, Any]) -> str:
    """The per-notebook times `csrip demo --record` measured, with when, where, at which commit and load."""
    t, hw = tables[""], prov["hardware"]
    rows = [[r["notebook"], f"{r['wall_s']:.0f}", f"{r['cpu_s']:.0f}"] for _, r in t.iterrows()]
    rows.append(["all", f"{t['wall_s'].sum():.0f}", f"{t['cpu_s'].sum():.0f}"])
    commit = (prov.get("commit") or "unknown")[:7] + (" with uncommitted changes" if prov.get("dirty") else "")
    return (f"`{prov['command']}`, {prov['date']}, commit {commit}, on {hw['cpu']} ({hw['cores']} cores, torch "
            f"{prov['torch']}), load average {' / '.join(f'{x:g}' for x in prov['load_average'])} (1 / 5 / 15 min) "
            f"before it started; the kernel's CPU time is what a busy machine does not inflate:\n\n"
            + _table(["notebook", "wall [s]", "kernel CPU [s]"], rows, "lrr"))


RENDERERS: dict[str, Callable[[dict[str, pd.DataFrame], dict[str, Any]], str]] = {
    "table1": render_table1, "table2": render_table2, "table2-base": render_table2_base,
    "table2-base-decision": render_decision, "default-model": render_default_model,
    "tour-quick": render_tour, "tour-pretrained": render_tour}
SOURCE = {"table2-base-decision": "table2-base"}  # blocks that render another name's result
MEASURED_BY = {"tour-quick": "csrip demo --preset quick --record results",
               "tour-pretrained": "csrip demo --record results"}  # results that `csrip reproduce` does not make


def render_block(name: str, folder: Path | None = None, root: Path | None = None) -> str:
    """The Markdown of block `name` (a result of `folder`, or shipped priors of `RECOGNIZERS`). A result,
    manifest or table whose content lacks what the block shows (an edited file) is a one-line CSRIPError."""
    root = root or project_root()
    folder = folder or root / "results"
    if name not in (*RENDERERS, *RECOGNIZERS, *SHIPPED_BY):
        raise CSRIPError(f"unknown results block {name!r}; known: "
                         f"{', '.join([*RENDERERS, *RECOGNIZERS, *SHIPPED_BY])}")
    try:
        if name in RECOGNIZERS:
            return render_recognizers(root, name)
        if name in SHIPPED_BY:
            return render_shipped(root, folder, SHIPPED_BY[name])
        source = SOURCE.get(name, name)
        result = read(folder, source)
        if result is None:
            return f"not measured yet: run `{MEASURED_BY.get(source, f'csrip reproduce {source}')}`"
        return RENDERERS[name](*result)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        source = {**{r: f"checkpoints/{r}/accuracy.csv" for r in RECOGNIZERS},
                  **{b: f"{MANIFEST} or {folder}/{r}.json" for b, r in SHIPPED_BY.items()},
                  **{b: f"{folder}/{r}.json or its tables" for b, r in SOURCE.items()}}
        raise CSRIPError(f"{source.get(name, f'{folder}/{name}.json or its tables')} lack(s) what the {name} "
                         f"block shows ({type(e).__name__}: {' '.join(str(e).split())[:80]}); edited or damaged? "
                         "measure it again with --force") from None


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
    if folder is not None and not Path(folder).is_dir():
        raise CSRIPError(f"results folder {folder} does not exist; nothing rendered (a typo? the results are "
                         "in results/)")
    changed = []
    for doc in (path for pattern in DOCS for path in sorted(root.glob(pattern))):
        text = doc.read_text()
        new = render_text(text, folder, root, where=str(doc))
        if new != text:
            changed.append(doc)
            if write:
                write_output(doc, new.encode(), force=True)  # atomically, never through a link
    return changed


def stale_docs(folder: Path | None = None, root: Path | None = None) -> list[Path]:
    """The documents whose result blocks differ from what `folder` (results/) renders."""
    return render_docs(folder, root, write=False)
