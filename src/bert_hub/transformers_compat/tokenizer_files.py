"""A tokenizer's files as transformers reads them: the vocabulary (``tokenizer.json``'s WordPiece
vocabulary when the folder has one, else ``vocab.txt``) and the settings of
``tokenizer_config.json`` / ``special_tokens_map.json``, found for anything ``from_pretrained``
takes (``hub.read_model``), with the checks that refuse another model type's tokenizer. Callers
check that the Rust ``tokenizers`` package is installed first."""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, EntryNotFoundError
from ..filenames import TOKENIZER_CONFIG_NAME, VOCAB_NAME
from ..json_files import read_json

TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
LARGE_INTEGER = int(1e20)        # a model_max_length above this is transformers' "no limit"


def tokenizer_files(name: str, load: dict):
    """``(vocabulary, settings)``: the vocabulary as transformers takes it (tokenizer.json's
    WordPiece vocabulary, else vocab.txt as Rust reads it), a dict token -> id, and the settings
    of tokenizer_config.json / special_tokens_map.json, the registry's casing and length first.
    A config.json of another model type, or a tokenizer_class that is not BERT's, fails naming
    it. Read while the folder stays (``hub.read_model``: a cache entry removed meanwhile is
    resolved again)."""
    from ..hub import read_model

    path = Path(name).expanduser()
    if path.is_dir() and (path / TOKENIZER_FILE).is_file():   # also a folder without vocab.txt
        return _read(name, path, path / VOCAB_NAME, {})
    return read_model(name, lambda files: _read(
        name, files.folder, files.vocab_file,
        {"do_lower_case": files.do_lower_case, "model_max_length": files.max_len}),
        need_weights=False, **load)


def _read(name: str, folder: Path, vocab_file, registry: dict):
    from tokenizers.models import WordPiece

    from .. import config_files

    settings = {}
    for file_name in (SPECIAL_TOKENS_MAP_FILE, TOKENIZER_CONFIG_NAME):
        settings.update(_read_json(folder / file_name))
    tokenizer_class = settings.get("tokenizer_class")
    if tokenizer_class and not str(tokenizer_class).startswith("BertTokenizer"):
        raise ConfigError(f"{name!r} uses a {tokenizer_class!r}; bert_hub's tokenizer is BERT's "
                          "WordPiece (tokenizer_class 'BertTokenizer')")
    config = config_files.config_file(folder)
    if config is not None:
        config_files.read_config(config, source=name)          # a non-BERT model fails here
    settings.update({k: v for k, v in registry.items() if v is not None})
    if settings.get("model_max_length") is not None and settings["model_max_length"] > LARGE_INTEGER:
        del settings["model_max_length"]
    tokenizer_json = folder / TOKENIZER_FILE
    if tokenizer_json.is_file():
        model = _read_json(tokenizer_json).get("model") or {}
        if model.get("type") not in ("WordPiece", None) or not isinstance(model.get("vocab"), dict):
            raise ConfigError(f"{str(tokenizer_json)!r} holds a {model.get('type')!r} tokenizer; "
                              "bert_hub's tokenizer is BERT's WordPiece")
        return model["vocab"], settings
    if vocab_file is None or not Path(vocab_file).is_file():
        raise EntryNotFoundError(f"{name!r} has no vocabulary ({VOCAB_NAME} or {TOKENIZER_FILE} in "
                                 f"{str(folder)!r}): it is a model without a tokenizer")
    return WordPiece.read_file(str(vocab_file)), settings


def _read_json(path: Path) -> dict:
    """A settings file's JSON object ({} when the file is absent), read with bounds."""
    if not path.is_file():
        return {}
    data = read_json(path, ConfigError, "tokenizer file")
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} holds a JSON {type(data).__name__}, not an object of "
                          "settings; fix or delete it")
    return data
