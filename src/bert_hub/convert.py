"""Google's TensorFlow variable names <-> the module keys of pytorch-pretrained-bert 0.6.2.

One table (``name_table``) serves both directions. Dense kernels are stored ``[in, out]`` by
TensorFlow and ``[out, in]`` by ``torch.nn.Linear``, so those rows carry a transpose. The MLM
decoder weight is tied to the word embeddings and never appears in either direction.

TF -> torch to a ``.safetensors`` file streams tensor by tensor with numpy alone (no torch
import, memory flat at about the largest tensor); ``.bin`` goes through ``torch.save``.
"""
from __future__ import annotations

import json
import logging
import os
import re
import struct
import uuid
from collections.abc import Mapping
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from bert_hub.errors import ConversionError
from bert_hub.tf_checkpoint import CheckpointReader, write_checkpoint

__all__ = [
    "convert_tf_checkpoint", "export_tf_checkpoint", "load_tf_weights_in_bert", "name_table",
    "state_dict_to_tf", "tf_to_state_dict",
]

logger = logging.getLogger(__name__)

# Symbols in the shapes below: H hidden_size, I intermediate_size, V vocab_size,
# P max_position_embeddings, T type_vocab_size. Shapes are the torch side's.
# (Google name, 0.6.2 module key, transpose, torch shape)
_EMBEDDINGS = [
    ("bert/embeddings/word_embeddings", "bert.embeddings.word_embeddings.weight", False, "VH"),
    ("bert/embeddings/position_embeddings", "bert.embeddings.position_embeddings.weight", False,
     "PH"),
    ("bert/embeddings/token_type_embeddings", "bert.embeddings.token_type_embeddings.weight",
     False, "TH"),
    ("bert/embeddings/LayerNorm/gamma", "bert.embeddings.LayerNorm.weight", False, "H"),
    ("bert/embeddings/LayerNorm/beta", "bert.embeddings.LayerNorm.bias", False, "H"),
]
# {n}: the layer index.
_LAYER = [
    ("bert/encoder/layer_{n}/attention/self/query/kernel",
     "bert.encoder.layer.{n}.attention.self.query.weight", True, "HH"),
    ("bert/encoder/layer_{n}/attention/self/query/bias",
     "bert.encoder.layer.{n}.attention.self.query.bias", False, "H"),
    ("bert/encoder/layer_{n}/attention/self/key/kernel",
     "bert.encoder.layer.{n}.attention.self.key.weight", True, "HH"),
    ("bert/encoder/layer_{n}/attention/self/key/bias",
     "bert.encoder.layer.{n}.attention.self.key.bias", False, "H"),
    ("bert/encoder/layer_{n}/attention/self/value/kernel",
     "bert.encoder.layer.{n}.attention.self.value.weight", True, "HH"),
    ("bert/encoder/layer_{n}/attention/self/value/bias",
     "bert.encoder.layer.{n}.attention.self.value.bias", False, "H"),
    ("bert/encoder/layer_{n}/attention/output/dense/kernel",
     "bert.encoder.layer.{n}.attention.output.dense.weight", True, "HH"),
    ("bert/encoder/layer_{n}/attention/output/dense/bias",
     "bert.encoder.layer.{n}.attention.output.dense.bias", False, "H"),
    ("bert/encoder/layer_{n}/attention/output/LayerNorm/gamma",
     "bert.encoder.layer.{n}.attention.output.LayerNorm.weight", False, "H"),
    ("bert/encoder/layer_{n}/attention/output/LayerNorm/beta",
     "bert.encoder.layer.{n}.attention.output.LayerNorm.bias", False, "H"),
    ("bert/encoder/layer_{n}/intermediate/dense/kernel",
     "bert.encoder.layer.{n}.intermediate.dense.weight", True, "IH"),
    ("bert/encoder/layer_{n}/intermediate/dense/bias",
     "bert.encoder.layer.{n}.intermediate.dense.bias", False, "I"),
    ("bert/encoder/layer_{n}/output/dense/kernel",
     "bert.encoder.layer.{n}.output.dense.weight", True, "HI"),
    ("bert/encoder/layer_{n}/output/dense/bias",
     "bert.encoder.layer.{n}.output.dense.bias", False, "H"),
    ("bert/encoder/layer_{n}/output/LayerNorm/gamma",
     "bert.encoder.layer.{n}.output.LayerNorm.weight", False, "H"),
    ("bert/encoder/layer_{n}/output/LayerNorm/beta",
     "bert.encoder.layer.{n}.output.LayerNorm.bias", False, "H"),
]
_POOLER = [
    ("bert/pooler/dense/kernel", "bert.pooler.dense.weight", True, "HH"),
    ("bert/pooler/dense/bias", "bert.pooler.dense.bias", False, "H"),
]
# The pre-training heads: each group is all there or all absent (a fine-tuned checkpoint from
# Google's run_classifier.py has none of them).
_MLM_HEAD = [
    ("cls/predictions/transform/dense/kernel", "cls.predictions.transform.dense.weight", True,
     "HH"),
    ("cls/predictions/transform/dense/bias", "cls.predictions.transform.dense.bias", False, "H"),
    ("cls/predictions/transform/LayerNorm/gamma", "cls.predictions.transform.LayerNorm.weight",
     False, "H"),
    ("cls/predictions/transform/LayerNorm/beta", "cls.predictions.transform.LayerNorm.bias",
     False, "H"),
    ("cls/predictions/output_bias", "cls.predictions.bias", False, "V"),
]
_NSP_HEAD = [
    # output_weights is used with transpose_b=True in TF: already [out, in].
    ("cls/seq_relationship/output_weights", "cls.seq_relationship.weight", False, "2H"),
    ("cls/seq_relationship/output_bias", "cls.seq_relationship.bias", False, "2"),
]
# Variables of training state, not of the model: skipped when reading. Matched on the last path
# component (optimizer slots: AdamWeightDecayOptimizer's adam_m/adam_v, tf.train.Adam*'s
# Adam/Adam_1, ...) or on the whole name.
SKIPPED_SLOTS = frozenset({"adam_m", "adam_v", "Adam", "Adam_1", "Momentum", "Adagrad",
                           "RMSProp", "RMSProp_1", "lamb_m", "lamb_v", "ExponentialMovingAverage"})
