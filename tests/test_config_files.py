"""A model folder's config read (bert_hub.config_files): bert_config.json or Hugging Face's
config.json, a file or a folder, labels checked, a head's arguments from them."""
import json

import pytest

from bert_hub import config_files
from bert_hub.config import BertConfig
from bert_hub.errors import ConfigError
from bert_hub.modeling import BertForSequenceClassification, BertForTokenClassification, BertModel

SIZES = dict(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
             intermediate_size=32, max_position_embeddings=16)
LABELS = {"0": "O", "1": "B-PER", "2": "I-PER"}


def write(folder, name, data):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data))
    return folder / name


def test_a_file_or_a_folder_of_either_kind(tmp_path):
    ours = write(tmp_path / "ours", "bert_config.json", SIZES)
    hf = write(tmp_path / "hf", "config.json", {**SIZES, "model_type": "bert", "hidden_act": "gelu_fast",
                                                "architectures": ["BertForTokenClassification"],
                                                "id2label": LABELS})
    for path in (ours, ours.parent):
        config = config_files.read_config(path)
        assert isinstance(config, BertConfig) and config.hidden_size == 16
    config = config_files.read_config(hf.parent)
    assert config.hidden_act == "gelu_new"                      # Hugging Face's name, mapped
    assert config_files.label_maps(config) == ({0: "O", 1: "B-PER", 2: "I-PER"},
                                               {"O": 0, "B-PER": 1, "I-PER": 2})
    both = tmp_path / "both"
    write(both, "bert_config.json", SIZES)
    write(both, "config.json", {**SIZES, "hidden_size": 32})
    assert config_files.config_file(both).name == "bert_config.json"   # the resolver's order
    assert config_files.read_config(both).hidden_size == 16
    assert config_files.config_file(tmp_path) is None


def test_labels_become_the_heads_arguments(tmp_path):
    config = config_files.read_config(write(tmp_path, "config.json", {**SIZES, "id2label": LABELS}))
    kwargs, id2label, _ = config_files.label_arguments(BertForTokenClassification, config, (), {})
    assert kwargs == {"num_labels": 3} and id2label[1] == "B-PER"
    kwargs, id2label, label2id = config_files.label_arguments(
        BertForSequenceClassification, config, (5,), {})            # another head: labels dropped
    assert (kwargs, id2label, label2id) == ({}, {}, {})
    assert config_files.label_arguments(BertModel, config, (), {})[0] == {}
    fields = config_files.label_fields({0: "neg", 1: "pos"})
    assert fields == {"id2label": {"0": "neg", "1": "pos"}, "label2id": {"neg": 0, "pos": 1}}
    assert config_files.label_fields({}) == {}


@pytest.mark.parametrize("data, message", [
    ([SIZES], "a config must be a JSON object, got list"),
    ({**SIZES, "model_type": "roberta"}, "is a 'roberta' model"),
    ({**SIZES, "architectures": ["GPT2LMHeadModel"]}, "bert_hub loads BERT models only"),
    ({k: v for k, v in SIZES.items() if k != "vocab_size"}, "the config has no 'vocab_size'"),
    ({**SIZES, "id2label": {"0": "a", "2": "b"}}, r"id2label must name classes 0\.\.1"),
])
def test_errors_name_the_file(tmp_path, data, message):
    path = write(tmp_path, "config.json", data)
    with pytest.raises(ConfigError, match=message) as info:
        config_files.read_config(path)
    assert str(path) in str(info.value)


def test_a_folder_without_a_config_and_a_named_source(tmp_path):
    with pytest.raises(ConfigError, match="holds no bert_config.json or config.json"):
        config_files.read_config(tmp_path)
    path = write(tmp_path, "config.json", {**SIZES, "model_type": "gpt2"})
    with pytest.raises(ConfigError, match="^acme/gpt is a 'gpt2' model"):
        config_files.read_config(path, source="acme/gpt")


def test_the_earlier_import_path_still_works():
    from bert_hub import hf_hub

    assert hf_hub.read_config is config_files.read_config
    assert hf_hub.label_maps is config_files.label_maps
    assert hf_hub.label_fields is config_files.label_fields
    assert hf_hub.label_arguments is config_files.label_arguments
