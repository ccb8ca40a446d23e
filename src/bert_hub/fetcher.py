"""What a fetcher (one per URL scheme) hands the download loop, and what HTTP and S3 share.

A fetcher has ``head(url) -> RemoteInfo``, ``open(url, offset, validator) -> Opened`` and
``close()``. It never retries: it raises ``Transient`` for a failure worth another attempt,
``Restart`` when the partial file cannot be continued, ``RangeNotSatisfiable`` for a 416, and a
typed ``BertHubError`` for anything final (not found, denied, a bad URL); ``download`` decides.
"""
from __future__ import annotations

import base64
import re
import sys
from dataclasses import dataclass, field
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

Timeout = Union[float, Tuple[float, float]]   # seconds: one for both, or (connect, read)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class RemoteInfo:
    size: Optional[int]
    etag: Optional[str]
    url: str
    last_modified: Optional[str] = None
    checksums: Mapping[str, str] = field(default_factory=dict)  # "crc32c"/"md5" -> base64
    accept_ranges: bool = False


@dataclass
class Opened:
    """One response being read: where its body starts and what it says about the object."""

    url: str
    start: int                          # offset of the first body byte within the object
    total: Optional[int]                # size of the whole object, when known
    length: Optional[int]               # body bytes this response promises
    etag: Optional[str]
    last_modified: Optional[str]
    checksums: Dict[str, str]           # "crc32c" / "md5" -> base64 digest of the whole object
    read: Callable[[int], bytes]        # up to n bytes; b"" at the end; raises Transient
    close: Callable[[], None]
    resumable: bool = True


class Transient(Exception):
    """A failure worth another attempt (resuming where the file stands)."""

    def __init__(self, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.reason, self.retry_after = reason, retry_after


class Restart(Transient):
    """The partial file cannot be continued (object changed, bad range): start from zero."""


class RangeNotSatisfiable(Exception):
    """416: the server has nothing past our prefix; `total` is its size when it says so."""

    def __init__(self, total: Optional[int]):
        super().__init__(total)
        self.total = total


def user_agent() -> str:
    from . import __version__

    return f"bert_hub/{__version__} python/{sys.version_info[0]}.{sys.version_info[1]}"


def urllib3_errors():
    import urllib3.exceptions

    return urllib3.exceptions.HTTPError


def describe(exc: BaseException) -> str:
    """A one-line reason: the innermost message of requests' and urllib3's nested errors."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    text = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    text = text or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."


def parse_content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """'bytes 100-199/1000' -> (100, 1000); total None for '/*'."""
    match = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if match is None:
        return None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), total


def etag_md5(etag: Optional[str]) -> Dict[str, str]:
    """{"md5": base64} when `etag` is an MD5 in hex, else {}. S3 and GCS give a single-part,
    unencrypted object's MD5 as its ETag; a multipart one ('<hex>-<parts>') is not an MD5."""
    value = (etag or "").strip('"')
    if _HEX32.match(value):
        return {"md5": base64.b64encode(bytes.fromhex(value)).decode("ascii")}
    return {}
