"""Untrusted archives (zip, tar, tar.gz / .bz2 / .xz) -> files in a folder, safely and in
bounded time, memory and disk.

Everything is checked before a byte is written: member names (absolute, '..', empty, '.', NUL,
too long for the file system, one name used twice or as both a file and a folder), member kinds
(links, devices, encrypted or unsupported compression), declared sizes (against a ratio to the
archive's own size, then against free space) and, for a tar, the whole stream: ``tarfile`` stops
at the end-of-archive blocks, never reads gzip's CRC-32 and length, and takes a corrupt header
in the middle for the end, so we read to the end ourselves. Then each member is written and held
to its declared size while the free space is watched.

Whatever an archive holds, callers see one of: IntegrityError (corrupt or truncated),
UnsafeArchiveError (escapes, links, devices, bombs), ArchiveLayoutError (not an archive, names
this file system cannot hold, features we do not read), InsufficientSpaceError or
CacheNotWritableError (the disk, named). No symbolic link or special file is ever created.
"""
from __future__ import annotations

import bz2
import errno
import hashlib
import logging
import lzma
import os
import stat
import tarfile
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from . import disk
from .errors import (
    ArchiveLayoutError,
    BertHubError,
    EntryNotFoundError,
    IntegrityError,
    UnsafeArchiveError,
)
from .gzip_reader import GzipReader

logger = logging.getLogger(__name__)

# Bounds. A Google or 0.6.2 archive holds a handful of members and barely compresses (float32).
MAX_MEMBERS = 10_000
MAX_RATIO = 100                 # declared bytes per byte of archive ...
RATIO_FLOOR = 16 << 20          # ... but any archive may expand to this much
MAX_HEADER = 64 << 10           # one pax / GNU long-name header (tarfile reads it into memory)
MAX_HEADERS = 4 << 20           # all of them in one archive
MAX_GLOBAL_HEADER = 4 << 10     # a pax global header is copied into every member's record
MAX_ZIP_DIRECTORY = 4 << 20     # zipfile reads the central directory into memory at once
_CHUNK = 1 << 20
_STREAM_SLACK = 16 << 20        # tar headers and padding on top of the declared sizes

_COMPRESSED_TARS = ((b"\x1f\x8b", "tar.gz", lambda path, mode: GzipReader(path)),
                    (b"BZh", "tar.bz2", bz2.open), (b"\xfd7zXZ\x00", "tar.xz", lzma.open))
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_HEADER_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE,
                 tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE)
_BAD_NAME_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.EILSEQ, errno.EINVAL, errno.EEXIST,
                              errno.EISDIR, errno.ENOTDIR, errno.ELOOP})


@dataclass(frozen=True)
class Member:
    name: str                  # as the archive spells it
    parts: Tuple[str, ...]     # the relative path it is written to ('' parts and '.' removed)
    is_dir: bool
    size: int                  # declared, uncompressed
    extract: bool = True       # False: skipped (a name the caller reserves)


# ----------------------------------------------------------------------------------------------
# Public entry points


def archive_kind(path: Path) -> str:
    """'zip', 'tar', 'tar.gz', 'tar.bz2' or 'tar.xz', from the first bytes; else ArchiveLayoutError."""
    with _reading(path):
        with open(path, "rb") as f:
            head = f.read(512)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    for magic, kind, _ in _COMPRESSED_TARS:
        if head.startswith(magic):
            return kind
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    raise ArchiveLayoutError(
        f"{path} is neither a zip nor a tar archive. Pass a Google release archive (.zip), "
        f"a .tar.gz, or a folder.")


def is_archive(path: Path) -> bool:
    try:
        archive_kind(path)
        return True
    except BertHubError:
        return False