SKIPPED_NAMES = frozenset({"global_step", "beta1_power", "beta2_power", "loss_scale",
                           "good_steps", "current_loss_scale"})
# Module keys that are not weights of their own: the tied MLM decoder (0.6.2 and transformers),
# and buffers some PyTorch BERTs keep in their state dicts.
TIED_OR_BUFFER_KEYS = frozenset({"cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
                                 "bert.embeddings.position_ids"})
_GROUPS = ("bert", "cls.predictions", "cls.seq_relationship")
_DECODER_KEY = "cls.predictions.decoder.weight"


class Row(NamedTuple):
    """One variable of the table, expanded for a config."""

    tf_name: str
    key: str  # 0.6.2 BertForPreTraining key
    transpose: bool
    shape: tuple  # torch-side shape
    group: str  # "bert", "cls.predictions" or "cls.seq_relationship"


def _dims(config) -> dict:
    return {"H": config.hidden_size, "I": config.intermediate_size, "V": config.vocab_size,
            "P": config.max_position_embeddings, "T": config.type_vocab_size, "2": 2}


def name_table(config) -> list[Row]:
    """Every row of the name table for ``config`` (a BertConfig or anything with its fields)."""
    d = _dims(config)

    def row(tf_name, key, transpose, shape, group):
        return Row(tf_name, key, transpose, tuple(d[s] for s in shape), group)

    rows = [row(*r, "bert") for r in _EMBEDDINGS]
    for n in range(config.num_hidden_layers):
        rows += [row(t.format(n=n), k.format(n=n), tr, s, "bert") for t, k, tr, s in _LAYER]
    rows += [row(*r, "bert") for r in _POOLER]
    rows += [row(*r, "cls.predictions") for r in _MLM_HEAD]
    rows += [row(*r, "cls.seq_relationship") for r in _NSP_HEAD]
    return rows


