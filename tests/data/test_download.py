"""Downloads against a local HTTP server: good archive, wrong md5, unsafe members, resume."""

import ftplib
import hashlib
import io
import re
import socket
import stat
import tarfile
import tempfile
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
    a path send the full Content-Length but only half the bytes, then drop the connection;
    ``server.fail[path]`` lists HTTP error codes for its next requests (None: answer normally);
    ``server.no_length`` answers without a Content-Length (the body ends when the connection
    closes); a path in ``server.stall`` gets no answer until ``server.release`` is set (then none
    at all) or 10 s have passed. ``server.agents`` records each request's User-Agent."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        body = srv.files.get(self.path)
        srv.requests.append((self.path, self.headers.get("Range")))
        srv.agents.append(self.headers.get("User-Agent"))
        if self.path in srv.stall and srv.release.wait(10):
            return  # the client gave up waiting: nothing to answer
        failures = srv.fail.get(self.path)
        code = failures.pop(0) if failures else None
        if code is not None:
            self.send_error(code)
            return
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
        if not srv.no_length:
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
    srv.fail, srv.agents, srv.stall, srv.no_length = {}, [], set(), False
    srv.release = threading.Event()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.release.set()
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
    # accepted as it is: one ranged request, not a truncation and a second full download
    assert server.requests == [("/big.tgz", f"bytes={len(GOOD)}-")]


# ---- guards found missing by mutation testing (make mutation) --------------------------------
@pytest.mark.parametrize(
    "members",
    [
        [("../target2/evil.txt", b"2")],  # a sibling folder whose name starts with the target's
        [("link", ("sym", "../target2/x"))],
        [("hard", ("lnk", "../target2/x"))],
    ],
)
def test_members_landing_in_a_sibling_folder_with_the_same_prefix_are_rejected(tmp_path, members):
    path = tmp_path / "a.tgz"
    path.write_bytes(_tgz(members))
    (tmp_path / "target2").mkdir()
    with pytest.raises(UnsafeArchiveError):
        safe_extract(path, tmp_path / "target")
    assert list((tmp_path / "target2").iterdir()) == []


def test_zip_symlink_pointing_out_is_rejected(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("d/link")
        info.external_attr = (0o120777 << 16) | 0x20  # a symlink as zip tools store it
        zf.writestr(info, "../../outside")
        inner = zipfile.ZipInfo("d/ok")
        inner.external_attr = 0o120777 << 16
        zf.writestr(inner, "sibling.txt")  # a link inside the target is fine on its own
    with pytest.raises(UnsafeArchiveError, match="symlink 'd/link'"):
        safe_extract(path, tmp_path / "t")
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as zf:
        zf.writestr(inner, "sibling.txt")
    assert safe_extract(tmp_path / "b.zip", tmp_path / "t") == [tmp_path / "t" / "d"]


# plain ids: mutmut cannot select a test again by an id with quotes or backslashes in it
@pytest.mark.parametrize(
    "name",
    ["C:evil.txt", "\\evil.txt", "", "d\\..\\..\\evil.txt"],
    ids=["drive-letter", "leading-backslash", "empty", "backslash-dotdot"],
)
def test_windows_style_and_empty_member_names_are_rejected(tmp_path, name):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name or "x"), "1")
    if not name:  # zipfile cannot write an empty name: check the guard itself
        from dml.data.download import _inside

        assert not _inside((tmp_path / "t").resolve(), "")
        return
    with pytest.raises(UnsafeArchiveError, match="outside"):
        safe_extract(path, tmp_path / "t")


def test_device_members_and_non_archives_are_rejected(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("fifo")
        info.type = tarfile.FIFOTYPE
        tar.addfile(info)
    (tmp_path / "a.tar").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeArchiveError, match="'fifo' is a device or fifo"):
        safe_extract(tmp_path / "a.tar", tmp_path / "t")
    (tmp_path / "b.tgz").write_bytes(b"not an archive at all")
    with pytest.raises(UnsafeArchiveError, match="neither a tar nor a zip"):
        safe_extract(tmp_path / "b.tgz", tmp_path / "t")