def safe_extract(archive: Path, dest: Path, *,
                 skip: Optional[Callable[[str], bool]] = None) -> Dict[str, str]:
    """Extract every regular file of `archive` under `dest` after checking the whole archive
    (see the module docstring); members with a path part for which `skip` is true are left out.
    Returns {relative path: sha256}. On failure, what was written under `dest` stays for the
    caller to remove (it extracts into a folder of its own)."""
    archive, dest = Path(archive), Path(dest).resolve()
    kind = archive_kind(archive)
    with disk.writing(dest, f"extracting {archive.name}"):
        dest.mkdir(parents=True, exist_ok=True)
    extract = _extract_zip if kind == "zip" else _extract_tar
    return extract(archive, kind, dest, _expansion_cap(archive), skip)


def _extract_zip(archive: Path, kind: str, dest: Path, cap: int, skip) -> Dict[str, str]:
    with _open_zip(archive) as zf:
        plan = _plan(archive, dest, _zip_members(zf, archive, cap), skip)
        writer = _Writer(archive, dest, plan)
        for member, info in plan:
            writer.write(member, lambda: zf.open(info))
    return writer.hashes


def _extract_tar(archive: Path, kind: str, dest: Path, cap: int, skip) -> Dict[str, str]:
    """Two passes over the stream: the first checks everything (and the compression's trailer),
    the second writes, and must meet the same members in the same order."""
    plan = _plan(archive, dest, _tar_members(archive, kind, cap), skip)
    writer = _Writer(archive, dest, plan)
    planned_members = iter(plan)
    with _open_tar(archive, kind, cap) as tf:
        for member, info in _tar_members_of(tf, archive):
            planned, _ = next(planned_members, (None, None))
            if planned is None or (planned.name, planned.size, planned.is_dir) != \
                    (member.name, member.size, member.is_dir):
                raise IntegrityError(f"{archive} changed while it was being extracted; try again.")
            writer.write(planned, lambda: tf.extractfile(info))
        _read_to_the_end(tf, archive)
    return writer.hashes


def verify_archive(archive: Path) -> None:
    """Check a whole archive without extracting it: every name and size as `safe_extract` does,
    every zip member's CRC-32, a tar's whole compressed stream (CRC-32 and length for gzip)."""
    archive = Path(archive)
    kind = archive_kind(archive)
    cap = _expansion_cap(archive)
    if kind != "zip":
        for _ in _tar_members(archive, kind, cap):
            pass
        return
    with _open_zip(archive) as zf:
        for member, info in _zip_members(zf, archive, cap):
            if member.is_dir:
                continue
            with _reading(archive, member.name):
                with zf.open(info) as src:
                    _held_to_size(src, member, archive, lambda chunk: None)


# ----------------------------------------------------------------------------------------------
# Listing members, with every check that needs no writing


def _expansion_cap(archive: Path) -> int:
    with _reading(archive):
        size = archive.stat().st_size
    return max(MAX_RATIO * size, RATIO_FLOOR)


def _plan(archive: Path, dest: Path, listed, skip) -> List[Tuple[Member, object]]:
    """Members in archive order, each with its library record, after the checks on names,
    collisions, kinds and total size; skipped members are kept with extract=False."""
    name_max, path_max = _name_limits(dest)
    dest_bytes = len(os.fsencode(str(dest)))
    files: Dict[Tuple[str, ...], str] = {}
    folders: Dict[Tuple[str, ...], str] = {}
    plan, skipped, total = [], [], 0
    for member, info in listed:
        if skip is not None and any(skip(part) for part in member.parts):
            skipped.append(member.name)
            plan.append((Member(member.name, member.parts, member.is_dir, member.size, False), info))
            continue
        if not member.parts:
            if member.is_dir:   # '.' or './': the destination itself
                plan.append((Member(member.name, (), True, 0, False), info))
                continue
            raise UnsafeArchiveError(f"Refusing {archive}: member {member.name!r} has no file name.")
        _check_length(archive, member, name_max, path_max - dest_bytes - 1)
        if member.is_dir:
            folders.setdefault(member.parts, member.name)
        else:
            if member.parts in files:
                raise ArchiveLayoutError(
                    f"Refusing {archive}: {member.name!r} appears twice (also as "
                    f"{files[member.parts]!r}); an archive must name each file once.")
            files[member.parts] = member.name
            total += member.size
        for depth in range(1, len(member.parts)):
            folders.setdefault(member.parts[:depth], member.name)
        plan.append((member, info))
    clash = sorted(files.keys() & folders.keys())
    if clash:
        raise ArchiveLayoutError(
            f"Refusing {archive}: {files[clash[0]]!r} is a file, but {folders[clash[0]]!r} needs a "
            f"folder of the same name.")
    if skipped:
        logger.warning("Ignoring %d member(s) of %s whose names the cache keeps for itself: %s",
                       len(skipped), archive, ", ".join(repr(n) for n in skipped[:5]))
    disk.check_free_space(dest, total, f"extract {archive.name}")
    return plan


