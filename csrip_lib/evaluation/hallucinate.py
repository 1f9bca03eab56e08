"""`csrip hallucinate`: 8x face hallucination for any photo (the paper's use case, Sec. 1 and Fig. 1).

    csrip hallucinate photo.jpg -o out/ --panel        # the shipped default model (csrip_lib.models.zoo)
    csrip hallucinate --checkpoint runs/sr/best.pt photo.jpg -o out/ --panel

For every face in a photo:

1. Detect it with scikit-image's LBP frontal-face cascade (`detect_faces`): the raw multi-scale
   detections are grouped by overlap, a group needs `min_neighbors` detections, colour photos need
   skin-coloured pixels in the box centre (this removes e.g. the flag in skimage's astronaut photo,
   which the cascade fires on almost as often as on the face), detections on part of a stronger face
   are dropped, and so are faces under half the size and half the detections, or under a quarter the
   size, of the clearest face (small clutter found at fine scales of large photos). A box that holds
   two or more faces at least as clear as itself (searched again inside it at 2x) is a group of small
   faces, e.g. a panel of portraits, that coarse scales see as one: it is dropped, with a warning. Grayscale photos
   get no skin check and so more false detections; --no-detect on a cropped face skips detection.
2. Cut a square around it framed like the training data (`face_crop_box`): the HR faces are the centre
   192 x 192 of 250 x 250 LFW deep-funneled images, and in that frame the cascade's box is
   FACE_BOX_FRACTION of the crop side, centred FACE_BOX_DY box sides above the crop centre (medians
   measured with `measure_framing` on LFW; see the constants).
3. Bring it to 24 x 24: a crop larger than 24 px is resized to 192 (antialiased) and degraded with the
   paper's model as the network was trained (Sec. 3.3, `degradation.degrade(x, 8, model.degradation)`;
   --sigma overrides it, with a warning): a *simulated* LR face, so the output can be
   compared with the crop. A face that is already 24 px or smaller (only with --no-detect) is used as it
   is, padded to 24 (*native* LR).
4. Run the SR network through the fast path (`inference.Upscaler`) and write
   OUT/<image>_face<k>_sr.png (192 x 192), OUT/<image>_face<k>_lr-simulated.png (or lr-native),
   and with --panel OUT/<image>_face<k>_panel.png (LR | bicubic | the model | input crop) and
   OUT/<image>_detections.png (the photo with the boxes). The model is named from its checkpoint
   (`models.registry.describe_model`: its shipped name and what it is, e.g. "csrip-quick (C+SSIM+M,
   alpha 0)"), in the panels and in the last line printed.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from skimage.color import rgb2ycbcr
from skimage.data import lbp_frontal_face_cascade_filename
from skimage.feature import Cascade
from torchvision.io import encode_png
from torchvision.transforms.v2 import functional as TF
from torchvision.utils import draw_bounding_boxes

from ..core.config import HR_SIZE, LR_SIZE, DegradationConfig
from ..core.console import CSRIPError, nonnegative_float, positive_int, tqdm
from ..core.degradation import DEFAULT, degrade, for_models, upsample_bicubic
from ..core.outputs import check_dir, write_output
from ..core.runtime import pick_device
from ..data.faces import IMAGE_EXTENSIONS, LFW_SIZE, decode_rgb, looks_like_image
from ..models.registry import load_sr
from ..models.zoo import DEFAULT_SR, resolve
from .inference import Upscaler

# Framing of the training data, measured with `measure_framing` on 200 random LFW deep-funneled images
# of the development set (a face was found in all 200; 2026-11-27): the cascade's box side is 0.590 of
# the 192-px crop side, 113 px of the 250-px frame (consistent with how LFW was made: a Viola-Jones box
# enlarged 2.2x to 250 px, 250 / 2.2 = 114), so a crop is 1.7 box sides wide ...
FACE_BOX_FRACTION = 0.59
# ... and the box centre lies this many box sides above the crop centre (measured -0.008: centred).
FACE_BOX_DY = 0.0

# Detector settings (skimage.feature.Cascade.detect_multi_scale); tuned on the astronaut photo and LFW.
SCALE_FACTOR = 1.1  # window growth per scale: 1.1 finds faces of every size, 1.2 is ~2x faster
STEP_RATIO = 1.0  # exhaustive sliding window (the cascade rejects most windows in its first stage)
DETECT_MAX_SIDE = 1024  # photos are searched at most this large (boxes are mapped back)
MIN_NEIGHBORS = 3  # raw detections a face needs (OpenCV's minNeighbors)
GROUP_IOU = 0.3  # raw detections overlapping this much belong to one face
SKIN_FRACTION = 0.3  # fraction of skin-coloured pixels a colour-photo box centre needs
CLUTTER_RATIO = 0.5  # faces under half the size and score, or a quarter the size, of the clearest one go
SUB_FACE = 0.6  # a box holding two faces under this fraction of its side, each as clear as it, is a group


# ---- detection ---------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _cascade():
    return Cascade(lbp_frontal_face_cascade_filename())


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a (x0, y0, x1, y1) with every row of b."""
    w = (np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0])).clip(0)
    h = (np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1])).clip(0)
    inter = w * h
    area = lambda r: (r[..., 2] - r[..., 0]) * (r[..., 3] - r[..., 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def _group(raw: np.ndarray, iou: float) -> list[np.ndarray]:
    """Connected components of the 'IoU >= iou' graph over raw boxes."""
    parent = list(range(len(raw)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(raw)):
        for j in np.flatnonzero(_iou(raw[i], raw[i + 1:]) >= iou) + i + 1:
            parent[root(i)] = root(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(raw)):
        groups.setdefault(root(i), []).append(i)
    return [raw[idx] for idx in groups.values()]


def _skin_fraction(image: np.ndarray, box: np.ndarray) -> float:
    """Fraction of skin-coloured pixels (YCbCr rule of Chai & Ngan 1999) in the central 60 % of box."""
    x0, y0, x1, y1 = box
    m = 0.2 * (x1 - x0)
    patch = image[int(y0 + m):int(math.ceil(y1 - m)), int(x0 + m):int(math.ceil(x1 - m))]
    if patch.size == 0:
        return 0.0
    ycc = rgb2ycbcr(patch)
    cb, cr = ycc[..., 1], ycc[..., 2]
    return float(((cb >= 77) & (cb <= 127) & (cr >= 133) & (cr <= 173)).mean())


def detect_faces(image: torch.Tensor, min_face: int = 24, min_neighbors: int = MIN_NEIGHBORS,
                 scale_factor: float = SCALE_FACTOR, max_side: int = DETECT_MAX_SIDE,
                 skin_fraction: float = SKIN_FRACTION) -> list[dict[str, Any]]:
    """Frontal faces in a uint8 3 x H x W photo: [{"box": (x0, y0, x1, y1), "score": n}], left to right.

    score = number of raw cascade detections merged into the face. Boxes are in the photo's pixels.
    min_face: smallest face box side searched for, in the photo's pixels (the cascade's window is 24).
    """
    _check_uint8_image(image)
    h, w = image.shape[-2:]
    scale = min(1.0, max_side / max(h, w))
    small = image if scale == 1 else TF.resize(image, [round(h * scale), round(w * scale)], antialias=True)
    arr = small.permute(1, 2, 0).numpy()
    side = min(arr.shape[:2])
    lo = max(24, math.ceil(min_face * scale))
    if side < lo:
        return []
    colour = not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]))
    faces = _candidates(arr, lo, side, scale_factor, min_neighbors, skin_fraction if colour else 0.0)
    groups = [i for i, (n, box) in enumerate(faces)
              if _inner_faces(arr, n, box, scale_factor, min_neighbors, skin_fraction if colour else 0.0) >= 2]
    for i in groups:
        warnings.warn("left out a detection at ({:.0f}, {:.0f}, {:.0f}, {:.0f}) that holds several faces (a "
                      "group seen as one face at a coarse scale); crop the group to hallucinate its faces".format(
                          *(v / scale for v in faces[i][1])))
    faces = [f for i, f in enumerate(faces) if i not in groups]
    kept: list[tuple[int, np.ndarray]] = []
    for n, box in sorted(faces, key=lambda t: -t[0]):  # strongest first; drop parts of a kept face
        if not any(_part_of(box, k) for _, k in kept):
            kept.append((n, box))
    if kept:  # clutter next to the clearest face: a quarter of its size, or half its size and score
        best_n, best = kept[0]
        ratio = lambda b: (b[2] - b[0]) / (best[2] - best[0])  # noqa: E731
        kept = [(n, b) for n, b in kept
                if ratio(b) >= CLUTTER_RATIO / 2 and (ratio(b) >= CLUTTER_RATIO or n >= CLUTTER_RATIO * best_n)]
    kept.sort(key=lambda t: t[1][0])
    return [{"box": tuple(float(v) / scale for v in box), "score": n} for n, box in kept]


