"""Google's TensorFlow variable names <-> the module keys of pytorch-pretrained-bert 0.6.2.

One table (``name_table``) serves both directions. Dense kernels are stored ``[in, out]`` by
TensorFlow and ``[out, in]`` by ``torch.nn.Linear``, so those rows carry a transpose. The MLM
decoder weight is tied to the word embeddings and never appears in either direction.

TF -> torch to a ``.safetensors`` file streams tensor by tensor with numpy alone (no torch
import, memory flat at about the largest tensor); ``.bin`` goes through ``torch.save``. Both are
written, and PyTorch files read, by ``weights`` (the one owner of those formats).
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np

from bert_hub import weights
from bert_hub.config import check_sizes
from bert_hub.errors import ConfigError, ConversionError
from bert_hub.filenames import SAFE_WEIGHTS_NAME, WEIGHTS_NAME
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
_GROUPS = ("bert", "cls.predictions", "cls.seq_relationship")


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
    """Every row of the name table for ``config`` (a BertConfig or anything with its fields);
    its sizes are checked first (``bert_hub.config.check_sizes``), so the table stays small."""
    check_sizes(config)
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


_LAYER_NAME = re.compile(r"bert/encoder/layer_([0-9]{1,18})/")  # longer numbers: unknown names
# The variables infer_config reads its dimensions from: name -> what each axis is.
_INFERRED_FROM = {
    "bert/embeddings/word_embeddings": ("vocab_size", "hidden_size"),
    "bert/encoder/layer_0/intermediate/dense/kernel": ("hidden_size", "intermediate_size"),
    "bert/embeddings/position_embeddings": ("max_position_embeddings", "hidden_size"),
    "bert/embeddings/token_type_embeddings": ("type_vocab_size", "hidden_size"),
}


def _layer_indices(names) -> set:
    """The N of every ``bert/encoder/layer_N/...`` variable (optimizer slots included)."""
    return {int(m.group(1)) for n in names for m in [_LAYER_NAME.match(n)] if m}


def infer_config(reader: CheckpointReader) -> SimpleNamespace:
    """The six dimensions the name table needs, read off the checkpoint's shapes (for
    ``load_tf_weights_in_bert`` on a model without a config)."""
    shapes = {n: s for n, _, s in reader.list_variables()}
    dims = {}
    for name, axes in _INFERRED_FROM.items():
        if name not in shapes:
            raise ConversionError(f"{reader.prefix}: not a BERT checkpoint (no {name!r}); pass "
                                  "its bert_config.json")
        if len(shapes[name]) != 2:
            raise ConversionError(
                f"{reader.prefix}: {name} has shape {shapes[name]}, not a matrix; this is not a "
                "BERT checkpoint we can read without its bert_config.json")
        for axis, size in zip(axes, shapes[name]):
            dims.setdefault(axis, size)
    layers = sorted(_layer_indices(shapes))
    if layers != list(range(len(layers))):
        gaps = sorted(set(range(len(layers))) - set(layers))[:3] or [len(layers)]
        raise ConversionError(
            f"{reader.prefix}: the encoder layers are not numbered 0..{len(layers) - 1} (layer "
            f"{gaps[0]} is missing; the highest is layer_{layers[-1]}); the checkpoint is not a "
            "BERT's: pass its bert_config.json")
    config = SimpleNamespace(num_hidden_layers=len(layers), **dims)
    try:
        check_sizes(config)
    except ConfigError as e:
        raise ConversionError(f"{reader.prefix}: the sizes read off the checkpoint are not a "
                              f"BERT's ({e})") from None
    return config


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


# dtypes a BERT weight may have (models cast floating weights to their dtype on load).
_WEIGHT_DTYPES = ("float32", "float16", "bfloat16", "float64")


def _listed(items: list, sep: str = ", ", most: int = 20) -> str:
    """The first ``most`` items (each cut to 200 characters) and how many more: a hostile
    checkpoint's names must not make a message megabytes long."""
    shown = [item if len(item) <= 200 else item[:200] + "..." for item in items[:most]]
    return sep.join(shown) + (f" and {len(items) - most} more" if len(items) > most else "")


def _check_layer_count(names, config, where: str) -> None:
    """A config with more layers than the checkpoint holds is refused before its name table
    is built, so a huge ``num_hidden_layers`` costs nothing."""
    held = len(_layer_indices(names))
    if config.num_hidden_layers <= held:
        return
    missing = (config.num_hidden_layers - held) * len(_LAYER)
    first = [t.format(n=held) for t, _, _, _ in _LAYER][:8]
    raise ConversionError(
        f"{where}: missing {missing} weight(s) the config expects: {', '.join(first)} ... Check "
        f"that bert_config.json belongs to this checkpoint (num_hidden_layers="
        f"{config.num_hidden_layers}; the checkpoint holds {held} layers)")


