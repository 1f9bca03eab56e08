"""`csrip data` (csrip_lib.data.download) against a local HTTP server serving small archives built here:
good archive, truncated archive, interrupted download and resume (with and without Range support),
wrong content, HTTP errors, and never overwriting without --force."""
from __future__ import annotations

import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from csrip_lib.cli import main as cli_main
from csrip_lib.core.console import CSRIPError
from csrip_lib.data.download import download_lfw

IDENTITIES = {"Ada_Lovelace": 3, "Alan_Turing": 1, "Grace_Hopper": 2, "Kurt_Goedel": 4}
N_IMAGES, N_IDS = sum(IDENTITIES.values()), len(IDENTITIES)


def face_jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    a = np.kron(rng.integers(0, 256, (25, 25, 3), dtype=np.uint8), np.ones((10, 10, 1), np.uint8))
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def files(identities: dict[str, int] = IDENTITIES, top: str = "lfw-deepfunneled") -> dict[str, bytes]:
    return {f"{top}/{name}/{name}_{j + 1:04d}.jpg": face_jpeg(100 * k + j)
            for k, (name, n) in enumerate(identities.items()) for j in range(n)}


def make_zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name, blob in entries.items():
            z.writestr(name, blob)
    return buf.getvalue()


def make_tgz(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, blob in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    return buf.getvalue()


class Handler(BaseHTTPRequestHandler):
    """Serves server.payload; honours Range if server.ranges; server.cut truncates one response."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        srv = self.server
        srv.log.append(self.headers.get("Range"))
        if srv.payload is None:
            self.send_error(404)
            return
        data, start = srv.payload, 0
        rng = self.headers.get("Range")
        if rng and srv.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut is not None:  # announce everything, send part of it, hang up
            self.wfile.write(body[:srv.cut])
            srv.cut = None
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.payload, srv.ranges, srv.cut, srv.log = make_zip(files()), True, None, []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/lfw-deepfunneled.zip"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join()


def fetch(dest: Path, url: str, **kwargs) -> Path:
    return download_lfw(dest, url=url, expected_images=N_IMAGES, expected_identities=N_IDS,
                        progress=False, **kwargs)


def image_counts(root: Path) -> dict[str, int]:
    return {d.name: len(list(d.glob("*.jpg"))) for d in sorted(root.iterdir()) if d.is_dir()}


def test_good_archive(tmp_path, server):
    target = fetch(tmp_path, server.url)
    assert target == tmp_path / "lfw-deepfunneled" and image_counts(target) == IDENTITIES
    assert [p.name for p in tmp_path.iterdir()] == ["lfw-deepfunneled"]  # no archive, part or temp left
    blob = (target / "Ada_Lovelace" / "Ada_Lovelace_0002.jpg").read_bytes()
    assert blob == files()["lfw-deepfunneled/Ada_Lovelace/Ada_Lovelace_0002.jpg"]


def test_existing_folder_is_kept_unless_forced(tmp_path, server, capsys):
    target = fetch(tmp_path, server.url)
    requests = len(server.log)
    assert fetch(tmp_path, server.url) == target and len(server.log) == requests  # nothing fetched
    assert "already there" in capsys.readouterr().out
    (target / "Alan_Turing" / "Alan_Turing_0001.jpg").unlink()  # now incomplete
    with pytest.raises(CSRIPError, match="--force"):
        fetch(tmp_path, server.url)
    assert not (target / "Alan_Turing" / "Alan_Turing_0001.jpg").exists()  # still untouched
    fetch(tmp_path, server.url, force=True)
    assert image_counts(target) == IDENTITIES and len(server.log) == requests + 1


def test_truncated_archive_is_an_error(tmp_path, server):
    server.payload = server.payload[: len(server.payload) * 2 // 3]  # complete response, broken zip
    with pytest.raises(CSRIPError, match="truncated or corrupt|not a zip or tar"):
        fetch(tmp_path, server.url)
    assert not (tmp_path / "lfw-deepfunneled").exists()
    assert list(tmp_path.iterdir()) == []  # bad archive and temp folder removed: a rerun starts clean


def test_interrupted_download_resumes_with_range(tmp_path, server):
    size = len(server.payload)
    server.cut = size // 3
    with pytest.raises(CSRIPError, match="resume"):
        fetch(tmp_path, server.url)
    part = tmp_path / "lfw-deepfunneled.zip.part"
    assert part.stat().st_size == size // 3 and not (tmp_path / "lfw-deepfunneled").exists()
    target = fetch(tmp_path, server.url)
    assert server.log[-1] == f"bytes={size // 3}-"  # asked only for the rest
    assert image_counts(target) == IDENTITIES and not part.exists()


def test_server_ignoring_range_restarts_cleanly(tmp_path, server, capsys):
    server.cut, server.ranges = len(server.payload) // 2, False
    with pytest.raises(CSRIPError, match="resume"):
        fetch(tmp_path, server.url)
    target = fetch(tmp_path, server.url)  # 200 with the whole file: must not be appended
    assert "from the start" in capsys.readouterr().out
    assert image_counts(target) == IDENTITIES


def test_complete_part_file_is_finished_without_refetching(tmp_path, server):
    (tmp_path / "lfw-deepfunneled.zip.part").write_bytes(server.payload)  # killed before the rename
    target = fetch(tmp_path, server.url)  # server answers 416: nothing left to send
    assert image_counts(target) == IDENTITIES


@pytest.mark.parametrize("content", ["too_few_identities", "not_images", "tar.gz"])
def test_wrong_content_is_an_error(tmp_path, server, content):
    if content == "too_few_identities":
        server.payload = make_zip(files({"Ada_Lovelace": 3}))
    elif content == "not_images":
        server.payload = make_zip({f"docs/{k}/readme_{j}.jpg": b"<html>sorry</html>"
                                   for k in range(N_IDS) for j in range(3)})
    else:  # a tar.gz of the right content is fine too
        server.payload = make_tgz(files())
        assert image_counts(fetch(tmp_path, server.url)) == IDENTITIES
        return
    with pytest.raises(CSRIPError, match="integrity check"):
        fetch(tmp_path, server.url)
    assert list(tmp_path.iterdir()) == []


def test_http_error_is_reported(tmp_path, server):
    server.payload = None
    with pytest.raises(CSRIPError, match="HTTP 404"):
        fetch(tmp_path, server.url)


def test_cli(tmp_path, server, capsys):
    args = ["data", "--dest", str(tmp_path), "--url", server.url,
            "--expect-images", str(N_IMAGES), "--expect-identities", str(N_IDS)]
    assert cli_main(args) == 0
    assert "LFW ready" in capsys.readouterr().out
    assert cli_main(args[:-4] + ["--expect-images", "13233", "--force"]) == 2  # counts mismatch
    assert "expected 13,233" in capsys.readouterr().err
    assert image_counts(tmp_path / "lfw-deepfunneled") == IDENTITIES  # failed --force kept the old one


STRAY = {"lfw-deepfunneled/.DS_Store": b"\x00\x00\x00\x01Bud1", "lfw-deepfunneled/README": b"LFW\n",
         "lfw-deepfunneled/MANIFEST.txt": b"13233 images\n", "README.txt": b"top-level notes\n",
         "__MACOSX/lfw-deepfunneled/._Ada_Lovelace": b"\x00\x05\x16\x07"}


@pytest.mark.parametrize("how", ["downloaded", "placed by hand, offline"])
def test_an_archive_with_stray_files_beside_the_identity_folders_is_accepted(tmp_path, server, how):
    """The face root is the folder whose sub-folders hold images: stray files (.DS_Store, README,
    MANIFEST, macOS resource forks) next to the identity folders or above them do not stop the search."""
    server.payload = make_zip({**files(), **STRAY})
    url = server.url
    if how != "downloaded":
        (tmp_path / "lfw-deepfunneled.zip").write_bytes(server.payload)
        url = "http://127.0.0.1:9/lfw-deepfunneled.zip"  # nothing listens: offline
    target = fetch(tmp_path, url)
    assert target == tmp_path / "lfw-deepfunneled" and image_counts(target) == IDENTITIES
    assert sorted(p.name for p in tmp_path.iterdir()) == (
        ["lfw-deepfunneled"] if how == "downloaded" else ["lfw-deepfunneled", "lfw-deepfunneled.zip"])


def test_offline_without_an_archive_says_where_to_put_one(tmp_path):
    with pytest.raises(CSRIPError, match="could not download") as e:
        fetch(tmp_path, "http://127.0.0.1:9/lfw-deepfunneled.zip")
    assert f"Offline: copy lfw-deepfunneled.zip into {tmp_path}/ and run again" in str(e.value)
    assert "CSRIP_DATA" in str(e.value) and list(tmp_path.iterdir()) == []
