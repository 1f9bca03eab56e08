"""The shipped models in checkpoints/ (csrip_lib.models.zoo): they load safely, match their checksums, beat
bicubic on held-out faces, and `csrip hallucinate` uses the default one when no checkpoint is given.

Held-out faces: the identity-disjoint test split of $CSRIP_DATA (real LFW) when it is set, else the
session's synthetic faces (conftest.face_root); a fixed subset of N_EVAL images keeps this fast.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from skimage import data as skdata
from torchvision.io import decode_image, write_png

from csrip_lib.cli import main
from csrip_lib.core.checkpoint import save_checkpoint
from csrip_lib.core.config import DegradationConfig, degradation_of, to_dict
from csrip_lib.core.console import CSRIPError
from csrip_lib.evaluation.evaluate import evaluate_models, summarize_results
from csrip_lib.models import CascadedSR, zoo
from csrip_lib.models.recognizer import load_recognizers
from csrip_lib.models.registry import competitor_key, load_sr

N_EVAL = 36  # held-out faces per model
SHIPPED = zoo.available()
SR_MODELS = zoo.available("sr")
# Table 1's competitors (by their row name then or now, `competitor_key`) are shipped as measured at one
# budget: each must beat bicubic in SSIM on held-out faces, or be named here with the measured reason.
# Every other SR model is shipped as a model to use, so it must beat bicubic in PSNR and SSIM.
COMPETITOR_MODELS = [n for n in SR_MODELS if competitor_key(zoo.manifest()[n].get("configuration", ""))]
CASCADES = [n for n in SR_MODELS if n not in COMPETITOR_MODELS]
EXPECTED_FAILURES = {  # the shipped weights of results/table1 (2026-12-08, matched sizes: issue 32), whose SSIM
    # interval over bicubic lies below 0 there; why, from each run's validation log, is rendered under the table
    "lp-quick": "PSNR above bicubic but SSIM just below it in results/table1: its validation SSIM fell in the first "
                "steps and was still rising when the 500-step budget ended (lr capped at 1e-4)",
    "srgan-quick": "PSNR above bicubic but SSIM just below it in results/table1: its adversarial stage lowered the "
                   "validation SSIM that its SRResNet-MSE stage had reached",
    "urdgn-quick": "PSNR above bicubic but SSIM below it in results/table1: pixel MSE plus an adversarial term, "
                   "whose validation SSIM rose and fell again within the budget",
}


def shortfalls(df, name: str, metrics: tuple[str, ...] = ("psnr", "ssim")) -> list[str]:
    """What model `name` of `evaluate_models` scores `df` fails to beat bicubic in (means over the same
    faces): [] when it beats bicubic in every metric of `metrics`."""
    s = summarize_results(df)
    return [f"{m} {s.loc[name, f'{m}_mean']:.4g} <= bicubic {s.loc['bicubic', f'{m}_mean']:.4g}" for m in metrics
            if not s.loc[name, f"{m}_mean"] > s.loc["bicubic", f"{m}_mean"]]


def _pt_files(name: str) -> list[Path]:
    return [zoo.CHECKPOINTS_DIR / rel for rel in zoo.manifest()[name]["files"] if rel.endswith(".pt")]


def test_the_default_sr_model_is_shipped():
    assert zoo.DEFAULT_SR in SR_MODELS, f"checkpoints/manifest.json lacks {zoo.DEFAULT_SR}: {SHIPPED}"
    total = sum(p.stat().st_size for p in zoo.CHECKPOINTS_DIR.rglob("*") if p.is_file())
    assert total <= 25e6, f"checkpoints/ holds {total / 1e6:.1f} MB, over the 25 MB budget"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_matches_its_checksum_and_loads_with_weights_only(name):
    entry = zoo.manifest()[name]
    path = zoo.resolve(name, kind=entry["kind"])  # checks every file's SHA-256
    for f in _pt_files(name):
        ckpt = torch.load(f, map_location="cpu", weights_only=True)
        assert ckpt["format"] == "csrip" and ckpt["config"]
        assert not {"optimizer", "scheduler", "state"} & ckpt.keys(), "shipped files are inference-only"
    if entry["kind"] == "sr":
        model = load_sr(path)
        if name in COMPETITOR_MODELS:  # Table 1's competitors, each its own architecture
            assert not isinstance(model, CascadedSR) and load_sr(path, model=competitor_key(entry["configuration"]))
        else:
            assert isinstance(model, CascadedSR)
        # files shipped before checkpoints saved their degradation read as the default they were trained
        # with; later ones (csrip-base) saved it: every shipped SR model was trained under the default
        config = torch.load(path, weights_only=True)["config"]
        assert model.degradation == degradation_of(config) == DegradationConfig()
    else:
        assert sorted(load_recognizers(path)) == [48, 96, 192]


def test_model_card_records_the_manifest_checksums():
    """MODEL_CARD.md names every shipped file with the SHA-256 the registry checks."""
    card = (zoo.CHECKPOINTS_DIR / "MODEL_CARD.md").read_text()
    recorded = dict(re.findall(r"`([\w./-]+)`[^`\n]*`([0-9a-f]{64})`", card))
    expected = {rel: digest for e in zoo.manifest().values() for rel, digest in e["files"].items()
                if rel.endswith(".pt")}
    assert recorded == expected
    for name in SHIPPED:
        assert f"## {name}" in card, f"MODEL_CARD.md has no section for {name}"


def test_model_card_recipes_run_on_todays_code_and_export_the_recorded_descriptions():
    """Issue 33: a recipe that names a commit must run there, else it is today's recipe. Every recipe in the card
    is checked against today's code: each `from csrip_lib... import ...` resolves, each `csrip` command line parses,
    and each `csrip export --description` is the description the manifest records."""
    import ast
    import importlib
    import shlex
    import textwrap

    from csrip_lib.cli import build_parser

    card = (zoo.CHECKPOINTS_DIR / "MODEL_CARD.md").read_text()
    blocks = re.findall(r"```(python|bash)\n(.*?)```", card, re.S)
    assert {kind for kind, _ in blocks} == {"python", "bash"}
    for kind, code in blocks:
        code = textwrap.dedent(code)  # indented under a list item
        if kind == "python":
            for node in ast.walk(ast.parse(code)):
                if isinstance(node, ast.ImportFrom) and node.module.startswith("csrip_lib"):
                    module = importlib.import_module(node.module)
                    assert all(hasattr(module, a.name) for a in node.names), node.module
            continue
        for line in code.replace("\\\n", " ").splitlines():
            words = shlex.split(line)
            words = words[next(i for i, w in enumerate(words) if w == "csrip"):] if "csrip" in words else []
            if not words:
                continue
            args = build_parser(words[1]).parse_args(words[1:])  # exits (SystemExit) on a flag today's csrip lacks
            if words[1] == "export" and args.description:
                assert args.description == zoo.manifest()[args.name]["description"], args.name


@pytest.mark.parametrize("name", CASCADES)
def test_shipped_sr_model_beats_bicubic_on_held_out_faces(name, face_root):
    model = load_sr(zoo.resolve(name))
    df = evaluate_models({name: model}, face_root, "test", max_images=N_EVAL, progress=False)
    assert not shortfalls(df, name), summarize_results(df)
    per_image = df.pivot(index="image", columns="model", values="psnr")
    assert (per_image[name] > per_image["bicubic"]).mean() >= 0.8, "should win on most faces"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(reason=EXPECTED_FAILURES[n], strict=True))
                                  if n in EXPECTED_FAILURES else n for n in COMPETITOR_MODELS])
def test_shipped_competitor_beats_bicubic_in_ssim_or_is_an_expected_failure(name, lfw_root):
    """On real faces ($CSRIP_DATA: the competitors were measured on LFW, and on the synthetic faces even
    srcnn-quick's 4.6K parameters trained on LFW fall below bicubic). strict: an expected failure that
    passes fails the test, so the list above stays true."""
    df = evaluate_models({name: load_sr(zoo.resolve(name))}, lfw_root, "test", max_images=N_EVAL, progress=False)
    assert not shortfalls(df, name, ("ssim",)), summarize_results(df)


def test_unknown_name_lists_the_available_ones():
    with pytest.raises(CSRIPError, match="unknown model 'no-such-model'") as e:
        zoo.resolve("no-such-model")
    assert all(n in str(e.value) for n in SR_MODELS)
    with pytest.raises(CSRIPError, match="checkpoint not found: runs/nothing/best.pt"):
        zoo.resolve("runs/nothing/best.pt")


def test_wrong_kind_is_refused():
    with pytest.raises(CSRIPError, match="expected recognizers"):
        zoo.resolve(zoo.DEFAULT_SR, kind="recognizers")


def test_a_path_is_returned_as_is(tmp_path):
    f = tmp_path / "best.pt"
    f.write_bytes(b"")
    assert zoo.resolve(f) == f and zoo.resolve(str(f)) == f


def test_corrupted_copy_fails_with_a_checksum_error(tmp_path):
    root = tmp_path / "checkpoints"
    shutil.copytree(zoo.CHECKPOINTS_DIR, root)
    f = root / zoo.manifest(root)[zoo.DEFAULT_SR]["path"]
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(CSRIPError, match="checksum mismatch"):
        zoo.resolve(zoo.DEFAULT_SR, root=root)
    assert zoo.resolve("csrip-quick", root=zoo.CHECKPOINTS_DIR).is_file()  # the original is fine


def test_export_keeps_weights_and_configs_only(tmp_path):
    """A training checkpoint (optimizer, scheduler and RNG state for exact resume) -> a small
    inference-only file recorded in a manifest, which `resolve` then finds by name."""
    torch.manual_seed(0)
    model = CascadedSR.from_preset("tiny")
    degradation = to_dict(DegradationConfig(sigma=0.5))
    src = save_checkpoint({"model": model.state_dict(), "config": {"sr": to_dict(model.cfg), "degradation": degradation},
                           "optimizer": torch.optim.Adam(model.parameters()).state_dict(),
                           "state": {"rng": torch.get_rng_state()}, "identities": ["a", "b"]},
                          tmp_path / "run" / "best.pt", kind="sr")
    entry = zoo.export(src, "my-model", "sr", "a test", root=tmp_path / "zoo")
    path = zoo.resolve("my-model", root=tmp_path / "zoo")
    assert entry["files"] == {"my-model.pt": zoo.sha256(path)}
    ckpt = torch.load(path, weights_only=True)
    assert set(ckpt) == {"format", "version", "kind", "model", "config", "identities"}
    assert ckpt["config"]["name"] == "my-model" and ckpt["config"]["degradation"] == degradation
    assert load_sr(path).degradation == DegradationConfig(sigma=0.5)
    lr = torch.rand(1, 3, 24, 24)
    torch.testing.assert_close(load_sr(path)(lr), model.eval()(lr))
    assert zoo.available(root=tmp_path / "zoo") == ["my-model"]


def test_csrip_export_records_the_command_that_trained_the_model(tmp_path):
    model = CascadedSR.from_preset("tiny")
    src = save_checkpoint({"model": model.state_dict(), "config": {"sr": to_dict(model.cfg)}}, tmp_path / "best.pt",
                          kind="sr")
    command = "csrip train-sr --preset tiny --out runs/t"
    assert main(["export", str(src), "--name", "m", "--dest", str(tmp_path / "zoo"), "--trained-by", command]) == 0
    assert zoo.manifest(tmp_path / "zoo")["m"]["command"] == command


def test_hallucinate_without_a_checkpoint_uses_the_default(tmp_path, capsys):
    photo = tmp_path / "astronaut.png"
    write_png(torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).contiguous(), str(photo))
    assert main(["hallucinate", str(photo), "-o", str(tmp_path / "out")]) == 0
    assert f"using the shipped SR model '{zoo.DEFAULT_SR}'" in capsys.readouterr().out
    sr = decode_image(str(tmp_path / "out" / "astronaut_face1_sr.png"))
    lr = decode_image(str(tmp_path / "out" / "astronaut_face1_lr-simulated.png"))
    assert tuple(lr.shape) == (3, 24, 24) and tuple(sr.shape) == (3, 192, 192)  # 8x
    assert sr.float().std() > 10  # a face, not a flat image


def test_evaluate_accepts_a_shipped_name(face_root, tmp_path, capsys):
    out = tmp_path / "results.csv"
    assert main(["evaluate", "--checkpoint", zoo.DEFAULT_SR, "--data", str(face_root), "--out", str(out),
                 "--max-images", "4", "--workers", "0", "--no-identity"]) == 0
    import pandas as pd
    assert set(pd.read_csv(out)["model"]) == {"bicubic", zoo.DEFAULT_SR}


def test_the_default_model_follows_the_identity_prior_rule_of_table2_base():
    """Issue 31: the default model is the base-scale C-SRIP only when results/table2-base meets the rule
    (better on PSNR or judge rank-1 over test identities and over seeds, worse on nothing), else C+SSIM+M;
    a new measurement that flips the verdict fails here until the default follows it."""
    from csrip_lib.core import results
    from csrip_lib.core.checkpoint import load_checkpoint
    from csrip_lib.core.config import project_root
    from csrip_lib.reproduce import configuration

    measured = results.read(project_root() / "results", "table2-base")
    assert measured is not None, "results/table2-base is committed: the default model is decided by it"
    met, why = results.identity_prior_decision(measured[0]["paired"])
    default = configuration(load_checkpoint(zoo.resolve(zoo.DEFAULT_SR), kind="sr")["config"])
    assert default == ("C-SRIP" if met else "C+SSIM+M"), f"table2-base: {why}; default {zoo.DEFAULT_SR} is {default}"
    assert {"c-ssim-m-base", "c-srip-base"} <= set(SR_MODELS)  # the base pair is shipped either way
