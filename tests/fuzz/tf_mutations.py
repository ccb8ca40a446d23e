"""Hostile inputs for the TensorFlow reader, the conversion and configs: how each case is made.

A case is ``(seed, index)``: every random choice comes from ``random.Random(f"{seed}/{index}")``,
so a case is rebuilt exactly from those two numbers. Each starts from real files (the committed
TensorFlow-written ``tests/data/tf_tiny`` and a checkpoint our writer made from it) and mutates
them: raw bytes, protobuf fields, table blocks, snappy streams, names, dtypes and shapes, data
shards, ``bert_config.json``, ``tokenizer_config.json``. ``tf_cases.py`` runs them.
"""
from __future__ import annotations

import json
import random
import shutil
import struct
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
TF_TINY = ROOT / "tests" / "data" / "tf_tiny"
PREFIX = "bert_model.ckpt"
DATA = f"{PREFIX}.data-00000-of-00001"

# Which kinds of case, and how often (weights). Each kind is one class of hostile input.
KINDS = {
    "index_bytes": 3, "entry_fields": 4, "header": 2, "names": 3, "blocks": 3, "snappy": 3,
    "shards": 2, "weights": 4, "config": 4, "tokenizer_config": 1,
}
CHECKPOINT_TARGETS = ("read", "convert_safetensors", "convert_bin", "infer_config",
                      "load_tf_weights", "from_pretrained", "cli_convert")
CONFIG_TARGETS = ("config", "convert_safetensors", "from_pretrained", "cli_convert", "cli_to_tf")

# Values that break naive code: signs, int32/int64/uint64 edges, 8 EiB, overflowing products.
BOUNDARY_INTS = [0, 1, 2, 3, -1, -2, 7, 255, 256, 2**16, 2**31 - 1, 2**31, 2**32, 2**62,
                 2**63 - 1, -(2**63), 2**64 - 1, 10**9, 1000000000]
DTYPE_ENUMS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 17, 19, 22, 23, 99, 2**31, 2**64 - 1]


# --------------------------------------------------------------------------- protobuf + table
def varint(value: int) -> bytes:
    from bert_hub.leveldb_table import put_varint

    out = bytearray()
    put_varint(out, value)
    return bytes(out)


def pb_decode(buf: bytes) -> list:
    """[(field, wire, value)] of a protobuf message (values: int or bytes)."""
    from bert_hub.tf_checkpoint import _wire_fields

    return list(_wire_fields(buf))


def pb_encode(fields: list) -> bytes:
    out = bytearray()
    for field, wire, value in fields:
        out += varint((field << 3) | wire)
        if wire == 0:
            out += varint(value)
        elif wire == 1:
            out += struct.pack("<Q", value & ((1 << 64) - 1))
        elif wire == 2:
            out += varint(len(value)) + value
        else:
            out += struct.pack("<I", value & 0xFFFFFFFF)
    return bytes(out)


def snappy_compress(data: bytes, rng: random.Random | None = None) -> bytes:
    """A valid raw snappy stream: greedy 4-byte matches as 2-byte-offset copies, else literals."""
    out = bytearray(varint(len(data)))
    table, pos, literal_start = {}, 0, 0

    def flush_literal(end):
        nonlocal literal_start
        while literal_start < end:
            n = min(60, end - literal_start)
            out.append((n - 1) << 2)
            out.extend(data[literal_start:literal_start + n])
            literal_start += n

    while pos + 4 <= len(data):
        key = data[pos:pos + 4]
        cand = table.get(key)
        table[key] = pos
        if cand is not None and pos - cand < 65536 and (rng is None or rng.random() < 0.9):
            length = 4
            while pos + length < len(data) and length < 64 and data[cand + length] == data[pos + length]:
                length += 1
            flush_literal(pos)
            out.append(((length - 1) << 2) | 2)
            out += struct.pack("<H", pos - cand)
            pos += length
            literal_start = pos
        else:
            pos += 1
    flush_literal(len(data))
    return bytes(out)


def block_bytes(items: list) -> bytes:
    from bert_hub.leveldb_table import BlockBuilder

    block = BlockBuilder()
    for key, value in items:
        block.add(key, value)
    return block.finish()


