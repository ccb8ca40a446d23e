"""Hostile archives for the cache tests and the seeded campaign (tests/fuzz/test_fuzz_archives.py).

Real archives of a Google-layout folder (the TensorFlow-written tests/data/tf_tiny) as zip, tar
and tar.gz, byte-level builders for what zipfile / tarfile refuse to write (empty names,
encrypted flags, unknown methods, sparse members, oversized extended headers...), and one
generator per hostile class: ``CLASSES[name](rng) -> Case``. No torch, no bert_hub imports: the
campaign's workers stay small.
"""
from __future__ import annotations

import bz2
import gzip
import io
import lzma
import random
import stat
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable, Dict, List, Optional

TF_TINY = Path(__file__).parent / "data" / "tf_tiny"
TOP = "uncased_L-2_H-16_A-2"


@dataclass
class Case:
    data: bytes
    suffix: str                        # ".zip", ".tar.gz", ... (the cache sniffs, not trusts)
    expect: str = "any"                # "ok", "error" (any typed), "any", or an error class name
    originals: Dict[str, bytes] = field(default_factory=dict)   # what a success must serve
    crc_protected: bool = False        # success may only serve bytes of `originals`
    exact: bool = False                # success must serve exactly `originals`
    note: str = ""


def google_files(with_meta: bool = False) -> Dict[str, bytes]:
    """The files of a Google release folder (the .meta graph is big and optional); a new dict
    each time, for the caller to change."""
    return dict(_google_files(with_meta))


@lru_cache(maxsize=None)
def _google_files(with_meta: bool):
    return tuple((p.name, p.read_bytes()) for p in sorted(TF_TINY.iterdir())
                 if with_meta or p.suffix != ".meta")


# ----------------------------------------------------------------------------------------------
# Real archives, written by the standard library as tools do


def zip_of(files: Dict[str, bytes], top: Optional[str] = TOP, method=zipfile.ZIP_DEFLATED,
           dirs: bool = False) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        if dirs and top:
            zf.writestr(zipfile.ZipInfo(f"{top}/"), b"")
        for name, data in files.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
    return buf.getvalue()


