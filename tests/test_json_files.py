"""JSON from model folders read with bounds (bert_hub.json_files), and every loader that reads
such a file answering a hostile one with a typed error naming it."""
import json
import random
import shutil
import sys

import pytest

from bert_hub import json_files
from bert_hub.errors import ConfigError, ConversionError, InvalidInputError

from mirror import TF_TINY

DEEP = "[" * 3000 + "]" * 3000           # a few KB: RecursionError inside json without the bound


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max([depth(v) for v in value] or [0])
    if isinstance(value, dict):
        return 1 + max([depth(v) for v in value.values()] or [0])
    return 0


def spine(rng, levels):
    """One deep path, shallow siblings, and brackets and quotes inside strings."""
    if levels == 0:
        return rng.choice([1, "a[{", "]", None, 'x\\"y', "\\\\", [], {}])
    inner = [spine(rng, levels - 1)] + [rng.choice([1, "[", {"s": "]"}]) for _ in range(rng.randint(0, 2))]
    rng.shuffle(inner)
    return inner if rng.random() < 0.5 else {f"k{i}[": v for i, v in enumerate(inner)}


def test_nesting_is_counted_as_json_nests():
    rng = random.Random(0)
    for _ in range(1500):
        value = spine(rng, rng.randint(0, 90))
        text = json.dumps(value)
        assert json_files.nests_deeper_than(text) == (depth(value) > json_files.MAX_DEPTH), text[:120]
    assert not json_files.nests_deeper_than('{"note": "' + "[" * 5000 + '"}')     # in a string
    assert json_files.nests_deeper_than("[" * 100_000)                            # never closed
    assert not json_files.nests_deeper_than('{"a": [1, 2' + "[]" * 100)            # merely broken


def test_read_json_bounds_and_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    cases = {
        DEEP.encode(): r"config\.json' nests too deeply \(more than 64 levels",
        b'{"a": ' + b'{"b":' * 70 + b"1" + b"}" * 70 + b"}": "nests too deeply",
        b'{"vocab_size": ' + b"9" * 5000 + b"}": "is not valid JSON",
        b'{"a": 1': "is not valid JSON",
        b"\xff\xfe{}": "is not UTF-8 text",
    }
    for text, message in cases.items():
        path.write_bytes(text)
        with pytest.raises(ConfigError, match=message) as info:
            json_files.read_json(path, ConfigError, "config file")
        assert str(path) in str(info.value) and info.value.__cause__ is None
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"a": [[1]]}).encode())           # a BOM: fine
    assert json_files.read_json(path, ConfigError) == {"a": [[1]]}
    path.write_bytes(b'{"pad": "' + b"x" * 2000 + b'"}')
    with pytest.raises(InvalidInputError, match="is over 0 MB, far larger than any config"):
        json_files.read_json(path, InvalidInputError, max_bytes=1000)
    with pytest.raises(ConfigError, match="does not exist"):
        json_files.read_json(tmp_path / "missing.json", ConfigError)
    with pytest.raises(ConfigError, match="is a folder, not a file"):
        json_files.read_json(tmp_path, ConfigError)


def test_deep_json_stays_typed_under_any_recursion_limit(tmp_path):
    """The nesting is refused before json recurses: a raised limit cannot overflow the C stack,
    a lowered one still gives the typed error."""
    path = tmp_path / "config.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    limit = sys.getrecursionlimit()
    try:
        for new in (10**6, 80):
            sys.setrecursionlimit(new)
            with pytest.raises(ConfigError, match="nests too deeply"):
                json_files.read_json(path, ConfigError)
        sys.setrecursionlimit(80)
        path.write_text("[" * 60 + "]" * 60)            # within MAX_DEPTH, beyond this limit
        with pytest.raises(ConfigError, match="nests too deeply to read"):
            json_files.read_json(path, ConfigError)
    finally:
        sys.setrecursionlimit(limit)


@pytest.fixture
def hf_folder(tmp_path):
    """A Hugging Face BERT folder of the committed tiny model: config.json, vocab.txt,
    tokenizer_config.json, model.safetensors."""
    from bert_hub import BertModel

    folder = tmp_path / "hf"
    BertModel.from_pretrained(shutil.copytree(TF_TINY, tmp_path / "google")).save_pretrained(folder)
    config = json.loads((folder / "bert_config.json").read_text())
    (folder / "bert_config.json").unlink()
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    shutil.copy(TF_TINY / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    return folder


def test_every_json_a_load_reads_is_bounded(hf_folder):
    """The issue's case: a config.json or tokenizer_config.json of nested arrays (a few KB)."""
    from bert_hub import BertForSequenceClassification, BertModel, BertTokenizer

    config = hf_folder / "config.json"
    good = config.read_text()
    config.write_text(good[:-1] + ', "id2label": ' + DEEP + "}")
    for cls in (BertModel, BertForSequenceClassification):
        with pytest.raises(ConfigError, match=r"config\.json' nests too deeply"):
            cls.from_pretrained(hf_folder)
    config.write_text(good)
    (hf_folder / "tokenizer_config.json").write_text(DEEP)
    with pytest.raises(InvalidInputError, match=r"tokenizer_config\.json' nests too deeply"):
        BertTokenizer.from_pretrained(hf_folder)


@pytest.mark.parametrize("field, value, message", [
    ("architectures", 1e400, r"architectures \(inf\) a list of class names"),
    ("model_type", ["bert"], r"model_type \(\['bert'\]\) must be a name"),
    ("label2id", {"a": "zero"}, "label2id must map label names to class ids"),
    ("id2label", {"1e400": "x"}, "id2label must map class ids to label names"),
])
def test_config_json_values_of_the_wrong_type_are_config_errors(hf_folder, field, value, message):
    from bert_hub import BertForSequenceClassification

    data = json.loads((hf_folder / "config.json").read_text())
    (hf_folder / "config.json").write_text(json.dumps({**data, field: value}))
    with pytest.raises(ConfigError, match=message):
        BertForSequenceClassification.from_pretrained(hf_folder)


def test_a_sharded_index_and_the_aliases_metadata_are_bounded(tmp_path, hf_folder):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from bert_hub import BertForPreTraining, weights

    index = hf_folder / "model.safetensors.index.json"
    index.write_text('{"weight_map": ' + DEEP + "}")
    with pytest.raises(ConversionError, match=r"model\.safetensors\.index\.json' nests too deeply"):
        weights.load_weights(index)
    saved = tmp_path / "pt"
    BertForPreTraining.from_pretrained(hf_folder).save_pretrained(saved)
    path = saved / "model.safetensors"
    with safe_open(str(path), "pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())
    save_file(tensors, str(path), metadata={**metadata, weights.ALIASES: DEEP})
    with pytest.raises(ConversionError, match=r"'aliases' metadata nests too deeply"):
        weights.load_weights(path)
