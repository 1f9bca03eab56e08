"""Named face subsets the repository defines, so that a published number names its faces, not a folder.

`lfw-dev`, the LFW development subset every result of results/ was measured on: LFW deep-funneled
(the official archive `csrip data` downloads: 13,233 images of 5,749 identities) without the identities
that `held_back` holds back, int(sha256(name)[:8], 16) % 1000 < 175 (about 17.5 % of the identities, kept
out of development altogether). It holds 4,741 identities and 10,845 images, the original bytes.
`csrip data --subset dev` makes it as data/lfw-dev/ from data/lfw-deepfunneled/ (`download.make_subset`)
and checks it by these counts and by `sha256`, the digest of its `sha256sum` lines (the SHA-256 of each
image file and its `<identity>/<file>` name, sorted); `--data lfw-dev` names it in every command, and
results/ record it by that name and digest (`identify`).
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NamedSubset:
    """A face folder defined by a rule on a source folder, checked by counts and a content digest."""

    name: str  # what --data and results/ call it; also its folder under data/
    source: str  # the folder under data/ it is derived from (`csrip data` makes it)
    images: int
    identities: int
    sha256: str  # `digest` of its `checksum_lines`
    held_back_below: int  # an identity is left out iff `bucket(name)` < this (of 1000)

    def keeps(self, identity: str) -> bool:
        """Whether `identity` is in this subset (the rule of its MANIFEST)."""
        return bucket(identity) >= self.held_back_below


def bucket(identity: str) -> int:
    """int(sha256(name)[:8], 16) % 1000: the identity's place in 1000 buckets (UTF-8 name bytes)."""
    return int(hashlib.sha256(os.fsencode(identity)).hexdigest()[:8], 16) % 1000


LFW_DEV = NamedSubset(name="lfw-dev", source="lfw-deepfunneled", images=10_845, identities=4_741,
                      sha256="f094c1c0d06c2183cf8a0c12e03ff3f28e3cf4a8770c04b86841c5feb540c438",
                      held_back_below=175)
SUBSETS = {"dev": LFW_DEV}  # `csrip data --subset KEY`
BY_NAME = {s.name: s for s in SUBSETS.values()}  # `--data NAME`


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def checksum_lines(root: Path, items: Iterable[tuple[Path, str]]) -> list[str]:
    """`sha256sum` lines ("<sha256>  <identity>/<file>") of the images `items` of face folder `root`, sorted."""
    return sorted(f"{file_sha256(path)}  {Path(path).relative_to(root).as_posix()}" for path, _ in items)


def digest(lines: Iterable[str]) -> str:
    """SHA-256 of `sha256sum` lines, sorted, one per line: a folder's SHA256SUMS.txt digested."""
    return hashlib.sha256("".join(f"{line}\n" for line in sorted(lines)).encode()).hexdigest()


def identify(root: Path, items: list[tuple[Path, str]]) -> dict[str, object] | None:
    """{"name", "images", "identities", "sha256"} of the named subset face folder `root` holds exactly
    (`items`: its `faces.list_faces`), else None. Files are hashed only when the counts already match."""
    identities = len({i for _, i in items})
    for subset in BY_NAME.values():
        if (len(items), identities) == (subset.images, subset.identities) \
                and digest(checksum_lines(root, items)) == subset.sha256:
            return {"name": subset.name, "images": subset.images, "identities": subset.identities,
                    "sha256": subset.sha256}
    return None
