"""`csrip data`: download, extract and verify LFW deep-funneled.

The paper tests on LFW (Sec. 4.1) but names no LFW variant, and it stresses that its inputs are
unaligned; deep-funneled (LFW's aligned release) is our choice: its faces sit where the centre 192 crop
(`data.hr_crop`) expects them, so a crop of any image is a face.

Steps, each safe to interrupt:
1. download `<dest>/lfw-deepfunneled.zip.part` with a progress bar; a rerun resumes it with an
   HTTP Range request (a server that ignores Range sends everything again: we start over);
2. rename to `<dest>/lfw-deepfunneled.zip` once all announced bytes arrived;
3. extract into a temporary folder in `<dest>` (after checking, from the archive's directory, that it
   unpacks to at most MAX_UNPACKED bytes and MAX_MEMBERS entries: a zip bomb is refused before any
   byte is written), find the `<identity>/<image>` root inside,
   check the counts (13,233 images of 5,749 identities for the official archive);
4. rename the checked folder to `<dest>/lfw-deepfunneled` (atomic), delete the archive if this run
   downloaded it; an archive placed in `<dest>` by hand (offline machines) is kept, and the run says so.
An existing `<dest>/lfw-deepfunneled` is never replaced without `force=True`. An archive that fails
step 3 is deleted if this run downloaded it (a rerun downloads it again). A hand-placed archive is never
deleted: one that cannot be read (not an archive, truncated) is renamed `<name>.bad-<timestamp>` (`-2`,
`-3`, ... if that name is taken); one that unpacks but does not hold the expected counts stays where it
is, and the message says what to do offline. A failure to write (full disk) during extraction is
reported as such, and keeps the archive. Every message names only paths that exist after it.

`--subset dev` then derives the named development subset `lfw-dev` (`subsets.LFW_DEV`: the identities its
rule keeps, 4,741 identities and 10,845 images) as `<dest>/lfw-dev`, hard links to the LFW files (copies
where links fail), checked by its counts and content digest before it is renamed into place
(`make_subset`); `--data lfw-dev` then names it in every command.
"""
from __future__ import annotations

import argparse
import errno
import http.client
import itertools
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path


from ..core.checkpoint import umask
from ..core.console import CSRIPError, describe_os_error, nonnegative_int, tqdm
from ..core.outputs import check_dir
from .faces import IMAGE_EXTENSIONS, LFW_DIR, check_headers, identity_folders, list_faces
from .subsets import SUBSETS, NamedSubset, checksum_lines, digest

LFW_URL = "https://umass-vis-lfw.github.io/lfw-deepfunneled.zip"
LFW_IMAGES, LFW_IDENTITIES = 13_233, 5_749
CHUNK = 1 << 20
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
TIMEOUT_S = 60
MAX_UNPACKED = 1 << 30  # bytes an archive may unpack to (LFW deep-funneled: about 250 MB)
MAX_MEMBERS = 100_000  # entries an archive may hold (LFW: 13,233 images and their folders)


def _total_from(resp, offset: int) -> int | None:
    """Full size of the remote file from a 200 or 206 response (None if not announced)."""
    cr = resp.headers.get("Content-Range")  # "bytes 100-199/200"
    if resp.status == 206 and cr and (m := re.match(r"bytes \d+-\d+/(\d+)", cr)):
        return int(m.group(1))
    length = resp.headers.get("Content-Length")
    return None if length is None else int(length) + (offset if resp.status == 206 else 0)


