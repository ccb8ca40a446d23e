"""Name, path or URL -> the local files of a model (``ModelFiles``).

One function per layout: our own folder (``bert_config.json`` + ``model.safetensors``),
pytorch-pretrained-bert 0.6.2's (``bert_config.json`` + ``pytorch_model.bin``), Hugging Face's
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``), a Google release folder
(``bert_config.json`` + ``bert_model.ckpt.*``, converted lazily), an archive of any of these on
disk or at a URL (``http(s)://``, ``s3://``, ``file://``), and registry names. Downloads and
extractions land in the cache (``cache.py``); a Google checkpoint is converted once, under the
entry's lock, to ``model.safetensors`` beside it. This module never imports torch.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Optional, TypeVar, Union

from . import cache, disk, hf_hub
from .errors import ArchiveLayoutError, EntryNotFoundError, InvalidArgumentError
from .filenames import (  # noqa: F401  (CONFIG_NAME, WEIGHTS_NAME: 0.6.2's names, re-exported)
    CONFIG_NAME,
    HF_CONFIG_NAME,
    SAFE_WEIGHTS_NAME,
    TF_CHECKPOINT_NAME,
    TOKENIZER_CONFIG_NAME,
    VOCAB_NAME,
    WEIGHTS_NAME,
)
from .config_files import CONFIG_NAMES
from .registry import load_registry, resolve_url
from .weights import WEIGHTS_PREFERENCE

TF_INDEX_NAME = f"{TF_CHECKPOINT_NAME}.index"  # a Google release folder (TensorFlow checkpoint)

logger = logging.getLogger(__name__)

ACCEPTED_FORMS = (
    "a folder with bert_config.json + model.safetensors (saved by bert_hub), "
    "a folder with bert_config.json + pytorch_model.bin (pytorch-pretrained-bert 0.6.2), "
    "a Hugging Face folder with config.json + model.safetensors or pytorch_model.bin (or their "
    "sharded *.index.json + shards), "
    "a Google release folder (bert_config.json + bert_model.ckpt.*), an archive (.zip, .tar.gz) "
    "of any of these, a URL to such an archive (http(s)://, s3://, file://), or a registry name "
    "(see `bert-hub list`), or a Hugging Face Hub id (org/name, hf://org/name)"
)


@dataclass(frozen=True)
class ModelFiles:
    """Where a model's files are on disk; ``None`` for a file the layout does not have."""

    folder: Path
    config_file: Optional[Path]
    weights_file: Optional[Path]
    vocab_file: Optional[Path]
    do_lower_case: Optional[bool] = None   # from the registry, when the name came from it
    max_len: Optional[int] = None          # from the registry, when the name came from it
    tf_checkpoint: Optional[Path] = None   # a Google checkpoint prefix not converted by this call
                                           # (a read-only folder, or need_weights=False)
    tokenizer_config_file: Optional[Path] = None  # tokenizer_config.json (casing, max length)


def resolve_model(
    name_or_path: Union[str, os.PathLike],
    *,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    force_download: bool = False,
    local_files_only: bool = False,
    need_weights: bool = True,
    revision: Optional[str] = None,
    token=None,
) -> ModelFiles:
    """Return the local files of ``name_or_path``; raise a typed error naming what was tried.

    The one resolver of the library: models, ``BertTokenizer.from_pretrained`` and
    ``bert-hub convert`` all come here. ``need_weights=False`` (a tokenizer, ``from_pretrained(
    state_dict=...)``, a conversion) accepts a folder that has a config or a vocabulary but no
    weights, and a vocabulary file on its own (0.6.2's ``BertTokenizer.from_pretrained(vocab)``);
    it never converts, and ``tf_checkpoint`` then names the Google checkpoint found, if any.
    ``revision`` and ``token`` apply to Hugging Face Hub ids only.
    """
    text = os.fspath(name_or_path)
    if not str(text).strip():
        raise EntryNotFoundError(
            f"the model name or path is empty ({text!r}). Accepted: {_accepted(need_weights)}.")
    repo_id = hf_hub.hub_repo_id(text)
    if repo_id is not None:
        return _resolve_hf_repo(repo_id, revision=revision, token=token, cache_dir=cache_dir,
                                force_download=force_download, local_files_only=local_files_only,
                                need_weights=need_weights)
    if revision is not None:
        raise InvalidArgumentError(
            f"revision={revision!r} applies to Hugging Face Hub ids (org/name, hf://org/name); "
            f"{text!r} is not one")
    if _looks_like_url(text):
        return _resolve_url(text, cache_dir=cache_dir, force_download=force_download,
                            local_files_only=local_files_only, need_weights=need_weights)
    path = Path(text).expanduser()
    if path.is_dir():
        return _resolve_local_folder(path, need_weights=need_weights, cache_dir=cache_dir)
    if path.is_file():
        if not need_weights and not text.endswith(_ARCHIVE_SUFFIXES) and not cache.is_archive(path):
            return ModelFiles(folder=path.parent, config_file=None, weights_file=None,
                              vocab_file=path)
        return _resolve_local_file(path, need_weights=need_weights, cache_dir=cache_dir)
    if _looks_like_path(text):
        raise EntryNotFoundError(
            f"{text!r} does not exist. Accepted: {_accepted(need_weights)}; check the path.")
    return _resolve_registry_name(text, cache_dir=cache_dir, force_download=force_download,
                                  local_files_only=local_files_only, need_weights=need_weights)


