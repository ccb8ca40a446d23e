"""BERT's WordPiece tokenizer: Google's 2018 algorithm, token for token, only faster.

The output equals pytorch-pretrained-bert 0.6.2's ``BertTokenizer`` (Google's tokenizer plus
``never_split`` for standalone special tokens). The speed comes from doing the same work in C
where Python allows it, and once per distinct word instead of once per occurrence:

- character classes are looked up in ``unicodedata`` (the interpreter's Unicode version, the one
  0.6.2 uses) and memoised in ``str.translate`` tables, so cleaning, CJK spacing, accent
  stripping and punctuation splitting are each one C call per text or word;
- everything after the whitespace split is a pure function of one whitespace-delimited chunk, so
  its word pieces are cached per chunk in a bounded dict;
- WordPiece never tries a candidate longer than the longest vocabulary entry.

``use_fast=True`` hands texts to Rust ``tokenizers`` (pip install bert_hub[fast]). Rust differs
from Google on a few inputs (a literal ``[CLS]``, Greek capital sigma, some unassigned or newer
code points), so every text is screened first: it goes to Rust only if each of its distinct
characters was checked to normalise and split identically in both, and it holds no ``never_split``
token and no capital sigma; any other text takes the Python path. Either way the output is the
same.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import tempfile
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from .errors import (
    EntryNotFoundError,
    InvalidInputError,
    MissingDependencyError,
    UnknownTokenError,
)

logger = logging.getLogger(__name__)

VOCAB_NAME = "vocab.txt"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"  # same name and keys as Hugging Face folders
SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")
_NO_MAX_LEN = int(1e12)  # 0.6.2's "no limit"
_CACHE_ENTRIES = 1 << 16  # distinct words remembered per tokenizer (cleared when full)
_CACHE_MAX_CHARS = 64  # longer chunks are rare; caching them would only hold memory
_ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")

# Google's "Chinese character" ranges (CJK Unified Ideographs and extensions, compatibility).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


# --- character classes (Google's definitions, on the interpreter's unicodedata) -------------

def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_punctuation(char: str) -> bool:
    """All non-alphanumeric printable ASCII, plus Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _clean_entry(cp: int):
    """What Google's _clean_text + _tokenize_chinese_chars make of one code point."""
    char = chr(cp)
    if char in "\t\n\r":
        return " "
    category = unicodedata.category(char)
    if cp == 0 or cp == 0xFFFD or category.startswith("C"):
        return None  # NUL, replacement character, control/format/unassigned/private: dropped
    if char == " " or category == "Zs":
        return " "
    if _is_cjk(cp):
        return f" {char} "
    return cp


def _punct_entry(cp: int):
    char = chr(cp)
    return f" {char} " if _is_punctuation(char) else cp


def _mark_entry(cp: int):
    return None if unicodedata.category(chr(cp)) == "Mn" else cp


class _CharTable(dict):
    """A ``str.translate`` table that computes each code point's entry on first sight."""

    __slots__ = ("_entry",)

    def __init__(self, entry):
        super().__init__()
        self._entry = entry

    def __missing__(self, cp):
        value = self._entry(cp)
        self[cp] = value
        return value


_CLEAN = _CharTable(_clean_entry)
_PUNCT = _CharTable(_punct_entry)
_MARKS = _CharTable(_mark_entry)


def whitespace_tokenize(text: str) -> list[str]:
    """Split on any whitespace, as Google's tokenizer does (``str.split``)."""
    return text.split()


# --- vocabulary -------------------------------------------------------------------------------

