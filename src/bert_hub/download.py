"""Transport: bytes at a URL -> a verified file at a path the caller chose.

One fetcher per scheme, chosen by prefix: ``http(s)://`` (``http_fetcher``, requests),
``s3://`` (``s3_fetcher``, boto3), ``file://`` and plain paths (here); any other scheme fails
with the URL quoted (the registry turns its ``package://`` pointers into ``file://`` URLs first:
``registry.resolve_url``). ``fetch`` streams into ``dest`` and never renames it: publishing is
the cache's job. This module is the loop around the fetchers; it guarantees:

- Resume. ``dest`` may hold a prefix from an interrupted call or process; its sidecar
  ``<dest>.meta.json`` records the URL, the ETag / Last-Modified and the server's checksums.
  The next call asks for ``Range: bytes=<size>-`` pinned with ``If-Range``; only a 206 whose
  ``Content-Range`` starts there is appended, a 200 restarts from zero.
- Verification while receiving (``transfer``): SHA-256 always, the server's CRC32C or MD5, the
  length. On a mismatch ``dest`` and its sidecar are deleted, the download is retried once from
  zero, then ``IntegrityError``.
- Bounded retries with exponential backoff on connection errors, resets, stalls (read timeout),
  truncated bodies, 408/429/5xx (honouring ``Retry-After``, capped). 404/403 fail at once.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from . import env, transfer
from .errors import DownloadError, EntryNotFoundError, IntegrityError, UnsupportedURLError
from .fetcher import Opened, RangeNotSatisfiable, RemoteInfo, Restart, Timeout, Transient
from .http_fetcher import HttpFetcher
from .s3_fetcher import S3Fetcher
from .transfer import CHUNK_SIZE  # noqa: F401  (re-exported: the read size)

__all__ = ["CHUNK_SIZE", "FetchResult", "RemoteInfo", "Timeout", "discard", "fetch", "head",
           "local_path", "scheme_of"]

logger = logging.getLogger(__name__)

_BACKOFF_CAP = 30.0         # seconds, the longest pause between two attempts
_INTEGRITY_RETRIES = 1      # fresh downloads after a checksum mismatch before giving up


@dataclass(frozen=True)
class FetchResult:
    path: Path              # == dest, now holding the complete, verified object
    size: int
    sha256: str             # hex
    etag: Optional[str]
    url: str                # where the bytes came from, after redirects


# ----------------------------------------------------------------------------------------------
# Public entry points


def fetch(
    url: str,
    dest: Union[str, os.PathLike],
    *,
    expected_sha256: Optional[str] = None,
    expected_size: Optional[int] = None,
    timeout: Timeout = (10, 60),
    max_retries: int = 5,
    progress: Optional[bool] = None,
    desc: Optional[str] = None,
    backoff: float = 0.5,
) -> FetchResult:
    """Download `url` into `dest` (resuming a prefix already there), verify it, return its hash.

    `timeout` is (connect, read) seconds; the read timeout is what catches a stalled stream.
    `max_retries` bounds the extra attempts after the first; `backoff` is the first pause (doubled
    each time, capped). `progress=None` shows a tqdm bar unless BERT_HUB_DISABLE_PROGRESS=1 or
    stderr is neither a terminal nor a notebook. On failure `dest` is never a complete-looking
    file: a transfer error leaves a resumable prefix (and its sidecar), a verification error
    deletes both.
    """
    dest = Path(dest)
    if expected_sha256 is not None:
        expected_sha256 = expected_sha256.lower()
    fetcher = _fetcher_for(url, timeout)  # an unsupported URL fails here, before any I/O
    show = env.progress_enabled(progress)
    attempt, bad_downloads = 0, 0
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        while True:
            attempt += 1
            try:
                return _attempt(fetcher, url, dest, expected_sha256, expected_size, show, desc)
            except IntegrityError:
                discard(dest)
                bad_downloads += 1
                if bad_downloads > min(_INTEGRITY_RETRIES, max_retries) or attempt > max_retries:
                    raise
                logger.warning("Verification of %s failed; downloading it again from zero", url)
            except Transient as exc:
                if isinstance(exc, Restart):
                    discard(dest)
                if attempt > max_retries:
                    raise DownloadError(
                        f"Could not download {url} after {attempt} attempts: {exc.reason}. "
                        f"Check the network, proxy settings (HTTPS_PROXY) and the URL, then run "
                        f"again: the {_size_of(dest)} bytes received so far are kept in {dest} "
                        f"and will be resumed."
                    ) from None
                wait = exc.retry_after
                if wait is None:
                    wait = min(backoff * 2 ** (attempt - 1), _BACKOFF_CAP) * random.uniform(0.8, 1.2)
                logger.warning("Download of %s interrupted (%s); attempt %d of %d in %.1f s",
                               url, exc.reason, attempt + 1, max_retries + 1, wait)
                time.sleep(wait)
    finally:
        fetcher.close()


def head(url: str, *, timeout: Timeout = (10, 60)) -> RemoteInfo:
    """Size, ETag and checksums of the object at `url`, without downloading it (no retries)."""
    fetcher = _fetcher_for(url, timeout)
    try:
        return fetcher.head(url)
    finally:
        fetcher.close()


def scheme_of(url: str) -> str:
    """'http', 'https', 's3', 'file' or 'path' (no scheme); raises on any other."""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "" or (len(scheme) == 1 and url[1:3] in (":\\", ":/")):  # C:\ is a path
        return "path"
    if scheme in ("http", "https", "s3", "file"):
        return scheme
    if scheme == "package":
        raise UnsupportedURLError(
            f"{url!r} is a registry pointer to a file inside a package: turn it into a file:// URL "
            f"with bert_hub.registry.resolve_url() before downloading.")
    raise UnsupportedURLError(
        f"Cannot download {url!r}: the scheme {scheme + '://'!r} is not supported. Use an "
        f"http(s)://, s3:// or file:// URL, or a local path."
    )


def local_path(url: str) -> Path:
    """The local file behind a file:// or plain-path URL."""
    scheme = scheme_of(url)
    if scheme == "path":
        return Path(url).expanduser()
    if scheme == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise UnsupportedURLError(
                f"Cannot read {url!r}: file:// URLs must name a local file (file:///abs/path).")
        return Path(unquote(parts.path))
    raise UnsupportedURLError(f"{url!r} is not a local file URL.")