def table_bytes(blocks: list, *, compress=(), raw_index: bytes | None = None,
                handles: list | None = None, footer: bytes | None = None,
                kinds: dict | None = None) -> bytes:
    """A LevelDB table from raw data blocks (already-finished bytes, maybe mutated), with
    correct CRCs. ``compress``: indexes of blocks stored snappy-compressed (``blocks[i]`` is
    then the compressed stream itself when it is bytes wrapped in a 1-tuple). ``handles``:
    replaces the index block's handles; ``raw_index``: the index block's bytes as given."""
    from bert_hub.leveldb_table import FOOTER_SIZE, TABLE_MAGIC, masked_crc32c

    out = bytearray()

    def emit(raw: bytes, kind: int) -> bytes:
        handle = varint(len(out)) + varint(len(raw))
        trailer = bytes([kind & 0xFF])
        out.extend(raw + trailer + struct.pack("<I", masked_crc32c(raw + trailer)))
        return handle

    entries = []
    for i, (last_key, raw) in enumerate(blocks):
        kind = (kinds or {}).get(i, 1 if i in compress else 0)
        entries.append((last_key, emit(raw, kind)))
    if handles is not None:
        entries = handles
    meta = emit(block_bytes([]), 0)
    index = emit(raw_index if raw_index is not None else block_bytes(entries), 0)
    tail = footer if footer is not None else (meta + index).ljust(FOOTER_SIZE - 8, b"\0")
    return bytes(out) + tail + struct.pack("<Q", TABLE_MAGIC)


def split_blocks(items: list, per_block: int, compress_all: bool = False, rng=None) -> list:
    """[(last key, raw block)] holding ``items``, ``per_block`` entries each."""
    blocks = []
    for i in range(0, len(items), per_block):
        chunk = items[i:i + per_block]
        raw = block_bytes(chunk)
        blocks.append((chunk[-1][0], snappy_compress(raw, rng) if compress_all else raw))
    return blocks


# --------------------------------------------------------------------------- materials
class Materials:
    """The real files every case starts from, built once per worker."""

    def __init__(self, root: Path):
        from bert_hub.convert import convert_tf_checkpoint
        from bert_hub.leveldb_table import read_table
        from bert_hub.tf_checkpoint import CheckpointReader, write_checkpoint

        self.root = root
        self.tf_tiny = root / "tf_tiny"
        self.tf_tiny.mkdir(parents=True)
        for name in ("bert_config.json", "vocab.txt", f"{PREFIX}.index", DATA):
            shutil.copy(TF_TINY / name, self.tf_tiny / name)
        self.config_text = (TF_TINY / "bert_config.json").read_text()
        self.config = json.loads(self.config_text)
        reader = CheckpointReader(self.tf_tiny / PREFIX)
        self.tensors = {n: reader.get_array(n, copy=True) for n in reader.names()}
        self.weights = {n: a for n, a in self.tensors.items()
                        if not n.endswith(("adam_m", "adam_v")) and n != "global_step"}
        self.ours = root / "ours"
        write_checkpoint(self.ours / PREFIX, self.weights)
        shutil.copy(TF_TINY / "bert_config.json", self.ours / "bert_config.json")
        self.bases = {"tf_tiny": self.tf_tiny, "ours": self.ours}
        self.items = {k: read_table(str(d / f"{PREFIX}.index")) for k, d in self.bases.items()}
        self.safetensors = root / "model.safetensors"
        convert_tf_checkpoint(self.tf_tiny / PREFIX, self.tf_tiny / "bert_config.json",
                              self.safetensors)

    def folder(self, base: str, dest: Path) -> Path:
        shutil.copytree(self.bases[base], dest)
        return dest


# --------------------------------------------------------------------------- mutations
def hostile_int(rng: random.Random) -> int:
    if rng.random() < 0.7:
        return rng.choice(BOUNDARY_INTS)
    return rng.randint(-(2**63), 2**64 - 1) >> rng.randint(0, 63)


