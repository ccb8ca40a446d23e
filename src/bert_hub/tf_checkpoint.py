"""Read and write TensorFlow checkpoints (the TensorBundle format, "V2") without TensorFlow.

A checkpoint ``PREFIX`` (e.g. ``bert_model.ckpt``) is two kinds of file:

* ``PREFIX.index``: a LevelDB-format table (``bert_hub.leveldb_table``). Key ``""``
  holds a ``BundleHeaderProto`` (num_shards, endianness, version); every other key is a variable
  name whose value is a ``BundleEntryProto`` (dtype, shape, shard_id, offset, size, crc32c,
  slices).
* ``PREFIX.data-SSSSS-of-NNNNN``: the raw little-endian tensor bytes, one shard per file.

We decode the few protobuf fields by hand (a dozen lines of wire format), memory-map the shards
so a 400 MB checkpoint is not copied before it is needed, and verify each tensor's masked
CRC32C with the C-backed ``crc32c`` package. ``write_checkpoint`` produces the same format, which
``tf.train.load_checkpoint`` reads back exactly.
"""
from __future__ import annotations

import glob
import mmap
import os
import struct
import uuid
from collections.abc import Iterator, Mapping
from typing import NamedTuple

import numpy as np

from bert_hub.errors import CheckpointError
from bert_hub.leveldb_table import masked_crc32c, put_varint, read_table, read_varint, table_bytes

__all__ = ["CheckpointReader", "Entry", "list_variables", "write_checkpoint"]

_BUNDLE_VERSION = 1  # kTensorBundleVersion: what we produce and what we can consume
# Bounds on what an entry may declare, so that a hostile index costs time and memory in
# proportion to its own size, never to a number written inside it.
_MAX_RANK = 254  # TensorShape::MaxDimensions()
_MAX_ELEMENTS = 1 << 62  # no tensor holds more; keeps byte counts inside int64
_MAX_SHARDS = (1 << 31) - 1  # num_shards is an int32 in BundleHeaderProto

# TensorFlow DataType enum -> (name as tf.dtypes names it, numpy storage dtype).
# bfloat16 is stored as its uint16 bit pattern; torch views it back as torch.bfloat16.
_DTYPES = {
    1: ("float32", np.dtype("<f4")),
    2: ("float64", np.dtype("<f8")),
    3: ("int32", np.dtype("<i4")),
    4: ("uint8", np.dtype("u1")),
    5: ("int16", np.dtype("<i2")),
    6: ("int8", np.dtype("i1")),
    7: ("string", None),
    9: ("int64", np.dtype("<i8")),
    10: ("bool", np.dtype("?")),
    14: ("bfloat16", np.dtype("<u2")),
    17: ("uint16", np.dtype("<u2")),
    19: ("float16", np.dtype("<f2")),
    22: ("uint32", np.dtype("<u4")),
    23: ("uint64", np.dtype("<u8")),
}
_DTYPE_ENUM = {name: enum for enum, (name, _) in _DTYPES.items()}
_READABLE = {"float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64",
             "uint8", "bool"}


class Entry(NamedTuple):
    """One variable of the bundle (a decoded ``BundleEntryProto``)."""

    name: str
    dtype: str  # e.g. "float32", "bfloat16"
    shape: tuple  # e.g. (30522, 768)
    shard_id: int
    offset: int  # byte offset in the shard
    size: int  # byte length in the shard
    crc32c: int  # masked crc32c of the bytes
    num_slices: int  # > 0 for a partitioned variable


# --------------------------------------------------------------------------- protobuf wire


def _fields(buf) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) of a protobuf message: ints for varint/fixed fields, bytes for
    length-delimited ones. Enough for the three small messages of a bundle index."""
    for field, _, value in _wire_fields(buf):
        yield field, value


def _wire_fields(buf) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) of a protobuf message."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > end:
                raise ValueError("length-delimited field runs past the end of its message")
            value, pos = bytes(buf[pos:pos + n]), pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _number(field: int, v) -> int:
    """A varint / fixed field's value; a length-delimited one in its place is corruption."""
    if not isinstance(v, int):
        raise ValueError(f"field {field} is length-delimited where a number belongs")
    return v


def _message(field: int, v) -> bytes:
    """A length-delimited field's bytes; a number in its place is corruption."""
    if not isinstance(v, bytes):
        raise ValueError(f"field {field} is a number where a nested message belongs")
    return v


