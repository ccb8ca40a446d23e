"""Google's two tokenization stages and the module functions of its ``tokenization.py``.

The basic stage cleans the text, spaces out CJK ideographs, lower-cases and strips accents,
and splits off punctuation; the WordPiece stage cuts each word into vocabulary pieces. Both
classify characters with the interpreter's ``unicodedata`` (as 0.6.2 and Google do), memoised
in ``str.translate`` tables so that each step is one C call per text or word, and both cache
their result per whitespace-delimited chunk. ``bert_hub.tokenization`` builds the end-to-end
tokenizers on them and re-exports every name here (the drop-in module).
"""
from __future__ import annotations

import collections
import functools
import os
import unicodedata
from collections.abc import Iterable, Sequence

from .errors import AccessDeniedError, EntryNotFoundError, InvalidInputError, UnknownTokenError

SPECIAL_TOKENS = ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")
# What the cleaning step drops besides NUL and U+FFFD: Unicode categories counted as control.
CONTROLS_062 = ("Cc", "Cf", "Cn", "Co", "Cs")  # every C*: 0.6.2 (and Google's 2018 release)
CONTROLS_GOOGLE = ("Cc", "Cf")                # Google's current tokenization.py: keeps
                                              # unassigned, private-use and surrogate code points
_CACHE_ENTRIES = 1 << 16  # distinct words remembered per tokenizer (cleared when full)
_CACHE_MAX_CHARS = 64  # longer chunks are rare; caching them would only hold memory

# Google's "Chinese character" ranges (CJK Unified Ideographs and extensions, compatibility).
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


# --- character classes (Google's definitions, on the interpreter's unicodedata) -------------

def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def _is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return, and Unicode category Zs."""
    return char in (" ", "\t", "\n", "\r") or unicodedata.category(char) == "Zs"


def _is_control(char: str, categories: Sequence[str] = CONTROLS_062) -> bool:
    """A character the cleaning step drops: one of ``categories`` (0.6.2's: every C*), except
    tab, newline and carriage return, which count as whitespace."""
    return char not in ("\t", "\n", "\r") and unicodedata.category(char) in categories


def _is_punctuation(char: str) -> bool:
    """All non-alphanumeric printable ASCII, plus Unicode category P*."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _clean_entry(cp: int, controls: Sequence[str]):
    """What Google's _clean_text + _tokenize_chinese_chars make of one code point."""
    char = chr(cp)
    if cp == 0 or cp == 0xFFFD or _is_control(char, controls):
        return None  # NUL, replacement character, controls: dropped
    if _is_whitespace(char):
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


@functools.lru_cache(maxsize=None)
def clean_table(controls: tuple[str, ...] = CONTROLS_062) -> _CharTable:
    """The cleaning + CJK table for one set of control categories (shared by tokenizers)."""
    return _CharTable(functools.partial(_clean_entry, controls=controls))


_PUNCT = _CharTable(_punct_entry)
_MARKS = _CharTable(_mark_entry)


def whitespace_tokenize(text: str) -> list[str]:
    """Split on any whitespace, as Google's tokenizer does (``str.split``)."""
    return text.split()


def convert_to_unicode(text) -> str:
    """``text`` as a str: a str as it is, bytes decoded as UTF-8 (invalid bytes dropped, as
    Google's does)."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise InvalidInputError(f"text must be a str or UTF-8 bytes, got {type(text).__name__}")


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
    except FileNotFoundError:     # removed since the check above (`bert-hub cache rm`)
        raise EntryNotFoundError(
            f"the vocabulary file {vocab_file!r} was removed while it was being read; load the "
            "tokenizer again") from None
    except PermissionError as exc:
        raise AccessDeniedError(
            f"the vocabulary file {vocab_file!r} cannot be read ({exc.strerror}); check its "
            "permissions") from None
    except OSError as exc:
        raise EntryNotFoundError(
            f"the vocabulary file {vocab_file!r} cannot be read ({exc.strerror or exc}); pass "
            "the path of a readable BERT vocab.txt") from None
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


def convert_by_vocab(vocab, items) -> list:
    """Each item looked up in ``vocab`` (tokens -> ids with a vocab, ids -> tokens with its
    inverse); an item it lacks is an ``UnknownTokenError`` (a ``KeyError``, as in Google's)."""
    try:
        return [vocab[item] for item in items]
    except KeyError as exc:
        raise UnknownTokenError(
            f"{exc.args[0]!r} is not in the vocabulary ({len(vocab)} entries): tokenize text "
            "first (unknown words become [UNK]), and use ids made with this vocabulary") from None
    except TypeError:  # an unhashable item, e.g. a nested list
        raise InvalidInputError(
            f"items must be a flat list of tokens (str) or ids (int), got {items!r:.80}") from None


def convert_tokens_to_ids(vocab, tokens) -> list[int]:
    """Google's module function: ids of ``tokens`` in ``vocab`` (as ``load_vocab`` returns)."""
    return convert_by_vocab(vocab, tokens)


def convert_ids_to_tokens(inv_vocab, ids) -> list[str]:
    """Google's module function: tokens of ``ids`` in ``inv_vocab`` ({id: token})."""
    return convert_by_vocab(inv_vocab, ids)


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

    ``never_split`` tokens are kept whole when they stand alone between whitespace (0.6.2).
    ``control_categories``: the Unicode categories the cleaning drops (0.6.2's: every C*).
    Google's current tokenizer is ``never_split=(), control_categories=CONTROLS_GOOGLE``.
    """

    def __init__(self, do_lower_case: bool = True, never_split: Iterable[str] = SPECIAL_TOKENS,
                 control_categories: Iterable[str] = CONTROLS_062):
        self.do_lower_case = do_lower_case
        self.never_split = tuple(never_split)
        self.control_categories = tuple(control_categories)
        unknown = set(self.control_categories).difference(CONTROLS_062)
        if unknown:
            raise InvalidInputError(
                f"control_categories may hold only {', '.join(CONTROLS_062)}, got "
                f"{sorted(unknown)}; use CONTROLS_062 (0.6.2) or CONTROLS_GOOGLE (Google)")
        self._clean = clean_table(tuple(sorted(set(self.control_categories))))
        self._never = frozenset(self.never_split)
        self._cache = _BoundedCache()

    def clean(self, text: str) -> str:
        """Drop control characters, map whitespace to ' ', put spaces around CJK characters."""
        return text.translate(self._clean)

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
        for chunk in text.translate(self._clean).split():
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
