"""``BertConfig``: the fields of Google's ``bert_config.json``, typed and validated when built.

Drop-in for pytorch-pretrained-bert 0.6.2: ``BertConfig(30522)``, ``BertConfig("bert_config.json")``
and ``BertConfig(vocab_size_or_config_json_file=30522, hidden_size=768, ...)`` all work. It also
reads a Hugging Face ``config.json``: keys that only describe the file are ignored, keys that
would change the network into something this BERT is not are refused.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Union

from .errors import ConfigError

logger = logging.getLogger(__name__)

# Names accepted for ``hidden_act``: 0.6.2's ("gelu" = exact erf, "relu", "swish"), Google's
# ("tanh", "linear") and Hugging Face's names for the tanh approximation of GELU.
ACTIVATIONS = ("gelu", "relu", "swish", "silu", "gelu_new", "gelu_pytorch_tanh", "tanh", "linear")

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
    "layer_norm_eps": 1e-12,
    "chunk_size_feed_forward": 0,
}


@dataclass(init=False)
class BertConfig:
    """The hyper-parameters of a BERT network (Google's ``bert_config.json``).

    ``BertConfig(vocab_size_or_config_json_file, hidden_size=768, ...)``: the first argument is
    the vocabulary size (int) or the path of a JSON file, as in pytorch-pretrained-bert 0.6.2.
    ``vocab_size=`` is accepted as a keyword too. Invalid values raise ``ConfigError``
    (a ``ValueError``) quoting them.

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
    ):
        first = vocab_size_or_config_json_file
        if isinstance(first, (str, os.PathLike)):
            if vocab_size is not None:
                raise ConfigError("give either a config file or vocab_size=, not both")
            other = type(self).from_json_file(first)
            self.__dict__.update(copy.deepcopy(other.__dict__))
            return
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
        self.extra = {}
        self.validate()

    # -- validation -----------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ConfigError`` naming the first field whose value cannot build a model."""
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "max_position_embeddings", "type_vocab_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, got {value!r}")
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ConfigError(
                f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                f"({self.num_attention_heads}); choose a head count that divides it")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{name} ({value}) must be in [0, 1)")
        value = self.initializer_range
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ConfigError(f"initializer_range must be a non-negative number, got {value!r}")
        act = self.hidden_act
        if not callable(act) and act not in ACTIVATIONS:
            raise ConfigError(
                f"unknown hidden_act {act!r}; use one of {', '.join(ACTIVATIONS)} or a callable")

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
            raise ConfigError(f"vocab_size must be an integer, got {known['vocab_size']!r}")
        for key, expected in _HF_FIXED_KEYS.items():
            if key in extra and extra[key] is not None and extra[key] != expected:
                raise ConfigError(
                    f"{key}={extra[key]!r} is not supported (BERT uses {key}={expected!r}); "
                    "this config describes a different architecture")
        unknown = sorted(set(extra) - _HF_INFORMATIONAL_KEYS - set(_HF_FIXED_KEYS))
        if unknown:
            logger.warning("config keys not used by BertConfig (kept in .extra): %s",
                           ", ".join(unknown))
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
        try:
            # utf-8-sig: a byte-order mark (Windows editors write one) is not part of the JSON
            with open(json_file, "r", encoding="utf-8-sig") as reader:
                text = reader.read()
        except FileNotFoundError:
            raise ConfigError(f"config file {os.fspath(json_file)!r} does not exist") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"config file {os.fspath(json_file)!r} is not UTF-8 text ({exc.reason} at byte "
                f"{exc.start}); pass the model's bert_config.json") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {os.fspath(json_file)!r} is not valid JSON: {exc}") \
                from None
        return cls.from_dict(data)

    # -- serialisation --------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The eleven fields of ``bert_config.json`` (extras are not written back)."""
        out = {f.name: copy.deepcopy(getattr(self, f.name))
               for f in dataclasses.fields(self) if f.name != "extra"}
        return out

    def to_json_string(self) -> str:
        """JSON text in 0.6.2's form: indented, sorted keys, trailing newline."""
        data = self.to_dict()
        if callable(data["hidden_act"]):
            raise ConfigError(
                f"hidden_act is a callable ({data['hidden_act']!r}) and cannot be written to JSON;"
                f" use one of {', '.join(ACTIVATIONS)}")
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: Union[str, os.PathLike]) -> None:
        """Write ``to_json_string()`` to a file."""
        text = self.to_json_string()
        with open(json_file_path, "w", encoding="utf-8") as writer:
            writer.write(text)

    def __repr__(self) -> str:
        return f"BertConfig({', '.join(f'{k}={v!r}' for k, v in self.to_dict().items())})"