def _put_field(out: bytearray, field: int, wire: int, value) -> None:
    put_varint(out, (field << 3) | wire)
    if wire == 0:
        put_varint(out, value)
    elif wire == 2:
        put_varint(out, len(value))
        out += value
    elif wire == 5:
        out += struct.pack("<I", value)


def _decode_header(value: bytes) -> dict:
    """BundleHeaderProto {num_shards=1; endianness=2; VersionDef version=3}."""
    header = {"num_shards": 0, "endianness": 0, "producer": 0, "min_consumer": 0,
              "bad_consumers": []}
    for field, v in _fields(value):
        if field == 1:
            header["num_shards"] = _int64(_number(field, v))
        elif field == 2:
            header["endianness"] = _number(field, v)
        elif field == 3:  # VersionDef {producer=1; min_consumer=2; repeated bad_consumers=3}
            for f2, v2 in _fields(_message(field, v)):
                if f2 == 1:
                    header["producer"] = _int64(_number(f2, v2))
                elif f2 == 2:
                    header["min_consumer"] = _int64(_number(f2, v2))
                elif f2 == 3:
                    if isinstance(v2, bytes):  # packed
                        p = 0
                        while p < len(v2):
                            x, p = read_varint(v2, p)
                            header["bad_consumers"].append(_int64(x))
                    else:
                        header["bad_consumers"].append(_int64(v2))
    return header


def _decode_entry(name: str, value: bytes) -> Entry:
    """BundleEntryProto {dtype=1; TensorShapeProto shape=2; shard_id=3; offset=4; size=5;
    fixed32 crc32c=6; repeated TensorSliceProto slices=7}."""
    dtype_enum, dims, shard, offset, size, crc, slices = 0, [], 0, 0, 0, 0, 0
    for field, v in _fields(value):
        if field == 1:
            dtype_enum = _number(field, v)
        elif field == 2:  # TensorShapeProto {repeated Dim dim=2 {int64 size=1; string name=2}}
            for f2, v2 in _fields(_message(field, v)):
                if f2 == 2:
                    size_of_dim = 0
                    for f3, v3 in _fields(_message(f2, v2)):
                        if f3 == 1:
                            size_of_dim = _int64(_number(f3, v3))
                    dims.append(size_of_dim)
                    if len(dims) > _MAX_RANK:
                        raise ValueError(f"shape has more than {_MAX_RANK} dimensions")
        elif field == 3:
            shard = _number(field, v)
        elif field == 4:
            offset = _int64(_number(field, v))
        elif field == 5:
            size = _int64(_number(field, v))
        elif field == 6:
            crc = _number(field, v)
        elif field == 7:
            _message(field, v)
            slices += 1
    if any(d < 0 for d in dims):
        raise ValueError(f"shape {dims} has a negative dimension")
    if _element_count(dims) > _MAX_ELEMENTS:
        raise ValueError(f"shape {dims} holds more than 2**62 elements")
    if offset < 0 or size < 0:
        raise ValueError(f"negative offset ({offset}) or size ({size})")
    dtype = _DTYPES.get(dtype_enum, (f"DataType enum {dtype_enum}", None))[0]
    return Entry(name, dtype, tuple(dims), shard, offset, size, crc, slices)


def _element_count(dims) -> int:
    """The product of ``dims`` in exact integers, stopping once it passes the bound."""
    if 0 in dims:
        return 0
    count = 1
    for d in dims:
        count *= d
        if count > _MAX_ELEMENTS:
            return count
    return count


def _encode_entry(dtype: str, shape, offset: int, size: int, crc: int) -> bytes:
    shape_msg = bytearray()
    for d in shape:
        dim = bytearray()
        if d:
            _put_field(dim, 1, 0, int(d))
        _put_field(shape_msg, 2, 2, bytes(dim))
    out = bytearray()
    _put_field(out, 1, 0, _DTYPE_ENUM[dtype])
    _put_field(out, 2, 2, bytes(shape_msg))
    # shard_id is 0 (the default, omitted), as TensorFlow omits defaults.
    if offset:
        _put_field(out, 4, 0, offset)
    if size:
        _put_field(out, 5, 0, size)
    _put_field(out, 6, 5, crc)
    return bytes(out)


def _encode_header(num_shards: int) -> bytes:
    version = bytearray()
    _put_field(version, 1, 0, _BUNDLE_VERSION)
    out = bytearray()
    _put_field(out, 1, 0, num_shards)
    _put_field(out, 3, 2, bytes(version))
    return bytes(out)