def test_extraction_replaces_earlier_files_and_folders_and_lists_what_it_placed(tmp_path):
    target = tmp_path / "t"
    (target / "CUB_200_2011").mkdir(parents=True)
    (target / "CUB_200_2011" / "stale.txt").write_text("old")
    (target / "attributes.txt").write_text("old")
    (target / "keep.txt").write_text("not in the archive")
    (tmp_path / "a.tgz").write_bytes(GOOD)
    placed = safe_extract(tmp_path / "a.tgz", target)
    assert placed == [target / "CUB_200_2011", target / "attributes.txt"]
    assert not (target / "CUB_200_2011" / "stale.txt").exists()
    assert (target / "attributes.txt").read_text() == "attrs\n"
    assert (target / "keep.txt").read_text() == "not in the archive"
    assert sorted(p.name for p in target.iterdir()) == [
        "CUB_200_2011",
        "attributes.txt",
        "keep.txt",
    ]


def test_existing_file_with_a_wrong_md5_is_downloaded_again(server, tmp_path):
    server.files["/a.tgz"] = GOOD
    dest = tmp_path / "a.tgz"
    dest.write_bytes(b"an older or damaged copy")
    assert download(server.url + "/a.tgz", dest, _md5(GOOD), progress=False) == dest
    assert dest.read_bytes() == GOOD
    assert len(server.requests) == 1
    # without an md5 an existing file is trusted (nothing to check it against)
    assert download(server.url + "/a.tgz", tmp_path / "a.tgz", progress=False) == dest
    assert len(server.requests) == 1


@pytest.mark.parametrize("code", [500, 503])
def test_server_errors_are_retried(server, tmp_path, code):
    server.files["/a.tgz"] = GOOD
    server.fail["/a.tgz"] = [code, code]
    download(server.url + "/a.tgz", tmp_path / "a.tgz", _md5(GOOD), retries=2, progress=False)
    assert (tmp_path / "a.tgz").read_bytes() == GOOD
    assert len(server.requests) == 3


def test_server_errors_give_up_after_the_retries_and_keep_the_partial_file(server, tmp_path):
    server.files["/a.tgz"] = GOOD
    server.cut["/a.tgz"] = 1
    server.fail["/a.tgz"] = [None, 503, 503]  # the first answer is cut, then the server fails
    with pytest.raises(DownloadError, match=r"failed after 3 attempt\(s\): .*HTTP 503") as info:
        download(server.url + "/a.tgz", tmp_path / "a.tgz", _md5(GOOD), retries=2, progress=False)
    half = len(GOOD) // 2
    assert f"{half:,} bytes are kept in" in str(info.value)
    assert (tmp_path / "a.tgz.part").stat().st_size == half
    assert len(server.requests) == 3


def test_forbidden_is_permanent_and_unsupported_schemes_are_named(server, tmp_path):
    server.fail["/a.tgz"] = [403]
    server.files["/a.tgz"] = GOOD
    with pytest.raises(DownloadError, match="HTTP 403"):
        download(server.url + "/a.tgz", tmp_path / "a.tgz", retries=3, progress=False)
    assert len(server.requests) == 1
    with pytest.raises(DownloadError, match="unsupported URL scheme 'gopher'"):
        download("gopher://x/a.tgz", tmp_path / "b.tgz", retries=0, progress=False)


def test_file_urls_are_copied_and_resumed(tmp_path):
    source = tmp_path / "src.tgz"
    source.write_bytes(GOOD)
    dest = tmp_path / "out" / "a.tgz"
    dest.parent.mkdir()
    (tmp_path / "out" / "a.tgz.part").write_bytes(GOOD[:100])
    download(source.as_uri(), dest, _md5(GOOD), retries=0, progress=False)
    assert dest.read_bytes() == GOOD


def test_archive_name_comes_from_the_url_path_unless_given():
    assert Archive("https://h/x/CUB_200_2011.tgz?dl=1", "0").name == "CUB_200_2011.tgz"
    assert Archive("https://h/x/download", "0", filename="lfw.tgz").name == "lfw.tgz"


