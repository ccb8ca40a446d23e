"""BERT's WordPiece tokenizer: Google's 2018 algorithm, token for token, only faster.

``BertTokenizer``'s output equals pytorch-pretrained-bert 0.6.2's (Google's tokenizer plus
``never_split`` for standalone special tokens); ``FullTokenizer`` is Google's current one. This
is the drop-in module of both: it re-exports the two stages and the module functions, which live
in ``bert_hub.wordpiece``. The speed comes from doing the same work in C where Python allows it,
and once per distinct word instead of once per occurrence:

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
import warnings
from collections.abc import Iterable, Mapping, Sequence

from . import sequence_pairs
from .errors import EntryNotFoundError, InvalidInputError, MissingDependencyError, UnknownTokenError
from .filenames import TOKENIZER_CONFIG_NAME, VOCAB_NAME
from .json_files import read_json
from .wordpiece import (  # noqa: F401  (Google's and 0.6.2's module names, re-exported)
    CONTROLS_062,
    CONTROLS_GOOGLE,
    SPECIAL_TOKENS,
    BasicTokenizer,
    WordpieceTokenizer,
    _BoundedCache,
    _check_text,
    _is_control,
    _is_punctuation,
    _is_whitespace,
    _vocab_version,
    convert_by_vocab,
    convert_ids_to_tokens,
    convert_to_unicode,
    convert_tokens_to_ids,
    load_vocab,
    whitespace_tokenize,
)
from .token_offsets import TokenSpan, token_spans

logger = logging.getLogger(__name__)

_NO_MAX_LEN = int(1e12)  # 0.6.2's "no limit"
GOOGLE_MAX_INPUT_CHARS_PER_WORD = 200  # Google's current WordpieceTokenizer (0.6.2: 100)


# --- the optional Rust path -------------------------------------------------------------------

def require_tokenizers(purpose: str, alternative: str = ""):
    """The Rust ``tokenizers`` package, or a ``MissingDependencyError`` saying what needs it."""
    try:
        import tokenizers
    except ImportError as exc:
        raise MissingDependencyError(
            f"{purpose} needs the Rust `tokenizers` package, which is not installed: "
            f"pip install bert_hub[fast]{alternative}") from exc
    return tokenizers


def _import_tokenizers():
    return require_tokenizers("use_fast=True", " (or pass use_fast=False for the pure-Python "
                              "tokenizer, whose output is the same)")


def rust_wordpiece(vocab: dict[str, int], unk_token: str, *, lowercase: bool,
                   strip_accents: bool | None = None, tokenize_chinese_chars: bool = True,
                   max_input_chars_per_word: int = 100):
    """A Rust ``tokenizers.Tokenizer`` doing BERT's normalisation, pre-split and WordPiece, as
    transformers builds it (``strip_accents=None``: strip when lower-casing). The fast path
    here and the transformers-style tokenizer both run on it (callers check that ``tokenizers``
    is installed first)."""
    import tokenizers
    from tokenizers import models, normalizers, pre_tokenizers

    tok = tokenizers.Tokenizer(models.WordPiece(
        vocab=dict(vocab), unk_token=unk_token, max_input_chars_per_word=max_input_chars_per_word))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=tokenize_chinese_chars,
        strip_accents=lowercase if strip_accents is None else strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return tok


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
        _import_tokenizers()
        self._tok = rust_wordpiece(vocab, unk_token, lowercase=basic.do_lower_case,
                                   max_input_chars_per_word=max_input_chars_per_word)
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
        vocab_file: a vocab.txt (one word piece per line; line number = id), or a mapping of
            word pieces to ids.
        do_lower_case: lower-case and strip accents (uncased models); False for cased models.
        max_len: longest id sequence the model takes; longer sequences log a warning in
            ``convert_tokens_to_ids`` and are truncated to it by ``encode`` by default.
        do_basic_tokenize: False skips cleaning/splitting and runs WordPiece on whitespace words.
        never_split: tokens kept whole when they stand alone (0.6.2); Google's: ``()``.
        use_fast: route texts through Rust ``tokenizers`` where that gives identical output.
        max_input_chars_per_word: longer words become [UNK] (0.6.2: 100; Google's: 200).
        control_categories: Unicode categories the cleaning drops (0.6.2: every C*;
            Google's: ``CONTROLS_GOOGLE``, only Cc and Cf).

    ``FullTokenizer(vocab_file, do_lower_case)`` is Google's tokenizer exactly (all three of
    its settings); the defaults here are 0.6.2's.
    """

    def __init__(self, vocab_file: str, do_lower_case: bool = True, max_len: int | None = None,
                 do_basic_tokenize: bool = True, never_split: Iterable[str] = SPECIAL_TOKENS,
                 use_fast: bool = False, max_input_chars_per_word: int = 100,
                 control_categories: Iterable[str] = CONTROLS_062):
        if isinstance(vocab_file, Mapping):   # token -> id (e.g. read from a tokenizer.json)
            self.vocab_file = "<the vocabulary mapping given>"
            self.vocab = collections.OrderedDict(sorted(vocab_file.items(), key=lambda kv: kv[1]))
        else:
            self.vocab_file = os.fspath(vocab_file)
            self.vocab = load_vocab(self.vocab_file)
        self.ids_to_tokens = collections.OrderedDict((i, t) for t, i in self.vocab.items())
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int)
                                    or max_len < 2):
            raise InvalidInputError(
                f"max_len must be an int >= 2 (room for [CLS] and [SEP]) or None, got {max_len!r}")
        if isinstance(max_input_chars_per_word, bool) or \
                not isinstance(max_input_chars_per_word, int) or max_input_chars_per_word < 1:
            raise InvalidInputError(
                f"max_input_chars_per_word must be an int >= 1 (0.6.2: 100, Google: 200), got "
                f"{max_input_chars_per_word!r}")
        self.max_len = max_len if max_len is not None else _NO_MAX_LEN
        self.do_lower_case = do_lower_case
        self.do_basic_tokenize = do_basic_tokenize
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case, never_split=never_split,
                                              control_categories=control_categories)
        self.wordpiece_tokenizer = WordpieceTokenizer(
            vocab=self.vocab, max_input_chars_per_word=max_input_chars_per_word)
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
        for chunk in self.basic_tokenizer.clean(text).split():
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
        return token_spans(self, text)

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
        """Google's layout: [CLS] a [SEP] (b [SEP]); pairs truncated longest-first; an empty b
        (a second text with no word pieces) cut for as a pair, with no second [SEP]
        (``sequence_pairs``)."""
        length = len(a) + (0 if b is None else len(b)) + sequence_pairs.special_count(b)
        if limit is not None and length > limit and not truncation:
            raise InvalidInputError(
                f"the encoded sequence has {length} tokens, more than max_length={limit}; "
                "pass truncation=True or a larger max_length")
        input_ids, token_type_ids = sequence_pairs.truncate_and_assemble(
            a, b, limit, self._special_id("[CLS]"), self._special_id("[SEP]"))
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
        ``padding=True`` pads with [PAD] to ``max_length`` (mask 0). A ``text_pair`` of "" is
        no pair, and one with no word pieces (whitespace) adds no second segment, as 0.6.2's
        ``run_classifier.py`` builds inputs (``sequence_pairs``).
        """
        _check_text(text, "text")
        if text_pair is not None:
            _check_text(text_pair, "text_pair")
        text_pair = sequence_pairs.second_text(text_pair)       # "" is no pair, as in 0.6.2
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
        """BERT inputs for many texts (or pairs), padded into rectangles; an empty pair is
        treated as :meth:`encode` treats it.

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
        seconds = [None] * len(ids_a) if ids_b is None else [
            None if sequence_pairs.second_text(text) is None else ids
            for text, ids in zip(text_pairs, ids_b)]              # "" is no pair, as in 0.6.2
        rows = [self._assemble(a, b, limit, truncation) for a, b in zip(ids_a, seconds)]
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
        """From anything ``bert_hub.hub.resolve_model`` resolves without weights: a vocab file,
        a folder holding vocab.txt (ours, 0.6.2's, Hugging Face's, Google's), an archive, a URL
        or a registry name, or a Hugging Face Hub id (with ``revision`` / ``token``).
        ``do_lower_case`` defaults to the registry's (else the folder's tokenizer_config.json,
        else True as in 0.6.2); so does ``max_len``."""
        from . import hub

        name = os.path.expanduser(os.fspath(pretrained_model_name_or_path))

        def build(files) -> BertTokenizer:
            if files.vocab_file is None or not files.vocab_file.is_file():
                raise EntryNotFoundError(
                    f"{pretrained_model_name_or_path!r} resolved to files without a vocabulary "
                    f"(no {VOCAB_NAME} in {str(files.folder)!r}): it is a model without a "
                    "tokenizer; pass the path of its vocab.txt")
            known_lower, known_max_len = files.do_lower_case, files.max_len
            if files.tokenizer_config_file is not None:
                folder_lower, folder_max_len = _read_tokenizer_config(files.tokenizer_config_file)
                known_lower = folder_lower if known_lower is None else known_lower
                known_max_len = folder_max_len if known_max_len is None else known_max_len
            lower, warning = _choose_lower_case(name, do_lower_case, known_lower)
            longest = max_len
            if known_max_len is not None:
                longest = known_max_len if max_len is None else min(max_len, known_max_len)
            return cls(str(files.vocab_file), do_lower_case=lower, max_len=longest,
                       use_fast=use_fast, **kwargs), warning

        # `bert-hub cache rm` (or a forced download) in another process may take the entry away
        # between resolving and reading the vocabulary: then it is resolved again, as weights are
        tokenizer, warning = hub.read_model(
            name, build, cache_dir=cache_dir, force_download=force_download,
            local_files_only=local_files_only, need_weights=False, revision=revision, token=token)
        if warning:
            warnings.warn(warning, stacklevel=2)
        return tokenizer