def mutate_bytes(rng: random.Random, raw: bytes, notes: list) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        op = rng.choice(["flip", "set", "truncate", "insert", "duplicate", "zero"])
        if not data:
            data = bytearray(b"\0")
        at = rng.randrange(len(data))
        if op == "flip":
            data[at] ^= 1 << rng.randrange(8)
        elif op == "set":
            data[at] = rng.choice([0, 0x7F, 0x80, 0xFF, rng.randrange(256)])
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == "duplicate":
            n = rng.randint(1, 64)
            data[at:at] = data[at:at + n] * rng.randint(1, 50)
        else:
            data[at:at + rng.randint(1, 32)] = b"\0" * rng.randint(1, 32)
        notes.append(f"{op}@{at}")
    return bytes(data)


def case_index_bytes(rng, mats, folder, notes):
    index = folder / f"{PREFIX}.index"
    raw = index.read_bytes()
    if rng.random() < 0.5:  # keep the footer so the damage reaches the blocks
        body = mutate_bytes(rng, raw[:-48], notes)
        index.write_bytes(body + raw[-48:])
    else:
        index.write_bytes(mutate_bytes(rng, raw, notes))


def mutate_entry(rng, value: bytes, notes: list) -> bytes:
    try:
        fields = pb_decode(value)
    except (ValueError, IndexError, struct.error):  # garbled by an earlier mutation of this case
        notes.append("bytes")
        return mutate_bytes(rng, value, notes)
    op = rng.choice(["dtype", "dims", "rank", "number", "wire", "slices", "truncate", "garbage",
                     "drop", "duplicate"])
    notes.append(op)
    if op == "dtype":
        fields = [f for f in fields if f[0] != 1] + [(1, 0, rng.choice(DTYPE_ENUMS))]
    elif op in ("dims", "rank"):
        shape = [f for f in fields if f[0] == 2]
        dims = [pb_decode(d[2]) for d in pb_decode(shape[0][2])] if shape else []
        sizes = [next((v for f, _, v in d if f == 1), 0) for d in dims]
        if op == "dims" and sizes:
            sizes[rng.randrange(len(sizes))] = hostile_int(rng)
        elif op == "rank":
            choice = rng.choice(["drop", "add", "scalar", "huge"])
            notes.append(choice)
            if choice == "drop" and sizes:
                sizes.pop(rng.randrange(len(sizes)))
            elif choice == "add":
                sizes.insert(rng.randrange(len(sizes) + 1), rng.choice([1, 2, 0, 2**40]))
            elif choice == "scalar":
                sizes = []
            else:
                sizes = [1] * rng.choice([255, 300, 5000])
        shape_msg = pb_encode([(2, 2, pb_encode([(1, 0, s)])) for s in sizes])
        fields = [f for f in fields if f[0] != 2] + [(2, 2, shape_msg)]
    elif op == "number":
        field = rng.choice([3, 4, 5, 6])
        wire = 5 if field == 6 else 0
        fields = [f for f in fields if f[0] != field] + [(field, wire, hostile_int(rng))]
    elif op == "wire":  # the right field number with the wrong wire type
        field = rng.choice([1, 2, 3, 4, 5, 6, 7])
        wire = rng.choice([0, 1, 2, 5])
        value = b"\x08\x01" if wire == 2 else rng.choice([1, 2**40])
        fields = [f for f in fields if f[0] != field] + [(field, wire, value)]
        notes.append(f"field{field}/wire{wire}")
    elif op == "slices":
        fields.append((7, 2, pb_encode([(1, 2, b"\x08\x00\x10\x02")])))
    elif op == "truncate":
        return pb_encode(fields)[:rng.randrange(max(1, len(pb_encode(fields))))]
    elif op == "garbage":
        return pb_encode(fields) + bytes(rng.randrange(256) for _ in range(rng.randint(1, 12)))
    elif op == "drop":
        if fields:
            fields.pop(rng.randrange(len(fields)))
    else:
        fields = fields + fields
    return pb_encode(fields)


def write_items(folder: Path, items: list, rng=None, per_block: int = 1 << 30) -> None:
    (folder / f"{PREFIX}.index").write_bytes(table_bytes(split_blocks(items, per_block)))


def case_entry_fields(rng, mats, folder, notes, base):
    items = list(mats.items[base])
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(1, len(items))
        if rng.random() < 0.5:  # prefer the variables the converter reads
            names = [j for j, (k, _) in enumerate(items) if k.startswith((b"bert/", b"cls/"))
                     and not k.endswith((b"adam_m", b"adam_v"))]
            i = rng.choice(names)
        notes.append(items[i][0].decode(errors="replace"))
        items[i] = (items[i][0], mutate_entry(rng, items[i][1], notes))
    write_items(folder, items, rng, per_block=rng.choice([16, 64, 1 << 30]))


