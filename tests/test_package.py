"""The package surface: 0.6.2's public names resolve, and the light paths stay light."""
import subprocess
import sys

import bert_hub

NAMES_062 = [
    "BertConfig", "BertModel", "BertForPreTraining", "BertForMaskedLM", "BertForNextSentencePrediction",
    "BertForSequenceClassification", "BertForMultipleChoice", "BertForTokenClassification",
    "BertForQuestionAnswering", "load_tf_weights_in_bert", "BertTokenizer", "BasicTokenizer",
    "WordpieceTokenizer", "BertAdam", "PYTORCH_PRETRAINED_BERT_CACHE", "cached_path", "WEIGHTS_NAME",
    "CONFIG_NAME",
]


def test_every_public_name_resolves():
    for name in NAMES_062 + ["Trainer", "BertHubError"]:
        assert getattr(bert_hub, name) is not None, name
    assert set(NAMES_062) <= set(bert_hub.__all__)
    assert bert_hub.WEIGHTS_NAME == "pytorch_model.bin" and bert_hub.CONFIG_NAME == "bert_config.json"


def test_cache_constant_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BERT_HUB_CACHE", str(tmp_path / "one"))
    assert bert_hub.PYTORCH_PRETRAINED_BERT_CACHE == tmp_path / "one"
    monkeypatch.setenv("BERT_HUB_CACHE", str(tmp_path / "two"))
    assert bert_hub.PYTORCH_PRETRAINED_BERT_CACHE == tmp_path / "two"


def test_download_path_never_imports_torch():
    code = ("import sys, bert_hub, bert_hub.cli, bert_hub.hub, bert_hub.cache, bert_hub.registry, "
            "bert_hub.download; bert_hub.cli.build_parser(); "
            "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_unknown_attribute_is_an_attribute_error():
    import pytest
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        bert_hub.Nope  # noqa: B018