def _member(archive: Path, name: str, is_dir: bool, size: int) -> Member:
    """A Member for `name`, or UnsafeArchiveError when the name would leave the destination."""
    if not name:
        raise UnsafeArchiveError(f"Refusing {archive}: a member has an empty name.")
    if "\x00" in name:
        raise UnsafeArchiveError(f"Refusing {archive}: member {name!r} has a NUL byte in its name.")
    posix = name.replace("\\", "/")
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":" and posix[0].isalpha()):
        raise UnsafeArchiveError(f"Refusing {archive}: member {name!r} has an absolute path.")
    parts = tuple(p for p in posix.split("/") if p not in ("", "."))
    if not is_dir and posix.split("/")[-1] in ("", "."):
        parts = ()   # a file named 'x/.' or 'x/' has no name of its own
    if ".." in parts:
        raise UnsafeArchiveError(f"Refusing {archive}: member {name!r} climbs out with '..'.")
    if size < 0:
        raise IntegrityError(f"{archive} is corrupt: member {name!r} declares {size} bytes.")
    return Member(name, parts, is_dir, 0 if is_dir else size)


def _check_length(archive: Path, member: Member, name_max: int, room: int) -> None:
    try:
        encoded = [os.fsencode(p) for p in member.parts]
    except UnicodeError:
        raise ArchiveLayoutError(
            f"Refusing {archive}: member {member.name!r} has a name this system cannot encode.") from None
    longest = max(len(p) for p in encoded)
    if longest > name_max:
        raise ArchiveLayoutError(
            f"Refusing {archive}: member {_short(member.name)} has a name of {longest} bytes; this "
            f"file system allows {name_max}.")
    if sum(len(p) + 1 for p in encoded) > room:
        raise ArchiveLayoutError(
            f"Refusing {archive}: member {_short(member.name)} has a path too long for this file "
            f"system once extracted.")


def _short(name: str) -> str:
    return repr(name) if len(name) <= 80 else repr(name[:80]) + "..."


def _name_limits(dest: Path) -> Tuple[int, int]:
    try:
        return os.pathconf(dest, "PC_NAME_MAX"), os.pathconf(dest, "PC_PATH_MAX")
    except (OSError, ValueError, AttributeError):   # not on this platform
        return 255, 4096


def _check_total(archive: Path, total: int, cap: int) -> None:
    if total > cap:
        _refuse_bomb(archive, cap)


def _refuse_bomb(archive: Path, cap: int) -> None:
    raise UnsafeArchiveError(
        f"Refusing {archive}: it would expand to more than {disk.mb(cap)} (at most {MAX_RATIO} "
        f"times its own size, or {disk.mb(RATIO_FLOOR)}), which no model archive does; it looks "
        f"like an archive bomb. If it is genuine, extract it yourself and pass the folder.")


# -- zip ---------------------------------------------------------------------------------------


