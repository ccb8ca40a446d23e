"""Where the cache keeps things, and who may write them: the root, its folders, the lock of
each entry, and publishing or burying a folder in one rename.

Layout under the cache root (``BERT_HUB_CACHE``, else ``$XDG_CACHE_HOME/bert_hub``, else
``~/.cache/bert_hub``)::

    models/<entry>/          a complete, verified model folder (its manifest is MANIFEST_NAME)
    files/<entry>            a single cached file (``cached_path``), manifest beside it
    .locks/<entry>.lock      one lock per entry
    .tmp/                    resumable ``<entry>.part`` downloads, extraction folders, verified
                             downloads kept after a full disk (``<entry>.<sha256>.verified``)

The per-entry lock avoids duplicate work; correctness never depends on it (on NFS it may not
hold): every publication is verify-then-``os.replace``.
"""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import filelock

from . import disk, env
from .errors import CacheNotWritableError, LockTimeoutError

logger = logging.getLogger(__name__)

TMP = ".tmp"
LOCKS = ".locks"
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


def entry_path(root: Path, name: str) -> Path:
    return models_dir(root) / name


def tmp_dir(root: Path) -> Path:
    """The cache's work folder, created on first use."""
    path = root / TMP
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
    lock_dir = root / LOCKS
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
# Folders in and out of sight


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def remove_any(path: Path) -> None:
    remove_tree(path) if path.is_dir() else path.unlink(missing_ok=True)


def replace_dir(src: Path, dst: Path, root: Path) -> None:
    """Publish folder `src` as `dst`; an older `dst` is moved aside first and then deleted."""
    with disk.writing(dst, "publishing a cache entry"):
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            bury(dst, root)
        os.replace(src, dst)


def bury(folder: Path, root: Path) -> None:
    """Move an entry folder out of sight in one rename, then delete it (a reader that already
    opened its files keeps reading them; the next lookup misses and fetches again)."""
    graveyard = tmp_dir(root) / f"{folder.name}.{uuid.uuid4().hex}.old"
    os.replace(folder, graveyard)
    remove_tree(graveyard)
