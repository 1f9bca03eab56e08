"""`csrip reproduce NAME`: measure a published result into results/ with one command, then render it.

    csrip reproduce table1|table2|table2-base|default-model|all [--data DIR] [--out results/] [--force] [options]
    csrip reproduce --render [--check]          # README.md / docs/ / MODEL_CARD.md blocks from results/
    csrip reproduce --interval NAME --model M [--metric psnr] [--baseline bicubic]
                                                # a rendered interval, recomputed from NAME_per_image.csv.gz

table1         Table 1 (Sec. 4.2): the six competitors (SRCNN, VDSR, lp-like, SRGAN-like, URDGN, the
               NBSRF-like forest; models.registry.COMPETITOR_LABELS) and C+SSIM+M and C-SRIP, each trained
               from scratch at one budget (`--max-steps` Adam steps of `--batch-size`, the same for every
               network; SRGAN's split between its two stages), scored on the test split; each network
               within +-25% of the cascade's parameters, with its parameters, GFLOP per face and training
               s/step beside its scores (`ablation.costs`), and each run's validation curve
               (`competitors.validation_curve`) for the rendered note on rows not above bicubic.
table2         Table 2's identity question (Sec. 4.3): C+SSIM+M (alpha 0) and C-SRIP (alpha 0.001) from
               scratch at that budget for each of `--seeds`, per seed PSNR, SSIM and the judge's id_dist,
               rank-1, AUC, and the paired difference pooled over seeds with 95% bootstrap intervals over
               identities (`evaluate.paired_bootstrap`) and the per-seed differences, from which the
               rendered table adds a t interval over seeds (`results.seed_interval`). `--all-variants`
               adds Baseline, B+SSIM and C+SSIM at the first seed.
table2-base    Table 2's pair at the default model's scale (issue 31): the `base` preset on its own
               schedule (csrip-base's: 11 epochs of 250 steps), C-SRIP with the priors `recognizers-base`
               (they know the training identities with >= 2 images; faces of the others get the
               reconstruction terms only), seeds 0 1; rendered with the rule that picks the default model
               (`results.identity_prior_decision`).
default-model  `csrip evaluate` of shipped SR models (`--models`; default: the default model and `--compare-to`) against
               bicubic and HR, with paired differences to `--compare-to`.

Equal budget means equal steps x batch, not equal wall time: wall time on a shared machine is not
reproducible, steps x batch is the same on every machine. The default, 500 steps of batch 16 (8,000
images, about 5.4 passes over the quick identity universe's 1,478 training images), is 1.2x
`csrip-quick`'s 425 steps and the longest at which the fifteen trainings of Tables 1 and 2 (with
`--all-variants`) fit in about an hour and a half on a 2-core CPU, two trainings at a time. lp and SRGAN
have their learning rate capped at 1e-4 (`competitors.competitor_run`); whether every network clearly beats
bicubic at this budget is measured (table1's verdict line), not assumed.
Training runs go to `--runs` (default runs/reproduce/), one folder per preset, budget and seed (Table 1
and Table 2's seed 0 share the C+SSIM+M and C-SRIP runs); they resume where a killed command stopped and
are reused when finished (`ablation.train_variants`).
`--ship table1` measures nothing: it exports the runs behind results/table1.json into checkpoints/ as
`<model>-<preset>` (srcnn-quick, ..., c-srip-quick; `ablation.shipped_name`), each manifest entry
recording the command that trained and scored it, for notebook 06's pretrained Table 1; `--ship
table2-base` exports that result's seed-0 pair (c-ssim-m-base, c-srip-base).
Identity priors (C-SRIP, and lp / SRGAN's feature loss): `--recognizers`, else the shipped
`recognizers-quick` when they were trained on this data's quick identities, else runs/<preset>/recognizers
(trained there if missing; `tour.recognizers`). The identity judge (`csrip_lib.evaluation.judge`) scores when it is
installed (`--no-identity` skips it). Each result records the command that reproduces it as written
(with --force, which overwrites result files, never training runs), the faces by name where they are a
named subset (`--data lfw-dev`, `data.subsets`), the per-image scores (`NAME_per_image.csv.gz`) and each
scored run's training provenance from its checkpoint (`runs`).
"""
from __future__ import annotations