# -- local folders ------------------------------------------------------------------------------
def _resolve_local_folder(folder: Path, *, need_weights: bool, cache_dir=None,
                          lock_name: Optional[str] = None) -> ModelFiles:
    """Our folder, a 0.6.2 folder or a Hugging Face folder (whole or sharded weights, in
    ``weights.WEIGHTS_PREFERENCE`` order: safetensors first)."""
    found = {p.name for p in folder.iterdir()}
    config = _first_present(folder, found, CONFIG_NAMES)
    weights = _first_present(folder, found, WEIGHTS_PREFERENCE)
    vocab = folder / VOCAB_NAME if VOCAB_NAME in found else None
    tokenizer_config = folder / TOKENIZER_CONFIG_NAME if TOKENIZER_CONFIG_NAME in found else None
    if config is not None and need_weights and _tf_prefix(folder) is not None and \
            (weights is None or weights.name == SAFE_WEIGHTS_NAME):
        return _resolve_google_tf_folder(folder, need_weights=need_weights, cache_dir=cache_dir,
                                         lock_name=lock_name)
    if config is not None and (weights is not None or not need_weights):
        return ModelFiles(folder=folder, config_file=config, weights_file=weights,
                          vocab_file=vocab, tokenizer_config_file=tokenizer_config,
                          tf_checkpoint=None if need_weights else _tf_prefix(folder))
    if not need_weights and vocab is not None:
        return ModelFiles(folder=folder, config_file=None, weights_file=None, vocab_file=vocab,
                          tokenizer_config_file=tokenizer_config)
    if not need_weights:
        raise EntryNotFoundError(
            f"{str(folder)!r} has no {VOCAB_NAME}, {CONFIG_NAME} or {HF_CONFIG_NAME} (found: "
            f"{', '.join(sorted(found)) or 'nothing'}): pass a folder holding a BERT vocabulary "
            f"or model. Accepted: {_accepted(need_weights)}.")
    looked_for = f"{CONFIG_NAME} or {HF_CONFIG_NAME}" if config is None else \
        f"{SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME} (or their sharded *.index.json)"
    raise ArchiveLayoutError(
        f"{str(folder)!r} holds no BERT model: looked for {looked_for} and did not find it "
        f"(found: {', '.join(sorted(found)) or 'nothing'}). Accepted: {ACCEPTED_FORMS}.")


def _first_present(folder: Path, found: set, names: tuple) -> Optional[Path]:
    for name in names:
        if name in found:
            return folder / name
    return None


def _resolve_local_file(path: Path, *, need_weights: bool, cache_dir=None) -> ModelFiles:
    """An archive on disk (a Google release .zip, a 0.6.2 .tar.gz): extracted into the cache
    once, keyed by its path, size and modification time."""
    if not cache.is_archive(path):
        raise ArchiveLayoutError(
            f"{str(path)!r} is a file but not an archive (.zip, .tar.gz). Accepted: {ACCEPTED_FORMS}.")
    root = cache.cache_root(cache_dir)
    st = path.stat()
    name = cache.url_entry_name(f"{path.resolve()}?{st.st_size}-{st.st_mtime_ns}").replace("url--", "local--", 1)
    return _resolve_entry(
        name, lambda: cache.ensure_local_archive_entry(name, path, root=root, check_layout=check_layout),
        need_weights=need_weights, cache_dir=cache_dir)


