"""`csrip hallucinate` on a real photo (scikit-image's astronaut) with a tiny, untrained checkpoint.

The network's output quality is not tested here (random weights); the plumbing is: detection, the
LFW framing, simulated vs native LR, output files and sizes, --force, skipped files, exit codes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data as skdata
from torchvision.io import write_png

from csrip_lib.cli import main
from csrip_lib.core.checkpoint import save_checkpoint
from csrip_lib.core.config import DegradationConfig, to_dict
from csrip_lib.core.degradation import degrade
from csrip_lib.data.faces import decode_rgb
from csrip_lib.evaluation.hallucinate import (FACE_BOX_DY, FACE_BOX_FRACTION, detect_faces, face_crop_box,
                                              hallucinate_image, measure_framing)
from csrip_lib.evaluation.inference import Upscaler
from csrip_lib.models import CascadedSR

# The astronaut's face (Eileen Collins) in skimage.data.astronaut(), 512 x 512, read off the photo:
# chin to hairline x 180..270, y 70..165 (centre about (225, 117)).
FACE_CENTRE, FACE_SIDE = (225, 117), (70, 130)


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    return torch.from_numpy(skdata.astronaut()).permute(2, 0, 1).contiguous()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A tiny CascadedSR checkpoint in the format `load_sr` reads (kind "sr", config["sr"])."""
    torch.manual_seed(0)
    model = CascadedSR.from_preset("tiny")
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    return save_checkpoint({"model": model.state_dict(), "config": {"sr": to_dict(model.cfg)}}, path, kind="sr")


@pytest.fixture()
def photos(tmp_path, astronaut) -> Path:
    """A folder with the astronaut photo, a text file and a corrupt JPEG."""
    d = tmp_path / "photos"
    d.mkdir()
    write_png(astronaut, str(d / "astronaut.png"))
    (d / "notes.txt").write_text("not an image")
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    return d


def hallucinate(*args) -> int:
    return main(["hallucinate", *map(str, args)])


def read(path: Path) -> torch.Tensor:
    return decode_rgb(path)


def test_detects_the_astronauts_face_and_frames_it_like_lfw(astronaut):
    faces = detect_faces(astronaut)
    assert len(faces) == 1, faces  # the flag and the mission patch must not count as faces
    x0, y0, x1, y1 = faces[0]["box"]
    assert abs((x0 + x1) / 2 - FACE_CENTRE[0]) < 20 and abs((y0 + y1) / 2 - FACE_CENTRE[1]) < 20
    assert FACE_SIDE[0] < x1 - x0 < FACE_SIDE[1]
    cx0, cy0, side = face_crop_box(faces[0]["box"])  # crop = box / FACE_BOX_FRACTION, same centre
    assert side == pytest.approx((x1 - x0) / FACE_BOX_FRACTION, abs=2)
    assert cx0 < x0 and cy0 < y0 and cx0 + side > x1 and cy0 + side > y1


def test_two_faces_left_to_right_and_large_photos_searched_downscaled(astronaut):
    upper = astronaut[:, :256, 96:352]  # the face at x 84..174 of this 256 x 256 cut
    two = torch.cat([upper, upper.flip(-1)], dim=2).contiguous()  # 512 wide: two faces
    boxes = [f["box"] for f in detect_faces(two)]
    assert len(boxes) == 2 and boxes[0][2] < 256 < boxes[1][0], boxes
    big = torch.nn.functional.interpolate(astronaut[None].float(), scale_factor=3, mode="bilinear")
    big = big[0].round().clamp(0, 255).to(torch.uint8)  # 1536 px: searched at 1024, boxes mapped back
    (face,) = detect_faces(big)  # fine-scale clutter (flag stripes, glove) is dropped
    x0, y0, x1, y1 = face["box"]
    assert abs((x0 + x1) / 6 - FACE_CENTRE[0]) < 20 and abs((y0 + y1) / 6 - FACE_CENTRE[1]) < 20


def test_python_api_returns_lr_sr_bicubic_and_crop(checkpoint, astronaut):
    from csrip_lib.models.registry import load_sr
    up = Upscaler(load_sr(checkpoint), device="cpu")
    (r,) = hallucinate_image(up, astronaut)
    assert r["simulated"] and r["score"] >= 3
    assert r["lr"].shape == (3, 24, 24) and r["crop"].shape == (3, 192, 192)
    assert r["sr"].shape == r["bicubic"].shape == (3, 192, 192)
    torch.testing.assert_close(r["lr"], degrade(r["crop"][None], 8)[0])  # the training degradation
    torch.testing.assert_close(r["sr"], up(r["lr"][None])[0])
    assert abs(r["crop"].mean() - astronaut[:, 70:165, 180:270].float().mean() / 255) < 0.15


