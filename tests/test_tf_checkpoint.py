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
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from bert_hub import tf_checkpoint
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
    path.write_bytes(tf_checkpoint._table_bytes([(b"", header)]))


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
    tf_checkpoint._put_varint(out, len(data))
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
    assert tf_checkpoint._snappy_decompress(stream) == b"abcabcabcabc" + b"abcab"
    with pytest.raises(ValueError, match="refers before the start"):
        tf_checkpoint._snappy_decompress(bytes([4, 1, 5]))


def test_snappy_compressed_index_is_read(tmp_path):
    """A table whose data block is snappy-compressed (LevelDB's default; TF writes none)."""
    write_checkpoint(tmp_path / "ck", {"w": np.arange(4, dtype=np.float32)})
    plain = CheckpointReader(tmp_path / "ck")
    items = [(b"", tf_checkpoint._encode_header(1)),
             (b"w", tf_checkpoint._encode_entry("float32", (4,), 0, 16,
                                                plain.entry("w").crc32c))]
    block = tf_checkpoint._BlockBuilder()
    for k, v in items:
        block.add(k, v)
    compressed = _snappy_literal(block.finish())
    out = bytearray()
    trailer = b"\x01"
    out += compressed + trailer + tf_checkpoint.struct.pack(
        "<I", tf_checkpoint.masked_crc32c(compressed + trailer))
    index = tf_checkpoint._BlockBuilder()
    handle = bytearray()
    tf_checkpoint._put_varint(handle, 0)
    tf_checkpoint._put_varint(handle, len(compressed))
    index.add(b"w", bytes(handle))

    def emit(b: bytes) -> bytes:
        h = bytearray()
        tf_checkpoint._put_varint(h, len(out))
        tf_checkpoint._put_varint(h, len(b))
        out.extend(b + b"\x00" + tf_checkpoint.struct.pack(
            "<I", tf_checkpoint.masked_crc32c(b + b"\x00")))
        return bytes(h)

    footer = (emit(tf_checkpoint._BlockBuilder().finish()) + emit(index.finish())).ljust(40,
                                                                                        b"\0")
    out += footer + tf_checkpoint.struct.pack("<Q", tf_checkpoint._TABLE_MAGIC)
    (tmp_path / "ck.index").write_bytes(bytes(out))
    reader = CheckpointReader(tmp_path / "ck")
    assert reader.list_variables() == [("w", "float32", [4])]
    assert torch.equal(reader.get_tensor("w"), torch.arange(4, dtype=torch.float32))
    # and a corrupt snappy stream (valid CRC) fails clearly
    bad = bytes([200]) + compressed[1:]
    out[: len(compressed) + 5] = bad + trailer + tf_checkpoint.struct.pack(
        "<I", tf_checkpoint.masked_crc32c(bad + trailer))
    (tmp_path / "ck.index").write_bytes(bytes(out))
    with pytest.raises(CheckpointError, match=r"snappy-compressed index block at byte 0 does not "
                                              r"decode"):
        CheckpointReader(tmp_path / "ck")