def is_training_state(tf_name: str) -> bool:
    """True for optimizer slots and counters (skipped, never converted)."""
    return tf_name in SKIPPED_NAMES or tf_name.rsplit("/", 1)[-1] in SKIPPED_SLOTS


# --------------------------------------------------------------------------- config


def resolve_config(config_or_path):
    """A BertConfig (or any object with its fields), or the path of a bert_config.json (or of
    the Google folder holding it; other folders and names: ``hub.resolve_model``)."""
    from bert_hub.filenames import CONFIG_NAME

    if isinstance(config_or_path, (str, os.PathLike)):
        path = os.fspath(config_or_path)
        if os.path.isdir(path):
            path = os.path.join(path, CONFIG_NAME)
        if not os.path.isfile(path):
            raise ConversionError(f"config file {path} does not exist; pass the "
                                  "bert_config.json that came with the checkpoint")
        from bert_hub.config import BertConfig

        return BertConfig.from_json_file(path)
    missing = [f for f in ("num_hidden_layers", "hidden_size", "intermediate_size", "vocab_size",
                           "max_position_embeddings", "type_vocab_size")
               if not hasattr(config_or_path, f)]
    if missing:
        raise ConversionError(f"config {config_or_path!r} lacks {', '.join(missing)}; pass a "
                              "BertConfig or the path of a bert_config.json")
    return config_or_path


def infer_config(reader: CheckpointReader) -> SimpleNamespace:
    """The six dimensions the name table needs, read off the checkpoint's shapes (for
    ``load_tf_weights_in_bert`` on a model without a config)."""
    shapes = {n: s for n, _, s in reader.list_variables()}
    try:
        vocab, hidden = shapes["bert/embeddings/word_embeddings"]
        layers = 1 + max(int(m.group(1)) for n in shapes
                         for m in [re.match(r"bert/encoder/layer_(\d+)/", n)] if m)
        return SimpleNamespace(
            vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
            intermediate_size=shapes["bert/encoder/layer_0/intermediate/dense/kernel"][1],
            max_position_embeddings=shapes["bert/embeddings/position_embeddings"][0],
            type_vocab_size=shapes["bert/embeddings/token_type_embeddings"][0])
    except (KeyError, ValueError) as e:
        raise ConversionError(f"{reader.prefix}: not a BERT checkpoint (no {e}); pass its "
                              "bert_config.json") from None


# --------------------------------------------------------------------------- TF -> torch


def _open(prefix_or_reader) -> CheckpointReader:
    if isinstance(prefix_or_reader, CheckpointReader):
        return prefix_or_reader
    return CheckpointReader(prefix_or_reader)


def _check_groups(present: set, rows: list, what: str, where: str) -> None:
    """Every "bert" row present; each head group all present or all absent."""
    for group in _GROUPS:
        members = [r for r in rows if r.group == group]
        have = [r for r in members if r.key in present]
        if group != "bert" and not have:
            continue
        if len(have) != len(members):
            missing = [getattr(r, what) for r in members if r.key not in present]
            raise ConversionError(
                f"{where}: missing {len(missing)} weight(s) the config expects: "
                f"{', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}. Check that "
                "bert_config.json belongs to this checkpoint (num_hidden_layers?)")


