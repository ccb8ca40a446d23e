"""BERT in PyTorch: ``BertModel``, its seven task heads and ``BertPreTrainedModel``.

Op-for-op with Google's TensorFlow BERT and a drop-in for pytorch-pretrained-bert 0.6.2: the same
constructors, forward signatures, return conventions and parameter names
(``bert.encoder.layer.0.attention.self.query.weight``, ``LayerNorm.weight``), so 0.6.2 state
dicts load unchanged. Faster: attention goes through ``F.scaled_dot_product_attention`` and, when
no gradient is needed, the query/key/value projections run as one matmul over weights that share
one buffer (their names and ``state_dict`` stay 0.6.2's).

Shapes in comments: B batch, S sequence length, H hidden size, nh heads, hd head size (H / nh),
C choices, V vocabulary size.
"""
from __future__ import annotations

import difflib
import inspect
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn import CrossEntropyLoss

from . import hf_hub, hub
from .config import BertConfig
from .errors import ConfigError, ConversionError, InvalidArgumentError, InvalidInputError

__all__ = [
    "BertConfig", "BertLayerNorm", "BertPreTrainedModel", "BertModel", "BertForPreTraining",
    "BertForMaskedLM", "BertForNextSentencePrediction", "BertForSequenceClassification",
    "BertForMultipleChoice", "BertForTokenClassification", "BertForQuestionAnswering",
    "gelu", "swish", "ACT2FN",
]

logger = logging.getLogger(__name__)


# -- activations --------------------------------------------------------------------------------
def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU, x * Phi(x) with the erf (0.6.2's and Google's original ``gelu``)."""
    return F.gelu(x)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU (Hugging Face's ``gelu_new``)."""
    return F.gelu(x, approximate="tanh")


def swish(x: torch.Tensor) -> torch.Tensor:
    return F.silu(x)


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


ACT2FN = {
    "gelu": gelu, "relu": F.relu, "swish": swish, "silu": swish, "gelu_new": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh, "tanh": torch.tanh, "linear": _identity,
}


def _activation(config: BertConfig):
    act = config.hidden_act
    return act if callable(act) else ACT2FN[act]


# Built on the meta device, a model must not run any init op: on meta, torch runs them through
# Python decompositions that import torch._dynamo (seconds). These subclasses skip their default
# init there; everywhere else they are the stock modules.
class _Linear(nn.Linear):
    def _get_name(self) -> str:
        return "Linear"

    def reset_parameters(self) -> None:
        if self.weight.device.type != "meta":
            super().reset_parameters()


class _Embedding(nn.Embedding):
    def _get_name(self) -> str:
        return "Embedding"

    def reset_parameters(self) -> None:
        if self.weight.device.type != "meta":
            super().reset_parameters()


class BertLayerNorm(nn.LayerNorm):
    """TensorFlow-style LayerNorm (epsilon inside the square root, 1e-12); params weight/bias."""

    def __init__(self, hidden_size: int, eps: float = 1e-12):
        super().__init__(hidden_size, eps=eps)

    def reset_parameters(self) -> None:
        if self.weight.device.type != "meta":
            super().reset_parameters()


# -- inference matmuls ----------------------------------------------------------------------------
# On CPU, oneDNN's linear (the kernel torch.compile uses there) runs the (B*S, H) x (H, N) products
# of BERT well above F.linear, and fuses GELU into the matmul. It has no autograd, so it serves
# only when no gradient is needed; everything else goes through F.linear. Set to False to compare.
USE_ONEDNN = True
# Activations oneDNN can fuse: our name -> (post-op, algorithm).
_ONEDNN_POST_OPS = {"gelu": ("gelu", "none"), "gelu_new": ("gelu", "tanh"),
                    "gelu_pytorch_tanh": ("gelu", "tanh"), "relu": ("relu", "")}


def _onednn_linear_ok(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    if not (USE_ONEDNN and x.device.type == "cpu" and x.dtype == weight.dtype
            and x.dtype in (torch.float32, torch.bfloat16) and torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise")):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad
                                    or (bias is not None and bias.requires_grad)):
        return False
    if x.dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    return weight.is_contiguous() and (bias is None or bias.dtype == x.dtype)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
            act: Optional[str] = None) -> torch.Tensor:
    """act(x @ weight.T + bias) for x (..., in); act a key of ``_ONEDNN_POST_OPS`` or None."""
    if _onednn_linear_ok(x, weight, bias):
        post_op, algorithm = _ONEDNN_POST_OPS[act] if act else ("none", "")
        flat = x.reshape(-1, x.shape[-1])
        out = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, post_op, [], algorithm)
        return out.view(*x.shape[:-1], weight.shape[0])
    out = F.linear(x, weight, bias)
    return out if act is None else ACT2FN[act](out)


def _dense(module: nn.Linear, x: torch.Tensor, act=None) -> torch.Tensor:
    """module(x), then the activation (a name, a callable or None); fused where possible.
    A module with hooks is called normally, so the hooks run."""
    fusable = act is None or (isinstance(act, str) and act in _ONEDNN_POST_OPS)
    if fusable and not (module._forward_hooks or module._forward_pre_hooks):
        return _linear(x, module.weight, module.bias, act)
    out = module(x)
    if act is None:
        return out
    return (ACT2FN[act] if isinstance(act, str) else act)(out)


