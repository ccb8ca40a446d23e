"""Every read and write of model weights: ``model.safetensors`` (memory-mapped), 0.6.2's
``pytorch_model.bin`` (``torch.load(weights_only=True)``), Hugging Face's sharded checkpoints
(``*.index.json`` + shards), one dtype table, one key normaliser and one rule for tied weights.
``from_pretrained``, ``save_pretrained``, the converter and the Trainer's checkpoints all go
through here.

Tied weights (one tensor under two names, e.g. the MLM decoder and the word embeddings) are
stored once: a safetensors file keeps the first name and lists the others in its metadata
(``"aliases"``: JSON ``{other name: stored name}``), which ``load_weights`` restores; a ``.bin``
lists every name and torch.save stores the shared storage once.

torch is imported inside the functions that need it: TF -> safetensors conversion runs on numpy.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional

from .errors import ConversionError, EntryNotFoundError
from .filenames import (
    SAFE_WEIGHTS_INDEX_NAME,
    SAFE_WEIGHTS_NAME,
    WEIGHTS_INDEX_NAME,
    WEIGHTS_NAME,
    temp_path,
)
from .json_files import parse_json, read_json

if TYPE_CHECKING:
    import torch

__all__ = ["load_weights", "save_safetensors", "save_bin", "write_safetensors", "atomic_file",
           "normalise_keys", "map_keys", "tied_names", "shard_files", "missing_shards",
           "TensorInfo"]

# safetensors dtype code -> (torch / numpy dtype name, bytes per element): the format's table.
DTYPES = {
    "F64": ("float64", 8), "F32": ("float32", 4), "F16": ("float16", 2), "BF16": ("bfloat16", 2),
    "I64": ("int64", 8), "I32": ("int32", 4), "I16": ("int16", 2), "I8": ("int8", 1),
    "U8": ("uint8", 1), "BOOL": ("bool", 1),
}
_CODE_OF = {name: code for code, (name, _) in DTYPES.items()}
ALIASES = "aliases"   # the safetensors metadata entry naming tied weights
INDEX_SUFFIX = ".index.json"   # a sharded checkpoint's index: {"weight_map": {tensor: shard}}
# A folder's weights in the order taken: safetensors (whole, then sharded) before pickles.
WEIGHTS_PREFERENCE = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, WEIGHTS_INDEX_NAME)

# The MLM decoder weight is the word-embedding matrix (0.6.2, Google, transformers).
TIED_WEIGHTS = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight"}
# Module keys with no weight of their own: transformers' position_ids buffer.
_BUFFER_SUFFIXES = ("embeddings.position_ids",)
# transformers ties cls.predictions.decoder.bias to cls.predictions.bias.
_HF_DECODER_BIAS, _MLM_BIAS = "cls.predictions.decoder.bias", "cls.predictions.bias"
# Keys of a bare BertModel, which 0.6.2's heads hold under "bert.".
_BASE_PREFIXES = ("embeddings.", "encoder.", "pooler.")
# 0.6.2's first releases (and early transformers) named LayerNorm's parameters as TensorFlow does.
_SUFFIX_RENAMES = ((".gamma", ".weight"), (".beta", ".bias"))


def dtype_code(name: str) -> str:
    """safetensors' code of a dtype name ("float32", or str(torch.float32))."""
    code = _CODE_OF.get(name.replace("torch.", "", 1))
    if code is None:
        raise ConversionError(f"cannot store {name} tensors in a weights file; convert them to "
                              f"one of {', '.join(_CODE_OF)} first")
    return code


# -- key names ----------------------------------------------------------------------------------
def normalise_keys(keys: Iterable[str]) -> Dict[str, str]:
    """Checkpoint key -> the 0.6.2 ``BertForPreTraining`` key of the weight it holds, for every
    key that holds a weight of its own. Handles DataParallel's ``module.``, a bare model's keys
    (``bert.`` added), 0.6.2's ``gamma``/``beta`` and transformers' ``decoder.bias`` (used as
    ``cls.predictions.bias`` when that is absent); drops tied names and buffers."""
    mapping = {}
    for key in keys:
        new = key[len("module."):] if key.startswith("module.") else key
        if new.startswith(_BASE_PREFIXES):
            new = "bert." + new
        for old, replacement in _SUFFIX_RENAMES:
            if new.endswith(old):
                new = new[: -len(old)] + replacement
        if not new.endswith(_BUFFER_SUFFIXES) and new not in TIED_WEIGHTS:
            mapping[key] = new
    has_bias = _MLM_BIAS in mapping.values()
    for key, new in list(mapping.items()):
        if new == _HF_DECODER_BIAS:
            if has_bias:
                del mapping[key]
            else:
                mapping[key] = _MLM_BIAS
    return mapping


