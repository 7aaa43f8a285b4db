"""Fetch and unpack public dataset archives: resumable streaming, md5 check, safe extraction.

A download streams into ``<file>.part`` and resumes it on the next attempt (HTTP Range, FTP
REST); the file gets its final name only after its md5 matches. Extraction checks every member
first (no absolute paths, no ``..`` escapes, no links pointing out of the target, no devices),
unpacks into a temporary folder inside the target and then moves the result into place, so an
interrupted extraction leaves nothing half-written under the final names.
"""

from __future__ import annotations

import ftplib
import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One public file of a dataset: where it is, its md5, and whether to unpack it."""

    url: str
    md5: str
    filename: str = ""
    extract: bool = True

    @property
    def name(self) -> str:
        return self.filename or PurePosixPath(urllib.parse.urlparse(self.url).path).name


class DownloadError(RuntimeError):
    """A download that failed; the message says whether rerunning resumes it."""


class _PermanentError(DownloadError):
    """A failure that retrying cannot fix (HTTP 404, 403, ...)."""


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the published md5."""


class UnsafeArchiveError(ValueError):
    """An archive member would land outside the target folder (or is a link/device pointing out)."""


def md5sum(path: str | os.PathLike, chunk: int = CHUNK) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def _progress(total: int | None, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        disable=not enabled,
        leave=True,
    )


