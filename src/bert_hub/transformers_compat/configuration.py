"""The transformers-style config: ``BertConfig`` with transformers' keyword constructor and
attributes (``id2label``, ``num_labels``, ``problem_type``, ``return_dict``, ...), read and
written as ``config.json``, and ``AutoConfig``.

It is ``bert_hub.config.BertConfig`` (the same validated fields build the same network) with
the keys a Hugging Face ``config.json`` adds kept where that class keeps them, in ``extra``: the
attributes here read and write them there, so what the 0.6.2-style code reads (the pipelines'
``extra["problem_type"]``, the labels) is what transformers-style code sets.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Dict, Optional

from .. import config_files
from ..config import _HF_FIXED_KEYS, _HF_INFORMATIONAL_KEYS
from ..config import BertConfig as PlainBertConfig
from ..errors import ConfigError, EntryNotFoundError, InvalidArgumentError
from ..filenames import HF_CONFIG_NAME

# transformers' attributes beyond Google's fields, with transformers' defaults.
DEFAULTS: Dict[str, Any] = {
    "pad_token_id": 0,
    "classifier_dropout": None,        # dropout before a classifier; None: hidden_dropout_prob
    "problem_type": None,              # sequence classification's loss (PROBLEM_TYPES)
    "output_hidden_states": False,     # forward's default
    "output_attentions": False,
    "return_dict": True,               # forward returns a ModelOutput (False: a tuple)
    "architectures": None,
    "_name_or_path": "",
    "is_decoder": False,
    "add_cross_attention": False,
    "position_embedding_type": "absolute",
    "use_cache": True,
    "tie_word_embeddings": True,
    "dtype": None,
}
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
# What from_pretrained(..., name=value) may set: the fields, transformers' attributes, the labels.
SETTABLE = frozenset(PlainBertConfig.__dataclass_fields__) - {"extra"} | set(DEFAULTS) | \
    _HF_INFORMATIONAL_KEYS | set(_HF_FIXED_KEYS) | {"num_labels", "id2label", "label2id", "torch_dtype"}
# Set per call, never written to config.json unless changed (transformers' diff rule).
_RUNTIME = ("output_hidden_states", "output_attentions", "return_dict")
_FIELDS = frozenset(PlainBertConfig.__dataclass_fields__)


class BertConfig(PlainBertConfig):
    """``BertConfig(vocab_size=30522, hidden_size=768, ..., num_labels=2, id2label=None, ...)``
    as in transformers: every argument by keyword, every other transformers attribute too."""

    model_type = "bert"

    def __init__(self, vocab_size: int = 30522, hidden_size: int = 768,
                 num_hidden_layers: int = 12, num_attention_heads: int = 12,
                 intermediate_size: int = 3072, hidden_act="gelu",
                 hidden_dropout_prob: float = 0.1, attention_probs_dropout_prob: float = 0.1,
                 max_position_embeddings: int = 512, type_vocab_size: int = 2,
                 initializer_range: float = 0.02, layer_norm_eps: float = 1e-12, **kwargs):
        super().__init__(vocab_size=vocab_size, hidden_size=hidden_size,
                         num_hidden_layers=num_hidden_layers,
                         num_attention_heads=num_attention_heads,
                         intermediate_size=intermediate_size, hidden_act=hidden_act,
                         hidden_dropout_prob=hidden_dropout_prob,
                         attention_probs_dropout_prob=attention_probs_dropout_prob,
                         max_position_embeddings=max_position_embeddings,
                         type_vocab_size=type_vocab_size, initializer_range=initializer_range,
                         layer_norm_eps=layer_norm_eps)
        self.update(kwargs)

    @classmethod
    def from_plain(cls, config: PlainBertConfig) -> "BertConfig":
        """This class over a copy of ``config`` (fields and extra keys)."""
        if isinstance(config, cls):
            return config
        if not isinstance(config, PlainBertConfig):
            raise ConfigError(f"expected a BertConfig, got {type(config).__name__}; load one with "
                              "AutoConfig.from_pretrained(name)")
        face = cls.__new__(cls)
        face.__dict__.update(copy.deepcopy(config.__dict__))
        return face

    # -- attributes: fields as they are, transformers' keys in `extra` ---------------------------
    def __getattr__(self, name: str):
        extra = self.__dict__.get("extra")
        if extra is None or name.startswith("__"):
            raise AttributeError(name)
        name = "dtype" if name == "torch_dtype" else name
        if name in extra:
            return extra[name]
        if name in DEFAULTS:
            return DEFAULTS[name]
        raise AttributeError(f"'BertConfig' object has no attribute {name!r}")

    def __setattr__(self, name: str, value) -> None:
        if name in _FIELDS or name == "extra" or isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        expected = _HF_FIXED_KEYS.get(name)
        if expected is not None and value is not None and value != expected:
            raise ConfigError(f"{name}={value!r} is not supported (BERT uses {name}={expected!r}); "
                              "this config would describe a different architecture")
        if name in ("torch_dtype", "dtype"):
            name, value = "dtype", _dtype_name(value)
        if name == "problem_type" and value not in (None, *PROBLEM_TYPES):
            raise ConfigError(f"problem_type must be one of {', '.join(PROBLEM_TYPES)} or None, got "
                              f"{value!r}")
        self.extra[name] = value

    def update(self, values: Dict[str, Any]) -> None:
        """Set attributes from a dict; ``num_labels`` after labels given in the same dict."""
        values = dict(values)
        num_labels = values.pop("num_labels", None)
        for name, value in values.items():
            setattr(self, name, value)
        if num_labels is not None and "id2label" not in values:
            self.num_labels = num_labels

    @property
    def id2label(self) -> Dict[int, str]:
        """Class id -> label name; ``LABEL_0``, ``LABEL_1``, ... when the config names none."""
        labels, _ = config_files.label_maps(self)
        return labels or {0: "LABEL_0", 1: "LABEL_1"}

    @id2label.setter
    def id2label(self, value) -> None:
        fields = config_files.label_fields(value or {})
        self.extra.pop("label2id", None)
        self.extra.pop("id2label", None)
        self.extra.update(fields)

    @property
    def label2id(self) -> Dict[str, int]:
        given = self.extra.get("label2id")
        if isinstance(given, dict) and given:
            return {str(k): int(v) for k, v in given.items()}
        return {name: i for i, name in self.id2label.items()}

    @label2id.setter
    def label2id(self, value) -> None:
        self.extra.update(config_files.label_fields(self.id2label, value))

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"num_labels must be a positive integer, got {value!r}")
        if value != self.num_labels:
            self.id2label = {i: f"LABEL_{i}" for i in range(value)}

    @property
    def use_return_dict(self) -> bool:
        return bool(self.return_dict)

    @property
    def name_or_path(self) -> str:
        return self.extra.get("_name_or_path", "")

    @name_or_path.setter
    def name_or_path(self, value) -> None:
        self.extra["_name_or_path"] = os.fspath(value)

    # -- serialisation: transformers' config.json -------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """Every attribute, as transformers' ``to_dict`` (the Google fields, the defaults of
        transformers' other attributes, the keys read from the file, the labels)."""
        data = {**PlainBertConfig.to_dict(self), "layer_norm_eps": self.layer_norm_eps}
        data.update({k: v for k, v in DEFAULTS.items()})
        data.update(copy.deepcopy(self.extra))
        data.update(model_type=self.model_type, id2label=self.id2label, label2id=self.label2id)
        return data

    def to_json_string(self, extra: Optional[Dict[str, Any]] = None, use_diff: bool = True) -> str:
        """config.json's text; ``use_diff``: transformers' per-call switches and default labels
        only when changed. ``extra``: more keys (as the 0.6.2-style ``to_json_string``)."""
        data = self.to_dict()
        data.update(extra or {})
        data.pop("_name_or_path", None)
        if use_diff:
            for name in _RUNTIME:
                if data[name] == DEFAULTS[name]:
                    del data[name]
            if "id2label" not in self.extra:
                del data["id2label"], data["label2id"]
        if callable(data["hidden_act"]):
            raise ConfigError(f"hidden_act is a callable ({data['hidden_act']!r}) and cannot be "
                              "written to config.json; use an activation name such as 'gelu'")
        try:
            return json.dumps(data, indent=2, sort_keys=True) + "\n"
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"this config cannot be written as JSON ({exc}); set its attributes "
                              "to numbers, strings, lists or dicts") from None

    def to_json_file(self, json_file_path, extra: Optional[Dict[str, Any]] = None,
                     use_diff: bool = True) -> None:
        text = self.to_json_string(extra, use_diff=use_diff)
        with open(json_file_path, "w", encoding="utf-8") as writer:
            writer.write(text)

    def save_pretrained(self, save_directory) -> None:
        """``config.json`` in ``save_directory`` (created if missing), as transformers writes it."""
        folder = Path(save_directory)
        if folder.exists() and not folder.is_dir():
            raise EntryNotFoundError(f"save_pretrained({str(folder)!r}): that is a file; pass a "
                                     "folder (it is created if missing)")
        folder.mkdir(parents=True, exist_ok=True)
        self.to_json_file(folder / HF_CONFIG_NAME)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs) -> "BertConfig":
        return AutoConfig.from_pretrained(pretrained_model_name_or_path, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


def check_overrides(what: str, overrides: Dict[str, Any]) -> None:
    """Keyword arguments of ``from_pretrained`` that name no config attribute fail by name (in
    transformers they go to the model's constructor, which refuses them)."""
    unknown = sorted(set(overrides) - SETTABLE)
    if unknown:
        import difflib
        close = difflib.get_close_matches(unknown[0], sorted(SETTABLE), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        if unknown[0] == "ignore_mismatched_sizes":
            hint = ("; it is not supported: load the checkpoint with its own number of labels, "
                    "then replace the classifier")
        raise InvalidArgumentError(f"{what} takes no argument {unknown[0]!r} (neither a loading "
                                   f"option nor a config attribute){hint}")


def _dtype_name(value) -> Optional[str]:
    """A dtype as config.json names it ("float32"); None and "auto" stay."""
    if value is None or value == "auto":
        return value
    return str(value).replace("torch.", "", 1)


# Options of from_pretrained that say where the files are, not what the config holds.
LOAD_OPTIONS = ("cache_dir", "force_download", "local_files_only", "revision", "token")
_IGNORED = ("trust_remote_code", "return_unused_kwargs", "subfolder", "_from_auto")


class AutoConfig:
    """``AutoConfig.from_pretrained(name, **overrides)``: the config of any model that
    ``from_pretrained`` loads (Hub id, folder, archive, URL, registry name), as a
    transformers-style ``BertConfig``; a config whose ``model_type`` is not BERT fails naming it."""

    def __init__(self):
        raise InvalidArgumentError("AutoConfig is not built directly: use "
                                   "AutoConfig.from_pretrained(name) or AutoConfig.for_model('bert')")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, cache_dir=None,
                        force_download: bool = False, local_files_only: bool = False,
                        revision: Optional[str] = None, token=None, **overrides) -> BertConfig:
        from ..hub import resolve_model

        for name in _IGNORED:
            overrides.pop(name, None)
        check_overrides("AutoConfig.from_pretrained", overrides)
        name = os.fspath(pretrained_model_name_or_path)
        files = resolve_model(name, need_weights=False, cache_dir=cache_dir,
                              force_download=force_download, local_files_only=local_files_only,
                              revision=revision, token=token)
        if files.config_file is None:
            raise EntryNotFoundError(
                f"{name!r} has no config.json or bert_config.json (only a vocabulary): it holds a "
                "tokenizer, not a model; load it with AutoTokenizer.from_pretrained")
        config = BertConfig.from_plain(config_files.read_config(files.config_file, source=name))
        config.name_or_path = name
        config.update(overrides)
        return config

    @classmethod
    def for_model(cls, model_type: str, **kwargs) -> BertConfig:
        if model_type != "bert":
            raise ConfigError(f"model_type {model_type!r} is not supported: bert_hub builds BERT "
                              "models only (model_type 'bert')")
        return BertConfig(**kwargs)
