"""``BertConfig``: the fields of Google's ``bert_config.json``, typed, and validated when a model
is built from them (``validate()``).

Drop-in for pytorch-pretrained-bert 0.6.2: ``BertConfig(30522)``, ``BertConfig("bert_config.json")``
and ``BertConfig(vocab_size_or_config_json_file=30522, hidden_size=768, ...)`` all work, and, as
there and in Google's ``modeling.py``, any values are accepted until a model (or a conversion)
uses them. It also reads a Hugging Face ``config.json``: keys that only describe the file are
ignored, keys that would change the network into something this BERT is not are refused.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import reprlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Union

from .errors import ConfigError
from .json_files import read_json

logger = logging.getLogger(__name__)

# Names accepted for ``hidden_act``: 0.6.2's ("gelu" = exact erf, "relu", "swish"), Google's
# ("tanh", "linear") and Hugging Face's names for the tanh approximation of GELU.
ACTIVATIONS = ("gelu", "relu", "swish", "silu", "gelu_new", "gelu_pytorch_tanh", "tanh", "linear")

# The integer sizes of a BERT, and the largest value of each that a model is built with: far
# above any released BERT (BERT-large: 24 layers x 1024; multilingual vocabularies ~250k), low
# enough that one number in a config cannot make building a model take unbounded time or memory.
SIZE_LIMITS = {
    "vocab_size": 1 << 24,
    "hidden_size": 1 << 16,
    "num_hidden_layers": 1 << 10,
    "num_attention_heads": 1 << 16,
    "intermediate_size": 1 << 18,
    "max_position_embeddings": 1 << 20,
    "type_vocab_size": 1 << 16,
}
# The most parameters a config may describe (about 8.6 billion; BERT-large has 335 million).
MAX_PARAMETERS = 1 << 33

_SHOW = reprlib.Repr()
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlevel = 80, 80, 3


def short_repr(value) -> str:
    """repr() for messages: short, and safe on deeply nested values read from a file."""
    return _SHOW.repr(value)


# Keys of a Hugging Face config.json that describe the file or training, not the network.
_HF_INFORMATIONAL_KEYS = frozenset({
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "pad_token_id",
    "bos_token_id", "eos_token_id", "gradient_checkpointing", "use_cache", "classifier_dropout",
    "output_past", "directionality", "pooler_fc_size", "pooler_num_attention_heads",
    "pooler_num_fc_layers", "pooler_size_per_head", "pooler_type", "_name_or_path", "id2label",
    "label2id", "problem_type", "finetuning_task", "return_dict", "output_hidden_states",
    "output_attentions", "tie_word_embeddings", "name_or_path", "tokenizer_class",
})

# Keys of a Hugging Face config.json that change the network: the value this BERT implements.
_HF_FIXED_KEYS = {
    "position_embedding_type": "absolute",
    "is_decoder": False,
    "add_cross_attention": False,
    "chunk_size_feed_forward": 0,
}


@dataclass(init=False)
class BertConfig:
    """The hyper-parameters of a BERT network (Google's ``bert_config.json``).

    ``BertConfig(vocab_size_or_config_json_file, hidden_size=768, ...)``: the first argument is
    the vocabulary size (int) or the path of a JSON file, as in pytorch-pretrained-bert 0.6.2.
    ``vocab_size=`` is accepted as a keyword too. As in 0.6.2 any values are stored as given;
    ``validate()``, which every model and conversion calls, raises ``ConfigError`` (a
    ``ValueError``) quoting the first value that cannot build a model.

    ``type_vocab_size`` defaults to 2, as in 0.6.2 and every released ``bert_config.json``
    (the default of Google's Python class is 16, which no released checkpoint uses).
    """

    vocab_size: int                      # rows of the word-embedding matrix (and MLM logits)
    hidden_size: int = 768               # width of every layer and of the pooled output
    num_hidden_layers: int = 12          # Transformer blocks in the encoder
    num_attention_heads: int = 12        # heads per block; must divide hidden_size
    intermediate_size: int = 3072        # width of the feed-forward layer inside each block
    hidden_act: Union[str, Callable] = "gelu"  # feed-forward / MLM transform activation
    hidden_dropout_prob: float = 0.1     # dropout after embeddings, attention output, FFN
    attention_probs_dropout_prob: float = 0.1  # dropout on the attention probabilities
    max_position_embeddings: int = 512   # longest sequence the model accepts
    type_vocab_size: int = 2             # number of segment ids (token_type_ids < this)
    initializer_range: float = 0.02      # std of the normal init of weights
    # epsilon of every LayerNorm (Google's 1e-12; some Hugging Face BERTs use 1e-5 or 1e-7).
    # Written to bert_config.json only when it differs, so the file stays Google's and 0.6.2's.
    layer_norm_eps: float = 1e-12
    # Keys read from a file that are not fields (Hugging Face extras); never written back.
    extra: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __init__(
        self,
        vocab_size_or_config_json_file: Union[int, str, os.PathLike, None] = None,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: Union[str, Callable] = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        *,
        vocab_size: Optional[int] = None,
        layer_norm_eps: float = 1e-12,
    ):
        first = vocab_size_or_config_json_file
        if isinstance(first, (str, os.PathLike)):
            if vocab_size is not None:
                raise ConfigError("give either a config file or vocab_size=, not both")
            other = type(self).from_json_file(first)
            self.__dict__.update(other.__dict__)  # a fresh object: nothing shared with anyone
            return
        if first is not None and not isinstance(first, int):
            raise ConfigError(
                f"the first argument of BertConfig is a vocabulary size (int) or the path of a "
                f"bert_config.json, got {short_repr(first)}")
        if first is not None and vocab_size is not None:
            raise ConfigError(
                f"vocab_size given twice ({first!r} and vocab_size={vocab_size!r}); give it once")
        vocab = vocab_size if first is None else first
        if vocab is None:
            raise ConfigError(
                "BertConfig needs a vocabulary size (int) or the path of a bert_config.json, "
                "e.g. BertConfig(30522) or BertConfig('bert_config.json')")
        self.vocab_size = vocab
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.extra = {}

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first field whose value cannot build a model."""
        check_sizes(self)
        if self.hidden_size % self.num_attention_heads != 0:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads}); choose a head count that divides it")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number in [0, 1), got {short_repr(value)}")
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} ({value}) must be in [0, 1)")
        value = self.initializer_range
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0 <= value < float("inf"):
            raise ConfigError(f"initializer_range must be a non-negative number, got {short_repr(value)}")
        value = self.layer_norm_eps
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not 0 < value < float("inf"):
            raise ConfigError(f"layer_norm_eps must be a positive number (BERT uses 1e-12), got "
                              f"{short_repr(value)}")
        act = self.hidden_act
        if not callable(act) and not (isinstance(act, str) and act in ACTIVATIONS):
            raise ConfigError(
                f"unknown hidden_act {short_repr(act)}; use one of {', '.join(ACTIVATIONS)} or a callable")

    # -- construction from data -----------------------------------------------------------------
    @classmethod
    def from_dict(cls, json_object: Dict[str, Any]) -> BertConfig:
        """Build from a dict: Google's ``bert_config.json`` or a Hugging Face ``config.json``."""
        if not isinstance(json_object, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(json_object).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in json_object.items() if k in names}
        extra = {k: v for k, v in json_object.items() if k not in names}
        if "vocab_size" not in known:
            raise ConfigError("the config has no 'vocab_size'; a bert_config.json always has one")
        if not isinstance(known["vocab_size"], int):   # a str would be taken for a file path
            raise ConfigError(f"vocab_size must be an integer, got {short_repr(known['vocab_size'])}")
        if known.get("layer_norm_eps", 0) is None:     # Hugging Face's null: the default
            del known["layer_norm_eps"]
        for key, expected in _HF_FIXED_KEYS.items():
            if key in extra and extra[key] is not None and extra[key] != expected:
                raise ConfigError(
                    f"{key}={short_repr(extra[key])} is not supported (BERT uses {key}={expected!r}); "
                    "this config describes a different architecture")
        unknown = sorted(set(extra) - _HF_INFORMATIONAL_KEYS - set(_HF_FIXED_KEYS))
        if unknown:
            logger.warning("config keys not used by BertConfig (kept in .extra): %s%s",
                           ", ".join(short_repr(k) if len(k) > 80 else k for k in unknown[:20]),
                           f" and {len(unknown) - 20} more" if len(unknown) > 20 else "")
        config = cls(known.pop("vocab_size"), **known)
        config.extra = extra
        return config

    @classmethod
    def from_json_file(cls, json_file: Union[str, os.PathLike]) -> BertConfig:
        """Build from a JSON file; a missing or malformed file is a ``ConfigError`` naming it."""
        if os.path.isdir(json_file):
            raise ConfigError(
                f"config file {os.fspath(json_file)!r} is a folder; pass the bert_config.json "
                "inside it, or load the folder with from_pretrained()")
        # a byte-order mark (Windows editors write one) is not part of the JSON; the size and
        # nesting are bounded before parsing (json_files)
        data = read_json(json_file, ConfigError, "config file",
                         fix="pass the model's bert_config.json (one flat JSON object)")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"config file {os.fspath(json_file)!r}: {exc}") from None

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The fields of ``bert_config.json``: Google's eleven, and ``layer_norm_eps`` when it is
        not Google's 1e-12 (extras are not written back)."""
        try:
            return {f.name: copy.deepcopy(getattr(self, f.name))
                    for f in dataclasses.fields(self) if f.name != "extra"
                    and not (f.name == "layer_norm_eps" and self.layer_norm_eps == f.default)}
        except RecursionError:
            raise ConfigError("a field of this config nests too deeply to copy; every field "
                              "of a bert_config.json is a number or a string") from None

    def to_json_string(self, extra: Optional[Dict[str, Any]] = None) -> str:
        """JSON text in 0.6.2's form: indented, sorted keys, trailing newline. ``extra``: more
        keys to write (a model's ``id2label`` / ``label2id``, as Hugging Face's config.json has
        them), which Google's and 0.6.2's readers keep as attributes and otherwise ignore."""
        data = self.to_dict()
        clash = sorted(set(extra or {}) & set(data))
        if clash:
            raise ConfigError(f"extra keys {clash} are fields of the config; set the fields instead")
        data.update(extra or {})
        if callable(data["hidden_act"]):
            raise ConfigError(
                f"hidden_act is a callable ({data['hidden_act']!r}) and cannot be written to JSON;"
                f" use one of {', '.join(ACTIVATIONS)}")
        try:
            return json.dumps(data, indent=2, sort_keys=True) + "\n"
        except (RecursionError, TypeError, ValueError) as exc:
            raise ConfigError(f"this config cannot be written as JSON ({short_repr(str(exc))}); every "
                              "field of a bert_config.json is a number or a string") from None

    def to_json_file(self, json_file_path: Union[str, os.PathLike],
                     extra: Optional[Dict[str, Any]] = None) -> None:
        """Write ``to_json_string(extra)`` to a file."""
        text = self.to_json_string(extra)
        with open(json_file_path, "w", encoding="utf-8") as writer:
            writer.write(text)

    def __repr__(self) -> str:
        fields = (f.name for f in dataclasses.fields(self) if f.name != "extra")
        return f"BertConfig({', '.join(f'{k}={short_repr(getattr(self, k))}' for k in fields)})"


