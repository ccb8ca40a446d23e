"""BertConfig: Google's fields and defaults, 0.6.2's constructor forms, JSON round trips,
Hugging Face config.json, and every validation message."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

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
    ("position_embedding_type", "relative_key"), ("is_decoder", True),
])
def test_hugging_face_keys_that_change_the_network_are_refused(key, value):
    data = dict(GOOGLE_BASE_UNCASED, **{key: value})
    with pytest.raises(ConfigError, match=f"{key}={value!r} is not supported"):
        BertConfig.from_dict(data)


def test_layer_norm_eps_is_a_field_written_only_when_not_googles(tmp_path):
    assert BertConfig(99).layer_norm_eps == 1e-12
    assert "layer_norm_eps" not in BertConfig(99).to_dict()      # Google's file stays Google's
    config = BertConfig.from_dict(dict(GOOGLE_BASE_UNCASED, layer_norm_eps=1e-5))
    assert config.layer_norm_eps == 1e-5 and "layer_norm_eps" not in config.extra
    config.to_json_file(tmp_path / "c.json")
    again = BertConfig.from_json_file(tmp_path / "c.json")
    assert again.layer_norm_eps == 1e-5 and again == config
    assert old_modeling.BertConfig.from_json_file(str(tmp_path / "c.json")).hidden_size == 768
    assert BertConfig.from_dict(dict(GOOGLE_BASE_UNCASED, layer_norm_eps=None)).layer_norm_eps \
        == 1e-12                                                   # Hugging Face's null
    assert BertConfig(99, layer_norm_eps=1e-7).layer_norm_eps == 1e-7
    with pytest.raises(ConfigError, match=r"extra keys \['hidden_size'\] are fields"):
        BertConfig(99).to_json_string(extra={"hidden_size": 3, "id2label": {}})


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
    (dict(num_hidden_layers=1e9), r"num_hidden_layers must be an integer, got 1000000000.0"),
    (dict(hidden_dropout_prob=1.0), r"hidden_dropout_prob \(1.0\) must be in \[0, 1\)"),
    (dict(attention_probs_dropout_prob=-0.1),
     r"attention_probs_dropout_prob \(-0.1\) must be in \[0, 1\)"),
    (dict(hidden_dropout_prob="0.1"), r"hidden_dropout_prob must be a number in \[0, 1\), got '0.1'"),
    (dict(initializer_range=-0.02), r"initializer_range must be a non-negative number, got -0.02"),
    (dict(initializer_range=float("inf")), r"initializer_range must be a non-negative number, got inf"),
    (dict(layer_norm_eps=0), r"layer_norm_eps must be a positive number \(BERT uses 1e-12\), got 0"),
    (dict(layer_norm_eps="1e-5"), r"layer_norm_eps must be a positive number .*got '1e-5'"),
    (dict(layer_norm_eps=True), r"layer_norm_eps must be a positive number .*got True"),
])
def test_validation_messages(kwargs, message):
    config = BertConfig(30522, **kwargs)        # any values are stored, as in 0.6.2
    with pytest.raises(ConfigError, match=message) as info:
        config.validate()
    assert isinstance(info.value, ValueError) and isinstance(info.value, BertHubError)


@pytest.mark.parametrize("first, message", [
    (0, r"vocab_size must be positive, got 0"),
    (True, r"vocab_size must be an integer, got True"),
])
def test_vocab_size_messages(first, message):
    with pytest.raises(ConfigError, match=message):
        BertConfig(first).validate()


@pytest.mark.parametrize("first, message", [
    (None, r"needs a vocabulary size \(int\) or the path of a bert_config.json"),
    (30.5, r"first argument of BertConfig is a vocabulary size \(int\) or the path .* got 30.5"),
])
def test_first_argument_must_be_a_size_or_a_path(first, message):
    with pytest.raises(ConfigError, match=message):
        BertConfig(first)


def test_a_config_that_cannot_build_a_model_is_kept_until_a_model_is_built(tmp_path):
    """0.6.2's and Google's tests serialise BertConfig(99, hidden_size=37) (12 heads)."""
    torch = pytest.importorskip("torch")
    from bert_hub.modeling import BertForSequenceClassification, BertModel

    ours = BertConfig(vocab_size_or_config_json_file=99, hidden_size=37)
    theirs = old_modeling.BertConfig(vocab_size_or_config_json_file=99, hidden_size=37)
    assert ours.to_json_string() == theirs.to_json_string()
    assert json.loads(ours.to_json_string())["hidden_size"] == 37
    assert BertConfig(vocab_size=99, hidden_size=37) == ours          # Google's keyword form
    ours.to_json_file(tmp_path / "c.json")
    assert BertConfig.from_json_file(tmp_path / "c.json") == ours
    message = r"hidden_size \(37\) is not a multiple of num_attention_heads \(12\)"
    with pytest.raises(ConfigError, match=message):
        ours.validate()
    for model_class in (BertModel, BertForSequenceClassification):
        with torch.device("meta"), pytest.raises(ConfigError, match=message):
            model_class(ours)


@pytest.mark.parametrize("field, value, message", [
    ("num_hidden_layers", 10**9, r"num_hidden_layers \(1000000000\) is over bert_hub's limit of 1024"),
    ("vocab_size", 2**62, r"vocab_size \(4611686018427387904\) is over bert_hub's limit"),
    ("hidden_size", 2**62, r"hidden_size \(4611686018427387904\) is over"),
    ("max_position_embeddings", 2**40, r"max_position_embeddings \(1099511627776\) is over"),
    ("vocab_size", 2**24, r"about 17,333,487,616 parameters, over bert_hub's limit of "
                          r"8,589,934,592"),
])
def test_sizes_are_bounded_where_a_model_is_built(field, value, message):
    torch = pytest.importorskip("torch")
    from bert_hub.modeling import BertModel

    config = BertConfig(30522, hidden_size=1024, num_attention_heads=16, intermediate_size=4096)
    setattr(config, field, value)
    with pytest.raises(ConfigError, match=message):
        config.validate()
    with torch.device("meta"), pytest.raises(ConfigError, match=message):
        BertModel(config)


def test_big_real_configs_are_within_the_bounds():
    large = BertConfig(30522, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                       intermediate_size=4096)
    large.validate()
    BertConfig(250_002, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
               intermediate_size=4096, max_position_embeddings=514).validate()   # XLM-R-large size
    BertConfig(119_547, max_position_embeddings=8192).validate()                # mBERT, long


def test_hostile_config_files_fail_with_a_config_error(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"vocab_size": 3, "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match=r"nests too deeply"):
        BertConfig.from_json_file(deep)
    digits = tmp_path / "digits.json"
    digits.write_text('{"vocab_size": ' + "9" * 5000 + "}")
    with pytest.raises(ConfigError, match=r"is not valid JSON"):
        BertConfig.from_json_file(digits)
    # nested far deeper than any config, yet below the parser's limit: refused before parsing
    nested = tmp_path / "nested.json"
    nested.write_text('{"vocab_size": 3, "hidden_act": ' + "[" * 900 + "]" * 900 + "}")
    with pytest.raises(ConfigError, match=r"nested\.json' nests too deeply \(more than 64 levels"):
        BertConfig(str(nested))
    # such a value given in Python: copying, printing and writing stay typed
    deep = []
    for _ in range(900):
        deep = [deep]
    config = BertConfig.from_dict({"vocab_size": 3, "hidden_act": deep})
    assert len(repr(config)) < 2000
    with pytest.raises(ConfigError, match=r"unknown hidden_act \[+\.\.\.\]+; use one of"):
        config.validate()
    with pytest.raises(ConfigError, match=r"nests too deeply|cannot be written as JSON"):
        config.to_json_string()
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"a config must be a JSON object, got list"):
        BertConfig(str(listed))


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


# ------------------------------------------------------------------------ hostile files, end to end
TF_TINY = Path(__file__).parent / "data" / "tf_tiny"
EXE = shutil.which("bert-hub", path=os.path.dirname(sys.executable) + os.pathsep
                   + os.environ.get("PATH", ""))


def _hostile_configs(folder: Path) -> dict:
    base = json.loads((TF_TINY / "bert_config.json").read_text())
    files = {
        "deep": '{"vocab_size": 30, "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "sizes": json.dumps(dict(base, hidden_size=2**62)),
        "layers": json.dumps(dict(base, num_hidden_layers=1e9)),
        "list": json.dumps([base]),
        "heads": json.dumps(dict(base, hidden_size=37)),
    }
    for name, text in files.items():
        (folder / f"{name}.json").write_text(text)
    return {name: folder / f"{name}.json" for name in files}


def test_bert_hub_convert_prints_one_line_for_hostile_configs(tmp_path, capsys):
    from bert_hub import cli

    configs = _hostile_configs(tmp_path)
    weights = tmp_path / "model.safetensors"
    assert cli.main(["convert", "--tf-checkpoint", str(TF_TINY / "bert_model.ckpt"), "--config",
                     str(TF_TINY / "bert_config.json"), "--out", str(weights)]) == 0
    expected = {"deep": "nests too deeply", "sizes": "hidden_size (4611686018427387904) is over",
                "layers": "num_hidden_layers must be an integer, got 1000000000.0",
                "list": "a config must be a JSON object, got list",
                "heads": "shapes do not match the config"}
    for name, path in configs.items():
        for args in (["--to-tf", "--weights", str(weights), "--out", str(tmp_path / "tf" / "ck")],
                     ["--tf-checkpoint", str(TF_TINY / "bert_model.ckpt"),
                      "--out", str(tmp_path / "x.safetensors")]):
            capsys.readouterr()
            assert cli.main(["convert", "--config", str(path), *args]) == 1, (name, args[0])
            lines = capsys.readouterr().err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("bert-hub: error: "), (name, lines)
            assert expected[name] in lines[0], lines
    assert not (tmp_path / "x.safetensors").exists() and not (tmp_path / "tf").exists()
    if EXE is not None:  # and the installed command, once, as a user runs it
        proc = subprocess.run([EXE, "convert", "--to-tf", "--weights", str(weights), "--config",
                               str(configs["deep"]), "--out", str(tmp_path / "tf" / "ck")],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr[-2000:]
        assert proc.stderr.startswith("bert-hub: error: config file") and "Traceback" not in proc.stderr


@pytest.mark.parametrize("text, message", [
    ('[{"do_lower_case": true}]', r"holds a JSON list, not an object of tokenizer settings"),
    ('"lower"', r"holds a JSON str, not an object"),
    ("[" * 100_000 + "]" * 100_000, r"nests too deeply"),
    ('{"do_lower_case": ' + "[" * 65 + "]" * 65 + "}", r"tokenizer_config\.json' nests too deeply"),
])
def test_tokenizer_config_that_is_not_an_object(tmp_path, text, message):
    from bert_hub.errors import InvalidInputError
    from bert_hub.tokenization import BertTokenizer

    shutil.copy(TF_TINY / "vocab.txt", tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(text)
    with pytest.raises(InvalidInputError, match=message):
        BertTokenizer.from_pretrained(str(tmp_path))