import argparse
import math
import shlex
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from .core import results
from .core.checkpoint import load_checkpoint
from .core.config import PRESETS, Preset, TrainConfig, get_preset, project_root, runs_dir, to_dict
from .core.console import CSRIPError, nonnegative_int, positive_int
from .core.runtime import pick_device
from .data.faces import identities_digest, list_faces, resolve_data
from .data.subsets import identify
from .evaluation import judge as judge_mod
from .evaluation.evaluate import (PAPER_TABLE1, PAPER_TABLE2, evaluate_models, load_models, one_line_warnings,
                                  paired_bootstrap, summarize_results)
from .losses import CSRIPLoss
from .models import zoo
from .models.recognizer import load_recognizers
from .models.registry import load_sr
from .training.ablation import (COMPETITOR_NAMES, VARIANTS, costs, run_dir, shipped_name, train_variants,
                                variant_runs)
from .training.competitors import validation_curve
from .training.sr import SRData, sr_datasets
from .tutorial.tour import recognizers as default_recognizers

NAMES = ("table1", "table2", "table2-base", "default-model")
STEPS, BATCH, VALIDATE_EVERY = 500, 16, 50
SEEDS = (0, 1, 2)
PRESET = "quick"  # Tables 1 and 2
# table2-base: Table 2's pair at the default model's scale, each run on the `base` preset's own schedule
# (the one `csrip-base` trained with), C-SRIP with the priors that know the base identities with >= 2 images
BASE = {"preset": "base", "recognizers": "recognizers-base", "seeds": (0, 1)}
ALPHA = 0.001  # the paper's (Sec. 3.4)
TABLE1 = [*COMPETITOR_NAMES, "C+SSIM+M", "C-SRIP"]
PAIR = ("C+SSIM+M", "C-SRIP")  # Table 2's identity comparison: baseline, model
BOOTSTRAP = 2000
COMPARE_TO = "csrip-quick"  # default-model: the quick tour's model, which every other shipped model is set against
# Display name -> key of the paper's Tables 1/2 (evaluate.PAPER_TABLE1/2); gains are against Table 1's bicubic.
PAPER_KEY = {"bicubic": "bicubic", **COMPETITOR_NAMES, "Baseline": "baseline", "B+SSIM": "bssim",
             "C+SSIM": "cssim", "C+SSIM+M": "cssimm", "C-SRIP": "csrip"}
PAPER = {**PAPER_TABLE1, **PAPER_TABLE2}


def own_schedule(args: argparse.Namespace) -> bool:
    """True for results trained on their preset's own schedule (table2-base), not the equal budget."""
    return args.name == "table2-base"


def schedule(args: argparse.Namespace, seed: int) -> TrainConfig:
    """The training schedule of this call's runs: the preset's own (table2-base) or the equal `budget`."""
    preset = get_preset(args.preset)
    if own_schedule(args):
        return replace(preset.train_sr, seed=seed)
    return budget(preset, args.max_steps, args.batch_size, seed)


def budget(preset: Preset, steps: int, batch: int, seed: int = 0) -> TrainConfig:
    """The equal budget: `steps` Adam steps of `batch`, validated every VALIDATE_EVERY steps, the best
    validation epoch kept, no early stop and no decay (the preset's learning rate throughout)."""
    per_epoch = min(VALIDATE_EVERY, steps)
    epochs = math.ceil(steps / per_epoch)
    return replace(preset.train_sr, epochs=epochs, steps_per_epoch=per_epoch, max_steps=steps,
                   batch_size=batch, patience=epochs, lr_milestones=(), seed=seed)


def configuration(config: dict[str, Any]) -> str:
    """The Table 1/2 name of a checkpoint's configuration ("C-SRIP", "C+SSIM+M", "VDSR", ...)."""
    if config.get("model"):
        return next(k for k, v in COMPETITOR_NAMES.items() if v == config["model"])
    arch, loss = config.get("sr", {}).get("arch", "cascaded"), config.get("loss", {})
    for name, (a, lc) in VARIANTS.items():
        if a == arch and lc.reconstruction == loss.get("reconstruction") and lc.multiscale == loss.get("multiscale") \
                and (lc.alpha > 0) == (loss.get("alpha", 0) > 0):
            return name
    return "other"


