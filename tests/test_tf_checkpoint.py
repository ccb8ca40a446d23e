"""The TensorBundle reader and writer against real TensorFlow.

TensorFlow runs only in one subprocess per module (the oracle): it writes fresh checkpoints with
scripts/make_tf_checkpoint.py and dumps what ``tf.train.load_checkpoint`` reads from them, from
the committed tests/data/tf_tiny and from checkpoints our writer produced. The process under test
never imports TensorFlow (a meta-path blocker makes sure).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from bert_hub import leveldb_table, tf_checkpoint
from bert_hub.errors import CheckpointError
from bert_hub.tf_checkpoint import CheckpointReader, list_variables, write_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "data" / "tf_tiny" / "bert_model.ckpt"
HAVE_TF = importlib.util.find_spec("tensorflow") is not None
needs_tf = pytest.mark.skipif(not HAVE_TF, reason="tensorflow not installed (the test oracle)")

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
                "float64": torch.float64, "int32": torch.int32, "int64": torch.int64}

# Runs under TensorFlow: make checkpoints, then dump what TF reads from each.
ORACLE = textwrap.dedent("""
    import importlib.util, json, os, sys
    import numpy as np
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import tensorflow as tf
    spec = json.loads(sys.argv[1])
    mk = importlib.util.spec_from_file_location("mk", spec["script"])
    make = importlib.util.module_from_spec(mk); mk.loader.exec_module(make)
    for out_dir, kwargs in spec["make"]:
        cfg = dict(num_hidden_layers=2, hidden_size=16, num_attention_heads=2,
                   intermediate_size=32, vocab_size=30, max_position_embeddings=16,
                   type_vocab_size=2)
        make.build(out_dir, cfg, **kwargs)
    for prefix, out in spec["dump"]:
        reader = tf.train.load_checkpoint(prefix)
        dtypes = reader.get_variable_to_dtype_map()
        listed = tf.train.list_variables(prefix)
        arrays = {f"v{i}": np.frombuffer(reader.get_tensor(n).tobytes(), np.uint8)
                  for i, (n, _) in enumerate(listed)}
        np.savez(out + ".npz", **arrays)
        with open(out + ".json", "w") as f:
            json.dump([[n, dtypes[n].name, list(s)] for n, s in listed], f)
""")

# Runs with TensorFlow blocked: our reader on every variable, sha256 of each tensor's bytes.
BLOCKED_READER = textwrap.dedent("""
    import hashlib, json, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "tensorflow":
                raise ImportError("tensorflow is blocked in this process")
    sys.meta_path.insert(0, Block())
    import torch
    from bert_hub.tf_checkpoint import CheckpointReader
    import bert_hub.convert  # the converter must not need TensorFlow either
    out = {}
    for prefix in sys.argv[1:]:
        r = CheckpointReader(prefix)
        for name in r.names():
            if r.entry(name).num_slices:
                continue
            t = r.get_tensor(name)
            raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()
            out[prefix + ":" + name] = hashlib.sha256(raw).hexdigest()
    assert "tensorflow" not in sys.modules
    print(json.dumps(out))