class _FakeFTP:
    """Stands in for ftplib.FTP (no FTP server in the tests): serves ``files`` by path, honours
    REST offsets, records every call in ``log``; ``size_fails`` makes SIZE raise like a server
    that does not implement it; the first ``cut`` transfers end after half of their bytes."""

    files: dict[str, bytes] = {}
    log: list = []
    size_fails = False
    cut = 0

    def __init__(self, host, timeout):
        self.log.append(("connect", host, timeout))

    def login(self, user, password):
        self.log.append(("login", user, password))

    def voidcmd(self, cmd):
        self.log.append(("voidcmd", cmd))

    def size(self, path):
        if self.size_fails:
            raise ftplib.error_perm("550 SIZE not allowed in ASCII mode")
        return len(self.files[path])

    def transfercmd(self, cmd, rest=None):
        self.log.append(("transfercmd", cmd, rest))
        data = self.files[cmd.removeprefix("RETR ")][rest or 0 :]
        if _FakeFTP.cut > 0:
            _FakeFTP.cut -= 1
            data = data[: len(data) // 2]
        return _FakeConn(data)

    def voidresp(self):
        self.log.append(("voidresp",))

    def quit(self):
        self.log.append(("quit",))


class _FakeConn:
    def __init__(self, data):
        self.data = data

    def recv(self, bufsize):
        # like socket.recv: at most bufsize bytes (an int; None is a TypeError there too)
        n = min(bufsize, 64)
        block, self.data = self.data[:n], self.data[n:]
        return block

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.fixture
def fake_ftp(monkeypatch):
    monkeypatch.setattr(ftplib, "FTP", _FakeFTP)
    _FakeFTP.files, _FakeFTP.log, _FakeFTP.size_fails = {"/pub/a.tgz": GOOD}, [], False
    _FakeFTP.cut = 0
    return _FakeFTP


def test_ftp_download_logs_in_and_resumes_with_rest(fake_ftp, tmp_path):
    dest = tmp_path / "a.tgz"
    (tmp_path / "a.tgz.part").write_bytes(GOOD[:100])
    download("ftp://user:pw@ftp.example.org/pub/a.tgz", dest, _md5(GOOD), timeout=7, progress=False)
    assert dest.read_bytes() == GOOD
    assert fake_ftp.log == [
        ("connect", "ftp.example.org", 7),
        ("login", "user", "pw"),
        ("voidcmd", "TYPE I"),
        ("transfercmd", "RETR /pub/a.tgz", 100),
        ("voidresp",),
        ("quit",),
    ]


def test_ftp_download_is_anonymous_without_credentials_and_works_without_size(fake_ftp, tmp_path):
    fake_ftp.size_fails = True
    dest = download(
        "ftp://ftp.example.org/pub/a.tgz", tmp_path / "a.tgz", _md5(GOOD), progress=False
    )
    assert dest.read_bytes() == GOOD
    assert ("login", "anonymous", "anonymous@") in fake_ftp.log
    assert ("transfercmd", "RETR /pub/a.tgz", None) in fake_ftp.log


def test_download_creates_missing_parent_folders(server, tmp_path):
    server.files["/a.tgz"] = GOOD
    dest = tmp_path / "x" / "y" / "a.tgz"
    assert download(server.url + "/a.tgz", dest, _md5(GOOD), retries=0, progress=False) == dest
    assert dest.read_bytes() == GOOD


def test_tar_extraction_creates_missing_folders_and_accepts_a_dot_member(tmp_path):
    # `tar -C dir -czf a.tgz .` writes a "." member first: it is the target itself, not outside
    path = tmp_path / "a.tgz"
    path.write_bytes(_tgz([(".", None), ("./d", None), ("./d/f.txt", b"hi")]))
    target = tmp_path / "x" / "y" / "t"
    assert safe_extract(path, target) == [target / "d"]
    assert (target / "d" / "f.txt").read_text() == "hi"


def test_tar_extraction_drops_setuid_and_group_or_other_write_bits(tmp_path):
    # tarfile's "data" filter, on top of the member checks: no setuid file, nothing world-writable
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("run.sh")
        info.size, info.mode = 2, 0o4777
        tar.addfile(info, io.BytesIO(b"hi"))
    path = tmp_path / "a.tgz"
    path.write_bytes(buf.getvalue())
    safe_extract(path, tmp_path / "t")
    mode = (tmp_path / "t" / "run.sh").stat().st_mode
    assert mode & 0o7000 == 0 and mode & 0o022 == 0, oct(mode)


def test_zip_symlink_is_resolved_from_its_own_folder(tmp_path):
    # "d/link -> ../d/f.txt" stays inside; the same text read from the target root would not
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("d/f.txt", "hi")
        link = zipfile.ZipInfo("d/link")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "../d/f.txt")
    assert safe_extract(path, tmp_path / "t") == [tmp_path / "t" / "d"]