def tar_of(files: Dict[str, bytes], top: Optional[str] = TOP, compression: str = "gz",
           fmt: int = tarfile.PAX_FORMAT, dot: bool = False) -> bytes:
    """A tar (compression '', 'gz', 'bz2', 'xz'), names under `top` (or './' with dot=True)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=f"w:{compression}" if compression else "w", format=fmt) as tf:
        prefix = "./" if dot else ""
        if top:
            info = tarfile.TarInfo(prefix + top)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(prefix + (f"{top}/{name}" if top else name))
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def compress(data: bytes, compression: str) -> bytes:
    return {"": lambda d: d, "gz": lambda d: gzip.compress(d, mtime=0), "bz2": bz2.compress,
            "xz": lzma.compress}[compression](data)


_SUFFIX = {"": ".tar", "gz": ".tar.gz", "bz2": ".tar.bz2", "xz": ".tar.xz"}


# ----------------------------------------------------------------------------------------------
# Byte-level builders


def raw_zip(members: List[dict]) -> bytes:
    """A zip written field by field. Each member: name (bytes), data (bytes), and optionally
    method, flags, mode (st_mode), file_size / compress_size / crc overrides, payload (the bytes
    stored instead of data compressed with `method`)."""
    out, central = bytearray(), bytearray()
    for m in members:
        name, data, method = m["name"], m.get("data", b""), m.get("method", 0)
        payload = m.get("payload")
        if payload is None:
            payload = data if method != 8 else _deflate(data)
        crc = m.get("crc", zlib.crc32(data))
        csize, usize = m.get("compress_size", len(payload)), m.get("file_size", len(data))
        flags = m.get("flags", 0)
        offset = len(out)
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc,
                           csize & 0xFFFFFFFF, usize & 0xFFFFFFFF, len(name), 0) + name + payload
        central += struct.pack("<4s6H3L5HLL", b"PK\x01\x02", 0x031E, 20, flags, method, 0, 0x21,
                               crc, csize & 0xFFFFFFFF, usize & 0xFFFFFFFF, len(name), 0, 0, 0, 0,
                               (m.get("mode", stat.S_IFREG | 0o644) << 16) & 0xFFFFFFFF,
                               offset) + name
    start = len(out)
    out += central
    out += struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central),
                       start, 0)
    return bytes(out)


def _deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def tar_header(name: bytes, size: int = 0, type_: bytes = tarfile.REGTYPE, linkname: bytes = b"",
               mode: int = 0o644, size_field: Optional[bytes] = None, extra: Optional[dict] = None,
               gnu: bool = False) -> bytes:
    """One 512-byte header, checksum included; `size_field` overrides the 12 size bytes (e.g.
    base-256), `extra` patches {offset: bytes} before the checksum."""
    h = bytearray(512)
    h[0:len(name[:100])] = name[:100]
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field if size_field is not None else number_field(size)
    h[136:148] = b"%011o\0" % 1_600_000_000
    h[156:157] = type_
    h[157:157 + len(linkname[:100])] = linkname[:100]
    h[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    for offset, value in (extra or {}).items():
        h[offset:offset + len(value)] = value
    return fix_checksum(bytes(h))


def number_field(n: int) -> bytes:
    """A 12-byte numeric header field: octal, or GNU base-256 when it does not fit."""
    return b"%011o\0" % n if 0 <= n < 8 ** 11 else b"\x80" + n.to_bytes(11, "big")


def fix_checksum(header: bytes) -> bytes:
    h = bytearray(header[:512])
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def padded(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


END = b"\0" * 1024


def tar_members(files: Dict[str, bytes], top: Optional[str] = TOP) -> bytes:
    """Regular-file members (no end marker), for appending hostile members after them."""
    out = b""
    for name, data in files.items():
        path = f"{top}/{name}" if top else name
        out += tar_header(path.encode(), len(data)) + padded(data)
    return out


def sparse_member(name: bytes, realsize: int, stored: bytes = b"x" * 100) -> bytes:
    """An old GNU sparse member: `stored` bytes at the end of a `realsize`-byte file."""
    extra = {386: number_field(realsize - len(stored)), 398: number_field(len(stored)),
             483: number_field(realsize)}
    return tar_header(name, len(stored), tarfile.GNUTYPE_SPARSE, extra=extra, gnu=True) + padded(stored)


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n).encode()) + len(body) != n:
        n += 1
    return str(n).encode() + body


# ----------------------------------------------------------------------------------------------
# Mutations


def mutate(data: bytes, rng: random.Random, regions: Optional[List[range]] = None) -> bytes:
    """1-4 random edits: bit flips, byte sets, insertions, deletions, a truncation; positions
    drawn from `regions` (e.g. headers) when given."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not b:
            break
        if regions:
            region = rng.choice(regions)
            pos = min(rng.choice(region), len(b) - 1) if len(region) else rng.randrange(len(b))
        else:
            pos = rng.randrange(len(b))
        op = rng.random()
        if op < 0.45:
            b[pos] ^= 1 << rng.randrange(8)
        elif op < 0.75:
            b[pos] = rng.choice([0, 0xFF, 0x7F, 0x80, ord("/"), ord("."), ord("0"), rng.randrange(256)])
        elif op < 0.85:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op < 0.95:
            del b[pos:pos + rng.randint(1, 64)]
        else:
            del b[pos:]
    return bytes(b)


def zip_structure(data: bytes) -> List[range]:
    """Byte ranges of a zip's local headers and central directory."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        regions = [range(i.header_offset, i.header_offset + 30 + len(i.filename)) for i in zf.infolist()]
        directory = zf.start_dir
    return regions + [range(directory, len(data))]


def tar_structure(data: bytes) -> List[range]:
    """Byte ranges of a tar's headers."""
    regions, pos = [], 0
    while pos + 512 <= len(data):
        block = data[pos:pos + 512]
        if not block.strip(b"\0"):
            break
        regions.append(range(pos, pos + 512))
        try:
            size = int(block[124:136].strip(b"\0 ") or b"0", 8)
        except ValueError:
            break
        pos += 512 + size + (-size % 512)
    return regions or [range(len(data))]