def plan_tf_to_torch(reader: CheckpointReader, config) -> list[Row]:
    """The rows this checkpoint holds, checked against the config before any data is read:
    unknown names and wrong shapes raise ConversionError listing every offender."""
    rows = name_table(config)
    by_tf = {r.tf_name: r for r in rows}
    unknown, wrong, found = [], [], []
    for name, dtype, shape in reader.list_variables():
        if is_training_state(name):
            continue
        r = by_tf.get(name)
        if r is None:
            unknown.append(name)
            continue
        tf_shape = tuple(reversed(r.shape)) if r.transpose else r.shape
        if tuple(shape) != tf_shape:
            wrong.append(f"{name} {list(shape)} (config says {list(tf_shape)})")
        found.append(r)
    if unknown:
        raise ConversionError(
            f"{reader.prefix}: {len(unknown)} variable(s) not in the BERT name table: "
            f"{', '.join(unknown)}. Only BERT pre-training weights (bert/..., cls/...) and "
            "optimizer state (adam_m, adam_v, global_step) are understood; remove the others "
            "from the checkpoint with TensorFlow")
    if wrong:
        raise ConversionError(
            f"{reader.prefix}: shapes do not match the config: {'; '.join(wrong)}. Pass the "
            "bert_config.json that came with this checkpoint")
    _check_groups({r.key for r in found}, rows, "tf_name", reader.prefix)
    order = {r.tf_name: i for i, r in enumerate(rows)}
    return sorted(found, key=lambda r: order[r.tf_name])  # the table's order


def tf_to_state_dict(prefix_or_reader, config=None) -> dict:
    """{0.6.2 module key: torch tensor} from a Google checkpoint. Tensors that need no transpose
    view the memory-mapped shard (zero-copy); transposed kernels are contiguous copies.
    ``config`` defaults to the dimensions read off the checkpoint."""
    reader = _open(prefix_or_reader)
    config = infer_config(reader) if config is None else resolve_config(config)
    out = {}
    for r in plan_tf_to_torch(reader, config):  # in the table's order
        t = reader.get_tensor(r.tf_name)
        out[r.key] = t.t().contiguous() if r.transpose else t
    return out


# --------------------------------------------------------------------------- torch -> TF


def _normalise_key(key: str) -> str | None:
    """A PyTorch BERT key -> the 0.6.2 BertForPreTraining key (None: tied/buffer, ignore)."""
    key = key.removeprefix("module.")  # saved from DataParallel / DDP
    if not key.startswith(("bert.", "cls.")):
        key = "bert." + key
    if key.endswith(".gamma"):  # pytorch-pretrained-bert < 0.5 LayerNorm names
        key = key[: -len("gamma")] + "weight"
    elif key.endswith(".beta"):
        key = key[: -len("beta")] + "bias"
    return None if key in TIED_OR_BUFFER_KEYS else key


def _torch_to_tf(state_dict: Mapping, config) -> dict:
    """{Google name: torch tensor (contiguous, transposed where TF wants)}."""
    rows = name_table(config)
    by_key = {r.key: r for r in rows}
    unknown, wrong, out, seen = [], [], {}, set()
    for key, value in state_dict.items():
        norm = _normalise_key(key)
        if norm is None:
            continue
        r = by_key.get(norm)
        if r is None:
            unknown.append(key)
            continue
        if tuple(value.shape) != r.shape:
            wrong.append(f"{key} {list(value.shape)} (config says {list(r.shape)})")
            continue
        out[r.tf_name] = value.detach().t().contiguous() if r.transpose else value.detach()
        seen.add(norm)
    if unknown:
        raise ConversionError(
            f"{len(unknown)} state-dict key(s) not in the BERT name table: {', '.join(unknown)}. "
            "Only BertModel / BertForPreTraining weights go to a Google checkpoint; drop "
            "task heads (classifier, qa_outputs) first")
    if wrong:
        raise ConversionError(f"shapes do not match the config: {'; '.join(wrong)}. Pass the "
                              "config the model was built with")
    _check_groups(seen, rows, "key", "state dict")
    order = {r.tf_name: i for i, r in enumerate(rows)}
    return {k: out[k] for k in sorted(out, key=order.__getitem__)}


def state_dict_to_tf(state_dict: Mapping, config) -> dict:
    """{Google name: numpy array} from a PyTorch BERT state dict (keys with or without
    ``bert.``; the tied decoder weight is ignored). bfloat16 comes out as float32 (exact),
    since numpy has no bfloat16; ``export_tf_checkpoint`` keeps bfloat16 as is."""
    import torch

    out = {}
    for name, t in _torch_to_tf(state_dict, resolve_config(config)).items():
        if t.dtype == torch.bfloat16:
            t = t.float()
        out[name] = t.cpu().numpy()
    return out