def _resolve_google_tf_folder(folder: Path, *, need_weights: bool, cache_dir=None,
                              lock_name: Optional[str] = None) -> ModelFiles:
    """A Google release folder: converted once to model.safetensors beside the checkpoint (under
    a lock); a folder we may not write to is converted in memory on every load instead."""
    vocab = folder / VOCAB_NAME if (folder / VOCAB_NAME).is_file() else None
    files = ModelFiles(folder=folder, config_file=folder / CONFIG_NAME, weights_file=None,
                       vocab_file=vocab)
    if not need_weights:
        return files
    if not _writable(folder):
        logger.info("%s is read-only: converting its TensorFlow checkpoint in memory", folder)
        return replace(files, tf_checkpoint=_tf_prefix(folder))
    weights = ensure_converted(folder, cache_dir=cache_dir, lock_name=lock_name)
    return replace(files, weights_file=weights)


def ensure_converted(folder: Path, *, cache_dir=None, lock_name: Optional[str] = None) -> Path:
    """``folder/model.safetensors`` converted from the folder's TensorFlow checkpoint, once.

    Inside the cache the result is recorded in the entry's manifest, and a file whose size
    differs from the recorded one (an interrupted copy, a damaged disk) is converted again
    rather than served."""
    folder = Path(folder)
    weights = folder / SAFE_WEIGHTS_NAME
    in_cache = cache.read_manifest(folder) is not None
    if _converted_ok(folder, weights, in_cache):
        return weights
    root = cache.cache_root(cache_dir)
    name = lock_name or (folder.name if in_cache else cache.url_entry_name(str(folder.resolve())))
    with cache.entry_lock(root, name):
        if _converted_ok(folder, weights, in_cache):   # another process did it meanwhile
            return weights
        prefix = _tf_prefix(folder)
        if prefix is None:
            raise ArchiveLayoutError(f"{str(folder)!r} has no TensorFlow checkpoint (*.ckpt.index) "
                                     f"to convert. Accepted: {ACCEPTED_FORMS}.")
        _sweep_killed_conversions(weights)
        checkpoint_bytes = sum(p.stat().st_size for p in folder.glob(f"{prefix.name}.data-*"))
        disk.check_free_space(folder, checkpoint_bytes, f"convert {prefix} to {SAFE_WEIGHTS_NAME}")
        from .convert import convert_tf_checkpoint
        # The converter writes under its own temp name and moves it into place (one owner per
        # temp name: a killed conversion leaves one file that prune and the sweep above know).
        with disk.writing(weights, f"converting {prefix}", any_error=False):
            convert_tf_checkpoint(prefix, folder / CONFIG_NAME, weights, format="safetensors")
        if in_cache:
            cache.record_file(folder, weights)
        logger.info("Converted %s to %s", prefix, weights)
        return weights


def _sweep_killed_conversions(weights: Path) -> None:
    """Temp files of conversions killed midway (we hold the lock, so none is in progress)."""
    for stale in weights.parent.glob(f".{weights.name}.*.tmp"):
        if cache.TEMP_SUFFIX.search(stale.name):
            stale.unlink(missing_ok=True)


def _converted_ok(folder: Path, weights: Path, in_cache: bool) -> bool:
    if not weights.is_file():
        return False
    if not in_cache:
        # A user's folder may get a new checkpoint (a fine-tuning run writing into it): a
        # conversion older than the checkpoint is stale.
        prefix = _tf_prefix(folder)
        sources = [p for p in folder.glob(f"{prefix.name}.*") if p.suffix != ".meta"] if prefix else []
        newest = max((p.stat().st_mtime_ns for p in sources), default=0)
        if weights.stat().st_mtime_ns < newest:
            logger.info("%s is older than the checkpoint beside it; converting again", weights)
            return False
        return True
    recorded = (cache.read_manifest(folder) or {}).get("files", {}).get(SAFE_WEIGHTS_NAME)
    if recorded is None or recorded.get("size") != weights.stat().st_size:
        logger.warning("%s does not match the size recorded when it was written; converting again",
                       weights)
        return False
    return True


def _tf_prefix(folder: Path) -> Optional[Path]:
    """The checkpoint prefix in a Google folder (bert_model.ckpt, or the only *.index there)."""
    if (folder / TF_INDEX_NAME).is_file():
        return folder / TF_CHECKPOINT_NAME
    indexes = sorted(folder.glob("*.index"))
    if len(indexes) == 1:
        return indexes[0].with_suffix("")
    return None


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