class FullTokenizer(BertTokenizer):
    """Google's ``tokenization.FullTokenizer``, exactly: no ``never_split`` (a literal
    ``[CLS]`` in text is word-pieced), words of up to 200 characters word-pieced (0.6.2: 100),
    and only control (Cc) and format (Cf) characters dropped (0.6.2 also drops unassigned,
    private-use and surrogate code points). ``inv_vocab`` is Google's name for
    ``ids_to_tokens``; everything else is ``BertTokenizer``'s."""

    def __init__(self, vocab_file: str, do_lower_case: bool = True, max_len: int | None = None,
                 use_fast: bool = False):
        super().__init__(vocab_file, do_lower_case=do_lower_case, max_len=max_len,
                         never_split=(), use_fast=use_fast,
                         max_input_chars_per_word=GOOGLE_MAX_INPUT_CHARS_PER_WORD,
                         control_categories=CONTROLS_GOOGLE)

    @property
    def inv_vocab(self) -> dict[int, str]:
        return self.ids_to_tokens


# --- helpers ----------------------------------------------------------------------------------

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


def _read_tokenizer_config(path) -> tuple[bool | None, int | None]:
    """do_lower_case and model_max_length from a tokenizer_config.json."""
    path = os.fspath(path)
    config = read_json(path, InvalidInputError, "tokenizer settings file")
    if not isinstance(config, dict):
        raise InvalidInputError(
            f"{path!r} holds a JSON {type(config).__name__}, not an object of tokenizer settings "
            "(do_lower_case, model_max_length); fix or delete it")
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


def _choose_lower_case(name: str, given: bool | None, known: bool | None) -> tuple[bool, str]:
    """(do_lower_case, a warning to give the caller or "")."""
    if given is not None:
        if known is not None and given != known:
            return given, (f"{name!r} is {'an uncased' if known else 'a cased'} model but "
                           f"do_lower_case={given} was passed: its vocabulary expects "
                           f"do_lower_case={known}")
        return given, ""
    if known is not None:
        return known, ""
    if _looks_cased(name):
        return True, (f"{name!r} looks like a cased model, but nothing says so, so it is "
                      "lower-cased (0.6.2's default): pass do_lower_case=False if it is cased")
    return True, ""