@contextmanager
def _open_zip(archive: Path) -> Iterator[zipfile.ZipFile]:
    with _reading(archive):
        f = open(archive, "rb")
    try:
        with _reading(archive):
            directory = _zip_directory_size(f)
            if directory is not None and directory > MAX_ZIP_DIRECTORY:
                raise UnsafeArchiveError(
                    f"Refusing {archive}: its central directory claims {disk.mb(directory)} (more "
                    f"than {disk.mb(MAX_ZIP_DIRECTORY)}); no model archive needs that.")
            zf = zipfile.ZipFile(f)
        with zf:
            yield zf
    finally:
        f.close()


def _zip_directory_size(f) -> Optional[int]:
    """The central directory's size from the end record (zipfile reads that much into memory
    and parses it before any member can be looked at); None where zipfile's helper is gone."""
    find_end = getattr(zipfile, "_EndRecData", None)
    index = getattr(zipfile, "_ECD_SIZE", None)
    end = find_end(f) if find_end is not None and index is not None else None
    return None if end is None else end[index]


def _zip_members(zf: zipfile.ZipFile, archive: Path, cap: int) -> Iterator[Tuple[Member, zipfile.ZipInfo]]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise UnsafeArchiveError(f"Refusing {archive}: {len(infos)} members, more than {MAX_MEMBERS}.")
    total = 0
    for info in infos:
        name = info.filename
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"Refusing {archive}: member {name!r} is a symbolic link.")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise UnsafeArchiveError(f"Refusing {archive}: member {name!r} is not a regular file.")
        if info.flag_bits & 0x41:
            raise ArchiveLayoutError(
                f"{archive}: member {name!r} is encrypted; bert_hub reads unencrypted archives only. "
                f"Decrypt it (unzip with the password) and pass the folder.")
        if info.compress_type not in _ZIP_METHODS:
            raise ArchiveLayoutError(
                f"{archive}: member {name!r} uses zip compression method {info.compress_type}, which "
                f"bert_hub does not read (stored, deflate, bzip2, lzma); re-zip it with deflate.")
        is_dir = name.endswith("/") or stat.S_ISDIR(mode)
        member = _member(archive, name, is_dir, info.file_size)
        total += member.size
        _check_total(archive, total, cap)
        yield member, info


# -- tar ---------------------------------------------------------------------------------------


class _Capped:
    """A decompressed stream that refuses to yield more than `cap` bytes and turns every read
    error of the compressed data (zlib, gzip's CRC and length, bz2, xz) into IntegrityError."""

    def __init__(self, raw, cap: int, archive: Path):
        self.raw, self.cap, self.archive, self.total = raw, cap, archive, 0

    def read(self, n: int) -> bytes:
        with _reading(self.archive):
            data = self.raw.read(min(n, _CHUNK))
        self.total += len(data)
        if self.total > self.cap:
            _refuse_bomb(self.archive, self.cap - _STREAM_SLACK)
        return data


class _CheckedTarInfo(tarfile.TarInfo):
    """tarfile's header reader with bounds: extended headers (read into memory whole) are
    limited in size, and a corrupt or missing header after the first is an error, where tarfile
    would silently take it for the end of the archive."""

    @classmethod
    def fromtarfile(cls, tf):
        buf = tf.fileobj.read(tarfile.BLOCKSIZE)
        try:
            obj = cls.frombuf(buf, tf.encoding, tf.errors)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError, tarfile.EmptyHeaderError) as exc:
            if tf.offset == 0:
                raise
            raise IntegrityError(f"{tf.source_path} is corrupt or truncated: {exc} at byte "
                                 f"{tf.offset} of its tar stream.") from None
        obj.offset = tf.fileobj.tell() - tarfile.BLOCKSIZE
        if obj.size < 0:
            raise IntegrityError(f"{tf.source_path} is corrupt: a header declares {obj.size} bytes.")
        if obj.type in _HEADER_TYPES:
            tf.extended_bytes += obj.size
            limit = MAX_GLOBAL_HEADER if obj.type == tarfile.XGLTYPE else MAX_HEADER
            if obj.size > limit or tf.extended_bytes > MAX_HEADERS:
                raise UnsafeArchiveError(
                    f"Refusing {tf.source_path}: an extended tar header of {obj.size} bytes "
                    f"(at most {limit} each, {MAX_HEADERS} in all, are read).")
        return obj._proc_member(tf)