def _candidates(arr: np.ndarray, lo: int, hi: int, scale_factor: float, min_neighbors: int,
                skin_fraction: float) -> list[tuple[int, np.ndarray]]:
    """(raw detections merged, mean box) of every group of the cascade's raw boxes of side lo..hi that has
    `min_neighbors` of them and, with skin_fraction > 0, enough skin-coloured pixels."""
    raw = _cascade().detect_multi_scale(
        img=arr, scale_factor=scale_factor, step_ratio=STEP_RATIO, min_size=(lo, lo),
        max_size=(hi, hi), min_neighbor_number=1, intersection_score_threshold=1.01)  # raw boxes
    if not raw:
        return []
    boxes = np.array([[d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]] for d in raw], float)
    return [(len(g), g.mean(axis=0)) for g in _group(boxes, GROUP_IOU)
            if len(g) >= min_neighbors and (not skin_fraction or _skin_fraction(arr, g.mean(axis=0)) >= skin_fraction)]


def _inner_faces(arr: np.ndarray, n: int, box: np.ndarray, scale_factor: float, min_neighbors: int,
                 skin_fraction: float) -> int:
    """How many faces inside `box` (searched again in the box, at 2x up to 256 px, so faces of 12 px count) are
    under SUB_FACE of its side and at least as clear as it (n raw detections or more), parts of one
    another counted once. A face's own parts (eyes, mouth) are weaker detections than the face."""
    x0, y0 = (max(0, int(v)) for v in box[:2])
    x1, y1 = min(arr.shape[1], int(math.ceil(box[2]))), min(arr.shape[0], int(math.ceil(box[3])))
    if min(x1 - x0, y1 - y0) < 24:
        return 0
    f = 2 if max(x1 - x0, y1 - y0) <= 256 else 1  # larger boxes: faces under SUB_FACE of them are 24 px+
    crop = torch.from_numpy(np.ascontiguousarray(arr[y0:y1, x0:x1])).permute(2, 0, 1)
    up = TF.resize(crop, [f * (y1 - y0), f * (x1 - x0)], antialias=False).permute(1, 2, 0).numpy()
    hi = int(SUB_FACE * f * min(x1 - x0, y1 - y0))
    if hi < 24:
        return 0
    found: list[np.ndarray] = []
    for m, b in sorted(_candidates(up, 24, hi, scale_factor, min_neighbors, skin_fraction), key=lambda t: -t[0]):
        if m >= n and not any(_part_of(b, k) or _part_of(k, b) for k in found):
            found.append(b)
    return len(found)