# ---------------------------------------------------------------------------------- measuring
def score(models: dict[str, Any], root: Path, args: argparse.Namespace) -> tuple[pd.DataFrame, str]:
    """Per-image scores of bicubic, `models` (and HR with the judge) on the test split; judge's name."""
    judge, note = None, "skipped (--no-identity)"
    if not args.no_identity:
        judge, note = ((judge_mod.FaceJudge(), "dlib ResNet (csrip_lib.evaluation.judge)") if judge_mod.available()
                       else (None, f"not installed ({judge_mod.INSTALL_HINT})"))
    with one_line_warnings("reproduce"):
        df = evaluate_models(models, root, "test", device=pick_device(args.device), judge=judge,
                             max_images=args.max_images)
    kept = results.per_image(df)  # every number is computed from the per-image values the result keeps
    return df.assign(**{c: kept[c].to_numpy() for c in kept if c in results.PER_IMAGE}), note


def summary(df: pd.DataFrame, configurations: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per model: images, PSNR, SSIM, the judge's columns, the paired gain over bicubic with 95%
    intervals over identities, and the paper's gain for the same configuration."""
    s = summarize_results(df)
    keep = ["images", "psnr_mean", "ssim_mean", *[c for c in ("id_dist", "id_match", "rank1", "rank1_probes", "auc",
                                                                 "judge_failed") if c in s]]
    out = s[keep].rename(columns={"psnr_mean": "psnr", "ssim_mean": "ssim"}).rename_axis("model").reset_index()
    models = [m for m in out["model"] if m not in ("bicubic", "hr")]
    gains = paired(df, "bicubic", models, ("psnr", "ssim"))
    for metric, col in (("psnr", "dpsnr"), ("ssim", "dssim")):
        g = gains[gains["metric"] == metric].set_index("model")
        for suffix in ("", "_low", "_high"):
            out[col + suffix] = out["model"].map(g["diff" + suffix])
    configurations = configurations or {}
    bicubic = PAPER_TABLE1["bicubic"]
    keys = [PAPER_KEY.get(configurations.get(m, m)) for m in out["model"]]
    out["paper_dpsnr"] = [PAPER[k][0] - bicubic[0] if k in PAPER and k != "bicubic" else None for k in keys]
    out["paper_dssim"] = [PAPER[k][1] - bicubic[1] if k in PAPER and k != "bicubic" else None for k in keys]
    return out


def paired(df: pd.DataFrame, baseline: str, models: list[str],
           metrics: tuple[str, ...] = ("psnr", "ssim", "id_rank1", "id_dist")) -> pd.DataFrame:
    """`evaluate.paired_bootstrap` with the columns results/ uses: model, metric, diff, diff_low, diff_high, images."""
    p = paired_bootstrap(df, baseline, models, metrics=metrics, n_boot=BOOTSTRAP)
    return p.rename(columns={"ci_low": "diff_low", "ci_high": "diff_high"})[
        ["model", "metric", "diff", "diff_low", "diff_high", "images"]]


def scored_faces(df: pd.DataFrame) -> dict[str, Any]:
    """Which faces were scored: counts and a digest of their image paths."""
    scored = df[df["model"] == "bicubic"]
    return {"images": len(scored), "identities": int(scored["identity"].nunique()),
            "sha256": results.digest(scored["image"])}


def data_record(root: Path) -> dict[str, Any]:
    """The faces a result used: a named subset by name and content digest (`subsets.identify`), else the
    folder with its counts and a digest of its image names."""
    items = list_faces(root, progress=False)
    named = identify(root, items)
    if named is not None:
        return named
    return {"name": None, "root": str(root), "images": len(items), "identities": len({i for _, i in items}),
            "names_sha256": results.digest([Path(p).relative_to(root).as_posix() for p, _ in items])}


def run_provenance(path: Path) -> dict[str, Any]:
    """A scored run's checkpoint and the training provenance it recorded (`harness.sitting`: command, commit,
    dirty flag, date, hardware per sitting; wall time); none for runs trained before checkpoints recorded it."""
    return {"checkpoint": _display(path), **(load_checkpoint(path).get("provenance") or {})}


def priors(root: Path, args: argparse.Namespace) -> Path:
    """The identity priors: --recognizers, else the shipped or runs/<preset>/ ones (`tour.recognizers`)."""
    if args.recognizers is not None:
        return zoo.resolve(args.recognizers, kind="recognizers")
    return default_recognizers(root, args.preset)[0]


def _faces(root: Path, args: argparse.Namespace) -> SRData:
    """The training faces of --preset, decoded once for every run (and seed) of a table."""
    return sr_datasets(root, get_preset(args.preset).selection)


def _train(names: list[str], faces: SRData, out: Path, rec: Path, args: argparse.Namespace, seed: int = 0
           ) -> dict[str, Path]:
    runs = variant_runs(names, get_preset(args.preset), ALPHA, schedule(args, seed))
    return train_variants(runs, faces, out, recognizers=rec, device=args.device, partial_priors=own_schedule(args))


def _training(faces: SRData, args: argparse.Namespace, rec: Path) -> dict[str, Any]:
    """Provenance of the training side: preset, budget or own schedule, identity universe, priors (and the
    share of training images whose identity they know, where that is not all)."""
    ids, train = faces.identities, schedule(args, seed=0)
    if own_schedule(args):
        steps = train.epochs * train.steps_per_epoch
        plan = {"schedule": {**to_dict(train), "steps": steps}}
        known = CSRIPLoss(load_recognizers(rec), ALPHA, identities=ids).known_fraction(faces.labels)
        plan["priors_known_fraction"] = round(known, 4)
    else:
        plan = {"budget": {"steps": args.max_steps, "batch_size": args.batch_size,
                           "validate_every": min(VALIDATE_EVERY, args.max_steps)}}
    return {"preset": args.preset, **plan,
            "train_data": {"identities": len(ids), "identities_sha256": identities_digest(ids)},
            "recognizers": _display(rec), "alpha": ALPHA, "bootstrap": BOOTSTRAP}


def _kept_step(path: Path) -> int | None:
    """The optimizer step of the checkpoint a run kept (None: the NBSRF-like forest has no steps)."""
    return load_checkpoint(path, kind="sr").get("metrics", {}).get("step")


def table1(root: Path, args: argparse.Namespace) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    rec, faces = priors(root, args), _faces(root, args)
    ckpts = _train(TABLE1, faces, runs_folder(args, seed=0), rec, args)
    df, judge = score({name: load_sr(path) for name, path in ckpts.items()}, root, args)
    t = summary(df)
    t["kept_step"] = t["model"].map({n: _kept_step(p) for n, p in ckpts.items()})
    cost = costs(ckpts)  # parameters, GFLOP per face, training s/step
    for col in cost:
        t[col] = t["model"].map(cost[col])
    return {"": t, "per_image": results.per_image(df)}, {
        **_training(faces, args, rec), "judge": judge, "test_data": scored_faces(df),
        "runs": {name: {**run_provenance(path), "validation": validation_curve(path.parent)}
                 for name, path in ckpts.items()}}


def table2(root: Path, args: argparse.Namespace) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    rec, faces = priors(root, args), _faces(root, args)
    models, runs, kept = {}, {}, {}
    for k, seed in enumerate(args.seeds):
        names = [*PAIR, *([n for n in VARIANTS if n not in PAIR] if args.all_variants and k == 0 else [])]
        ckpts = _train(names, faces, runs_folder(args, seed), rec, args, seed)
        models.update({f"{name} seed{seed}": load_sr(path) for name, path in ckpts.items()})
        runs.update({f"{name} seed{seed}": run_provenance(path) for name, path in ckpts.items()})
        kept.update({f"{name} seed{seed}": _kept_step(path) for name, path in ckpts.items()})
    df, judge = score(models, root, args)
    t = summary(df, configurations={m: m.rsplit(" seed", 1)[0] for m in models})
    t["kept_step"] = t["model"].map(kept)
    split = t["model"].str.extract(r"^(?P<variant>.*?)(?: seed(?P<seed>\d+))?$")
    t.insert(0, "seed", pd.to_numeric(split["seed"]))
    t["model"] = split["variant"]
    t.insert(1, "alpha", [ALPHA if m == "C-SRIP" else 0.0 if m in VARIANTS else None for m in t["model"]])
    return {"": t, "paired": pooled(df, args.seeds, t), "per_image": results.per_image(df)}, {
        **_training(faces, args, rec), "seeds": list(args.seeds), "compared": list(PAIR), "judge": judge,
        "test_data": scored_faces(df), "runs": runs}


def pooled(df: pd.DataFrame, seeds: list[int], per_seed: pd.DataFrame) -> pd.DataFrame:
    """C-SRIP - C+SSIM+M per metric, pooled over seeds: each seed's pair is matched on the same image
    ("seed:image" keys) and identities are resampled with all their images of every seed; plus each
    seed's own difference and their standard deviation (the seed-to-seed spread). AUC has one value per
    model and seed, so it gets the mean and spread of the per-seed differences only."""
    base, model = PAIR
    stacked = pd.concat([df[df["model"] == f"{m} seed{s}"].assign(model=m, image=lambda d, s=s: f"{s}:" + d["image"])
                         for s in seeds for m in PAIR])
    metrics = tuple(m for m in ("psnr", "ssim", "id_rank1", "id_dist") if m in df and df[m].notna().any())
    out = paired(stacked, base, [model], metrics)
    each = {s: paired(df, f"{base} seed{s}", [f"{model} seed{s}"], metrics).set_index("metric")["diff"] for s in seeds}
    if "auc" in per_seed and per_seed["auc"].notna().any():
        auc = per_seed.set_index(["model", "seed"])["auc"]
        for s in seeds:
            each[s]["auc"] = auc[(model, s)] - auc[(base, s)]
        mean = sum(each[s]["auc"] for s in seeds) / len(seeds)
        out = pd.concat([out, pd.DataFrame([{"model": model, "metric": "auc", "diff": mean}])], ignore_index=True)
    per = pd.DataFrame(each)  # metric x seed
    out["per_seed"] = out["metric"].map(lambda m: ";".join(f"{v:.6g}" for v in per.loc[m]))
    out["seed_sd"] = out["metric"].map(lambda m: per.loc[m].std(ddof=1) if len(seeds) > 1 else float("nan"))
    return out


def default_model(root: Path, args: argparse.Namespace) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    names = args.models or [zoo.DEFAULT_SR, args.compare_to]
    models = load_models(names)
    if args.compare_to not in models:
        raise CSRIPError(f"--compare-to {args.compare_to!r} is not among the evaluated models {list(models)}")
    configs = {name: load_checkpoint(zoo.resolve(n), kind="sr") for name, n in zip(models, names)}
    df, judge = score(models, root, args)
    t = summary(df, {m: configuration(c["config"]) for m, c in configs.items()})
    t["configuration"] = t["model"].map({m: configuration(c["config"]) for m, c in configs.items()})
    t["steps"] = t["model"].map({m: c.get("metrics", {}).get("step") for m, c in configs.items()})
    t["batch_size"] = t["model"].map({m: c.get("train_config", {}).get("batch_size") for m, c in configs.items()})
    t["init"] = t["model"].map({m: Path(c["config"]["init"]).stem if c["config"].get("init") else None
                                for m, c in configs.items()})
    tables = {"": t, "per_image": results.per_image(df)}
    others = [m for m in models if m != args.compare_to]
    if others:
        tables["paired"] = paired(df, args.compare_to, others)
    return tables, {"models": names, "compare_to": args.compare_to, "judge": judge, "test_data": scored_faces(df),
                    "trained_on": {m: c["config"].get("identities", {}).get("identities_sha256")
                                   for m, c in configs.items()}, "bootstrap": BOOTSTRAP,
                    "runs": {m: {"checkpoint": n, **(c.get("provenance") or {})}
                             for (m, c), n in zip(configs.items(), names)}}


MEASURE = {"table1": table1, "table2": table2, "table2-base": table2, "default-model": default_model}


SHIP = {"table1": TABLE1, "table2-base": list(PAIR)}  # what `--ship NAME` exports: seed 0's runs


def ship(args: argparse.Namespace) -> list[str]:
    """Export the seed-0 runs behind result `args.name` (`SHIP`: Table 1's models, or table2-base's pair)
    from this call's --runs into checkpoints/ as `shipped_name(model, preset)`, after checking that they
    are the runs the result measured: same preset and budget, and each checkpoint's kept step the one the
    result records."""
    name = args.name
    result = results.read(Path(args.out), name)
    if result is None:
        raise CSRIPError(f"{Path(args.out) / name}.json is missing: measure it first (csrip reproduce {name})")
    tables, prov = result
    budget = {"steps": args.max_steps, "batch_size": args.batch_size}
    if prov["preset"] != args.preset or (not own_schedule(args) and
                                         {k: prov["budget"][k] for k in budget} != budget):
        raise CSRIPError(f"results/{name} was measured at preset {prov['preset']} and {prov.get('budget')}; pass "
                         "the same --preset, --max-steps and --batch-size to ship its runs")
    t = tables[""]
    kept = (t[t["seed"] == 0] if "seed" in t else t).set_index("model")["kept_step"]
    folder = runs_folder(args, seed=0)
    best = {model: run_dir(folder, model) / "best.pt" for model in SHIP[name]}
    for model, path in best.items():  # every run is checked before any is exported
        step = _kept_step(path) if path.is_file() else "missing"
        if step != (None if pd.isna(kept[model]) else kept[model]):  # None: the NBSRF-like forest has no steps
            raise CSRIPError(f"{path}: kept step {step}, but results/{name} scored step {kept[model]}: not the "
                             "measured run (pass the --runs the result was measured with)")
    names = {model: shipped_name(model, args.preset) for model in SHIP[name]}
    taken = sorted(set(names.values()) & set(zoo.manifest()))
    if taken and not args.force:
        raise CSRIPError(f"already shipped: {', '.join(taken)}; pass --force to replace them")
    for model, shipped in names.items():
        if own_schedule(args):
            what = f"{model} (alpha {ALPHA if model == 'C-SRIP' else 0:g}, Table 2's pair at the default's scale)"
            trained = f"trained from scratch on the `{args.preset}` preset's own schedule"
        else:
            what = f"{model} ({'Table 1 competitor' if model in COMPETITOR_NAMES else 'Tables 1-2 cascade'})"
            trained = "fitted on the same faces" if pd.isna(kept[model]) else \
                f"trained from scratch at {args.max_steps} steps of batch {args.batch_size}"
        zoo.export(best[model], shipped, "sr", f"{what}, {trained}, seed 0, `{args.preset}` sizes: results/{name}",
                   force=args.force, command=prov["command"], result=name, configuration=model)
    return list(names.values())


def interval(folder: Path, name: str, model: str, metric: str = "psnr", baseline: str = "bicubic") -> pd.Series:
    """A rendered interval recomputed from result `name`'s per-image file: `model - baseline` on `metric`
    (diff, diff_low, diff_high, images), as the summary computed it. Table 2's pair pooled over seeds is
    model C-SRIP, baseline C+SSIM+M (no seed); one seed's model is e.g. "C-SRIP seed1"."""
    result = results.read(folder, name)
    if result is None or "per_image" not in result[0]:
        raise CSRIPError(f"{Path(folder) / name}_per_image.csv.gz is missing: result {name} was measured before "
                         f"results kept per-image scores; measure it again (its command is in {name}.json)")
    tables, prov = result
    df = tables["per_image"]
    seeds = prov.get("seeds") or []
    if (baseline, model) == PAIR and model not in set(df["model"]) and seeds:
        out = pooled(df, seeds, tables[""].drop(columns="auc", errors="ignore"))  # AUC: no interval, and not per image
    else:
        known = sorted(set(df["model"]) - {"hr"})
        if not {model, baseline} <= set(known):
            raise CSRIPError(f"{name} scored {', '.join(known)}; --model and --baseline must be two of them")
        out = paired(df, baseline, [model], (metric,))
    rows = out[out["metric"] == metric]
    if rows.empty:
        raise CSRIPError(f"{name} has no per-image {metric} for {model} (metrics: {', '.join(results.PER_IMAGE)})")
    return rows.iloc[0][["diff", "diff_low", "diff_high", "images"]]


# ------------------------------------------------------------------------------------ command line
def runs_folder(args: argparse.Namespace, seed: int) -> Path:
    """The runs of one preset, budget (or own schedule) and seed (another budget never resumes them).
    Table 1 and Table 2's seed 0 share theirs: its C+SSIM+M and C-SRIP are trained once and are the same
    models in both."""
    plan = "own-schedule" if own_schedule(args) else f"{args.max_steps}x{args.batch_size}"
    return Path(args.runs) / f"{args.preset}-{plan}" / f"seed{seed}"


def _display(path: str | Path) -> str:
    """A path as a command shows it: relative to the repository root when inside it."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(project_root()))
    except ValueError:
        return str(path)


def command(name: str, data: dict[str, Any], args: argparse.Namespace) -> str:
    """The command that measures result `name` again as this call did (run from the repository root), the
    faces named by their subset name where `data` (`data_record`) is one."""
    parts = ["csrip", "reproduce", name, "--data", data["name"] or data["root"], "--out", _display(args.out)]
    if name == "default-model":
        parts += ["--models", *(args.models or [zoo.DEFAULT_SR, args.compare_to]), "--compare-to", args.compare_to]
    else:
        parts += ["--runs", _display(args.runs)]
        if not own_schedule(args):
            parts += ["--preset", args.preset, "--max-steps", str(args.max_steps), "--batch-size", str(args.batch_size)]
        if args.recognizers is not None:
            shipped = args.recognizers in zoo.available("recognizers")
            parts += ["--recognizers", args.recognizers if shipped else _display(args.recognizers)]
    if name.startswith("table2"):
        parts += ["--seeds", *map(str, args.seeds), *(["--all-variants"] if args.all_variants else [])]
    parts += ["--max-images", str(args.max_images)] if args.max_images else []
    parts += ["--no-identity"] if args.no_identity else []
    parts += ["--device", args.device] if args.device else []
    return shlex.join([*parts, "--force"])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"what to measure: {', '.join(NAMES)} or all")
    parser.add_argument("--render", action="store_true", help="render README.md, docs/*.md and checkpoints/MODEL_CARD.md "
                        "from results/ (between <!-- results:NAME --> markers)")
    parser.add_argument("--check", action="store_true", help="with --render: change nothing, exit 1 if a "
                        "document differs from what results/ renders")
    parser.add_argument("--interval", default=None, metavar="NAME", help="recompute one rendered interval of "
                        "result NAME from its per-image file (with --model, --metric, --baseline) and print it")
    parser.add_argument("--model", default=None, help="--interval: the model (Table 2: e.g. 'C-SRIP seed0', or "
                        "C-SRIP for the pair pooled over seeds, with --baseline C+SSIM+M)")
    parser.add_argument("--metric", default="psnr", choices=sorted(results.PER_IMAGE), help="--interval: the "
                        "metric (default psnr)")
    parser.add_argument("--baseline", default="bicubic", help="--interval: what the model is compared with "
                        "(default bicubic)")
    parser.add_argument("--ship", action="store_true", help="with table1: export its measured runs into "
                        "checkpoints/ (replacing shipped models of the same name only with --force); measures nothing")
    parser.add_argument("--data", default=None, help="face folder <root>/<identity>/<image> "
                        "(default: $CSRIP_DATA, data/lfw-deepfunneled, else synthetic faces)")
    parser.add_argument("--out", default=str(results.results_dir()), help="results folder (default: results/)")
    parser.add_argument("--force", action="store_true", help="overwrite existing result files (training runs "
                        "are resumed or reused, never retrained); with --ship, replace shipped models")
    parser.add_argument("--runs", default=str(runs_dir() / "reproduce"), help="training runs (default: runs/reproduce)")
    parser.add_argument("--preset", default=None, choices=sorted(PRESETS),
                        help=f"model sizes and identity universe (default: {PRESET}; tiny for smoke tests; "
                        f"table2-base is always {BASE['preset']})")
    parser.add_argument("--max-steps", type=positive_int, default=STEPS, help=f"the equal budget: Adam steps per "
                        f"network (default {STEPS})")
    parser.add_argument("--batch-size", type=positive_int, default=BATCH, help=f"batch size (default {BATCH})")
    parser.add_argument("--seeds", type=nonnegative_int, nargs="+", default=None, help="table2's seeds "
                        f"(default {' '.join(map(str, SEEDS))}; table2-base: {' '.join(map(str, BASE['seeds']))})")
    parser.add_argument("--all-variants", action="store_true", help="table2: also Baseline, B+SSIM and C+SSIM "
                        "at the first seed")
    parser.add_argument("--recognizers", default=None, help="identity priors (a run folder or a shipped name; "
                        "default: recognizers-quick when they know this data's quick identities; table2-base: "
                        f"{BASE['recognizers']})")
    parser.add_argument("--models", nargs="+", default=None, metavar="CKPT", help="default-model: SR checkpoints "
                        f"or shipped names (default: {zoo.DEFAULT_SR} and --compare-to; Table 1/2's are in those results)")
    parser.add_argument("--compare-to", default=COMPARE_TO, metavar="MODEL",
                        help=f"default-model: paired differences against this model (default {COMPARE_TO})")
    parser.add_argument("--max-images", type=positive_int, default=None, help="score a fixed subset of N test "
                        "images (whole identities) instead of the whole split; recorded in the result")
    parser.add_argument("--no-identity", action="store_true", help="skip the identity judge")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: best available)")


def recipe(name: str, args: argparse.Namespace, named: bool = True) -> argparse.Namespace:
    """`args` for measuring result `name`: its name, and the preset, seeds and priors it defaults to
    (table2-base: `BASE`, on the base preset's own schedule; the others: --preset quick, seeds 0 1 2)."""
    if args.seeds is not None and len(set(args.seeds)) < len(args.seeds):
        raise CSRIPError(f"--seeds {' '.join(map(str, args.seeds))}: each seed once")
    if name != "table2-base":
        return argparse.Namespace(**{**vars(args), "name": name, "preset": args.preset or PRESET,
                                     "seeds": args.seeds or list(SEEDS)})
    if args.preset not in (None, BASE["preset"]) or (args.all_variants and named):
        raise CSRIPError(f"table2-base is the C+SSIM+M / C-SRIP pair at the {BASE['preset']} preset's own schedule: "
                         "it takes no other --preset and no --all-variants (use table2 for those)")
    return argparse.Namespace(**{**vars(args), "name": name, "preset": BASE["preset"], "all_variants": False,
                                 "recognizers": args.recognizers or BASE["recognizers"],
                                 "seeds": args.seeds or list(BASE["seeds"])})


def measure(args: argparse.Namespace) -> None:
    """Measure each named result into --out, with its provenance."""
    out = Path(args.out)
    names = list(NAMES) if "all" in args.names else args.names
    unknown = sorted(set(names) - set(NAMES))
    if unknown or not names:
        raise CSRIPError(f"unknown result {', '.join(unknown)}; expected {', '.join(NAMES)} or all" if unknown
                         else f"name a result to measure: {', '.join(NAMES)} or all (or --render)")
    recipes = {name: recipe(name, args, named=name in args.names) for name in names}
    for name in names:
        results.check_writable(out, name, args.force)  # before any training
    root = resolve_data(args.data)
    data = data_record(root)
    git = results.git_state()  # the code this process runs, before a long run gives time to edit it
    results.code_state()  # and what its training runs' sittings record (read once per process)
    for name, args in recipes.items():
        started = time.time()
        tables, fields = MEASURE[name](root, args)
        prov = results.provenance(command(name, data, args), started, git, max_images=args.max_images, data=data,
                                  **fields)
        for path in results.write(out, name, tables, prov, force=args.force):
            print(f"wrote {path}")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.interval:
        if args.model is None:
            raise CSRIPError("--interval needs --model (and optionally --metric, --baseline)")
        r = interval(out, args.interval, args.model, args.metric, args.baseline)
        print(f"{args.interval}: {args.model} - {args.baseline}, {args.metric}: {r['diff']:+.6g} "
              f"[{r['diff_low']:+.6g}, {r['diff_high']:+.6g}] (95% interval over identities, {int(r['images']):,} "
              f"images; from {out / args.interval}_per_image.csv.gz)")
        return 0
    if args.render:
        if args.names:
            raise CSRIPError("--render takes no NAME: it renders every block from --out")
        changed = results.render_docs(out, write=not args.check)
        for doc in changed:
            print(f"{doc}: {'differs from' if args.check else 'rendered from'} {out}")
        return 1 if args.check and changed else 0
    if args.ship:
        if len(args.names) != 1 or args.names[0] not in SHIP:
            raise CSRIPError(f"--ship ships the seed-0 runs of one of {', '.join(SHIP)} (Table 2's seed-0 pair is "
                             "among table1's): e.g. csrip reproduce table1 --ship")
        for name in ship(recipe(args.names[0], args)):
            print(f"shipped {name}")
    else:
        measure(args)
    if out.resolve() == results.results_dir().resolve():
        for doc in results.render_docs(out):
            print(f"rendered {doc}")
    return 0