def _resolve_prefix(path: str) -> str:
    """Accept the prefix, the .index file, a data shard, or a folder holding one checkpoint."""
    path = os.fspath(path)
    if os.path.isdir(path):
        found = sorted(glob.glob(os.path.join(glob.escape(path), "*.index")))
        if len(found) == 1:
            return found[0][: -len(".index")]
        if not found:
            raise CheckpointError(f"{path}: no TensorFlow checkpoint (*.index) in this folder; "
                                  "pass the checkpoint prefix, e.g. .../bert_model.ckpt")
        raise CheckpointError(f"{path}: several checkpoints in this folder "
                              f"({', '.join(os.path.basename(f) for f in found)}); pass one "
                              "prefix, e.g. .../bert_model.ckpt")
    if path.endswith(".index"):
        return path[: -len(".index")]
    marker = path.rfind(".data-")
    if marker != -1 and "-of-" in path[marker:]:
        return path[:marker]
    return path


# --------------------------------------------------------------------------- reader


class CheckpointReader:
    """Random access to the variables of one checkpoint, like ``tf.train.load_checkpoint``.

    ``get_tensor`` returns a torch tensor that views the memory-mapped shard (copy-on-write,
    so the file is never modified); ``get_array`` gives the numpy view, or with ``copy=True`` a
    private copy read with ``pread`` (no mapped pages left behind: what streaming conversion
    uses to keep its memory flat).
    """

    def __init__(self, prefix, verify_crc: bool = True):
        self.prefix = _resolve_prefix(prefix)
        self.verify_crc = verify_crc
        self.index_path = self.prefix + ".index"
        if not os.path.isfile(self.index_path):
            raise CheckpointError(
                f"no TensorFlow checkpoint at {self.prefix!r}: {self.index_path} does not exist. "
                "Pass the prefix shared by the .index and .data-* files (e.g. "
                ".../bert_model.ckpt)")
        header, entries = None, {}
        for key, value in read_table(self.index_path):
            try:
                if key == b"":
                    header = _decode_header(value)
                elif not key.startswith(b"\x00"):  # \x00...: encoded slice keys, not variables
                    name = key.decode("utf-8")
                    entries[name] = _decode_entry(name, value)
            except (ValueError, IndexError, struct.error, UnicodeDecodeError) as e:
                shown = key if len(key) <= 200 else key[:200] + b"..."
                raise CheckpointError(f"{self.index_path}: malformed entry for {shown!r} ({e}); "
                                      "fetch the checkpoint again") from None
        if header is None:
            raise CheckpointError(f"{self.index_path}: no bundle header (empty key); not a "
                                  "TensorFlow V2 checkpoint index")
        if header["endianness"] != 0:
            raise CheckpointError(
                f"{self.index_path}: written on a big-endian machine; bert_hub reads only "
                "little-endian checkpoints. Re-save it with TensorFlow on a little-endian machine")
        if (header["min_consumer"] > _BUNDLE_VERSION
                or _BUNDLE_VERSION in header["bad_consumers"]):
            raise CheckpointError(
                f"{self.index_path}: checkpoint format version (producer {header['producer']}, "
                f"min_consumer {header['min_consumer']}) is newer than the version {_BUNDLE_VERSION} "
                "bert_hub reads. Re-save it with tf.compat.v1.train.Saver (format V2)")
        if not 1 <= header["num_shards"] <= _MAX_SHARDS:
            raise CheckpointError(
                f"{self.index_path}: the header declares {header['num_shards']} data shards "
                f"(a checkpoint has 1 to {_MAX_SHARDS}); the index is corrupt: fetch it again")
        self.num_shards = header["num_shards"]
        self._entries = entries
        self._maps: dict[int, tuple] = {}  # shard id -> (mmap, uint8 view of it)

    # -- listing

    def names(self) -> list[str]:
        """Variable names, sorted as in the index (and as tf.train.list_variables lists them)."""
        return list(self._entries)

    def list_variables(self) -> list[tuple[str, str, list[int]]]:
        """[(name, dtype, shape)] for every variable, like ``tf.train.list_variables`` plus the
        dtype."""
        return [(e.name, e.dtype, list(e.shape)) for e in self._entries.values()]

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise CheckpointError(
                f"{self.index_path}: no variable named {name!r}; list_variables() shows the "
                f"{len(self._entries)} it holds") from None

    def __contains__(self, name) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def shard_path(self, shard_id: int) -> str:
        return f"{self.prefix}.data-{shard_id:05d}-of-{self.num_shards:05d}"

    @property
    def data_bytes(self) -> int:
        """Total size of the data shards on disk (those present; the header's count is not
        trusted to be small)."""
        pattern = f"{glob.escape(self.prefix)}.data-*-of-{self.num_shards:05d}"
        return sum(os.path.getsize(p) for p in glob.glob(pattern) if os.path.isfile(p))

    # -- reading

    def check(self, name: str) -> tuple[Entry, np.dtype, str]:
        """(entry, numpy dtype, shard path) of a variable that can be read: whole, of a dtype
        we read, its size matching its shape, and inside a shard that is there. Reads no
        tensor data, so a converter can check every variable before writing anything."""
        e = self.entry(name)
        if e.num_slices:
            raise CheckpointError(
                f"{self.index_path}: variable {name!r} was saved partitioned into {e.num_slices} "
                "slices (a partitioned variable); bert_hub reads only whole tensors. Re-save it "
                "unpartitioned with TensorFlow")
        if e.dtype not in _READABLE:
            raise CheckpointError(
                f"{self.index_path}: variable {name!r} has dtype {e.dtype}, which bert_hub does "
                f"not read (it reads {', '.join(sorted(_READABLE))})")
        np_dtype = _DTYPES[_DTYPE_ENUM[e.dtype]][1]
        expected = _element_count(e.shape) * np_dtype.itemsize
        if e.size != expected:
            raise CheckpointError(
                f"{self.index_path}: variable {name!r} claims {e.size} bytes but its shape "
                f"{list(e.shape)} of {e.dtype} needs {expected}; the index is corrupt")
        if not 0 <= e.shard_id < self.num_shards:
            raise CheckpointError(
                f"{self.index_path}: variable {name!r} lives in shard {e.shard_id} but the header "
                f"says there are {self.num_shards}; the index is corrupt")
        path = self.shard_path(e.shard_id)
        if not os.path.isfile(path):
            raise CheckpointError(
                f"{path}: missing data shard {e.shard_id + 1} of {self.num_shards} (needed for "
                f"{name!r}); copy every {os.path.basename(self.prefix)}.data-* file next to the "
                ".index")
        shard_size = os.path.getsize(path)
        if e.offset < 0 or e.offset + e.size > shard_size:
            raise CheckpointError(
                f"{path}: short data shard: {name!r} needs bytes {e.offset}..{e.offset + e.size} "
                f"but the file has {shard_size}; it was cut short while copying or downloading: "
                "fetch it again")
        return e, np_dtype, path

    def _verify(self, e: Entry, raw, path: str) -> None:
        if self.verify_crc and masked_crc32c(raw) != e.crc32c:
            raise CheckpointError(
                f"{path}: CRC mismatch for {e.name!r} (bytes {e.offset}..{e.offset + e.size}): "
                "the shard is corrupt; fetch it again (or pass verify_crc=False to read anyway)")

    def _map(self, shard_id: int, path: str) -> np.ndarray:
        entry = self._maps.get(shard_id)
        if entry is None:
            # ACCESS_COPY: copy-on-write, so the views are writable (torch wants that) while the
            # file itself is never modified.
            with open(path, "rb") as f:
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            entry = self._maps[shard_id] = (mm, np.frombuffer(mm, dtype=np.uint8))
        return entry[1]

    def release_pages(self) -> None:
        """Hand the mapped pages read so far back to the kernel (they refault from the file if
        touched again), keeping resident memory flat while streaming a large checkpoint.
        Only for read-only use: it also discards in-place changes made to returned tensors."""
        advice = getattr(mmap, "MADV_DONTNEED", None)
        if advice is not None:
            for mm, _ in self._maps.values():
                mm.madvise(advice)

    def get_array(self, name: str, copy: bool = False, out: np.ndarray | None = None
                  ) -> np.ndarray:
        """The variable as a numpy array of its shape (bfloat16 as its uint16 bit pattern).

        copy=False: a view of the memory-mapped shard (zero-copy) when the offset is aligned.
        copy=True: a private array read with pread, leaving no mapped pages behind.
        out: a uint8 buffer of at least the tensor's size to read into (implies copy; the
        result views it), so a streaming loop can reuse one buffer.
        """
        e, np_dtype, path = self.check(name)
        if e.size == 0:
            return np.zeros(e.shape, dtype=np_dtype)
        if copy or out is not None:
            buf = np.empty(e.size, dtype=np.uint8) if out is None else out[:e.size]
            with open(path, "rb", buffering=0) as f:
                f.seek(e.offset)
                got = f.readinto(memoryview(buf))
            if got != e.size:
                raise CheckpointError(f"{path}: short read for {name!r}; the shard changed "
                                      "while being read")
            self._verify(e, buf, path)
            return buf.view(np_dtype).reshape(e.shape)
        raw = self._map(e.shard_id, path)[e.offset:e.offset + e.size]
        self._verify(e, raw, path)
        if e.offset % np_dtype.itemsize:  # unaligned: torch needs aligned storage
            raw = raw.copy()
        return raw.view(np_dtype).reshape(e.shape)

    def get_tensor(self, name: str):
        """The variable as a torch tensor (memory-mapped where possible; bfloat16 handled)."""
        import torch

        e = self.entry(name)
        arr = self.get_array(name)
        t = torch.from_numpy(arr)
        return t.view(torch.bfloat16) if e.dtype == "bfloat16" else t

    def close(self) -> None:
        self._maps.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        return f"CheckpointReader({self.prefix!r}, {len(self)} variables)"