_MODEL_FILE_NAMES = frozenset({CONFIG_NAME, HF_CONFIG_NAME, WEIGHTS_NAME, SAFE_WEIGHTS_NAME,
                               VOCAB_NAME, TOKENIZER_CONFIG_NAME})


def check_layout(folder: Path) -> None:
    """Refuse, before it is published in the cache, an archive that holds no BERT model, or a
    folder where one of the files we read belongs."""
    not_files = sorted(p.name for p in folder.iterdir() if not p.is_file() and (
        p.name in _MODEL_FILE_NAMES or ".ckpt" in p.name))
    if not_files:
        raise ArchiveLayoutError(
            f"The archive holds a folder named {not_files[0]!r} where a model has a file of that "
            f"name. Accepted: {ACCEPTED_FORMS}.")
    found = {p.name for p in folder.iterdir()}
    has_config = bool(found & {CONFIG_NAME, HF_CONFIG_NAME})
    has_weights = bool(found.intersection(WEIGHTS_PREFERENCE)) or \
        _tf_prefix(folder) is not None
    if not (has_config and (has_weights or VOCAB_NAME in found)):
        raise ArchiveLayoutError(
            f"The archive holds no BERT model (found: {', '.join(sorted(found)) or 'nothing'}). "
            f"Accepted: {ACCEPTED_FORMS}.")


def _resolve_url(url: str, *, cache_dir=None, force_download: bool = False,
                 local_files_only: bool = False, need_weights: bool = True) -> ModelFiles:
    """An archive at a URL (http(s)://, s3://, file://): one cache entry per URL."""
    name = cache.url_entry_name(url)
    return _resolve_entry(name, lambda: cache.ensure_archive_entry(
        name, resolve_url(url), root=cache.cache_root(cache_dir), force_download=force_download,
        local_files_only=local_files_only, check_layout=check_layout),
        need_weights=need_weights, cache_dir=cache_dir)


T = TypeVar("T")
_ENTRY_ATTEMPTS = 3     # times a cache entry replaced while being read is fetched again


def _resolve_entry(name: str, fetch: Callable[[], Path], *, need_weights: bool,
                   cache_dir) -> ModelFiles:
    """The files of cache entry `name`, fetched (or found) by `fetch`."""
    return _retry_when_replaced(
        fetch, lambda folder: folder,
        lambda folder: _resolve_local_folder(folder, need_weights=need_weights,
                                             cache_dir=cache_dir, lock_name=name), name)


def read_model(name_or_path: Union[str, os.PathLike], read: Callable[[ModelFiles], T],
               **resolve_kwargs) -> T:
    """``read(resolve_model(name_or_path, **resolve_kwargs))``, resolved again when the folder
    is removed or replaced before ``read`` is done with it (see _retry_when_replaced)."""
    return _retry_when_replaced(lambda: resolve_model(name_or_path, **resolve_kwargs),
                                lambda files: files.folder, read, os.fspath(name_or_path))


def _retry_when_replaced(locate: Callable[[], T], folder_of: Callable[[T], Path],
                         use: Callable[[T], object], what: str):
    """``use(locate())``; when it fails because the folder was removed or replaced meanwhile,
    locate again (a bounded number of times).

    Reading a cache entry takes no lock (correctness may not depend on one: NFS), so `bert-hub
    cache rm` or a forced download in another process can pull an entry away between finding
    it and opening its files. Files already opened stay valid; anything else fails, and the
    entry is then fetched again, or the caller gets a typed error that says what happened."""
    for attempt in range(1, _ENTRY_ATTEMPTS + 1):
        located = locate()
        folder = folder_of(located)
        stamp = cache.entry_stamp(folder)   # None: already gone again
        try:
            return use(located)
        except Exception:
            if stamp is not None and cache.entry_stamp(folder) == stamp:
                raise
            if attempt == _ENTRY_ATTEMPTS:
                raise EntryNotFoundError(
                    f"{what!r}: its folder {folder} was removed or replaced {attempt} times while "
                    f"it was being loaded (another process ran `bert-hub cache rm`, or downloaded "
                    f"it again). Load it again once that process is done.") from None
            logger.warning("%s was removed or replaced while being loaded; fetching it again", folder)


