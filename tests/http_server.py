"""A real HTTP file server on 127.0.0.1 for tests (and the download benchmark).

It serves bytes or files at given URL paths the way Google Cloud Storage does (strong ETag,
``x-goog-hash: crc32c=..., md5=...``, ``x-goog-stored-content-length``, byte ranges with 206 and
``Content-Range``), records every request, and injects faults on demand::

    with FileServer({"/bert_models/x.zip": data}) as server:
        server.add_faults("/bert_models/x.zip", Fault("reset", at=1000), Fault("status", status=500))
        fetch(server.url("/bert_models/x.zip"), dest)
        assert server.count("/bert_models/x.zip") == 3
        assert server.ranges("/bert_models/x.zip")[1] == "bytes=1000-"

Queued faults apply to the next GETs of a path, one per request, in order; ``always`` faults
apply to every GET. HEAD requests never consume a fault. Faults (``Fault.kind``):

- ``truncate``: send the full Content-Length, then only ``at`` bytes, then close.
- ``reset``: send ``at`` bytes, wait ``pause`` s, then abort the connection (TCP RST; the
  client loses whatever it had not read by then).
- ``stall``: send ``at`` bytes, then stop sending for ``seconds`` (or until the server stops).
- ``status``: answer ``status`` (e.g. 500, 429, 403) with ``Retry-After: retry_after`` if given.
- ``ignore_range``: answer 200 with the whole object even when a Range was asked for.
- ``bad_range``: answer a Range request with 206 but a Content-Range starting elsewhere.
- ``wrong_length``: claim ``length`` in Content-Length; send min(length, size) bytes and close.
- ``bad_hash``: send an ``x-goog-hash`` (crc32c and md5) that does not match the body.
- ``corrupt``: flip one byte of the body at ``at`` (headers stay those of the true object).

``goog_headers=False`` drops the ``x-goog-*`` headers, ``goog_hash=False`` only
``x-goog-hash`` (the ETag, an MD5, is then the only checksum), ``etag=False`` the ETag.
Requests in absolute form (the server used as an HTTP proxy) are served by path and recorded
with the host asked for. ``rate`` (bytes/s) throttles every body; ``redirect(src, dst)``
answers ``src`` with a 302 to ``dst``. Files given as ``Path`` with no fault and no throttle go
out with ``sendfile``, which is fast enough for throughput benchmarks.

As a pytest fixture: ``from http_server import file_server`` in a test module, then take
``file_server`` as an argument (an empty server; ``put`` what it should serve).
"""
from __future__ import annotations

import base64
import hashlib
import re
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Union
from urllib.parse import urlsplit

import crc32c
import pytest

_CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


@dataclass
class Fault:
    kind: str
    at: int = 0                   # byte offset (of the response body) where the fault strikes
    status: int = 500
    retry_after: Optional[str] = None
    seconds: float = 30.0         # how long a stall lasts (the server's stop ends it sooner)
    length: Optional[int] = None  # the Content-Length claimed by wrong_length
    pause: float = 0.0            # seconds between the last byte and a reset (lets it be read)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: Optional[str]
    if_range: Optional[str]
    user_agent: Optional[str]
    status: int
    proxied_host: Optional[str] = None  # the host asked for, when used as an HTTP proxy