""")


pytestmark = pytest.mark.usefixtures("no_tensorflow")


def _raw(t: torch.Tensor) -> bytes:
    return (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).contiguous().numpy().tobytes()


def _our_tensors() -> dict:
    """Every dtype, scalars, empty tensors, odd sizes (unaligned offsets in the shard)."""
    g = torch.Generator().manual_seed(0)
    out = {}

    def make(dt, *shape):
        if dt.is_floating_point:
            return torch.randn(*shape, generator=g).to(dt)
        info = torch.iinfo(dt)
        return torch.randint(info.min, info.max, shape, generator=g, dtype=dt)

    for name, dt in TORCH_DTYPES.items():
        out[f"a/{name}/matrix"] = make(dt, 5, 3)
        out[f"a/{name}/odd"] = make(dt, 7)
        out[f"a/{name}/scalar"] = make(dt, 1).reshape(())
        out[f"a/{name}/empty"] = make(dt, 0, 4)
    out["b/transposed_view"] = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()
    out["b/numpy_big_endian"] = np.arange(6, dtype=">i4").reshape(2, 3)
    out["global_step"] = torch.tensor(7, dtype=torch.int64)
    return out


def _many_tensors() -> dict:
    """Enough variables that the index spans several 256 KiB blocks."""
    return {f"layer_{i:05d}/" + "x" * 60: np.full((2,), i, dtype=np.float32)
            for i in range(5000)}


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    if not HAVE_TF:
        pytest.skip("tensorflow not installed (the test oracle)")
    d = tmp_path_factory.mktemp("oracle")
    write_checkpoint(d / "ours" / "ck", _our_tensors())
    write_checkpoint(d / "many" / "ck", _many_tensors())
    prefixes = {
        "tiny": str(TINY),
        "fresh": str(d / "fresh" / "bert_model.ckpt"),
        "fresh_bf16": str(d / "fresh_bf16" / "bert_model.ckpt"),
        "partitioned": str(d / "partitioned" / "bert_model.ckpt"),
        "ours": str(d / "ours" / "ck"),
        "many": str(d / "many" / "ck"),
    }
    spec = {
        "script": str(ROOT / "scripts" / "make_tf_checkpoint.py"),
        "make": [[str(d / "fresh"), {"extra_dtypes": True, "seed": 1}],
                 [str(d / "fresh_bf16"), {"dtype": "bfloat16", "adam": False, "seed": 2}],
                 [str(d / "partitioned"), {"partitioned": True, "adam": False}]],
        "dump": [[p, str(d / f"dump_{k}")] for k, p in prefixes.items()],
    }
    proc = subprocess.run([sys.executable, "-c", ORACLE, json.dumps(spec)], check=False,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def dump(key):
        listed = json.loads((d / f"dump_{key}.json").read_text())
        with np.load(d / f"dump_{key}.npz") as z:
            return [(n, dt, s, z[f"v{i}"].tobytes()) for i, (n, dt, s) in enumerate(listed)]

    return {"prefix": prefixes, "dump": dump, "dir": d}


# --------------------------------------------------------------------------- vs TensorFlow


@pytest.mark.parametrize("key", ["tiny", "fresh", "fresh_bf16"])
def test_reader_equals_tensorflow_bit_for_bit(oracle, key):
    reader = CheckpointReader(oracle["prefix"][key])
    expected = oracle["dump"](key)
    assert [(n, dt, s) for n, dt, s, _ in expected] == reader.list_variables()
    for name, dtype, shape, raw in expected:
        t = reader.get_tensor(name)
        assert t.dtype == TORCH_DTYPES[dtype], name
        assert list(t.shape) == shape, name
        assert _raw(t) == raw, f"{name} differs from tf.train.load_checkpoint"
    if key == "fresh":  # the fixture really holds every dtype and the optimizer state
        dtypes = {dt for _, dt, _, _ in expected}
        assert set(TORCH_DTYPES) <= dtypes
        assert any(n.endswith("/adam_m") for n, *_ in expected)
        assert "global_step" in {n for n, *_ in expected}


@needs_tf
def test_reader_in_a_process_where_tensorflow_cannot_be_imported(oracle):
    keys = ["tiny", "fresh", "fresh_bf16"]
    proc = subprocess.run([sys.executable, "-c", BLOCKED_READER,
                           *[oracle["prefix"][k] for k in keys]],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    want = {f"{oracle['prefix'][k]}:{n}": hashlib.sha256(raw).hexdigest()
            for k in keys for n, _, _, raw in oracle["dump"](k)}
    assert got == want


@pytest.mark.parametrize("key", ["ours", "many"])
def test_writer_round_trip_through_tensorflow(oracle, key):
    tensors = _our_tensors() if key == "ours" else _many_tensors()
    expected = oracle["dump"](key)
    assert [n for n, *_ in expected] == sorted(tensors)
    for name, dtype, shape, raw in expected:
        src = tensors[name]
        if isinstance(src, np.ndarray):
            src = torch.from_numpy(src.astype(src.dtype.newbyteorder("=")))
        assert dtype == str(src.dtype).replace("torch.", ""), name
        assert shape == list(src.shape), name
        assert raw == _raw(src), f"TensorFlow reads {name} differently from what we wrote"
    # and our reader agrees with both
    reader = CheckpointReader(oracle["prefix"][key])
    for name, _, _, raw in expected[:50]:
        assert _raw(reader.get_tensor(name)) == raw


def test_writer_data_file_is_byte_identical_to_tensorflows(oracle, tmp_path):
    """Same variables, same order: our shard equals the one tf.compat.v1.train.Saver wrote."""
    src = CheckpointReader(oracle["prefix"]["fresh"])
    write_checkpoint(tmp_path / "ck", {n: src.get_tensor(n) for n in src.names()})
    ours = (tmp_path / "ck.data-00000-of-00001").read_bytes()
    theirs = Path(oracle["prefix"]["fresh"] + ".data-00000-of-00001").read_bytes()
    assert ours == theirs


def test_partitioned_variable_is_listed_and_refused_by_name(oracle):
    reader = CheckpointReader(oracle["prefix"]["partitioned"])
    listed = {n: (dt, s) for n, dt, s, _ in oracle["dump"]("partitioned")}
    assert listed["extra/partitioned"] == ("float32", [6, 4])
    assert [n for n, *_ in reader.list_variables()] == list(listed)
    with pytest.raises(CheckpointError, match=r"'extra/partitioned' was saved partitioned into "
                                              r"2 slices.*Re-save it unpartitioned"):
        reader.get_tensor("extra/partitioned")
    reader.get_tensor("bert/pooler/dense/kernel")  # the rest still reads


# --------------------------------------------------------------------------- without TF


def test_tiny_fixture_lists_google_names_and_shapes():
    names = {n: (dt, s) for n, dt, s in list_variables(TINY)}
    assert names["bert/embeddings/word_embeddings"] == ("float32", [30, 16])
    assert names["bert/encoder/layer_1/intermediate/dense/kernel"] == ("float32", [16, 32])
    assert names["bert/embeddings/word_embeddings/adam_v"] == ("float32", [30, 16])
    assert names["global_step"] == ("int64", [])
    assert list(names) == sorted(names)  # index order, like tf.train.list_variables


def test_prefix_forms_are_accepted():
    want = CheckpointReader(TINY).names()
    for form in (TINY.parent, str(TINY) + ".index", str(TINY) + ".data-00000-of-00001"):
        assert CheckpointReader(form).names() == want


def test_get_tensor_is_a_zero_copy_view_of_the_mapped_shard():
    reader = CheckpointReader(TINY)
    name = "bert/embeddings/word_embeddings"
    t = reader.get_tensor(name)
    mapped = reader._maps[0][1]  # the uint8 view of the shard's mmap
    base = mapped.ctypes.data
    assert base <= t.data_ptr() < base + mapped.size  # inside the map: no copy was made
    before = t.clone()
    t.add_(1.0)  # copy-on-write: the file never changes
    assert torch.equal(CheckpointReader(TINY).get_tensor(name), before)


def test_release_pages_keeps_views_valid():
    reader = CheckpointReader(TINY)
    tensors = {n: reader.get_tensor(n) for n in reader.names()}
    copies = {n: t.clone() for n, t in tensors.items()}
    reader.release_pages()  # pages refault from the file: the views still read the same
    assert all(torch.equal(tensors[n], copies[n]) for n in tensors)


def test_copy_read_equals_mapped_read():
    reader = CheckpointReader(TINY)
    for name in reader.names():
        assert np.array_equal(reader.get_array(name, copy=True), reader.get_array(name)), name


def test_write_read_round_trip_without_tensorflow(tmp_path):
    tensors = _our_tensors()
    write_checkpoint(tmp_path / "ck", tensors)
    reader = CheckpointReader(tmp_path / "ck")
    assert reader.names() == sorted(tensors)
    for name, src in tensors.items():
        if isinstance(src, np.ndarray):
            src = torch.from_numpy(src.astype(src.dtype.newbyteorder("=")))
        got = reader.get_tensor(name)
        assert got.dtype == src.dtype and got.shape == src.shape
        assert _raw(got) == _raw(src), name
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_writer_refuses_dtypes_tensorflow_bundles_cannot_hold(tmp_path):
    with pytest.raises(CheckpointError, match="cannot write dtype complex64"):
        write_checkpoint(tmp_path / "ck", {"x": np.zeros(2, np.complex64)})
    assert not os.listdir(tmp_path)


# --------------------------------------------------------------------------- corrupt files


@pytest.fixture
def tiny_copy(tmp_path):
    for p in TINY.parent.iterdir():
        shutil.copy(p, tmp_path / p.name)
    prefix = tmp_path / "bert_model.ckpt"
    return prefix, Path(str(prefix) + ".index"), Path(str(prefix) + ".data-00000-of-00001")


def test_bad_magic(tiny_copy):
    prefix, index, _ = tiny_copy
    raw = bytearray(index.read_bytes())
    raw[-1] ^= 0xFF
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"bert_model\.ckpt\.index: bad magic number"):
        CheckpointReader(prefix)


@pytest.mark.parametrize("keep", [10, 0.5])
def test_truncated_index(tiny_copy, keep):
    prefix, index, _ = tiny_copy
    raw = index.read_bytes()
    index.write_bytes(raw[: keep if isinstance(keep, int) else int(len(raw) * keep)])
    msg = r"index: truncated index \(10 bytes" if keep == 10 else r"index: bad magic.*truncated"
    with pytest.raises(CheckpointError, match=msg):
        CheckpointReader(prefix)


def test_index_block_crc_mismatch(tiny_copy):
    prefix, index, _ = tiny_copy
    raw = bytearray(index.read_bytes())
    pos = raw.index(b"pooler")  # inside the first data block
    raw[pos + 3] ^= 0x01
    index.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match=r"index: CRC mismatch in the index block"):
        CheckpointReader(prefix)


def test_tensor_crc_mismatch_names_file_and_tensor(tiny_copy):
    prefix, _, data = tiny_copy
    reader = CheckpointReader(prefix)
    e = reader.entry("bert/pooler/dense/kernel")
    raw = bytearray(data.read_bytes())
    raw[e.offset + 5] ^= 0x40
    data.write_bytes(bytes(raw))
    reader = CheckpointReader(prefix)
    with pytest.raises(CheckpointError, match=r"data-00000-of-00001: CRC mismatch for "
                                              r"'bert/pooler/dense/kernel'.*fetch it again"):
        reader.get_tensor("bert/pooler/dense/kernel")
    with pytest.raises(CheckpointError, match="CRC mismatch"):
        reader.get_array("bert/pooler/dense/kernel", copy=True)
    reader.get_tensor("bert/pooler/dense/bias")  # its neighbours are fine
    lenient = CheckpointReader(prefix, verify_crc=False)
    assert not torch.equal(lenient.get_tensor("bert/pooler/dense/kernel"),
                           CheckpointReader(TINY).get_tensor("bert/pooler/dense/kernel"))


def test_short_shard_names_file_and_tensor(tiny_copy):
    prefix, _, data = tiny_copy
    raw = data.read_bytes()
    data.write_bytes(raw[: len(raw) - 100])
    reader = CheckpointReader(prefix)
    last = max(reader.names(), key=lambda n: reader.entry(n).offset + reader.entry(n).size)
    with pytest.raises(CheckpointError, match=rf"short data shard: '{last}' needs bytes"):
        reader.get_tensor(last)


def test_missing_shard(tiny_copy):
    prefix, _, data = tiny_copy
    data.unlink()
    reader = CheckpointReader(prefix)  # the index alone still lists
    assert "global_step" in reader
    with pytest.raises(CheckpointError, match=r"data-00000-of-00001: missing data shard 1 of 1 "
                                              r"\(needed for 'global_step'\)"):
        reader.get_tensor("global_step")


def test_missing_checkpoint_and_unknown_variable(tmp_path):
    with pytest.raises(CheckpointError, match=r"no TensorFlow checkpoint at .*nope.*\.index does "
                                              r"not exist"):
        CheckpointReader(tmp_path / "nope")
    with pytest.raises(CheckpointError, match=r"no TensorFlow checkpoint \(\*\.index\) in this "
                                              r"folder"):
        CheckpointReader(tmp_path)
    with pytest.raises(CheckpointError, match=r"no variable named 'bert/nope'"):
        CheckpointReader(TINY).get_tensor("bert/nope")


def _index_with_header(path: Path, header: bytes) -> None:
    path.write_bytes(leveldb_table.table_bytes([(b"", header)]))


def test_big_endian_checkpoint_is_refused(tmp_path):
    # BundleHeaderProto{num_shards: 1, endianness: BIG, version {producer: 1}}
    _index_with_header(tmp_path / "ck.index", b"\x08\x01\x10\x01\x1a\x02\x08\x01")
    with pytest.raises(CheckpointError, match="big-endian machine"):
        CheckpointReader(tmp_path / "ck")


def test_newer_format_version_is_refused(tmp_path):
    # BundleHeaderProto{num_shards: 1, version {producer: 3, min_consumer: 2}}
    _index_with_header(tmp_path / "ck.index", b"\x08\x01\x1a\x04\x08\x03\x10\x02")
    with pytest.raises(CheckpointError, match=r"min_consumer 2\) is newer than the version 1"):
        CheckpointReader(tmp_path / "ck")


def _snappy_literal(data: bytes) -> bytes:
    """A valid raw-snappy stream made of literals only."""
    out = bytearray()
    leveldb_table.put_varint(out, len(data))
    for i in range(0, len(data), 60):
        chunk = data[i:i + 60]
        out.append((len(chunk) - 1) << 2)
        out += chunk
    return bytes(out)


def test_snappy_decoder_copies_and_literals():
    # "abc" literal, then a 1-byte-offset copy of 9 bytes at distance 3 (overlapping itself),
    # then a 2-byte-offset copy of 5 bytes at distance 12.
    stream = bytes([17, 2 << 2]) + b"abc" + bytes([((9 - 4) << 2) | 1, 3]) \
        + bytes([((5 - 1) << 2) | 2, 12, 0])
    assert leveldb_table.snappy_decompress(stream) == b"abcabcabcabc" + b"abcab"
    with pytest.raises(ValueError, match="refers before the start"):
        leveldb_table.snappy_decompress(bytes([4, 1, 5]))


def test_snappy_compressed_index_is_read(tmp_path):
    """A table whose data block is snappy-compressed (LevelDB's default; TF writes none)."""
    write_checkpoint(tmp_path / "ck", {"w": np.arange(4, dtype=np.float32)})
    plain = CheckpointReader(tmp_path / "ck")
    items = [(b"", tf_checkpoint._encode_header(1)),
             (b"w", tf_checkpoint._encode_entry("float32", (4,), 0, 16,
                                                plain.entry("w").crc32c))]
    block = leveldb_table.BlockBuilder()
    for k, v in items:
        block.add(k, v)
    compressed = _snappy_literal(block.finish())
    out = bytearray()
    trailer = b"\x01"
    out += compressed + trailer + struct.pack(
        "<I", leveldb_table.masked_crc32c(compressed + trailer))
    index = leveldb_table.BlockBuilder()
    handle = bytearray()
    leveldb_table.put_varint(handle, 0)
    leveldb_table.put_varint(handle, len(compressed))
    index.add(b"w", bytes(handle))

    def emit(b: bytes) -> bytes:
        h = bytearray()
        leveldb_table.put_varint(h, len(out))
        leveldb_table.put_varint(h, len(b))
        out.extend(b + b"\x00" + struct.pack(
            "<I", leveldb_table.masked_crc32c(b + b"\x00")))
        return bytes(h)

    footer = (emit(leveldb_table.BlockBuilder().finish()) + emit(index.finish())).ljust(40,
                                                                                        b"\0")
    out += footer + struct.pack("<Q", leveldb_table.TABLE_MAGIC)
    (tmp_path / "ck.index").write_bytes(bytes(out))
    reader = CheckpointReader(tmp_path / "ck")
    assert reader.list_variables() == [("w", "float32", [4])]
    assert torch.equal(reader.get_tensor("w"), torch.arange(4, dtype=torch.float32))
    # and a corrupt snappy stream (valid CRC) fails clearly
    bad = bytes([200]) + compressed[1:]
    out[: len(compressed) + 5] = bad + trailer + struct.pack(
        "<I", leveldb_table.masked_crc32c(bad + trailer))
    (tmp_path / "ck.index").write_bytes(bytes(out))
    with pytest.raises(CheckpointError, match=r"snappy-compressed index block at byte 0 does not "
                                              r"decode"):
        CheckpointReader(tmp_path / "ck")


# --------------------------------------------------------------------------- hostile indexes
# Each fault a hostile-input campaign found (tests/fuzz/test_fuzz_tf.py runs the campaign):
# the index is rewritten with valid CRCs, so the damage reaches the decoders.


def _field(number: int, wire: int, value) -> bytes:
    out = bytearray()
    tf_checkpoint._put_field(out, number, wire, value)
    return bytes(out)


def _shape(*dims) -> bytes:
    return b"".join(_field(2, 2, _field(1, 0, d)) for d in dims)


def _rewrite(index: Path, name: bytes, value: bytes | None = None, header: bytes | None = None):
    items = leveldb_table.read_table(str(index))
    if header is not None:
        items[0] = (b"", header)
    if value is not None:
        items = [(k, value if k == name else v) for k, v in items]
    index.write_bytes(leveldb_table.table_bytes(items))


@pytest.mark.parametrize("value, message", [
    (_field(1, 0, 1) + _field(2, 0, 5), r"field 2 is a number where a nested message belongs"),
    (_field(1, 2, b"\x01"), r"field 1 is length-delimited where a number belongs"),
    (_field(1, 0, 1) + _field(2, 2, _field(2, 0, 3)), r"field 2 is a number where a nested"),
    (_field(1, 0, 1) + _field(2, 2, _shape(2**62, 2**62)), r"shape \[4611686018427387904, 4611686018427387904\] holds more than 2\*\*62"),
    (_field(1, 0, 1) + _field(2, 2, _shape(4, -1)), r"shape \[4, -1\] has a negative dimension"),
    (_field(1, 0, 1) + _field(2, 2, _shape(*[1] * 255)), r"shape has more than 254 dimensions"),
    (_field(1, 0, 1) + _field(4, 0, -5), r"negative offset \(-5\)"),
])
def test_malformed_entry_fields_are_checkpoint_errors(tiny_copy, value, message):
    prefix, index, _ = tiny_copy
    _rewrite(index, b"bert/pooler/dense/bias", value)
    with pytest.raises(CheckpointError, match=r"malformed entry for b'bert/pooler/dense/bias' "
                                              r"\(" + message):
        CheckpointReader(prefix)


@pytest.mark.parametrize("header, message", [
    (_field(1, 0, 2**63) + _field(3, 2, b"\x08\x01"), r"declares -9223372036854775808 data shards"),
    (_field(1, 0, 0) + _field(3, 2, b"\x08\x01"), r"declares 0 data shards"),
    (_field(1, 0, 1) + _field(3, 0, 1), r"malformed entry for b'' \(field 3 is a number"),
    (_field(1, 2, b"\x01") + _field(3, 2, b"\x08\x01"), r"malformed entry for b'' \(field 1 is"),
])
def test_hostile_headers_are_checkpoint_errors(tiny_copy, header, message):
    prefix, index, _ = tiny_copy
    _rewrite(index, b"", header=header)
    with pytest.raises(CheckpointError, match=message):
        CheckpointReader(prefix)


def test_data_bytes_counts_the_shards_present_not_the_declared_count(tiny_copy):
    prefix, index, data = tiny_copy
    _rewrite(index, b"", header=_field(1, 0, 2**31 - 1) + _field(3, 2, b"\x08\x01"))
    reader = CheckpointReader(prefix)  # the largest count TensorFlow could write
    assert reader.data_bytes == 0  # no shard named ...-of-2147483647
    renamed = Path(reader.shard_path(0))
    data.rename(renamed)
    assert reader.data_bytes == renamed.stat().st_size


@pytest.mark.parametrize("dtype_enum, dtype", [(7, "string"), (17, "uint16"),
                                               (99, "DataType enum 99")])
def test_unreadable_dtypes_are_refused_by_reader_and_converter(tiny_copy, dtype_enum, dtype):
    from bert_hub.convert import convert_tf_checkpoint
    from bert_hub.errors import ConversionError

    prefix, index, _ = tiny_copy
    entry = CheckpointReader(prefix).entry("bert/pooler/dense/bias")
    value = _field(1, 0, dtype_enum) + _field(2, 2, _shape(16)) + _field(4, 0, entry.offset) \
        + _field(5, 0, entry.size) + _field(6, 5, entry.crc32c)
    _rewrite(index, b"bert/pooler/dense/bias", value)
    with pytest.raises(CheckpointError, match=rf"has dtype {dtype}, which bert_hub does not read"):
        CheckpointReader(prefix).get_tensor("bert/pooler/dense/bias")
    out = prefix.parent / "out" / "model.safetensors"
    with pytest.raises(ConversionError, match=rf"not floating point: bert/pooler/dense/bias "
                                              rf"\({dtype}\)"):
        convert_tf_checkpoint(prefix, prefix.parent / "bert_config.json", out)
    assert not out.parent.exists() or not os.listdir(out.parent)


def test_a_size_of_8_eib_is_refused_before_any_allocation(tiny_copy):
    from bert_hub.convert import convert_tf_checkpoint, tf_to_state_dict

    prefix, index, _ = tiny_copy
    entry = CheckpointReader(prefix).entry("bert/pooler/dense/bias")
    value = _field(1, 0, 1) + _field(2, 2, _shape(16)) + _field(4, 0, entry.offset) \
        + _field(5, 0, 2**63 - 1) + _field(6, 5, entry.crc32c)
    _rewrite(index, b"bert/pooler/dense/bias", value)
    message = r"'bert/pooler/dense/bias' claims 9223372036854775807 bytes but its shape \[16\]"
    with pytest.raises(CheckpointError, match=message):
        tf_to_state_dict(prefix)
    for suffix in (".safetensors", ".bin"):
        with pytest.raises(CheckpointError, match=message):
            convert_tf_checkpoint(prefix, prefix.parent / "bert_config.json",
                                  prefix.parent / f"model{suffix}")
    assert not list(prefix.parent.glob("model*"))


def _table(blocks: list, index_handles=None, kind: int = 0) -> bytes:
    """A table of raw data blocks (stored with compression ``kind``) whose index block lists
    ``index_handles(handles)`` (default: each block once)."""
    out = bytearray()

    def emit(raw: bytes, k: int = 0) -> bytes:
        handle = bytearray()
        leveldb_table.put_varint(handle, len(out))
        leveldb_table.put_varint(handle, len(raw))
        trailer = bytes([k])
        out.extend(raw + trailer + struct.pack("<I", leveldb_table.masked_crc32c(raw + trailer)))
        return bytes(handle)

    handles = [emit(raw, kind) for raw in blocks]
    index = leveldb_table.BlockBuilder()
    for i, handle in enumerate(index_handles(handles) if index_handles else handles):
        index.add(b"k%06d" % i, handle)
    meta, top = emit(leveldb_table.BlockBuilder().finish()), emit(index.finish())
    return bytes(out) + (meta + top).ljust(40, b"\0") + struct.pack("<Q", leveldb_table.TABLE_MAGIC)


def _one_block(index: Path) -> bytes:
    block = leveldb_table.BlockBuilder()
    for key, value in leveldb_table.read_table(str(index)):
        block.add(key, value)
    return block.finish()


def test_a_block_listed_many_times_is_read_once_then_refused(tiny_copy):
    prefix, index, _ = tiny_copy
    index.write_bytes(_table([_one_block(index)]))
    assert CheckpointReader(prefix).names() == CheckpointReader(TINY).names()  # the table is fine
    index.write_bytes(_table([_one_block(index)], lambda handles: handles * 1000))
    with pytest.raises(CheckpointError, match=r"the block at byte 0 overlaps the one before it"):
        CheckpointReader(prefix)


def test_keys_spelled_out_from_shared_prefixes_are_bounded(tiny_copy):
    """20,000 entries of 3 bytes, each key the previous one plus a byte: 60 KB that would spell
    out 200 MB of keys."""
    prefix, index, _ = tiny_copy
    raw = bytearray()
    for i in range(20_000):
        for number in (i, 1, 0):
            leveldb_table.put_varint(raw, number)
        raw += b"k"
    raw += struct.pack("<II", 0, 1)
    index.write_bytes(_table([bytes(raw)]))
    with pytest.raises(CheckpointError, match=r"its keys, spelled out, are too long for its size"):
        CheckpointReader(prefix)


def _copies_stream(declared: int, copies: int) -> bytes:
    """Snappy: the literal "abcd", then ``copies`` copies of 64 bytes at distance 4 (each
    overlapping its own output; 3 bytes in, 64 out: snappy's largest expansion)."""
    stream = bytearray()
    leveldb_table.put_varint(stream, declared)
    return bytes(stream) + bytes([3 << 2]) + b"abcd" + bytes([(63 << 2) | 2, 4, 0]) * copies


def test_snappy_declared_size_is_checked_before_decoding(tiny_copy):
    prefix, index, _ = tiny_copy
    literal = _snappy_literal(_one_block(index))
    stream = bytearray()
    leveldb_table.put_varint(stream, 26 << 20)  # 26 MB declared by a few kilobytes
    stream += literal[leveldb_table.read_varint(literal, 0)[1]:]  # the same literals after it
    index.write_bytes(_table([bytes(stream)], kind=1))
    with pytest.raises(CheckpointError, match=r"declares 27262976 decompressed bytes, more than its "
                                              r"\d+ compressed bytes can hold"):
        CheckpointReader(prefix)
    # the most snappy can expand, but past the largest block an index may hold
    index.write_bytes(_table([_copies_stream(4 + 64 * 90_000, 90_000)], kind=1))
    with pytest.raises(CheckpointError, match=r"declares 5760004 decompressed bytes.*or over "
                                              r"4194304"):
        CheckpointReader(prefix)


def test_snappy_overlapping_copies_decode_in_bulk_to_the_right_bytes():
    assert leveldb_table.snappy_decompress(_copies_stream(4 + 64 * 1000, 1000)) == \
        b"abcd" * (1 + 16 * 1000)
    with pytest.raises(ValueError, match=r"decodes to 64004 bytes, header says 64005"):
        leveldb_table.snappy_decompress(_copies_stream(5 + 64 * 1000, 1000))
    with pytest.raises(ValueError, match=r"decodes to more than the 64003 bytes it declares"):
        leveldb_table.snappy_decompress(_copies_stream(3 + 64 * 1000, 1000))


# --------------------------------------------------------------------------- hostile conversions


def _google_folder(tmp_path: Path, change=None, config_change=None) -> Path:
    """A Google release folder: tf_tiny's tensors, changed by ``change``, written by our writer;
    its bert_config.json changed by ``config_change``."""
    reader = CheckpointReader(TINY)
    tensors = {n: reader.get_array(n, copy=True) for n in reader.names()}
    if change is not None:
        change(tensors)
    folder = tmp_path / "google"
    write_checkpoint(folder / "bert_model.ckpt", tensors)
    config = json.loads((TINY.parent / "bert_config.json").read_text())
    if config_change is not None:
        config_change(config)
    (folder / "bert_config.json").write_text(json.dumps(config))
    shutil.copy(TINY.parent / "vocab.txt", folder / "vocab.txt")
    return folder


def test_integer_weights_are_refused_before_loading(tmp_path):
    from bert_hub.config import BertConfig
    from bert_hub.convert import load_tf_weights_in_bert
    from bert_hub.errors import ConversionError
    from bert_hub.modeling import BertForPreTraining

    def to_int(tensors):
        tensors["bert/pooler/dense/kernel"] = tensors["bert/pooler/dense/kernel"].astype(np.int32)

    folder = _google_folder(tmp_path, to_int)
    message = r"weights that are not floating point: bert/pooler/dense/kernel \(int32\)"
    with pytest.raises(ConversionError, match=message):
        BertForPreTraining.from_pretrained(folder)
    model = BertForPreTraining(BertConfig.from_json_file(folder / "bert_config.json"))
    with pytest.raises(ConversionError, match=message):
        load_tf_weights_in_bert(model, folder / "bert_model.ckpt")
    assert not (folder / "model.safetensors").exists()


def test_rank_1_kernel_is_refused_by_config_inference_and_by_the_config(tmp_path):
    from bert_hub.convert import tf_to_state_dict
    from bert_hub.errors import ConversionError

    name = "bert/encoder/layer_0/intermediate/dense/kernel"

    def flatten(tensors):
        tensors[name] = tensors[name].reshape(-1)

    prefix = _google_folder(tmp_path, flatten) / "bert_model.ckpt"
    with pytest.raises(ConversionError, match=rf"{name} has shape \[512\], not a matrix"):
        tf_to_state_dict(prefix)
    with pytest.raises(ConversionError, match=rf"{name} \[512\] \(config says \[16, 32\]\)"):
        tf_to_state_dict(prefix, prefix.parent / "bert_config.json")


def test_a_layer_numbered_one_billion_costs_nothing(tmp_path):
    from bert_hub.convert import tf_to_state_dict
    from bert_hub.errors import ConversionError

    def far_layer(tensors):
        tensors["bert/encoder/layer_1000000000/output/dense/bias"] = np.zeros(16, np.float32)

    prefix = _google_folder(tmp_path, far_layer) / "bert_model.ckpt"
    with pytest.raises(ConversionError, match=r"not numbered 0..2 \(layer 2 is missing; the "
                                              r"highest is layer_1000000000\)"):
        tf_to_state_dict(prefix)
    with pytest.raises(ConversionError, match=r"1 variable\(s\) not in the BERT name table: "
                                              r"bert/encoder/layer_1000000000/output/dense/bias"):
        tf_to_state_dict(prefix, prefix.parent / "bert_config.json")


@pytest.mark.parametrize("field, value, error, message", [
    ("num_hidden_layers", 1e9, "ConfigError", r"num_hidden_layers must be an integer, got 1000000000.0"),
    ("num_hidden_layers", 10**9, "ConfigError", r"num_hidden_layers \(1000000000\) is over"),
    ("num_hidden_layers", 1000, "ConversionError",
     r"missing 15968 weight\(s\) the config expects: bert/encoder/layer_2/.*num_hidden_layers=1000; "
     r"the checkpoint holds 2 layers"),
    ("vocab_size", 2**62, "ConfigError", r"vocab_size \(4611686018427387904\) is over"),
])
def test_one_number_in_the_config_cannot_make_loading_unbounded(tmp_path, field, value, error,
                                                                 message):
    from bert_hub import errors
    from bert_hub.convert import convert_tf_checkpoint
    from bert_hub.modeling import BertModel

    folder = _google_folder(tmp_path, config_change=lambda c: c.update({field: value}))
    with pytest.raises(getattr(errors, error), match=message):
        BertModel.from_pretrained(folder)
    with pytest.raises(getattr(errors, error), match=message):
        convert_tf_checkpoint(folder / "bert_model.ckpt", folder / "bert_config.json",
                              tmp_path / "out.safetensors")
    assert not (folder / "model.safetensors").exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_a_huge_vocab_with_missing_embeddings_allocates_nothing(tmp_path):
    from bert_hub.errors import ConversionError
    from bert_hub.modeling import BertForPreTraining

    def drop_embeddings(tensors):  # and the MLM head, whose bias would show the real vocab
        for name in [n for n in tensors if n.startswith(("bert/embeddings/word", "cls/"))]:
            del tensors[name]

    folder = _google_folder(tmp_path, drop_embeddings,
                            config_change=lambda c: c.update(vocab_size=(1 << 24) - 1))
    with pytest.raises(ConversionError, match=r"missing 1 weight\(s\) the config expects: "
                                              r"bert/embeddings/word_embeddings"):
        BertForPreTraining.from_pretrained(folder)
