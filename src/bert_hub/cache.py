"""The on-disk cache: where entries live, how they become visible, who may write them.

Layout under the cache root (``BERT_HUB_CACHE``, else ``$XDG_CACHE_HOME/bert_hub``, else
``~/.cache/bert_hub``)::

    models/<entry>/          a complete, verified model folder (its manifest is MANIFEST_NAME)
    files/<entry>            a single cached file (``cached_path``), manifest beside it
    .locks/<entry>.lock      one lock per entry
    .tmp/                    resumable ``<entry>.part`` downloads, extraction folders

Nothing partial is ever visible: a download grows in ``.tmp``, is verified, extracted into a
unique folder in ``.tmp``, checked, given its manifest and only then renamed into ``models/``.
The per-entry lock avoids duplicate work; correctness never depends on it (on NFS it may not
hold), because every publication is verify-then-``os.replace`` and readers only trust entries
that carry a manifest.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tarfile
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Dict, List, Optional

import filelock

from . import download, env
from .errors import (
    ArchiveLayoutError,
    CacheNotWritableError,
    EntryNotFoundError,
    InsufficientSpaceError,
    IntegrityError,
    LockTimeoutError,
    OfflineError,
    UnsafeArchiveError,
)
from .filenames import SAFE_WEIGHTS_NAME

logger = logging.getLogger(__name__)

MANIFEST_NAME = ".bert_hub.json"
_TMP = ".tmp"
_LOCKS = ".locks"
_CHUNK = 1 << 20
# Free space kept in reserve beyond what a download or extraction needs.
_SPACE_MARGIN = 64 << 20
_DEFAULT_LOCK_TIMEOUT = 1800.0


def cache_root(cache_dir: Optional[os.PathLike] = None) -> Path:
    """The cache root: the argument, else BERT_HUB_CACHE, else the XDG cache, else ~/.cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("BERT_HUB_CACHE"):
        return Path(os.environ["BERT_HUB_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "bert_hub"


def is_offline(local_files_only: bool = False) -> bool:
    """True when no network may be used: the argument, or BERT_HUB_OFFLINE set to a true value."""
    return bool(local_files_only) or env.flag("BERT_HUB_OFFLINE")


def models_dir(root: Path) -> Path:
    return root / "models"


def _tmp_dir(root: Path) -> Path:
    path = root / _TMP
    _make_dir(path, root)
    return path


def _make_dir(path: Path, root: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CacheNotWritableError(
            f"cannot create {path} in the cache at {root} ({exc.strerror or exc}); point "
            "BERT_HUB_CACHE (or cache_dir=) at a folder you can write") from None


# ----------------------------------------------------------------------------------------------
# Locks


@contextmanager
def entry_lock(root: Path, name: str, timeout: Optional[float] = None) -> Iterator[None]:
    """Hold the lock of one entry; log once while waiting for another process to finish."""
    if timeout is None:
        timeout = env.seconds("BERT_HUB_LOCK_TIMEOUT", _DEFAULT_LOCK_TIMEOUT)
    lock_dir = root / _LOCKS
    _make_dir(lock_dir, root)
    lock_path = lock_dir / f"{name}.lock"
    lock = filelock.FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        logger.warning("Waiting for another process to finish with %r (lock %s)", name, lock_path)
        try:
            lock.acquire(timeout=timeout)
        except filelock.Timeout:
            raise LockTimeoutError(
                f"Timed out after {timeout:.0f} s waiting for the lock on cache entry {name!r} "
                f"({lock_path}). Another process is still working on it; wait for it, or raise "
                f"BERT_HUB_LOCK_TIMEOUT (seconds)."
            ) from None
    try:
        yield
    finally:
        lock.release()


# ----------------------------------------------------------------------------------------------
# Manifests and hashing


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Optional[dict]:
    """The manifest of a published entry folder, or None when the folder is not a complete entry."""
    try:
        with open(folder / MANIFEST_NAME, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_manifest(folder: Path, manifest: Mapping) -> None:
    """Write (or replace) a manifest atomically."""
    tmp = folder / f"{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    os.replace(tmp, folder / MANIFEST_NAME)


def publish_file(tmp_path: Path, final_path: Path, *, manifest_folder: Optional[Path] = None) -> None:
    """Move a finished file into place and, when inside an entry, record its hash and size."""
    os.replace(tmp_path, final_path)
    if manifest_folder is not None:
        manifest = read_manifest(manifest_folder) or {}
        files = dict(manifest.get("files", {}))
        files[final_path.name] = {"sha256": sha256_file(final_path), "size": final_path.stat().st_size}
        write_manifest(manifest_folder, {**manifest, "files": files})


# ----------------------------------------------------------------------------------------------
# Disk space


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Fail before writing anything when `needed` bytes (plus a margin) do not fit."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed + _SPACE_MARGIN:
        raise InsufficientSpaceError(
            f"Not enough disk space to {what}: needs about {_mb(needed + _SPACE_MARGIN)} in "
            f"{folder}, only {_mb(free)} free. Free some space (e.g. `bert-hub cache prune` or "
            f"`bert-hub cache rm NAME`) or point BERT_HUB_CACHE at a larger disk."
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


# ----------------------------------------------------------------------------------------------
# Safe extraction


def _archive_kind(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b") or head.startswith(b"BZh") or head.startswith(b"\xfd7zXZ"):
        return "tar"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    raise ArchiveLayoutError(
        f"{path} is neither a zip nor a tar archive. Pass a Google release archive (.zip), "
        f"a .tar.gz, or a folder."
    )


def is_archive(path: Path) -> bool:
    try:
        _archive_kind(path)
        return True
    except (ArchiveLayoutError, OSError):
        return False


def _safe_member_path(dest: Path, name: str, archive: Path) -> Path:
    """Where a member may be written, or UnsafeArchiveError when it would leave `dest`."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"Refusing {archive}: member {name!r} has an absolute path.")
    if ".." in posix.parts:
        raise UnsafeArchiveError(f"Refusing {archive}: member {name!r} climbs out with '..'.")
    target = dest.joinpath(*[p for p in posix.parts if p not in ("", ".")])
    if os.path.commonpath([str(dest), str(target)]) != str(dest):
        raise UnsafeArchiveError(f"Refusing {archive}: member {name!r} lands outside the target.")
    return target


def archive_members_size(archive: Path) -> int:
    """Total uncompressed size of an archive's regular files (for the free-space check)."""
    if _archive_kind(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            return sum(info.file_size for info in zf.infolist())
    with tarfile.open(archive) as tf:
        return sum(m.size for m in tf.getmembers() if m.isfile())


def safe_extract(archive: Path, dest: Path) -> Dict[str, str]:
    """Extract every regular file of `archive` under `dest`, refusing absolute paths, '..',
    links and device files before writing anything. Returns {relative path: sha256}."""
    archive, dest = Path(archive), Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    hashes: Dict[str, str] = {}
    if _archive_kind(archive) == "zip":
        with zipfile.ZipFile(archive) as zf:
            infos = zf.infolist()
            plan = []
            for info in infos:
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise UnsafeArchiveError(f"Refusing {archive}: member {info.filename!r} is a symbolic link.")
                if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise UnsafeArchiveError(f"Refusing {archive}: member {info.filename!r} is not a regular file.")
                plan.append((info, _safe_member_path(dest, info.filename, archive)))
            for info, target in plan:
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                with zf.open(info) as src:
                    hashes[target.relative_to(dest).as_posix()] = _copy_hashing(src, target)
        return hashes
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        plan = []
        for member in members:
            if member.issym() or member.islnk():
                raise UnsafeArchiveError(f"Refusing {archive}: member {member.name!r} is a link.")
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(f"Refusing {archive}: member {member.name!r} is a device or special file.")
            plan.append((member, _safe_member_path(dest, member.name, archive)))
        for member, target in plan:
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            src = tf.extractfile(member)
            with src:
                hashes[target.relative_to(dest).as_posix()] = _copy_hashing(src, target)
    return hashes


def _copy_hashing(src, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for chunk in iter(lambda: src.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


_IGNORED_TOP = {"__MACOSX", ".DS_Store"}


def model_folder_of(extracted: Path) -> Path:
    """Google archives hold one top folder; the 2020 small BERTs are flat. Return the folder
    that holds the files."""
    children = [c for c in extracted.iterdir() if c.name not in _IGNORED_TOP]
    if len(children) == 1 and children[0].is_dir():
        return children[0]
    return extracted


# ----------------------------------------------------------------------------------------------
# Entries


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _replace_dir(src: Path, dst: Path, root: Path) -> None:
    """Publish folder `src` as `dst`; an older `dst` is moved aside first and then deleted."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        graveyard = _tmp_dir(root) / f"{dst.name}.{uuid.uuid4().hex}.old"
        os.replace(dst, graveyard)
        _remove_tree(graveyard)
    os.replace(src, dst)


def entry_path(root: Path, name: str) -> Path:
    return models_dir(root) / name


def cached_entry(root: Path, name: str, *, warn: bool = True) -> Optional[Path]:
    """The folder of a complete entry, or None (a folder without a manifest is not complete,
    and neither is one that lost a file or whose file changed size since it was cached)."""
    path = entry_path(root, name)
    manifest = read_manifest(path)
    if manifest is None:
        return None
    damage = _damage(path, manifest)
    if damage:
        log = logger.warning if warn else logger.debug
        log("Cache entry %r in %s is damaged (%s); it is not used and will be fetched again",
            name, path, damage)
        return None
    return path


def _damage(folder: Path, manifest: Mapping) -> str:
    """Cheap check (one stat per file) of the files a manifest lists; '' when all are there.
    model.safetensors is left to the hub, which converts it again when it does not match."""
    for filename, info in (manifest.get("files") or {}).items():
        if filename == SAFE_WEIGHTS_NAME:
            continue
        try:
            size = (folder / filename).stat().st_size
        except OSError:
            return f"{filename}: missing"
        if isinstance(info, Mapping) and info.get("size") not in (None, size):
            return f"{filename}: size {size}, expected {info['size']}"
    return ""


def ensure_archive_entry(
    name: str,
    url: str,
    *,
    root: Path,
    file_sha256: Optional[Mapping[str, str]] = None,
    archive_sha256: Optional[str] = None,
    force_download: bool = False,
    local_files_only: bool = False,
    check_layout: Optional[Callable[[Path], None]] = None,
) -> Path:
    """A complete cache entry holding the extracted archive at `url`; downloads only on a miss.

    A hit makes no network call at all (dated Google archives never change). A miss downloads
    under the entry's lock (resuming a `.part` left by an interrupted process), verifies,
    extracts safely, checks per-file hashes and `check_layout`, and publishes atomically.
    """
    if not force_download:
        hit = cached_entry(root, name)
        if hit is not None:
            return hit
    if is_offline(local_files_only):
        raise OfflineError(
            f"{name!r} is not in the cache ({entry_path(root, name)}) and offline mode is on "
            f"(BERT_HUB_OFFLINE=1 or local_files_only=True). Run once with network access, e.g. "
            f"`bert-hub download {name}`, or unset offline mode."
        )
    with entry_lock(root, name):
        if not force_download:
            hit = cached_entry(root, name, warn=False)
            if hit is not None:  # another process finished it while we waited
                return hit
        _sweep_orphans(root, name)
        part = _tmp_dir(root) / f"{name}.part"
        _check_download_space(url, part, root)
        result = download.fetch(url, part, desc=name)
        if archive_sha256 and result.sha256 != archive_sha256:
            if not file_sha256:
                download.discard(part)
                raise IntegrityError(
                    f"The archive of {name!r} from {url} has SHA-256 {result.sha256}, but the "
                    f"registry expects {archive_sha256}. It was deleted; retry, and check "
                    f"BERT_HUB_ENDPOINT / the registry entry if it persists."
                )
            logger.warning(
                "Archive of %r: SHA-256 %s differs from the registry's cross-check %s; "
                "the per-file hashes decide.", name, result.sha256, archive_sha256)
        try:
            folder = _extract_verified(part, root, name, file_sha256, check_layout)
        except Exception:
            download.discard(part)
            raise
        final = _publish(folder, root, name, source=url, archive_sha256=result.sha256,
                         archive_size=result.size, etag=result.etag)
        download.discard(part)
        logger.info("Cached %r in %s", name, final)
        return final


def ensure_local_archive_entry(
    name: str,
    archive: Path,
    *,
    root: Path,
    check_layout: Optional[Callable[[Path], None]] = None,
) -> Path:
    """A cache entry extracted from an archive on local disk (no download, no network)."""
    hit = cached_entry(root, name)
    if hit is not None:
        return hit
    with entry_lock(root, name):
        hit = cached_entry(root, name)
        if hit is not None:
            return hit
        _sweep_orphans(root, name)
        folder = _extract_verified(Path(archive), root, name, None, check_layout)
        return _publish(folder, root, name, source=str(archive))


def _publish(folder: Path, root: Path, name: str, **about) -> Path:
    """Complete the manifest of an extracted, verified folder and rename it into models/."""
    write_manifest(folder, {**read_manifest(folder), "name": name, "created": time.time(), **about})
    final = entry_path(root, name)
    _replace_dir(folder, final, root)
    return final


def _extract_verified(
    archive: Path,
    root: Path,
    name: str,
    file_sha256: Optional[Mapping[str, str]],
    check_layout: Optional[Callable[[Path], None]],
) -> Path:
    """Extract into a unique folder in .tmp, check hashes and layout; return the model folder
    (with a provisional manifest of its files). Nothing is published here."""
    check_free_space(root, archive_members_size(archive), f"extract {archive.name}")
    work = _tmp_dir(root) / f"{name}.{uuid.uuid4().hex}.extract"
    try:
        hashes = safe_extract(archive, work)
        folder = model_folder_of(work)
        prefix = "" if folder == work else folder.relative_to(work).as_posix() + "/"
        files = {}
        for rel, digest in hashes.items():
            if rel.startswith(prefix) and "/" not in rel[len(prefix):]:
                filename = rel[len(prefix):]
                files[filename] = {"sha256": digest, "size": (folder / filename).stat().st_size}
        for filename, expected in (file_sha256 or {}).items():
            got = files.get(filename, {}).get("sha256")
            if got is None:
                raise IntegrityError(
                    f"The archive of {name!r} has no {filename!r}, which the registry lists. "
                    f"The download was deleted; check the registry entry or the mirror.")
            if got != expected:
                raise IntegrityError(
                    f"{filename!r} in the archive of {name!r} has SHA-256 {got}, the registry "
                    f"expects {expected}. The download was deleted; retry, and check the mirror "
                    f"(BERT_HUB_ENDPOINT) or the registry entry if it persists.")
        if check_layout is not None:
            check_layout(folder)
        write_manifest(folder, {"files": files})
        if folder != work:
            # Lift the top folder out so that the published entry is the model folder itself.
            lifted = _tmp_dir(root) / f"{name}.{uuid.uuid4().hex}.model"
            os.replace(folder, lifted)
            _remove_tree(work)
            return lifted
        return work
    except BaseException:
        _remove_tree(work)
        raise


def _check_download_space(url: str, part: Path, root: Path) -> None:
    try:
        size = download.head(url).size
    except Exception as exc:  # a HEAD that fails is not fatal: the GET will tell
        logger.debug("HEAD %s failed (%s); skipping the free-space check", url, exc)
        return
    if size:
        have = part.stat().st_size if part.exists() else 0
        # The archive, then its extracted files beside it (a zip of float32 barely compresses).
        check_free_space(root, max(size - have, 0) + size, f"download {url}")


def _sweep_orphans(root: Path, name: str) -> None:
    """Remove extraction folders of `name` left by dead processes (we hold its lock)."""
    tmp = root / _TMP
    if not tmp.is_dir():
        return
    for leftover in tmp.glob(f"{name}.*"):
        if leftover.suffix in (".extract", ".model", ".old"):
            _remove_tree(leftover)


# ----------------------------------------------------------------------------------------------
# Single files (cached_path)


def ensure_file(url: str, *, root: Path, force_download: bool = False, local_files_only: bool = False) -> Path:
    """A single file downloaded from `url` into files/, verified, published atomically."""
    name = url_entry_name(url)
    final = root / "files" / name
    meta = final.with_name(final.name + ".json")
    if not force_download and final.exists() and meta.exists():
        return final
    if is_offline(local_files_only):
        raise OfflineError(
            f"{url} is not in the cache ({final}) and offline mode is on (BERT_HUB_OFFLINE=1 or "
            f"local_files_only=True). Run once with network access or unset offline mode.")
    with entry_lock(root, name):
        if not force_download and final.exists() and meta.exists():
            return final
        part = _tmp_dir(root) / f"{name}.part"
        _check_download_space(url, part, root)
        result = download.fetch(url, part, desc=name)
        final.parent.mkdir(parents=True, exist_ok=True)
        if meta.exists():
            meta.unlink()
        os.replace(part, final)
        tmp_meta = meta.with_name(meta.name + f".{uuid.uuid4().hex}.tmp")
        tmp_meta.write_text(json.dumps({"source": url, "sha256": result.sha256, "size": result.size,
                                        "etag": result.etag, "created": time.time()}))
        os.replace(tmp_meta, meta)
        download.discard(part)
        return final


def url_entry_name(url: str) -> str:
    """A readable, collision-free entry name for an arbitrary URL."""
    base = url.rstrip("/").rsplit("/", 1)[-1] or "download"
    for ext in (".tar.gz", ".tgz", ".zip", ".tar"):
        if base.endswith(ext):
            base = base[: -len(ext)]
            break
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in base)[:80]
    return f"url--{safe}--{hashlib.sha256(url.encode()).hexdigest()[:12]}"


# ----------------------------------------------------------------------------------------------
# Listing, verifying, removing, pruning


@dataclass(frozen=True)
class CacheEntry:
    name: str
    path: Path
    size: int
    source: str
    converted: bool
    files: Mapping[str, Mapping] = field(default_factory=dict)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def list_entries(root: Path) -> List[CacheEntry]:
    """Complete model entries and single cached files, sorted by name."""
    entries = []
    mdir = models_dir(root)
    if mdir.is_dir():
        for folder in sorted(mdir.iterdir()):
            manifest = read_manifest(folder)
            if manifest is None:
                continue
            entries.append(CacheEntry(
                name=folder.name, path=folder, size=_tree_size(folder),
                source=manifest.get("source", ""),
                converted=(folder / SAFE_WEIGHTS_NAME).exists(),
                files=manifest.get("files", {})))
    fdir = root / "files"
    if fdir.is_dir():
        for meta in sorted(fdir.glob("*.json")):
            target = meta.with_suffix("")
            if not target.exists():
                continue
            info = json.loads(meta.read_text())
            entries.append(CacheEntry(
                name=target.name, path=target, size=target.stat().st_size,
                source=info.get("source", ""), converted=False,
                files={target.name: {"sha256": info.get("sha256"), "size": info.get("size")}}))
    return entries


def find_entry(root: Path, name: str) -> CacheEntry:
    for entry in list_entries(root):
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in list_entries(root)) or "none"
    raise EntryNotFoundError(
        f"No cache entry named {name!r} in {root}. Cached entries: {known}. "
        f"See `bert-hub cache ls`.")


def verify_entry(entry: CacheEntry) -> List[str]:
    """Problems found by re-hashing every file of an entry against its manifest ([] if none)."""
    problems = []
    folder = entry.path if entry.path.is_dir() else entry.path.parent
    for filename, info in entry.files.items():
        path = folder / filename
        if not path.exists():
            problems.append(f"{filename}: missing")
            continue
        if info.get("size") is not None and path.stat().st_size != info["size"]:
            problems.append(f"{filename}: size {path.stat().st_size}, expected {info['size']}")
            continue
        if info.get("sha256") and sha256_file(path) != info["sha256"]:
            problems.append(f"{filename}: SHA-256 differs from the one recorded when cached")
    return problems


def remove_entry(root: Path, name: str) -> CacheEntry:
    """Delete one entry (under its lock, so no reader or writer is mid-way)."""
    entry = find_entry(root, name)
    with entry_lock(root, name):
        if entry.path.is_dir():
            graveyard = _tmp_dir(root) / f"{name}.{uuid.uuid4().hex}.old"
            os.replace(entry.path, graveyard)
            _remove_tree(graveyard)
        else:
            meta = entry.path.with_name(entry.path.name + ".json")
            meta.unlink(missing_ok=True)
            entry.path.unlink(missing_ok=True)
    return entry


_TMP_ITEM = re.compile(r"^(.+?)(\.[0-9a-f]{32}\.(?:extract|model|old)|\.part(?:\.meta\.json)?)$")


def prune(root: Path) -> List[Path]:
    """Remove what no process is using: temp files and folders, incomplete entries, stale
    locks. A temp item is only removed when its entry's lock can be taken at once."""
    removed: List[Path] = []
    tmp = root / _TMP
    if tmp.is_dir():
        for item in sorted(tmp.iterdir()):
            match = _TMP_ITEM.match(item.name)
            name = match.group(1) if match else item.name
            try:
                with entry_lock(root, name, timeout=0):
                    _remove_tree(item) if item.is_dir() else item.unlink(missing_ok=True)
                    removed.append(item)
            except LockTimeoutError:
                logger.info("Skipping %s: another process is using it", item)
    mdir = models_dir(root)
    if mdir.is_dir():
        for folder in sorted(mdir.iterdir()):
            if read_manifest(folder) is None:
                try:
                    with entry_lock(root, folder.name, timeout=0):
                        _remove_tree(folder)
                        removed.append(folder)
                except LockTimeoutError:
                    pass
    return removed