def _dropout(module: nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    return module(x) if module.training and module.p > 0 else x


# -- the encoder --------------------------------------------------------------------------------
class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = _Embedding(config.vocab_size, config.hidden_size, padding_idx=0)
        self.position_embeddings = _Embedding(config.max_position_embeddings,
                                                config.hidden_size)
        self.token_type_embeddings = _Embedding(config.type_vocab_size, config.hidden_size)
        # Not snake-cased, to keep TensorFlow's variable name.
        self.LayerNorm = BertLayerNorm(config.hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor,
                token_type_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        seq_length = input_ids.size(1)
        words = self.word_embeddings(input_ids)                         # (B, S, H)
        positions = self.position_embeddings.weight[:seq_length]        # (S, H): ids 0..S-1
        if token_type_ids is None:
            types = self.token_type_embeddings.weight[0]                # (H,): every id is 0
        else:
            types = self.token_type_embeddings(token_type_ids)          # (B, S, H)
        embeddings = self.LayerNorm(words + positions + types)
        return _dropout(self.dropout, embeddings)


def _adjacent_rows(tensors: Tuple[torch.Tensor, ...]) -> Optional[torch.Tensor]:
    """The tensors as one (stacked along dim 0) view when they lie back to back in one buffer."""
    first = tensors[0]
    if not first.is_contiguous() or first.device.type == "meta":
        return None
    step = first.numel()
    storage = first.untyped_storage().data_ptr()
    for i, t in enumerate(tensors[1:], start=1):
        if (t.shape != first.shape or t.dtype != first.dtype or not t.is_contiguous()
                or t.untyped_storage().data_ptr() != storage
                or t.storage_offset() != first.storage_offset() + i * step):
            return None
    shape = (first.shape[0] * len(tensors),) + tuple(first.shape[1:])
    return first.detach().as_strided(shape, first.stride())


class BertSelfAttention(nn.Module):
    """Multi-head self-attention; ``query``/``key``/``value`` keep 0.6.2's names."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if config.hidden_size % config.num_attention_heads != 0:
            raise ConfigError(
                f"hidden_size ({config.hidden_size}) is not a multiple of num_attention_heads "
                f"({config.num_attention_heads})")
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.all_head_size = config.hidden_size
        self.query = _Linear(config.hidden_size, self.all_head_size)
        self.key = _Linear(config.hidden_size, self.all_head_size)
        self.value = _Linear(config.hidden_size, self.all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)
        self.pack_qkv()

    def _projections(self):
        return (self.query, self.key, self.value)

    @torch.no_grad()
    def pack_qkv(self) -> None:
        """Put the three weights (and biases) back to back in one buffer, so that inference runs
        one (H, 3H) matmul without copying. Parameter objects and names do not change."""
        for attr in ("weight", "bias"):
            params = [getattr(m, attr) for m in self._projections()]
            if _adjacent_rows(tuple(params)) is not None or params[0].device.type == "meta":
                continue
            if len({(p.dtype, p.device, p.shape) for p in params}) != 1:
                continue
            packed = torch.cat([p.detach() for p in params])          # (3H, H) or (3H,)
            rows = params[0].shape[0]
            for i, p in enumerate(params):
                p.data = packed[i * rows:(i + 1) * rows]

    def _apply(self, fn, recurse=True):
        # .to(), .half(), .cuda() give each parameter its own new tensor: pack them again.
        result = super()._apply(fn, recurse)
        self.pack_qkv()
        return result

    def _fused_qkv(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """(3H, H) weight and (3H,) bias of the fused projection."""
        weights = tuple(m.weight for m in self._projections())
        biases = tuple(m.bias for m in self._projections())
        if not (torch.is_grad_enabled() and any(p.requires_grad for p in weights + biases)):
            weight, bias = _adjacent_rows(weights), _adjacent_rows(biases)
            if weight is not None and bias is not None:
                return weight, bias                                     # zero-copy views
        return torch.cat(weights), torch.cat(biases)                    # autograd splits grads

    def forward(self, hidden_states: torch.Tensor,
                attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """hidden_states (B, S, H); attention_mask additive, (B, 1, 1, S), or None."""
        batch, seq, _ = hidden_states.shape
        weight, bias = self._fused_qkv()
        qkv = _linear(hidden_states, weight, bias)                      # (B, S, 3H)
        qkv = qkv.view(batch, seq, 3, self.num_attention_heads, self.attention_head_size)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)        # each (B, nh, S, hd)
        p = self.dropout.p if self.training else 0.0
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                 dropout_p=p)           # (B, nh, S, hd)
        return context.transpose(1, 2).reshape(batch, seq, self.all_head_size)  # (B, S, H)


class BertSelfOutput(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual), from ``in_features`` (default: hidden) to
    hidden; :class:`BertOutput` is the same after the feed-forward layer."""

    def __init__(self, config: BertConfig, in_features: Optional[int] = None):
        super().__init__()
        self.dense = _Linear(in_features or config.hidden_size, config.hidden_size)
        self.LayerNorm = BertLayerNorm(config.hidden_size, eps=1e-12)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, input_tensor: torch.Tensor) -> torch.Tensor:
        hidden_states = _dropout(self.dropout, _dense(self.dense, hidden_states))
        return self.LayerNorm(hidden_states + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(self, input_tensor: torch.Tensor,
                attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        return self.output(self.self(input_tensor, attention_mask), input_tensor)


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = _activation(config)
        self._act = config.hidden_act

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return _dense(self.dense, hidden_states, self._act)            # (B, S, intermediate)


class BertOutput(BertSelfOutput):
    def __init__(self, config: BertConfig):
        super().__init__(config, config.intermediate_size)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(self, hidden_states: torch.Tensor,
                attention_mask: Optional[torch.Tensor]) -> torch.Tensor:
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states: torch.Tensor, attention_mask: Optional[torch.Tensor],
                output_all_encoded_layers: bool = True) -> List[torch.Tensor]:
        all_encoder_layers = []
        for layer_module in self.layer:
            hidden_states = layer_module(hidden_states, attention_mask)
            if output_all_encoded_layers:
                all_encoder_layers.append(hidden_states)
        if not output_all_encoded_layers:
            all_encoder_layers.append(hidden_states)
        return all_encoder_layers


class BertPooler(nn.Module):
    """tanh(dense(hidden state of the first token))."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))         # (B, H)


# -- heads --------------------------------------------------------------------------------------
class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = _Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = _activation(config)
        self.LayerNorm = BertLayerNorm(config.hidden_size, eps=1e-12)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """Transform, then logits against the word-embedding matrix (shared) plus a per-token bias."""

    def __init__(self, config: BertConfig, bert_model_embedding_weights: nn.Parameter):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        vocab, hidden = bert_model_embedding_weights.shape
        self.decoder = _Linear(hidden, vocab, bias=False)
        self.decoder.weight = bert_model_embedding_weights              # tied: (V, H)
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return F.linear(self.transform(hidden_states), self.decoder.weight, self.bias)  # (.., V)


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig, bert_model_embedding_weights: nn.Parameter):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, bert_model_embedding_weights)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class BertOnlyNSPHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.seq_relationship = _Linear(config.hidden_size, 2)

    def forward(self, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.seq_relationship(pooled_output)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, config: BertConfig, bert_model_embedding_weights: nn.Parameter):
        super().__init__()
        self.predictions = BertLMPredictionHead(config, bert_model_embedding_weights)
        self.seq_relationship = _Linear(config.hidden_size, 2)

    def forward(self, sequence_output: torch.Tensor, pooled_output: torch.Tensor):
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


# -- input validation ---------------------------------------------------------------------------
_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def _check_ids(name: str, ids: torch.Tensor, limit: int, limit_name: str) -> None:
    if ids.dtype not in _INTEGER_DTYPES:
        raise InvalidInputError(
            f"{name} must hold integer ids (torch.long), got dtype {ids.dtype}; "
            f"convert with {name}.long()")
    low, high = torch.aminmax(ids)
    low, high = int(low), int(high)
    if low < 0:
        raise InvalidInputError(
            f"{name} contains {low}, a negative id; ids must be in [0, {limit_name}={limit})")
    if high >= limit:
        raise InvalidInputError(
            f"{name} contains {high}, but {limit_name} is {limit}; ids must be in "
            f"[0, {limit}) - check that the tokenizer's vocabulary matches the model")


def check_inputs(config: BertConfig, input_ids, token_type_ids=None, attention_mask=None,
                 dims: int = 2) -> None:
    """Raise ``InvalidInputError`` for input that would fail (or silently misbehave) in a kernel.

    input_ids (B, S) [or (B, C, S) for multiple choice]; token_type_ids, attention_mask the same.
    """
    shape_text = "[batch_size, sequence_length]" if dims == 2 else \
        "[batch_size, num_choices, sequence_length]"
    if not torch.is_tensor(input_ids):
        raise InvalidInputError(
            f"input_ids must be a torch.LongTensor of shape {shape_text}, got "
            f"{type(input_ids).__name__}; wrap it with torch.tensor(...)")
    if input_ids.dim() != dims:
        raise InvalidInputError(
            f"input_ids must have shape {shape_text}, got shape {tuple(input_ids.shape)}"
            + ("; add a batch dimension with input_ids.unsqueeze(0)" if input_ids.dim() == dims - 1
               else ""))
    seq_length = input_ids.shape[-1]
    if input_ids.numel() == 0:
        raise InvalidInputError(
            f"input_ids is empty (shape {tuple(input_ids.shape)}); give at least one token")
    if seq_length > config.max_position_embeddings:
        raise InvalidInputError(
            f"sequence length {seq_length} is longer than max_position_embeddings "
            f"({config.max_position_embeddings}); truncate the input to "
            f"{config.max_position_embeddings} tokens")
    for name, other in (("token_type_ids", token_type_ids), ("attention_mask", attention_mask)):
        if other is None:
            continue
        if not torch.is_tensor(other):
            raise InvalidInputError(f"{name} must be a tensor, got {type(other).__name__}")
        if other.shape != input_ids.shape:
            raise InvalidInputError(
                f"{name} has shape {tuple(other.shape)} but input_ids has shape "
                f"{tuple(input_ids.shape)}; they must match")
    _check_ids("input_ids", input_ids, config.vocab_size, "vocab_size")
    if token_type_ids is not None:
        _check_ids("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size")


def _extended_mask(attention_mask: Optional[torch.Tensor],
                   dtype: torch.dtype) -> Optional[torch.Tensor]:
    """(B, S) 1/0 mask -> additive (B, 1, 1, S): 0 to attend, -10000 not (as Google and 0.6.2).
    An all-ones mask changes nothing, so it becomes None (lets SDPA skip the mask)."""
    if attention_mask is None or bool((attention_mask == 1).all()):
        return None
    mask = attention_mask[:, None, None, :].to(dtype)
    return (1.0 - mask) * -10000.0


# -- base class: init, load, save ---------------------------------------------------------------
# Checkpoint key renames, applied to the end of each key: 0.6.2's (and early Hugging Face's)
# TensorFlow-style LayerNorm names.
_SUFFIX_RENAMES = ((".gamma", ".weight"), (".beta", ".bias"))
# Checkpoint keys that are not weights here: Hugging Face's position_ids buffer.
_IGNORED_SUFFIXES = ("embeddings.position_ids",)
# The decoder weight is the word-embedding matrix (tied): never read from or written to a file.
_TIED_DECODER = "cls.predictions.decoder.weight"
# Hugging Face ties cls.predictions.decoder.bias to cls.predictions.bias.
_HF_DECODER_BIAS = ("cls.predictions.decoder.bias", "cls.predictions.bias")
_BASE_PREFIXES = ("embeddings.", "encoder.", "pooler.")


def _map_checkpoint_keys(keys, model_keys) -> Dict[str, str]:
    """Checkpoint key -> model key for every key this model uses (others are left out)."""
    model_has_bert = any(k.startswith("bert.") for k in model_keys)
    ckpt_has_bert = any(k.startswith("bert.") for k in keys)
    mapping = {}
    for key in keys:
        new = key
        for old_suffix, new_suffix in _SUFFIX_RENAMES:
            if new.endswith(old_suffix):
                new = new[: -len(old_suffix)] + new_suffix
        if new.endswith(_IGNORED_SUFFIXES):
            continue
        if model_has_bert and not ckpt_has_bert and new.startswith(_BASE_PREFIXES):
            new = "bert." + new
        elif not model_has_bert and ckpt_has_bert and new.startswith("bert."):
            new = new[len("bert."):]
        mapping[key] = new
    targets = set(mapping.values())
    old_bias, bias = _HF_DECODER_BIAS
    for key, new in list(mapping.items()):
        if new == old_bias:
            if bias in targets:
                del mapping[key]
            else:
                mapping[key] = bias
        elif new == _TIED_DECODER:
            del mapping[key]
    return mapping


def _load_weights_file(path: Path) -> Dict[str, torch.Tensor]:
    """Memory-map model.safetensors; read pytorch_model.bin with weights_only=True (mmap when the
    file is in the zip format)."""
    if path.name.endswith(".safetensors"):
        return _mmap_safetensors(path)
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as exc:
        if "mmap" not in str(exc):
            raise ConversionError(f"cannot read {str(path)!r}: {exc}") from None
        state = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy format
    except Exception as exc:  # the unpickler's refusal names the global it refused
        refused = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"a Python object ({refused.group(1)})" if refused else f"data it cannot read ({exc})"
        raise ConversionError(
            f"cannot read {str(path)!r} with torch.load(weights_only=True): it holds {what}, not "
            "only tensors. Save the weights alone (torch.save(model.state_dict(), ...)) or use "
            "model.safetensors") from None
    if not isinstance(state, dict):
        raise ConversionError(f"{str(path)!r} holds a {type(state).__name__}, not a state dict")
    return state


# safetensors dtype names (the format's own table).
_SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
_DTYPE_NAMES = {v: k for k, v in _SAFETENSORS_DTYPES.items()}


def _mmap_safetensors(path: Path) -> Dict[str, torch.Tensor]:
    """Every tensor of a safetensors file as a view of ONE private memory map of the file.

    Pages are read on first touch, and tensors stored back to back (our query/key/value) stay
    back to back, so they pack without a copy. The safetensors library checks the header."""
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="pt") as handle:   # validates header and offsets
            names = list(handle.keys())
    except SafetensorError as exc:
        raise ConversionError(f"{str(path)!r} is not a valid safetensors file: {exc}") from None
    with open(path, "rb") as reader:
        header_size = int.from_bytes(reader.read(8), "little")
        header = json.loads(reader.read(header_size))
    start = 8 + header_size
    storage = torch.UntypedStorage.from_file(str(path), shared=False,
                                             nbytes=os.path.getsize(path))
    tensors = {}
    for name in names:
        info = header[name]
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        begin = start + info["data_offsets"][0]
        if dtype is None or begin % dtype.itemsize:             # unaligned: let the library copy
            from safetensors.torch import load_file
            return load_file(str(path))
        tensors[name] = torch.empty(0, dtype=dtype).set_(
            storage, begin // dtype.itemsize, info["shape"])
    return tensors


def _save_safetensors(tensors: Dict[str, torch.Tensor], path: Path) -> None:
    """Write a safetensors file in the given order (the library would sort by name, splitting
    query/key/value); widest dtypes first, so every tensor stays aligned."""
    order = sorted(tensors, key=lambda k: -tensors[k].element_size())     # stable
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in order:
        t = tensors[name]
        header[name] = {"dtype": _DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + t.numel() * t.element_size()]}
        offset += t.numel() * t.element_size()
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as writer:
        writer.write(len(text).to_bytes(8, "little"))
        writer.write(text)
        for name in order:
            t = tensors[name].detach().to("cpu").contiguous()
            writer.write(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _fused_order(keys: List[str]) -> List[str]:
    """State-dict keys with each layer's query/key/value weights, then biases, back to back."""
    out, seen = [], set()
    for key in keys:
        if key in seen:
            continue
        if key.endswith("attention.self.query.weight"):
            prefix = key[: -len("query.weight")]
            group = [f"{prefix}{m}.{p}" for p in ("weight", "bias")
                     for m in ("query", "key", "value")]
            if all(g in keys for g in group):
                out.extend(group)
                seen.update(group)
                continue
        out.append(key)
        seen.add(key)
    return out


def _shape_fix(key: str, saved: torch.Size) -> str:
    if key.endswith(("classifier.weight", "classifier.bias")):
        return (f"the checkpoint's classifier has {saved[0]} outputs: pass num_labels="
                f"{saved[0]} (or num_choices) to from_pretrained")
    return "the config does not describe this checkpoint; use the checkpoint's own config"


class BertPreTrainedModel(nn.Module):
    """Weight initialisation, ``from_pretrained`` and ``save_pretrained`` for every BERT model."""

    def __init__(self, config: BertConfig, *inputs, **kwargs):
        super().__init__()
        if not isinstance(config, BertConfig):
            if hasattr(config, "to_dict") and hasattr(config, "vocab_size"):
                config = BertConfig.from_dict(config.to_dict())   # e.g. 0.6.2's BertConfig
            else:
                raise ConfigError(
                    f"config in `{type(self).__name__}(config)` must be a BertConfig, got "
                    f"{type(config).__name__}. To load a pretrained model use "
                    f"`{type(self).__name__}.from_pretrained(name_or_path)`")
        self.config = config

    def init_bert_weights(self, module: nn.Module) -> None:
        """Normal(0, initializer_range) weights, zero biases, LayerNorm 1 / 0 (as 0.6.2).
        Skipped on the meta device (from_pretrained builds there; loading fills the values)."""
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.device.type == "meta":
            return
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.config.initializer_range)
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def _init_head(self) -> None:
        """Initialise what a head adds on top of ``self.bert`` (which initialised itself)."""
        for name, child in self.named_children():
            if name != "bert":
                child.apply(self.init_bert_weights)

    def tie_weights(self) -> None:
        """Point the MLM decoder at the word-embedding matrix (after loading replaced it)."""
        predictions = getattr(getattr(self, "cls", None), "predictions", None)
        if predictions is not None:
            predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    def _pack(self) -> None:
        for module in self.modules():
            if isinstance(module, BertSelfAttention):
                module.pack_qkv()

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: Union[str, os.PathLike], *inputs,
                        cache_dir=None, force_download: bool = False,
                        local_files_only: bool = False, torch_dtype=None, device=None,
                        state_dict: Optional[Dict[str, torch.Tensor]] = None,
                        revision: Optional[str] = None, token=None, **kwargs):
        """Build ``cls`` from a model folder, archive, URL or registry name (``hub.resolve_model``).

        Extra ``*inputs`` / ``**kwargs`` go to the constructor (e.g. ``num_labels=3``).
        ``torch_dtype``: dtype of floating weights (default float32; "auto" keeps the file's).
        ``device``: where the weights go (default cpu). ``state_dict``: weights to use instead
        of the folder's. Weights missing from the checkpoint are initialised and reported once.
        ``revision`` (branch, tag or commit) and ``token``: for Hugging Face Hub ids (org/name).
        A config's ``id2label`` / ``label2id`` become ``model.id2label`` / ``model.label2id``
        (and ``num_labels`` when not given). Returns the model in eval mode.
        """
        kwargs.pop("from_tf", None)   # 0.6.2's flag: a TensorFlow folder is found by its layout
        # Argument mistakes fail here, before a download or a conversion.
        _check_constructor_args(cls, inputs, kwargs)
        torch_dtype = _torch_dtype(torch_dtype)
        device = _device(device)
        if state_dict is not None:
            _check_state_dict(state_dict)
        files = hub.resolve_model(pretrained_model_name_or_path, cache_dir=cache_dir,
                                  force_download=force_download,
                                  local_files_only=local_files_only,
                                  need_weights=state_dict is None, revision=revision, token=token)
        if files.config_file is None:
            raise ConfigError(f"{str(files.folder)!r} has no {hub.CONFIG_NAME}")
        config = hf_hub.read_config(files.config_file)
        kwargs, id2label, label2id = hf_hub.label_arguments(cls, config, inputs, kwargs)
        if state_dict is None and files.weights_file is None and files.tf_checkpoint is not None:
            from .convert import tf_to_state_dict   # a read-only Google folder: convert in memory
            state_dict = tf_to_state_dict(files.tf_checkpoint, config)
            source = str(files.tf_checkpoint)
        elif state_dict is None:
            state_dict = hf_hub.read_weights(files.weights_file, _load_weights_file)
            source = str(files.weights_file)
        else:
            source = "the state_dict argument"
        with torch.device("meta"):
            model = cls(config, *inputs, **kwargs)
        model._load_checkpoint(state_dict, source, torch_dtype=torch_dtype, device=device,
                               copy=source == "the state_dict argument")
        model.id2label, model.label2id = id2label, label2id
        return model.eval()

    def _load_checkpoint(self, state_dict: Dict[str, torch.Tensor], source: str,
                         torch_dtype=None, device=None, copy: bool = False) -> None:
        """Assign the checkpoint's tensors to a model built on the meta device; initialise the
        rest; tie and pack."""
        device = torch.device(device if device is not None else "cpu")
        expected = {k: v for k, v in self.state_dict(keep_vars=True).items()
                    if k != _TIED_DECODER}
        mapping = _map_checkpoint_keys(list(state_dict), expected)
        unexpected = sorted(k for k, new in mapping.items() if new not in expected)
        unexpected += sorted(k for k in state_dict if k not in mapping and
                             not k.endswith(_IGNORED_SUFFIXES) and k != _TIED_DECODER
                             and k != _HF_DECODER_BIAS[0])
        mismatched = []
        loaded = {}
        for key, new in mapping.items():
            if new not in expected:
                continue
            tensor, target = state_dict[key], expected[new]
            if tensor.shape != target.shape:
                mismatched.append(f"{new}: checkpoint {tuple(tensor.shape)}, model "
                                  f"{tuple(target.shape)} ({_shape_fix(new, tensor.shape)})")
                continue
            dtype = target.dtype if torch_dtype is None else torch_dtype
            if dtype == "auto" or not tensor.is_floating_point():
                dtype = tensor.dtype
            moved = tensor.to(device=device, dtype=dtype)
            # Never alias a caller's tensors (state_dict=...); a file's tensors are ours.
            loaded[new] = moved.clone() if copy and moved is tensor else moved
        if mismatched:
            raise ConversionError(
                f"weights in {source} do not fit {type(self).__name__}:\n  "
                + "\n  ".join(mismatched))
        self.load_state_dict(loaded, strict=False, assign=True)
        missing = sorted(k for k in expected if k not in loaded)
        if missing:
            self._init_missing(missing, device, torch_dtype)
            logger.warning("%s: weights not in %s, initialised randomly (train them before "
                           "use): %s", type(self).__name__, source, ", ".join(missing))
        if unexpected:
            logger.info("%s: weights in %s not used: %s", type(self).__name__, source,
                        ", ".join(unexpected))
        self.tie_weights()
        self._pack()

    @torch.no_grad()
    def _init_missing(self, names: List[str], device: torch.device, torch_dtype) -> None:
        """Materialise each missing (meta) parameter and initialise it as 0.6.2 does."""
        reference = self.bert.embeddings.word_embeddings.weight if hasattr(self, "bert") else \
            self.embeddings.word_embeddings.weight
        dtype = reference.dtype if reference.device.type != "meta" else torch.float32
        if torch_dtype not in (None, "auto"):
            dtype = torch_dtype
        for name in names:
            module_name, _, attr = name.rpartition(".")
            module = self.get_submodule(module_name)
            old = getattr(module, attr)
            tensor = torch.empty(old.shape, dtype=dtype, device=device)
            if isinstance(module, nn.LayerNorm):
                tensor.fill_(1.0 if attr == "weight" else 0.0)
            elif attr == "weight" and isinstance(module, (nn.Linear, nn.Embedding)):
                tensor.normal_(mean=0.0, std=self.config.initializer_range)
            else:
                tensor.zero_()                     # Linear biases and the MLM output bias
            module._parameters[attr] = nn.Parameter(tensor, requires_grad=old.requires_grad)

    # -- saving -------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: Union[str, os.PathLike]) -> Path:
        """Write ``bert_config.json`` and ``model.safetensors`` (the tied decoder weight once).
        The weights file appears whole or not at all."""
        folder = Path(save_directory)
        if folder.exists() and not folder.is_dir():
            raise InvalidInputError(
                f"save_pretrained({str(folder)!r}): that is a file; pass a folder (it is created "
                "if missing)")
        folder.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        tensors = {k: state[k] for k in _fused_order(list(state)) if k != _TIED_DECODER}
        fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".tmp", dir=folder)
        os.close(fd)
        try:
            _save_safetensors(tensors, Path(tmp))
            os.replace(tmp, folder / hub.SAFE_WEIGHTS_NAME)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        self.config.to_json_file(folder / hub.CONFIG_NAME)
        return folder


