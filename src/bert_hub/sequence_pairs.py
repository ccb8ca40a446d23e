"""BERT's input layout, ``[CLS] a [SEP] (b [SEP])``, built one way for the tokenizer and every
task (GLUE, SQuAD, pre-training data, feature extraction): when a second text counts as absent,
how a pair is cut to fit, how it is assembled with its segment ids, and the (N, T) tensors
stacked from task features.

Items may be word pieces or ids: the functions only count and place them.

An empty second text, as pytorch-pretrained-bert 0.6.2's ``run_classifier.py`` (what the
published GLUE numbers were produced with) treats it:

- ``None`` or ``""``: no pair (its ``if example.text_b:``): ``[CLS] a [SEP]``, ``a`` cut to
  ``max_length - 2`` (:func:`second_text`).
- A text that is there but tokenizes to nothing (whitespace, zero-width characters only): ``a``
  is cut as a pair's first text, to ``max_length - 3``, and no second ``[SEP]`` follows (its
  ``if tokens_b:``): ``[CLS] a [SEP]`` (:func:`truncate_and_assemble` with ``b == []``). The
  same when the cut leaves nothing of ``b``.
"""
from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Optional

from .errors import InvalidInputError


def second_text(text_b: Optional[str]) -> Optional[str]:
    """``text_b``, or None where 0.6.2 reads no pair: None or the empty string."""
    return text_b if text_b else None


def special_count(b: Optional[Sequence]) -> int:
    """How many of ``max_length``'s positions [CLS] and the [SEP]s take: 2 without a second
    text, 3 with one (also one that tokenized to nothing: 0.6.2 cuts it as a pair)."""
    return 2 if b is None else 3


def truncate_seq_pair(tokens_a: list, tokens_b: list, max_length: int,
                      rng: Optional[random.Random] = None) -> None:
    """Cut the pair in place until ``len(tokens_a) + len(tokens_b) <= max_length``, one item at
    a time from the longer list (``tokens_b`` on a tie): a long text then loses more than a
    short one, which keeps more information than cutting a fixed share from each.

    Without ``rng`` every item goes from the end (Google's ``run_classifier.py``,
    ``extract_features.py``, and 0.6.2's scripts). With ``rng`` each one goes from the front or
    the back at random, one ``rng.random()`` draw per item (Google's
    ``create_pretraining_data.py``: noise against a bias towards sentence starts).
    """
    if max_length < 0:
        raise InvalidInputError(f"max_length must be >= 0, got {max_length}")
    if rng is None:  # the same cuts, computed at once rather than one pop at a time
        keep_a, keep_b = _kept_lengths(len(tokens_a), len(tokens_b), max_length)
        del tokens_a[keep_a:], tokens_b[keep_b:]
        return
    while len(tokens_a) + len(tokens_b) > max_length:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _kept_lengths(la: int, lb: int, budget: int) -> tuple[int, int]:
    """Lengths left by dropping from the longer one (the second on a tie) until both fit."""
    excess = la + lb - budget
    if excess <= 0:
        return la, lb
    gap = min(abs(la - lb), excess)  # first the longer one shrinks to the other's length
    if la > lb:
        la -= gap
    else:
        lb -= gap
    excess -= gap  # now la == lb (or nothing is left to drop): they alternate, b first
    return la - excess // 2, lb - (excess + 1) // 2


def assemble(a: Sequence, b: Optional[Sequence], cls, sep) -> tuple[list, list[int]]:
    """``cls a sep`` (segment 0), then ``b sep`` (segment 1) when there is a ``b``: the items
    and their segment ids (``token_type_ids``), of equal length."""
    items = [cls, *a, sep]
    segment_ids = [0] * len(items)
    if b is not None:
        items += [*b, sep]
        segment_ids += [1] * (len(b) + 1)
    return items, segment_ids


def truncate_and_assemble(a: Sequence, b: Optional[Sequence], max_length: Optional[int], cls,
                          sep) -> tuple[list, list[int]]:
    """:func:`assemble` after cutting ``a`` and ``b`` (not in place) so that the whole layout
    has at most ``max_length`` items (None: no limit): a single text keeps its first
    ``max_length - 2`` items, a pair is cut as :func:`truncate_seq_pair` cuts it. An empty
    ``b`` (a second text with no word pieces) is cut for as a pair; a ``b`` empty after the
    cut adds no second segment, as in 0.6.2 (see the module's docstring)."""
    if max_length is not None:
        specials = special_count(b)
        if max_length < specials:
            raise InvalidInputError(
                f"max_length ({max_length}) leaves no room for [CLS] and "
                f"{'[SEP]' if b is None else 'two [SEP]'}: it must be at least {specials}")
        if b is None:
            a = a[:max_length - specials]
        else:
            keep_a, keep_b = _kept_lengths(len(a), len(b), max_length - specials)
            a, b = a[:keep_a], b[:keep_b]
    return assemble(a, b if b is not None and len(b) else None, cls, sep)


def input_tensors(features) -> dict:
    """The (N, T) long tensors every BERT input has, named as the model's arguments:
    input_ids, token_type_ids (the features' segment_ids), attention_mask (their input_mask)."""
    import torch

    return {
        "input_ids": torch.tensor([f.input_ids for f in features], dtype=torch.long),
        "token_type_ids": torch.tensor([f.segment_ids for f in features], dtype=torch.long),
        "attention_mask": torch.tensor([f.input_mask for f in features], dtype=torch.long),
    }
