"""Hugging Face Hub ids -> the local files of a BERT model, through ``huggingface_hub`` and its
cache (``pip install bert_hub[hf]``).

``hf://org/name`` always names a Hub repository; a plain ``org/name`` does when no local path of
that name exists (registry names never contain a slash, so they keep priority too). Files land
in the Hugging Face cache (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else
``~/.cache/huggingface/hub``), the one ``transformers`` uses: a model it downloaded loads here
with no network call, and the other way round.

A snapshot already complete in that cache (config + weights, or the vocabulary for a tokenizer)
is used without asking the Hub, whatever the revision; a new commit on a branch is fetched by
``bert-hub download org/name`` or ``force_download=True``. Otherwise the small files come first,
the ``config.json`` is checked to be BERT's (``model_type`` "bert"), and only then are the
weights downloaded: ``model.safetensors`` preferred, then a sharded safetensors checkpoint, then
``pytorch_model.bin`` (read with ``weights_only=True``) or its shards.

This module never imports torch; environment variables are read when a function runs.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from . import env
from .config_files import (  # noqa: F401  (label_*: their home before config_files)
    label_arguments,
    label_fields,
    label_maps,
    read_config,
)
from .errors import (
    AccessDeniedError,
    BertHubError,
    ArchiveLayoutError,
    ConfigError,
    DownloadError,
    EntryNotFoundError,
    InvalidInputError,
    MissingDependencyError,
    OfflineError,
)
from .filenames import HF_CONFIG_NAME, TOKENIZER_CONFIG_NAME, VOCAB_NAME
from .json_files import read_json
from .weights import INDEX_SUFFIX, WEIGHTS_PREFERENCE, missing_shards, shard_files

logger = logging.getLogger(__name__)

HF_PREFIX = "hf://"
DEFAULT_ENDPOINT = "https://huggingface.co"
DOWNLOAD_ATTEMPTS = 3   # a transfer cut by the network is tried again (finished files are kept)
# Small files fetched first: config, tokenizer, shard indexes, sentence-transformers pooling.
SMALL_FILES = [HF_CONFIG_NAME, VOCAB_NAME, TOKENIZER_CONFIG_NAME, "*" + INDEX_SUFFIX,
               "modules.json", "sentence_bert_config.json", "*_Pooling/config.json"]
_NAME_PART = r"[A-Za-z0-9](?:[\w.-]{0,94}[\w])?"
_REPO_ID = re.compile(rf"^(?:{_NAME_PART}/)?{_NAME_PART}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# A name ending like a file is a mistyped local path, not a repository.
_FILE_SUFFIXES = (".json", ".bin", ".safetensors", ".txt", ".zip", ".tar.gz", ".tgz", ".index")
_TRUE = ("1", "true", "yes", "on")
_HTTP_CLIENTS = ("httpx", "httpx2", "httpcore", "requests", "urllib3")   # huggingface_hub's, by version


# -- what names the Hub -------------------------------------------------------------------------
def hub_repo_id(name: str) -> Optional[str]:
    """The Hub repository ``name`` refers to, or None when it names something else.

    ``hf://org/name`` (or ``hf://name``) always; ``org/name`` unless a local path of that name
    exists. A malformed ``hf://`` id is an ``InvalidInputError``."""
    if name.startswith(HF_PREFIX):
        repo_id = name[len(HF_PREFIX):].strip("/")
        if not _valid_repo_id(repo_id):
            raise InvalidInputError(
                f"{name!r} is not a Hugging Face Hub id: write hf://org/name (letters, digits, "
                "'-', '_' and '.', one '/' between the owner and the name)")
        return repo_id
    if "/" not in name or not _valid_repo_id(name) or name.endswith(_FILE_SUFFIXES):
        return None
    if Path(name).expanduser().exists():
        return None
    return name


def _valid_repo_id(repo_id: str) -> bool:
    return bool(_REPO_ID.match(repo_id)) and "--" not in repo_id and ".." not in repo_id