def case_header(rng, mats, folder, notes, base):
    items = list(mats.items[base])
    fields = pb_decode(items[0][1])
    op = rng.choice(["num_shards", "endianness", "version", "wire", "drop", "garbage"])
    notes.append(op)
    if op == "num_shards":
        value = rng.choice([0, 2, 3, 2**31 - 1, 2**31, 2**32, 2**63, 2**64 - 1, -1])
        notes.append(str(value))
        fields = [f for f in fields if f[0] != 1] + [(1, 0, value)]
    elif op == "endianness":
        fields.append((2, 0, hostile_int(rng)))
    elif op == "version":
        version = [(1, 0, hostile_int(rng)), (2, 0, rng.choice([0, 1, 2, 2**63])),
                   (3, rng.choice([0, 2]), rng.choice([1, 2]) if rng.random() < 0.5 else 1)]
        if version[2][1] == 2:
            version[2] = (3, 2, varint(1) + varint(2**63))
        fields = [f for f in fields if f[0] != 3] + [(3, 2, pb_encode(version))]
    elif op == "wire":
        field = rng.choice([1, 2, 3])
        wire = rng.choice([0, 2, 5])
        fields = [f for f in fields if f[0] != field] + \
            [(field, wire, b"\x01\x02" if wire == 2 else 5)]
    elif op == "drop":
        items = items[1:]
        write_items(folder, items)
        return
    else:
        items[0] = (b"", pb_encode(fields) + bytes([rng.randrange(256)]))
        write_items(folder, items)
        return
    items[0] = (b"", pb_encode(fields))
    write_items(folder, items)


def case_names(rng, mats, folder, notes, base):
    items = list(mats.items[base])
    ops = rng.sample(["huge_layer", "gap", "negative", "unicode", "long", "remove", "add",
                      "many", "duplicate", "empty", "slice_key"], rng.randint(1, 3))
    notes.extend(ops)
    for op in ops:
        i = rng.randrange(1, len(items))
        key, value = items[i]
        if op == "huge_layer":
            n = rng.choice([10**9, 2**31, 2**63, 10**30])
            items.append((b"bert/encoder/layer_%d/output/dense/bias" % n, value))
            if rng.random() < 0.5:
                items = [(k.replace(b"layer_1/", b"layer_%d/" % n), v) for k, v in items]
        elif op == "gap":
            items = [(k.replace(b"layer_1/", b"layer_7/"), v) for k, v in items]
        elif op == "negative":
            items = [(k.replace(b"layer_1/", b"layer_-1/"), v) for k, v in items]
        elif op == "unicode":
            items[i] = (key + "/\u00e9\u4e2d\U0001f600".encode(), value)
        elif op == "long":
            items[i] = (key + b"x" * rng.choice([1000, 100_000]), value)
        elif op == "remove":
            del items[i]
        elif op == "add":
            items.append((rng.choice([b"bert/encoder/layer_2/output/dense/bias", b"foo/bar",
                                      b"cls/predictions/extra", b"bert/pooler/dense/kernel/Adam"]),
                          value))
        elif op == "many":
            items += [(b"bert/encoder/layer_%d/output/dense/bias" % n, value)
                      for n in range(rng.choice([2, 1000, 20000]))]
        elif op == "duplicate":
            items.insert(i, (key, items[rng.randrange(1, len(items))][1]))
        elif op == "empty":
            items.append((b"", value))
        else:
            items.append((b"\x00" + key, value))
    if rng.random() < 0.8:
        items = [items[0]] + sorted(items[1:])
    write_items(folder, items, per_block=rng.choice([16, 1 << 30]))