class _Object:
    """One served object: its bytes (or file) and the headers GCS would send for it."""

    def __init__(self, content: Union[bytes, Path]):
        if isinstance(content, Path):
            self.path: Optional[Path] = content
            self.size = content.stat().st_size
            self.data: Optional[bytes] = None
            md5 = hashlib.md5()
            crc = 0
            with open(content, "rb") as f:
                for block in iter(lambda: f.read(1 << 22), b""):
                    md5.update(block)
                    crc = crc32c.crc32c(block, crc)
            self.md5 = md5.digest()
            self.crc = crc
        else:
            self.path, self.data, self.size = None, bytes(content), len(content)
            self.md5 = hashlib.md5(self.data).digest()
            self.crc = crc32c.crc32c(self.data)
        self.etag = f'"{self.md5.hex()}"'
        self.goog_hash = [f"crc32c={_b64(struct.pack('>I', self.crc))}", f"md5={_b64(self.md5)}"]
        self.last_modified = formatdate(time.time() - 3600, usegmt=True)

    def read(self, start: int, end: int) -> bytes:
        if self.data is not None:
            return self.data[start:end]
        with open(self.path, "rb") as f:
            f.seek(start)
            return f.read(end - start)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up (killed downloaders, read timeouts) are part of the tests: no traceback."""

    def handle_error(self, request, client_address) -> None:
        import sys
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class FileServer:
    """A threaded HTTP/1.1 server on an ephemeral loopback port; a context manager."""

    def __init__(self, files: Optional[Dict[str, Union[bytes, Path]]] = None, *,
                 goog_headers: bool = True, goog_hash: bool = True, etag: bool = True,
                 rate: Optional[float] = None):
        self.goog_headers = goog_headers
        self.goog_hash = goog_hash
        self.etag = etag
        self.rate = rate
        self.requests: List[Request] = []
        self._objects: Dict[str, _Object] = {}
        self._faults: Dict[str, List[Optional[Fault]]] = {}
        self._always: Dict[str, Fault] = {}
        self._redirects: Dict[str, str] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        for path, content in (files or {}).items():
            self.put(path, content)
        self._httpd = _QuietServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self._thread: Optional[threading.Thread] = None

    # -- setup ---------------------------------------------------------------------------------
    def put(self, path: str, content: Union[bytes, Path]) -> None:
        with self._lock:
            self._objects[path] = _Object(content)

    def add_faults(self, path: str, *faults: Optional[Fault]) -> None:
        """Queue faults for the next GETs of `path` (None: one normal answer)."""
        with self._lock:
            self._faults.setdefault(path, []).extend(faults)

    def always(self, path: str, fault: Optional[Fault]) -> None:
        with self._lock:
            if fault is None:
                self._always.pop(path, None)
            else:
                self._always[path] = fault

    def redirect(self, src: str, dst: str) -> None:
        with self._lock:
            self._redirects[src] = dst

    # -- inspection ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.endpoint + path

    def count(self, path: str, method: str = "GET") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path == path and r.method == method)

    def counts(self) -> Counter:
        with self._lock:
            return Counter((r.method, r.path) for r in self.requests)

    def ranges(self, path: str) -> List[Optional[str]]:
        """The Range header of each GET of `path`, in order (None: no Range)."""
        with self._lock:
            return [r.range for r in self.requests if r.path == path and r.method == "GET"]

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "FileServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-http-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FileServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- used by the handler -------------------------------------------------------------------
    def _next_fault(self, path: str) -> Optional[Fault]:
        with self._lock:
            queue = self._faults.get(path)
            if queue:
                return queue.pop(0)
            return self._always.get(path)

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bert-hub-test-server"

    def log_message(self, *args) -> None:  # quiet
        pass

    @property
    def owner(self) -> FileServer:
        return self.server.owner  # type: ignore[attr-defined]

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    proxied_host: Optional[str] = None

    def _record(self, status: int) -> None:
        h = self.headers
        self.owner._record(Request(self.command, self.path, h.get("Range"), h.get("If-Range"),
                                   h.get("User-Agent"), status, self.proxied_host))

    def _simple(self, status: int, message: str, extra: Optional[Dict[str, str]] = None) -> None:
        body = message.encode()
        self.send_response(status)
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        owner = self.owner
        if self.path.startswith(("http://", "https://")):  # absolute form: we are the proxy
            self.proxied_host = urlsplit(self.path).netloc
            self.path = urlsplit(self.path).path
        path = self.path
        if path in owner._redirects:
            self._record(302)
            return self._simple(302, "moved", {"Location": owner._redirects[path]})
        obj = owner._objects.get(path)
        if obj is None:
            self._record(404)
            return self._simple(404, "no such object")
        fault = None if head else owner._next_fault(path)
        kind = fault.kind if fault else None
        if kind == "status":
            self._record(fault.status)
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
            return self._simple(fault.status, f"injected {fault.status}", extra)

        start, end, status = 0, obj.size, 200
        want = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if want and kind != "ignore_range" and (if_range is None or if_range == obj.etag):
            match = _RANGE.match(want.strip())
            if match is None or int(match.group(1)) >= obj.size:
                self._record(416)
                return self._simple(416, "range not satisfiable", {"Content-Range": f"bytes */{obj.size}"})
            start = int(match.group(1))
            if match.group(2):
                end = min(int(match.group(2)) + 1, obj.size)
            status = 206
        self._record(status)

        self.send_response(status)
        length = end - start
        claimed = fault.length if kind == "wrong_length" and fault.length is not None else length
        self.send_header("Content-Length", str(claimed))
        self.send_header("Content-Type", "application/zip")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", obj.last_modified)
        if owner.etag:
            self.send_header("ETag", obj.etag)
        if owner.goog_headers:
            self.send_header("x-goog-stored-content-length", str(obj.size))
            if not owner.goog_hash:
                pass
            elif kind == "bad_hash":
                self.send_header("x-goog-hash", "crc32c=AAAAAA==")
                self.send_header("x-goog-hash", f"md5={_b64(bytes(16))}")
            else:
                for value in obj.goog_hash:
                    self.send_header("x-goog-hash", value)
        if status == 206:
            shown = start + 1 if kind == "bad_range" else start
            self.send_header("Content-Range", f"bytes {shown}-{end - 1}/{obj.size}")
        if kind in ("truncate", "reset", "wrong_length", "stall"):
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if head:
            return
        self.wfile.flush()

        if kind is None and owner.rate is None and obj.path is not None:
            with open(obj.path, "rb") as f:
                self.connection.sendfile(f, start, length)
            return
        stop_at = end
        if kind in ("truncate", "reset", "stall"):
            stop_at = min(start + fault.at, end)
        elif kind == "wrong_length":
            stop_at = min(start + claimed, end)
        self._send_body(obj, start, stop_at, fault)
        if kind == "stall":
            owner.stopping.wait(fault.seconds)
            self.close_connection = True
        elif kind == "reset":
            self.close_connection = True
            self.wfile.flush()
            owner.stopping.wait(fault.pause)  # a RST discards what the client has not read yet
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()  # with a zero linger: RST, not FIN
        elif kind == "truncate" or (kind == "wrong_length" and stop_at - start < claimed):
            self.close_connection = True

    def _send_body(self, obj: _Object, start: int, end: int, fault: Optional[Fault]) -> None:
        rate = self.owner.rate
        begun = time.monotonic()
        sent = 0
        pos = start
        while pos < end and not self.owner.stopping.is_set():
            block = obj.read(pos, min(pos + _CHUNK, end))
            if fault is not None and fault.kind == "corrupt" and pos <= start + fault.at < pos + len(block):
                i = start + fault.at - pos
                block = block[:i] + bytes([block[i] ^ 0xFF]) + block[i + 1:]
            try:
                self.wfile.write(block)
            except OSError:  # the client went away (e.g. killed): nothing more to send
                self.close_connection = True
                return
            pos += len(block)
            sent += len(block)
            if rate:
                ahead = sent / rate - (time.monotonic() - begun)
                if ahead > 0:
                    self.owner.stopping.wait(ahead)
        self.wfile.flush()


@pytest.fixture
def file_server():
    """An empty FileServer for one test: ``file_server.put(path, data)``, then use its URLs.

    Other test modules import it (``from http_server import file_server``) to use it."""
    with FileServer() as server:
        yield server
