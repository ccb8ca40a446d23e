"""What a cache entry records about itself: the manifest (``.bert_hub.json``: source, archive
hash, every file's SHA-256 and size), the record beside a single cached file, and the names of
the temp files the cache writes inside entries.

A manifest is the mark of a complete entry, so it is read defensively: one that cannot be read,
is not JSON, or does not have the shape we write is a *problem* (the entry is damaged: never
served, listed as such, removable), never an exception in the caller's face.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Optional, Tuple

from . import disk
from .filenames import TEMP_SUFFIX, temp_path  # noqa: F401  (re-exported: the cache's temp names)

MANIFEST_NAME = ".bert_hub.json"
_CHUNK = 1 << 20
_MAX_MANIFEST = 16 << 20        # bytes; a manifest lists a handful of files



def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(folder: Path) -> Optional[dict]:
    """The manifest of a published entry folder, or None when the folder is not a complete entry
    (no manifest, or one that cannot be trusted)."""
    return load_manifest(folder)[0]


def load_manifest(folder: Path) -> Tuple[Optional[dict], str]:
    """(manifest, '') for a valid one, (None, '') where there is none, (None, problem) for one
    that cannot be read or does not have the shape we write."""
    try:
        with open(folder / MANIFEST_NAME, encoding="utf-8") as f:
            text = f.read(_MAX_MANIFEST + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None, ""
    except (OSError, UnicodeError) as exc:
        return None, f"manifest unreadable ({exc})"
    data, problem = _parse_record(text)
    if not problem:
        problem = _files_problem(data.get("files", {}))
    return (None, f"{problem}; remove the entry and load it again") if problem else (data, "")


def _files_problem(files) -> str:
    if not isinstance(files, Mapping):
        return "manifest's 'files' is not an object"
    for filename, info in files.items():
        if not (_plain_file_name(filename) and valid_file_record(info)):
            return f"manifest record of {filename!r} is malformed"
    return ""


def _parse_record(text: str) -> Tuple[dict, str]:
    if len(text) > _MAX_MANIFEST:
        return {}, "manifest larger than any we write"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return {}, f"manifest is not valid JSON ({str(exc)[:80]})"
    if not isinstance(data, dict):
        return {}, f"manifest is a JSON {type(data).__name__}, not an object"
    return data, ""


def _plain_file_name(name) -> bool:
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name


def valid_file_record(info) -> bool:
    return (isinstance(info, Mapping) and type(info.get("size")) is int and info["size"] >= 0
            and isinstance(info.get("sha256"), str))


def write_manifest(folder: Path, manifest: Mapping) -> None:
    """Write (or replace) a manifest atomically."""
    tmp = folder / f"{MANIFEST_NAME}.{uuid.uuid4().hex}.tmp"
    try:
        with disk.writing(tmp, "recording a cache entry"):
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=1, sort_keys=True)
            os.replace(tmp, folder / MANIFEST_NAME)
    finally:
        tmp.unlink(missing_ok=True)


def record_file(folder: Path, path: Path) -> None:
    """Record a file now in entry ``folder`` (its hash and size) in the entry's manifest."""
    manifest = read_manifest(folder) or {}
    files = dict(manifest.get("files", {}))
    files[path.name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    write_manifest(folder, {**manifest, "files": files})


def is_reserved_name(name: str) -> bool:
    """Names the cache writes inside an entry: an archive member named so is not extracted."""
    return name == MANIFEST_NAME or (name.startswith(".") and bool(TEMP_SUFFIX.search(name)))


def entry_stamp(folder: Path) -> Optional[tuple]:
    """What identifies one publication of an entry folder (None once it is gone): a reader
    compares it before and after to learn that `cache rm` or a re-download replaced it."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino, (read_manifest(folder) or {}).get("created")


def load_record(meta: Path, target: Path) -> Tuple[dict, str]:
    """The record of a single cached file: {"source", "sha256", "size", ...}, or a problem."""
    try:
        with open(meta, encoding="utf-8") as f:
            record, problem = _parse_record(f.read(_MAX_MANIFEST + 1))
    except (OSError, UnicodeError) as exc:
        record, problem = {}, f"record unreadable ({exc})"
    if not problem and not valid_file_record(record):
        problem = "record has no valid sha256 and size"
    return record, (f"{problem}; remove the entry and download it again" if problem else "")