@pytest.mark.parametrize("kind", ["tgz", "zip"])
def test_unsafe_member_error_names_the_archive(tmp_path, kind):
    path = tmp_path / f"bad.{kind}"
    if kind == "tgz":
        path.write_bytes(_tgz([("../evil.txt", b"1")]))
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("../evil.txt", "1")
    with pytest.raises(UnsafeArchiveError, match=rf"^{re.escape(str(path))}: member '\.\./evil"):
        safe_extract(path, tmp_path / "t")


def test_tar_links_inside_the_target_are_extracted(tmp_path):
    # a symlink is read from its own folder ("d/s -> ../d/f.txt" stays inside), a hard link's
    # target from the archive root
    path = tmp_path / "a.tgz"
    members = [("d", None), ("d/f.txt", b"hi"), ("d/s", ("sym", "../d/f.txt"))]
    path.write_bytes(_tgz([*members, ("d/h.txt", ("lnk", "d/f.txt"))]))
    safe_extract(path, tmp_path / "t")
    assert (tmp_path / "t" / "d" / "s").read_text() == "hi"
    assert (tmp_path / "t" / "d" / "h.txt").read_text() == "hi"
    # ... and one in a subfolder that climbs out is refused
    path.write_bytes(_tgz([("d", None), ("d/s", ("sym", "../../evil.txt"))]))
    with pytest.raises(UnsafeArchiveError, match="symlink 'd/s'"):
        safe_extract(path, tmp_path / "u")


@pytest.mark.parametrize("kind", ["file", "sym", "lnk", "zip", "zip-sym"])
def test_the_check_is_against_the_real_target(tmp_path, kind):
    # "../None/x" climbs out of t/ into a sibling folder: a check against any other base
    # (such as str(None)) would let it through
    path = tmp_path / ("a.zip" if kind.startswith("zip") else "a.tgz")
    if kind == "file":
        path.write_bytes(_tgz([("../None/x", b"2")]))
    elif kind in ("sym", "lnk"):
        path.write_bytes(_tgz([("x", (kind, "../None/x"))]))
    else:
        with zipfile.ZipFile(path, "w") as zf:
            if kind == "zip":
                zf.writestr("../None/x", "2")
            else:
                link = zipfile.ZipInfo("x")
                link.external_attr = (stat.S_IFLNK | 0o777) << 16
                zf.writestr(link, "../None/x")
    with pytest.raises(UnsafeArchiveError, match="outside"):
        safe_extract(path, tmp_path / "t")
    assert not (tmp_path / "None").exists()


# ---- the transfer itself: headers, timeouts, sizes, schemes (second mutation round) ----------
def test_requests_identify_as_dml_and_resume_with_a_range_header(server, tmp_path):
    # some dataset hosts refuse urllib's default "Python-urllib/3.x" agent
    server.files["/a.tgz"] = GOOD
    (tmp_path / "a.tgz.part").write_bytes(GOOD[:10])
    download(server.url + "/a.tgz", tmp_path / "a.tgz", _md5(GOOD), retries=0, progress=False)
    assert server.agents == ["dml-data"]
    assert server.requests == [("/a.tgz", "bytes=10-")]