def _resolve_hf_repo(repo_id: str, *, cache_dir=None, **options) -> ModelFiles:
    """A Hugging Face Hub repository, in the Hugging Face cache (``hf_hub``); ``cache_dir`` is
    that cache's folder here, as in transformers."""
    snap = hf_hub.fetch(repo_id, cache_dir=cache_dir, **options)
    return ModelFiles(folder=snap.folder, config_file=snap.config_file,
                      weights_file=snap.weights_file, vocab_file=snap.vocab_file,
                      tokenizer_config_file=snap.tokenizer_config_file)


def _resolve_registry_name(name: str, *, cache_dir=None, force_download: bool = False,
                           local_files_only: bool = False, need_weights: bool = True) -> ModelFiles:
    """Registry names and aliases (bert-base-uncased, ...): the entry's archive, verified against
    the published hashes, cached under the canonical name."""
    spec = load_registry().get(name)   # UnknownModelError with close names
    files = _resolve_entry(spec.name, lambda: download_model(
        spec.name, cache_dir=cache_dir, force_download=force_download,
        local_files_only=local_files_only, convert=False),
        need_weights=need_weights, cache_dir=cache_dir)
    return replace(files, do_lower_case=spec.do_lower_case, max_len=spec.max_len)


def download_model(name_or_url: str, *, cache_dir=None, force_download: bool = False,
                   local_files_only: bool = False, convert: bool = True) -> Path:
    """Put a registry model, an archive URL, a local archive or a Hugging Face Hub repository
    (org/name, hf://org/name: always asks the Hub for the newest commit) in its cache; return
    its folder.

    ``convert=True`` also converts its TensorFlow checkpoint now rather than on first load."""
    repo_id = hf_hub.hub_repo_id(name_or_url)
    if repo_id is not None:
        return hf_hub.fetch(repo_id, cache_dir=cache_dir, force_download=force_download,
                            local_files_only=local_files_only, refresh=True).folder
    root = cache.cache_root(cache_dir)
    if Path(name_or_url).expanduser().is_file():   # a local archive: extracted into the cache
        return resolve_model(name_or_url, cache_dir=cache_dir, need_weights=convert).folder
    if _looks_like_url(name_or_url):
        folder = _resolve_url(name_or_url, cache_dir=cache_dir, force_download=force_download,
                              local_files_only=local_files_only, need_weights=False).folder
        name = cache.url_entry_name(name_or_url)
    else:
        spec = load_registry().get(name_or_url)
        name = spec.name
        folder = cache.ensure_archive_entry(
            spec.name, resolve_url(spec), root=root, file_sha256=dict(spec.file_sha256),
            archive_sha256=spec.archive_sha256, force_download=force_download,
            local_files_only=local_files_only, check_layout=check_layout)
    if convert and _tf_prefix(folder) is not None:
        ensure_converted(folder, cache_dir=cache_dir, lock_name=name)
    return folder


def cached_path(url_or_filename: Union[str, os.PathLike], cache_dir=None,
                force_download: bool = False, local_files_only: bool = False) -> str:
    """0.6.2's ``cached_path``: a URL is downloaded once into the cache (verified) and its local
    path returned; an existing local path is returned as is."""
    text = os.fspath(url_or_filename)
    if _looks_like_url(text) and not text.startswith("file://"):
        return str(cache.ensure_file(resolve_url(text), root=cache.cache_root(cache_dir),
                                     force_download=force_download, local_files_only=local_files_only))
    path = Path(text[len("file://"):] if text.startswith("file://") else text).expanduser()
    if not path.exists():
        raise EntryNotFoundError(f"{text!r} does not exist: give an existing file or an "
                                 f"http(s):// or s3:// URL.")
    return str(path)


def __getattr__(name: str):
    # 0.6.2 exposed its cache folder as a constant; ours follows BERT_HUB_CACHE when read.
    if name == "PYTORCH_PRETRAINED_BERT_CACHE":
        return cache.cache_root()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _accepted(need_weights: bool) -> str:
    if need_weights:
        return ACCEPTED_FORMS
    return f"{ACCEPTED_FORMS}; without weights (a tokenizer) also a {VOCAB_NAME} file or a folder holding one"


_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


def _looks_like_url(text: str) -> bool:
    return "://" in text


def _looks_like_path(text: str) -> bool:
    return os.sep in text or (os.altsep is not None and os.altsep in text) or \
        text.startswith(("~", ".")) or text.endswith((".json", ".bin", ".safetensors", ".txt")
                                                     + _ARCHIVE_SUFFIXES)