def list_variables(prefix) -> list[tuple[str, str, list[int]]]:
    """[(name, dtype, shape)] of a checkpoint, like ``tf.train.list_variables`` plus the dtype."""
    return CheckpointReader(prefix, verify_crc=False).list_variables()


# --------------------------------------------------------------------------- writing


def _as_numpy(value) -> tuple[str, np.ndarray]:
    """(TF dtype name, contiguous little-endian array) of a torch tensor or numpy array."""
    if type(value).__module__.startswith("torch"):
        import torch

        t = value.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return "bfloat16", t.view(torch.int16).numpy().view(np.uint16)
        value = t.numpy()
    arr = np.asarray(value)
    if not arr.flags.c_contiguous:  # (np.ascontiguousarray would turn a scalar into shape [1])
        arr = np.ascontiguousarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    for name, np_dtype in _DTYPES.values():
        if name in _READABLE and name != "bfloat16" and np_dtype == arr.dtype:
            return name, arr
    if arr.dtype.name == "bfloat16":  # ml_dtypes' bfloat16, as TensorFlow hands it out
        return "bfloat16", arr.view(np.uint16)
    raise CheckpointError(f"cannot write dtype {arr.dtype} to a TensorFlow checkpoint; convert "
                          f"it to one of {', '.join(sorted(_READABLE))}")