def case_blocks(rng, mats, folder, notes, base):
    items = list(mats.items[base])
    op = rng.choice(["restarts", "key_bomb", "same_block", "overlap", "out_of_range", "footer",
                     "compression_kind", "raw_block", "raw_index", "empty_blocks"])
    notes.append(op)
    blocks = split_blocks(items, rng.choice([4, 16, 64]))
    kw = {}
    if op == "restarts":
        i = rng.randrange(len(blocks))
        raw = bytearray(blocks[i][1])
        raw[-4:] = struct.pack("<I", rng.choice([0, 2**32 - 1, len(raw), 2**20]))
        blocks[i] = (blocks[i][0], bytes(raw))
    elif op == "key_bomb":  # each entry shares the whole previous key and adds a byte
        n, grow = rng.choice([2000, 20000, 60000]), rng.choice([1, 64])
        raw = bytearray(varint(0) + varint(grow) + varint(0) + b"k" * grow)
        for j in range(1, n):
            raw += varint(j * grow) + varint(grow) + varint(0) + b"k" * grow
        raw += struct.pack("<I", 0) + struct.pack("<I", 1)
        blocks.append((b"k" * 8, bytes(raw)))
        notes.append(f"{n}x{grow}")
    elif op in ("same_block", "overlap", "out_of_range"):
        offsets, pos = [], 0
        for _, raw in blocks:
            offsets.append((pos, len(raw)))
            pos += len(raw) + 5
        if op == "same_block":
            handles = [(b"k%06d" % j, varint(offsets[0][0]) + varint(offsets[0][1]))
                       for j in range(rng.choice([2, 100, 5000]))]
        elif op == "overlap":
            off, size = offsets[-1]
            handles = [(b"a", varint(0) + varint(pos - 5)), (b"b", varint(off) + varint(size))]
        else:
            handles = [(b"a", varint(hostile_int(rng) & ((1 << 64) - 1)) +
                        varint(hostile_int(rng) & ((1 << 64) - 1)))]
        kw["handles"] = handles
    elif op == "footer":
        kw["footer"] = bytes(rng.randrange(256) for _ in range(40))
    elif op == "compression_kind":
        kw["kinds"] = {rng.randrange(len(blocks)): rng.choice([1, 2, 4, 255])}
    elif op == "raw_block":
        i = rng.randrange(len(blocks))
        blocks[i] = (blocks[i][0], mutate_bytes(rng, blocks[i][1], notes))
    elif op == "raw_index":
        index = block_bytes([(k, b"") for k, _ in blocks])
        kw["raw_index"] = mutate_bytes(rng, index, notes)
    else:
        blocks = [(b"", b"")] + blocks
    (folder / f"{PREFIX}.index").write_bytes(table_bytes(blocks, **kw))


