"""The transformers-style tokenizer: ``BertTokenizerFast`` (``AutoTokenizer``), callable as in
transformers, with ``decode``, ``batch_decode``, ``convert_*`` and ``save_pretrained``.

Its output is transformers' ``BertTokenizerFast``'s because it is built the same way on the same
reference, the Rust ``tokenizers`` library: the vocabulary (``tokenizer.json``'s when the folder
has one, else ``vocab.txt`` as Rust reads it), BERT's normaliser and pre-split from
``tokenizer_config.json``, WordPiece, the ``[CLS] a [SEP] (b [SEP])`` template and the special
tokens matched in raw text; padding and truncation are Rust's, set for each call as transformers
sets them. That differs from Google's tokenizer (and so from the 0.6.2-style
``bert_hub.BertTokenizer``, which keeps 0.6.2's output) on a few inputs: a literal ``[CLS]`` in
text is the special token here, Greek final sigma, unassigned code points (docs/transformers.md).

It is also a ``bert_hub.BertTokenizer`` (whose text-to-ids steps it replaces with the Rust ones),
so the pipelines and tasks take it as they take that one.
"""
from __future__ import annotations

import difflib
import json
import logging
import os
import threading
import warnings
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ..errors import ConfigError, EntryNotFoundError, InvalidArgumentError, InvalidInputError, UnknownTokenError
from ..filenames import TOKENIZER_CONFIG_NAME
from ..token_offsets import TokenSpan
from ..tokenization import (BertTokenizer, _choose_lower_case, _write_atomically, require_tokenizers,
                            rust_wordpiece)
from ..wordpiece import _check_text
from .batch_encoding import BatchEncoding, check_tensor_type
from .tokenizer_files import LARGE_INTEGER, SPECIAL_TOKENS_MAP_FILE, TOKENIZER_FILE, tokenizer_files

logger = logging.getLogger(__name__)

SPECIAL_TOKEN_NAMES = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token")
DEFAULT_SPECIAL_TOKENS = dict(zip(SPECIAL_TOKEN_NAMES, ("[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]")))
VERY_LARGE_INTEGER = int(1e30)   # transformers' model_max_length when nothing gives one
PADDING = {True: "longest", False: "do_not_pad", "longest": "longest", "max_length": "max_length",
           "do_not_pad": "do_not_pad"}
TRUNCATION = {True: "longest_first", False: "do_not_truncate", None: "do_not_truncate",
              "longest_first": "longest_first", "only_first": "only_first",
              "only_second": "only_second", "do_not_truncate": "do_not_truncate"}
SIDES = ("right", "left")
# tokenizer_config.json keys this tokenizer takes (the rest describe transformers' own state).
CONFIG_KEYS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "model_max_length",
               "padding_side", "truncation_side", "clean_up_tokenization_spaces",
               "added_tokens_decoder", *SPECIAL_TOKEN_NAMES)
LOAD_OPTIONS = ("cache_dir", "force_download", "local_files_only", "revision", "token")
_IGNORED = ("use_fast", "trust_remote_code", "_from_auto", "legacy")
_CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


