"""Face data: identity folders, HR crops, identity-disjoint splits, in-memory caching.

Layout: `<root>/<identity>/<image>` (LFW, CASIA-WebFace, the synthetic set); identity = folder
name; files at the top level (MANIFEST.txt, ...) are ignored. Paper Sec. 4.1 trains on
CASIA-WebFace and tests on LFW, two sets with no identity in common; we reproduce that with
identity-disjoint train / val / test splits (80/10/10) decided by a stable hash of the identity
name, so a split never changes when images or identities are added. Inside the training identities,
recognizers and the identity loss use the paper's 90/10 split of each identity's images
(`per_identity_split`).

HR protocol: a 250x250 LFW/CASIA image gives its centre 192x192 crop (the face region at the
paper's 8x HR size, Sec. 3.4);
other sizes give their centre square, antialiased-resized to 192. Images decode to uint8 RGB
(grayscale, palette, RGBA with alpha dropped as in PIL's `convert("RGB")`, 16-bit rescaled).

Policies (a tutorial must not stop on one bad file in 500,000):
- Non-image files (wrong magic bytes, e.g. text named .jpg) are found at index time by reading
  16 header bytes and skipped with one warning naming them.
- Files that pass the header check but fail to decode (corrupt or truncated JPEG) are skipped
  when first read: `FaceFolder[i]` warns once naming the file and returns the next readable
  image, so an epoch never crashes; `load_cached` drops them with one warning. Consumers that
  name what they score (evaluation) read through `IndexedFaces`, which flags such substitutes
  so they are dropped instead of being reported under another file's name.
- Images smaller than 192 px (shorter side) are skipped the same way and reported as too small,
  with their size: upsampling them would teach the SR network to reproduce interpolation blur
  as "ground truth". `load_hr(..., upsample_small=True)` upsamples instead, for arbitrary photos.
- Entries that cannot be examined (symbolic-link loops, unreadable identity folders) are skipped
  with one warning naming them; an unreadable root is a CSRIPError.
- Images whose header announces more than MAX_PIXELS pixels are refused before decoding
  (`check_pixels`) and skipped the same way, reported as too large.
- File and folder names need not be UTF-8: files are opened by Python (surrogate escapes), and
  splits and digests hash a name's bytes (`os.fsencode`).
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch.utils.data import Dataset, Subset

from ..core.config import HR_SIZE, FaceSelection, project_root
from ..core.console import CSRIPError, describe_os_error, tqdm
from .subsets import BY_NAME as NAMED_SUBSETS, SUBSETS
from .synthetic import make_synthetic_faces

__all__ = ["FaceFolder", "IndexedFaces", "FaceDataWarning", "ImageTooSmall", "ImageTooLarge", "load_hr", "decode_rgb",
           "hr_crop", "load_cached", "per_identity_split", "identity_split", "identities_digest", "resolve_data",
           "make_synthetic_faces", "list_faces", "identity_folders", "check_headers", "current_data"]

LFW_SIZE = 250  # LFW and CASIA-WebFace image size; its centre HR_SIZE crop is the HR face
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff",
                              ".ppm", ".pgm"})
SPLITS = ("train", "val", "test", "all")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train / val / test share of identities
SPLIT_SALT = "csrip-split-v1/"  # changes the split only if bumped; independent of other hashes
SYNTHETIC_DIR, LFW_DIR = "synthetic", "lfw-deepfunneled"
# Larger images are refused from their header, before decoding: a 30000 x 30000 PNG can be a 2.6 MB file
# and would need 2.7 GB as uint8 and 11 GB as float. 100 megapixels covers every camera photo (a 48 MP
# phone photo is 8000 x 6000) and takes at most 1.2 GB as float.
MAX_PIXELS = 100_000_000

# torchvision 0.29 deprecates torchvision.io decoding in favour of torchcodec; we use it while it
# exists (fast, libjpeg-turbo) and fall back to PIL otherwise, so the notice is noise for users.
warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of "
                        "TorchVision are deprecated", category=DeprecationWarning)


class FaceDataWarning(UserWarning):
    """A data file was skipped (not an image, corrupt, or too small)."""


class ImageTooLarge(CSRIPError):
    """An image whose header announces more than MAX_PIXELS pixels: refused before decoding."""

    def __init__(self, message: str, size: tuple[int, int]):
        super().__init__(message)
        self.size = size  # (width, height) in pixels


class ImageTooSmall(CSRIPError):
    """A decodable image whose face region is smaller than the HR size (see `hr_crop`)."""

    def __init__(self, message: str, size: tuple[int, int]):
        super().__init__(message)
        self.size = size  # (width, height) in pixels


# ----------------------------------------------------------------------------- decoding

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM", b"GIF87a", b"GIF89a", b"II*\x00",
          b"MM\x00*", b"P5", b"P6")


def looks_like_image(path: str | Path) -> bool:
    """Fast header check: do the first bytes match a known image format?"""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _decode_torchvision(path: Path) -> torch.Tensor:
    # torchvision.io's image decoding is deprecated (0.29) and may be gone: imported here, PIL decodes then
    from torchvision.io import ImageReadMode, decode_image
    data = torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8)  # Python opens any file name
    return decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)


def check_pixels(path: Path) -> None:
    """ImageTooLarge if the header of `path` announces more than MAX_PIXELS pixels (nothing is decoded:
    PIL reads only the header). Files PIL cannot identify are left to the decoders."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our limit decides
            with Image.open(path) as img:
                w, h = img.size
    except Image.DecompressionBombError as e:  # over twice PIL's own limit: PIL does not say the size
        pixels = int((re.findall(r"\d+", str(e)) or [0])[0])
        raise ImageTooLarge(f"{path}: image of {pixels / 1e6:,.0f} megapixels is too large to decode safely; "
                            f"the limit is {MAX_PIXELS / 1e6:g} megapixels (downscale it first)", (0, 0)) from None
    except (OSError, ValueError, SyntaxError):  # unidentified or damaged header: the decoders say which
        return
    if w * h > MAX_PIXELS:
        raise ImageTooLarge(f"{path}: image of {w}x{h} px ({w * h / 1e6:,.0f} megapixels) is too large to decode "
                            f"safely; the limit is {MAX_PIXELS / 1e6:g} megapixels (downscale it first)", (w, h))


