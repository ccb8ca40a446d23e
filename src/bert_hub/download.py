"""Transport: bytes at a URL -> a verified file at a path the caller chose.

One fetcher per scheme, chosen by prefix: ``http(s)://`` (requests), ``s3://`` (boto3),
``file://`` and plain paths; any other scheme fails with the URL quoted (the registry turns its
``package://`` pointers into ``file://`` URLs first: ``registry.resolve_url``). ``fetch``
streams into ``dest`` and never renames it: publishing is the cache's job. It guarantees:

- Resume. ``dest`` may hold a prefix from an interrupted call or process; its sidecar
  ``<dest>.meta.json`` records the URL, the ETag / Last-Modified and the server's checksums.
  The next call asks for ``Range: bytes=<size>-`` pinned with ``If-Range``; only a 206 whose
  ``Content-Range`` starts there is appended, a 200 restarts from zero.
- Verification while receiving (no second pass): SHA-256 always, plus the server's CRC32C from
  ``x-goog-hash`` (or its MD5 when that is all it gives, or an S3/GCS single-part ETag, which is
  an MD5), plus the length (Content-Range, ``x-goog-stored-content-length``, Content-Length).
  MD5 is computed only when no CRC32C is offered: it costs as much as the transfer itself.
  On a mismatch ``dest`` and its sidecar are deleted, the download is retried once from zero,
  then ``IntegrityError``.
- Bounded retries with exponential backoff on connection errors, resets, stalls (read timeout),
  truncated bodies, 408/429/5xx (honouring ``Retry-After``, capped). 404/403 fail at once.
- Speed: the response is read in 4 MiB blocks and written in 32 KiB calls (small page-cache
  folios: see ``_write_all``) while a worker thread hashes the previous blocks (hashlib and
  crc32c release the GIL), so hashing costs no wall time on 2+ cores.
"""
from __future__ import annotations

import base64
import binascii
import email.utils
import errno
import hashlib
import http.client
import json
import logging
import os
import random
import re
import sys
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

from . import env
from .errors import (
    DownloadError,
    EntryNotFoundError,
    InsufficientSpaceError,
    IntegrityError,
    UnsupportedURLError,
)

logger = logging.getLogger(__name__)

CHUNK_SIZE = 4 << 20        # bytes per read; large blocks keep Python's per-call cost negligible
_IN_FLIGHT = 4              # blocks received but not yet hashed (memory: 4 x 4 MiB)
_WRITE_SIZE = 32 << 10      # bytes per write() call: see _write_all
_BACKOFF_CAP = 30.0         # seconds, the longest pause between two attempts
_RETRY_AFTER_CAP = 60.0     # seconds, the longest Retry-After we honour
_INTEGRITY_RETRIES = 1      # fresh downloads after a checksum mismatch before giving up
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_HEX32 = re.compile(r"^[0-9a-f]{32}$")

Timeout = Union[float, Tuple[float, float]]


@dataclass(frozen=True)
class FetchResult:
    path: Path              # == dest, now holding the complete, verified object
    size: int
    sha256: str             # hex
    etag: Optional[str]
    url: str                # where the bytes came from, after redirects


@dataclass(frozen=True)
class RemoteInfo:
    size: Optional[int]
    etag: Optional[str]
    url: str
    last_modified: Optional[str] = None
    checksums: Mapping[str, str] = field(default_factory=dict)  # "crc32c"/"md5" -> base64
    accept_ranges: bool = False


# ----------------------------------------------------------------------------------------------
# Control flow between a fetcher and the retry loop