def _load_state_dict(path) -> dict:
    import torch

    path = os.fspath(path)
    if os.path.isdir(path):
        for name in ("model.safetensors", "pytorch_model.bin"):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise ConversionError(f"{path}: no model.safetensors or pytorch_model.bin here")
    if not os.path.isfile(path):
        raise ConversionError(f"{path} does not exist; pass a .safetensors or .bin file")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def export_tf_checkpoint(state_dict_or_path, config_or_path, out_prefix) -> str:
    """Write a PyTorch BERT (state dict, .safetensors, .bin, or a folder holding one) as a
    Google-layout TensorFlow checkpoint ``out_prefix.{index,data-00000-of-00001}``."""
    config = resolve_config(config_or_path)
    state_dict = (state_dict_or_path if isinstance(state_dict_or_path, Mapping)
                  else _load_state_dict(state_dict_or_path))
    return write_checkpoint(out_prefix, _torch_to_tf(state_dict, config))


# --------------------------------------------------------------------------- files

_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
                       "int32": "I32", "int64": "I64", "int16": "I16", "int8": "I8",
                       "uint8": "U8", "bool": "BOOL"}


def _write_safetensors_streaming(reader: CheckpointReader, rows: list[Row], f) -> None:
    """The safetensors layout (8-byte header length, JSON header, raw bytes) written one tensor
    at a time, so memory stays at about the largest tensor instead of the whole model."""
    header, offset = {"__metadata__": {"format": "pt", "source": "tensorflow"}}, 0
    for r in rows:
        e = reader.entry(r.tf_name)
        header[r.key] = {"dtype": _SAFETENSORS_DTYPES[e.dtype], "shape": list(r.shape),
                         "data_offsets": [offset, offset + e.size]}
        offset += e.size
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # safetensors pads the header to 8-byte alignment
    f.write(struct.pack("<Q", len(blob)))
    f.write(blob)
    # Two buffers reused for every tensor (fresh memory is slow to touch): one to read into
    # (read + CRC, no mapped pages kept), one to transpose into.
    sizes = [reader.entry(r.tf_name).size for r in rows] or [0]
    read_buf = np.empty(max(sizes), dtype=np.uint8)
    t_buf = np.empty(max([s for s, r in zip(sizes, rows) if r.transpose] or [0]), np.uint8)
    for r, size in zip(rows, sizes):
        arr = reader.get_array(r.tf_name, out=read_buf)
        if r.transpose:
            out = t_buf[:size].view(arr.dtype).reshape(r.shape)
            np.copyto(out, arr.T)
            arr = out
        f.write(memoryview(arr.reshape(-1).view(np.uint8)))


class _ReleaseWhileWriting:
    """A file wrapper for torch.save that releases the source checkpoint's mapped pages every
    32 MiB written, so peak memory stays near one tensor instead of the whole file."""

    EVERY = 32 << 20

    def __init__(self, f, release):
        self.f, self.release, self.pending = f, release, 0

    def write(self, data) -> int:
        n = self.f.write(data)
        self.pending += n
        if self.pending >= self.EVERY:
            self.release()
            self.pending = 0
        return n

    def flush(self) -> None:
        self.f.flush()


def _write_bin_streaming(reader: CheckpointReader, rows: list[Row], f) -> None:
    """torch.save format with flat memory: every tensor is a view of the memory-mapped shard
    (kernels as transposed views, exactly as 0.6.2's converter saved them), CRC-checked as it
    is mapped, pages released as torch.save copies them out."""
    import torch

    state, pending = {}, 0
    for r in rows:
        t = reader.get_tensor(r.tf_name)  # verifies the CRC: touches the pages once
        state[r.key] = t.t() if r.transpose else t
        pending += t.nbytes
        if pending >= _ReleaseWhileWriting.EVERY:
            reader.release_pages()
            pending = 0
    reader.release_pages()
    if "cls.predictions.bias" in state:
        # 0.6.2's state_dict() lists the tied decoder weight, so a strict load_state_dict of
        # this file needs it; it shares the embedding's storage, which torch.save stores once.
        state[_DECODER_KEY] = state["bert.embeddings.word_embeddings.weight"]
    torch.save(state, _ReleaseWhileWriting(f, reader.release_pages))