def _part_of(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether box a is a detection on part of face b (forehead, eye, ...) rather than another face:
    a is mostly inside b, or smaller than b and centred inside b's crop window (`face_crop_box`)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    if w * h >= 0.5 * (a[2] - a[0]) * (a[3] - a[1]):
        return True
    x0, y0, side = face_crop_box(tuple(b))
    cx, cy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    return (a[2] - a[0]) < 0.6 * (b[2] - b[0]) and x0 <= cx <= x0 + side and y0 <= cy <= y0 + side


# ---- framing -----------------------------------------------------------------------------------------
def face_crop_box(box: tuple[float, float, float, float]) -> tuple[int, int, int]:
    """Square crop (x0, y0, side) around a detected face box, framed like the training HR faces."""
    x0, y0, x1, y1 = box
    b = ((x1 - x0) + (y1 - y0)) / 2
    side = max(1, round(b / FACE_BOX_FRACTION))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 + FACE_BOX_DY * b
    return round(cx - side / 2), round(cy - side / 2), side


def measure_framing(paths: list[Path], progress: bool = True) -> dict[str, float]:
    """Where the cascade's box lies in the training framing, measured on LFW-style images.

    For each 250 x 250 image, the detection nearest the centre is expressed in the 192-px HR crop:
    returns the medians of box side / 192 (FACE_BOX_FRACTION) and of (crop centre y - box centre y) /
    box side (FACE_BOX_DY), and the fraction of images with a detection.
    """
    fractions, dys, found = [], [], 0
    for p in tqdm(paths, desc="measuring framing", disable=not progress):
        img = decode_rgb(p)
        if tuple(img.shape[-2:]) != (LFW_SIZE, LFW_SIZE):
            continue
        faces = detect_faces(img)
        if not faces:
            continue
        found += 1
        c = LFW_SIZE / 2
        x0, y0, x1, y1 = min((f["box"] for f in faces),
                             key=lambda b: ((b[0] + b[2]) / 2 - c) ** 2 + ((b[1] + b[3]) / 2 - c) ** 2)
        side = ((x1 - x0) + (y1 - y0)) / 2
        fractions.append(side / HR_SIZE)
        dys.append((c - (y0 + y1) / 2) / side)
    if not fractions:
        raise CSRIPError("no faces detected in the given images; expected 250 x 250 LFW images")
    return {"face_box_fraction": float(np.median(fractions)), "face_box_dy": float(np.median(dys)),
            "detected": found / max(len(paths), 1), "n": len(fractions)}


# ---- images ------------------------------------------------------------------------------------------
def _check_uint8_image(image: torch.Tensor) -> None:
    if not isinstance(image, torch.Tensor) or image.dtype != torch.uint8 or image.ndim != 3 \
            or image.shape[0] != 3:
        got = f"{tuple(image.shape)} {image.dtype}" if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"expected a uint8 RGB image 3 x H x W (torchvision.io.decode_image), got {got}")


