"""A response body -> a file, hashed on the way, then checked against what was stated.

Verification happens while receiving (no second pass): SHA-256 always, plus the server's CRC32C
from ``x-goog-hash`` (or its MD5 when that is all it gives, or a cloud store's single-part ETag,
which is an MD5), plus the length. MD5 is computed only when no CRC32C is offered: it costs as
much as the transfer itself.

Speed: the body is read in 4 MiB blocks and written in 32 KiB calls (small page-cache folios:
see ``_write_all``) while a worker thread hashes the previous blocks (hashlib and crc32c release
the GIL), so hashing costs no wall time on 2+ cores.
"""
from __future__ import annotations

import base64
import errno
import hashlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Mapping, Optional

from .errors import InsufficientSpaceError, IntegrityError
from .fetcher import Opened, Restart

CHUNK_SIZE = 4 << 20        # bytes per read; large blocks keep Python's per-call cost negligible
_IN_FLIGHT = 4              # blocks received but not yet hashed (memory: 4 x 4 MiB)
_WRITE_SIZE = 32 << 10      # bytes per write() call: see _write_all


def receive(opened: Opened, f, hashers: Dict[str, object], offset: int, show: bool,
            desc: str) -> int:
    """Read the body block by block and write each block here, as curl does, while a worker
    thread hashes it (hashlib and crc32c release the GIL): receiving plus writing and hashing
    cost about the same, so on two cores the hashes add no wall time. Returns the bytes read."""
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


def new_hashers(checksums: Mapping[str, str]) -> Dict[str, object]:
    """sha256 always; the server's CRC32C when offered, else its MD5 (slow: only as a last resort)."""
    import crc32c

    out: Dict[str, object] = {"sha256": hashlib.sha256()}
    if "crc32c" in checksums:
        out["crc32c"] = crc32c.CRC32CHash()
    elif "md5" in checksums:
        out["md5"] = hashlib.md5()
    return out


def hash_prefix(f, offset: int, hashers: Dict[str, object]) -> None:
    """Feed the first `offset` bytes of `f` to every hasher (a resumed prefix, or a whole file)."""
    f.seek(0)
    left = offset
    while left:
        block = f.read(min(CHUNK_SIZE, left))
        if not block:
            raise Restart("the partial file shrank while being read")
        for h in hashers.values():
            h.update(block)
        left -= len(block)


def verify(url: str, meta: Mapping, hashers: Dict[str, object], size: int,
           expected_sha256: Optional[str], expected_size: Optional[int]) -> str:
    """The SHA-256 (hex) of a received object, after checking its size and checksums against
    what the server stated (``meta``: total, checksums) and what the caller expects; a mismatch
    is an IntegrityError (the caller deletes the file)."""
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
    return sha256


def _progress_bar(show: bool, total: Optional[int], initial: int, desc: str):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
                desc=desc, leave=False, dynamic_ncols=True)