@pytest.mark.parametrize("honour_range", [True, False], ids=["resumed", "range-ignored"])
def test_a_one_byte_part_file_is_resumed_or_restarted_correctly(server, tmp_path, honour_range):
    # the smallest offset: resumed from byte 1 when the server honours the range, started over
    # (not appended to the stale byte) when it answers 200 with the whole file
    server.files["/a.tgz"] = GOOD
    server.honour_range = honour_range
    (tmp_path / "a.tgz.part").write_bytes(GOOD[:1])
    download(server.url + "/a.tgz", tmp_path / "a.tgz", _md5(GOOD), retries=0, progress=False)
    assert (tmp_path / "a.tgz").read_bytes() == GOOD
    assert server.requests == [("/a.tgz", "bytes=1-")]


def test_a_response_without_content_length_is_read_to_the_end(server, tmp_path):
    server.files["/a.tgz"] = GOOD
    server.no_length = True
    download(server.url + "/a.tgz", tmp_path / "a.tgz", _md5(GOOD), retries=0, progress=False)
    assert (tmp_path / "a.tgz").read_bytes() == GOOD


def test_a_server_that_never_answers_times_out(server, tmp_path):
    # the timeout reaches the socket: without it the download would wait for the server forever
    # (here: until the handler gives up after 10 s and serves the file after all)
    server.files["/a.tgz"] = GOOD
    server.stall.add("/a.tgz")
    with pytest.raises(DownloadError, match=r"failed after 1 attempt\(s\): .*timed out") as info:
        download(server.url + "/a.tgz", tmp_path / "a.tgz", retries=0, timeout=0.3, progress=False)
    server.release.set()
    assert str(info.value).endswith("nothing was downloaded")
    assert not (tmp_path / "a.tgz").exists() and not (tmp_path / "a.tgz.part").exists()


def test_error_messages_say_what_was_received(server, tmp_path):
    server.files["/a.tgz"] = GOOD
    server.cut["/a.tgz"] = 1
    with pytest.raises(DownloadError) as info:
        download(server.url + "/a.tgz", tmp_path / "a.tgz", retries=0, progress=False)
    half = len(GOOD) // 2
    assert f"connection closed after {half:,} of {len(GOOD):,} bytes" in str(info.value)
    # nothing received: the message must not promise a resume
    server.fail["/b.tgz"] = [503]
    with pytest.raises(DownloadError) as info:
        download(server.url + "/b.tgz", tmp_path / "b.tgz", retries=0, progress=False)
    assert str(info.value).endswith("HTTP 503 Service Unavailable. nothing was downloaded")


def test_https_urls_are_fetched_over_tls(tmp_path):
    # a listener that records the first bytes of the connection: a TLS handshake record (0x16),
    # then hangs up, so the download fails on the connection, not on the URL's scheme
    received = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def accept_one():
            conn, _ = listener.accept()
            with conn:
                received.append(conn.recv(1))

        thread = threading.Thread(target=accept_one, daemon=True)
        thread.start()
        url = f"https://127.0.0.1:{listener.getsockname()[1]}/a.tgz"
        with pytest.raises(DownloadError) as info:
            download(url, tmp_path / "a.tgz", retries=0, timeout=10, progress=False)
        thread.join(10)
    assert "unsupported URL scheme" not in str(info.value)
    assert received == [b"\x16"]