def mutate_tar_headers(data: bytes, rng: random.Random) -> bytes:
    """Mutate header bytes, then fix each header's checksum, so tarfile believes the lie."""
    regions = tar_structure(data)
    out = bytearray(mutate(data, rng, regions) if rng.random() < 0.3 else data)
    for _ in range(rng.randint(1, 3)):
        region = rng.choice(regions)
        start = region.start
        if start + 512 > len(out):
            continue
        header = bytearray(out[start:start + 512])
        field_at = rng.choice([0, 100, 124, 156, 157, 257, 345, 386, 483, rng.randrange(512)])
        header[field_at] = rng.choice([0, ord("/"), ord("."), ord("7"), ord("L"), ord("x"), ord("S"),
                                       ord("1"), ord("2"), 0x80, 0xFF, rng.randrange(256)])
        out[start:start + 512] = fix_checksum(bytes(header))
    return bytes(out)


# ----------------------------------------------------------------------------------------------
# The hostile classes


def _files(rng: random.Random) -> Dict[str, bytes]:
    return google_files(with_meta=rng.random() < 0.1)


def _valid(rng):
    files = _files(rng)
    kind = rng.choice(["zip", "zip-flat", "zip-stored", "zip-dirs", "tar", "tgz", "tbz", "txz",
                       "tgz-dot", "tgz-gnu", "tgz-flat", "zip-macosx"])
    if kind.startswith("zip"):
        top = None if kind == "zip-flat" else TOP
        method = zipfile.ZIP_STORED if kind == "zip-stored" else zipfile.ZIP_DEFLATED
        data = _zip_with_macosx(files) if kind == "zip-macosx" else \
            zip_of(files, top, method, dirs=kind == "zip-dirs")
        return Case(data, ".zip", "ok", files, exact=True)
    compression = {"tar": "", "tbz": "bz2", "txz": "xz"}.get(kind, "gz")
    data = tar_of(files, None if kind == "tgz-flat" else TOP, compression,
                  fmt=tarfile.GNU_FORMAT if kind == "tgz-gnu" else tarfile.PAX_FORMAT,
                  dot=kind == "tgz-dot")
    return Case(data, _SUFFIX[compression], "ok", files, exact=True)


def _zip_with_macosx(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(f"{TOP}/{name}", data)
        zf.writestr(f"__MACOSX/{TOP}/._vocab.txt", b"\0\5\26\7")
    return buf.getvalue()


def _zip_mutated(rng):
    files = _files(rng)
    data = zip_of(files, TOP if rng.random() < 0.8 else None,
                  rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED]))
    regions = zip_structure(data) if rng.random() < 0.7 else None
    return Case(mutate(data, rng, regions), ".zip", "any", files, crc_protected=True)


def _zip_truncated(rng):
    files = _files(rng)
    data = zip_of(files)
    return Case(data[:rng.randrange(len(data))], ".zip", "error")


def _zip_corrupt_data(rng):
    files = _files(rng)
    name = rng.choice(sorted(files))
    member = {"name": f"{TOP}/{name}".encode(), "data": files[name], "method": 8}
    payload = bytearray(_deflate(files[name]))
    how = rng.choice(["flip", "truncate", "garbage"])
    if how == "flip":
        for _ in range(rng.randint(1, 8)):
            payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        payload = payload[:rng.randrange(len(payload))]
    else:
        payload = bytearray(rng.randbytes(len(payload)))
    member["payload"] = bytes(payload)
    others = [{"name": f"{TOP}/{n}".encode(), "data": d, "method": 8} for n, d in files.items() if n != name]
    # Mostly IntegrityError; a flip in padding bits, or a cut after the last byte of output,
    # leaves the data (and its CRC) intact: then it must be served exactly.
    return Case(raw_zip(others + [member]), ".zip", "any", files, crc_protected=True, exact=True, note=how)


def _zip_flags(rng):
    files = _files(rng)
    members = [{"name": f"{TOP}/{n}".encode(), "data": d, "method": 8} for n, d in files.items()]
    victim = rng.choice(members)
    how = rng.choice(["encrypted", "strong", "method", "patched"])
    if how == "encrypted":
        victim["flags"] = 0x1
    elif how == "strong":
        victim["flags"] = 0x41
    elif how == "method":
        victim["method"] = rng.choice([1, 6, 9, 10, 18, 19, 95, 96, 97, 98, 99, 65535])
        victim["payload"] = _deflate(victim["data"])
    else:
        victim["flags"] = 0x20
    return Case(raw_zip(members), ".zip", "ArchiveLayoutError" if how != "patched" else "error", note=how)