# -- models -------------------------------------------------------------------------------------
class BertModel(BertPreTrainedModel):
    """BERT: embeddings, ``num_hidden_layers`` Transformer blocks and the pooler.

    forward(input_ids (B, S) long, token_type_ids (B, S) or None, attention_mask (B, S) 1/0 or
    None, output_all_encoded_layers=True) -> (encoded_layers, pooled_output (B, H)), where
    encoded_layers is a list of every layer's (B, S, H) output, or only the last one's (a
    tensor) when output_all_encoded_layers=False.
    """

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.embeddings = BertEmbeddings(self.config)
        self.encoder = BertEncoder(self.config)
        self.pooler = BertPooler(self.config)
        self.apply(self.init_bert_weights)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_all_encoded_layers=True):
        check_inputs(self.config, input_ids, token_type_ids, attention_mask)
        dtype = self.embeddings.word_embeddings.weight.dtype
        extended_attention_mask = _extended_mask(attention_mask, dtype)  # (B, 1, 1, S) or None
        embedding_output = self.embeddings(input_ids, token_type_ids)
        encoded_layers = self.encoder(embedding_output, extended_attention_mask,
                                      output_all_encoded_layers=output_all_encoded_layers)
        pooled_output = self.pooler(encoded_layers[-1])
        if not output_all_encoded_layers:
            encoded_layers = encoded_layers[-1]
        return encoded_layers, pooled_output


