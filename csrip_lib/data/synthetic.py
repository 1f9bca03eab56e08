"""Synthetic faces: an offline stand-in for LFW, for tests and the no-download demo.

Each identity has fixed features (face shape and jaw, skin tone, eye spacing/size/colour, brow,
nose and mouth geometry, hair colour and style, beard, clothes); each image varies pose (roll,
yaw, scale, shift), lighting (direction, strength, brightness, colour temperature), expression
(smile, open mouth, raised brows, eye openness, gaze), background and sensor noise. Images are
250x250 RGB PNGs in `<root>/<identity>/<identity>_NNNN.png`, like LFW, so the whole pipeline
(centre 192 crop, degradation, recognizers, SR) runs unchanged. Rendering is vectorised in
torch: soft-edged shapes (sigmoid of a signed distance) composited back to front.

Identity k's look depends only on (seed, k), so a bigger set extends a smaller one.
These are cartoons: results on them say the code works, not how well C-SRIP works on faces.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from ..core.console import CSRIPError, tqdm

SIZE = 250
VERSION = 1
MARKER = "SYNTHETIC.json"
_SKIN = np.array([[0.97, 0.82, 0.72], [0.89, 0.70, 0.56], [0.76, 0.56, 0.40],
                  [0.58, 0.40, 0.27], [0.38, 0.24, 0.16]])
_HAIR = np.array([[0.08, 0.06, 0.05], [0.25, 0.16, 0.09], [0.45, 0.30, 0.16], [0.80, 0.66, 0.40],
                  [0.62, 0.62, 0.60], [0.60, 0.25, 0.10]])
_IRIS = np.array([[0.30, 0.18, 0.08], [0.20, 0.40, 0.65], [0.30, 0.45, 0.25], [0.12, 0.08, 0.05]])


def is_synthetic(root: str | Path) -> bool:
    """Whether `root` is a face set this module generated (its SYNTHETIC.json marker is there)."""
    return (Path(root) / MARKER).is_file()


def identity_name(k: int) -> str:
    return f"synthetic_{k:04d}"


def _identity_params(rng: np.random.Generator) -> dict[str, np.ndarray | float]:
    u = rng.uniform
    skin_t = u(0, len(_SKIN) - 1)
    lo = int(skin_t)
    skin = _SKIN[lo] + (skin_t - lo) * (_SKIN[min(lo + 1, len(_SKIN) - 1)] - _SKIN[lo])
    bald = rng.random() < 0.12
    return dict(
        face_a=u(0.36, 0.47), face_b=u(0.48, 0.60), jaw=u(1.5, 2.8),
        skin=skin * u(0.95, 1.05, 3), hair=_HAIR[rng.integers(len(_HAIR))] * u(0.85, 1.15, 3),
        hair_y=1.0 if bald else u(-0.62, -0.30), hair_vol=0.02 if bald else u(0.05, 0.20),
        hair_len=u(-0.25, 0.65), hair_wave=u(0.0, 0.05), hair_freq=u(6, 16),
        eye_dx=u(0.14, 0.22), eye_y=u(-0.16, -0.04), eye_rx=u(0.055, 0.085), eye_ry=u(0.022, 0.036),
        iris=_IRIS[rng.integers(len(_IRIS))], brow_dy=u(0.06, 0.11), brow_w=u(0.012, 0.032),
        brow_tilt=u(-0.25, 0.25), brow_len=u(0.06, 0.10),
        nose_len=u(0.10, 0.20), nose_w=u(0.045, 0.08), mouth_y=u(0.22, 0.34), mouth_w=u(0.09, 0.16),
        lip_up=u(0.012, 0.03), lip_low=u(0.018, 0.04), lips=u(0.55, 0.8),
        beard=u(0.4, 0.8) if rng.random() < 0.2 else 0.0, clothes=rng.uniform(0.05, 0.9, 3),
    )


def _muted(rng: np.random.Generator) -> np.ndarray:
    """A background colour: mostly grey, a little hue (LFW backgrounds are mostly dull)."""
    return rng.uniform(0.15, 0.85) + 0.3 * (rng.uniform(0, 1, 3) - 0.5)


def _image_params(rng: np.random.Generator) -> dict[str, np.ndarray | float]:
    u = rng.uniform
    return dict(
        tx=u(-0.05, 0.05), ty=u(-0.05, 0.05), roll=u(-0.18, 0.18), scale=u(0.93, 1.07),
        yaw=u(-0.3, 0.3), light=u(0.0, 0.4), light_dir=u(0, 2 * np.pi), bright=u(0.8, 1.15),
        warm=u(-0.06, 0.06), smile=u(-0.3, 1.0), open=u(0, 1) ** 2, raise_=u(-0.015, 0.03),
        eye_open=u(0.55, 1.1), gaze=u(-0.25, 0.25), bg0=_muted(rng), bg1=_muted(rng), bg_dir=u(0, 2 * np.pi), noise=u(0.005, 0.02),
        hair_phase=u(0, 2 * np.pi),
    )


_FEATURES = ((-0.42, 0.42), (-0.42, 0.50))  # U and V extent of eyes, brows, nose, mouth (face coords)


def _feature_window(p: dict[str, torch.Tensor]) -> tuple[slice, slice]:
    """Pixel rows/cols that contain the facial features of every image in the batch."""
    u = torch.tensor([_FEATURES[0][0], _FEATURES[0][1]] * 2).view(1, 4)
    v = torch.tensor([_FEATURES[1][0]] * 2 + [_FEATURES[1][1]] * 2).view(1, 4)
    c, s, sc = (t.view(-1, 1) for t in (torch.cos(p["roll"]), torch.sin(p["roll"]), p["scale"]))
    x = p["tx"].view(-1, 1) + sc * (u * c - v * s)
    y = p["ty"].view(-1, 1) + sc * (u * s + v * c)

    def span(t: torch.Tensor) -> slice:
        lo, hi = ((t.min() + 1) / 2 * (SIZE - 1)).floor(), ((t.max() + 1) / 2 * (SIZE - 1)).ceil()
        return slice(max(0, int(lo) - 4), min(SIZE, int(hi) + 5))
    return span(y), span(x)


def _render(p: dict[str, torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """Render a batch: every value of p has shape (N, 1, 1) or (N, 3, 1, 1). -> N x 3 x H x W float.

    Shapes are masks in [0, 1] with a one-pixel linear edge, composited with in-place lerp;
    the small features are drawn only inside the window that contains them.
    """
    n = p["tx"].shape[0]
    px = 2.0 / SIZE  # one pixel in normalised coordinates

    def soft(d: torch.Tensor) -> torch.Tensor:  # 1 inside (signed distance d < 0), 1-px ramp
        return torch.add(0.5, d, alpha=-1 / px).clamp_(0, 1)

    def ell(u, v, cx, cy, a, b):  # approximate signed distance to an axis-aligned ellipse
        return (torch.sqrt(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2) - 1) * torch.minimum(a, b)

    def paint(img, mask, color):  # color: (N, 3, 1, 1) or (N, 3, H, W)
        img.lerp_(color.expand_as(img), mask[:, None].expand_as(img))

    axis = torch.linspace(-1, 1, SIZE)
    Y, X = torch.meshgrid(axis, axis, indexing="ij")
    X, Y = X[None], Y[None]
    c, s = torch.cos(p["roll"]), torch.sin(p["roll"])
    U = ((X - p["tx"]) * c + (Y - p["ty"]) * s) / p["scale"]  # face coordinates: roll, shift, scale
    V = (-(X - p["tx"]) * s + (Y - p["ty"]) * c) / p["scale"]
    yaw, skin = p["yaw"], p["skin"]
    lx, ly = torch.cos(p["light_dir"]), torch.sin(p["light_dir"])
    light = 1 + 0.8 * p["light"] * (lx * U + ly * V)  # directional light over the head

    t = 0.5 + 0.5 * (torch.cos(p["bg_dir"]) * X + torch.sin(p["bg_dir"]) * Y)
    img = torch.lerp(p["bg0"], p["bg1"], t[:, None]).contiguous()
    zero = torch.zeros_like(p["tx"])
    paint(img, soft(ell(U, V, zero, zero + 1.25, zero + 0.95, zero + 0.5)), p["clothes"] * light[:, None])
    neck = soft(torch.maximum(U.abs() - 0.62 * p["face_a"], 0.3 - V))
    paint(img, neck, skin * 0.78 * light[:, None])

    # hair behind the head, cut at the hair length
    has_hair = (p["hair_y"] < 0.9).float()
    ha, hb = p["face_a"] + p["hair_vol"], p["face_b"] + p["hair_vol"]
    hair_back = soft(ell(U + 0.06 * yaw, V, zero, zero - 0.08, ha, hb)) * soft(V - p["hair_len"]) * has_hair
    tex = 0.85 + 0.15 * torch.sin(110 * U + 25 * torch.sin(7 * V + p["hair_phase"]))  # strands
    hair_col = p["hair"] * (tex * light)[:, None]
    paint(img, hair_back, hair_col)

    # ears, then the face: ellipse above, superellipse jaw below (exponent = jaw)
    a, b = p["face_a"] * (1 - 0.12 * yaw.abs()), p["face_b"]
    fu, fv = U - 0.03 * yaw, V - 0.02
    for side in (-1, 1):
        ear = soft(ell(fu, fv, side * a * 0.97, p["eye_y"] + 0.06, zero + 0.06, zero + 0.11))
        paint(img, ear, skin * 0.85 * light[:, None])
    q = torch.where(fv > 0, p["jaw"], torch.full_like(fv, 2.0))
    r = ((fu / a).abs() ** q + (fv / b).abs() ** q) ** (1 / q)
    face = soft((r - 1) * torch.minimum(a, b))
    paint(img, face, skin * ((1 - 0.3 * r.clamp(0, 1) ** 3) * light)[:, None])
    paint(img, face * soft(p["mouth_y"] - 0.08 - V) * p["beard"] * (0.7 + 0.3 * tex), hair_col)

    # facial features, inside their window: eyes, brows, nose, mouth
    rows, cols = _feature_window(p)
    U, V, light, im = U[:, rows, cols], V[:, rows, cols], light[:, rows, cols], img[:, :, rows, cols]
    lit = light[:, None]
    for side in (-1, 1):
        cx, ry = side * p["eye_dx"] + 0.10 * yaw, p["eye_ry"] * p["eye_open"]
        e = ell(U, V, cx, p["eye_y"], p["eye_rx"], ry)
        paint(im, soft(e - 0.6 * ry) * 0.25, skin * 0.55)  # socket shadow
        sclera = soft(e)
        paint(im, sclera, torch.tensor([0.94, 0.93, 0.90]).view(1, 3, 1, 1) * lit)
        dist = torch.sqrt((U - cx - p["gaze"] * p["eye_rx"]) ** 2 + (V - p["eye_y"]) ** 2)
        paint(im, sclera * soft(dist - 1.05 * p["eye_ry"]), p["iris"] * lit)
        paint(im, sclera * soft(dist - 0.45 * p["eye_ry"]), torch.full_like(p["iris"], 0.03))
        paint(im, soft(e.abs() - 0.7 * px) * 0.8, skin * 0.3)  # lid line
        bt = (U - cx) / p["brow_len"]
        by = p["eye_y"] - p["brow_dy"] - p["raise_"] - 0.02 * (1 - bt ** 2) + side * p["brow_tilt"] * (U - cx)
        brow = soft((V - by).abs() - p["brow_w"] / 2) * soft((bt.abs() - 1) * p["brow_len"])
        paint(im, brow * 0.9, p["hair"] * 0.7 * lit)

    ncx, tip = 0.16 * yaw, p["eye_y"] + p["nose_len"] + 0.05  # nose: side shadow, tip, nostrils
    ridge = soft((U - ncx + 0.035 * torch.sign(lx)).abs() - 0.012)
    ridge = ridge * soft((V - (p["eye_y"] + tip) / 2).abs() - (tip - p["eye_y"]) / 2)
    paint(im, ridge * 0.25, skin * 0.5)
    paint(im, soft(ell(U, V, ncx, tip, p["nose_w"], zero + 0.03)) * 0.3, skin * 0.6)
    for side in (-1, 1):
        nostril = soft(ell(U, V, ncx + side * 0.45 * p["nose_w"], tip + 0.008, zero + 0.022, zero + 0.012))
        paint(im, nostril * 0.8, skin * 0.25)

    t = (U - 0.12 * yaw) / p["mouth_w"]  # mouth: the centre line bends up with the smile
    w = (1 - t ** 2).clamp(min=0)
    yc = p["mouth_y"] - p["smile"] * 0.035 * t ** 2 + p["smile"] * 0.01
    gap = p["open"] * 0.05 * w
    inside = soft((t.abs() - 1) * p["mouth_w"])
    lip_col = skin * torch.tensor([1.0, 0.62, 0.62]).view(1, 3, 1, 1) * p["lips"][:, None]
    upper = inside * soft(yc - p["lip_up"] * w - V) * soft(V - yc)
    lower = inside * soft(yc + gap - V) * soft(V - (yc + gap + p["lip_low"] * w))
    paint(im, inside * soft(yc - V) * soft(V - yc - gap),
          torch.tensor([0.25, 0.05, 0.06]).view(1, 3, 1, 1).expand(n, 3, 1, 1))
    paint(im, torch.maximum(upper, lower), lip_col * lit)

    # fringe (full image again): hair above a wavy hairline, inside the hair outline
    V = (-(X - p["tx"]) * s + (Y - p["ty"]) * c) / p["scale"]
    hairline = p["hair_y"] + p["hair_wave"] * torch.sin(p["hair_freq"] * fu + p["hair_phase"])
    fringe = soft(V - hairline) * torch.maximum(hair_back, face)
    sideburn = face * soft((0.92 - r) * 0.4) * soft(V - (p["eye_y"] + 0.05)) * has_hair
    paint(img, torch.maximum(fringe, sideburn), hair_col)

    # camera: brightness, colour temperature, blur (optics), noise (sensor)
    warm = torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1)
    img = img * (p["bright"][:, None] * (1 + p["warm"][:, None] * warm))
    img = TF.gaussian_blur(img, kernel_size=[5, 5], sigma=[0.8, 0.8])
    img += p["noise"][:, None] * torch.randn(img.shape, generator=gen)
    return img.clamp_(0, 1)


def render_faces(n_identities: int = 40, images_per_identity: int = 12, seed: int = 0,
                 progress: bool = True, batch: int = 8):
    """Yield (identity index, image index, uint8 H x W x 3 array) for the whole set, in order."""
    params = []
    for k in range(n_identities):
        rng = np.random.default_rng([seed, k])
        ident = _identity_params(rng)
        params += [(k, j, {**ident, **_image_params(rng)}) for j in range(images_per_identity)]
    gen = torch.Generator().manual_seed(seed)
    with tqdm(total=len(params), desc="synthetic faces", unit="img", disable=not progress) as bar:
        for start in range(0, len(params), batch):
            chunk = params[start:start + batch]
            p = {}
            for key in chunk[0][2]:
                v = torch.as_tensor(np.array([c[2][key] for c in chunk], dtype=np.float32))
                p[key] = v.view(len(chunk), 3, 1, 1) if v.ndim == 2 else v.view(len(chunk), 1, 1)
            imgs = (_render(p, gen) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
            for (k, j, _), im in zip(chunk, imgs):
                yield k, j, im
            bar.update(len(chunk))


def make_synthetic_faces(root: str | Path, n_identities: int = 40, images_per_identity: int = 12,
                         seed: int = 0, progress: bool = True) -> Path:
    """Write a synthetic face folder `<root>/<identity>/<identity>_NNNN.png` (250x250 RGB).

    Returns `root`. An existing set made with the same parameters is reused; any other existing,
    non-empty folder is left alone (CSRIPError). Written to a temporary folder, then renamed.
    """
    root = Path(root).expanduser()
    spec = {"generator": "csrip_lib.data.synthetic", "version": VERSION, "n_identities": n_identities,
            "images_per_identity": images_per_identity, "seed": seed, "size": SIZE}
    marker = root / MARKER
    if marker.is_file():
        if json.loads(marker.read_text()) == spec:
            return root
        raise CSRIPError(f"{root} holds a synthetic face set made with other parameters "
                         f"({marker.read_text().strip()}); delete it or choose another folder")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise CSRIPError(f"{root} exists and is not a synthetic face set; not overwriting it")
    if n_identities < 1 or images_per_identity < 1:
        raise ValueError("n_identities and images_per_identity must be >= 1")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small batches: a second thread costs more than it gives (3-10x on a busy CPU)
    try:
        for k in range(n_identities):
            (tmp / identity_name(k)).mkdir()
        for k, j, im in render_faces(n_identities, images_per_identity, seed, progress):
            name = identity_name(k)
            Image.fromarray(im).save(tmp / name / f"{name}_{j + 1:04d}.png", compress_level=1)
        (tmp / MARKER).write_text(json.dumps(spec) + "\n")
        if root.is_dir():
            root.rmdir()  # empty (checked above)
        os.replace(tmp, root)
    except FileExistsError:  # another process finished the same set first
        shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if not marker.is_file():
            raise CSRIPError(f"could not write the synthetic face set to {root}: {e}") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        torch.set_num_threads(threads)
    return root