# ----------------------------------------------------------------------------------------------
# The attempt: resume point -> open -> receive while hashing -> verify


def _attempt(fetcher, url: str, dest: Path, expected_sha256: Optional[str],
             expected_size: Optional[int], show: bool, desc: Optional[str]) -> FetchResult:
    offset, meta = _resume_point(dest, url)
    try:
        opened = fetcher.open(url, offset, _validator(meta) if offset else None)
    except RangeNotSatisfiable as exc:
        if meta is not None and exc.total is not None and exc.total == offset == meta.get("total"):
            logger.debug("%s is already complete in %s; verifying it", url, dest)
            return _verify_complete(dest, url, meta, expected_sha256, expected_size)
        raise Restart(f"the server cannot continue from byte {offset} (HTTP 416)") from None
    try:
        if opened.start != offset:
            if opened.start != 0:
                raise Restart(f"asked for bytes {offset}- but the server sent bytes {opened.start}-")
            if offset:
                logger.info("%s: the server sent the whole object instead of bytes %d-; "
                            "starting again from zero", url, offset)
            offset = 0
        if expected_size is not None and opened.total is not None and opened.total != expected_size:
            raise IntegrityError(
                f"{url} is {opened.total} bytes, but {expected_size} were expected. Check the URL "
                f"and BERT_HUB_ENDPOINT (a mirror serving a different file?).")
        # A 206 pinned by If-Range is the same object: keep checksums it may not repeat.
        checksums = opened.checksums
        if offset and not checksums and meta:
            checksums = meta.get("checksums", {})
        meta = {"url": url, "etag": opened.etag, "last_modified": opened.last_modified,
                "total": opened.total, "checksums": checksums, "resumable": opened.resumable}
        hashers = transfer.new_hashers(meta["checksums"])
        with open(dest, "r+b" if offset else "wb", buffering=0) as f:
            if offset:
                transfer.hash_prefix(f, offset, hashers)
                f.seek(offset)
                f.truncate()
            _write_meta(dest, meta)
            received = transfer.receive(opened, f, hashers, offset, show, desc or dest.name)
    finally:
        opened.close()
    size = offset + received
    if opened.length is not None and received < opened.length:
        raise Transient(f"the connection closed after {size} of {offset + opened.length} bytes")
    if opened.total is not None and size < opened.total:
        raise Transient(f"the server sent {size} of {opened.total} bytes")
    return _verified(dest, url, opened.url, meta, hashers, size, expected_sha256, expected_size)