class BertForPreTraining(BertPreTrainedModel):
    """BERT + masked-LM and next-sentence heads.

    With masked_lm_labels (B, S; -1 = ignored) and next_sentence_label (B,): the summed loss.
    Otherwise (prediction_scores (B, S, V), seq_relationship_score (B, 2)).
    """

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(self.config)
        self.cls = BertPreTrainingHeads(self.config, self.bert.embeddings.word_embeddings.weight)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, masked_lm_labels=None,
                next_sentence_label=None):
        sequence_output, pooled_output = self.bert(input_ids, token_type_ids, attention_mask,
                                                   output_all_encoded_layers=False)
        prediction_scores, seq_relationship_score = self.cls(sequence_output, pooled_output)
        if masked_lm_labels is not None and next_sentence_label is not None:
            loss_fct = CrossEntropyLoss(ignore_index=-1)
            masked_lm_loss = loss_fct(prediction_scores.view(-1, self.config.vocab_size),
                                      masked_lm_labels.view(-1))
            next_sentence_loss = loss_fct(seq_relationship_score.view(-1, 2),
                                          next_sentence_label.view(-1))
            return masked_lm_loss + next_sentence_loss
        return prediction_scores, seq_relationship_score


class BertForMaskedLM(BertPreTrainedModel):
    """BERT + masked-LM head. With masked_lm_labels (B, S; -1 = ignored): the loss; otherwise
    prediction_scores (B, S, V)."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(self.config)
        self.cls = BertOnlyMLMHead(self.config, self.bert.embeddings.word_embeddings.weight)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, masked_lm_labels=None):
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask,
                                       output_all_encoded_layers=False)
        prediction_scores = self.cls(sequence_output)
        if masked_lm_labels is not None:
            loss_fct = CrossEntropyLoss(ignore_index=-1)
            return loss_fct(prediction_scores.view(-1, self.config.vocab_size),
                            masked_lm_labels.view(-1))
        return prediction_scores


class BertForNextSentencePrediction(BertPreTrainedModel):
    """BERT + next-sentence head. With next_sentence_label (B,): the loss; otherwise (B, 2)."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(self.config)
        self.cls = BertOnlyNSPHead(self.config)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                next_sentence_label=None):
        _, pooled_output = self.bert(input_ids, token_type_ids, attention_mask,
                                     output_all_encoded_layers=False)
        seq_relationship_score = self.cls(pooled_output)
        if next_sentence_label is not None:
            loss_fct = CrossEntropyLoss(ignore_index=-1)
            return loss_fct(seq_relationship_score.view(-1, 2), next_sentence_label.view(-1))
        return seq_relationship_score


