"""A model folder's config, read: Google's and 0.6.2's ``bert_config.json`` or a Hugging Face
``config.json`` -> a ``BertConfig``; its labels (``id2label`` / ``label2id``) checked; the
arguments a head is built with from them. Every ``from_pretrained`` reads its config here,
whether the folder came from the registry, a path, an archive or the Hugging Face Hub.

The JSON is read with bounds (``json_files``): a hostile file is a ``ConfigError`` naming it.
"""
from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from .config import BertConfig, short_repr
from .errors import ConfigError
from .filenames import CONFIG_NAME, HF_CONFIG_NAME
from .json_files import read_json

logger = logging.getLogger(__name__)

# A folder's config file, in the order looked for: ours / Google's / 0.6.2's, then Hugging Face's.
CONFIG_NAMES = (CONFIG_NAME, HF_CONFIG_NAME)
# Hugging Face activation names -> ours (the same functions).
_HF_ACTIVATIONS = {"gelu_python": "gelu", "gelu_fast": "gelu_new"}


def config_file(folder: Union[str, os.PathLike]) -> Optional[Path]:
    """The config file of a model folder (``CONFIG_NAMES`` order), or None."""
    for name in CONFIG_NAMES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def read_config(path: Union[str, os.PathLike], source: Optional[str] = None) -> BertConfig:
    """A ``BertConfig`` from Google's ``bert_config.json`` or a Hugging Face ``config.json``
    (``path``: the file, or a model folder holding one). ``source`` names the model in errors
    (e.g. a Hub id; default: the path).

    A Hugging Face config must describe BERT (``model_type`` "bert"); its activation names are
    mapped to ours and its ``id2label`` / ``label2id`` kept in ``config.extra`` (checked here:
    :func:`label_maps` reads them)."""
    if os.path.isdir(path):
        found = config_file(path)
        if found is None:
            raise ConfigError(f"{os.fspath(path)!r} holds no {' or '.join(CONFIG_NAMES)}: pass "
                              "a model folder or its config file")
        path = found
    data = read_json(path, ConfigError, "config file",
                     fix="pass the model's config.json or bert_config.json (one JSON object)")
    what = source or str(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: a config must be a JSON object, got "
                          f"{type(data).__name__}")
    model_type, architectures = data.get("model_type"), data.get("architectures")
    if model_type is not None and not isinstance(model_type, str) or \
            architectures is not None and not isinstance(architectures, (list, str)):
        raise ConfigError(f"{what}: model_type ({short_repr(model_type)}) must be a name and "
                          f"architectures ({short_repr(architectures)}) a list of class names")
    architectures = [architectures] if isinstance(architectures, str) else \
        [a for a in architectures or [] if isinstance(a, str)]
    if model_type not in (None, "bert") or any(not a.startswith("Bert") for a in architectures):
        raise ConfigError(
            f"{what} is a {model_type or architectures[0]!r} model (config.json model_type "
            f"{model_type!r}, architectures {architectures}); bert_hub loads BERT models only "
            "(model_type 'bert')")
    act = data.get("hidden_act")
    if isinstance(act, str) and act in _HF_ACTIVATIONS:
        data = {**data, "hidden_act": _HF_ACTIVATIONS[act]}
    try:
        config = BertConfig.from_dict(data)
        label_maps(config)   # malformed labels fail here, at load
    except ConfigError as exc:
        raise ConfigError(f"{what}: {exc}") from None
    return config


def label_maps(config: BertConfig) -> Tuple[Dict[int, str], Dict[str, int]]:
    """``(id2label, label2id)`` from a config's ``id2label`` / ``label2id`` (empty when absent)."""
    raw = config.extra.get("id2label") or {}
    try:
        id2label = {int(k): str(v) for k, v in dict(raw).items()}
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"id2label must map class ids to label names, e.g. {{\"0\": \"O\"}}; "
                          f"got {short_repr(raw)}") from None
    if id2label and sorted(id2label) != list(range(len(id2label))):
        raise ConfigError(f"id2label must name classes 0..{len(id2label) - 1}, got ids "
                          f"{sorted(id2label)}")
    given = config.extra.get("label2id")
    if isinstance(given, dict) and given:
        if not all(type(v) is int for v in given.values()):
            raise ConfigError(f"label2id must map label names to class ids, e.g. {{\"O\": 0}}; "
                              f"got {short_repr(given)}")
        return id2label, {str(k): v for k, v in given.items()}
    return id2label, {name: i for i, name in id2label.items()}


def label_fields(id2label, label2id=None) -> Dict[str, Dict]:
    """``{"id2label": {"0": name, ...}, "label2id": {name: 0, ...}}`` as a config.json holds
    them (ids as strings), checked; ``{}`` without labels. ``label2id`` defaults to the
    inverse of ``id2label``."""
    if not id2label:
        return {}
    try:
        names = {int(k): v for k, v in dict(id2label).items()}
    except (TypeError, ValueError):
        raise ConfigError(f"id2label must map class ids (0, 1, ...) to label names, got "
                          f"{id2label!r:.200}") from None
    if sorted(names) != list(range(len(names))) or not all(isinstance(v, str) for v in names.values()):
        raise ConfigError(f"id2label must name classes 0..{len(names) - 1} with str labels, got "
                          f"{id2label!r:.200}")
    ids = dict(label2id) if label2id else {name: i for i, name in names.items()}
    if not all(isinstance(k, str) and type(v) is int for k, v in ids.items()):
        raise ConfigError(f"label2id must map label names (str) to class ids (int), got "
                          f"{label2id!r:.200}")
    return {"id2label": {str(i): names[i] for i in sorted(names)}, "label2id": ids}


def label_arguments(cls, config: BertConfig, inputs: tuple, kwargs: dict):
    """``(kwargs, id2label, label2id)`` for building ``cls``: ``num_labels`` from the config's
    ``id2label`` when the head takes it and the caller did not give it. A caller's different
    ``num_labels`` drops the labels (they describe another head)."""
    id2label, label2id = label_maps(config)
    params = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "config")]
    if "num_labels" not in params or not id2label:
        return kwargs, id2label, label2id
    given = kwargs.get("num_labels", inputs[0] if inputs and params[0] == "num_labels" else None)
    if given is None:
        return {**kwargs, "num_labels": len(id2label)}, id2label, label2id
    if given != len(id2label):
        logger.warning("num_labels=%s differs from the %d labels in the config; the labels are "
                       "dropped", given, len(id2label))
        return kwargs, {}, {}
    return kwargs, id2label, label2id