class _Transient(Exception):
    """A failure worth another attempt (resuming where the file stands)."""

    def __init__(self, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class _Restart(_Transient):
    """The partial file cannot be continued (object changed, bad range): start from zero."""


class _RangeNotSatisfiable(Exception):
    """416: the server has nothing past our prefix; `total` is its size when it says so."""

    def __init__(self, total: Optional[int]):
        super().__init__(total)
        self.total = total


@dataclass
class _Opened:
    """One response being read: where its body starts and what it says about the object."""

    url: str
    start: int                          # offset of the first body byte within the object
    total: Optional[int]                # size of the whole object, when known
    length: Optional[int]               # body bytes this response promises
    etag: Optional[str]
    last_modified: Optional[str]
    checksums: Dict[str, str]           # "crc32c" / "md5" -> base64 digest of the whole object
    read: Callable[[int], bytes]        # up to n bytes; b"" at the end; raises _Transient
    close: Callable[[], None]
    resumable: bool = True


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
    show = _progress_enabled(progress)
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
            except _Transient as exc:
                if isinstance(exc, _Restart):
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
    except _RangeNotSatisfiable as exc:
        if meta is not None and exc.total is not None and exc.total == offset == meta.get("total"):
            logger.debug("%s is already complete in %s; verifying it", url, dest)
            return _verify_complete(dest, url, meta, expected_sha256, expected_size)
        raise _Restart(f"the server cannot continue from byte {offset} (HTTP 416)") from None
    try:
        if opened.start != offset:
            if opened.start != 0:
                raise _Restart(f"asked for bytes {offset}- but the server sent bytes {opened.start}-")
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
        hashers = _hashers(meta["checksums"])
        with open(dest, "r+b" if offset else "wb", buffering=0) as f:
            if offset:
                _hash_prefix(f, offset, hashers)
                f.seek(offset)
                f.truncate()
            _write_meta(dest, meta)
            received = _receive(opened, f, hashers, offset, show, desc or dest.name)
    finally:
        opened.close()
    size = offset + received
    if opened.length is not None and received < opened.length:
        raise _Transient(f"the connection closed after {size} of {offset + opened.length} bytes")
    if opened.total is not None and size < opened.total:
        raise _Transient(f"the server sent {size} of {opened.total} bytes")
    return _verify(dest, url, opened.url, meta, hashers, size, expected_sha256, expected_size)


def _receive(opened: _Opened, f, hashers: Dict[str, object], offset: int, show: bool,
             desc: str) -> int:
    """Read the body block by block and write each block here, as curl does, while a worker
    thread hashes it (hashlib and crc32c release the GIL): receiving plus writing and hashing
    cost about the same, so on two cores the hashes add no wall time."""
    bar = _progress_bar(show, opened.total, offset, desc)
    hashing = _Hashing(hashers)
    received = 0
    try:
        while True:
            block = opened.read(CHUNK_SIZE)
            if not block:
                break
            hashing.push(block)
            _write_all(f, block)
            received += len(block)
            if bar is not None:
                bar.update(len(block))
    finally:
        hashing.close()  # every received block is hashed (and written) before we return or raise
        if bar is not None:
            bar.close()
    return received


class _Hashing:
    """Feeds blocks, in order, to every hasher on one worker thread; at most _IN_FLIGHT blocks
    wait, so memory stays bounded when hashing falls behind."""

    def __init__(self, hashers: Dict[str, object]):
        self._updates = [h.update for h in hashers.values()]
        self._pool = ThreadPoolExecutor(1)  # one worker: blocks are hashed in order
        self._pending: deque = deque()

    def _update(self, block: bytes) -> None:
        for update in self._updates:
            update(block)

    def push(self, block: bytes) -> None:
        self._pending.append(self._pool.submit(self._update, block))
        while len(self._pending) > _IN_FLIGHT:
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)


def _write_all(f, block: bytes) -> None:
    """Write in small pieces, as curl does (16 KiB). Linux 6.x sizes the page-cache folios of
    a file to each write() call; large folios come from high-order free memory, which a VM with
    free page reporting may have handed back to its host, so touching them first stalls. On
    such a machine, once freed memory had been handed back, fetching 400 MB took 0.6-0.8 s with
    4 MiB write calls, a median 0.62 s with 64 KiB ones and a steady 0.22-0.31 s with 32 KiB
    ones (8 KiB: more calls, 0.34 s). docs/benchmarks.md has the figures."""
    view = memoryview(block)
    try:
        for start in range(0, len(view), _WRITE_SIZE):
            piece = view[start:start + _WRITE_SIZE]
            while piece:
                piece = piece[f.write(piece):]
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InsufficientSpaceError(
                f"The disk holding {f.name} is full. Free some space (or point BERT_HUB_CACHE "
                f"elsewhere) and run again: the download resumes where it stopped.") from None
        raise