class BertForSequenceClassification(BertPreTrainedModel):
    """BERT + a linear classifier on the pooled output. With labels (B,): the cross-entropy
    loss; otherwise logits (B, num_labels)."""

    def __init__(self, config: BertConfig, num_labels: int = 2):
        super().__init__(config)
        self.num_labels = _positive("num_labels", num_labels)
        self.bert = BertModel(self.config)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = _Linear(self.config.hidden_size, num_labels)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        _, pooled_output = self.bert(input_ids, token_type_ids, attention_mask,
                                     output_all_encoded_layers=False)
        logits = self.classifier(_dropout(self.dropout, pooled_output))
        if labels is not None:
            return CrossEntropyLoss()(logits.view(-1, self.num_labels), labels.view(-1))
        return logits


class BertForMultipleChoice(BertPreTrainedModel):
    """BERT scoring each of C choices with a linear layer on its pooled output.

    input_ids, token_type_ids, attention_mask: (B, C, S). With labels (B,): the loss;
    otherwise logits (B, C).
    """

    def __init__(self, config: BertConfig, num_choices: int = 2):
        super().__init__(config)
        self.num_choices = _positive("num_choices", num_choices)
        self.bert = BertModel(self.config)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = _Linear(self.config.hidden_size, 1)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        check_inputs(self.config, input_ids, token_type_ids, attention_mask, dims=3)
        if input_ids.shape[1] != self.num_choices:
            raise InvalidInputError(
                f"input_ids has {input_ids.shape[1]} choices (shape {tuple(input_ids.shape)}) but "
                f"the model was built with num_choices={self.num_choices}")
        seq_length = input_ids.size(-1)
        flat_input_ids = input_ids.reshape(-1, seq_length)              # (B*C, S)
        flat_token_type_ids = None if token_type_ids is None else \
            token_type_ids.reshape(-1, seq_length)
        flat_attention_mask = None if attention_mask is None else \
            attention_mask.reshape(-1, seq_length)
        _, pooled_output = self.bert(flat_input_ids, flat_token_type_ids, flat_attention_mask,
                                     output_all_encoded_layers=False)
        logits = self.classifier(_dropout(self.dropout, pooled_output))
        reshaped_logits = logits.view(-1, self.num_choices)             # (B, C)
        if labels is not None:
            return CrossEntropyLoss()(reshaped_logits, labels)
        return reshaped_logits