def test_a_cut_ftp_transfer_is_noticed_and_resumed(fake_ftp, tmp_path):
    # SIZE gives the total: a transfer that ends early is retried from where it stopped
    fake_ftp.cut = 1
    dest = tmp_path / "a.tgz"
    download("ftp://ftp.example.org/pub/a.tgz", dest, _md5(GOOD), retries=1, progress=False)
    assert dest.read_bytes() == GOOD
    transfers = [entry for entry in fake_ftp.log if entry[0] == "transfercmd"]
    assert transfers == [
        ("transfercmd", "RETR /pub/a.tgz", None),
        ("transfercmd", "RETR /pub/a.tgz", len(GOOD) // 2),
    ]


def test_fetch_passes_its_retries_on(server, tmp_path):
    server.files["/a.tgz"] = GOOD
    server.fail["/a.tgz"] = [503]
    with pytest.raises(DownloadError, match=r"failed after 1 attempt\(s\)"):
        fetch(Archive(server.url + "/a.tgz", _md5(GOOD)), tmp_path, retries=0, progress=False)
    assert len(server.requests) == 1


# 10,230 bytes: 9.99 KiB, but 10.2 kB in decimal units (and 9.98 "k" of 1,025)
PAYLOAD = (bytes(range(256)) * 40)[:10230]


def _final_bar(err):
    """The bar's last state: tqdm redraws the line after a carriage return."""
    return err.split("\r")[-1]


def test_progress_bar_shows_the_file_binary_sizes_and_a_resume_as_complete(
    server, tmp_path, capsys
):
    server.files["/a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[: len(PAYLOAD) // 2])
    download(server.url + "/a.bin", tmp_path / "a.bin", _md5(PAYLOAD), retries=0)  # default: on
    err = capsys.readouterr().err
    # the bar counts the resumed half too (100%, not 50%), in KiB, with the file's name, and
    # stays on screen (ends with a newline)
    assert re.fullmatch(r"a\.bin: 100%\|[^|]*\| 9\.99k/9\.99k \[[^\]]*B/s\]\n", _final_bar(err))
    assert err.split("\r")[1].startswith("a.bin:  50%|")  # it starts at the resumed offset
    download(server.url + "/a.bin", tmp_path / "b.bin", _md5(PAYLOAD), retries=0, progress=False)
    assert capsys.readouterr().err == ""


def test_fetch_shows_a_progress_bar_unless_told_not_to(server, tmp_path, capsys):
    server.files["/a.bin"] = PAYLOAD
    fetch(Archive(server.url + "/a.bin", _md5(PAYLOAD), extract=False), tmp_path / "x")
    assert _final_bar(capsys.readouterr().err).startswith("a.bin: 100%")
    fetch(
        Archive(server.url + "/a.bin", _md5(PAYLOAD), extract=False), tmp_path / "y", progress=False
    )
    assert capsys.readouterr().err == ""


# ---- extraction: where it stages, what it replaces, absolute names ---------------------------
def test_extraction_stages_inside_the_target_not_in_the_system_temp_folder(tmp_path, monkeypatch):
    # a dataset can be larger than /tmp, and a rename across filesystems fails: the staging
    # folder lives in the target, so a missing system temp folder does not matter
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-tmp"))
    (tmp_path / "a.tgz").write_bytes(GOOD)
    assert safe_extract(tmp_path / "a.tgz", tmp_path / "t")[0] == tmp_path / "t" / "CUB_200_2011"


def test_extraction_replaces_a_file_where_the_archive_has_a_folder(tmp_path):
    target = tmp_path / "t"
    target.mkdir()
    (target / "CUB_200_2011").write_text("a file left by something else")
    (target / "attributes.txt").symlink_to("missing")  # a dangling link in the way
    (tmp_path / "a.tgz").write_bytes(GOOD)
    safe_extract(tmp_path / "a.tgz", target)
    assert (target / "CUB_200_2011" / "images.txt").read_text() == "1 a/b.jpg\n"
    assert not (target / "attributes.txt").is_symlink()
    assert (target / "attributes.txt").read_text() == "attrs\n"


@pytest.mark.parametrize("style", ["posix", "windows"])
def test_absolute_member_names_are_refused_even_into_the_target(tmp_path, style):
    target = (tmp_path / "t").resolve()
    inside = str(target / "x.txt")
    path = tmp_path / "a.zip"
    name = inside if style == "posix" else inside.replace("/", "\\")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), "1")
    with pytest.raises(UnsafeArchiveError, match="outside"):
        safe_extract(path, target)
