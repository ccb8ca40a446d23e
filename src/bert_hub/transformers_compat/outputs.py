"""What the transformers-style models return: ``ModelOutput`` objects shaped as transformers'
(``out.logits``, ``out["logits"]``, ``out[0]``, ``out.to_tuple()``), one class per head.

Like transformers' ``ModelOutput``, an output is an ordered dict holding only the fields that
are set (not None), in the order the class declares them; an integer or a slice indexes that
tuple, so ``out[0]`` is ``last_hidden_state`` for the bare model and ``logits`` (or ``loss``,
when labels were given) for a head. A mapping, so ``bert_hub``'s Trainer reads ``loss`` from it.

Shapes: B batch, S sequence length, H hidden size, V vocabulary, C classes or choices.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Tuple

from ..errors import InvalidArgumentError


class ModelOutput(OrderedDict):
    """The fields of a model's output (``FIELDS``), set ones only, in that order."""

    FIELDS: Tuple[str, ...] = ()

    def __init__(self, *args, **values):
        """``Output(logits=..., loss=None, ...)``, or one mapping / iterable of (name, value)
        pairs (how ``DataParallel`` rebuilds a gathered output). None values are not kept."""
        if len(args) > 1:
            raise InvalidArgumentError(f"{type(self).__name__} takes fields by name, or one "
                                       "mapping of them")
        if args:
            values = {**dict(args[0]), **values}
        super().__init__()
        for name in [*self.FIELDS, *(k for k in values if k not in self.FIELDS)]:
            if values.get(name) is not None:
                self[name] = values[name]

    def __getattr__(self, name: str):
        if name in self:
            return super().__getitem__(name)
        if name in type(self).FIELDS:
            return None                                # an unset field reads as None
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        self[name] = value

    def __setitem__(self, name, value) -> None:
        """A field keeps its declared place (so ``to_tuple()`` stays transformers' order); other
        keys go last, as transformers' pipelines add them (``outputs["input_ids"] = ...``)."""
        if value is None and name in type(self).FIELDS:
            self.pop(name, None)
            return
        super().__setitem__(name, value)
        if name in self.FIELDS:
            for later in self.FIELDS[self.FIELDS.index(name) + 1:]:
                if later in self:
                    self.move_to_end(later)
            for other in [k for k in self if k not in self.FIELDS]:
                self.move_to_end(other)

    def __getitem__(self, key):
        """A field by name, or by position in ``to_tuple()`` (an int or a slice)."""
        if isinstance(key, str):
            return super().__getitem__(key)
        return self.to_tuple()[key]

    def to_tuple(self) -> tuple:
        """The set fields in declared order: what ``return_dict=False`` returns."""
        return tuple(self.values())

    def __reduce__(self):
        return type(self), (dict(self),)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={_short(value)}" for name, value in self.items())
        return f"{type(self).__name__}({fields})"


def _short(value) -> str:
    shape = getattr(value, "shape", None)
    if shape is not None:
        return f"<{type(value).__name__} {tuple(shape)} {getattr(value, 'dtype', '')}>"
    if isinstance(value, tuple):
        return f"({len(value)} x {_short(value[0]) if value else ''})"
    return repr(value)


# hidden_states: (embeddings, layer 1, ..., layer N), each (B, S, H), with output_hidden_states.
# attentions: always None here (the attention kernels never form the probabilities).
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    """``BertModel``: last_hidden_state (B, S, H), pooler_output (B, H)."""

    FIELDS = ("last_hidden_state", "pooler_output", "hidden_states", "past_key_values",
              "attentions", "cross_attentions")


class BertForPreTrainingOutput(ModelOutput):
    """loss (MLM + NSP, with both labels), prediction_logits (B, S, V), seq_relationship_logits
    (B, 2)."""

    FIELDS = ("loss", "prediction_logits", "seq_relationship_logits", "hidden_states", "attentions")


class MaskedLMOutput(ModelOutput):
    """loss (with labels), logits (B, S, V)."""

    FIELDS = ("loss", "logits", "hidden_states", "attentions")


class NextSentencePredictorOutput(ModelOutput):
    """loss (with labels), logits (B, 2)."""

    FIELDS = ("loss", "logits", "hidden_states", "attentions")


class SequenceClassifierOutput(ModelOutput):
    """loss (with labels), logits (B, C)."""

    FIELDS = ("loss", "logits", "hidden_states", "attentions")


class MultipleChoiceModelOutput(ModelOutput):
    """loss (with labels), logits (B, C) for C choices."""

    FIELDS = ("loss", "logits", "hidden_states", "attentions")


class TokenClassifierOutput(ModelOutput):
    """loss (with labels), logits (B, S, C)."""

    FIELDS = ("loss", "logits", "hidden_states", "attentions")


class QuestionAnsweringModelOutput(ModelOutput):
    """loss (with start and end positions), start_logits (B, S), end_logits (B, S)."""

    FIELDS = ("loss", "start_logits", "end_logits", "hidden_states", "attentions")