class BertForTokenClassification(BertPreTrainedModel):
    """BERT + a linear classifier on every token. With labels (B, S): the loss over tokens whose
    attention_mask is 1; otherwise logits (B, S, num_labels)."""

    def __init__(self, config: BertConfig, num_labels: int = 2):
        super().__init__(config)
        self.num_labels = _positive("num_labels", num_labels)
        self.bert = BertModel(self.config)
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob)
        self.classifier = _Linear(self.config.hidden_size, num_labels)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask,
                                       output_all_encoded_layers=False)
        logits = self.classifier(_dropout(self.dropout, sequence_output))
        if labels is None:
            return logits
        loss_fct = CrossEntropyLoss()
        flat_logits, flat_labels = logits.view(-1, self.num_labels), labels.view(-1)
        if attention_mask is not None:
            active = attention_mask.view(-1) == 1                       # only real tokens
            flat_logits, flat_labels = flat_logits[active], flat_labels[active]
        return loss_fct(flat_logits, flat_labels)


class BertForQuestionAnswering(BertPreTrainedModel):
    """BERT + span start/end logits. With start_positions and end_positions (B,): the mean of
    the two losses (positions outside the sequence are ignored); otherwise
    (start_logits (B, S), end_logits (B, S))."""

    def __init__(self, config: BertConfig):
        super().__init__(config)
        self.bert = BertModel(self.config)
        self.qa_outputs = _Linear(self.config.hidden_size, 2)
        self._init_head()

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, start_positions=None,
                end_positions=None):
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask,
                                       output_all_encoded_layers=False)
        logits = self.qa_outputs(sequence_output)                       # (B, S, 2)
        start_logits, end_logits = (t.squeeze(-1) for t in logits.split(1, dim=-1))
        if start_positions is None or end_positions is None:
            return start_logits, end_logits
        if start_positions.dim() > 1:
            start_positions = start_positions.squeeze(-1)
        if end_positions.dim() > 1:
            end_positions = end_positions.squeeze(-1)
        ignored_index = start_logits.size(1)
        # 0.6.2 clamps the caller's tensors in place; the loss is the same without that.
        start_positions = start_positions.clamp(0, ignored_index)
        end_positions = end_positions.clamp(0, ignored_index)
        loss_fct = CrossEntropyLoss(ignore_index=ignored_index)
        return (loss_fct(start_logits, start_positions) + loss_fct(end_logits, end_positions)) / 2