def write_checkpoint(prefix, tensors: Mapping[str, object]) -> str:
    """Write ``tensors`` (name -> torch tensor or numpy array) as ``PREFIX.index`` +
    ``PREFIX.data-00000-of-00001``, which ``tf.train.load_checkpoint`` reads back exactly.

    Tensors are streamed one at a time into a temp file beside the target, then both files are
    moved into place (data first, so a visible index never points at a missing shard).
    Returns the prefix.
    """
    prefix = os.fspath(prefix)
    for name in tensors:
        if not name or name.startswith("\x00"):
            raise CheckpointError(f"invalid variable name {name!r} for a TensorFlow checkpoint")
    parent = os.path.dirname(os.path.abspath(prefix))
    os.makedirs(parent, exist_ok=True)
    data_path = f"{prefix}.data-00000-of-00001"
    tag = f".{uuid.uuid4().hex[:12]}.tmp"
    entries: list[tuple[bytes, bytes]] = []
    offset = 0
    try:
        with open(data_path + tag, "wb") as f:
            for name in sorted(tensors, key=lambda n: n.encode("utf-8")):
                dtype, arr = _as_numpy(tensors[name])
                raw = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else b""
                f.write(raw)
                entries.append((name.encode("utf-8"),
                                _encode_entry(dtype, arr.shape, offset, arr.nbytes,
                                              masked_crc32c(raw))))
                offset += arr.nbytes
        with open(prefix + ".index" + tag, "wb") as f:
            f.write(table_bytes([(b"", _encode_header(1))] + entries))
        os.replace(data_path + tag, data_path)
        os.replace(prefix + ".index" + tag, prefix + ".index")
    finally:
        for leftover in (data_path + tag, prefix + ".index" + tag):
            if os.path.exists(leftover):
                os.remove(leftover)
    return prefix