def plan_tf_to_torch(reader: CheckpointReader, config) -> list[Row]:
    """The rows this checkpoint holds, checked against the config before any data is read:
    unknown names, wrong shapes and dtypes raise ConversionError listing every offender; each
    variable's size and shard are checked too (CheckpointError)."""
    check_sizes(config)
    variables = reader.list_variables()
    _check_layer_count([name for name, _, _ in variables], config, reader.prefix)
    rows = name_table(config)
    by_tf = {r.tf_name: r for r in rows}
    unknown, wrong, bad_dtype, found = [], [], [], []
    for name, dtype, shape in variables:
        if is_training_state(name):
            continue
        r = by_tf.get(name)
        if r is None:
            unknown.append(name)
            continue
        tf_shape = tuple(reversed(r.shape)) if r.transpose else r.shape
        if tuple(shape) != tf_shape:
            wrong.append(f"{name} {list(shape)} (config says {list(tf_shape)})")
        if dtype not in _WEIGHT_DTYPES:
            bad_dtype.append(f"{name} ({dtype})")
        found.append(r)
    if unknown:
        raise ConversionError(
            f"{reader.prefix}: {len(unknown)} variable(s) not in the BERT name table: "
            f"{_listed(unknown)}. Only BERT pre-training weights (bert/..., cls/...) and "
            "optimizer state (adam_m, adam_v, global_step) are understood; remove the others "
            "from the checkpoint with TensorFlow")
    if wrong:
        raise ConversionError(
            f"{reader.prefix}: shapes do not match the config: {_listed(wrong, '; ')}. Pass the "
            "bert_config.json that came with this checkpoint")
    if bad_dtype:
        raise ConversionError(
            f"{reader.prefix}: weights that are not floating point: {_listed(bad_dtype)}. BERT "
            f"weights are {', '.join(_WEIGHT_DTYPES)}; this checkpoint is damaged or not a "
            "BERT's")
    _check_groups({r.key for r in found}, rows, "tf_name", reader.prefix)
    for r in found:
        reader.check(r.tf_name)  # whole, sized as its shape says, inside its shard
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


def _torch_to_tf(state_dict: Mapping, config) -> dict:
    """{Google name: torch tensor (contiguous, transposed where TF wants)}."""
    rows = name_table(config)
    by_key = {r.key: r for r in rows}
    unknown, wrong, out, seen = [], [], {}, set()
    normalised = weights.normalise_keys(state_dict)  # tied names and buffers left out
    for key, value in state_dict.items():
        norm = normalised.get(key)
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
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in (SAFE_WEIGHTS_NAME, WEIGHTS_NAME):
            if os.path.isfile(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
        else:
            raise ConversionError(f"{path}: no {SAFE_WEIGHTS_NAME} or {WEIGHTS_NAME} here")
    if not os.path.isfile(path):
        raise ConversionError(f"{path} does not exist; pass a .safetensors or .bin file")
    return weights.load_weights(path)


def export_tf_checkpoint(state_dict_or_path, config_or_path, out_prefix) -> str:
    """Write a PyTorch BERT (state dict, .safetensors, .bin, or a folder holding one) as a
    Google-layout TensorFlow checkpoint ``out_prefix.{index,data-00000-of-00001}``."""
    config = resolve_config(config_or_path)
    state_dict = (state_dict_or_path if isinstance(state_dict_or_path, Mapping)
                  else _load_state_dict(state_dict_or_path))
    return write_checkpoint(out_prefix, _torch_to_tf(state_dict, config))


# --------------------------------------------------------------------------- files

def _write_safetensors_streaming(reader: CheckpointReader, rows: list[Row], f) -> None:
    """One tensor at a time, so memory stays at about the largest tensor instead of the whole
    model; the tied decoder weight is listed as an alias of the word embeddings."""
    entries = {r.key: reader.entry(r.tf_name) for r in rows}
    infos = [weights.TensorInfo(r.key, weights.dtype_code(entries[r.key].dtype), r.shape,
                                entries[r.key].size) for r in rows]
    by_key = {r.key: r for r in rows}
    # Two buffers reused for every tensor (fresh memory is slow to touch): one to read into
    # (read + CRC, no mapped pages kept), one to transpose into.
    sizes = [e.size for e in entries.values()] or [0]
    read_buf = np.empty(max(sizes), dtype=np.uint8)
    t_buf = np.empty(max([entries[r.key].size for r in rows if r.transpose] or [0]), np.uint8)

    def data(info: weights.TensorInfo):
        r = by_key[info.name]
        arr = reader.get_array(r.tf_name, out=read_buf)
        if r.transpose:
            out = t_buf[:info.nbytes].view(arr.dtype).reshape(r.shape)
            np.copyto(out, arr.T)
            arr = out
        return arr.reshape(-1).view(np.uint8)

    weights.write_safetensors(f, infos, data, metadata={"source": "tensorflow"},
                              aliases=weights.tied_names(by_key))


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
    state, pending = {}, 0
    for r in rows:
        t = reader.get_tensor(r.tf_name)  # verifies the CRC: touches the pages once
        state[r.key] = t.t() if r.transpose else t
        pending += t.nbytes
        if pending >= _ReleaseWhileWriting.EVERY:
            reader.release_pages()
            pending = 0
    reader.release_pages()
    # 0.6.2's state_dict() lists the tied decoder weight, so a strict load_state_dict of this
    # file needs it; it shares the embedding's storage, which torch.save stores once.
    for alias, source in weights.tied_names(state).items():
        state[alias] = state[source]
    weights.save_bin(state, _ReleaseWhileWriting(f, reader.release_pages))


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
    write = _write_safetensors_streaming if fmt == "safetensors" else _write_bin_streaming
    try:
        with weights.atomic_file(out_path) as f:
            write(reader, rows, f)
    finally:
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
    mapped, skipped = {}, []
    for key, target in weights.map_keys(state, keys).items():
        if target in keys:
            mapped[target] = state[key]
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