_BAD_NAMES = {   # name -> expected error
    b"": "UnsafeArchiveError", b".": "UnsafeArchiveError", b"./": None, b"model/.": "UnsafeArchiveError",
    b"../evil": "UnsafeArchiveError", b"a/../../evil": "UnsafeArchiveError",
    b"/etc/evil": "UnsafeArchiveError", b"C:/evil": "UnsafeArchiveError",
    b"..\\evil": "UnsafeArchiveError", b"C:\\evil": "UnsafeArchiveError",
    b"\\\\server\\share\\evil": "UnsafeArchiveError",
}


def _zip_names(rng):
    files = _files(rng)
    members = [{"name": f"{TOP}/{n}".encode(), "data": d} for n, d in files.items()]
    how = rng.choice(["bad", "long-part", "long-path", "collision", "duplicate", "dir-as-file",
                      "reserved", "nul", "utf8-flag-bad"])
    expect, exact = "ArchiveLayoutError", False
    if how == "bad":
        name, expect = rng.choice(sorted(_BAD_NAMES.items()))
        expect = expect or "ok"
        exact = expect == "ok"
        members.append({"name": name, "data": b"" if name.endswith(b"/") else b"evil",
                        "mode": (stat.S_IFDIR | 0o755) if name.endswith(b"/") else stat.S_IFREG | 0o644})
    elif how == "long-part":
        members.append({"name": f"{TOP}/".encode() + b"n" * rng.randint(256, 1200), "data": b"x"})
    elif how == "long-path":
        depth = rng.randint(40, 400)
        members.append({"name": b"/".join([b"d" * 120] * depth) + b"/f", "data": b"x"})
    elif how == "collision":
        target = rng.choice(sorted(files))
        members.append({"name": f"{TOP}/{target}/inner".encode(), "data": b"x"})
    elif how == "duplicate":
        target = rng.choice(sorted(files))
        members.append({"name": f"{TOP}//./{target}".encode(), "data": b"other"})
    elif how == "dir-as-file":
        target = rng.choice(["model.safetensors", "bert_config.json", "vocab.txt", "pytorch_model.bin",
                             "bert_model.ckpt.index", "config.json"])
        if target in files:
            del files[target]
            members = [m for m in members if not m["name"].endswith(target.encode())]
        members.append({"name": f"{TOP}/{target}/".encode(), "mode": stat.S_IFDIR | 0o755})
        if rng.random() < 0.5:
            members.append({"name": f"{TOP}/{target}/x".encode(), "data": b"x"})
    elif how == "reserved":
        name = rng.choice([".bert_hub.json", ".model.safetensors." + "ab" * 16 + ".tmp",
                           ".bert_hub.json." + "cd" * 16 + ".tmp"])
        members.append({"name": f"{TOP}/{name}".encode(), "data": rng.choice([b"{}", b"[]", b"\xff" * 99])})
        expect, exact = "ok", True
    elif how == "nul":
        members.append({"name": f"{TOP}/vocab.txt\0.evil".encode(), "data": b"x"})
        expect = "any"
    else:
        members.append({"name": b"\xff\xfe" + TOP.encode(), "data": b"x", "flags": 0x800})
        expect = "error"
    return Case(raw_zip(members), ".zip", expect, files, exact=exact, note=how)


def _zip_special(rng):
    files = _files(rng)
    members = [{"name": f"{TOP}/{n}".encode(), "data": d} for n, d in files.items()]
    kind = rng.choice([stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK])
    members.append({"name": f"{TOP}/x".encode(), "data": b"/etc/passwd", "mode": kind | 0o777})
    return Case(raw_zip(members), ".zip", "UnsafeArchiveError")