def parameter_count(config) -> int:
    """About how many parameters a BERT of ``config``'s sizes has (embeddings, layers, pooler
    and MLM transform; biases and LayerNorms left out)."""
    h, i = config.hidden_size, config.intermediate_size
    embeddings = h * (config.vocab_size + config.max_position_embeddings + config.type_vocab_size)
    return embeddings + config.num_hidden_layers * (4 * h * h + 2 * h * i) + 2 * h * h


def check_sizes(config) -> None:
    """Raise ``ConfigError`` unless every size of ``config`` (a BertConfig, or anything with its
    fields) is a positive integer within ``SIZE_LIMITS`` and the whole within
    ``MAX_PARAMETERS``: what a model and the conversion tables are built from."""
    for name, limit in SIZE_LIMITS.items():
        if not hasattr(config, name):
            continue   # e.g. dimensions read off a checkpoint carry no head count
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {short_repr(value)}")
        if value <= 0:
            raise ConfigError(f"{name} must be positive, got {value}")
        if value > limit:
            raise ConfigError(
                f"{name} ({value}) is over bert_hub's limit of {limit}, far beyond any BERT; "
                "check the config (a misplaced digit?)")
    count = parameter_count(config)
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"these sizes describe a model of about {count:,} parameters, over bert_hub's limit "
            f"of {MAX_PARAMETERS:,} (BERT-large has 335 million); check the config")
