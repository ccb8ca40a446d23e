"""BertConfig: Google's fields and defaults, 0.6.2's constructor forms, JSON round trips,
Hugging Face config.json, and every validation message."""
import json

import pytest

from bert_hub.config import BertConfig
from bert_hub.errors import BertHubError, ConfigError

old_modeling = pytest.importorskip(
    "pytorch_pretrained_bert.modeling", reason="pytorch-pretrained-bert 0.6.2 not installed")

# The bert_config.json of Google's uncased_L-12_H-768_A-12 release, verbatim.
GOOGLE_BASE_UNCASED = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


def test_defaults_are_those_of_the_released_base_config():
    assert BertConfig(30522).to_dict() == GOOGLE_BASE_UNCASED


def test_defaults_equal_those_of_0_6_2():
    ours, theirs = BertConfig(30522), old_modeling.BertConfig(30522)
    assert ours.to_dict() == theirs.to_dict()
    assert ours.to_json_string() == theirs.to_json_string()


def test_constructor_forms(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(dict(GOOGLE_BASE_UNCASED, hidden_size=256, num_attention_heads=4)))
    by_path = BertConfig(str(path))
    assert by_path.hidden_size == 256 and by_path.num_attention_heads == 4
    assert BertConfig(path) == by_path                          # os.PathLike too
    assert BertConfig(vocab_size_or_config_json_file=str(path)) == by_path
    keyword = BertConfig(vocab_size_or_config_json_file=100, hidden_size=64,
                         num_attention_heads=2, intermediate_size=128)
    assert (keyword.vocab_size, keyword.hidden_size, keyword.intermediate_size) == (100, 64, 128)
    assert BertConfig(vocab_size=100, hidden_size=64, num_attention_heads=2,
                      intermediate_size=128) == keyword


def test_json_round_trip_and_0_6_2_reads_our_file(tmp_path):
    config = BertConfig(99, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=40, hidden_act="relu", hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.25, max_position_embeddings=64,
                        type_vocab_size=3, initializer_range=0.5)
    path = tmp_path / "bert_config.json"
    config.to_json_file(path)
    assert BertConfig.from_json_file(path) == config
    assert BertConfig.from_dict(json.loads(config.to_json_string())) == config
    theirs = old_modeling.BertConfig.from_json_file(str(path))
    assert theirs.to_dict() == config.to_dict()
    assert BertConfig.from_json_file(path).to_json_string() == theirs.to_json_string()


def test_hugging_face_config_json(tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers not installed")
    hf = transformers.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=37,
                                 max_position_embeddings=64, type_vocab_size=2)
    hf.save_pretrained(tmp_path)
    config = BertConfig.from_json_file(tmp_path / "config.json")
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers,
            config.num_attention_heads, config.intermediate_size,
            config.max_position_embeddings) == (99, 32, 2, 4, 37, 64)
    assert "model_type" in config.extra
    assert set(json.loads(config.to_json_string())) == set(GOOGLE_BASE_UNCASED)


@pytest.mark.parametrize("key, value", [
    ("position_embedding_type", "relative_key"), ("is_decoder", True), ("layer_norm_eps", 1e-5),
])
def test_hugging_face_keys_that_change_the_network_are_refused(key, value):
    data = dict(GOOGLE_BASE_UNCASED, **{key: value})
    with pytest.raises(ConfigError, match=f"{key}={value!r} is not supported"):
        BertConfig.from_dict(data)


def test_unknown_keys_are_kept_aside_and_logged(caplog):
    with caplog.at_level("WARNING", logger="bert_hub.config"):
        config = BertConfig.from_dict(dict(GOOGLE_BASE_UNCASED, hiden_size=10))
    assert config.extra == {"hiden_size": 10}
    assert "hiden_size" in caplog.text
    assert "hiden_size" not in config.to_json_string()


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_size=770, num_attention_heads=12),
     r"hidden_size \(770\) is not a multiple of num_attention_heads \(12\)"),
    (dict(hidden_act="gelu_fast"), r"unknown hidden_act 'gelu_fast'; use one of gelu, relu"),
    (dict(hidden_size=0), r"hidden_size must be positive, got 0"),
    (dict(num_hidden_layers=-1), r"num_hidden_layers must be positive, got -1"),
    (dict(num_attention_heads=0), r"num_attention_heads must be positive, got 0"),
    (dict(intermediate_size=0), r"intermediate_size must be positive, got 0"),
    (dict(max_position_embeddings=0), r"max_position_embeddings must be positive, got 0"),
    (dict(type_vocab_size=0), r"type_vocab_size must be positive, got 0"),
    (dict(hidden_size=76.8), r"hidden_size must be an integer, got 76.8"),
    (dict(hidden_dropout_prob=1.0), r"hidden_dropout_prob \(1.0\) must be in \[0, 1\)"),
    (dict(attention_probs_dropout_prob=-0.1),
     r"attention_probs_dropout_prob \(-0.1\) must be in \[0, 1\)"),
    (dict(hidden_dropout_prob="0.1"), r"hidden_dropout_prob must be a number in \[0, 1\), got '0.1'"),
    (dict(initializer_range=-0.02), r"initializer_range must be a non-negative number, got -0.02"),
])
def test_validation_messages(kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        BertConfig(30522, **kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, BertHubError)


@pytest.mark.parametrize("first, message", [
    (0, r"vocab_size must be positive, got 0"),
    (True, r"vocab_size must be an integer, got True"),
    (None, r"needs a vocabulary size \(int\) or the path of a bert_config.json"),
])
def test_vocab_size_messages(first, message):
    with pytest.raises(ConfigError, match=message):
        BertConfig(first)


def test_vocab_size_given_twice():
    with pytest.raises(ConfigError, match=r"vocab_size given twice \(10 and vocab_size=20\)"):
        BertConfig(10, vocab_size=20)


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"config file '.*nope.json' does not exist"):
        BertConfig.from_json_file(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=r"config file '.*bad.json' is not valid JSON"):
        BertConfig(str(bad))
    novocab = tmp_path / "novocab.json"
    novocab.write_text(json.dumps({"hidden_size": 768}))
    with pytest.raises(ConfigError, match=r"the config has no 'vocab_size'"):
        BertConfig.from_json_file(novocab)
    with pytest.raises(ConfigError, match=r"a config must be a JSON object, got list"):
        BertConfig.from_dict([1, 2])


def test_callable_activation_is_accepted_but_not_serialised():
    config = BertConfig(99, hidden_size=32, num_attention_heads=4, hidden_act=abs)
    assert config.hidden_act is abs
    with pytest.raises(ConfigError, match=r"hidden_act is a callable .* cannot be written to JSON"):
        config.to_json_string()
