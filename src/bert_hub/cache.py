"""The on-disk cache's entries: how they are filled, found, listed, verified and removed.

Where things live and the per-entry lock are ``cache_layout`` (its names are re-exported here).
Nothing partial is ever visible: a download grows in ``.tmp``, is verified, extracted into a
unique folder in ``.tmp``, checked, given its manifest and only then renamed into ``models/``.
The per-entry lock avoids duplicate work; correctness never depends on it (on NFS it may not
hold), because every publication is verify-then-``os.replace`` and readers only trust entries
that carry a valid manifest. A malformed manifest or record never breaks listing, verifying or
removing: the entry shows as damaged, is not served, and ``prune`` or ``rm`` clears it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from . import archive as archives
from . import cache_layout as layout
from . import disk, download
from .archive import is_archive, safe_extract  # noqa: F401  (re-exported: the cache's extractor)
from .cache_layout import (  # noqa: F401  (re-exported: where entries live, their locks)
    cache_root,
    entry_lock,
    entry_path,
    is_offline,
    models_dir,
)
from .disk import check_free_space  # noqa: F401  (re-exported)
from .errors import (
    ArchiveLayoutError,
    BertHubError,
    CacheNotWritableError,
    EntryNotFoundError,
    InsufficientSpaceError,
    IntegrityError,
    LockTimeoutError,
    OfflineError,
    UnsafeArchiveError,
    UnsupportedURLError,
)
from .filenames import SAFE_WEIGHTS_NAME
from .manifest import (  # noqa: F401  (re-exported: what an entry records about itself)
    MANIFEST_NAME,
    TEMP_SUFFIX,
    entry_stamp,
    is_reserved_name,
    load_manifest,
    load_record,
    read_manifest,
    record_file,
    sha256_file,
    temp_path,
    valid_file_record,
    write_manifest,
)

logger = logging.getLogger(__name__)


def needs_network(url: str) -> bool:
    """Whether fetching `url` uses the network: not for a file on this machine (file:///path,
    a plain path, the package's own data), which offline mode therefore still reads."""
    try:
        download.local_path(url)
    except UnsupportedURLError:
        return True
    return False


# ----------------------------------------------------------------------------------------------
# Extracted folders


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
        if info["size"] != size:
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
    under the entry's lock (resuming a `.part` left by an interrupted process, or reusing the
    verified archive kept by an attempt that ran out of disk space), verifies, extracts safely,
    checks per-file hashes and `check_layout`, and publishes atomically.
    """
    if not force_download:
        hit = cached_entry(root, name)
        if hit is not None:
            return hit
    if is_offline(local_files_only) and needs_network(url):
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
        archive, result = _kept_download(root, name, url, discard=force_download) or \
            _download(root, name, url)
        if archive_sha256 and result.sha256 != archive_sha256:
            if not file_sha256:
                download.discard(archive)
                raise IntegrityError(
                    f"The archive of {name!r} from {url} has SHA-256 {result.sha256}, but the "
                    f"registry expects {archive_sha256}. It was deleted; retry, and check "
                    f"BERT_HUB_ENDPOINT / the registry entry if it persists."
                )
            logger.warning(
                "Archive of %r: SHA-256 %s differs from the registry's cross-check %s; "
                "the per-file hashes decide.", name, result.sha256, archive_sha256)
        try:
            folder = _extract_verified(archive, root, name, file_sha256, check_layout)
        except (IntegrityError, UnsafeArchiveError, ArchiveLayoutError):
            download.discard(archive)   # the archive itself is at fault: never extract it again
            raise
        except (InsufficientSpaceError, CacheNotWritableError) as exc:
            # The disk is at fault: keep the verified download, so that the retry only extracts.
            kept = _keep_download(archive, root, name, result.sha256)
            raise type(exc)(f"{exc} The verified download is kept ({kept}): the next attempt "
                            f"extracts it without downloading it again.") from None
        final = _publish(folder, root, name, source=url, archive_sha256=result.sha256,
                         archive_size=result.size, etag=result.etag)
        download.discard(archive)
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
    layout.replace_dir(folder, final, root)
    return final


def _extract_verified(
    archive: Path,
    root: Path,
    name: str,
    file_sha256: Optional[Mapping[str, str]],
    check_layout: Optional[Callable[[Path], None]],
) -> Path:
    """Extract into a unique folder in .tmp, check hashes and layout; return the model folder
    (with a provisional manifest of its files). Nothing is published here. Members named like
    the cache's own files (the manifest, temp files) are left out: they would make the entry
    look damaged on every load."""
    work = layout.tmp_dir(root) / f"{name}.{uuid.uuid4().hex}.extract"
    try:
        hashes = safe_extract(archive, work, skip=is_reserved_name)
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
        # archive_checked: the whole archive was verified (every zip CRC, a tar's compressed
        # stream to its end); entries extracted before that was done lack the key.
        write_manifest(folder, {"files": files, "archive_checked": True})
        if folder != work:
            # Lift the top folder out so that the published entry is the model folder itself.
            lifted = layout.tmp_dir(root) / f"{name}.{uuid.uuid4().hex}.model"
            with disk.writing(lifted, f"extracting {archive.name}"):
                os.replace(folder, lifted)
            layout.remove_tree(work)
            return lifted
        return work
    except BaseException:
        layout.remove_tree(work)
        raise


def _download(root: Path, name: str, url: str) -> Tuple[Path, download.FetchResult]:
    """Fetch `url` into .tmp/<name>.part (resuming a prefix there) after a free-space check."""
    part = layout.tmp_dir(root) / f"{name}.part"
    _check_download_space(url, part, root)
    return part, download.fetch(url, part, desc=name)


def _keep_download(archive: Path, root: Path, name: str, sha256: str) -> Path:
    """Rename a verified download so that it survives until the next attempt: its SHA-256 is in
    its name (a rename needs no free space, and no record has to be written on a full disk)."""
    kept = root / layout.TMP / f"{name}.{sha256}.verified"
    try:
        os.replace(archive, kept)
    except OSError:
        return archive
    return kept


def _kept_download(root: Path, name: str, url: str, *,
                   discard: bool) -> Optional[Tuple[Path, download.FetchResult]]:
    """A download of `name` kept by an attempt that ran out of disk space, if it still hashes to
    the SHA-256 in its name (else, or with `discard`, it is deleted)."""
    for kept in sorted((root / layout.TMP).glob(f"{name}.*.verified")):
        sha256 = kept.name[len(name) + 1: -len(".verified")]
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            continue   # another entry's, whose name starts with ours
        if not discard and sha256_file(kept) == sha256:
            logger.info("Using the verified download of %r kept in %s", name, kept)
            return kept, download.FetchResult(path=kept, size=kept.stat().st_size, sha256=sha256,
                                              etag=None, url=url)
        kept.unlink(missing_ok=True)
    return None


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
    tmp = root / layout.TMP
    if not tmp.is_dir():
        return
    for leftover in tmp.glob(f"{name}.*"):
        if leftover.suffix in (".extract", ".model", ".old"):
            layout.remove_tree(leftover)


# ----------------------------------------------------------------------------------------------
# Single files (cached_path)


def ensure_file(url: str, *, root: Path, force_download: bool = False, local_files_only: bool = False) -> Path:
    """A single file downloaded from `url` into files/, verified, published atomically."""
    name = url_entry_name(url)
    final = root / "files" / name
    meta = final.with_name(final.name + ".json")
    if not force_download and final.exists() and meta.exists():
        return final
    if is_offline(local_files_only) and needs_network(url):
        raise OfflineError(
            f"{url} is not in the cache ({final}) and offline mode is on (BERT_HUB_OFFLINE=1 or "
            f"local_files_only=True). Run once with network access or unset offline mode.")
    with entry_lock(root, name):
        if not force_download and final.exists() and meta.exists():
            return final
        part, result = _download(root, name, url)
        tmp_meta = meta.with_name(meta.name + f".{uuid.uuid4().hex}.tmp")
        try:
            with disk.writing(final, f"caching {url}"):
                final.parent.mkdir(parents=True, exist_ok=True)
                meta.unlink(missing_ok=True)
                os.replace(part, final)
                tmp_meta.write_text(json.dumps({"source": url, "sha256": result.sha256,
                                                "size": result.size, "etag": result.etag,
                                                "created": time.time()}))
                os.replace(tmp_meta, meta)
        finally:
            tmp_meta.unlink(missing_ok=True)
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
    problem: str = ""             # why the entry cannot be used ('' when it is complete)
    archive_checked: bool = True  # False: extracted from a tar before its stream was verified


def _children(folder: Path) -> List[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _tree_size(path: Path) -> int:
    """Bytes in a file or folder, not following links; files vanishing meanwhile count 0."""
    total = 0
    for base, _, names in os.walk(path) if path.is_dir() else [(path.parent, [], [path.name])]:
        for filename in names:
            try:
                total += os.lstat(os.path.join(base, filename)).st_size
            except OSError:
                pass
    return total


def list_entries(root: Path) -> List[CacheEntry]:
    """Model entries (complete or damaged) and single cached files, sorted by name. A folder
    without a manifest is work in progress or debris, not an entry (`prune` removes it)."""
    entries = []
    for folder in _children(models_dir(root)):
        manifest, problem = load_manifest(folder)
        if manifest is None and not problem:
            continue
        manifest = manifest or {}
        entries.append(CacheEntry(
            name=folder.name, path=folder, size=_tree_size(folder),
            source=str(manifest.get("source", "")),
            converted=(folder / SAFE_WEIGHTS_NAME).is_file(),
            files=manifest.get("files", {}), problem=problem,
            archive_checked=bool(manifest.get("archive_checked")) or not _tar_source(manifest)))
    for meta in _children(root / "files"):
        target = meta.with_suffix("")
        if meta.suffix != ".json" or not target.is_file():
            continue
        record, problem = load_record(meta, target)
        entries.append(CacheEntry(
            name=target.name, path=target, size=_tree_size(target),
            source=str(record.get("source", "")), converted=False,
            files={} if problem else {target.name: record}, problem=problem))
    return entries


_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


def _tar_source(manifest: Mapping) -> bool:
    """Whether an entry came from a tar archive (whose stream older versions did not verify)."""
    source = str(manifest.get("source", ""))
    if source.lower().endswith(_TAR_SUFFIXES):
        return True
    try:
        return archives.archive_kind(Path(source)).startswith("tar")
    except (BertHubError, OSError, ValueError):
        return False


def find_entry(root: Path, name: str) -> CacheEntry:
    entries = list_entries(root)
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries) or "none"
    raise EntryNotFoundError(
        f"No cache entry named {name!r} in {root}. Cached entries: {known}. "
        f"See `bert-hub cache ls`.")


def verify_entry(entry: CacheEntry) -> List[str]:
    """Problems found by re-hashing every file of an entry against its manifest ([] if none);
    a cached file that is an archive is also checked whole (CRCs, compressed stream)."""
    if entry.problem:
        return [entry.problem]
    problems = []
    folder = entry.path.parent if entry.path.is_file() else entry.path
    for filename, info in entry.files.items():
        path = folder / filename
        try:
            size = path.stat().st_size
            if size != info["size"]:
                problems.append(f"{filename}: size {size}, expected {info['size']}")
            elif sha256_file(path) != info["sha256"]:
                problems.append(f"{filename}: SHA-256 differs from the one recorded when cached")
        except FileNotFoundError:
            problems.append(f"{filename}: missing")
        except OSError as exc:
            problems.append(f"{filename}: unreadable ({exc.strerror or exc})")
    if not entry.archive_checked:
        problems.append(
            "extracted from a tar archive by an older bert_hub, which did not verify the archive's "
            "compressed stream (CRC-32 and length): its files may be corrupt")
    if entry.path.is_file() and not problems and is_archive(entry.path):
        try:
            archives.verify_archive(entry.path)
        except BertHubError as exc:
            problems.append(f"{entry.name}: {exc}")
    return problems


def remove_entry(root: Path, name: str) -> CacheEntry:
    """Delete one entry (under its lock, so no writer of this cache is mid-way; a reader that
    already opened its files keeps them, one that had not fetches the entry again)."""
    entry = find_entry(root, name)
    with entry_lock(root, name), disk.writing(entry.path, f"removing {name!r}"):
        try:
            if entry.path.is_dir():
                layout.bury(entry.path, root)
            else:
                layout.remove_any(entry.path.with_name(entry.path.name + ".json"))
                entry.path.unlink()
        except FileNotFoundError:
            raise EntryNotFoundError(f"Cache entry {name!r} was removed by another process "
                                     f"meanwhile.") from None
    return entry


_TMP_ITEM = re.compile(r"^(.+?)(\.[0-9a-f]{32}\.(?:extract|model|old)|\.[0-9a-f]{64}\.verified"
                       r"|\.part(?:\.meta\.json(?:\.[0-9a-f]{32}\.tmp)?)?)$")


def prune(root: Path) -> List[Path]:
    """Remove what no process is using: temp files and folders (in .tmp, in entries, beside
    single files), incomplete or damaged entries, and the lock file of every entry that no
    process holds (a lock file is made again when next needed). Each item goes only when its
    entry's lock can be taken at once; a lock file is removed while held, so a process waiting
    on it finds it gone and takes a new one."""
    removed: List[Path] = []
    locks_before = set(_children(root / layout.LOCKS))   # the ones prune creates go without a word

    def remove(name: str, item: Path) -> None:
        try:
            with entry_lock(root, name, timeout=0):
                layout.remove_any(item)
                if item.parent.name != layout.LOCKS or item in locks_before:
                    removed.append(item)
        except LockTimeoutError:
            logger.info("Skipping %s: another process is using it", item)

    for item in _children(root / layout.TMP):
        match = _TMP_ITEM.match(item.name)
        remove(match.group(1) if match else item.name, item)
    for folder in _children(models_dir(root)):
        if read_manifest(folder) is None:
            remove(folder.name, folder)
            continue
        for item in _children(folder):
            if TEMP_SUFFIX.search(item.name):
                remove(folder.name, item)
    for item in _children(root / "files"):
        if TEMP_SUFFIX.search(item.name):
            remove(item.name.split(".", 1)[0], item)
    for lock in _children(root / layout.LOCKS):     # last: the removals above take locks too
        if lock.suffix == ".lock":
            remove(lock.name[: -len(".lock")], lock)
    return removed