def map_keys(keys: Iterable[str], model_keys: Iterable[str]) -> Dict[str, str]:
    """Checkpoint key -> model key: ``normalise_keys``, then without ``bert.`` for a model whose
    keys lack it (a bare ``BertModel``)."""
    mapping = normalise_keys(keys)
    if any(k.startswith("bert.") for k in model_keys):
        return mapping
    return {k: v[len("bert."):] if v.startswith("bert.") else v for k, v in mapping.items()}


def tied_names(keys: Iterable[str]) -> Dict[str, str]:
    """{tied name: stored name} for a BERT state dict's keys that leave the tied names out:
    the decoder wherever the MLM head is there."""
    keys = set(keys)
    return {alias: source for alias, source in TIED_WEIGHTS.items()
            if source in keys and _MLM_BIAS in keys}


# -- writing ------------------------------------------------------------------------------------
class TensorInfo(NamedTuple):
    """One tensor of a safetensors file."""

    name: str
    dtype: str       # safetensors' code, e.g. "F32"
    shape: tuple
    nbytes: int


@contextmanager
def atomic_file(path) -> Iterable[IO[bytes]]:
    """A file to write, under a unique temp name beside ``path`` (``filenames.temp_path``:
    the one name the cache's prune and the next conversion know), moved onto ``path`` when the
    block ends without error and removed otherwise: nothing partial is ever visible. Callers
    pass the final path, never a temp name of their own."""
    path = os.fspath(path)
    tmp = os.fspath(temp_path(path))
    try:
        with open(tmp, "wb") as f:
            yield f
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_safetensors(f: IO[bytes], infos: List[TensorInfo], data: Callable[[TensorInfo], object],
                      metadata: Optional[Mapping[str, str]] = None,
                      aliases: Optional[Mapping[str, str]] = None) -> None:
    """The safetensors layout (8-byte header length, JSON header, raw bytes), one tensor at a
    time: ``data(info)`` gives each tensor's bytes (a buffer) when it is written. Widest dtypes
    first, otherwise in the given order, so every tensor stays aligned for a memory map."""
    order = sorted(infos, key=lambda i: -DTYPES[i.dtype][1])                # stable
    meta = {"format": "pt", **(metadata or {})}
    if aliases:
        meta[ALIASES] = json.dumps(dict(aliases), separators=(",", ":"))
    header, offset = {"__metadata__": meta}, 0
    for info in order:
        header[info.name] = {"dtype": info.dtype, "shape": list(info.shape),
                             "data_offsets": [offset, offset + info.nbytes]}
        offset += info.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # safetensors pads the header to 8-byte alignment
    f.write(len(blob).to_bytes(8, "little"))
    f.write(blob)
    for info in order:
        view = memoryview(data(info)).cast("B")
        if view.nbytes != info.nbytes:
            raise ConversionError(f"{info.name}: {view.nbytes} bytes to write, the header says "
                                  f"{info.nbytes}")
        f.write(view)


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path,
                     order: Optional[List[str]] = None,
                     metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write {name: tensor} to ``path`` (atomically), every tensor once: a name whose tensor is
    an earlier name's (tied weights) is recorded as an alias. ``order``: the names in file order
    (default: the mapping's)."""
    import torch

    stored, aliases, seen = [], {}, {}
    for name in order if order is not None else list(state_dict):
        t = state_dict[name]
        if not torch.is_tensor(t):
            raise ConversionError(f"cannot save {name!r}: a {type(t).__name__}, not a tensor")
        identity = (t.device, t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                    t.stride(), t.dtype)
        if t.numel() and identity in seen:
            aliases[name] = seen[identity]
            continue
        seen[identity] = name
        stored.append(name)
    infos = [TensorInfo(n, dtype_code(str(state_dict[n].dtype)), tuple(state_dict[n].shape),
                        state_dict[n].numel() * state_dict[n].element_size()) for n in stored]

    def data(info: TensorInfo):
        t = state_dict[info.name].detach().to("cpu").contiguous()
        return t.reshape(-1).view(torch.uint8).numpy() if t.numel() else b""

    with atomic_file(path) as f:
        write_safetensors(f, infos, data, metadata, aliases)


def save_bin(state_dict: Mapping[str, torch.Tensor], f) -> None:
    """``torch.save`` of {name: tensor} (0.6.2's ``pytorch_model.bin``) to a path or file;
    tied names share one storage, which torch.save stores once."""
    import torch

    torch.save(dict(state_dict), f)


# -- reading ------------------------------------------------------------------------------------
def load_weights(path) -> Dict[str, torch.Tensor]:
    """{name: tensor} from a ``.safetensors`` file (memory-mapped, tied names restored), a
    ``pytorch_model.bin`` (``torch.load(weights_only=True)``, memory-mapped when it is a zip),
    or every shard a sharded checkpoint's ``*.index.json`` names. Anything else, or anything but
    names mapped to tensors, is a ``ConversionError`` naming the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise EntryNotFoundError(f"weights file {str(path)!r} does not exist; pass a "
                                 "model.safetensors or pytorch_model.bin")
    if path.name.endswith(INDEX_SUFFIX):
        return _read_shards(path)
    return _read_file(path)


def _read_file(path: Path) -> Dict[str, torch.Tensor]:
    if path.name.endswith(".safetensors"):
        return _read_safetensors(path)
    state = _read_pickle(path)
    _check_state(state, path)
    return state


def shard_files(index_file) -> List[str]:
    """The shard files a ``*.index.json`` names (plain file names beside it), sorted."""
    index_file = Path(index_file)
    shards = sorted(set(_weight_map(index_file).values()))
    bad = [s for s in shards if not isinstance(s, str) or "/" in s or "\\" in s
           or s in ("", ".", "..") or s.endswith(INDEX_SUFFIX)]
    if bad or not shards:
        raise ConversionError(f"{str(index_file)!r} names no usable shard files (plain file "
                              f"names beside it; got {bad or shards!r})")
    return shards


def _weight_map(index_file: Path) -> Dict[str, str]:
    """An index's ``weight_map``: {tensor name: shard file}."""
    fix = "an index is a JSON object whose 'weight_map' maps tensor names to shard files"
    data = read_json(index_file, ConversionError, "sharded-checkpoint index", fix=fix)
    weight_map = data.get("weight_map") if isinstance(data, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise ConversionError(f"{str(index_file)!r} is not a sharded-checkpoint index: {fix}")
    return weight_map


def tensor_file(weights_file, key: str) -> str:
    """The file that holds tensor ``key`` of ``weights_file``: the shard its index names for a
    sharded checkpoint, else the file itself (for messages about that tensor)."""
    path = Path(weights_file)
    if path.name.endswith(INDEX_SUFFIX):
        shard = _weight_map(path).get(key)
        if shard:
            return str(path.parent / shard)
    return str(path)


def missing_shards(weights_file) -> List[str]:
    """The shards a ``*.index.json`` names that are not beside it ([] for any other file)."""
    weights_file = Path(weights_file)
    if not weights_file.name.endswith(INDEX_SUFFIX):
        return []
    return [s for s in shard_files(weights_file) if not (weights_file.parent / s).is_file()]


def _read_shards(index_file: Path) -> Dict[str, torch.Tensor]:
    """Every shard an index names, each read as a file of its own; the index's tensors must all
    be there."""
    missing = missing_shards(index_file)
    if missing:
        raise EntryNotFoundError(f"the shards {missing} named by {str(index_file)!r} are not "
                                 "beside it; download or copy the whole checkpoint again")
    weight_map = _weight_map(index_file)
    state: Dict[str, torch.Tensor] = {}
    for shard in shard_files(index_file):
        state.update(_read_file(index_file.parent / shard))
    absent = sorted(set(weight_map) - set(state))
    if absent:
        raise ConversionError(f"{str(index_file)!r} names tensors its shards do not hold: "
                              f"{', '.join(absent[:5])}{' ...' if len(absent) > 5 else ''}")
    return state


def _read_safetensors(path: Path) -> Dict[str, torch.Tensor]:
    """Every tensor as a view of ONE private memory map of the file: pages are read on first
    touch, and tensors stored back to back (query/key/value) stay back to back, so they pack
    without a copy. The safetensors library checks the header and offsets first."""
    import torch
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            names = list(handle.keys())
            aliases_text = (handle.metadata() or {}).get(ALIASES) or "{}"
    except (SafetensorError, ValueError) as exc:
        raise ConversionError(f"{str(path)!r} is not a valid safetensors file ({exc}); it may be "
                              "truncated or damaged: download or save it again") from None
    aliases = parse_json(aliases_text, f"{str(path)!r}: its {ALIASES!r} metadata", ConversionError,
                         "save the file again")
    if not isinstance(aliases, dict) or not all(isinstance(v, str) and v in names
                                                for v in aliases.values()):
        raise ConversionError(f"{str(path)!r}: its {ALIASES!r} metadata names tensors the file "
                              f"does not hold ({aliases!r}); save the file again")
    with open(path, "rb") as reader:
        header_size = int.from_bytes(reader.read(8), "little")
        header = json.loads(reader.read(header_size))
    start = 8 + header_size
    names.sort(key=lambda n: header[n]["data_offsets"][0])       # the file's order
    storage = torch.UntypedStorage.from_file(str(path), shared=False,
                                             nbytes=os.path.getsize(path))
    tensors = {}
    for name in names:
        info = header[name]
        dtype = getattr(torch, DTYPES[info["dtype"]][0]) if info["dtype"] in DTYPES else None
        begin = start + info["data_offsets"][0]
        if dtype is None or begin % dtype.itemsize:      # unaligned or exotic: the library copies
            from safetensors.torch import load_file
            tensors = load_file(str(path))
            break
        tensors[name] = torch.empty(0, dtype=dtype).set_(storage, begin // dtype.itemsize,
                                                         info["shape"])
    for alias, stored in aliases.items():
        tensors[alias] = tensors[stored]
    return tensors


def _read_pickle(path: Path):
    import torch

    try:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
        return torch.load(str(path), map_location="cpu", weights_only=True)  # legacy format
    except MemoryError:
        raise
    except Exception as exc:  # torch.load raises a zoo of types: each becomes one message
        raise ConversionError(f"cannot read {str(path)!r} with torch.load(weights_only=True): "
                              f"{_why_unreadable(exc, path)}") from None


def _why_unreadable(exc: Exception, path: Path) -> str:
    text = str(exc)
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:   # the unpickler named the global it refused
        return (f"it holds a Python object ({refused.group(1)}), not only tensors, and is never "
                "unpickled. Save the weights alone (torch.save(model.state_dict(), ...)) or use "
                "model.safetensors")
    if path.stat().st_size == 0:
        return "the file is empty (0 bytes). Download or save it again"
    # torch's own advice may suggest weights_only=False: keep only its diagnosis
    reason = next((p.strip() for p in text.split("\n\n") if p.strip() and "weights_only" not in p
                   and not p.startswith("Check the documentation")), type(exc).__name__)
    if isinstance(exc, EOFError) or any(w in text for w in ("zip archive", "truncated", "EOF",
                                                           "corrupt")):
        return (f"it is truncated or damaged ({reason.splitlines()[0]}). Download or save it "
                "again")
    return (f"it is not a file torch.save wrote ({reason.splitlines()[0]}). Pass a "
            "pytorch_model.bin or model.safetensors")


def _check_state(state, path: Path) -> None:
    """A weights file maps parameter names (str) to tensors."""
    import torch

    if not isinstance(state, Mapping):
        raise ConversionError(f"{str(path)!r} holds a {type(state).__name__}, not a state dict "
                              "(names mapped to tensors); save model.state_dict()")
    for key, value in state.items():
        if not isinstance(key, str):
            raise ConversionError(
                f"{str(path)!r} holds the key {key!r} ({type(key).__name__}); the keys of a state "
                "dict are parameter names (str). Save model.state_dict()")
        if not torch.is_tensor(value):
            raise ConversionError(
                f"{str(path)!r} holds a {type(value).__name__} under {key!r}, not a tensor. Save "
                "the weights alone: torch.save(model.state_dict(), path)")