def download(url: str, dest: Path, progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming `dest`.part from an earlier attempt. Returns dest."""
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "csrip"})
    if offset:
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # nothing left to send: the part file is complete
            cr = e.headers.get("Content-Range", "")
            if (m := re.match(r"bytes \*/(\d+)", cr)) and int(m.group(1)) == offset:
                os.replace(part, dest)
                return dest
            part.unlink()
            raise CSRIPError(f"{url}: server refused to resume ({e}); deleted {part}, run again") from e
        raise CSRIPError(f"could not download {url}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise CSRIPError(f"could not download {url}: {getattr(e, 'reason', e)}; check the network or the URL "
                         f"(--url). Offline: copy {dest.name} into {dest.parent}/ and run again, or point "
                         "CSRIP_DATA (or --data) at an unpacked <identity>/<image> folder") from e
    with resp:
        if offset and resp.status != 206:
            print(f"server ignored the resume request: downloading {url} from the start")
            offset = 0
        total = _total_from(resp, offset)
        received = offset
        try:
            with open(part, "ab" if offset else "wb") as f, \
                    tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=dest.name, disable=not progress) as bar:
                while chunk := resp.read(CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as e:  # connection dropped, timeout
            raise CSRIPError(f"download of {url} interrupted after {received:,} bytes "
                             f"({type(e).__name__}); run again to resume from {part}") from e
    if total is not None and received < total:
        raise CSRIPError(f"download of {url} stopped at {received:,} of {total:,} bytes; "
                         f"run again to resume from {part}")
    os.replace(part, dest)
    return dest


def _check_size(archive: Path, sizes: list[int]) -> None:
    """CSRIPError unless the archive's declared entries fit MAX_MEMBERS and MAX_UNPACKED."""
    if len(sizes) > MAX_MEMBERS or sum(sizes) > MAX_UNPACKED:
        raise CSRIPError(f"{archive} would unpack to {sum(sizes) / 1e6:,.0f} MB in {len(sizes):,} entries, more "
                         f"than LFW ever needs ({MAX_UNPACKED / 1e6:,.0f} MB, {MAX_MEMBERS:,} entries): not "
                         "the LFW archive (a zip bomb?); nothing was extracted")


def extract(archive: Path, into: Path) -> None:
    """Unpack a zip or tar archive into `into` (no paths outside it), after `_check_size` of what it
    declares (zipfile never unpacks an entry past its declared size; a tar entry's size is exact).
    CSRIPError if unreadable or too large."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                _check_size(archive, [i.file_size for i in z.infolist()])
                if (bad := z.testzip()) is not None:
                    raise CSRIPError(f"{archive} is corrupt (bad CRC in {bad})")
                z.extractall(into)  # zipfile drops absolute paths and '..' components
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as t:
                _check_size(archive, [m.size for m in t.getmembers()])
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                t.extractall(into, **kwargs)
        else:
            raise CSRIPError(f"{archive} is not a zip or tar archive (truncated or wrong file?)")
    except OSError as e:
        if e.errno in WRITE_ERRORS:  # the destination failed, not the archive: the caller keeps it
            raise
        raise CSRIPError(f"{archive} is truncated or corrupt ({type(e).__name__}: {e})") from e
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise CSRIPError(f"{archive} is truncated or corrupt ({type(e).__name__}: {e})") from e


def _subfolders(folder: Path) -> list[Path]:
    """The visible sub-folders (no hidden ones, no macOS `__MACOSX` resource forks)."""
    return [e for e in folder.iterdir() if e.is_dir() and e.name != "__MACOSX" and not e.name.startswith(".")]


def _holds_faces(folder: Path) -> bool:
    """Whether `folder` is an `<identity>/<image>` root: one of its sub-folders holds an image file."""
    return any(f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file() for d in _subfolders(folder) for f in d.iterdir())


def find_face_root(folder: Path) -> Path:
    """The `<identity>/<image>` root inside an extracted archive: descend single sub-folders until one
    holds identity folders of images. Stray files beside them (.DS_Store, README, MANIFEST) do not count
    as images; without such a folder, `folder` itself (the integrity check then says what it found)."""
    start = folder
    while not _holds_faces(folder):
        dirs = _subfolders(folder)
        if len(dirs) != 1:
            return start
        folder = dirs[0]
    return folder


def verify(root: Path, expected_images: int | None, expected_identities: int | None,
           name: str | None = None) -> tuple[int, int]:
    """Count readable-looking images and identities under root; CSRIPError on a mismatch, naming the
    folder `name` (default: `root`)."""
    items, rejected = check_headers(list_faces(root))
    n_images, n_ids = len(items), len({i for _, i in items})
    problems = []
    if expected_images is not None and n_images != expected_images:
        problems.append(f"{n_images:,} images (expected {expected_images:,})")
    if expected_identities is not None and n_ids != expected_identities:
        problems.append(f"{n_ids:,} identities (expected {expected_identities:,})")
    if rejected:
        problems.append(f"{len(rejected)} files that are not images, e.g. {rejected[0]}")
    if problems:
        raise CSRIPError(f"{name or root} failed the integrity check: " + ", ".join(problems))
    return n_images, n_ids


def _discard(archive: Path, hand_placed: bool) -> str:
    """Get a failed archive out of the way (a rerun would fail the same way); says where it went."""
    if not hand_placed:
        archive.unlink(missing_ok=True)
        return "deleted the downloaded archive, so a rerun downloads it again"
    stamp = f"{archive.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}"
    aside = next(p for k in itertools.count(1) if not os.path.lexists(
        p := archive.with_name(stamp if k == 1 else f"{stamp}-{k}")))  # two failures in one second
    os.replace(archive, aside)
    return (f"moved the archive you placed there aside to {aside} (not deleted); a rerun downloads a new "
            f"one, or, offline, copy a good archive into {archive.parent}/ and run again")


def _unexpected(archive: Path, hand_placed: bool, url: str) -> str:
    """What happens to an archive that unpacks but does not hold the expected faces, and what to do.
    A hand-placed one stays: it may be the data the user means (another LFW release, their own faces)."""
    if not hand_placed:
        return (f"the download from {url} is not LFW deep-funneled as expected (check --url); "
                f"{_discard(archive, False)}")
    return (f"kept {archive} where it is. If it holds the faces you mean to use, unpack it yourself and pass its "
            "<identity>/<image> folder with --data or CSRIP_DATA, or rerun with --expect-images 0 "
            f"--expect-identities 0 to accept other counts; to download LFW instead, move it out of {archive.parent}/")


def download_lfw(dest: str | Path = "data", url: str = LFW_URL, force: bool = False,
                 expected_images: int | None = LFW_IMAGES,
                 expected_identities: int | None = LFW_IDENTITIES, progress: bool = True) -> Path:
    """Download, extract and verify LFW into `<dest>/lfw-deepfunneled`; returns that path."""
    dest = check_dir(dest, "destination folder")
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / LFW_DIR
    if target.exists() and not force:
        try:
            n, k = verify(target, expected_images, expected_identities)
        except CSRIPError as e:
            raise CSRIPError(f"{target} exists but is incomplete ({e}); "
                             "rerun with --force to replace it") from None
        print(f"{target} is already there and complete ({n:,} images, {k:,} identities); "
              "nothing to do (--force downloads again)")
        return target
    archive = dest / (Path(urllib.parse.urlparse(url).path).name or "lfw-deepfunneled.zip")
    hand_placed = archive.is_file()
    if not hand_placed:
        download(url, archive, progress)
    tmp = Path(tempfile.mkdtemp(prefix=f".{LFW_DIR}.", dir=dest))
    tmp.chmod(0o777 & ~umask())  # mkdtemp's 0700 would hide the data from other users once renamed
    try:
        print(f"extracting {archive} ...")
        try:
            extract(archive, tmp)
        except CSRIPError as e:  # the archive cannot be read: out of the way, or a rerun fails the same
            raise CSRIPError(f"{e}; {_discard(archive, hand_placed)}") from None
        root = find_face_root(tmp)
        inside = f"its folder {root.relative_to(tmp).as_posix()}/" if root != tmp else "its top level"
        try:
            n, k = verify(root, expected_images, expected_identities, name=f"{archive.name}: {inside}")
        except CSRIPError as e:
            raise CSRIPError(f"{e}; {_unexpected(archive, hand_placed, url)}") from None
        if target.exists():  # force=True: swap in the new folder, then drop the old one
            old = Path(tempfile.mkdtemp(prefix=f".{LFW_DIR}.old.", dir=dest))
            os.replace(target, old / LFW_DIR)
            os.replace(root, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(root, target)
    except OSError as e:  # writing failed (full disk, quota, permissions): the archive is fine, keep it
        raise CSRIPError(f"could not extract {archive} into {dest}: {describe_os_error(e)}; the archive "
                         "was kept (LFW needs about 250 MB unpacked): free space and run again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if hand_placed:
        print(f"kept the archive you placed: {archive} (delete it to free "
              f"{archive.stat().st_size / 1e6:,.0f} MB)")
    else:
        archive.unlink()
    print(f"LFW ready: {target} ({n:,} images, {k:,} identities)")
    return target


def make_subset(source: Path, dest: Path, subset: NamedSubset, force: bool = False) -> Path:
    """`dest`: the images of face folder `source` whose identity `subset` keeps, as hard links (copies
    where the file system refuses links), checked by count and content digest before it is renamed into
    place. An existing `dest` is re-checked, and replaced only with `force`."""
    if dest.exists() and not force:
        check_subset(dest, subset, f"{dest} exists but is not {subset.name} ({{}}); rerun with --force to make it "
                     "again")
        print(f"{dest} is already there and checked ({subset.identities:,} identities, {subset.images:,} images, "
              f"sha256 {subset.sha256[:16]}); nothing to do")
        return dest
    ids = [i for i in identity_folders(source) if subset.keeps(i)]
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    tmp.chmod(0o777 & ~umask())
    try:
        for path, ident in tqdm(list_faces(source, ids), desc=f"making {subset.name}", unit="img"):
            (tmp / ident).mkdir(exist_ok=True)
            try:
                os.link(path, tmp / ident / path.name)
            except OSError:
                shutil.copy2(path, tmp / ident / path.name)
        check_subset(tmp, subset, f"{source} does not give {subset.name} ({{}}): is it the official LFW "
                     "deep-funneled archive, unchanged?")
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
            os.replace(dest, old / dest.name)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{subset.name} ready: {dest} ({subset.identities:,} identities, {subset.images:,} images, "
          f"sha256 {subset.sha256[:16]}); use it with --data {subset.name}")
    return dest


def check_subset(root: Path, subset: NamedSubset, message: str) -> None:
    """CSRIPError(message with the mismatch) unless face folder `root` is `subset` by counts and digest."""
    items = list_faces(root)
    found = (len(items), len({i for _, i in items}))
    if found != (subset.images, subset.identities):
        raise CSRIPError(message.format(f"{found[0]:,} images of {found[1]:,} identities, expected "
                                        f"{subset.images:,} of {subset.identities:,}"))
    if (d := digest(checksum_lines(root, items))) != subset.sha256:
        raise CSRIPError(message.format(f"content sha256 {d[:16]}, expected {subset.sha256[:16]}"))


# ----------------------------------------------------------------------------- `csrip data`

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dest", default="data/", type=Path,
                        help="folder that receives lfw-deepfunneled/ (default: data/)")
    parser.add_argument("--url", default=LFW_URL, help=f"archive URL (default: {LFW_URL})")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing dest/lfw-deepfunneled")
    parser.add_argument("--expect-images", type=nonnegative_int, default=LFW_IMAGES, metavar="N",
                        help=f"images the archive must contain (default {LFW_IMAGES:,}; 0: no check)")
    parser.add_argument("--expect-identities", type=nonnegative_int, default=LFW_IDENTITIES, metavar="N",
                        help=f"identities the archive must contain (default {LFW_IDENTITIES:,}; 0: no check)")
    parser.add_argument("--subset", choices=sorted(SUBSETS), default=None,
                        help="then derive a named subset into dest/NAME: dev = lfw-dev, the LFW development subset "
                        "every published result used (4,741 identities, 10,845 images; `--data lfw-dev`)")


def run(args: argparse.Namespace) -> int:
    lfw = download_lfw(args.dest, url=args.url, force=args.force,
                       expected_images=args.expect_images or None,
                       expected_identities=args.expect_identities or None)
    if args.subset:
        subset = SUBSETS[args.subset]
        make_subset(lfw, lfw.parent / subset.name, subset, force=args.force)
    return 0