def _hashers(checksums: Mapping[str, str]) -> Dict[str, object]:
    """sha256 always; the server's CRC32C when offered, else its MD5 (slow: only as a last resort)."""
    import crc32c

    hashers: Dict[str, object] = {"sha256": hashlib.sha256()}
    if "crc32c" in checksums:
        hashers["crc32c"] = crc32c.CRC32CHash()
    elif "md5" in checksums:
        hashers["md5"] = hashlib.md5()
    return hashers


def _hash_prefix(f, offset: int, hashers: Dict[str, object]) -> None:
    f.seek(0)
    left = offset
    while left:
        block = f.read(min(CHUNK_SIZE, left))
        if not block:
            raise _Restart("the partial file shrank while being read")
        for h in hashers.values():
            h.update(block)
        left -= len(block)


def _verify(dest: Path, url: str, final_url: str, meta: dict, hashers: Dict[str, object],
            size: int, expected_sha256: Optional[str], expected_size: Optional[int]) -> FetchResult:
    total = meta.get("total")
    if total is not None and size != total:
        raise IntegrityError(
            f"{url}: received {size} bytes, but the server said the object has {total}. The "
            f"file was deleted; run again, and check the mirror (BERT_HUB_ENDPOINT) if it persists.")
    if expected_size is not None and size != expected_size:
        raise IntegrityError(
            f"{url}: received {size} bytes, expected {expected_size}. The file was deleted; "
            f"check the URL and BERT_HUB_ENDPOINT.")
    for name, want in meta.get("checksums", {}).items():
        if name in hashers:
            got = base64.b64encode(hashers[name].digest()).decode("ascii")
            if got != want:
                raise IntegrityError(
                    f"{url}: the received bytes have {name} {got}, but the server states {want} "
                    f"(x-goog-hash / ETag): the transfer was corrupted. The file was deleted; "
                    f"run again.")
    sha256 = hashers["sha256"].hexdigest()
    if expected_sha256 is not None and sha256 != expected_sha256:
        raise IntegrityError(
            f"{url}: SHA-256 {sha256} does not match the expected {expected_sha256}. The file was "
            f"deleted. Run again; if it persists, the mirror (BERT_HUB_ENDPOINT) or the registry "
            f"entry is wrong.")
    _meta_path(dest).unlink(missing_ok=True)
    logger.debug("Fetched %s (%d bytes, sha256 %s)", url, size, sha256)
    return FetchResult(path=dest, size=size, sha256=sha256, etag=meta.get("etag"), url=final_url)


def _verify_complete(dest: Path, url: str, meta: dict, expected_sha256: Optional[str],
                     expected_size: Optional[int]) -> FetchResult:
    """A prefix that is already the whole object (the last process died before verifying)."""
    hashers = _hashers(meta.get("checksums", {}))
    size = _size_of(dest)
    with open(dest, "rb") as f:
        _hash_prefix(f, size, hashers)
    return _verify(dest, url, url, meta, hashers, size, expected_sha256, expected_size)


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
# Fetchers, one per scheme


def _fetcher_for(url: str, timeout: Timeout):
    scheme = scheme_of(url)
    if scheme in ("http", "https"):
        return _HttpFetcher(timeout)
    if scheme == "s3":
        return _S3Fetcher(timeout)
    return _FileFetcher()


def _user_agent() -> str:
    from . import __version__

    return f"bert_hub/{__version__} python/{sys.version_info[0]}.{sys.version_info[1]}"