def test_faces_are_degraded_as_the_model_was_trained(checkpoint, astronaut, tmp_path, capsys):
    """A checkpoint saved with DegradationConfig(sigma=0.5): its simulated LR faces use 0.5; `--sigma 1`
    overrides it with one warning line."""
    ckpt = torch.load(checkpoint, weights_only=True)
    half = save_checkpoint({"model": ckpt["model"], "config": {**ckpt["config"],
                            "degradation": to_dict(DegradationConfig(sigma=0.5))}}, tmp_path / "half.pt", kind="sr")
    from csrip_lib.models.registry import load_sr
    (r,) = hallucinate_image(Upscaler(load_sr(half), device="cpu"), astronaut, detect=False)
    torch.testing.assert_close(r["lr"], degrade(r["crop"][None], 8, DegradationConfig(sigma=0.5))[0])
    assert not torch.allclose(r["lr"], degrade(r["crop"][None], 8)[0])
    write_png(astronaut, str(tmp_path / "a.png"))
    assert hallucinate("--checkpoint", half, tmp_path / "a.png", "-o", tmp_path / "out", "--sigma", "1") == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1 and "trained with DegradationConfig(sigma=0.5" in warned[0]


def test_cli_writes_sr_lr_and_panels(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "out"
    assert hallucinate("--checkpoint", checkpoint, photos, "-o", out, "--panel") == 0
    err = capsys.readouterr().err
    assert "notes.txt" in err and "non-image" in err  # skipped with a warning
    assert "broken.jpg" in err and "unreadable" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "astronaut_detections.png", "astronaut_face1_lr-simulated.png", "astronaut_face1_panel.png",
        "astronaut_face1_sr.png"]
    assert read(out / "astronaut_face1_sr.png").shape == (3, 192, 192)
    assert read(out / "astronaut_face1_lr-simulated.png").shape == (3, 24, 24)
    assert read(out / "astronaut_detections.png").shape == (3, 512, 512)
    assert read(out / "astronaut_face1_panel.png").shape[-2:] == (240, 4 * 200 + 8)  # 4 columns at 1:1


def test_the_model_is_named_from_its_checkpoint_in_panels_and_printout(checkpoint, astronaut, tmp_path,
                                                                       capsys, monkeypatch):
    """The panel's SR column and the last printed line name the model from its saved config (its shipped
    name and Table 2 variant), never a fixed "C-SRIP": an alpha-0 multi-scale model is C+SSIM+M."""
    import csrip_lib.evaluation.hallucinate as h

    ckpt = torch.load(checkpoint, weights_only=True)
    config = {**ckpt["config"], "preset": "tiny", "name": "my-model",
              "loss": {"reconstruction": "ssim", "multiscale": True, "alpha": 0.0}}
    named = save_checkpoint({"model": ckpt["model"], "config": config}, tmp_path / "named.pt", kind="sr")
    labels = []
    monkeypatch.setattr(h, "_panel", lambda result, title, label: labels.append(label) or b"png")
    write_png(astronaut, str(tmp_path / "a.png"))
    assert hallucinate("--checkpoint", named, tmp_path / "a.png", "-o", tmp_path / "out", "--panel") == 0
    assert labels == ["my-model (C+SSIM+M, alpha 0)"]
    assert "used my-model: tiny cascade, C+SSIM+M (alpha 0)" in capsys.readouterr().out


@pytest.mark.parametrize("name, expected", [
    ("csrip-quick", "csrip-quick: quick cascade, C+SSIM+M (alpha 0)"),
    ("c-srip-quick", "c-srip-quick: quick cascade, C-SRIP (alpha 0.001)")])
def test_shipped_models_are_described_by_their_saved_config(name, expected):
    from csrip_lib.models import zoo
    from csrip_lib.core.checkpoint import load_checkpoint
    from csrip_lib.models.registry import describe_model

    if name not in zoo.available("sr"):
        pytest.skip(f"{name} is not shipped in checkpoints/")
    assert describe_model(load_checkpoint(zoo.resolve(name), kind="sr")["config"]) == expected


