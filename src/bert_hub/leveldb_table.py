"""LevelDB table files, the format of a TensorFlow checkpoint's ``.index``: read with bounds,
and written as TensorFlow writes them.

A table is data blocks (entries with prefix-compressed keys, restart points at the end), an
index block of block handles (varint offset + size), a metaindex block, and a 48-byte footer
(the two handles, padding, a magic number). Each block is followed by a compression byte
(none or snappy) and its masked CRC32C.

Reading a file costs time and memory in proportion to its size, never to a number inside it:
blocks may not overlap (each byte is decoded at most once), a snappy block's declared size is
checked against what its bytes could expand to before decoding, and the keys spelled out from
shared prefixes have a budget tied to the file's size.
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

import crc32c as _crc32c

from bert_hub.errors import CheckpointError

__all__ = ["BlockBuilder", "masked_crc32c", "put_varint", "read_table", "read_varint",
           "snappy_decompress", "table_bytes"]

TABLE_MAGIC = 0xDB4775248B80FB57  # LevelDB table footer magic, as TensorFlow writes it
FOOTER_SIZE = 48  # two block handles padded to 40 bytes + 8-byte magic
_BLOCK_TRAILER_SIZE = 5  # 1-byte compression type + 4-byte masked crc32c
_NO_COMPRESSION, _SNAPPY = 0, 1
_BLOCK_SIZE = 256 * 1024  # TensorFlow's table::Options default
_RESTART_INTERVAL = 16
_CRC_MASK_DELTA = 0xA282EAD8
_MAX_BLOCK_BYTES = 4 << 20  # a decompressed block: 16x the 256 KiB TensorFlow writes
_SNAPPY_MAX_RATIO = 22  # a 3-byte snappy copy emits at most 64 bytes: no stream expands more
# Every key of one table spelled out, together: 1 MiB plus 16 bytes per byte of the file
# (a checkpoint index spends ~40 bytes an entry on ~60-byte names: prefix compression and the
# values leave a ratio near 2, far below 16).
_KEY_BYTES_BASE, _KEY_BYTES_PER_FILE_BYTE = 1 << 20, 16


# --------------------------------------------------------------------------- checksums


def masked_crc32c(data) -> int:
    """LevelDB / TensorFlow masked CRC32C: rotate right by 15 bits and add a constant, so a
    CRC stored inside CRC'd data does not checksum to a fixed point."""
    crc = _crc32c.crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _CRC_MASK_DELTA) & 0xFFFFFFFF


# --------------------------------------------------------------------------- varints


def read_varint(buf, pos: int) -> tuple[int, int]:
    """(value, position after it) of the base-128 varint at ``pos``."""
    if pos < len(buf) and buf[pos] < 0x80:  # one byte: most varints of an index
        return buf[pos], pos + 1
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise IndexError("varint runs past the end of its buffer")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def put_varint(out: bytearray, value: int) -> None:
    """Append ``value`` as a varint (negative numbers as their 64-bit two's complement)."""
    value &= (1 << 64) - 1
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


# --------------------------------------------------------------------------- snappy