def case_snappy(rng, mats, folder, notes, base):
    items = list(mats.items[base])
    blocks = split_blocks(items, rng.choice([8, 64, 1 << 30]), compress_all=True, rng=rng)
    op = rng.choice(["valid", "declared", "stream", "bomb", "declared_26mb", "bad_copy"])
    notes.append(op)
    i = rng.randrange(len(blocks))
    key, stream = blocks[i]
    if op == "declared":
        from bert_hub.leveldb_table import read_varint as _varint

        _, p = _varint(stream, 0)
        stream = varint(rng.choice([0, 1, 2**20, 2**32, 2**63, hostile_int(rng) & (2**64 - 1)])) \
            + stream[p:]
    elif op == "stream":
        stream = stream[:1] + mutate_bytes(rng, stream[1:], notes)
    elif op in ("bomb", "declared_26mb"):  # copies of 64 bytes, 3 bytes each: maximal expansion
        size = rng.choice([1 << 20, 26 << 20]) if op == "bomb" else 26 << 20
        copies = (size - 4) // 64
        body = bytes([3 << 2]) + b"abcd" + bytes([(63 << 2) | 2, 4, 0]) * copies
        stream = varint(4 + 64 * copies + (rng.choice([0, 1]) if op == "bomb" else 0)) + body
        if op == "declared_26mb":  # declares 26 MB, holds a fraction of it
            stream = stream[:len(stream) // rng.choice([10, 1000])]
    elif op == "bad_copy":
        stream = stream + bytes([(10 << 2) | 2]) + struct.pack("<H", rng.choice([0, 60000]))
    blocks[i] = (key, stream)
    (folder / f"{PREFIX}.index").write_bytes(table_bytes(blocks, compress=range(len(blocks))))


def case_shards(rng, mats, folder, notes, base):
    data = folder / DATA
    op = rng.choice(["truncate", "flip", "empty", "remove", "directory", "extra", "two_shards",
                     "grow"])
    notes.append(op)
    raw = data.read_bytes()
    if op == "truncate":
        data.write_bytes(raw[:rng.randrange(len(raw))])
    elif op == "flip":
        data.write_bytes(mutate_bytes(rng, raw, notes))
    elif op == "empty":
        data.write_bytes(b"")
    elif op == "remove":
        data.unlink()
    elif op == "directory":
        data.unlink()
        data.mkdir()
    elif op == "extra":
        (folder / f"{PREFIX}.data-00001-of-00001").write_bytes(raw)
    elif op == "two_shards":  # header says 2; shard 1 missing or present
        items = list(mats.items[base])
        items[0] = (b"", pb_encode([(1, 0, 2), (3, 2, b"\x08\x01")]))
        i = rng.randrange(1, len(items))
        items[i] = (items[i][0], pb_encode(pb_decode(items[i][1]) + [(3, 0, 1)]))
        write_items(folder, items)
        data.rename(folder / f"{PREFIX}.data-00000-of-00002")
        if rng.random() < 0.5:
            (folder / f"{PREFIX}.data-00001-of-00002").write_bytes(raw[:rng.randrange(len(raw))])
    else:
        data.write_bytes(raw + bytes(rng.randrange(256) for _ in range(rng.randint(1, 4096))))


def case_weights(rng, mats, folder, notes, base):
    """Checkpoints our writer makes with wrong dtypes, ranks, shapes or sets of variables."""
    from bert_hub.tf_checkpoint import write_checkpoint

    tensors = dict(mats.weights if rng.random() < 0.6 else mats.tensors)
    names = sorted(tensors)
    for _ in range(rng.randint(1, 3)):
        name = rng.choice(names)
        arr = tensors[name]
        op = rng.choice(["dtype", "rank1", "transpose", "shape", "remove", "extra_layer",
                         "zero_dim", "scalar", "nan", "unknown"])
        notes.append(f"{op}:{name}")
        if op == "dtype":
            dtype = rng.choice(["int32", "int64", "uint8", "bool", "int8", "int16", "float64",
                                "float16"])
            tensors[name] = arr.astype(dtype)
            notes.append(dtype)
        elif op == "rank1":
            tensors[name] = arr.reshape(-1)
        elif op == "transpose":
            tensors[name] = np.ascontiguousarray(arr.T) if arr.ndim == 2 else arr[None]
        elif op == "shape":
            tensors[name] = np.zeros(tuple(max(0, d + rng.choice([-1, 1, 3])) for d in arr.shape),
                                     arr.dtype)
        elif op == "remove":
            del tensors[name]
            names.remove(name)
        elif op == "extra_layer":
            for n in [n for n in names if "layer_1/" in n]:
                tensors[n.replace("layer_1/", f"layer_{rng.choice([2, 5, 1000000000])}/")] = \
                    tensors[n]
        elif op == "zero_dim":
            tensors[name] = np.zeros((0,) + arr.shape[1:], arr.dtype)
        elif op == "scalar":
            tensors[name] = np.array(1.5, np.float32)
        elif op == "nan":
            tensors[name] = np.full(arr.shape, np.nan, arr.dtype) if arr.dtype.kind == "f" else arr
        else:
            tensors[rng.choice(["output_weights", "bert/encoder/layer_0/extra", "x"])] = arr
    for p in folder.glob(f"{PREFIX}.*"):
        p.unlink()
    write_checkpoint(folder / PREFIX, tensors)


def hostile_json_value(rng: random.Random, depth: int = 0):
    choice = rng.randrange(16)
    if choice == 0:
        return hostile_int(rng)
    if choice == 1:
        return rng.choice([1e9, 1e400, -1e400, 0.5, 37.0, 1e-300])
    if choice == 2:
        return rng.choice(["", "768", "gelu", "x" * 10000, "\u00e9"])
    if choice == 3:
        return rng.choice([None, True, False])
    if choice == 4 and depth < 3:
        return [hostile_json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if choice == 5 and depth < 3:
        return {str(hostile_json_value(rng, depth + 1))[:20]: 1}
    return rng.choice([2**62, 2**63, 10**9, 37, 12, 0, -3, 2**24, 2**31])


def hostile_config_text(rng: random.Random, mats, notes: list) -> bytes:
    op = rng.choice(["fields", "fields", "fields", "deep", "digits", "top", "invalid", "binary",
                     "many_keys", "hf", "specials", "divisible", "bom"])
    notes.append(op)
    config = dict(mats.config)
    if op == "fields":
        for key in rng.sample(sorted(config), rng.randint(1, 3)):
            config[key] = hostile_json_value(rng)
            notes.append(f"{key}={str(config[key])[:40]}")
        if rng.random() < 0.1:
            del config[rng.choice(sorted(config))]
    elif op == "deep":
        depth = rng.choice([500, 5000, 100_000])
        nest = "[" * depth + "]" * depth if rng.random() < 0.5 else '{"a":' * depth + "1" + "}" * depth
        text = json.dumps(config)[:-1] + f', "{rng.choice(["hidden_act", "x", "hidden_size"])}": ' \
            + nest + "}"
        return text.encode()
    elif op == "digits":
        return json.dumps(config).replace(str(config["vocab_size"]), "9" * rng.choice([30, 5000]), 1) \
            .encode()
    elif op == "top":
        return json.dumps(rng.choice([[config], "config", 30, None, []])).encode()
    elif op == "invalid":
        return json.dumps(config).encode()[:rng.randrange(len(json.dumps(config)))]
    elif op == "binary":
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    elif op == "many_keys":
        config.update({f"k{j}": j for j in range(rng.choice([100, 100_000]))})
    elif op == "hf":
        config[rng.choice(["position_embedding_type", "is_decoder", "layer_norm_eps"])] = \
            hostile_json_value(rng)
    elif op == "specials":
        return json.dumps(config).replace(str(config["initializer_range"]),
                                          rng.choice(["NaN", "Infinity", "-Infinity"]), 1).encode()
    elif op == "divisible":
        config.update(hidden_size=37, num_attention_heads=12)
    else:
        return b"\xef\xbb\xbf" + json.dumps(config).encode()
    return json.dumps(config).encode()


def case_config(rng, mats, folder, notes, base):
    path = folder / "bert_config.json"
    if rng.random() < 0.05:
        path.unlink()
        path.mkdir() if rng.random() < 0.5 else None
        notes.append("config missing or a folder")
        return
    path.write_bytes(hostile_config_text(rng, mats, notes))


def case_tokenizer_config(rng, mats, folder, notes, base):
    op = rng.choice(["list", "string", "deep", "invalid", "binary", "values"])
    notes.append(op)
    text = {
        "list": b'[{"do_lower_case": true}]', "string": b'"lower"',
        "deep": b"[" * 100_000 + b"]" * 100_000, "invalid": b'{"do_lower_case": tr',
        "binary": bytes(rng.randrange(256) for _ in range(32)),
        "values": json.dumps({"do_lower_case": hostile_json_value(rng),
                              "model_max_length": hostile_json_value(rng)}).encode(),
    }[op]
    (folder / "tokenizer_config.json").write_bytes(text)


MUTATIONS = {
    "index_bytes": lambda rng, m, f, n, b: case_index_bytes(rng, m, f, n),
    "entry_fields": case_entry_fields, "header": case_header, "names": case_names,
    "blocks": case_blocks, "snappy": case_snappy, "shards": case_shards,
    "weights": case_weights, "config": case_config, "tokenizer_config": case_tokenizer_config,
}


def make_case(seed: int, index: int, mats: Materials, workdir: Path) -> dict:
    """Build case ``index`` of ``seed`` in a fresh folder; return its description."""
    rng = random.Random(f"{seed}/{index}")
    kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    base = rng.choice(sorted(mats.bases))
    folder = workdir / f"case{index}"
    mats.folder(base, folder)
    notes: list = []
    MUTATIONS[kind](rng, mats, folder, notes, base)
    if kind == "config":
        targets = CONFIG_TARGETS
    elif kind == "tokenizer_config":
        targets = ("tokenizer",)
    else:
        targets = CHECKPOINT_TARGETS
    return {"seed": seed, "index": index, "kind": kind, "base": base, "folder": str(folder),
            "notes": ", ".join(str(n) for n in notes)[:300], "targets": targets}
