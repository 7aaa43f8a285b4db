"""Downloads against a local HTTP server: good archive, wrong md5, unsafe members, resume."""

import hashlib
import io
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dml.data.download import (
    Archive,
    ChecksumError,
    DownloadError,
    UnsafeArchiveError,
    download,
    fetch,
    safe_extract,
)


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-``; the first ``server.cut`` requests of
    a path send the full Content-Length but only half the bytes, then drop the connection."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        body = srv.files.get(self.path)
        srv.requests.append((self.path, self.headers.get("Range")))
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.cut.get(self.path, 0) > 0:
            srv.cut[self.path] -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(payload)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.cut, srv.requests, srv.honour_range = {}, {}, [], True
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


def _tgz(members):
    """members: list of (name, bytes | ('sym'|'lnk', target) | None for a dir)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif isinstance(content, tuple):
                info.type = tarfile.SYMTYPE if content[0] == "sym" else tarfile.LNKTYPE
                info.linkname = content[1]
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _md5(data):
    return hashlib.md5(data).hexdigest()


GOOD = _tgz(
    [
        ("CUB_200_2011", None),
        ("CUB_200_2011/images.txt", b"1 a/b.jpg\n"),
        ("CUB_200_2011/images/a/b.jpg", b"x" * 5000),
        ("attributes.txt", b"attrs\n"),
    ]
)


def test_good_archive_is_downloaded_verified_and_extracted(server, tmp_path):
    server.files["/CUB_200_2011.tgz"] = GOOD
    root = fetch(
        Archive(server.url + "/CUB_200_2011.tgz", _md5(GOOD)), tmp_path / "cub", progress=False
    )
    assert (root / "CUB_200_2011" / "images.txt").read_text() == "1 a/b.jpg\n"
    assert (root / "CUB_200_2011" / "images" / "a" / "b.jpg").stat().st_size == 5000
    assert sorted(p.name for p in root.iterdir()) == [
        "CUB_200_2011",
        "attributes.txt",
    ]  # archive removed


def test_plain_file_and_keep_archive(server, tmp_path):
    server.files["/pairs.txt"] = b"10\t300\n"
    path = fetch(
        Archive(server.url + "/pairs.txt", _md5(b"10\t300\n"), extract=False),
        tmp_path,
        progress=False,
    )
    assert path == tmp_path / "pairs.txt" and path.read_bytes() == b"10\t300\n"
    server.files["/a.tgz"] = GOOD
    fetch(Archive(server.url + "/a.tgz", _md5(GOOD)), tmp_path, keep_archive=True, progress=False)
    assert (tmp_path / "a.tgz").is_file()
    # already there with the right md5: no new request
    before = len(server.requests)
    download(server.url + "/a.tgz", tmp_path / "a.tgz", _md5(GOOD), progress=False)
    assert len(server.requests) == before


def test_wrong_md5_removes_the_file(server, tmp_path):
    server.files["/x.tgz"] = GOOD
    with pytest.raises(ChecksumError, match="expected 0{32}"):
        fetch(Archive(server.url + "/x.tgz", "0" * 32), tmp_path, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_404_is_not_retried(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.url + "/missing.tgz", tmp_path / "m.tgz", retries=3, progress=False)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "members,match",
    [
        ([("ok.txt", b"1"), ("../evil.txt", b"2")], "outside"),
        ([("/abs/evil.txt", b"2")], "outside"),
        ([("d", None), ("d/../../evil.txt", b"2")], "outside"),
        ([("link", ("sym", "../../etc/passwd"))], "symlink"),
        ([("link", ("sym", "/etc/passwd"))], "symlink"),
        ([("hard", ("lnk", "../outside"))], "hard link"),
    ],
)
def test_path_traversal_archives_are_rejected_before_writing(server, tmp_path, members, match):
    data = _tgz(members)
    server.files["/evil.tgz"] = data
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=match):
        fetch(Archive(server.url + "/evil.tgz", _md5(data)), target, progress=False)
    assert not (tmp_path / "evil.txt").exists()
    leftovers = {p.name for p in target.iterdir()}
    assert leftovers == {"evil.tgz"}  # nothing extracted, no staging folder left


def test_zip_traversal_rejected_and_good_zip_extracted(tmp_path):
    evil, good = tmp_path / "evil.zip", tmp_path / "good.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("Stanford_Online_Products/ok.txt", "1")
        zf.writestr("../../evil.txt", "2")
    with pytest.raises(UnsafeArchiveError, match="outside"):
        safe_extract(evil, tmp_path / "t")
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("Stanford_Online_Products/Ebay_train.txt", "header\n")
    safe_extract(good, tmp_path / "t")
    assert (
        tmp_path / "t" / "Stanford_Online_Products" / "Ebay_train.txt"
    ).read_text() == "header\n"


def test_internal_symlink_is_allowed(tmp_path):
    path = tmp_path / "a.tgz"
    path.write_bytes(_tgz([("d", None), ("d/f.txt", b"hi"), ("d/g.txt", ("sym", "f.txt"))]))
    safe_extract(path, tmp_path / "t")
    assert (tmp_path / "t" / "d" / "g.txt").read_text() == "hi"


def test_interrupted_transfer_then_resume_with_range(server, tmp_path):
    server.files["/big.tgz"] = GOOD
    server.cut["/big.tgz"] = 1
    dest = tmp_path / "big.tgz"
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download(server.url + "/big.tgz", dest, _md5(GOOD), retries=0, progress=False)
    part = tmp_path / "big.tgz.part"
    assert part.stat().st_size == len(GOOD) // 2 and not dest.exists()
    download(server.url + "/big.tgz", dest, _md5(GOOD), retries=0, progress=False)
    assert dest.read_bytes() == GOOD and not part.exists()
    assert server.requests[-1] == ("/big.tgz", f"bytes={len(GOOD) // 2}-")


def test_automatic_retry_resumes(server, tmp_path):
    server.files["/big.tgz"] = GOOD
    server.cut["/big.tgz"] = 2
    download(server.url + "/big.tgz", tmp_path / "big.tgz", _md5(GOOD), retries=2, progress=False)
    assert (tmp_path / "big.tgz").read_bytes() == GOOD
    half = len(GOOD) // 2
    second = half + (len(GOOD) - half) // 2
    assert [r for _, r in server.requests] == [None, f"bytes={half}-", f"bytes={second}-"]


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.files["/big.tgz"] = GOOD
    server.honour_range = False
    (tmp_path / "big.tgz.part").write_bytes(b"stale partial bytes")
    download(server.url + "/big.tgz", tmp_path / "big.tgz", _md5(GOOD), progress=False)
    assert (tmp_path / "big.tgz").read_bytes() == GOOD


def test_complete_part_file_gets_416_and_is_accepted(server, tmp_path):
    server.files["/big.tgz"] = GOOD
    (tmp_path / "big.tgz.part").write_bytes(GOOD)
    download(server.url + "/big.tgz", tmp_path / "big.tgz", _md5(GOOD), progress=False)
    assert (tmp_path / "big.tgz").read_bytes() == GOOD