def load_vocab(vocab_file: str) -> collections.OrderedDict[str, int]:
    """One token per line, id = line number; each line stripped (a repeated token keeps its
    last id), as in Google's and 0.6.2's ``load_vocab``."""
    vocab_file = os.fspath(vocab_file)
    if not os.path.isfile(vocab_file):
        raise EntryNotFoundError(
            f"no vocabulary file at {vocab_file!r}: pass the path of a BERT vocab.txt, or use "
            "BertTokenizer.from_pretrained(NAME_OR_FOLDER)")
    # Text mode reads '\r', '\n' and '\r\n' as line ends, exactly like 0.6.2's readline loop.
    # utf-8-sig drops a byte-order mark, which would otherwise be glued to the first token
    # ('\ufeff[PAD]') and hide it; the ids are the same either way.
    try:
        with open(vocab_file, "r", encoding="utf-8-sig") as reader:
            lines = reader.read().split("\n")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"the vocabulary file {vocab_file!r} is not UTF-8 ({exc.reason} at byte {exc.start})"
            ": BERT vocab.txt files are UTF-8; re-save it as UTF-8") from None
    if lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise InvalidInputError(
            f"the vocabulary file {vocab_file!r} is empty: pass a BERT vocab.txt "
            "(one word piece per line)")
    vocab: collections.OrderedDict[str, int] = collections.OrderedDict()
    for index, line in enumerate(lines):
        vocab[line.strip()] = index
    return vocab


def _vocab_version(vocab) -> tuple[int, int]:
    """Changes when the vocab object is replaced or resized (users of 0.6.2 edit it in place)."""
    return id(vocab), len(vocab)


class _BoundedCache(dict):
    """word -> tuple of pieces; forgets everything when full (cheaper than LRU bookkeeping)."""

    def remember(self, key, value):
        if len(key) <= _CACHE_MAX_CHARS:
            if len(self) >= _CACHE_ENTRIES:
                self.clear()
            self[key] = value
        return value


# --- the two stages ---------------------------------------------------------------------------