def _decode_pil(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16/32-bit gray: rescale, don't clip
            a = np.asarray(img, dtype=np.float64)
            if not np.isfinite(a).all():
                raise ValueError(f"a {img.mode} image with NaN or infinite pixels")
            # float images ("F") in [0, 1] are scaled to 255; larger values are read as 8 or 16 bit
            a = a / (65535.0 if a.max() > 255 or img.mode.startswith("I;16") else
                     1.0 if img.mode == "F" and a.max() <= 1 else 255.0)
            a = np.repeat((a.clip(0, 1) * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)
        else:
            a = np.asarray(img.convert("RGB"))
    return torch.from_numpy(a.copy()).permute(2, 0, 1).contiguous()


def _first_line(e: Exception) -> str:
    msg = re.sub(r"^.*?\.cpp:\d+, ", "", (str(e).splitlines() or [""])[0])  # drop C++ source paths
    return f"{type(e).__name__}: {msg[:160]}"


def _out_of_memory(e: BaseException) -> bool:
    """A decoder that ran out of memory (a valid but large image under a memory limit), not a bad file."""
    return isinstance(e, MemoryError) or any(w in str(e).lower() for w in ("alloc", "out of memory"))


def decode_rgb(path: str | Path) -> torch.Tensor:
    """Decode an image file to a uint8 3 x H x W RGB tensor (EXIF orientation applied).

    torchvision.io (libjpeg-turbo, libpng) decodes; PIL decodes what torchvision cannot read
    (other formats, 16-bit PNG on older torchvision). A JPEG that torchvision rejects is corrupt
    or truncated: it is not handed to the more lenient PIL. Raises CSRIPError if undecodable, and
    ImageTooLarge, before decoding, if the header announces more than MAX_PIXELS pixels (`check_pixels`).
    Gray 16-bit, 32-bit integer and 32-bit float images (TIFF) are rescaled to 8 bit, never clipped.
    An animated image gives its first frame; a decoder out of memory is said to be, not called corrupt.
    """
    path = Path(path)
    check_pixels(path)
    try:
        x = _decode_torchvision(path)
    except (ImportError, AttributeError):  # a torchvision without image decoding
        x = None
    except Exception as e:  # noqa: BLE001 - decoder errors have no common type
        if _out_of_memory(e):
            raise CSRIPError(f"{path}: not enough memory to decode this image ({_first_line(e)}); free memory, "
                             "raise the limit, or downscale it first") from None
        with open(path, "rb") as f:
            if f.read(3) == _MAGIC[0]:
                raise CSRIPError(f"{path}: corrupt or truncated JPEG ({_first_line(e)})") from None
        x = None
    if x is None:
        try:
            x = _decode_pil(path)
        except Exception as e:  # noqa: BLE001
            raise CSRIPError(f"{path}: not a readable image ({_first_line(e)})") from None
    if x.ndim == 4:  # an animated GIF or WebP through torchvision: frames x 3 x H x W
        x = x[0]  # its first frame, the one PIL, thumbnails and the face folders use
    if x.dtype in (torch.uint16, torch.int32):  # 16-bit PNG through torchvision
        x = ((x.to(torch.int64) * 255 + 32767) // 65535).to(torch.uint8)
    if x.dtype != torch.uint8 or x.ndim != 3 or x.shape[0] != 3:
        raise CSRIPError(f"{path}: decoded to an unexpected {x.dtype} tensor {tuple(x.shape)}")
    return x


def hr_crop(img: torch.Tensor, size: int = HR_SIZE, upsample_small: bool = False) -> torch.Tensor:
    """HR face from a decoded image: centre 192 crop of a 250x250 LFW/CASIA image, otherwise the
    centre square, antialiased-resized (bicubic) to `size`. uint8 in, uint8 out."""
    h, w = img.shape[-2:]
    side = HR_SIZE if (h, w) == (LFW_SIZE, LFW_SIZE) else min(h, w)  # the face region
    if side < size and not upsample_small:
        raise ImageTooSmall(f"image of {w}x{h} px is too small: its face region ({side} px) is smaller "
                            f"than the {size} px HR size; pass upsample_small=True to upsample it anyway", (w, h))
    top, left = (h - side) // 2, (w - side) // 2
    x = img[..., top:top + side, left:left + side]
    if side != size:
        x = F.interpolate(x[None].float(), size=(size, size), mode="bicubic", align_corners=False,
                          antialias=side > size)[0].round().clamp(0, 255).to(torch.uint8)
    return x.contiguous()


def load_hr(path: str | Path, upsample_small: bool = False) -> torch.Tensor:
    """Decode `path` and return its HR face: uint8 3 x 192 x 192 (see `hr_crop`)."""
    img = decode_rgb(path)
    try:
        return hr_crop(img, upsample_small=upsample_small)
    except ImageTooSmall as e:
        raise ImageTooSmall(f"{path}: {e}", e.size) from None


# ----------------------------------------------------------------------------- splits

def identity_split(identity: str) -> str:
    """"train" / "val" / "test" for an identity name, from a salted SHA-256 (not Python's hash(),
    which changes between runs). Stable across machines, versions and dataset sizes."""
    digest = hashlib.sha256(os.fsencode(SPLIT_SALT + identity)).hexdigest()  # any folder name, UTF-8 or not
    u = int(digest[:12], 16) / 16 ** 12
    train, val, _ = SPLIT_FRACTIONS
    return "train" if u < train else "val" if u < train + val else "test"


def per_identity_split(labels: Sequence[int] | torch.Tensor, val_fraction: float = 0.1,
                       seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The paper's 90/10 split of every identity's images (Sec. 4.1) -> (train_idx, val_idx).

    An identity with n >= 2 images gives max(1, round(n * val_fraction)) of them to validation,
    so every validation identity is also a training class; single-image identities are train only.
    Deterministic for a given seed; both index tensors are sorted int64.
    """
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    labels = torch.as_tensor(labels, dtype=torch.int64).flatten()
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)  # random order within each identity
    order = order[torch.argsort(labels[order], stable=True)]
    counts = torch.bincount(labels) if len(labels) else torch.zeros(0, dtype=torch.int64)
    n_val = torch.where(counts >= 2, (counts * val_fraction).round().clamp(min=1),
                        torch.zeros_like(counts)).to(torch.int64)
    if val_fraction == 0:
        n_val.zero_()
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(labels)) - starts[labels[order]]  # position within its identity
    is_val = rank < n_val[labels[order]]
    return order[~is_val].sort().values, order[is_val].sort().values


# ----------------------------------------------------------------------------- folders

def _warn_skipped(paths: Sequence[Path | str], why: str, stacklevel: int = 3) -> None:
    shown = ", ".join(str(p) for p in paths[:10])
    more = f" and {len(paths) - 10} more" if len(paths) > 10 else ""
    warnings.warn(f"skipped {len(paths)} file(s) that {why}: {shown}{more}", FaceDataWarning,
                  stacklevel=stacklevel)


def _scan(folder: Path, dirs: bool, unreadable: list[str]) -> list[str]:
    """Sorted names of the visible sub-folders (`dirs`) or files of `folder`. Entries that cannot be
    examined (a symbolic-link loop, no permission) are appended to `unreadable` with the reason."""
    names = []
    with os.scandir(folder) as entries:
        for e in entries:
            if e.name[0] == ".":
                continue
            try:
                if e.is_dir() if dirs else e.is_file():
                    names.append(e.name)
            except OSError as err:
                unreadable.append(f"{e.path} ({describe_os_error(err)})")
    return sorted(names)


def identity_folders(root: str | Path) -> list[str]:
    """Sorted identity folder names of a face folder (hidden ones and unexaminable entries skipped,
    with one warning); CSRIPError if the root itself cannot be read."""
    unreadable: list[str] = []
    try:
        names = _scan(Path(root), True, unreadable)
    except OSError as e:
        raise CSRIPError(f"cannot read the face folder {root}: {describe_os_error(e)}") from None
    if unreadable:
        _warn_skipped(unreadable, "cannot be examined")
    return names


def list_faces(root: str | Path, identities: Sequence[str] | None = None,
               progress: bool = True) -> list[tuple[Path, str]]:
    """`<root>/<identity>/<image>` files with an image extension -> [(path, identity)], sorted.

    Hidden entries and top-level files are ignored; nothing is opened (see `check_headers`);
    unreadable identity folders and symbolic-link loops are skipped with one warning.
    """
    root = Path(root)
    if identities is None:
        identities = identity_folders(root)
    items, unreadable = [], []
    for ident in tqdm(identities, desc="listing faces", unit="id", leave=False,
                      disable=not progress or len(identities) < 10000):
        try:
            names = _scan(root / ident, False, unreadable)
        except OSError as e:
            unreadable.append(f"{root / ident} ({describe_os_error(e)})")
            continue
        items += [(root / ident / n, ident) for n in names
                  if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS]
    if unreadable:
        _warn_skipped(unreadable, "cannot be examined")
    return items


def check_headers(items: list[tuple[Path, str]], progress: bool = True
                  ) -> tuple[list[tuple[Path, str]], list[Path]]:
    """Split items into (header-valid, rejected paths) with `looks_like_image` (16 bytes each)."""
    ok, rejected = [], []
    for item in tqdm(items, desc="checking image headers", unit="img", leave=False,
                     disable=not progress or len(items) < 20000):
        (ok.append(item) if looks_like_image(item[0]) else rejected.append(item[0]))
    return ok, rejected


def _layout_error(root: Path, found: str) -> CSRIPError:
    return CSRIPError(
        f"{root}: {found}. Expected a face folder laid out as <root>/<identity>/<image> "
        f"(e.g. {root}/Aaron_Eckhart/Aaron_Eckhart_0001.jpg), images in "
        f"{'/'.join(sorted(e.lstrip('.') for e in IMAGE_EXTENSIONS))}. "
        "Get LFW with `make data` (or `csrip data`), or point --data / CSRIP_DATA at such a folder.")


def _select(items: list[tuple[Path, str]], min_images: int, max_identities: int | None,
            g: torch.Generator) -> set[str]:
    """Identities with >= min_images items, then a seeded random subset of max_identities."""
    counts: dict[str, int] = {}
    for _, ident in items:
        counts[ident] = counts.get(ident, 0) + 1
    kept = sorted(i for i, n in counts.items() if n >= min_images)
    if max_identities is not None and len(kept) > max_identities:
        kept = [kept[i] for i in torch.randperm(len(kept), generator=g)[:max_identities].tolist()]
    return set(kept)


def _cap_per_identity(items: list[tuple[Path, str]], cap: int | None,
                      g: torch.Generator) -> list[tuple[Path, str]]:
    """At most `cap` items of every identity (a seeded random choice), in the original order, so one
    person with hundreds of photos (LFW's George_W_Bush: 530) does not dominate the classes."""
    if cap is None:
        return items
    noise = torch.rand(len(items), generator=g).tolist()
    by_id: dict[str, list[int]] = {}
    for k, (_, ident) in enumerate(items):
        by_id.setdefault(ident, []).append(k)
    keep = sorted(k for ks in by_id.values() for k in sorted(ks, key=noise.__getitem__)[:cap])
    return [items[k] for k in keep]


def identities_digest(identities: Sequence[str]) -> str:
    """A short SHA-256 of an identity list: what recognizer and SR checkpoints save, so that a
    mismatch between the two training stages is caught before training."""
    return hashlib.sha256(os.fsencode("\n".join(identities))).hexdigest()[:16]  # names as their bytes


def _balanced_subset(items: list[tuple[Path, str]], max_images: int | None, min_images: int,
                     g: torch.Generator) -> list[tuple[Path, str]]:
    """At most max_images items, balanced over identities (seeded): first `min_images` images of
    every identity (identities in random order), then one more of each per round, so no identity
    dominates and the cap drops whole identities rather than breaking the min_images rule."""
    if max_images is None or len(items) <= max_images:
        return items
    ids = sorted({i for _, i in items})
    id_rank = dict(zip(ids, torch.randperm(len(ids), generator=g).tolist()))
    noise = torch.rand(len(items), generator=g).tolist()
    rank, seen = [0] * len(items), {}
    for k in sorted(range(len(items)), key=lambda k: (items[k][1], noise[k])):  # shuffle within ids
        rank[k] = seen[items[k][1]] = seen.get(items[k][1], -1) + 1
    key = [(max(0, rank[k] - min_images + 1), id_rank[items[k][1]], rank[k]) for k in range(len(items))]
    pick = sorted(range(len(items)), key=key.__getitem__)[:max_images]
    return [items[k] for k in sorted(pick)]


class FaceFolder(Dataset):
    """Faces from `<root>/<identity>/<image>`; items (uint8 3x192x192 HR image, identity label).

    split: "train" / "val" / "test" (identity-disjoint 80/10/10 by `identity_split`) or "all".
    min_images: keep identities with at least this many (header-valid) images.
    max_identities: a seeded random subset of the identities that pass min_images (quick runs).
    max_images: a balanced seeded subset (`_balanced_subset`): min_images of each identity first,
    then round-robin; an identity left with fewer than min_images is dropped.
    max_per_identity: at most this many images of any identity (seeded), applied before max_images.
    Attributes: root, split, items [(path, identity)], identities (sorted names),
    labels (index into identities, one per item), skipped (files found unreadable so far).
    """

    def __init__(self, root: str | Path, split: str = "train", min_images: int = 1,
                 max_identities: int | None = None, max_images: int | None = None, seed: int = 0,
                 max_per_identity: int | None = None):
        self.root = Path(root).expanduser()
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.split = split
        if not self.root.is_dir():
            raise _layout_error(self.root, "not a folder")
        all_ids = identity_folders(self.root)
        if not all_ids:
            raise _layout_error(self.root, "no identity sub-folders found")
        ids = [i for i in all_ids if split == "all" or identity_split(i) == split]
        g = torch.Generator().manual_seed(seed)
        items = list_faces(self.root, ids)
        kept = _select(items, min_images, max_identities, g)
        items = _cap_per_identity([it for it in items if it[1] in kept], max_per_identity, g)
        items = _balanced_subset(items, max_images, min_images, g)
        items, rejected = check_headers(items)  # only what we keep: fast for quick subsets
        if rejected:
            _warn_skipped(rejected, "are not images (bad header) or cannot be read")
        kept = _select(items, min_images, None, g)  # counts may have dropped (cap, bad files)
        items = [it for it in items if it[1] in kept]
        if not items:
            raise _layout_error(self.root, f"no identity with >= {min_images} readable image(s) in "
                                f"the {split!r} split ({len(ids)} of {len(all_ids)} identity folders "
                                "are in this split)")
        kept = sorted(kept)
        self.items: list[tuple[Path, str]] = items
        self.identities: list[str] = kept
        index = {name: k for k, name in enumerate(kept)}
        self.labels: list[int] = [index[i] for _, i in items]
        self.skipped: set[Path] = set()

    @classmethod
    def select(cls, root: str | Path, selection: FaceSelection) -> FaceFolder:
        """The training faces a `FaceSelection` chooses from the "train" split (the identity universe of
        both training stages, Sec. 4.1)."""
        return cls(root, split="train", min_images=selection.min_images, max_identities=selection.max_identities,
                   max_images=selection.max_images, max_per_identity=selection.max_per_identity)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image, label, _ = self.read(i)
        return image, label

    def read(self, i: int) -> tuple[torch.Tensor, int, int]:
        """(HR image, label, j): item i, or if its file is unreadable the next readable item j != i."""
        n = len(self.items)
        for k in range(n):  # an unreadable file is replaced by the next readable item
            j = (i + k) % n
            path = self.items[j][0]
            if path in self.skipped:
                continue
            try:
                return load_hr(path), self.labels[j], j
            except CSRIPError as e:
                self.skipped.add(path)
                warnings.warn(f"skipped unreadable face image: {e}", FaceDataWarning, stacklevel=2)
        raise CSRIPError(f"{self.root}: none of the {n} images of split {self.split!r} is readable")

    def __repr__(self) -> str:
        return (f"FaceFolder({str(self.root)!r}, split={self.split!r}: "
                f"{len(self.identities):,} identities, {len(self):,} images)")


class IndexedFaces(Dataset):
    """Items (HR image, label, ok) of a FaceFolder (or a Subset of one): `ok` is False when item i's
    own file was unreadable and FaceFolder substituted another image, so a consumer that reports
    per-file results drops the item instead of naming another file's image after it. Other datasets'
    items are passed through with ok True."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, bool]:
        ds, k = self.dataset, i
        while isinstance(ds, Subset):
            ds, k = ds.dataset, ds.indices[k]
        if isinstance(ds, FaceFolder):
            image, label, j = ds.read(k)
            return image, label, j == k
        image, label = ds[k]
        return image, label, True


def load_cached(dataset: FaceFolder, progress: bool = True,
                num_workers: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode every HR face once -> (uint8 N x 3 x 192 x 192, int64 labels N), in dataset order.

    Unreadable or too-small files are dropped with one warning (and added to dataset.skipped).
    Decoding runs in a thread pool (torchvision releases the GIL); `num_workers` defaults to
    the CPU count (at most 8).
    """
    items, labels = dataset.items, dataset.labels
    workers = num_workers or min(8, os.cpu_count() or 1)

    def decode(k: int) -> torch.Tensor | CSRIPError:
        try:
            return load_hr(items[k][0])
        except CSRIPError as e:
            return e

    images = torch.empty(len(items), 3, HR_SIZE, HR_SIZE, dtype=torch.uint8)
    ok = torch.zeros(len(items), dtype=torch.bool)
    bad, small, large = [], [], []
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(decode, range(len(items)))
        for k, x in enumerate(tqdm(results, total=len(items), desc="decoding faces", unit="img",
                                   disable=not progress)):
            if isinstance(x, ImageTooSmall):
                small.append(f"{items[k][0]} ({x.size[0]}x{x.size[1]} px)")
            elif isinstance(x, ImageTooLarge):
                large.append(items[k][0])
            elif isinstance(x, CSRIPError):
                bad.append(items[k][0])
            else:
                images[k], ok[k] = x, True
    dataset.skipped.update(items[k][0] for k in torch.nonzero(~ok).flatten().tolist())
    if bad:
        _warn_skipped(bad, "could not be decoded (corrupt or truncated)", stacklevel=2)
    if small:
        _warn_skipped(small, f"are too small (the face region must be at least {HR_SIZE} px)", stacklevel=2)
    if large:
        _warn_skipped(large, f"are too large (over {MAX_PIXELS / 1e6:g} megapixels)", stacklevel=2)
    if not ok.any():
        raise CSRIPError(f"{dataset.root}: none of the {len(items)} images is usable ({len(bad)} could not "
                         f"be decoded, {len(small)} are smaller than {HR_SIZE} px, {len(large)} too large)")
    return images[ok], torch.as_tensor(labels, dtype=torch.int64)[ok]


# ----------------------------------------------------------------------------- where data comes from

_ANNOUNCED: set[Path] = set()  # folders already announced by this process (a notebook kernel, a command)


def _announce(msg: str, path: Path, verbose: bool) -> None:
    """Print where the faces come from, once per folder and process (not in every notebook cell)."""
    if verbose and path not in _ANNOUNCED:
        _ANNOUNCED.add(path)
        print(msg, flush=True)


_RESOLVED: list[Path] = []  # what resolve_data returned last in this process (figures name it)


def current_data() -> Path | None:
    """The face folder `resolve_data` chose last in this process (None before any call): the data a
    figure of this notebook or command was drawn from."""
    return _RESOLVED[-1] if _RESOLVED else None


def resolve_data(data: str | Path | None = None, verbose: bool = True) -> Path:
    """The face folder to use: `data`, else $CSRIP_DATA, else <repo>/data/lfw-deepfunneled
    (`make data`), else a synthetic face set generated once into <repo>/data/synthetic. A named subset
    (`subsets.BY_NAME`, e.g. "lfw-dev") that is not a folder here is <repo>/data/<name>, which
    `csrip data --subset` makes."""
    path = _resolve_data(data, verbose)
    _RESOLVED[:] = [path]
    return path


def _resolve_data(data: str | Path | None, verbose: bool) -> Path:
    for value, source in ((data, "argument"), (os.environ.get("CSRIP_DATA") or None, "$CSRIP_DATA")):
        if value is not None and str(value) in NAMED_SUBSETS and not Path(value).exists():
            path = project_root() / "data" / str(value)
            if not path.is_dir():
                key = next(k for k, s in SUBSETS.items() if s.name == str(value))
                raise CSRIPError(f"the named subset {value} (from {source}) is not made yet: run `csrip data "
                                 f"--subset {key}` (`make data` does), which derives {path} from LFW")
            _announce(f"data: {value} = {path} (from {source})", path, verbose)
            return path
        if value is not None:
            try:
                path = Path(value).expanduser().resolve()
            except (OSError, RuntimeError) as e:  # RuntimeError: a symbolic-link loop (Python < 3.13)
                raise CSRIPError(f"data folder {value} (from {source}) cannot be resolved, a symbolic-link "
                                 f"loop? ({e})") from None
            if not path.is_dir():
                found = "is a file, not a folder" if path.exists() else "does not exist"
                raise CSRIPError(f"data folder {path} (from {source}) {found}; expected a folder laid out as "
                                 "<root>/<identity>/<image>, e.g. data/lfw-deepfunneled after `make data`")
            _announce(f"data: {path} (from {source})", path, verbose)
            return path
    lfw = project_root() / "data" / LFW_DIR
    if lfw.is_dir():
        _announce(f"data: {lfw} (LFW deep-funneled, from `make data`)", lfw, verbose)
        return lfw
    path = project_root() / "data" / SYNTHETIC_DIR
    bar = "!" * 78  # said before the set is generated (the first time), not after
    _announce(f"{bar}\n!! NO FACE DATA FOUND: using the SYNTHETIC face set {path}\n"
              "!! Results on it are for testing the code only and are NOT comparable to the paper.\n"
              "!! Get real faces with `make data` (LFW), or set CSRIP_DATA=/path/to/<identity>/<image>.\n"
              f"{bar}", path, verbose)
    return make_synthetic_faces(path)