_LOAD_OPTIONS = ("cache_dir", "force_download", "local_files_only", "torch_dtype", "device",
                 "state_dict", "revision", "token")


def _check_constructor_args(cls, inputs: tuple, kwargs: dict) -> None:
    """``from_pretrained``'s extra arguments must fit ``cls(config, ...)``."""
    params = [p for p in inspect.signature(cls.__init__).parameters.values()
              if p.name not in ("self", "config") and p.kind is not p.VAR_KEYWORD]
    try:
        inspect.signature(cls.__init__).bind(None, None, *inputs, **kwargs)
    except TypeError as exc:
        takes = ", ".join(p.name for p in params) or "no arguments besides the config"
        unknown = [k for k in kwargs if k not in {p.name for p in params}]
        close = difflib.get_close_matches(unknown[0], [p.name for p in params] +
                                          list(_LOAD_OPTIONS), n=1) if unknown else []
        hint = f" Did you mean {close[0]!r}?" if close else ""
        if "num_labels" in unknown or "num_choices" in unknown:
            hint += (" num_labels belongs to BertForSequenceClassification and "
                     "BertForTokenClassification, num_choices to BertForMultipleChoice.")
        raise InvalidArgumentError(
            f"{cls.__name__}.from_pretrained(): {exc}. {cls.__name__} takes {takes}; the "
            f"loading options are {', '.join(_LOAD_OPTIONS)}.{hint}") from None