class BasicTokenizer:
    """Text cleaning, CJK splitting, lower-casing with accent stripping, punctuation splitting.

    ``never_split`` tokens are kept whole when they stand alone between whitespace (0.6.2);
    ``never_split=()`` is Google's exact behaviour.
    """

    def __init__(self, do_lower_case: bool = True, never_split: Iterable[str] = SPECIAL_TOKENS):
        self.do_lower_case = do_lower_case
        self.never_split = tuple(never_split)
        self._never = frozenset(self.never_split)
        self._cache = _BoundedCache()

    @staticmethod
    def clean(text: str) -> str:
        """Drop control characters, map whitespace to ' ', put spaces around CJK characters."""
        return text.translate(_CLEAN)

    def split_chunk(self, chunk: str) -> list[str]:
        """Words of one whitespace-free chunk of cleaned text (lower-case, strip, punctuation)."""
        if self.do_lower_case and chunk not in self._never:
            chunk = chunk.lower()  # per chunk: Python's final-sigma rule sees the same context
            if not chunk.isascii():
                chunk = unicodedata.normalize("NFD", chunk).translate(_MARKS)
        if chunk in self._never:
            return [chunk] if chunk else []
        return chunk.translate(_PUNCT).split()

    def tokenize(self, text: str) -> list[str]:
        _check_text(text, "text")
        cache = self._cache
        out: list[str] = []
        for chunk in text.translate(_CLEAN).split():
            words = cache.get(chunk)
            if words is None:
                words = cache.remember(chunk, tuple(self.split_chunk(chunk)))
            out += words
        return out


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece; a word longer than ``max_input_chars_per_word``
    or with no segmentation becomes ``unk_token``."""

    def __init__(self, vocab: dict[str, int], unk_token: str = "[UNK]",
                 max_input_chars_per_word: int = 100):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        self._cache = _BoundedCache()
        self._seen: tuple[int, int] | None = None

    def _refresh(self) -> None:
        """Longest candidate worth trying at a word's start and after it ('##' pieces)."""
        self._longest_first = max((len(t) for t in self.vocab), default=0)
        self._longest_next = max((len(t) - 2 for t in self.vocab if t.startswith("##")), default=0)
        self._cache.clear()
        self._seen = _vocab_version(self.vocab)

    def word_pieces(self, word: str) -> list[str]:
        """Pieces of one whitespace-free word."""
        if self._seen != _vocab_version(self.vocab):
            self._refresh()
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [self.unk_token]
        vocab = self.vocab
        pieces = []
        start = 0
        while start < n:
            if start == 0:
                end = min(n, self._longest_first)
                while end > 0 and word[:end] not in vocab:
                    end -= 1
                piece = word[:end]
            else:
                end = min(n, start + self._longest_next)
                piece = ""
                while end > start:
                    piece = "##" + word[start:end]
                    if piece in vocab:
                        break
                    end -= 1
            if end == start:
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of whitespace-separated words (already basic-tokenized)."""
        _check_text(text, "text")
        if self._seen != _vocab_version(self.vocab):
            self._refresh()
        cache = self._cache
        out: list[str] = []
        for word in text.split():
            pieces = cache.get(word)
            if pieces is None:
                pieces = cache.remember(word, tuple(self.word_pieces(word)))
            out += pieces
        return out


def _check_text(text, what: str) -> None:
    if not isinstance(text, str):
        hint = " (decode it first: text.decode('utf-8'))" if isinstance(text, bytes) else ""
        raise InvalidInputError(f"{what} must be a str, got {type(text).__name__}{hint}")


# --- the optional Rust path -------------------------------------------------------------------

def _import_tokenizers():
    try:
        import tokenizers
    except ImportError as exc:
        raise MissingDependencyError(
            "use_fast=True needs the Rust `tokenizers` package, which is not installed: "
            "pip install bert_hub[fast] (or pass use_fast=False for the pure-Python tokenizer, "
            "whose output is the same)") from exc
    return tokenizers


class _RustPath:
    """Rust ``tokenizers`` with Google's settings, used only on texts it provably agrees on.

    A character is trusted once the normalised, pre-split words of a few short probes around it
    (alone, doubled, after and before a letter) equal the Python path's. Python's only
    context-dependent rule, the final sigma, is excluded outright, and so is any text holding
    a ``never_split`` token.
    """

    _PROBES = ("{c}", "{c}{c}", "x{c}", "{c}x", "x{c}x", "X{c}X")

    def __init__(self, basic: BasicTokenizer, vocab: dict[str, int], unk_token: str,
                 max_input_chars_per_word: int):
        tokenizers = _import_tokenizers()
        from tokenizers import models, normalizers, pre_tokenizers

        tok = tokenizers.Tokenizer(models.WordPiece(
            vocab=dict(vocab), unk_token=unk_token,
            max_input_chars_per_word=max_input_chars_per_word))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True,
            strip_accents=basic.do_lower_case, lowercase=basic.do_lower_case)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self._tok = tok
        self.id_to_token = {i: t for t, i in vocab.items()}  # encode_batch_fast omits tokens
        self._basic = basic
        self._never = tuple(t for t in basic.never_split if t)
        self._trusted: set = set()
        self._distrusted: set = {"\u03a3"} if basic.do_lower_case else set()

    def _agrees(self, char: str) -> bool:
        for probe in self._PROBES:
            text = probe.format(c=char)
            try:
                normalised = self._tok.normalizer.normalize_str(text)
                rust = [w for w, _ in self._tok.pre_tokenizer.pre_tokenize_str(normalised)]
            except (UnicodeError, TypeError, ValueError):  # e.g. a lone surrogate (no UTF-8)
                return False
            if rust != self._basic.tokenize(text):
                return False
        return True

    def accepts(self, text: str) -> bool:
        """True when Rust's output for ``text`` is known to equal the Python path's."""
        for token in self._never:
            if token in text:
                return False
        unseen = set(text).difference(self._trusted)
        if not unseen:
            return True
        if not self._distrusted.isdisjoint(unseen):
            return False
        for char in unseen:
            if self._agrees(char):
                self._trusted.add(char)
            else:
                self._distrusted.add(char)
                return False
        return True

    def encodings(self, texts: list[str]):
        """Rust encodings (``.tokens``, ``.ids``) of texts, in parallel; without character
        offsets where this tokenizers version can skip them (encode_batch_fast)."""
        encode = getattr(self._tok, "encode_batch_fast", self._tok.encode_batch)
        return encode(texts, add_special_tokens=False)


# --- the public tokenizer ---------------------------------------------------------------------

class BertTokenizer:
    """End-to-end BERT tokenization: basic tokenization, then WordPiece; ids; model inputs.

    Args:
        vocab_file: a vocab.txt (one word piece per line; line number = id).
        do_lower_case: lower-case and strip accents (uncased models); False for cased models.
        max_len: longest id sequence the model takes; longer sequences log a warning in
            ``convert_tokens_to_ids`` and are truncated to it by ``encode`` by default.
        do_basic_tokenize: False skips cleaning/splitting and runs WordPiece on whitespace words.
        never_split: tokens kept whole when they stand alone; ``()`` is Google's exact tokenizer.
        use_fast: route texts through Rust ``tokenizers`` where that gives identical output.
    """

    def __init__(self, vocab_file: str, do_lower_case: bool = True, max_len: int | None = None,
                 do_basic_tokenize: bool = True, never_split: Iterable[str] = SPECIAL_TOKENS,
                 use_fast: bool = False):
        self.vocab_file = os.fspath(vocab_file)
        self.vocab = load_vocab(self.vocab_file)
        self.ids_to_tokens = collections.OrderedDict((i, t) for t, i in self.vocab.items())
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)
                                    or max_len < 2):
            raise InvalidInputError(
                f"max_len must be an int >= 2 (room for [CLS] and [SEP]) or None, got {max_len!r}")
        self.max_len = max_len if max_len is not None else _NO_MAX_LEN
        self.do_lower_case = do_lower_case
        self.do_basic_tokenize = do_basic_tokenize
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case, never_split=never_split)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        self.use_fast = bool(use_fast)
        self._cache = _BoundedCache()
        self._rust: _RustPath | None = None
        self._seen: tuple[int, int] | None = None
        if self.use_fast:
            if not do_basic_tokenize:
                raise InvalidInputError(
                    "use_fast=True needs do_basic_tokenize=True (the Rust path always runs "
                    "basic tokenization); pass use_fast=False to tokenize pre-split text")
            _import_tokenizers()  # fail now, not on the first text
            if self.wordpiece_tokenizer.unk_token not in self.vocab:
                warnings.warn(
                    f"the vocabulary {self.vocab_file!r} has no "
                    f"{self.wordpiece_tokenizer.unk_token!r} token, which Rust tokenizers "
                    "requires: using the pure-Python path (same output)", stacklevel=2)
                self.use_fast = False
        self._refresh()

    def _refresh(self) -> None:
        """(Re)build what depends on the vocab: caches and the Rust tokenizer."""
        self._cache.clear()
        wp = self.wordpiece_tokenizer
        if self.use_fast:
            self._rust = _RustPath(self.basic_tokenizer, self.vocab, wp.unk_token,
                                   wp.max_input_chars_per_word)
        self._seen = _vocab_version(self.vocab)

    # -- tokens --------------------------------------------------------------------------------

    def _chunk_pieces(self, chunk: str) -> tuple[str, ...]:
        word_pieces = self.wordpiece_tokenizer.word_pieces
        pieces: list[str] = []
        for word in self.basic_tokenizer.split_chunk(chunk):
            pieces += word_pieces(word)
        return self._cache.remember(chunk, tuple(pieces))

    def _python_tokenize(self, text: str) -> list[str]:
        if not self.do_basic_tokenize:
            return self.wordpiece_tokenizer.tokenize(text)
        cache = self._cache
        out: list[str] = []
        for chunk in text.translate(_CLEAN).split():
            pieces = cache.get(chunk)
            if pieces is None:
                pieces = self._chunk_pieces(chunk)
            out += pieces
        return out

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of ``text``, e.g. 'unaffable' -> ['un', '##aff', '##able']."""
        _check_text(text, "text")
        if self._seen != _vocab_version(self.vocab):
            self._refresh()
        if self._rust is not None and self._rust.accepts(text):
            lookup = self._rust.id_to_token
            return [lookup[i] for i in self._rust.encodings([text])[0].ids]
        return self._python_tokenize(text)

    def tokenize_with_offsets(self, text: str) -> list[TokenSpan]:
        """``tokenize(text)`` with, for each token, the span ``text[start:end]`` it came from and
        the index of its word (whitespace- and punctuation-delimited), as
        ``TokenSpan(token, start, end, word)``."""
        _check_text(text, "text")
        if self._seen != _vocab_version(self.vocab):
            self._refresh()
        return _token_spans(self, text)

    def _ids_batch(self, texts: Sequence[str], what: str) -> list[list[int]]:
        """Ids of each text (Rust for the texts it agrees on, Python for the rest)."""
        for text in texts:
            _check_text(text, what)
        if self._seen != _vocab_version(self.vocab):
            self._refresh()
        out: list[list[int] | None] = [None] * len(texts)
        rust = self._rust
        if rust is not None:
            chosen = [i for i, text in enumerate(texts) if rust.accepts(text)]
            if chosen:
                for i, encoding in zip(chosen, rust.encodings([texts[i] for i in chosen])):
                    out[i] = encoding.ids
        for i, ids in enumerate(out):
            if ids is None:
                out[i] = self._convert(self._python_tokenize(texts[i]))
        return out  # type: ignore[return-value]

    # -- ids -----------------------------------------------------------------------------------

    def _convert(self, tokens: Iterable[str]) -> list[int]:
        vocab = self.vocab
        try:
            return [vocab[token] for token in tokens]
        except (KeyError, TypeError):
            bad = next(t for t in tokens if not isinstance(t, str) or t not in vocab)
        if not isinstance(bad, str):
            raise InvalidInputError(
                f"tokens must be strings, got {type(bad).__name__} {bad!r}; to turn ids into "
                "tokens use convert_ids_to_tokens()")
        raise UnknownTokenError(
            f"token {bad!r} is not in the vocabulary {self.vocab_file!r}: convert the output "
            "of tokenize() (which maps unknown words to [UNK]), or add the token to vocab.txt")

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of tokens; warns (as 0.6.2 does) when longer than ``max_len``."""
        if isinstance(tokens, str):
            raise InvalidInputError(
                "convert_tokens_to_ids() takes a list of tokens, got one str; wrap it in a "
                "list, or call tokenize() first")
        ids = self._convert(list(tokens))
        if len(ids) > self.max_len:
            logger.warning(
                "Token indices sequence length is longer than the specified maximum sequence "
                "length for this BERT model (%d > %d): running it through BERT will fail with an "
                "index error. Truncate it, e.g. tokenizer.encode(text, max_length=%d).",
                len(ids), self.max_len, self.max_len)
        return ids

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ids (ints, or anything ``int()`` accepts, e.g. a 1-D tensor)."""
        lookup = self.ids_to_tokens
        tokens = []
        for i in ids:
            try:
                tokens.append(lookup[int(i)])
            except (KeyError, TypeError, ValueError):
                raise UnknownTokenError(
                    f"id {i!r} is not in the vocabulary {self.vocab_file!r} "
                    f"(ids 0..{len(self.vocab) - 1}); were these ids made with another "
                    "vocabulary?") from None
        return tokens

    # -- model inputs --------------------------------------------------------------------------

    def _special_id(self, token: str) -> int:
        try:
            return self.vocab[token]
        except KeyError:
            raise UnknownTokenError(
                f"the vocabulary {self.vocab_file!r} has no {token!r} token, which encode() "
                "needs for BERT inputs; use a BERT vocab.txt that lists [CLS], [SEP] and "
                "[PAD]") from None

    def _limit(self, max_length: int | None, pair: bool) -> int | None:
        least = 3 if pair else 2
        if max_length is None:
            if self.max_len >= _NO_MAX_LEN:
                return None
            if self.max_len < least:
                raise InvalidInputError(
                    f"this tokenizer's max_len ({self.max_len}) leaves no room for a pair's "
                    "[CLS] and two [SEP]; pass max_length=N (N >= 3)")
            return self.max_len
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < least:
            raise InvalidInputError(
                f"max_length must be an int >= {least} (room for [CLS] and "
                f"{'two [SEP]' if pair else '[SEP]'}) or None, got {max_length!r}")
        return max_length

    def _assemble(self, a: list[int], b: list[int] | None, limit: int | None,
                  truncation: bool) -> dict[str, list[int]]:
        """Google's layout: [CLS] a [SEP] (b [SEP]); pairs truncated longest-first."""
        specials = 2 if b is None else 3
        la, lb = len(a), (0 if b is None else len(b))
        if limit is not None and la + lb + specials > limit:
            if not truncation:
                raise InvalidInputError(
                    f"the encoded sequence has {la + lb + specials} tokens, more than "
                    f"max_length={limit}; pass truncation=True or a larger max_length")
            la, lb = _truncated_lengths(la, lb, limit - specials)
        cls, sep = self._special_id("[CLS]"), self._special_id("[SEP]")
        input_ids = [cls] + a[:la] + [sep]
        token_type_ids = [0] * len(input_ids)
        if b is not None:
            input_ids += b[:lb] + [sep]
            token_type_ids += [1] * (lb + 1)
        return {"input_ids": input_ids, "token_type_ids": token_type_ids,
                "attention_mask": [1] * len(input_ids)}

    def _pad(self, features: dict[str, list[int]], length: int) -> None:
        missing = length - len(features["input_ids"])
        if missing > 0:
            features["input_ids"] += [self._special_id("[PAD]")] * missing
            features["token_type_ids"] += [0] * missing
            features["attention_mask"] += [0] * missing

    def encode(self, text: str, text_pair: str | None = None, max_length: int | None = None,
               truncation: bool = True, padding: bool = False) -> dict[str, list[int]]:
        """BERT inputs for one text or pair: ``input_ids``, ``token_type_ids``,
        ``attention_mask`` (lists of ints, length <= max_length).

        ``max_length`` defaults to ``max_len`` (from the model registry) when one is set.
        ``padding=True`` pads with [PAD] to ``max_length`` (mask 0).
        """
        _check_text(text, "text")
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        texts = [text] if text_pair is None else [text, text_pair]
        limit = self._limit(max_length, text_pair is not None)
        if padding and limit is None:
            raise InvalidInputError(
                "padding=True pads to max_length, but no max_length is given and this "
                "tokenizer has no max_len; pass max_length=N")
        ids = self._ids_batch(texts, "text")
        features = self._assemble(ids[0], ids[1] if text_pair is not None else None, limit,
                                  truncation)
        if padding:
            self._pad(features, limit)
        return features

    def encode_batch(self, texts: Sequence[str], text_pairs: Sequence[str] | None = None,
                     max_length: int | None = None, truncation: bool = True,
                     padding: bool | str = True, return_tensors: str | None = "pt"):
        """BERT inputs for many texts (or pairs), padded into rectangles.

        padding: True / "longest" pads to the longest in the batch, "max_length" to
        ``max_length``, False not at all. return_tensors: "pt" (torch.long, shape
        (batch, length)), "np" (int64), or None (lists of lists).
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise InvalidInputError(
                f"texts must be a list of str, got {type(texts).__name__}; for one text use "
                "encode(text)")
        if text_pairs is not None and (isinstance(text_pairs, str)
                                       or not isinstance(text_pairs, Sequence)
                                       or len(text_pairs) != len(texts)):
            got = len(text_pairs) if isinstance(text_pairs, Sequence) else type(text_pairs).__name__
            raise InvalidInputError(
                f"text_pairs must be a list of str as long as texts ({len(texts)}), got {got}")
        if padding not in (True, False, "longest", "max_length", "do_not_pad"):
            raise InvalidInputError(
                f"padding must be True/'longest', 'max_length' or False, got {padding!r}")
        if return_tensors not in ("pt", "np", None):
            raise InvalidInputError(
                f"return_tensors must be 'pt', 'np' or None, got {return_tensors!r}")
        limit = self._limit(max_length, text_pairs is not None)
        if padding == "max_length" and limit is None:
            raise InvalidInputError(
                "padding='max_length' needs max_length=N (this tokenizer has no max_len)")
        ids_a = self._ids_batch(texts, "texts[i]")
        ids_b = self._ids_batch(text_pairs, "text_pairs[i]") if text_pairs is not None else None
        rows = [self._assemble(a, None if ids_b is None else ids_b[i], limit, truncation)
                for i, a in enumerate(ids_a)]
        if padding in (True, "longest", "max_length"):
            width = limit if padding == "max_length" else max((len(r["input_ids"]) for r in rows),
                                                              default=0)
            for row in rows:
                self._pad(row, width)
        batch = {key: [row[key] for row in rows]
                 for key in ("input_ids", "token_type_ids", "attention_mask")}
        if return_tensors is None:
            return batch
        lengths = {len(r) for r in batch["input_ids"]} or {0}
        if len(lengths) > 1:
            raise InvalidInputError(
                f"sequences of different lengths {sorted(lengths)} cannot form one tensor; "
                "pass padding=True, or return_tensors=None for lists")
        if return_tensors == "np":
            import numpy as np
            return {k: np.asarray(v, dtype=np.int64).reshape(len(rows), *lengths)
                    for k, v in batch.items()}
        import torch
        return {k: torch.tensor(v, dtype=torch.long).reshape(len(rows), *lengths)
                for k, v in batch.items()}

    # -- files ---------------------------------------------------------------------------------

    def save_vocabulary(self, vocab_path: str) -> str:
        """Write the vocabulary (to ``vocab_path/vocab.txt`` for a folder); returns the file."""
        vocab_path = os.fspath(vocab_path)
        vocab_file = (os.path.join(vocab_path, VOCAB_NAME) if os.path.isdir(vocab_path)
                      else vocab_path)
        folder = os.path.dirname(os.path.abspath(vocab_file))
        if not os.path.isdir(folder):
            raise EntryNotFoundError(
                f"cannot save the vocabulary to {vocab_file!r}: the folder {folder!r} does not "
                "exist; create it first (os.makedirs)")
        ordered = sorted(self.vocab.items(), key=lambda kv: kv[1])
        if [i for _, i in ordered] != list(range(len(ordered))):
            logger.warning("Saving vocabulary to %s: vocabulary indices are not consecutive; "
                           "ids will shift when it is loaded again. Check that the vocabulary "
                           "is not corrupted.", vocab_file)
        _write_atomically(vocab_file, "".join(token + "\n" for token, _ in ordered))
        return vocab_file

    def save_pretrained(self, folder: str) -> str:
        """``vocab.txt`` and ``tokenizer_config.json`` (do_lower_case, max length), so that
        ``from_pretrained(folder)`` restores this tokenizer; returns the folder."""
        folder = os.fspath(folder)
        os.makedirs(folder, exist_ok=True)
        self.save_vocabulary(folder)
        config = {"do_lower_case": self.do_lower_case}
        if self.max_len < _NO_MAX_LEN:
            config["model_max_length"] = self.max_len
        _write_atomically(os.path.join(folder, TOKENIZER_CONFIG_NAME),
                          json.dumps(config, indent=2) + "\n")
        return folder

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, cache_dir=None,
                        do_lower_case: bool | None = None, max_len: int | None = None,
                        local_files_only: bool = False, force_download: bool = False,
                        use_fast: bool = False, revision: str | None = None, token=None,
                        **kwargs) -> BertTokenizer:
        """From a vocab file, a folder holding vocab.txt, or anything ``bert_hub.hub`` resolves
        (registry name, Google folder or archive, URL, Hugging Face Hub id with ``revision`` /
        ``token``). ``do_lower_case`` defaults to the registry's (else the tokenizer_config.json's,
        else True as in 0.6.2)."""
        name = os.path.expanduser(os.fspath(pretrained_model_name_or_path))
        known_lower: bool | None = None
        known_max_len: int | None = None
        if os.path.isdir(name) and not os.path.isfile(os.path.join(name, VOCAB_NAME)) \
                and not _has_model_files(name):
            raise EntryNotFoundError(
                f"the folder {name!r} has no {VOCAB_NAME}: pass a folder holding a BERT "
                f"{VOCAB_NAME}, or the path of the vocabulary file itself")
        if os.path.isfile(name) and not name.endswith(_ARCHIVE_SUFFIXES):
            vocab_file = name
        elif os.path.isdir(name) and os.path.isfile(os.path.join(name, VOCAB_NAME)):
            vocab_file = os.path.join(name, VOCAB_NAME)
            known_lower, known_max_len = _read_tokenizer_config(name)
        elif _looks_like_path(name) and not os.path.exists(name):
            raise EntryNotFoundError(
                f"no file or folder at {name!r}: pass an existing vocab.txt, a folder holding "
                "one, or a model name from the registry (bert-hub list)")
        else:
            from . import hub

            files = hub.resolve_model(name, cache_dir=cache_dir, force_download=force_download,
                                      local_files_only=local_files_only, need_weights=False,
                                      revision=revision, token=token)
            vocab_file = getattr(files, "vocab_file", None)
            if vocab_file is None or not os.path.isfile(vocab_file):
                raise EntryNotFoundError(
                    f"{pretrained_model_name_or_path!r} resolved to files without a vocabulary "
                    f"(expected {vocab_file or VOCAB_NAME!r}): it is a model without a "
                    "tokenizer; pass the path of its vocab.txt")
            known_lower = getattr(files, "do_lower_case", None)
            known_max_len = getattr(files, "max_len", None)
        do_lower_case = _choose_lower_case(name, do_lower_case, known_lower)
        if known_max_len is not None:
            max_len = known_max_len if max_len is None else min(max_len, known_max_len)
        return cls(vocab_file, do_lower_case=do_lower_case, max_len=max_len, use_fast=use_fast,
                   **kwargs)


# --- helpers ----------------------------------------------------------------------------------

def _truncated_lengths(la: int, lb: int, budget: int) -> tuple[int, int]:
    """Lengths after Google's _truncate_seq_pair: drop one token at a time from the longer
    sequence (from the second on a tie) until both fit in ``budget``."""
    excess = la + lb - budget
    if excess <= 0:
        return la, lb
    gap = min(abs(la - lb), excess)
    if la > lb:
        la -= gap
    else:
        lb -= gap
    excess -= gap  # now la == lb, or nothing left to drop
    return la - excess // 2, lb - (excess + 1) // 2


def _write_atomically(path: str, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _has_model_files(folder: str) -> bool:
    """A model folder the hub might complete (e.g. a Google folder is always read by hub)."""
    return any(os.path.exists(os.path.join(folder, f))
               for f in ("bert_config.json", "config.json"))


def _looks_like_path(name: str) -> bool:
    return "://" not in name and (os.path.isabs(name) or name.startswith((".", "~"))
                                  or name.endswith((".txt",) + _ARCHIVE_SUFFIXES))


def _read_tokenizer_config(folder: str) -> tuple[bool | None, int | None]:
    """do_lower_case and model_max_length from a tokenizer_config.json, when present."""
    path = os.path.join(folder, TOKENIZER_CONFIG_NAME)
    if not os.path.isfile(path):
        return None, None
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except ValueError as exc:
        raise InvalidInputError(
            f"{path!r} is not valid JSON ({exc}); fix or delete it") from None
    lower = config.get("do_lower_case")
    length = config.get("model_max_length")
    return (lower if isinstance(lower, bool) else None,
            length if isinstance(length, int) and 2 <= length < _NO_MAX_LEN else None)


def _looks_cased(name: str) -> bool:
    tail = os.path.basename(os.path.normpath(name))
    if tail == VOCAB_NAME or tail.endswith(".txt"):
        tail = os.path.basename(os.path.dirname(os.path.normpath(name))) + "/" + tail
    tail = tail.lower()
    return "cased" in tail and "uncased" not in tail


def _choose_lower_case(name: str, given: bool | None, known: bool | None) -> bool:
    if given is not None:
        if known is not None and given != known:
            warnings.warn(
                f"{name!r} is {'an uncased' if known else 'a cased'} model but do_lower_case="
                f"{given} was passed: its vocabulary expects do_lower_case={known}", stacklevel=3)
        return given
    if known is not None:
        return known
    if _looks_cased(name):
        warnings.warn(
            f"{name!r} looks like a cased model, but nothing says so, so it is lower-cased "
            "(0.6.2's default): pass do_lower_case=False if it is cased", stacklevel=3)
    return True


# --- character offsets ------------------------------------------------------------------------

class TokenSpan(NamedTuple):
    """A token and the characters ``text[start:end]`` it was made from; ``word`` numbers the
    basic tokenizer's words (each punctuation character and CJK ideograph is one)."""

    token: str
    start: int
    end: int
    word: int


def _token_spans(tok: BertTokenizer, text: str) -> list[TokenSpan]:
    """The Python path of ``tokenize``, keeping for every character the position in ``text`` of
    the character it came from (cleaning, CJK spacing and lower-casing drop or multiply
    characters, so positions are carried along rather than recomputed)."""
    chars: list[tuple[str, int]] = []            # the cleaned text, char by char, with origins
    for i, char in enumerate(text):
        entry = _CLEAN[ord(char)] if tok.do_basic_tokenize else ord(char)
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
