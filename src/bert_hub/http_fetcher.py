"""The ``http(s)://`` fetcher: requests with one Session, and what the answer's headers say.

Proxies, CA bundle and ``.netrc`` come from the environment; redirects are followed. A ranged
GET is pinned with ``If-Range``; the object's size and checksums come from Content-Range,
``x-goog-stored-content-length``, Content-Length, ``x-goog-hash`` and a cloud store's ETag.
404/403 fail at once; 408/429/5xx are transient (``Retry-After`` honoured, capped).
"""
from __future__ import annotations

import base64
import binascii
import email.utils
import http.client
import re
import time
from typing import Dict, Optional

from .errors import DownloadError, UnsupportedURLError
from .fetcher import (
    RETRY_STATUSES,
    Opened,
    RangeNotSatisfiable,
    RemoteInfo,
    Restart,
    Timeout,
    Transient,
    describe,
    etag_md5,
    parse_content_range,
    urllib3_errors,
    user_agent,
)

RETRY_AFTER_CAP = 60.0      # seconds, the longest Retry-After we honour


class HttpFetcher:
    """requests with a Session: proxies and CA bundle from the environment, redirects followed."""

    def __init__(self, timeout: Timeout):
        import requests

        self._requests = requests
        self.timeout = timeout
        self.session = requests.Session()
        self.session.trust_env = True   # HTTP(S)_PROXY, NO_PROXY, REQUESTS_CA_BUNDLE, .netrc
        self.session.headers.update({"User-Agent": user_agent(), "Accept-Encoding": "identity"})

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

    def open(self, url: str, offset: int, validator: Optional[str]) -> Opened:
        headers = {"Range": f"bytes={offset}-", "If-Range": validator} if offset else {}
        resp = self._request("GET", url, headers)
        if resp.status_code == 416:
            resp.close()
            raise RangeNotSatisfiable(_content_range_total(resp.headers.get("Content-Range")))
        self._check_status(resp, url)
        h = resp.headers
        encoded = h.get("Content-Encoding", "identity").lower() not in ("identity", "")
        length = None if encoded else _int_or_none(h.get("Content-Length"))
        if resp.status_code == 206:
            start, total = parse_content_range(h.get("Content-Range"))
            if start is None:
                resp.close()
                raise Restart(f"a 206 answer without a usable Content-Range ({h.get('Content-Range')!r})")
        elif resp.status_code == 200:
            start, total = 0, (None if encoded else _object_size(h))
        else:
            resp.close()
            raise DownloadError(f"{url} answered HTTP {resp.status_code} {resp.reason}; expected 200.")
        checksums = {} if encoded else _goog_checksums(h)
        if not checksums and not encoded and _from_cloud_store(h):
            checksums = etag_md5(h.get("ETag"))
        raw = resp.raw

        def read(n: int) -> bytes:
            try:
                return raw.read(n, decode_content=encoded)
            except (self._requests.RequestException, http.client.HTTPException, OSError,
                    urllib3_errors()) as exc:
                raise Transient(describe(exc)) from None

        return Opened(url=resp.url, start=start, total=total, length=length,
                      etag=h.get("ETag"), last_modified=h.get("Last-Modified"),
                      checksums=checksums, read=read, close=resp.close, resumable=not encoded)

    def _request(self, method: str, url: str, headers: Dict[str, str]):
        requests = self._requests
        try:
            return self.session.request(method, url, headers=headers, stream=True,
                                        timeout=self.timeout, allow_redirects=True)
        except requests.exceptions.SSLError as exc:
            raise DownloadError(
                f"TLS error talking to {url}: {describe(exc)}. If you are behind a proxy with its "
                f"own certificate, point REQUESTS_CA_BUNDLE at its CA bundle.") from None
        except requests.exceptions.InvalidURL as exc:
            raise UnsupportedURLError(f"Invalid URL {url!r}: {exc}") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Transient(describe(exc)) from None
        except requests.RequestException as exc:  # too many redirects, a bad header...
            raise DownloadError(f"Could not download {url}: {describe(exc)}") from None

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
        if status in RETRY_STATUSES:
            raise Transient(f"HTTP {status} {resp.reason}", retry_after(resp.headers.get("Retry-After")))
        raise DownloadError(f"{url} answered HTTP {status} {resp.reason}.")


def _int_or_none(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _object_size(headers) -> Optional[int]:
    """The stored object's size: GCS says it outright; else the Content-Length of a 200."""
    stored = _int_or_none(headers.get("x-goog-stored-content-length"))
    return stored if stored is not None else _int_or_none(headers.get("Content-Length"))


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


def _from_cloud_store(headers) -> bool:
    """S3 and GCS document the ETag of a single-part, unencrypted object as its MD5 in hex;
    other servers' ETags are opaque, so only trust it when the server is one of those."""
    return any(k.lower().startswith(("x-amz-", "x-goog-")) for k in headers.keys())


def retry_after(value: Optional[str]) -> Optional[float]:
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
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)