def _torch_dtype(value):
    """None, "auto", a floating torch.dtype or its name ("float16", "torch.bfloat16")."""
    if value is None or value == "auto":
        return value
    dtype = getattr(torch, value.replace("torch.", "", 1), None) if isinstance(value, str) \
        else value
    if isinstance(dtype, torch.dtype) and dtype.is_floating_point:
        return dtype
    raise InvalidInputError(
        f"torch_dtype must be a floating dtype (torch.float32, torch.float16, torch.bfloat16), "
        f"its name ('float16'), or 'auto' to keep the file's; got {value!r}")


def _device(value) -> Optional[torch.device]:
    if value is None:
        return None
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as exc:
        raise InvalidInputError(
            f"device={value!r} is not a torch device ({exc}); pass e.g. 'cpu', 'cuda' or "
            "'cuda:1'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(
            f"device={value!r}, but CUDA is not available to this torch ({torch.__version__}); "
            "pass device='cpu', or install a CUDA build of torch")
    return device


def _check_state_dict(state_dict) -> None:
    if not isinstance(state_dict, Mapping):
        raise InvalidInputError(
            f"state_dict must be a mapping of names to tensors (model.state_dict()), got "
            f"{type(state_dict).__name__}")
    bad = [k for k, v in state_dict.items() if not torch.is_tensor(v)]
    if bad:
        raise InvalidInputError(
            f"state_dict values must be tensors; {bad[0]!r} holds a "
            f"{type(state_dict[bad[0]]).__name__} ({len(bad)} such keys). Pass "
            "model.state_dict() or torch.load(path, weights_only=True)")


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value

