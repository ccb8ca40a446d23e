"""``BatchEncoding``: what the transformers-style tokenizer returns. A mapping of model inputs
(``input_ids``, ``token_type_ids``, ``attention_mask``, ...) that also reads them as attributes,
moves its tensors with ``.to(device)``, and maps tokens to words and characters through the Rust
encodings, as transformers' ``BatchEncoding`` does."""
from __future__ import annotations

from collections import UserDict
from typing import List, NamedTuple, Optional

from ..errors import InvalidInputError

TENSOR_TYPES = ("pt", "np")


class CharSpan(NamedTuple):
    """Characters ``text[start:end]`` of one token."""

    start: int
    end: int


class TokenSpan(NamedTuple):
    """Tokens ``[start, end)`` of one word."""

    start: int
    end: int


class BatchEncoding(UserDict):
    """Model inputs by name; ``encodings`` holds the Rust ``tokenizers.Encoding`` of each row."""

    def __init__(self, data=None, encodings=None, tensor_type: Optional[str] = None):
        super().__init__(data or {})
        self._encodings = encodings
        self.convert_to_tensors(tensor_type)

    def __getitem__(self, key):
        """A model input by name; an int gives that row's Rust encoding; a slice, every input
        of those rows."""
        if isinstance(key, str):
            return self.data[key]
        if isinstance(key, int) and self._encodings is not None:
            return self._encodings[key]
        if isinstance(key, slice):
            return {name: value[key] for name, value in self.data.items()}
        raise KeyError(f"{key!r}: index a BatchEncoding by input name ('input_ids'), row (int) "
                       "or slice")

    def __getattr__(self, name: str):
        try:
            return self.__dict__["data"][name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no input {name!r}") from None

    def __getstate__(self):
        return {"data": self.data, "encodings": self._encodings}

    def __setstate__(self, state):
        self.data, self._encodings = state["data"], state["encodings"]

    # -- tensors -----------------------------------------------------------------------------------
    def convert_to_tensors(self, tensor_type: Optional[str] = None) -> "BatchEncoding":
        """Lists -> ``torch.long`` tensors ("pt") or int64 arrays ("np"; rows of different
        lengths: an object array of rows, as transformers makes), in place."""
        tensor_type = check_tensor_type(tensor_type)
        if tensor_type is None:
            return self
        import numpy as np
        for name, value in self.data.items():
            lengths = {len(row) for row in value if isinstance(row, (list, tuple))}
            if len(lengths) > 1 and tensor_type == "np":   # as transformers: rows of an object array
                self.data[name] = np.asarray([np.asarray(row, dtype=np.int64) for row in value],
                                             dtype=object)
                continue
            if len(lengths) > 1:
                raise InvalidInputError(
                    f"{name} holds sequences of different lengths {sorted(lengths)[:5]}, which do "
                    "not form one tensor: pass padding=True (and truncation=True), or "
                    "return_tensors=None for lists")
            array = np.asarray(value, dtype=np.int64)
            if tensor_type == "pt":
                import torch
                array = torch.from_numpy(array)
            self.data[name] = array
        return self

    def to(self, device, *, non_blocking: bool = False) -> "BatchEncoding":
        """Every tensor moved to ``device`` (a str, torch.device or GPU index); returns self."""
        self.data = {k: v.to(device=device, non_blocking=non_blocking) if hasattr(v, "to") else v
                     for k, v in self.data.items()}
        return self

    # -- tokens, words and characters (transformers' fast-tokenizer methods) ----------------------
    @property
    def encodings(self):
        return self._encodings

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    @property
    def n_sequences(self) -> Optional[int]:
        return self._encodings[0].n_sequences if self._encodings else None

    def _encoding(self, batch_index: int):
        if not self._encodings:
            raise InvalidInputError("this BatchEncoding holds no encodings (it was not made by "
                                    "the tokenizer)")
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> List[str]:
        return self._encoding(batch_index).tokens

    def word_ids(self, batch_index: int = 0) -> List[Optional[int]]:
        """Each token's word in its sequence (None for special tokens and padding)."""
        return self._encoding(batch_index).word_ids

    def sequence_ids(self, batch_index: int = 0) -> List[Optional[int]]:
        """Each token's sequence: 0 (first text), 1 (the pair's second), None (special)."""
        return self._encoding(batch_index).sequence_ids

    def _row_and(self, batch_or_index: int, index: Optional[int]):
        return (0, batch_or_index) if index is None else (batch_or_index, index)

    def token_to_word(self, batch_or_token_index: int, token_index: Optional[int] = None):
        batch, token = self._row_and(batch_or_token_index, token_index)
        return self._encoding(batch).token_to_word(token)

    def token_to_sequence(self, batch_or_token_index: int, token_index: Optional[int] = None):
        batch, token = self._row_and(batch_or_token_index, token_index)
        return self._encoding(batch).token_to_sequence(token)

    def token_to_chars(self, batch_or_token_index: int,
                       token_index: Optional[int] = None) -> Optional[CharSpan]:
        batch, token = self._row_and(batch_or_token_index, token_index)
        span = self._encoding(batch).token_to_chars(token)
        return CharSpan(*span) if span is not None else None

    def char_to_token(self, batch_or_char_index: int, char_index: Optional[int] = None,
                      sequence_index: int = 0) -> Optional[int]:
        batch, char = self._row_and(batch_or_char_index, char_index)
        return self._encoding(batch).char_to_token(char, sequence_index)

    def char_to_word(self, batch_or_char_index: int, char_index: Optional[int] = None,
                     sequence_index: int = 0) -> Optional[int]:
        batch, char = self._row_and(batch_or_char_index, char_index)
        return self._encoding(batch).char_to_word(char, sequence_index)

    def word_to_tokens(self, batch_or_word_index: int, word_index: Optional[int] = None,
                       sequence_index: int = 0) -> Optional[TokenSpan]:
        batch, word = self._row_and(batch_or_word_index, word_index)
        span = self._encoding(batch).word_to_tokens(word, sequence_index)
        return TokenSpan(*span) if span is not None else None

    def word_to_chars(self, batch_or_word_index: int, word_index: Optional[int] = None,
                      sequence_index: int = 0) -> Optional[CharSpan]:
        batch, word = self._row_and(batch_or_word_index, word_index)
        span = self._encoding(batch).word_to_chars(word, sequence_index)
        return CharSpan(*span) if span is not None else None


def check_tensor_type(value) -> Optional[str]:
    """None, "pt" or "np" (transformers' ``TensorType`` members too)."""
    value = getattr(value, "value", value)
    if value is None or value in TENSOR_TYPES:
        return value
    raise InvalidInputError(f"return_tensors must be 'pt' (torch), 'np' (numpy) or None (lists), "
                            f"got {value!r}")