class BertTokenizerFast(BertTokenizer):
    """BERT's WordPiece tokenizer with transformers' interface, on Rust ``tokenizers``.

    ``tokenizer(text | [texts], text_pair=None, padding=False, truncation=None,
    max_length=None, return_tensors=None, ...)`` -> ``BatchEncoding``; see ``__call__``."""

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    is_fast = True
    pad_token_type_id = 0

    def __init__(self, vocab_file=None, do_lower_case: bool = True, unk_token="[UNK]",
                 sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]",
                 tokenize_chinese_chars: bool = True, strip_accents: Optional[bool] = None,
                 model_max_length: Optional[int] = None, padding_side: str = "right",
                 truncation_side: str = "right", clean_up_tokenization_spaces: bool = False,
                 added_tokens_decoder: Optional[dict] = None, vocab=None, name_or_path: str = ""):
        """``vocab_file`` (or transformers 5's ``vocab=``): a vocab.txt, or a dict token -> id."""
        tokenizers = require_tokenizers("the transformers-style tokenizer (AutoTokenizer)")
        source = vocab if vocab is not None else vocab_file
        if source is None:
            raise InvalidArgumentError("BertTokenizerFast needs a vocabulary: vocab_file='vocab.txt' "
                                       "(or a dict of token -> id), or use from_pretrained(name)")
        if not isinstance(source, Mapping):
            path = os.fspath(source)
            if not os.path.isfile(path):
                raise EntryNotFoundError(f"no vocabulary file at {path!r}: pass the path of a BERT "
                                         "vocab.txt, or use AutoTokenizer.from_pretrained(name)")
            source = tokenizers.models.WordPiece.read_file(path)   # as transformers reads it
        specials = {name: _token_text(value) for name, value in zip(
            SPECIAL_TOKEN_NAMES, (unk_token, sep_token, pad_token, cls_token, mask_token))}
        max_len = None if model_max_length is None or model_max_length > LARGE_INTEGER \
            else model_max_length
        super().__init__(source, do_lower_case=do_lower_case, max_len=max_len,
                         never_split=tuple(specials.values()))
        for name, value in specials.items():
            setattr(self, name, value)
        self.padding_side = _check_side("padding_side", padding_side)
        self.truncation_side = _check_side("truncation_side", truncation_side)
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.strip_accents, self.tokenize_chinese_chars = strip_accents, tokenize_chinese_chars
        self.name_or_path = os.fspath(name_or_path)
        self._lock = threading.Lock()   # padding and truncation are set on the backend per call
        self._warned_long = False
        self._backend = self._build_backend(added_tokens_decoder or {})

    def _build_backend(self, added_tokens_decoder: dict):
        from tokenizers import AddedToken, decoders, processors

        tok = rust_wordpiece(self.vocab, self.unk_token, lowercase=self.do_lower_case,
                             strip_accents=self.strip_accents,
                             tokenize_chinese_chars=self.tokenize_chinese_chars)
        tok.decoder = decoders.WordPiece(prefix="##")
        for token_id, spec in sorted(((int(i), s) for i, s in added_tokens_decoder.items()),
                                     key=lambda item: item[0]):
            spec = spec if isinstance(spec, Mapping) else {"content": str(spec), "special": True}
            options = {k: spec[k] for k in ("single_word", "lstrip", "rstrip", "normalized",
                                            "special") if k in spec}
            tok.add_tokens([AddedToken(spec["content"], **options)])
            if tok.token_to_id(spec["content"]) != token_id:
                raise ConfigError(f"added token {spec['content']!r} has id {token_id} in "
                                  f"tokenizer_config.json but {tok.token_to_id(spec['content'])} in "
                                  "the vocabulary; the two files do not belong together")
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t in self.all_special_tokens])
        cls, sep = self.cls_token, self.sep_token
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
        for token, token_id in tok.get_vocab(with_added_tokens=True).items():
            if token not in self.vocab:       # added tokens: in the 0.6.2-style vocab too
                self.vocab[token] = token_id
                self.ids_to_tokens[token_id] = token
        self._refresh()
        return tok

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # -- the call ----------------------------------------------------------------------------------
    def __call__(self, text=None, text_pair=None, add_special_tokens: bool = True, padding=False,
                 truncation=None, max_length: Optional[int] = None, stride: int = 0,
                 is_split_into_words: bool = False, pad_to_multiple_of: Optional[int] = None,
                 padding_side: Optional[str] = None, return_tensors=None,
                 return_token_type_ids: Optional[bool] = None,
                 return_attention_mask: Optional[bool] = None,
                 return_overflowing_tokens: bool = False, return_special_tokens_mask: bool = False,
                 return_offsets_mapping: bool = False, return_length: bool = False,
                 verbose: bool = True, **unknown) -> BatchEncoding:
        """Model inputs for one text, a pair, or lists of them, as transformers computes them.

        padding: False, True / "longest" (to the batch's longest), "max_length".
        truncation: None / False, True / "longest_first", "only_first", "only_second".
        max_length: the length both use (default: ``model_max_length``).
        return_tensors: None (lists), "pt" (torch.long), "np" (int64).
        ``stride`` with ``return_overflowing_tokens=True``: the cut-off rest as more rows,
        overlapping by ``stride`` tokens (``overflow_to_sample_mapping`` says whose)."""
        _reject("the tokenizer call", unknown, self.__call__)
        tensor_type = check_tensor_type(return_tensors)
        padding, truncation, max_length = self._strategies(padding, truncation, max_length,
                                                           pad_to_multiple_of, verbose)
        batch, is_batched = _batch_inputs(text, text_pair, is_split_into_words)
        encodings = self._encode(batch, add_special_tokens=add_special_tokens, padding=padding,
                                 truncation=truncation, max_length=max_length, stride=stride,
                                 pad_to_multiple_of=pad_to_multiple_of, padding_side=padding_side,
                                 is_pretokenized=is_split_into_words)
        wanted = {"input_ids": True,
                  "token_type_ids": return_token_type_ids is not False,
                  "attention_mask": return_attention_mask is not False,
                  "special_tokens_mask": return_special_tokens_mask,
                  "offset_mapping": return_offsets_mapping, "length": return_length}
        data: Dict[str, list] = defaultdict(list)
        rows, sample_of_row = [], []
        for sample, encoding in enumerate(encodings):
            for row in [encoding, *(encoding.overflowing if return_overflowing_tokens else ())]:
                rows.append(row)
                sample_of_row.append(sample)
                for name, attribute in (("input_ids", "ids"), ("token_type_ids", "type_ids"),
                                        ("attention_mask", "attention_mask"),
                                        ("special_tokens_mask", "special_tokens_mask"),
                                        ("offset_mapping", "offsets")):
                    if wanted[name]:
                        data[name].append(getattr(row, attribute))
                if return_length:
                    data["length"].append(len(row.ids))
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = sample_of_row
        if max_length is None and verbose:
            self._warn_if_long(data["input_ids"])
        out = BatchEncoding(dict(data), rows, tensor_type=tensor_type)
        if not is_batched and tensor_type is None and not return_overflowing_tokens:
            out = BatchEncoding({k: v[0] for k, v in out.items()}, rows)
        return out

    def _strategies(self, padding, truncation, max_length, pad_to_multiple_of, verbose):
        """transformers' rules: ``max_length`` alone truncates; a missing max_length is
        ``model_max_length`` (none known: no padding to it, no truncation)."""
        padding_key, truncation_key = getattr(padding, "value", padding), \
            getattr(truncation, "value", truncation)
        if padding_key not in PADDING:
            raise InvalidInputError(f"padding must be False, True, 'longest', 'max_length' or "
                                    f"'do_not_pad', got {padding!r}")
        if truncation_key not in TRUNCATION:
            raise InvalidInputError(f"truncation must be None, False, True, 'longest_first', "
                                    f"'only_first', 'only_second' or 'do_not_truncate', got "
                                    f"{truncation!r}")
        if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int)
                                       or max_length < 0):
            raise InvalidInputError(f"max_length must be a non-negative int or None, got {max_length!r}")
        if max_length is not None and padding_key is False and truncation_key is None:
            truncation_key = "longest_first"
        padding, truncation = PADDING[padding_key], TRUNCATION[truncation_key]
        if padding_key is True and max_length is not None and truncation == "do_not_truncate" \
                and verbose:
            warnings.warn("`max_length` is ignored when `padding`=`True` and there is no "
                          "truncation strategy. To pad to max length, use `padding='max_length'`.",
                          stacklevel=3)
        if max_length is None:
            known = self.model_max_length <= LARGE_INTEGER
            if padding == "max_length":
                padding, max_length = ("max_length", self.model_max_length) if known \
                    else ("do_not_pad", None)
            if truncation != "do_not_truncate":
                if known:
                    max_length = self.model_max_length
                else:
                    truncation = "do_not_truncate"
        if pad_to_multiple_of is not None and truncation != "do_not_truncate" and \
                padding != "do_not_pad" and max_length is not None and max_length % pad_to_multiple_of:
            raise InvalidInputError(f"truncation length ({max_length}) is not a multiple of "
                                    f"pad_to_multiple_of ({pad_to_multiple_of}); make it one")
        return padding, truncation, max_length

    def _encode(self, batch, *, add_special_tokens=False, padding="do_not_pad",
                truncation="do_not_truncate", max_length=None, stride=0, pad_to_multiple_of=None,
                padding_side=None, is_pretokenized=False, offsets=True):
        """Rust encodings of a batch, with this call's padding and truncation set first."""
        backend = self._backend
        with self._lock:
            try:
                if truncation == "do_not_truncate":
                    backend.no_truncation()
                else:
                    backend.enable_truncation(max_length, stride=stride, strategy=truncation,
                                              direction=self.truncation_side)
                if padding == "do_not_pad":
                    backend.no_padding()
                else:
                    backend.enable_padding(
                        length=max_length if padding == "max_length" else None,
                        direction=_check_side("padding_side", padding_side or self.padding_side),
                        pad_id=self.pad_token_id, pad_type_id=self.pad_token_type_id,
                        pad_token=self.pad_token, pad_to_multiple_of=pad_to_multiple_of)
                encode = backend.encode_batch if offsets else \
                    getattr(backend, "encode_batch_fast", backend.encode_batch)
                return encode(batch, add_special_tokens=add_special_tokens,
                              is_pretokenized=is_pretokenized)
            except InvalidInputError:
                raise
            except Exception as exc:   # Rust's errors: truncation that cannot fit, bad text
                raise InvalidInputError(f"the tokenizer cannot encode this input: {exc}") from None

    def _warn_if_long(self, rows: List[List[int]]) -> None:
        longest = max((len(r) for r in rows), default=0)
        if longest > self.model_max_length and not self._warned_long:
            self._warned_long = True
            logger.warning("Token indices sequence length is longer than the specified maximum "
                           "sequence length for this model (%d > %d). Running this sequence through "
                           "the model will result in indexing errors", longest, self.model_max_length)

    def encode(self, text, text_pair=None, add_special_tokens: bool = True, padding=False,
               truncation=None, max_length: Optional[int] = None, stride: int = 0,
               return_tensors=None, **options):
        """The ids of one text (or pair) with its special tokens: a list, or a (1, S) tensor."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, padding=padding,
                    truncation=truncation, max_length=max_length, stride=stride,
                    return_tensors=return_tensors, **options)["input_ids"]

    def tokenize(self, text: str, pair: Optional[str] = None, add_special_tokens: bool = False) -> List[str]:
        """Word pieces of ``text`` (and ``pair``), special tokens kept whole."""
        _check_text(text, "text")
        inputs = text if pair is None else (text, pair)
        return self._encode([inputs], add_special_tokens=add_special_tokens)[0].tokens

    # -- the 0.6.2-style steps the pipelines and tasks use, on the Rust path ----------------------
    def _ids_batch(self, texts, what: str) -> List[List[int]]:
        for text in texts:
            _check_text(text, what)
        return [e.ids for e in self._encode(list(texts), offsets=False)] if texts else []

    def tokenize_with_offsets(self, text: str) -> List[TokenSpan]:
        _check_text(text, "text")
        encoding = self._encode([text])[0]
        return [TokenSpan(token, start, end, word) for token, (start, end), word
                in zip(encoding.tokens, encoding.offsets, encoding.word_ids)]

    # -- ids, tokens and text ----------------------------------------------------------------------
    def convert_tokens_to_ids(self, tokens):
        """A token's id (``[UNK]``'s for a token not in the vocabulary), or a list of them."""
        if isinstance(tokens, str):
            found = self._backend.token_to_id(tokens)
            return self.unk_token_id if found is None else found
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        """An id's token, or a list of them (without the special ones if asked)."""
        if isinstance(ids, int) or getattr(ids, "ndim", None) == 0:
            return self._token(int(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self._token(int(i)) for i in _as_list(ids) if int(i) not in skip]

    def _token(self, token_id: int) -> str:
        token = self._backend.id_to_token(token_id)
        if token is None:
            raise UnknownTokenError(f"id {token_id} is not in the vocabulary (ids 0..{len(self) - 1}); "
                                    "were these ids made with another tokenizer?")
        return token

    def convert_tokens_to_string(self, tokens: List[str]) -> str:
        return self._backend.decoder.decode(list(tokens))

    def decode(self, token_ids, skip_special_tokens: bool = False,
               clean_up_tokenization_spaces: Optional[bool] = None) -> str:
        """Text of ids (a list, a tensor, an array, or an encoding); a batch gives a list."""
        if isinstance(token_ids, Mapping):
            token_ids = token_ids["input_ids"]
        ids = _as_list(token_ids)
        if ids and isinstance(ids[0], list):
            return [self.decode(row, skip_special_tokens, clean_up_tokenization_spaces) for row in ids]
        for token_id in ids:
            self._token(int(token_id))                        # an unknown id fails by name
        text = self._backend.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None \
            else clean_up_tokenization_spaces
        return clean_up_tokenization(text) if clean else text

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: Optional[bool] = None) -> List[str]:
        rows = _as_list(sequences)
        if rows and not isinstance(rows[0], list):
            rows = [rows]
        return [self.decode(row, skip_special_tokens, clean_up_tokenization_spaces) for row in rows]

    # -- vocabulary and special tokens -------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> Dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    @property
    def model_max_length(self) -> int:
        return self.max_len if self.max_len < LARGE_INTEGER else VERY_LARGE_INTEGER

    @model_max_length.setter
    def model_max_length(self, value: int) -> None:
        self.max_len = value if value <= LARGE_INTEGER else int(1e12)

    @property
    def special_tokens_map(self) -> Dict[str, str]:
        return {name: getattr(self, name) for name in SPECIAL_TOKEN_NAMES}

    @property
    def all_special_tokens(self) -> List[str]:
        return list(dict.fromkeys(self.special_tokens_map.values()))

    @property
    def all_special_ids(self) -> List[int]:
        return [self.convert_tokens_to_ids(t) for t in self.all_special_tokens]

    def __getattr__(self, name: str):
        if name.endswith("_token_id") and name[:-3] in SPECIAL_TOKEN_NAMES:
            return self.convert_tokens_to_ids(getattr(self, name[:-3]))
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return 3 if pair else 2

    def build_inputs_with_special_tokens(self, token_ids_0: List[int],
                                         token_ids_1: Optional[List[int]] = None) -> List[int]:
        ids = [self.cls_token_id, *token_ids_0, self.sep_token_id]
        return ids if token_ids_1 is None else ids + [*token_ids_1, self.sep_token_id]

    def create_token_type_ids_from_sequences(self, token_ids_0: List[int],
                                             token_ids_1: Optional[List[int]] = None) -> List[int]:
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    def get_special_tokens_mask(self, token_ids_0: List[int], token_ids_1: Optional[List[int]] = None,
                                already_has_special_tokens: bool = False) -> List[int]:
        """1 at special tokens: of ids that have them, or of the layout built around them."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise InvalidInputError("with already_has_special_tokens=True pass one sequence of "
                                        "ids (it holds both texts already)")
            special = set(self.all_special_ids)
            return [1 if int(i) in special else 0 for i in token_ids_0]
        mask = [1, *[0] * len(token_ids_0), 1]
        return mask if token_ids_1 is None else mask + [0] * len(token_ids_1) + [1]

    # -- files -------------------------------------------------------------------------------------
    def save_pretrained(self, save_directory, **unused) -> Tuple[str, ...]:
        """``tokenizer_config.json``, ``special_tokens_map.json``, ``vocab.txt`` and
        ``tokenizer.json``: what transformers (and ``bert_hub.BertTokenizer``) read back."""
        _reject("save_pretrained", {k: v for k, v in unused.items()
                                    if k not in ("legacy_format", "filename_prefix") and v},
                self.save_pretrained)
        folder = Path(save_directory)
        if folder.exists() and not folder.is_dir():
            raise EntryNotFoundError(f"save_pretrained({str(folder)!r}): that is a file; pass a "
                                     "folder (it is created if missing)")
        folder.mkdir(parents=True, exist_ok=True)
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.do_lower_case,
                  "strip_accents": self.strip_accents,
                  "tokenize_chinese_chars": self.tokenize_chinese_chars,
                  "padding_side": self.padding_side, "truncation_side": self.truncation_side,
                  "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
                  **self.special_tokens_map}
        if self.model_max_length <= LARGE_INTEGER:
            config["model_max_length"] = self.model_max_length
        paths = (folder / TOKENIZER_CONFIG_NAME, folder / SPECIAL_TOKENS_MAP_FILE)
        _write_atomically(str(paths[0]), json.dumps(config, indent=2, sort_keys=True) + "\n")
        _write_atomically(str(paths[1]), json.dumps(self.special_tokens_map, indent=2) + "\n")
        vocab = self.save_vocabulary(str(folder))
        with self._lock:
            self._backend.no_truncation()
            self._backend.no_padding()
            _write_atomically(str(folder / TOKENIZER_FILE), self._backend.to_str(pretty=True))
        return (str(paths[0]), str(paths[1]), vocab, str(folder / TOKENIZER_FILE))

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, cache_dir=None,
                        force_download: bool = False, local_files_only: bool = False,
                        revision: Optional[str] = None, token=None, **kwargs) -> "BertTokenizerFast":
        """The tokenizer of anything ``from_pretrained`` loads (Hub id, folder, archive, URL,
        registry name); keyword arguments override its ``tokenizer_config.json``."""
        for name in _IGNORED:
            kwargs.pop(name, None)
        _reject("AutoTokenizer.from_pretrained", {k: v for k, v in kwargs.items()
                                                  if k not in CONFIG_KEYS}, cls.__init__)
        require_tokenizers("the transformers-style tokenizer (AutoTokenizer)")
        name = os.fspath(pretrained_model_name_or_path)
        vocab, known = tokenizer_files(name, dict(
            cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only,
            revision=revision, token=token))
        settings = {k: v for k, v in known.items() if k in CONFIG_KEYS}
        settings.update(kwargs)
        settings["do_lower_case"], warning = _choose_lower_case(
            name, kwargs.get("do_lower_case"), known.get("do_lower_case"))
        if warning:
            warnings.warn(warning, stacklevel=2)
        return cls(vocab, name_or_path=name, **settings)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size="
                f"{self.vocab_size}, model_max_length={self.model_max_length}, do_lower_case="
                f"{self.do_lower_case}, padding_side={self.padding_side!r}, special_tokens="
                f"{self.special_tokens_map})")


def clean_up_tokenization(text: str) -> str:
    """transformers' clean-up of decoded text: no space before punctuation and contractions."""
    for dirty, clean in _CLEANUPS:
        text = text.replace(dirty, clean)
    return text