def snappy_decompress(data: bytes) -> bytes:
    """Raw snappy (the block format LevelDB tables use). TensorFlow writes bundle indexes
    uncompressed, but a table written with compression on is still a valid index.

    The declared length is checked against what the compressed bytes could possibly expand to
    before anything is decoded, and copies are done a slice at a time."""
    n, pos = read_varint(data, 0)
    if n > _MAX_BLOCK_BYTES or n > _SNAPPY_MAX_RATIO * len(data):
        raise ValueError(f"the block declares {n} decompressed bytes, more than its "
                         f"{len(data)} compressed bytes can hold (or over {_MAX_BLOCK_BYTES})")
    out = bytearray()
    while pos < len(data):
        tag = data[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(data[pos:pos + extra], "little")
                pos += extra
            length += 1
            if pos + length > len(data):
                raise ValueError("snappy literal runs past the end of the block")
            if len(out) + length > n:
                raise ValueError(f"snappy block decodes to more than the {n} bytes it declares")
            out += data[pos:pos + length]
            pos += length
            continue
        if kind == 1:  # copy with 1-byte offset
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | data[pos]
            pos += 1
        elif kind == 2:  # copy with 2-byte offset
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 2], "little")
            pos += 2
        else:  # copy with 4-byte offset
            length = (tag >> 2) + 1
            offset = int.from_bytes(data[pos:pos + 4], "little")
            pos += 4
        if pos > len(data):
            raise ValueError("snappy copy runs past the end of the block")
        if offset == 0 or offset > len(out):
            raise ValueError("snappy copy refers before the start of the output")
        if len(out) + length > n:
            raise ValueError(f"snappy block decodes to more than the {n} bytes it declares")
        start = len(out) - offset
        if offset >= length:
            out += out[start:start + length]
        else:  # the copy overlaps its own output: the last `offset` bytes, repeated
            out += (out[start:] * (length // offset + 1))[:length]
    if len(out) != n:
        raise ValueError(f"snappy block decodes to {len(out)} bytes, header says {n}")
    return bytes(out)


# --------------------------------------------------------------------------- table reading


def block_entries(block: bytes, budget: list) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, value) of a LevelDB block: entries of (shared, non_shared, value_len, key
    delta, value), then uint32 restart offsets and their count.

    ``budget`` ([bytes left]) caps the key bytes materialised: shared prefixes let a small block
    spell out keys far longer than itself."""
    if len(block) < 4:
        raise ValueError("block shorter than its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise ValueError(f"block claims {num_restarts} restart points, more than fit")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = read_varint(block, pos)
        non_shared, pos = read_varint(block, pos)
        value_len, pos = read_varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > limit:
            raise ValueError("block entry runs past the end of the block")
        budget[0] -= shared + non_shared
        if budget[0] < 0:
            raise ValueError("its keys, spelled out, are too long for its size (shared "
                             "prefixes repeated without end)")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def read_block(data: bytes, handle: bytes, path: str, start: int = 0) -> tuple[bytes, int]:
    """The contents of the block ``handle`` points at, and the byte where it ends. A block
    that begins before ``start`` (overlapping one read already) is refused, so that every
    byte of the file is decoded at most once."""
    offset, p = read_varint(handle, 0)
    size, _ = read_varint(handle, p)
    end = offset + size + _BLOCK_TRAILER_SIZE
    if end > len(data) - FOOTER_SIZE:
        raise CheckpointError(
            f"{path}: truncated index (a block at byte {offset} runs past the end of the file); "
            "the file was cut short while copying or downloading: fetch it again")
    if offset < start:
        raise CheckpointError(
            f"{path}: malformed index table (the block at byte {offset} overlaps the one before "
            "it); the file is corrupt: fetch it again")
    contents = data[offset:offset + size]
    kind = data[offset + size]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if masked_crc32c(data[offset:offset + size + 1]) != stored:
        raise CheckpointError(
            f"{path}: CRC mismatch in the index block at byte {offset}: the file is corrupt; "
            "fetch it again")
    if kind == _NO_COMPRESSION:
        return contents, end
    if kind == _SNAPPY:
        try:
            return snappy_decompress(contents), end
        except (ValueError, IndexError) as e:
            raise CheckpointError(
                f"{path}: the snappy-compressed index block at byte {offset} does not decode "
                f"({e}); the file is corrupt: fetch it again") from None
    raise CheckpointError(
        f"{path}: index block at byte {offset} uses compression type {kind}, which is neither "
        "none nor snappy; this is not a TensorFlow checkpoint index we can read")


def read_table(path: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of the table at ``path``, in file order; any damage is a
    ``CheckpointError`` naming the file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < FOOTER_SIZE:
        raise CheckpointError(
            f"{path}: truncated index ({len(data)} bytes, shorter than the {FOOTER_SIZE}-byte "
            "footer); fetch the checkpoint again")
    magic = struct.unpack_from("<Q", data, len(data) - 8)[0]
    if magic != TABLE_MAGIC:
        raise CheckpointError(
            f"{path}: bad magic number {magic:#018x} (expected {TABLE_MAGIC:#018x}): not a "
            "TensorFlow V2 checkpoint index, or truncated. Pass the checkpoint prefix written by "
            "tf.train.Saver (e.g. .../bert_model.ckpt) and check the file is complete")
    footer = data[len(data) - FOOTER_SIZE:]
    try:
        _, p = read_varint(footer, 0)  # metaindex offset
        _, p = read_varint(footer, p)  # metaindex size
        index_handle = footer[p:]
        budget = [_KEY_BYTES_BASE + _KEY_BYTES_PER_FILE_BYTE * len(data)]
        items, start = [], 0
        index_block, _ = read_block(data, index_handle, path)
        for _, handle in block_entries(index_block, budget):
            block, start = read_block(data, handle, path, start)
            items.extend(block_entries(block, budget))
    except (ValueError, IndexError, struct.error) as e:
        raise CheckpointError(f"{path}: malformed index table ({e}); fetch the checkpoint "
                              "again") from None
    return items


# --------------------------------------------------------------------------- writing


class BlockBuilder:
    """A LevelDB block: prefix-compressed keys with a restart point every 16 entries."""

    def __init__(self):
        self.buf, self.restarts, self.count, self.last = bytearray(), [0], 0, b""

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count % _RESTART_INTERVAL == 0:
            if self.count:
                self.restarts.append(len(self.buf))
        else:
            limit = min(len(key), len(self.last))
            while shared < limit and key[shared] == self.last[shared]:
                shared += 1
        put_varint(self.buf, shared)
        put_varint(self.buf, len(key) - shared)
        put_varint(self.buf, len(value))
        self.buf += key[shared:]
        self.buf += value
        self.last, self.count = key, self.count + 1

    def finish(self) -> bytes:
        tail = b"".join(struct.pack("<I", r) for r in self.restarts)
        return bytes(self.buf) + tail + struct.pack("<I", len(self.restarts))


def table_bytes(items: list[tuple[bytes, bytes]]) -> bytes:
    """A LevelDB table of sorted (key, value) items, uncompressed, as TensorFlow writes it."""
    out = bytearray()

    def emit(block: bytes) -> bytes:
        handle = bytearray()
        put_varint(handle, len(out))
        put_varint(handle, len(block))
        trailer = bytes([_NO_COMPRESSION])
        out.extend(block + trailer + struct.pack("<I", masked_crc32c(block + trailer)))
        return bytes(handle)

    index = BlockBuilder()
    block = BlockBuilder()
    for key, value in items:
        block.add(key, value)
        if len(block.buf) >= _BLOCK_SIZE:
            index.add(block.last, emit(block.finish()))  # last key: a valid separator
            block = BlockBuilder()
    if block.count:
        index.add(block.last, emit(block.finish()))
    meta_handle = emit(BlockBuilder().finish())
    index_handle = emit(index.finish())
    footer = (meta_handle + index_handle).ljust(FOOTER_SIZE - 8, b"\x00")
    out += footer + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out)