class _HttpFetcher:
    """requests with a Session: proxies and CA bundle from the environment, redirects followed."""

    def __init__(self, timeout: Timeout):
        import requests

        self._requests = requests
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = True   # HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, .netrc
        self.session.headers.update({"User-Agent": _user_agent(), "Accept-Encoding": "identity"})

    def close(self) -> None:
        self.session.close()

    def head(self, url: str) -> RemoteInfo:
        resp = self._request("HEAD", url, {})
        resp.close()
        self._check_status(resp, url)
        size, checksums = _object_size(resp.headers), _goog_checksums(resp.headers)
        return RemoteInfo(size=size, etag=resp.headers.get("ETag"), url=resp.url,
                          last_modified=resp.headers.get("Last-Modified"), checksums=checksums,
                          accept_ranges=resp.headers.get("Accept-Ranges", "").lower() == "bytes")

    def open(self, url: str, offset: int, validator: Optional[str]) -> _Opened:
        headers = {"Range": f"bytes={offset}-", "If-Range": validator} if offset else {}
        resp = self._request("GET", url, headers)
        if resp.status_code == 416:
            resp.close()
            raise _RangeNotSatisfiable(_content_range_total(resp.headers.get("Content-Range")))
        self._check_status(resp, url)
        h = resp.headers
        encoded = h.get("Content-Encoding", "identity").lower() not in ("identity", "")
        length = None if encoded else _int_or_none(h.get("Content-Length"))
        if resp.status_code == 206:
            start, total = _parse_content_range(h.get("Content-Range"))
            if start is None:
                resp.close()
                raise _Restart(f"a 206 answer without a usable Content-Range ({h.get('Content-Range')!r})")
        elif resp.status_code == 200:
            start, total = 0, (None if encoded else _object_size(h))
        else:
            resp.close()
            raise DownloadError(f"{url} answered HTTP {resp.status_code} {resp.reason}; expected 200.")
        checksums = {} if encoded else _goog_checksums(h)
        if not checksums and not encoded and _etag_is_md5(h):
            checksums = {"md5": base64.b64encode(bytes.fromhex(h["ETag"].strip('"'))).decode()}
        raw = resp.raw

        def read(n: int) -> bytes:
            try:
                return raw.read(n, decode_content=encoded)
            except (self._requests.RequestException, http.client.HTTPException, OSError,
                    _urllib3_errors()) as exc:
                raise _Transient(_describe(exc)) from None

        return _Opened(url=resp.url, start=start, total=total, length=length,
                       etag=h.get("ETag"), last_modified=h.get("Last-Modified"),
                       checksums=checksums, read=read, close=resp.close, resumable=not encoded)

    def _request(self, method: str, url: str, headers: Dict[str, str]):
        requests = self._requests
        try:
            return self.session.request(method, url, headers=headers, stream=True,
                                        timeout=self.timeout, allow_redirects=True)
        except requests.exceptions.SSLError as exc:
            raise DownloadError(
                f"TLS error talking to {url}: {_describe(exc)}. If you are behind a proxy with its "
                f"own certificate, point REQUESTS_CA_BUNDLE at its CA bundle.") from None
        except requests.exceptions.InvalidURL as exc:
            raise UnsupportedURLError(f"Invalid URL {url!r}: {exc}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise _Transient(_describe(exc)) from None
        except requests.RequestException as exc:  # too many redirects, a bad header...
            raise DownloadError(f"Could not download {url}: {_describe(exc)}") from None

    @staticmethod
    def _check_status(resp, url: str) -> None:
        status = resp.status_code
        if status < 400:
            return
        resp.close()
        if status in (404, 410):
            raise DownloadError(
                f"{url} was not found (HTTP {status}). Check the model name or URL; if you use a "
                f"mirror, check that BERT_HUB_ENDPOINT points at one that holds this file.")
        if status in (401, 403):
            raise DownloadError(
                f"Access to {url} was denied (HTTP {status}). Check the URL, your credentials or "
                f"proxy, and BERT_HUB_ENDPOINT if you use a mirror.")
        if status in _RETRY_STATUSES:
            raise _Transient(f"HTTP {status} {resp.reason}", _retry_after(resp.headers.get("Retry-After")))
        raise DownloadError(f"{url} answered HTTP {status} {resp.reason}.")


def _urllib3_errors():
    import urllib3.exceptions

    return urllib3.exceptions.HTTPError


def _describe(exc: BaseException) -> str:
    """A one-line reason: the innermost message of requests' and urllib3's nested errors."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    text = text or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


def _int_or_none(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _object_size(headers) -> Optional[int]:
    """The stored object's size: GCS says it outright; else the Content-Length of a 200."""
    stored = _int_or_none(headers.get("x-goog-stored-content-length"))
    return stored if stored is not None else _int_or_none(headers.get("Content-Length"))


def _parse_content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """'bytes 100-199/1000' -> (100, 1000); total None for '/*'."""
    match = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if match is None:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def _content_range_total(value: Optional[str]) -> Optional[int]:
    match = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", value or "")
    return int(match.group(1)) if match else None


def _goog_checksums(headers) -> Dict[str, str]:
    """x-goog-hash: crc32c=<b64>, md5=<b64> (one header or several) -> {"crc32c": b64, "md5": b64}."""
    out: Dict[str, str] = {}
    for item in (headers.get("x-goog-hash") or "").split(","):
        name, _, value = item.strip().partition("=")
        if name in ("crc32c", "md5") and value:
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                continue
            out[name] = value
    return out


def _etag_is_md5(headers) -> bool:
    """S3 and GCS document the ETag of a single-part, unencrypted object as its MD5 in hex;
    other servers' ETags are opaque, so only trust it when the server is one of those."""
    etag = (headers.get("ETag") or "").strip('"')
    cloud = any(k.lower().startswith(("x-amz-", "x-goog-")) for k in headers.keys())
    return cloud and bool(_HEX32.match(etag))


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After in seconds (a number or an HTTP date), capped; None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP)