# -- argument checks -------------------------------------------------------------------------------
def _token_text(value) -> str:
    """A special token given as a str, a ``tokenizers.AddedToken`` or its JSON form."""
    if isinstance(value, Mapping):
        value = value.get("content")
    value = getattr(value, "content", value)
    if not isinstance(value, str) or not value:
        raise InvalidInputError(f"a special token must be a non-empty str, got {value!r}")
    return value


def _check_side(name: str, value) -> str:
    if value not in SIDES:
        raise InvalidInputError(f"{name} must be 'right' or 'left', got {value!r}")
    return value


def _reject(what: str, unknown: dict, function) -> None:
    """An ``InvalidArgumentError`` naming the first unknown keyword and the close known one."""
    if not unknown:
        return
    import inspect
    known = [p for p in inspect.signature(function).parameters if p not in ("self", "unknown",
                                                                              "kwargs", "unused")]
    name = sorted(unknown)[0]
    close = difflib.get_close_matches(name, known + list(CONFIG_KEYS), n=1)
    raise InvalidArgumentError(f"{what} takes no argument {name!r}" +
                               (f"; did you mean {close[0]!r}?" if close else
                                f"; it takes {', '.join(known)}"))


def _as_list(value):
    """A tensor, an array, a tuple or a list -> nested Python lists."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, int):
        return [value]
    return [_as_list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") and
            getattr(v, "ndim", 0) else v for v in value]


def _batch_inputs(text, text_pair, is_split_into_words: bool):
    """``(inputs for Rust, batched?)``: transformers' reading of text / text_pair, checked."""
    def valid(value, depth):   # depth 0: a text (str, or a list of words when pre-split)
        if depth == 0:
            return isinstance(value, str) if not is_split_into_words else \
                isinstance(value, (list, tuple)) and all(isinstance(w, str) for w in value)
        return isinstance(value, (list, tuple)) and all(valid(v, depth - 1) for v in value)

    if text is None:
        raise InvalidInputError("the tokenizer needs text: a str, or a list of str")
    batched = isinstance(text, (list, tuple)) and (not is_split_into_words or
                                                  (len(text) > 0 and isinstance(text[0], (list, tuple))))
    kind = "a list of words (is_split_into_words=True)" if is_split_into_words else "a str"
    if not valid(text, 1 if batched else 0):
        raise InvalidInputError(f"text must be {kind} or a list of them, got "
                                f"{type(text).__name__}" + (" with other items" if batched else ""))
    if batched and not text:
        raise InvalidInputError("text is an empty list: give at least one text")
    if text_pair is not None and not valid(text_pair, 1 if batched else 0):
        raise InvalidInputError(f"text_pair must be {'a list as long as text' if batched else kind}"
                                f", got {type(text_pair).__name__}")
    if batched:
        if text_pair is not None and len(text_pair) != len(text):
            raise InvalidInputError(f"text has {len(text)} items but text_pair {len(text_pair)}; "
                                    "give one second text per text")
        return (list(zip(text, text_pair)) if text_pair is not None else list(text)), True
    return ([(text, text_pair)] if text_pair else [text]), False