class _BoundedTarFile(tarfile.TarFile):
    """A TarFile over a forward-only stream that reads headers with _CheckedTarInfo."""

    tarinfo = _CheckedTarInfo

    def __init__(self, archive: Path, stream: "_TarStream"):
        self.source_path, self.extended_bytes = archive, 0   # read by _CheckedTarInfo
        super().__init__(fileobj=stream, mode="r")


@contextmanager
def _open_tar(archive: Path, kind: str, cap: int) -> Iterator[tarfile.TarFile]:
    opener = next((o for _, k, o in _COMPRESSED_TARS if k == kind), open)
    with _reading(archive):
        raw = opener(archive, "rb")
    try:
        with _reading(archive):
            tf = _BoundedTarFile(archive, _TarStream(_Capped(raw, cap + _STREAM_SLACK, archive)))
        with tf:
            yield tf
    finally:
        raw.close()


def _tar_members(archive: Path, kind: str, cap: int) -> Iterator[Tuple[Member, tarfile.TarInfo]]:
    """Every member of a tar, read to the end of its stream (which checks its compression)."""
    with _open_tar(archive, kind, cap) as tf:
        yield from _tar_members_of(tf, archive, cap)
        _read_to_the_end(tf, archive)


def _tar_members_of(tf: tarfile.TarFile, archive: Path, cap: Optional[int] = None):
    count, total = 0, 0
    while True:
        with _reading(archive):
            info = tf.next()
        if info is None:
            return
        tf.members.clear()   # tarfile keeps every member otherwise; we keep our own records
        count += 1
        if count > MAX_MEMBERS:
            raise UnsafeArchiveError(f"Refusing {archive}: more than {MAX_MEMBERS} members.")
        if info.issym() or info.islnk():
            raise UnsafeArchiveError(f"Refusing {archive}: member {info.name!r} is a link.")
        if not (info.isfile() or info.isdir()):
            raise UnsafeArchiveError(f"Refusing {archive}: member {info.name!r} is a device or special file.")
        member = _member(archive, info.name, info.isdir(), info.size)
        total += member.size
        if cap is not None:
            _check_total(archive, total, cap)
        yield member, info


def _read_to_the_end(tf: tarfile.TarFile, archive: Path) -> None:
    """After the end-of-archive block only zeros may follow; reading them to the end makes the
    decompressor check its trailer (gzip: CRC-32 and length)."""
    while True:
        with _reading(archive):
            block = tf.fileobj.read(_CHUNK)
        if not block:
            return
        if block.count(0) != len(block):
            raise IntegrityError(
                f"{archive} is corrupt: data follows the end of its tar archive (a damaged header "
                f"cut it short, or two archives were glued together). Download it again.")


class _TarStream:
    """The sequential file object tarfile reads: tell() counts, seek() only moves forward."""

    def __init__(self, stream: _Capped):
        self.stream, self.pos = stream, 0

    def read(self, n: int) -> bytes:
        parts, left = [], n
        while left > 0:
            chunk = self.stream.read(left)
            if not chunk:
                break
            parts.append(chunk)
            left -= len(chunk)
        data = b"".join(parts)
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, pos: int, whence: int = 0) -> int:
        target = pos if whence == 0 else self.pos + pos
        if whence not in (0, 1) or target < self.pos:
            raise IntegrityError("a tar member points backwards in its archive")
        while self.pos < target:
            if not self.read(min(_CHUNK, target - self.pos)):
                break
        return self.pos