def test_nothing_is_overwritten_without_force(checkpoint, photos, tmp_path, capsys):
    out = tmp_path / "out"
    image = photos / "astronaut.png"
    assert hallucinate("--checkpoint", checkpoint, image, "-o", out) == 0
    sr = out / "astronaut_face1_sr.png"
    write_png(torch.zeros(3, 8, 8, dtype=torch.uint8), str(sr))  # stands in for a result to keep
    capsys.readouterr()
    assert hallucinate("--checkpoint", checkpoint, image, "-o", out) == 0
    err = capsys.readouterr().err
    assert "exists" in err and "--force" in err
    assert read(sr).shape == (3, 8, 8)
    assert hallucinate("--checkpoint", checkpoint, image, "-o", out, "--force") == 0
    assert read(sr).shape == (3, 192, 192)


def test_no_face_is_a_warning_with_a_hint(checkpoint, tmp_path, capsys):
    flat = tmp_path / "wall.png"
    write_png(torch.full((3, 200, 300), 128, dtype=torch.uint8), str(flat))
    assert hallucinate("--checkpoint", checkpoint, flat, "-o", tmp_path / "out") == 1  # nothing written
    err = capsys.readouterr().err
    assert "no face found in" in err and "wall.png" in err and "--no-detect" in err


def test_no_detect_uses_the_centre_square_or_native_lr(checkpoint, astronaut, tmp_path):
    d = tmp_path / "faces"
    d.mkdir()
    write_png(astronaut[:, 60:180, 170:280].contiguous(), str(d / "face.png"))  # 110 x 120 face crop
    write_png(astronaut[:, 100:120, 210:230].contiguous(), str(d / "tiny.png"))  # 20 x 20: already LR
    out = tmp_path / "out"
    assert hallucinate("--checkpoint", checkpoint, d, "-o", out, "--no-detect", "--panel") == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["face_face1_lr-simulated.png", "face_face1_panel.png", "face_face1_sr.png",
                     "tiny_face1_lr-native.png", "tiny_face1_panel.png", "tiny_face1_sr.png"]
    native = read(out / "tiny_face1_lr-native.png")
    assert native.shape == (3, 24, 24)
    assert torch.equal(native[:, 2:22, 2:22], astronaut[:, 100:120, 210:230])  # used as is, padded
    assert read(out / "tiny_face1_sr.png").shape == (3, 192, 192)


@pytest.mark.parametrize("case", ["missing input", "output is a file", "not a checkpoint",
                                  "recognizer checkpoint", "unknown name", "bad min-face", "bad device"])
def test_bad_arguments_exit_2(case, checkpoint, photos, tmp_path, capsys):
    image, out, ckpt, extra = photos / "astronaut.png", tmp_path / "out", checkpoint, []
    if case == "missing input":
        image = tmp_path / "nope.jpg"
    elif case == "output is a file":
        out.write_text("x")
    elif case == "not a checkpoint":
        ckpt = tmp_path / "model.pt"
        ckpt.write_text("garbage")
    elif case == "recognizer checkpoint":
        ckpt = save_checkpoint({"model": {}, "config": {}}, tmp_path / "rec.pt", kind="recognizer")
    elif case == "unknown name":
        ckpt = "csrip-huge"
    elif case == "bad min-face":
        extra = ["--min-face", "0"]
    elif case == "bad device":
        extra = ["--device", "tpu7"]
    try:
        code = hallucinate("--checkpoint", ckpt, image, "-o", out, *extra)
    except SystemExit as e:  # argparse itself refuses bad numbers (csrip_lib.core.console)
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("csrip hallucinate: error:") and len(err.splitlines()) == 1
    assert not (out / "astronaut_face1_sr.png").exists()


def test_missing_output_option_is_a_usage_error(photos, checkpoint):
    with pytest.raises(SystemExit) as e:  # (no --checkpoint is fine: tests/test_zoo.py)
        hallucinate(photos, "--checkpoint", checkpoint)
    assert e.value.code == 2