def _zip_bomb(rng):
    files = _files(rng)
    members = [{"name": f"{TOP}/{n}".encode(), "data": d, "method": 8} for n, d in files.items()]
    how = rng.choice(["zeros", "declared", "overlap"])
    if how == "zeros":   # 20-200 MB of zeros deflate to about a thousandth
        size = rng.choice([20, 64, 200]) << 20
        payload = _deflate_zeros(size)
        members.append({"name": f"{TOP}/bomb.bin".encode(), "payload": payload, "method": 8,
                        "file_size": size, "crc": _crc_zeros(size)})
    elif how == "declared":   # a size field that lies
        members.append({"name": f"{TOP}/bomb.bin".encode(), "data": b"x" * 10,
                        "file_size": rng.choice([1 << 31, 0xFFFFFFF0, 17 << 20])})
    else:   # many central entries, one local member: each one inflates the same bytes
        size = 4 << 20
        payload = _deflate_zeros(size)
        for i in range(rng.randint(5, 40)):
            members.append({"name": f"{TOP}/bomb{i}.bin".encode(), "payload": payload, "method": 8,
                            "file_size": size, "crc": _crc_zeros(size)})
    return Case(raw_zip(members), ".zip", "error", note=how)


@lru_cache(maxsize=None)
def _deflate_zeros(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = b"\0" * (1 << 20)
    out = [c.compress(chunk) for _ in range(size >> 20)]
    out.append(c.compress(b"\0" * (size & ((1 << 20) - 1))))
    return b"".join(out) + c.flush()


@lru_cache(maxsize=None)
def _crc_zeros(size: int) -> int:
    crc, chunk = 0, b"\0" * (1 << 20)
    for _ in range(size >> 20):
        crc = zlib.crc32(chunk, crc)
    return zlib.crc32(b"\0" * (size & ((1 << 20) - 1)), crc)


@lru_cache(maxsize=None)
def many_members_zip(count: int = 10_001) -> bytes:
    return raw_zip([{"name": f"m/{i}".encode(), "data": b""} for i in range(count)])


@lru_cache(maxsize=None)
def many_members_tgz(count: int = 10_001) -> bytes:
    return gzip.compress(b"".join(tar_header(f"m/{i}".encode()) for i in range(count)) + END, mtime=0)


def _many(rng):
    return Case(many_members_zip(), ".zip", "UnsafeArchiveError") if rng.random() < 0.5 else \
        Case(many_members_tgz(), ".tar.gz", "UnsafeArchiveError")


def _tar_mutated(rng):
    files = _files(rng)
    compression = rng.choice(["", "gz"])
    inner = tar_of(files, TOP, "", fmt=rng.choice([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]))
    inner = mutate_tar_headers(inner, rng) if rng.random() < 0.6 else mutate(inner, rng, tar_structure(inner))
    return Case(compress(inner, compression), _SUFFIX[compression], "any", files)


def _tgz_mutated(rng):
    files = _files(rng)
    compression = rng.choice(["gz", "gz", "bz2", "xz"])
    data = tar_of(files, TOP, compression)
    return Case(mutate(data, rng), _SUFFIX[compression], "any", files, crc_protected=True)


def _tgz_trailer(rng):
    files = _files(rng)
    data = bytearray(tar_of(files, TOP, "gz"))
    how = rng.choice(["crc", "isize", "truncate", "garbage", "second-bad"])
    if how == "crc":
        data[-8 + rng.randrange(4)] ^= 1 << rng.randrange(8)
    elif how == "isize":
        data[-4 + rng.randrange(4)] ^= 1 << rng.randrange(8)
    elif how == "truncate":
        data = data[:len(data) - rng.randint(1, 40)]
    elif how == "garbage":
        data += bytes([rng.randint(1, 255)]) + rng.randbytes(rng.randint(0, 64))
    else:
        data += gzip.compress(b"\0" * 1024, mtime=0)[:-6]
    return Case(bytes(data), ".tar.gz", "IntegrityError", note=how)


def _tar_bombs(rng):
    files = _files(rng)
    head = tar_members(files)
    how = rng.choice(["sparse", "longname", "pax-size", "pax-header", "global", "pax-chain", "zeros",
                      "size-base256"])
    expect = "UnsafeArchiveError"
    if how == "sparse":
        tail = sparse_member(f"{TOP}/model.safetensors".encode(), rng.choice([1 << 31, 330 << 20, 40 << 30]))
    elif how == "longname":
        tail = tar_header(b"././@LongLink", rng.choice([1 << 20, 1 << 30, 1 << 33]), tarfile.GNUTYPE_LONGNAME,
                          gnu=True) + b"a" * 512
    elif how == "pax-size":
        record = pax_record("size", str(rng.choice([1 << 31, 10 ** 12, 1 << 62])))
        tail = tar_header(b"pax", len(record), tarfile.XHDTYPE) + padded(record) + \
            tar_header(f"{TOP}/big.bin".encode(), 10) + padded(b"x" * 10)
    elif how == "pax-header":
        tail = tar_header(b"pax", rng.choice([1 << 20, 1 << 30]), tarfile.XHDTYPE) + b"9 a=b\n" * 85
    elif how == "global":
        body = b"".join(pax_record(f"k{i}", "v") for i in range(2000))
        tail = tar_header(b"global", len(body), tarfile.XGLTYPE) + padded(body)
    elif how == "pax-chain":
        record = pax_record("comment", "x")
        tail = (tar_header(b"pax", len(record), tarfile.XHDTYPE) + padded(record)) * rng.randint(1500, 4000)
        tail += tar_header(f"{TOP}/f".encode(), 1) + padded(b"x")
        expect = "error"
    elif how == "zeros":
        size = rng.choice([20, 64, 200]) << 20
        tail = tar_header(f"{TOP}/zeros.bin".encode(), size)
        return Case(gzip.compress(head + tail, mtime=0) + _gzip_zeros(size + 1024), ".tar.gz", expect,
                    note=how)
    else:
        tail = tar_header(f"{TOP}/big.bin".encode(), size_field=b"\x80" + (1 << 70).to_bytes(11, "big")) + b"x" * 512
        expect = "error"
    return Case(gzip.compress(head + tail + END, mtime=0), ".tar.gz", expect, note=how)


@lru_cache(maxsize=None)
def _gzip_zeros(size: int) -> bytes:
    """A gzip member of `size` zero bytes (concatenated gzip members are one stream)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"\0" * (1 << 20)
    out = [c.compress(chunk) for _ in range(size >> 20)]
    out.append(c.compress(b"\0" * (size & ((1 << 20) - 1))))
    return b"".join(out) + c.flush()


def _tar_members_hostile(rng):
    files = _files(rng)
    head = tar_members(files)
    how = rng.choice(["symlink", "hardlink", "chr", "blk", "fifo", "empty-name", "dot-file", "dot-dir",
                      "escape", "absolute", "collision", "duplicate", "long-name", "long-pax-path",
                      "dir-as-file", "reserved", "negative-size", "bad-header", "no-end", "trailing"])
    exact, tail_end = False, END
    types = {"symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE, "chr": tarfile.CHRTYPE,
             "blk": tarfile.BLKTYPE, "fifo": tarfile.FIFOTYPE}
    if how in types:
        tail, expect = tar_header(f"{TOP}/x".encode(), 0, types[how], linkname=b"/etc/passwd"), "UnsafeArchiveError"
    elif how == "empty-name":
        tail, expect = tar_header(b"", 4) + padded(b"evil"), "UnsafeArchiveError"
    elif how == "dot-file":
        tail, expect = tar_header(rng.choice([b".", b"./.", f"{TOP}/.".encode()]), 4) + padded(b"evil"), \
            "UnsafeArchiveError"
    elif how == "dot-dir":
        tail, expect, exact = tar_header(b"./", 0, tarfile.DIRTYPE), "ok", True
        head, tail = tail, head   # './' first, as `tar -C dir .` writes it
    elif how in ("escape", "absolute"):
        name = rng.choice([b"../evil", f"{TOP}/../../evil".encode()]) if how == "escape" else b"/tmp/evil"
        tail, expect = tar_header(name, 4) + padded(b"evil"), "UnsafeArchiveError"
    elif how == "collision":
        target = rng.choice(sorted(files))
        tail, expect = tar_header(f"{TOP}/{target}/inner".encode(), 1) + padded(b"x"), "ArchiveLayoutError"
    elif how == "duplicate":
        target = rng.choice(sorted(files))
        tail, expect = tar_header(f"./{TOP}/{target}".encode(), 5) + padded(b"other"), "ArchiveLayoutError"
    elif how == "long-name":
        name = f"{TOP}/".encode() + b"n" * rng.randint(256, 3000)
        tail = tar_header(b"././@LongLink", len(name) + 1, tarfile.GNUTYPE_LONGNAME, gnu=True) + \
            padded(name + b"\0") + tar_header(b"trunc", 1, gnu=True) + padded(b"x")
        expect = "ArchiveLayoutError"
    elif how == "long-pax-path":
        record = pax_record("path", "/".join(["d" * 200] * rng.randint(21, 60)) + "/f")
        tail = tar_header(b"pax", len(record), tarfile.XHDTYPE) + padded(record) + tar_header(b"p", 1) + padded(b"x")
        expect = "ArchiveLayoutError"
    elif how == "dir-as-file":
        target = rng.choice(["model.safetensors", "config.json", "pytorch_model.bin", "bert_model.ckpt.data-00000-of-00002"])
        tail, expect = tar_header(f"{TOP}/{target}".encode(), 0, tarfile.DIRTYPE), "ArchiveLayoutError"
    elif how == "reserved":
        name = rng.choice([".bert_hub.json", ".model.safetensors." + "0f" * 16 + ".tmp"])
        tail, expect, exact = tar_header(f"{TOP}/{name}".encode(), 2) + padded(b"{}"), "ok", True
    elif how == "negative-size":
        tail = tar_header(f"{TOP}/neg".encode(), size_field=b"\xff" * 12) + padded(b"x")
        expect = "error"
    elif how == "bad-header":
        bad = bytearray(tar_header(f"{TOP}/late".encode(), 1))
        bad[148] ^= 0x01
        tail, expect = bytes(bad) + padded(b"x"), "IntegrityError"
    elif how == "no-end":
        tail, tail_end, expect = b"", b"", "IntegrityError"
    else:
        tail, tail_end, expect = b"", END + b"\0" * 512 + b"junk" + b"\0" * 508, "IntegrityError"
    compression = rng.choice(["", "gz"])
    return Case(compress(head + tail + tail_end, compression), _SUFFIX[compression], expect, files,
                exact=exact, note=how)


def _not_archive(rng):
    choice = rng.choice(["empty", "random", "html", "zip-magic", "gzip-magic", "ustar", "bz2-magic",
                         "xz-magic", "gzip-of-text"])
    data = {"empty": b"", "random": rng.randbytes(rng.randint(1, 4096)),
            "html": b"<html><body>404 Not Found</body></html>",
            "zip-magic": b"PK\x03\x04" + rng.randbytes(rng.randint(0, 600)),
            "gzip-magic": b"\x1f\x8b" + rng.randbytes(rng.randint(0, 600)),
            "ustar": b"\0" * 257 + b"ustar" + rng.randbytes(rng.randint(0, 600)),
            "bz2-magic": b"BZh9" + rng.randbytes(rng.randint(0, 600)),
            "xz-magic": b"\xfd7zXZ\x00" + rng.randbytes(rng.randint(0, 600)),
            "gzip-of-text": gzip.compress(b"not a tar " * rng.randint(1, 200), mtime=0)}[choice]
    return Case(data, rng.choice([".zip", ".tar.gz", ".tar"]), "error", note=choice)


CLASSES: Dict[str, Callable[[random.Random], Case]] = {
    "valid": _valid,
    "zip-mutated": _zip_mutated,
    "zip-truncated": _zip_truncated,
    "zip-corrupt-data": _zip_corrupt_data,
    "zip-flags": _zip_flags,
    "zip-names": _zip_names,
    "zip-special": _zip_special,
    "zip-bomb": _zip_bomb,
    "many-members": _many,
    "tar-mutated": _tar_mutated,
    "tgz-mutated": _tgz_mutated,
    "tgz-trailer": _tgz_trailer,
    "tar-bombs": _tar_bombs,
    "tar-members": _tar_members_hostile,
    "not-an-archive": _not_archive,
}
