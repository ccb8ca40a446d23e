"""Disk space for the cache: refuse up front what cannot fit, watch the free space while writing,
and turn the OS errors of a full or unwritable disk into typed errors that name the path.

The reserve kept free beyond what a job needs scales with the job (a tenth of it, between 1 MB
and 64 MB): a small disk still takes a small model, and a large job never fills a disk to the
last byte. Checking before writing is not enough on its own (other processes write too, and an
archive may lie about its sizes), so writers also look at the free space as they go and treat
``ENOSPC`` (and the file-size limit's ``EFBIG``) as the same typed error.
"""
from __future__ import annotations

import errno
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .errors import BertHubError, CacheNotWritableError, InsufficientSpaceError

_RESERVE_MIN = 1 << 20
_RESERVE_MAX = 64 << 20
_WATCH_EVERY = 32 << 20     # bytes written between two looks at the free space
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_FIX = ("Free some space (`bert-hub cache prune`, `bert-hub cache rm NAME`) or point "
        "BERT_HUB_CACHE at a larger disk, then retry.")


def reserve(needed: int) -> int:
    """Bytes to leave free beyond `needed`: a tenth of it, at least 1 MB, at most 64 MB."""
    return min(_RESERVE_MAX, max(_RESERVE_MIN, needed // 10))


def free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError as exc:
        raise typed_os_error(exc, folder, "checking the free space") from None


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Fail before writing anything when `needed` bytes (plus the reserve) do not fit."""
    folder = Path(folder)
    with writing(folder, f"preparing to {what}"):
        folder.mkdir(parents=True, exist_ok=True)
    free = free_bytes(folder)
    if free < needed + reserve(needed):
        raise InsufficientSpaceError(
            f"Not enough disk space to {what}: needs about {mb(needed + reserve(needed))} in "
            f"{folder}, only {mb(free)} free. {_FIX}")


class SpaceWatch:
    """Counts bytes as they are written and looks at the free space every 32 MB: a write that
    would eat the reserve stops with InsufficientSpaceError, whatever was declared up front."""

    def __init__(self, folder: Path, total: int, what: str):
        self.folder, self.what = Path(folder), what
        self.reserve = reserve(total)
        self._since = 0

    def wrote(self, n: int) -> None:
        self._since += n
        if self._since < _WATCH_EVERY:
            return
        self._since = 0
        free = free_bytes(self.folder)
        if free < self.reserve:
            raise InsufficientSpaceError(
                f"Stopped to {self.what}: only {mb(free)} left free in {self.folder}, less than "
                f"the {mb(self.reserve)} kept in reserve. {_FIX}")


def typed_os_error(exc: OSError, path: os.PathLike, what: str) -> BertHubError:
    """The typed error for an OSError met while writing `path` in the cache."""
    reason = exc.strerror or str(exc)
    if exc.errno in _FULL:
        return InsufficientSpaceError(
            f"No space left while {what}: writing {os.fspath(path)} failed ({reason}). {_FIX}")
    return CacheNotWritableError(
        f"Cannot write {os.fspath(path)} while {what} ({reason}). Point BERT_HUB_CACHE (or "
        f"cache_dir=) at a folder you can write, with room to spare.")


@contextmanager
def writing(path: os.PathLike, what: str, *, any_error: bool = True) -> Iterator[None]:
    """Run a block that writes `path`; an OSError becomes InsufficientSpaceError (disk full,
    quota, file-size limit) or CacheNotWritableError (anything else), naming the path. With
    any_error=False only a full disk is translated: the block also reads files whose own
    errors are not the cache's to name."""
    try:
        yield
    except BertHubError:
        raise
    except OSError as exc:
        if not any_error and exc.errno not in _FULL:
            raise
        raise typed_os_error(exc, path, what) from None


def mb(n: Optional[int]) -> str:
    return f"{(n or 0) / 1e6:,.1f} MB"