@pytest.mark.skipif(not os.environ.get("CSRIP_DATA"), reason="needs real LFW images (CSRIP_DATA)")
def test_detection_on_lfw_recovers_the_training_crop():
    """On 250 x 250 LFW images the detected crop should be close to the training crop (centre 192)."""
    files = sorted(Path(os.environ["CSRIP_DATA"]).glob("*/*.jpg"))[::997][:6]
    for f in files:
        faces = detect_faces(decode_rgb(f))
        assert faces, f"no face found in {f}"
        x0, y0, side = min((face_crop_box(b["box"]) for b in faces),
                           key=lambda c: abs(c[0] + c[2] / 2 - 125) + abs(c[1] + c[2] / 2 - 125))
        assert abs(x0 - 29) < 30 and abs(y0 - 29) < 30 and abs(side - 192) < 50, (f, x0, y0, side)
    framing = measure_framing(files, progress=False)  # the constants still describe the data
    assert framing["detected"] == 1.0
    assert abs(framing["face_box_fraction"] - FACE_BOX_FRACTION) < 0.08
    assert abs(framing["face_box_dy"] - FACE_BOX_DY) < 0.1


def panel(faces: list[torch.Tensor], side: int, gap: int, cols: int = 4) -> torch.Tensor:
    """A contact sheet: `faces` (uint8 3 x H x W) resized to side x side in rows of `cols`, on white,
    with a grey margin: the kind of photo whose coarse scales look like one face."""
    from torchvision.transforms.v2 import functional as TF

    rows = -(-len(faces) // cols)
    sheet = torch.full((3, rows * (side + gap) + gap, cols * (side + gap) + gap), 255, dtype=torch.uint8)
    for k, f in enumerate(faces):
        r, c = divmod(k, cols)
        y, x = gap + r * (side + gap), gap + c * (side + gap)
        sheet[:, y:y + side, x:x + side] = TF.resize(f, [side, side], antialias=True)
    out = torch.full((3, sheet.shape[1] + 100, sheet.shape[2] + 100), 230, dtype=torch.uint8)
    out[:, 50:50 + sheet.shape[1], 50:50 + sheet.shape[2]] = sheet
    return out


def test_a_box_over_several_faces_holds_them_and_a_face_holds_none(astronaut):
    from csrip_lib.evaluation.hallucinate import SCALE_FACTOR, _inner_faces

    (face,) = detect_faces(astronaut)
    x0, y0, side = face_crop_box(face["box"])
    portrait = astronaut[:, y0:y0 + side, x0:x0 + side].contiguous()
    sheet = panel([portrait] * 4, 64, 4, cols=2)  # 2 x 2 faces of ~38 px
    arr = sheet.permute(1, 2, 0).numpy()
    grid = np.array([50, 50, sheet.shape[2] - 50, sheet.shape[1] - 50], float)
    assert _inner_faces(arr, 3, grid, SCALE_FACTOR, 3, 0.3) == 4
    photo = astronaut.permute(1, 2, 0).numpy()
    assert _inner_faces(photo, face["score"], np.array(face["box"]), SCALE_FACTOR, 3, 0.3) == 0  # parts are weaker


@pytest.mark.parametrize("side, gap", [(36, 3), (50, 0)])
def test_a_panel_of_small_faces_is_not_hallucinated_as_one_face(lfw_root, side, gap, monkeypatch):
    """On contact sheets of 12 LFW faces the cascade also fires on a block of several faces at a coarse
    scale (without the check, at each of these sizes, on the LFW development subset): that block is left
    out, with a warning, and the single faces stay."""
    import random

    from csrip_lib.data.faces import decode_rgb
    from csrip_lib.evaluation import hallucinate

    paths = random.Random(0).sample(sorted(lfw_root.glob("*/*.jpg")), 12)
    sheet = panel([decode_rgb(p)[:, 40:210, 40:210] for p in paths], side, gap)  # head-and-shoulders cuts
    wide = lambda f: f["box"][2] - f["box"][0] > 1.5 * side  # noqa: E731 (spans several portraits)
    with monkeypatch.context() as m:
        m.setattr(hallucinate, "_inner_faces", lambda *args: 0)  # the detector without the check
        before = detect_faces(sheet)
    if not any(map(wide, before)):
        pytest.skip(f"these faces at {side} px make no multi-face block (measured on the LFW development subset)")
    with pytest.warns(UserWarning, match="holds several faces"):
        kept = detect_faces(sheet)
    assert not any(map(wide, kept)), kept
    assert len(kept) >= sum(not wide(f) for f in before)  # the single faces are kept