def _http_stream(url: str, offset: int, timeout: float) -> tuple[Iterator[bytes], int | None, bool]:
    """(chunks, total size, whether the stream starts at ``offset``) for an http(s) URL."""
    request = urllib.request.Request(url, headers={"User-Agent": "dml-data"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left after offset: the .part is complete
            return iter(()), offset, True
        error = _PermanentError if err.code < 500 else DownloadError
        raise error(f"{url}: HTTP {err.code} {err.reason}") from err
    resumed = offset > 0 and response.status == 206
    length = response.headers.get("Content-Length")
    total = int(length) + (offset if resumed else 0) if length is not None else None

    def chunks() -> Iterator[bytes]:
        with response:
            while block := response.read(CHUNK):
                yield block

    return chunks(), total, resumed or offset == 0


def _ftp_stream(url: str, offset: int, timeout: float) -> tuple[Iterator[bytes], int | None, bool]:
    """(chunks, total size, True) for an ftp URL, restarted at ``offset`` with REST."""
    parts = urllib.parse.urlparse(url)
    ftp = ftplib.FTP(parts.hostname, timeout=timeout)
    ftp.login(parts.username or "anonymous", parts.password or "anonymous@")
    ftp.voidcmd("TYPE I")
    try:
        total = ftp.size(parts.path)
    except ftplib.all_errors:
        total = None
    conn = ftp.transfercmd(f"RETR {parts.path}", rest=offset or None)

    def chunks() -> Iterator[bytes]:
        with conn:
            while block := conn.recv(CHUNK):
                yield block
        ftp.voidresp()
        ftp.quit()

    return chunks(), total, True


def _stream(url: str, offset: int, timeout: float):
    scheme = urllib.parse.urlparse(url).scheme
    if scheme in ("http", "https"):
        return _http_stream(url, offset, timeout)
    if scheme == "ftp":
        return _ftp_stream(url, offset, timeout)
    if scheme == "file":
        path = urllib.request.url2pathname(urllib.parse.urlparse(url).path)

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                fh.seek(offset)
                while block := fh.read(CHUNK):
                    yield block

        return chunks(), os.path.getsize(path), True
    raise DownloadError(f"unsupported URL scheme {scheme!r} in {url}")


def download(
    url: str,
    dest: str | os.PathLike,
    md5: str | None = None,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Stream ``url`` to ``dest`` through ``dest.part`` (resumed when present), check the md5,
    then rename. A dest that already has the right md5 is kept as is."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and (md5 is None or md5sum(dest) == md5):
        return dest
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.exists() else 0
        try:
            chunks, total, continues = _stream(url, offset, timeout)
            if not continues:  # the server ignored the range: start over
                offset = 0
            with (
                open(part, "ab" if offset else "wb") as fh,
                _progress(total, offset, dest.name, progress) as bar,
            ):
                for block in chunks:
                    fh.write(block)
                    bar.update(len(block))
            size = part.stat().st_size
            if total is not None and size < total:
                raise DownloadError(f"connection closed after {size:,} of {total:,} bytes")
            break
        except _PermanentError:
            raise
        except (DownloadError, OSError, http.client.HTTPException, ftplib.Error) as err:
            if attempt == retries:
                have = part.stat().st_size if part.exists() else 0
                kept = (
                    f"{have:,} bytes are kept in {part}; run the same command again to resume"
                    if have
                    else "nothing was downloaded"
                )
                raise DownloadError(
                    f"downloading {url} failed after {attempt + 1} attempt(s): {err}. {kept}"
                ) from err
            time.sleep(min(2.0**attempt, 10.0) * 0.1)
    if md5 is not None:
        got = md5sum(part)
        if got != md5:
            part.unlink(missing_ok=True)
            raise ChecksumError(
                f"md5 of {url} is {got}, expected {md5}; the file was corrupted or changed upstream. "
                f"The partial file was removed; run the command again to download it afresh"
            )
    os.replace(part, dest)
    return dest


# -- safe extraction ---------------------------------------------------------------------
def _inside(target: Path, relative: str) -> bool:
    """Whether ``target/relative`` stays inside ``target`` (lexically, symlinks not followed)."""
    if not relative or PurePosixPath(relative).is_absolute() or relative.startswith(("/", "\\")):
        return False
    parts = PurePosixPath(relative).parts  # () for ".", the member of `tar -C dir -c .`
    if parts and ":" in parts[0]:  # a Windows drive letter
        return False
    resolved = os.path.normpath(os.path.join(str(target), relative.replace("\\", "/")))
    return resolved == str(target) or resolved.startswith(str(target) + os.sep)


def _check_tar(tar: tarfile.TarFile, target: Path, archive: Path) -> None:
    for member in tar.getmembers():
        if not _inside(target, member.name):
            raise UnsafeArchiveError(
                f"{archive}: member {member.name!r} would land outside {target}"
            )
        if member.issym():
            link = os.path.join(os.path.dirname(member.name), member.linkname)
            if os.path.isabs(member.linkname) or not _inside(target, link):
                raise UnsafeArchiveError(
                    f"{archive}: symlink {member.name!r} -> {member.linkname!r} points outside {target}"
                )
        elif member.islnk():
            if not _inside(target, member.linkname):
                raise UnsafeArchiveError(
                    f"{archive}: hard link {member.name!r} -> {member.linkname!r} points outside {target}"
                )
        elif not (member.isfile() or member.isdir()):
            raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device or fifo")


def _check_zip(zf: zipfile.ZipFile, target: Path, archive: Path) -> None:
    for info in zf.infolist():
        if not _inside(target, info.filename):
            raise UnsafeArchiveError(
                f"{archive}: member {info.filename!r} would land outside {target}"
            )
        if stat.S_ISLNK(info.external_attr >> 16):
            link = zf.read(info).decode("utf-8", "replace")
            if os.path.isabs(link) or not _inside(
                target, os.path.join(os.path.dirname(info.filename), link)
            ):
                raise UnsafeArchiveError(
                    f"{archive}: symlink {info.filename!r} -> {link!r} points outside {target}"
                )


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> list[Path]:
    """Unpack a .tar(.gz/.bz2/.xz)/.tgz or .zip into ``target`` after checking every member;
    returns the top-level paths it created or replaced."""
    archive, target = Path(archive), Path(target).resolve()
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_zip(zf, target, archive)
                zf.extractall(staging)  # zipfile never writes symlinks, only their text
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                _check_tar(tar, target, archive)
                kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staging, **kwargs)
        else:
            raise UnsafeArchiveError(f"{archive} is neither a tar nor a zip archive")
        placed = []
        for entry in sorted(staging.iterdir()):
            final = target / entry.name
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)
            elif final.exists() or final.is_symlink():
                final.unlink()
            os.replace(entry, final)
            placed.append(final)
        return placed
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def fetch(
    archive: Archive,
    root: str | os.PathLike,
    keep_archive: bool = False,
    progress: bool = True,
    retries: int = 3,
) -> Path:
    """Download one archive into ``root`` and unpack it there (the archive is then removed
    unless ``keep_archive``); a plain file (pairs.txt) is just downloaded."""
    root = Path(root).expanduser()
    path = download(
        archive.url, root / archive.name, archive.md5, retries=retries, progress=progress
    )
    if not archive.extract:
        return path
    safe_extract(path, root)
    if not keep_archive:
        path.unlink()
    return root