class _S3Fetcher:
    """boto3: credentials from the usual chain, anonymous (unsigned) when there are none,
    AWS_ENDPOINT_URL(_S3) honoured (for MinIO, moto, private endpoints)."""

    def __init__(self, timeout: Timeout):
        import boto3
        import botocore
        from botocore.config import Config

        self._botocore = botocore
        connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        session = boto3.session.Session()
        config = Config(connect_timeout=connect, read_timeout=read,
                        retries={"max_attempts": 1, "mode": "standard"},  # our loop retries
                        user_agent_extra=_user_agent())
        self.anonymous = session.get_credentials() is None
        if self.anonymous:
            config = config.merge(Config(signature_version=botocore.UNSIGNED))
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
        self.client = session.client("s3", endpoint_url=endpoint, config=config)

    def close(self) -> None:
        self.client.close()

    def head(self, url: str) -> RemoteInfo:
        bucket, key = _split_s3(url)
        resp = self._call(url, lambda: self.client.head_object(Bucket=bucket, Key=key))
        return RemoteInfo(size=resp.get("ContentLength"), etag=resp.get("ETag"), url=url,
                          last_modified=str(resp.get("LastModified")), accept_ranges=True,
                          checksums=_s3_checksums(resp.get("ETag")))

    def open(self, url: str, offset: int, validator: Optional[str]) -> _Opened:
        bucket, key = _split_s3(url)
        extra = {"Range": f"bytes={offset}-", "IfMatch": validator} if offset else {}
        resp = self._call(url, lambda: self.client.get_object(Bucket=bucket, Key=key, **extra))
        body = resp["Body"]
        if offset:
            start, total = _parse_content_range(resp.get("ContentRange"))
            if start is None:
                body.close()
                raise _Restart(f"a ranged answer without a usable Content-Range "
                               f"({resp.get('ContentRange')!r})")
        else:
            start, total = 0, resp.get("ContentLength")
        bc = self._botocore.exceptions
        read_errors = (bc.BotoCoreError, _urllib3_errors(), http.client.HTTPException, OSError)

        def read(n: int) -> bytes:
            try:
                return body.read(n)
            except read_errors as exc:
                raise _Transient(_describe(exc)) from None

        return _Opened(url=url, start=start, total=total, length=resp.get("ContentLength"),
                       etag=resp.get("ETag"), last_modified=None,
                       checksums=_s3_checksums(resp.get("ETag")), read=read, close=body.close)

    def _call(self, url: str, call):
        bc = self._botocore.exceptions
        try:
            return call()
        except bc.ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if code in ("NoSuchKey", "NoSuchBucket", "404", "NotFound") or status == 404:
                raise DownloadError(
                    f"{url} was not found ({code or status}). Check the bucket and key, and "
                    f"AWS_ENDPOINT_URL if you use a private S3 endpoint.") from None
            denied = ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch")
            if code in denied or status == 403:
                how = ("no AWS credentials were found, so the request was anonymous; configure "
                       "credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, ...)" if self.anonymous else
                       "check that your AWS credentials may read it")
                raise DownloadError(f"Access to {url} was denied ({code or status}): {how}.") from None
            if code in ("PreconditionFailed", "412") or status == 412:
                raise _Restart("the object changed since the partial download began") from None
            if code in ("InvalidRange", "416") or status == 416:
                raise _RangeNotSatisfiable(None) from None
            if status in _RETRY_STATUSES or code in ("SlowDown", "InternalError", "RequestTimeout"):
                raise _Transient(f"S3 {code or status}") from None
            raise DownloadError(f"S3 refused {url}: {code} {err.get('Message', '')}".strip()) from None
        except bc.NoCredentialsError:  # only when a profile is half configured
            raise DownloadError(f"AWS credentials for {url} are incomplete; fix or unset them.") from None
        except (bc.BotoCoreError, _urllib3_errors(), OSError) as exc:
            raise _Transient(_describe(exc)) from None