def _verified(dest: Path, url: str, final_url: str, meta: dict, hashers: dict, size: int,
              expected_sha256: Optional[str], expected_size: Optional[int]) -> FetchResult:
    sha256 = transfer.verify(url, meta, hashers, size, expected_sha256, expected_size)
    _meta_path(dest).unlink(missing_ok=True)
    logger.debug("Fetched %s (%d bytes, sha256 %s)", url, size, sha256)
    return FetchResult(path=dest, size=size, sha256=sha256, etag=meta.get("etag"), url=final_url)


def _verify_complete(dest: Path, url: str, meta: dict, expected_sha256: Optional[str],
                     expected_size: Optional[int]) -> FetchResult:
    """A prefix that is already the whole object (the last process died before verifying)."""
    hashers = transfer.new_hashers(meta.get("checksums", {}))
    size = _size_of(dest)
    with open(dest, "rb") as f:
        transfer.hash_prefix(f, size, hashers)
    return _verified(dest, url, url, meta, hashers, size, expected_sha256, expected_size)


# ----------------------------------------------------------------------------------------------
# The sidecar: what makes a prefix resumable across processes


def _meta_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".meta.json")


def _write_meta(dest: Path, meta: dict) -> None:
    path = _meta_path(dest)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp, path)


def _resume_point(dest: Path, url: str) -> Tuple[int, Optional[dict]]:
    """(bytes to keep, sidecar) -- (0, None) unless dest is a prefix we can pin to a validator."""
    size = _size_of(dest)
    if not size:
        return 0, None
    try:
        meta = json.loads(_meta_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = None
    usable = (isinstance(meta, dict) and meta.get("url") == url and meta.get("resumable")
              and _validator(meta) is not None
              and (meta.get("total") is None or size <= meta["total"]))
    if not usable:
        logger.debug("Not resuming %s: no usable record of where its %d bytes came from", dest, size)
        return 0, None
    logger.info("Resuming %s at byte %d", url, size)
    return size, meta


def _validator(meta: Optional[dict]) -> Optional[str]:
    """A strong ETag, else Last-Modified: what If-Range / IfMatch pins the prefix to."""
    if not meta:
        return None
    etag = meta.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return meta.get("last_modified")


def discard(dest: Path) -> None:
    """Remove a partial download and its resume record (either may be missing)."""
    dest.unlink(missing_ok=True)
    _meta_path(dest).unlink(missing_ok=True)


def _size_of(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


# ----------------------------------------------------------------------------------------------
# Fetchers, one per scheme (see fetcher.py for what each hands back)


def _fetcher_for(url: str, timeout: Timeout):
    scheme = scheme_of(url)
    if scheme in ("http", "https"):
        return HttpFetcher(timeout)
    if scheme == "s3":
        return S3Fetcher(timeout)
    return _FileFetcher()


class _FileFetcher:
    """file:// and plain paths: a verified copy (no resume: it is local)."""

    def close(self) -> None:
        pass

    def head(self, url: str) -> RemoteInfo:
        path = self._existing(url)
        return RemoteInfo(size=path.stat().st_size, etag=None, url=url)

    def open(self, url: str, offset: int, validator: Optional[str]) -> Opened:
        path = self._existing(url)
        f = open(path, "rb")
        size = os.fstat(f.fileno()).st_size

        def read(n: int) -> bytes:
            return f.read(n)

        return Opened(url=url, start=0, total=size, length=size, etag=None, last_modified=None,
                      checksums={}, read=read, close=f.close, resumable=False)

    @staticmethod
    def _existing(url: str) -> Path:
        path = local_path(url)
        if not path.is_file():
            raise EntryNotFoundError(
                f"{url}: no such file ({path}). Check the path; a folder is not a downloadable file.")
        return path