# -- settings, read when a function runs --------------------------------------------------------
def hf_cache_dir(cache_dir=None) -> Path:
    """The Hugging Face hub cache: ``cache_dir``, ``HF_HUB_CACHE``, ``HF_HOME/hub``, or
    ``$XDG_CACHE_HOME/huggingface/hub`` (default ``~/.cache/huggingface/hub``)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(base).expanduser() / "huggingface" / "hub"


def endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def is_offline(local_files_only: bool = False) -> bool:
    """``local_files_only``, ``BERT_HUB_OFFLINE``, or Hugging Face's ``HF_HUB_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE``."""
    hf_offline = any(os.environ.get(name, "").strip().lower() in _TRUE
                     for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return bool(local_files_only) or env.flag("BERT_HUB_OFFLINE") or hf_offline


def _import_hf():
    try:
        import huggingface_hub
    except ImportError as exc:
        raise MissingDependencyError(
            "loading a Hugging Face Hub id needs the `huggingface_hub` package, which is not "
            "installed: pip install 'bert_hub[hf]'") from exc
    return huggingface_hub


# -- fetching -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HubSnapshot:
    """The files of one commit of a Hub repository, in the Hugging Face cache."""

    repo_id: str
    commit: str
    folder: Path
    config_file: Optional[Path]
    weights_file: Optional[Path]    # model.safetensors, pytorch_model.bin, or a shard index
    vocab_file: Optional[Path]
    tokenizer_config_file: Optional[Path]   # casing and max length (read by the tokenizer)


def fetch(repo_id: str, *, revision: Optional[str] = None, token=None, cache_dir=None,
          force_download: bool = False, local_files_only: bool = False,
          need_weights: bool = True, refresh: bool = False) -> HubSnapshot:
    """The files of ``repo_id`` at ``revision`` (branch, tag or commit; default "main"),
    downloaded into the Hugging Face cache when it does not hold them yet.

    ``need_weights=False`` (a tokenizer, or ``from_pretrained(state_dict=...)``) needs no
    weights: a snapshot with the vocabulary is complete; offline, one with the config will do.
    ``refresh`` asks the Hub for the revision's newest commit even when a cached one is
    complete (files already cached are not downloaded again; ``force_download`` downloads them
    again)."""
    revision = _check_revision(revision)
    root = hf_cache_dir(cache_dir)
    offline = is_offline(local_files_only)
    cached = None if force_download else _cached_snapshot(repo_id, revision, root)
    if cached is not None and (offline or not refresh) and _complete(cached, need_weights):
        return cached
    if offline:
        if cached is not None and not need_weights and cached.config_file is not None:
            return cached
        raise OfflineError(
            f"{repo_id} (revision {revision!r}) is not complete in the Hugging Face cache "
            f"({root}) and the network is off (local_files_only=True, BERT_HUB_OFFLINE, "
            "HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE): download it once while online with "
            f"`bert-hub download {repo_id}`")
    hf = _import_hf()
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            with _hub_errors(repo_id, revision):
                commit = _download(hf, repo_id, revision, root, token=token,
                                   force_download=force_download, need_weights=need_weights)
            break
        except DownloadError as exc:
            if attempt == DOWNLOAD_ATTEMPTS:
                raise
            logger.warning("%s; trying again (%d of %d)", exc, attempt + 1, DOWNLOAD_ATTEMPTS)
            time.sleep(0.5 * attempt)
            force_download = False   # what did arrive is complete: keep it
    return _snapshot(repo_id, commit, _snapshot_folder(root, repo_id, commit))


def _download(hf, repo_id: str, revision: str, root: Path, *, token, force_download: bool,
              need_weights: bool) -> str:
    """Small files, the BERT check, then the weights; returns the commit id."""
    options = dict(cache_dir=str(root), token=token, endpoint=endpoint(), tqdm_class=_progress_class())
    # A branch or tag is resolved (and recorded in the cache's refs/) by this first call.
    folder = Path(hf.snapshot_download(repo_id, revision=revision, allow_patterns=SMALL_FILES,
                                       force_download=force_download, **options))
    commit = folder.name
    info = hf.HfApi(endpoint=endpoint()).model_info(repo_id, revision=commit, token=token)
    present = sorted(s.rfilename for s in info.siblings or [])
    if HF_CONFIG_NAME in present:
        read_config(folder / HF_CONFIG_NAME, source=repo_id)   # BERT's, before any weights
    elif need_weights or VOCAB_NAME not in present:             # a tokenizer-only repo will do
        raise ArchiveLayoutError(
            f"{repo_id} has no {HF_CONFIG_NAME}, so it is not a transformers model "
            f"(it holds: {_sample(present)}); bert_hub loads BERT models")
    if need_weights:
        hf.snapshot_download(repo_id, revision=commit, force_download=force_download,
                             allow_patterns=_weights_to_fetch(repo_id, folder, present), **options)
    return commit


def _repo_folder(root: Path, repo_id: str) -> Path:
    """A model repository's folder in the Hugging Face cache (its documented layout)."""
    return root / ("models--" + repo_id.replace("/", "--"))


def _snapshot_folder(root: Path, repo_id: str, commit: str) -> Path:
    return _repo_folder(root, repo_id) / "snapshots" / commit


def _check_revision(revision) -> str:
    if revision is None:
        return "main"
    if not isinstance(revision, str) or not revision.strip() or ".." in revision:
        raise InvalidInputError(
            f"revision must be a branch, tag or commit id (a non-empty str), got {revision!r}")
    return revision


def _cached_snapshot(repo_id: str, revision: str, root: Path) -> Optional[HubSnapshot]:
    """The cached snapshot of ``revision`` (a commit, or a branch or tag through the cache's
    refs/), complete or not; no network."""
    commit = revision if _COMMIT.match(revision) else None
    ref = _repo_folder(root, repo_id) / "refs" / revision
    if commit is None and ref.is_file():
        commit = ref.read_text().strip()
    if commit is None or not _snapshot_folder(root, repo_id, commit).is_dir():
        return None
    return _snapshot(repo_id, commit, _snapshot_folder(root, repo_id, commit))


def _complete(snapshot: HubSnapshot, need_weights: bool) -> bool:
    """A model needs its config and every weights file; a tokenizer its vocabulary."""
    if not need_weights:
        return snapshot.vocab_file is not None
    return snapshot.config_file is not None and snapshot.weights_file is not None \
        and not missing_shards(snapshot.weights_file)


def _snapshot(repo_id: str, commit: str, folder: Path) -> HubSnapshot:
    def present(name: str) -> Optional[Path]:
        return folder / name if (folder / name).is_file() else None

    weights = next((folder / n for n in WEIGHTS_PREFERENCE if (folder / n).is_file()), None)
    return HubSnapshot(repo_id=repo_id, commit=commit, folder=folder,
                       config_file=present(HF_CONFIG_NAME), weights_file=weights,
                       vocab_file=present(VOCAB_NAME),
                       tokenizer_config_file=present(TOKENIZER_CONFIG_NAME))


def _weights_to_fetch(repo_id: str, folder: Path, present: List[str]) -> List[str]:
    """The weights files to download: the first of WEIGHTS_PREFERENCE the repo has."""
    for name in WEIGHTS_PREFERENCE:
        if name in present:
            shards = shard_files(folder / name) if name.endswith(INDEX_SUFFIX) else []
            absent = [s for s in shards if s not in present]
            if absent:
                raise EntryNotFoundError(
                    f"{repo_id}'s {name} names shards the repository does not hold: {absent}; "
                    "the checkpoint is incomplete")
            return [name] + shards
    raise ArchiveLayoutError(
        f"{repo_id} has no PyTorch weights ({', '.join(WEIGHTS_PREFERENCE)}); it holds: "
        f"{_sample(present)}. Only safetensors and pytorch_model.bin checkpoints are loaded")


def _sample(names: List[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit]) or "nothing"
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _progress_class():
    """A silent progress bar when BERT_HUB_DISABLE_PROGRESS is set; else huggingface_hub's."""
    if not env.flag("BERT_HUB_DISABLE_PROGRESS"):
        return None
    from tqdm.auto import tqdm

    class _Silent(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
    return _Silent


@contextlib.contextmanager
def _hub_errors(repo_id: str, revision: str) -> Iterator[None]:
    """huggingface_hub's (and its HTTP client's) exceptions -> ours, naming the repository and
    the fix. Imported from ``huggingface_hub.utils``, where every version since 0.20 has them."""
    from huggingface_hub.utils import (
        EntryNotFoundError as HubEntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    where = f"{repo_id} (revision {revision!r}) at {endpoint()}"
    try:
        yield
    except GatedRepoError:
        raise AccessDeniedError(
            f"{where} is gated: accept its conditions at {endpoint()}/{repo_id}, then pass "
            "token=... (or set HF_TOKEN, or log in with `hf auth login`)") from None
    except RepositoryNotFoundError:
        raise EntryNotFoundError(
            f"{repo_id!r} is neither a local folder nor a model on the Hugging Face Hub at "
            f"{endpoint()} (or it is private: pass token=...); check the name") from None
    except RevisionNotFoundError:
        raise EntryNotFoundError(
            f"{repo_id} has no revision {revision!r} at {endpoint()}: pass an existing branch, "
            "tag or full commit id") from None
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        if _hf_offline_at_import() or isinstance(exc, OfflineModeIsEnabled):
            raise OfflineError(
                f"{where} is not complete in the Hugging Face cache and huggingface_hub is in "
                "offline mode (HF_HUB_OFFLINE was set when it was imported): download it once "
                "while online") from None
        raise DownloadError(f"{where} could not be reached ({_first_line(exc)}) and is not "
                            "complete in the Hugging Face cache; check the connection") from None
    except HubEntryNotFoundError as exc:   # after LocalEntryNotFoundError, its subclass
        raise EntryNotFoundError(f"a file of {where} is missing on the Hub ({_first_line(exc)}); "
                                 "the repository is incomplete") from None
    except HfHubHTTPError as exc:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        url = str(getattr(getattr(response, "request", None), "url", ""))
        if status in (401, 403) and url.startswith(endpoint()):   # the Hub, not its CDN
            raise AccessDeniedError(f"{where} refused access ({_first_line(exc)}): pass a token "
                                    "with access, token=...") from None
        raise DownloadError(f"downloading {where} failed: {_first_line(exc)}") from None
    except BertHubError:
        raise
    except Exception as exc:
        # The transfer itself: the HTTP client's transport errors, or a size check after a cut
        # connection; huggingface_hub's ValueError when force_download meets a failed request.
        transport = type(exc).__module__.split(".")[0] in _HTTP_CLIENTS
        if not (transport or isinstance(exc, (OSError, ValueError))):
            raise
        raise DownloadError(f"downloading {where} failed: {type(exc).__name__}: "
                            f"{_first_line(exc)}") from None


def _hf_offline_at_import() -> bool:
    from huggingface_hub import constants
    return bool(constants.HF_HUB_OFFLINE)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) or type(exc).__name__


# -- what the cache holds -----------------------------------------------------------------------
@dataclass(frozen=True)
class CachedModel:
    repo_id: str
    commit: str
    refs: Tuple[str, ...]
    size: int
    architecture: str
    weights: str


def cached_models(cache_dir=None) -> Tuple[List[CachedModel], List[Tuple[str, str]]]:
    """``(loadable, skipped)``: every cached revision we can load (BERT config + weights), and
    ``(repo id, reason)`` for the other model repositories of the Hugging Face cache."""
    root = hf_cache_dir(cache_dir)
    if not root.is_dir():
        return [], []
    hf = _import_hf()
    info = hf.scan_cache_dir(root)
    loadable, skipped = [], []
    for repo in sorted(info.repos, key=lambda r: r.repo_id):
        if repo.repo_type != "model":
            continue
        reasons = []
        for revision in sorted(repo.revisions, key=lambda r: r.commit_hash):
            snap = _snapshot(repo.repo_id, revision.commit_hash, Path(revision.snapshot_path))
            reason = _unloadable(snap)
            if reason:
                reasons.append(reason)
                continue
            data = read_json(snap.config_file, ConfigError, "config file")
            loadable.append(CachedModel(
                repo_id=repo.repo_id, commit=revision.commit_hash, refs=tuple(sorted(revision.refs)),
                size=revision.size_on_disk, weights=snap.weights_file.name,
                architecture=",".join(data.get("architectures") or ["BertModel"])))
        if reasons and not any(m.repo_id == repo.repo_id for m in loadable):
            skipped.append((repo.repo_id, reasons[0]))
    return loadable, skipped


def _unloadable(snap: HubSnapshot) -> Optional[str]:
    if snap.config_file is None:
        return f"no {HF_CONFIG_NAME}"
    try:
        read_config(snap.config_file, source=snap.repo_id)
    except ConfigError as exc:
        return str(exc).split(";")[0]
    if snap.weights_file is None or missing_shards(snap.weights_file):
        return "no complete PyTorch weights"
    return None