def _format_of(out_path: str, fmt: str | None) -> str:
    if fmt is None:
        if out_path.endswith(".safetensors"):
            return "safetensors"
        if out_path.endswith((".bin", ".pt", ".pth")):
            return "bin"
        raise ConversionError(f"cannot tell the output format of {out_path!r}: name it "
                              "*.safetensors or *.bin (or pass format='safetensors'/'bin')")
    if fmt not in ("safetensors", "bin"):
        raise ConversionError(f"unknown output format {fmt!r}; use 'safetensors' or 'bin'")
    return fmt


def convert_tf_checkpoint(tf_checkpoint_prefix, config_or_path, out_path, *, format=None,
                          verify_crc: bool = True) -> str:
    """Convert a Google checkpoint to a PyTorch weights file (``.safetensors`` or ``.bin``,
    chosen by suffix or ``format``). Nothing partial is ever visible: the file is written
    beside ``out_path`` under a unique temp name, then moved into place. Returns out_path."""
    out_path = os.fspath(out_path)
    fmt = _format_of(out_path, format)
    reader = CheckpointReader(tf_checkpoint_prefix, verify_crc=verify_crc)
    config = resolve_config(config_or_path)
    rows = plan_tf_to_torch(reader, config)  # every name and shape checked before writing
    parent = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(parent, exist_ok=True)
    tmp = f"{out_path}.{uuid.uuid4().hex[:12]}.tmp"
    try:
        if fmt == "safetensors":
            with open(tmp, "wb") as f:
                _write_safetensors_streaming(reader, rows, f)
        else:
            with open(tmp, "wb") as f:
                _write_bin_streaming(reader, rows, f)
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
        reader.close()
    logger.info("converted %s (%d tensors) to %s", reader.prefix, len(rows), out_path)
    return out_path


# --------------------------------------------------------------------------- 0.6.2 API


def load_tf_weights_in_bert(model, tf_checkpoint_path):
    """Load a Google checkpoint into a PyTorch BERT (0.6.2's name and behaviour: works on
    BertForPreTraining, BertModel or any head model, returns the model) without TensorFlow.

    Weights the checkpoint has but the model lacks (e.g. ``cls/*`` for a BertModel) are
    skipped with a log line, as 0.6.2 did; weights the model has but the checkpoint lacks (a
    new task head) keep their initialisation."""
    reader = CheckpointReader(tf_checkpoint_path)
    config = getattr(model, "config", None)
    try:
        config = resolve_config(config) if config is not None else infer_config(reader)
    except ConversionError:
        config = infer_config(reader)
    state = tf_to_state_dict(reader, config)
    keys = set(model.state_dict())
    with_prefix = "bert.embeddings.word_embeddings.weight" in keys
    mapped, skipped = {}, []
    for key, value in state.items():
        target = key if with_prefix else (key[len("bert."):] if key.startswith("bert.") else None)
        if target in keys:
            mapped[target] = value
        else:
            skipped.append(key)
    if not mapped:
        raise ConversionError(f"{type(model).__name__} has none of the checkpoint's weights "
                              "(expected keys like bert.embeddings.word_embeddings.weight)")
    expected = model.state_dict()
    wrong = [f"{k} {list(v.shape)} vs model {list(expected[k].shape)}"
             for k, v in mapped.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise ConversionError(f"checkpoint shapes do not fit {type(model).__name__}: "
                              f"{'; '.join(wrong)}")
    for key in skipped:
        logger.info("skipping %s: %s has no such weight", key, type(model).__name__)
    missing = [k for k in keys - set(mapped) if not k.endswith("decoder.weight")]
    if missing:
        logger.info("not in the checkpoint, left as initialised: %s", ", ".join(sorted(missing)))
    model.load_state_dict(mapped, strict=False)
    return model