def _split_s3(url: str) -> Tuple[str, str]:
    parts = urlsplit(url)
    key = unquote(parts.path).lstrip("/")
    if not parts.netloc or not key:
        raise UnsupportedURLError(f"Malformed S3 URL {url!r}: expected s3://<bucket>/<key>.")
    return parts.netloc, key


def _s3_checksums(etag: Optional[str]) -> Dict[str, str]:
    """A single-part S3 object's ETag is its MD5; a multipart one ('<hex>-<parts>') is not."""
    value = (etag or "").strip('"')
    if _HEX32.match(value):
        return {"md5": base64.b64encode(bytes.fromhex(value)).decode("ascii")}
    return {}


class _FileFetcher:
    """file:// and plain paths: a verified copy (no resume: it is local)."""

    def close(self) -> None:
        pass

    def head(self, url: str) -> RemoteInfo:
        path = self._existing(url)
        return RemoteInfo(size=path.stat().st_size, etag=None, url=url)

    def open(self, url: str, offset: int, validator: Optional[str]) -> _Opened:
        path = self._existing(url)
        f = open(path, "rb")
        size = os.fstat(f.fileno()).st_size

        def read(n: int) -> bytes:
            return f.read(n)

        return _Opened(url=url, start=0, total=size, length=size, etag=None, last_modified=None,
                       checksums={}, read=read, close=f.close, resumable=False)

    @staticmethod
    def _existing(url: str) -> Path:
        path = local_path(url)
        if not path.is_file():
            raise EntryNotFoundError(
                f"{url}: no such file ({path}). Check the path; a folder is not a downloadable file.")
        return path


# ----------------------------------------------------------------------------------------------
# Progress


def _progress_enabled(progress: Optional[bool]) -> bool:
    if progress is not None:
        return bool(progress)
    if env.flag("BERT_HUB_DISABLE_PROGRESS"):
        return False
    return _stderr_is_tty() or _in_notebook()


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _in_notebook() -> bool:
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _progress_bar(show: bool, total: Optional[int], initial: int, desc: str):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, leave=False, dynamic_ncols=True)
