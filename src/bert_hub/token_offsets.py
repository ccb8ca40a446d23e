"""Character offsets of word pieces: which characters of the input each token came from.

The tokenizer's Python path, re-run with every character's position carried along, because
cleaning, CJK spacing, lower-casing and accent stripping drop or multiply characters. Used by
``BertTokenizer.tokenize_with_offsets`` (token-classification and question-answering pipelines
map predictions back to spans of the input text)."""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from .wordpiece import _MARKS, BasicTokenizer, _is_punctuation

if TYPE_CHECKING:
    from .tokenization import BertTokenizer


class TokenSpan(NamedTuple):
    """A token and the characters ``text[start:end]`` it was made from; ``word`` numbers the
    basic tokenizer's words (each punctuation character and CJK ideograph is one)."""

    token: str
    start: int
    end: int
    word: int


def token_spans(tok: BertTokenizer, text: str) -> list[TokenSpan]:
    """The Python path of ``tokenize``, keeping for every character the position in ``text`` of
    the character it came from (cleaning, CJK spacing and lower-casing drop or multiply
    characters, so positions are carried along rather than recomputed)."""
    chars: list[tuple[str, int]] = []            # the cleaned text, char by char, with origins
    for i, char in enumerate(text):
        entry = tok.basic_tokenizer._clean[ord(char)] if tok.do_basic_tokenize else ord(char)
        if entry is None:
            continue
        chars.extend((c, i) for c in (chr(entry) if isinstance(entry, int) else entry))
    spans: list[TokenSpan] = []
    words = 0
    for chunk in _whitespace_chunks(chars):
        chunk_text = "".join(c for c, _ in chunk)
        if not tok.do_basic_tokenize:
            pieces = [(chunk_text, [i for _, i in chunk])]
        else:
            pieces = _basic_words(tok.basic_tokenizer, chunk_text, [i for _, i in chunk])
        for word, origins in pieces:
            start = 0
            word_pieces = tok.wordpiece_tokenizer.word_pieces(word)
            for piece in word_pieces:
                # [UNK] stands for the whole word; '##' is not in the text
                length = len(word) if len(word_pieces) == 1 else len(piece) - 2 * (start > 0)
                spans.append(TokenSpan(piece, origins[start], origins[start + length - 1] + 1, words))
                start += length
            words += 1
    return spans


def _whitespace_chunks(chars: list[tuple[str, int]]) -> Iterable[list[tuple[str, int]]]:
    """Runs of non-space characters (``str.split()``'s notion of space)."""
    run: list[tuple[str, int]] = []
    for item in chars:
        if item[0].isspace():
            if run:
                yield run
            run = []
        else:
            run.append(item)
    if run:
        yield run


def _basic_words(basic: BasicTokenizer, chunk: str, origins: list[int]) -> list[tuple[str, list[int]]]:
    """``basic.split_chunk(chunk)`` with, for each character of each word, its origin."""
    expected = basic.split_chunk(chunk)
    if chunk in basic._never:
        return [(chunk, origins)]
    normal, normal_origins = chunk, origins
    if basic.do_lower_case:
        lowered = chunk.lower()   # whole-chunk lowering: Python's final-sigma rule needs context
        normal, normal_origins, at = "", [], 0
        for char, origin in zip(chunk, origins):
            piece = lowered[at:at + len(char.lower())]
            at += len(piece)
            if not chunk.isascii():
                piece = unicodedata.normalize("NFD", piece).translate(_MARKS)
            normal += piece
            normal_origins += [origin] * len(piece)
    words: list[tuple[str, list[int]]] = []
    current, current_origins = "", []
    for char, origin in zip(normal, normal_origins):
        if _is_punctuation(char):
            if current:
                words.append((current, current_origins))
            words.append((char, [origin]))
            current, current_origins = "", []
        else:
            current += char
            current_origins.append(origin)
    if current:
        words.append((current, current_origins))
    if [w for w, _ in words] != expected:
        # Normalising char by char differs from normalising the chunk (canonical reordering of
        # combining marks): each word gets the span of the whole chunk.
        return [(w, [origins[0]] * (len(w) - 1) + [origins[-1]]) for w in expected]
    return words