# ----------------------------------------------------------------------------------------------
# Writing


class _Writer:
    """Writes planned members under `dest`: files created exclusively, each held to its declared
    size, the free space watched, OS errors typed."""

    def __init__(self, archive: Path, dest: Path, plan):
        self.archive, self.dest = archive, dest
        total = sum(m.size for m, _ in plan if m.extract and not m.is_dir)
        self.watch = disk.SpaceWatch(dest, total, f"extract {archive.name}")
        self.hashes: Dict[str, str] = {}

    def write(self, member: Member, open_source: Callable[[], object]) -> None:
        """Write one planned member (nothing for a skipped one); `open_source()` opens its bytes."""
        if not member.extract:
            return
        if member.is_dir:
            self._make(member, self.dest.joinpath(*member.parts))
            return
        with _reading(self.archive, member.name):
            src = open_source()
        with src:
            self._file(member, src)

    def _file(self, member: Member, src) -> None:
        target = self.dest.joinpath(*member.parts)
        self._make(member, target.parent)
        with self._named(member, target):
            out = open(target, "xb")
        digest = hashlib.sha256()

        def sink(chunk: bytes) -> None:
            digest.update(chunk)
            out.write(chunk)
            self.watch.wrote(len(chunk))
        # Reads raise typed errors of their own; any OSError here is the disk's (closing too:
        # the last buffered bytes are written then).
        with disk.writing(target, f"extracting {self.archive.name}"), out:
            _held_to_size(src, member, self.archive, sink)
        self.hashes["/".join(member.parts)] = digest.hexdigest()

    def _make(self, member: Member, folder: Path) -> None:
        with self._named(member, folder):
            folder.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _named(self, member: Member, path: Path) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            if exc.errno in _BAD_NAME_ERRNOS:
                raise ArchiveLayoutError(
                    f"Refusing {self.archive}: member {_short(member.name)} cannot be created here "
                    f"({exc.strerror}).") from None
            raise disk.typed_os_error(exc, path, f"extracting {self.archive.name}") from None


def _held_to_size(src, member: Member, archive: Path, sink: Callable[[bytes], None]) -> None:
    """Copy a member's bytes to `sink`; more or fewer than it declared is corruption."""
    left = member.size
    while True:
        with _reading(archive, member.name):
            chunk = src.read(min(_CHUNK, left + 1))
        if not chunk:
            break
        left -= len(chunk)
        if left < 0:
            raise IntegrityError(f"{archive} is corrupt: member {member.name!r} holds more than the "
                                 f"{member.size} bytes it declares.")
        sink(chunk)
    if left:
        raise IntegrityError(f"{archive} is corrupt or truncated: member {member.name!r} ended "
                             f"{left} bytes short of the {member.size} it declares.")


@contextmanager
def _reading(archive: Path, member: Optional[str] = None) -> Iterator[None]:
    """Turn whatever a library raises while reading an archive into a typed error. The parsers
    (zipfile, tarfile, zlib, bz2, lzma) raise a dozen types on hostile input; none of them means
    anything but "this archive cannot be read"."""
    where = f" (member {member!r})" if member else ""
    try:
        yield
    except (BertHubError, MemoryError):
        raise
    except FileNotFoundError:
        raise EntryNotFoundError(f"{archive} does not exist (any more).") from None
    except (NotImplementedError, RuntimeError) as exc:
        if isinstance(exc, RecursionError):
            raise IntegrityError(f"{archive} is corrupt{where}: headers nest too deeply.") from None
        raise ArchiveLayoutError(
            f"{archive} uses a feature bert_hub does not read{where}: {exc}. Re-pack it as a plain "
            f"zip or .tar.gz.") from None
    except Exception as exc:
        raise IntegrityError(
            f"{archive} is corrupt or truncated{where}: {type(exc).__name__}: {exc}. Download it "
            f"again (or re-create it).") from None