def crop_square(image: torch.Tensor, x0: int, y0: int, side: int) -> torch.Tensor:
    """float 3 x side x side crop of a uint8 photo; parts outside the photo repeat its edge pixels."""
    _check_uint8_image(image)
    h, w = image.shape[-2:]
    x1, y1 = x0 + side, y0 + side
    region = image[:, max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)].float().div(255)
    pad = (max(-x0, 0), max(x1 - w, 0), max(-y0, 0), max(y1 - h, 0))
    if region.numel() == 0:
        raise ValueError(f"crop ({x0}, {y0}, side {side}) lies outside the {w} x {h} image")
    if any(pad):
        region = F.pad(region[None], pad, mode="replicate")[0]
    return region


def centre_crop_box(image: torch.Tensor) -> tuple[int, int, int]:
    """(x0, y0, side) of a pre-cropped face: the training crop (centre 192) for 250 x 250 LFW images,
    else the centre square."""
    h, w = image.shape[-2:]
    side = HR_SIZE if (h, w) == (LFW_SIZE, LFW_SIZE) else min(h, w)
    return (w - side) // 2, (h - side) // 2, side


def to_lr(crop: torch.Tensor, degradation: DegradationConfig = DEFAULT) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(lr 3 x 24 x 24, hr 3 x 192 x 192 or None) for a float face crop 3 x S x S.

    S > 24: simulated LR, the crop resized to 192 (bicubic, antialiased) and degraded as in training
    (Sec. 3.3); S <= 24: native LR, the crop itself, edge-padded to 24 (hr is None).
    """
    s = crop.shape[-1]
    if s <= LR_SIZE:
        left, top = (LR_SIZE - s) // 2, (LR_SIZE - crop.shape[-2]) // 2
        pad = (left, LR_SIZE - s - left, top, LR_SIZE - crop.shape[-2] - top)
        return (F.pad(crop[None], pad, mode="replicate")[0] if any(pad) else crop), None
    hr = TF.resize(crop, [HR_SIZE, HR_SIZE], interpolation=TF.InterpolationMode.BICUBIC,
                   antialias=True).clamp(0, 1)
    return degrade(hr[None], HR_SIZE // LR_SIZE, degradation)[0], hr


def hallucinate_image(upscaler: Upscaler, image: torch.Tensor, detect: bool = True, min_face: int = 24,
                      degradation: DegradationConfig | None = None) -> list[dict[str, Any]]:
    """8x hallucination of every face in a uint8 3 x H x W photo (or of the photo, detect=False).

    Simulated LR faces are degraded as the upscaler's model was trained (`degradation.for_models`);
    `degradation` overrides it, with a warning if it differs.

    One dict per face, left to right, tensors float on the CPU:
      box (x0, y0, x1, y1) detected face box in photo pixels (detect=False: the crop),
      crop_box (x0, y0, x1, y1) the square cut out (may reach outside the photo; edges are repeated),
      score raw detections merged (None without detection), simulated (bool: LR made by degradation),
      lr 3 x 24 x 24, sr 3 x 192 x 192 (the network), bicubic 3 x 192 x 192,
      crop 3 x 192 x 192 (the photo's crop at 192 px; None for native LR, whose crop is lr itself).
    """
    _check_uint8_image(image)
    if detect:
        faces = detect_faces(image, min_face=min_face)
        windows = [face_crop_box(f["box"]) for f in faces]
    else:
        windows = [centre_crop_box(image)]
        x0, y0, side = windows[0]
        faces = [{"box": (x0, y0, x0 + side, y0 + side), "score": None}]
    if not faces:
        return []
    degradation = for_models({"the SR model": upscaler}, degradation)
    pairs = [to_lr(crop_square(image, *win), degradation) for win in windows]
    lr = torch.stack([p[0] for p in pairs])
    sr = upscaler(lr).cpu()
    bicubic = upsample_bicubic(lr, HR_SIZE // LR_SIZE)
    return [{"box": f["box"], "crop_box": (x0, y0, x0 + side, y0 + side), "score": f["score"],
             "simulated": hr is not None, "lr": lr[i], "sr": sr[i], "bicubic": bicubic[i], "crop": hr}
            for i, (f, (x0, y0, side), (_, hr)) in enumerate(zip(faces, windows, pairs))]


# ---- outputs -----------------------------------------------------------------------------------------
def _uint8(x: torch.Tensor) -> torch.Tensor:
    return x.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


def _panel(result: dict[str, Any], title: str, label: str, gap: int = 8, top: int = 40) -> bytes:
    """LR (nearest) | bicubic | the model (`label`) | input crop, every image at 192 x 192 screen pixels:
    PNG bytes."""
    from matplotlib.figure import Figure  # lazy, as in every module that only sometimes plots: CLI speed
    kind = "simulated" if result["simulated"] else "native"
    cols = [(f"LR {LR_SIZE}x{LR_SIZE} ({kind})", F.interpolate(result["lr"][None], scale_factor=8)[0]),
            ("bicubic", result["bicubic"]), (label, result["sr"])]
    if result["crop"] is not None:
        cols.append(("input crop", result["crop"]))
    w, h = len(cols) * (HR_SIZE + gap) + gap, HR_SIZE + top + gap  # pixels at dpi 100
    fig = Figure(figsize=(w / 100, h / 100), dpi=100)
    for i, (name, img) in enumerate(cols):
        ax = fig.add_axes(((gap + i * (HR_SIZE + gap)) / w, gap / h, HR_SIZE / w, HR_SIZE / h))
        ax.imshow(img.clamp(0, 1).permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_title(name, fontsize=9, pad=3)
        ax.set_axis_off()
    fig.suptitle(title, fontsize=9, y=1 - 4 / h, va="top")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def _png(image: torch.Tensor) -> bytes:
    """PNG bytes of a uint8 3 x H x W image (written by Python, so any file name works, see save_results)."""
    return encode_png(image).numpy().tobytes()


def save_results(results: list[dict[str, Any]], image: torch.Tensor, out: Path, name: str,
                 panel: bool = False, force: bool = False, label: str = "SR") -> list[dict[str, Any]]:
    """Write each face's SR/LR PNGs (and panels, the SR column titled `label`); existing files are kept
    unless force (with a warning).

    Every file goes through `outputs.write_output`: an entry at an output name, a dangling symbolic link
    included, counts as existing, and `force` replaces the link itself, never writing through it.

    Returns one row per face: image, face, box, lr (simulated/native), sr (path or None if skipped).
    """
    rows = []
    for k, r in enumerate(results, start=1):
        kind = "simulated" if r["simulated"] else "native"
        files = {"sr": out / f"{name}_face{k}_sr.png", "lr": out / f"{name}_face{k}_lr-{kind}.png"}
        if panel:
            files["panel"] = out / f"{name}_face{k}_panel.png"
        existing = [p.name for p in files.values() if os.path.lexists(p)]
        if existing and not force:
            warnings.warn(f"{out / existing[0]} exists; skipping {name} face {k} (use --force to overwrite)")
            rows.append({"image": name, "face": k, "lr": kind, "sr": None})
            continue
        write_output(files["sr"], _png(_uint8(r["sr"])), force=True)
        write_output(files["lr"], _png(_uint8(r["lr"])), force=True)
        if panel:
            shown = os.fsencode(name).decode(errors="replace")  # a title needs text; a file name may be bytes
            write_output(files["panel"], _panel(r, f"{shown}, face {k}: {LR_SIZE} px -> {HR_SIZE} px", label),
                         force=True)
        rows.append({"image": name, "face": k, "box": tuple(round(v) for v in r["box"]), "lr": kind,
                     "sr": str(files["sr"])})
    if panel and results and results[0]["score"] is not None:
        path = out / f"{name}_detections.png"
        if force or not os.path.lexists(path):
            write_output(path, _png(_detections(image, results)), force=True)
    return rows


def _detections(image: torch.Tensor, results: list[dict[str, Any]]) -> torch.Tensor:
    """The photo with each face box (green) and its crop window (yellow), labelled face1, face2, ..."""
    width = max(2, max(image.shape[-2:]) // 250)
    boxes = torch.tensor([r["box"] for r in results] + [r["crop_box"] for r in results], dtype=torch.float)
    labels = [f"face{k}" for k in range(1, len(results) + 1)] + [""] * len(results)
    colors = ["lime"] * len(results) + ["yellow"] * len(results)
    return draw_bounding_boxes(image, boxes, labels=labels, colors=colors, width=width)


# ---- command line ------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="IMAGE_OR_DIR", type=Path,
                   help="a photo or a folder of photos (searched recursively)")
    p.add_argument("--checkpoint", default=None, metavar="NAME_OR_PATH",
                   help="SR checkpoint written by `csrip train-sr` (e.g. runs/sr/best.pt) or a shipped "
                        f"name (checkpoints/manifest.json); default: the shipped {DEFAULT_SR}")
    p.add_argument("-o", "--out", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument("--no-detect", action="store_true",
                   help="treat each image as a cropped face: centre square (250x250 LFW images: the "
                        "centre 192 crop used in training); images <= 24 px are used as native LR")
    p.add_argument("--panel", action="store_true",
                   help="also write a comparison panel per face (LR | bicubic | the model, named from its "
                        "checkpoint | input crop) and the photo with its detections")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--min-face", type=positive_int, default=24, metavar="N",
                   help="smallest face to detect: box side in photo pixels (default 24, the cascade's "
                        f"window; photos over {DETECT_MAX_SIDE} px are searched downscaled, which raises it)")
    p.add_argument("--sigma", type=nonnegative_float, default=None, help="degradation blur per 2x step of the "
                   "simulated LR faces (default: the one the model was trained with, saved in its checkpoint)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:N")


def list_images(inp: Path, exclude: Path | None = None) -> list[Path]:
    """Image files in `inp` (a file, or a folder searched recursively); other files are reported."""
    if inp.is_file():
        return [inp]
    files = sorted(p for p in inp.rglob("*") if p.is_file() and not p.name.startswith(".")
                   and (exclude is None or exclude.resolve() not in p.resolve().parents))
    is_image = {p: p.suffix.lower() in IMAGE_EXTENSIONS or looks_like_image(p) for p in files}
    images = [p for p in files if is_image[p]]
    others = [p.name for p in files if not is_image[p]]
    if others:
        shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        warnings.warn(f"skipping {len(others)} non-image file(s) in {inp}: {shown}")
    return images


def _output_names(files: list[Path], inp: Path) -> list[str]:
    """One distinct name per image: file stems; where two images share a stem, their paths relative to
    `inp` with the extension ("a__b_c.jpg", "x.png"; folders joined by "__"), and where even those
    meet, a number ("-2"). Names are compared case-insensitively (as some file systems do)."""
    stems = [p.stem for p in files]
    if len({s.casefold() for s in stems}) == len(stems):
        return stems
    names, taken = [], set()
    for p in files:
        base = "__".join(p.relative_to(inp).parts) if inp.is_dir() else p.name
        name, k = base, 1
        while name.casefold() in taken:
            k += 1
            name = f"{base}-{k}"
        taken.add(name.casefold())
        names.append(name)
    return names


def _load_upscaler(checkpoint: str | Path | None, device: str) -> Upscaler:
    checkpoint = resolve(checkpoint, kind="sr")
    dev = pick_device(device)
    model = load_sr(checkpoint, map_location=dev)  # CSRIPError if unsafe, not ours, or weights do not fit
    return Upscaler(model, device=dev, compile=False)  # a few faces per photo: compiling would not pay


def run(args: argparse.Namespace) -> int:
    inp, out = Path(args.input), check_dir(args.out)
    if not inp.exists():
        raise CSRIPError(f"input not found: {inp} (expected a photo or a folder of photos)")
    if inp.is_dir() and (out.resolve() == inp.resolve() or out.resolve() in inp.resolve().parents):
        raise CSRIPError(f"-o {out} is the input folder {inp} or holds it: the outputs would mix with the photos "
                         "(and be read as photos next time); choose another output folder")
    with warnings.catch_warnings():
        warnings.simplefilter("default", UserWarning)  # each distinct warning once (--sigma: not per image)
        files = list_images(inp, exclude=out)
        if not files:
            raise CSRIPError(f"no images in {inp} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
        upscaler = _load_upscaler(args.checkpoint, args.device)
        degradation = None if args.sigma is None else DegradationConfig(sigma=args.sigma)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for path, name in tqdm(list(zip(files, _output_names(files, inp))), desc="hallucinating",
                               unit="img", disable=len(files) == 1):
            try:
                image = decode_rgb(path)
            except CSRIPError as e:
                warnings.warn(f"skipping unreadable image: {e}")
                continue
            results = hallucinate_image(upscaler, image, detect=not args.no_detect, min_face=args.min_face,
                                        degradation=degradation)
            if not results:
                warnings.warn(f"no face found in {path}; if it is already a cropped face, use --no-detect")
                continue
            rows += save_results(results, image, out, name, panel=args.panel, force=args.force,
                                 label=upscaler.model.label)
    written = [r for r in rows if r["sr"]]
    if 0 < len(rows) <= 20:
        print(pd.DataFrame(rows).fillna("").to_string(index=False))
    print(f"used {upscaler.model.description}")
    print(f"{len(written)} face(s) hallucinated from {len(files)} image(s) into {out}"
          + (f"; {len(rows) - len(written)} skipped (exist; use --force)" if len(rows) > len(written) else ""))
    return 0 if rows else 1

