"""The models' input checks: input that would fail (or silently misbehave) inside a kernel gets an
``InvalidInputError`` naming the limit and the fix before any kernel runs.

Shapes: B batch, C choices, S sequence length.
"""
from __future__ import annotations

import torch

from .config import BertConfig
from .errors import ConfigError, InvalidInputError
from .fast_path import is_tracing

_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_inputs(config: BertConfig, input_ids, token_type_ids=None, attention_mask=None,
                 dims: int = 2) -> None:
    """input_ids (B, S) [or (B, C, S) for multiple choice]; token_type_ids, attention_mask the
    same shape or None."""
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


def _check_ids(name: str, ids: torch.Tensor, limit: int, limit_name: str) -> None:
    if ids.dtype not in _INTEGER_DTYPES:
        raise InvalidInputError(
            f"{name} must hold integer ids (torch.long), got dtype {ids.dtype}; "
            f"convert with {name}.long()")
    if is_tracing():   # a graph must not depend on values: the embedding's own bounds check
        return         # is what catches a bad id in a compiled or exported model
    low, high = torch.aminmax(ids)
    low, high = int(low), int(high)
    if low < 0:
        raise InvalidInputError(
            f"{name} contains {low}, a negative id; ids must be in [0, {limit_name}={limit})")
    if high >= limit:
        raise InvalidInputError(
            f"{name} contains {high}, but {limit_name} is {limit}; ids must be in "
            f"[0, {limit}) - check that the tokenizer's vocabulary matches the model")


def check_positive(name: str, value) -> int:
    """A head's size argument (num_labels, num_choices): a positive int, else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_flag(name: str, value) -> bool:
    """A model switch (``unpad``): True or False, else InvalidInputError."""
    if not isinstance(value, bool):
        raise InvalidInputError(f"{name} must be True or False, got {value!r}")
    return value
