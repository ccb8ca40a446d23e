"""A gzip file's decompressed bytes, with every member's CRC-32 and length checked.

Python's ``gzip`` module feeds zlib 8 KB at a time and checks a member's trailer only when read
to it, and ``tarfile`` stops reading at the tar's end-of-archive blocks: a .tar.gz with a wrong
CRC-32 extracts silently. This reader lets zlib check every trailer and turns what zlib says
into an ``IntegrityError`` that names the file.
"""
from __future__ import annotations

import zlib
from pathlib import Path

from .errors import IntegrityError

CHUNK = 1 << 20     # compressed bytes per read, and decompressed bytes per step at most

_GZIP_ERRORS = {   # zlib's words -> ours
    "incorrect data check": "its gzip CRC-32 does not match its data",
    "incorrect length check": "its gzip length field does not match its data",
    "incorrect header check": "what follows its gzip stream is not gzip",
}


class GzipReader:
    """A gzip file's members, decompressed by zlib 1 MB at a time; zlib checks each member's
    CRC-32 and length. Members may follow each other, and zeros may pad the end, as gzip allows."""

    def __init__(self, path: Path):
        self.path, self.f = path, open(path, "rb")
        self.inflate, self.tail, self.done = zlib.decompressobj(31), b"", False
        self.out, self.pos = b"", 0

    def read(self, n: int) -> bytes:
        parts = []
        while n > 0:
            if self.pos == len(self.out):
                self.out, self.pos = self._inflate(), 0
                if not self.out:
                    break
            piece = self.out[self.pos:self.pos + n]
            self.pos += len(piece)
            n -= len(piece)
            parts.append(piece)
        return b"".join(parts)

    def _inflate(self) -> bytes:
        """The next (at most 1 MB of) decompressed bytes; b"" at the end of the file."""
        while not self.done:
            if not self.tail:
                self.tail = self.f.read(CHUNK)
                if not self.tail:
                    if self.inflate is not None:
                        raise IntegrityError(f"{self.path} is truncated: its gzip stream ended "
                                             f"before its end-of-stream marker. Download it again.")
                    self.done = True
                    break
            if self.inflate is None:   # between members: zeros, or the next member
                self.tail = self.tail.lstrip(b"\0")
                if self.tail:
                    self.inflate = zlib.decompressobj(31)
                continue
            try:
                data = self.inflate.decompress(self.tail, CHUNK)
            except zlib.error as exc:
                reason = str(exc).rsplit(": ", 1)[-1]
                raise IntegrityError(f"{self.path} is corrupt: {_GZIP_ERRORS.get(reason, reason)}. "
                                     f"Download it again (or re-create it).") from None
            self.tail = self.inflate.unconsumed_tail
            if self.inflate.eof:
                self.tail, self.inflate = self.inflate.unused_data + self.tail, None
            if data:
                return data
        return b""

    def close(self) -> None:
        self.f.close()
