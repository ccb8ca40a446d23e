"""from_pretrained on local folders (ours, 0.6.2's, Hugging Face's), save_pretrained round trips,
missing heads, shape mismatches, dtype/device options, and the resolver's errors."""
import json
import logging
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from floats import assert_close

from bert_hub import hub, modeling
from bert_hub.errors import ArchiveLayoutError, BertHubError, ConversionError, EntryNotFoundError
from bert_hub.modeling import BertConfig

old = pytest.importorskip("pytorch_pretrained_bert.modeling",
                          reason="pytorch-pretrained-bert 0.6.2 not installed")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64)
VOCAB = 99


def tiny_config():
    return BertConfig(VOCAB, **TINY)


@torch.no_grad()
def randomize(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.copy_(torch.randn(p.shape, generator=gen) * 0.2)


def inputs():
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (2, 9), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return ids, torch.randint(0, 2, (2, 9), generator=gen), mask


def outputs(model):
    """Outputs at every position: bert_hub models with unpad=False, as the peers compute them
    (padding removed: tests/test_modeling.py and tests/test_unpadding.py)."""
    if isinstance(model, modeling.BertPreTrainedModel):
        model.unpad = False
    with torch.no_grad():
        out = model(*inputs())
    return out if isinstance(out, tuple) else (out,)


def assert_same_outputs(a, b):
    assert_close(outputs(a), outputs(b))


def save_0_6_2_folder(folder, model, rename_layer_norm=False):
    """What 0.6.2's example scripts write: torch.save(state_dict) + config.to_json_file."""
    folder.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    if rename_layer_norm:   # checkpoints of 0.6.2's first releases: LayerNorm.gamma / .beta
        state = {k.replace("LayerNorm.weight", "LayerNorm.gamma")
                  .replace("LayerNorm.bias", "LayerNorm.beta"): v for k, v in state.items()}
        assert any(k.endswith("LayerNorm.gamma") for k in state)
    torch.save(state, folder / "pytorch_model.bin")
    model.config.to_json_file(str(folder / "bert_config.json"))
    return folder


# -- 0.6.2 folders ------------------------------------------------------------------------------
@pytest.mark.parametrize("rename", [False, True], ids=["weight-bias", "gamma-beta"])
@pytest.mark.parametrize("name, args", [
    ("BertForPreTraining", ()), ("BertForSequenceClassification", (3,)),
    ("BertForQuestionAnswering", ()), ("BertModel", ()),
])
def test_0_6_2_folder(tmp_path, name, args, rename):
    theirs = getattr(old, name)(old.BertConfig(VOCAB, **TINY), *args).eval()
    randomize(theirs)
    folder = save_0_6_2_folder(tmp_path / "ppb", theirs, rename_layer_norm=rename)
    ours = getattr(modeling, name).from_pretrained(folder, *args)
    assert not ours.training
    assert_same_outputs(ours, theirs)


def test_legacy_torch_save_format(tmp_path):
    """Files saved by the torch 1.0 of 0.6.2's day are not zip files and cannot be mmapped."""
    theirs = old.BertForSequenceClassification(old.BertConfig(VOCAB, **TINY), 2).eval()
    randomize(theirs)
    torch.save(theirs.state_dict(), tmp_path / "pytorch_model.bin",
               _use_new_zipfile_serialization=False)
    theirs.config.to_json_file(str(tmp_path / "bert_config.json"))
    ours = modeling.BertForSequenceClassification.from_pretrained(tmp_path, 2)
    assert_same_outputs(ours, theirs)


def test_pretraining_checkpoint_into_base_model_and_base_into_head(tmp_path, caplog):
    pretraining = old.BertForPreTraining(old.BertConfig(VOCAB, **TINY)).eval()
    randomize(pretraining)
    folder = save_0_6_2_folder(tmp_path / "pt", pretraining)
    base = modeling.BertModel.from_pretrained(folder, unpad=False)  # strips "bert."
    with torch.no_grad():
        got = base(*inputs())
        want = pretraining.bert(*inputs())
    assert_close(got, want)

    base_folder = save_0_6_2_folder(tmp_path / "base", pretraining.bert)
    with caplog.at_level(logging.WARNING, logger="bert_hub.modeling"):
        mlm = modeling.BertForMaskedLM.from_pretrained(base_folder)   # adds "bert."
    assert mlm.cls.predictions.decoder.weight is mlm.bert.embeddings.word_embeddings.weight
    assert torch.equal(mlm.bert.embeddings.word_embeddings.weight,
                       pretraining.bert.embeddings.word_embeddings.weight)
    records = [r for r in caplog.records if "initialised randomly" in r.getMessage()]
    assert len(records) == 1
    message = records[0].getMessage()
    assert "cls.predictions.bias" in message and "cls.predictions.transform.dense.weight" in message
    assert "bert.encoder" not in message


def test_missing_head_is_initialised_like_0_6_2(tmp_path, caplog):
    base = modeling.BertModel(tiny_config())
    randomize(base)
    folder = base.save_pretrained(tmp_path / "base")
    config = BertConfig(VOCAB, **dict(TINY, initializer_range=0.5))
    config.to_json_file(folder / "bert_config.json")
    with caplog.at_level(logging.WARNING, logger="bert_hub.modeling"):
        model = modeling.BertForSequenceClassification.from_pretrained(folder, num_labels=5)
    assert "classifier.bias, classifier.weight" in caplog.text
    weight, bias = model.classifier.weight, model.classifier.bias
    assert weight.device.type == "cpu" and weight.shape == (5, 32)
    assert torch.equal(bias, torch.zeros(5))
    assert 0.3 < weight.std().item() < 0.7                     # normal(0, initializer_range)
    assert weight.requires_grad and bias.requires_grad
    assert torch.equal(model.bert.pooler.dense.weight, base.pooler.dense.weight)


def test_no_random_init_of_weights_about_to_be_overwritten(tmp_path, monkeypatch):
    model = modeling.BertForPreTraining(tiny_config())
    folder = model.save_pretrained(tmp_path / "m")
    calls = []
    real = torch.Tensor.normal_

    def spy(self, *args, **kwargs):
        if self.device.type != "meta":
            calls.append(tuple(self.shape))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "normal_", spy)
    modeling.BertForPreTraining.from_pretrained(folder)
    assert calls == []
    modeling.BertForSequenceClassification.from_pretrained(folder, 4)
    assert calls == [(4, 32)]                                  # only the new classifier


# -- our folder: round trip ---------------------------------------------------------------------
@pytest.mark.parametrize("name, args", [
    ("BertModel", ()), ("BertForPreTraining", ()), ("BertForMaskedLM", ()),
    ("BertForNextSentencePrediction", ()), ("BertForSequenceClassification", (3,)),
    ("BertForMultipleChoice", (2,)), ("BertForTokenClassification", (4,)),
    ("BertForQuestionAnswering", ()),
])
def test_save_pretrained_round_trips_exactly(tmp_path, name, args):
    cls = getattr(modeling, name)
    model = cls(tiny_config(), *args)
    randomize(model)
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bert_config.json", "model.safetensors"]
    stored = load_file(tmp_path / "model.safetensors")
    assert "cls.predictions.decoder.weight" not in stored      # tied: saved once
    loaded = cls.from_pretrained(tmp_path, *args)
    assert type(loaded) is cls and not loaded.training
    assert loaded.config == model.config
    a, b = model.state_dict(), loaded.state_dict()
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    if hasattr(loaded, "cls") and hasattr(loaded.cls, "predictions"):
        assert loaded.cls.predictions.decoder.weight is \
            loaded.bert.embeddings.word_embeddings.weight
    # 0.6.2 takes our weights unchanged
    if name == "BertForPreTraining":
        theirs = old.BertForPreTraining(old.BertConfig.from_json_file(
            str(tmp_path / "bert_config.json"))).eval()
        theirs.load_state_dict(loaded.state_dict(), strict=True)
        assert_same_outputs(loaded, theirs)


def test_saved_weights_file_appears_whole(tmp_path):
    model = modeling.BertModel(tiny_config())
    model.save_pretrained(tmp_path)
    model.save_pretrained(tmp_path)                            # overwrite in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bert_config.json", "model.safetensors"]


def test_dtype_and_device_options(tmp_path):
    model = modeling.BertForMaskedLM(tiny_config())
    randomize(model)
    model.save_pretrained(tmp_path / "fp32")
    bf16 = modeling.BertForMaskedLM.from_pretrained(tmp_path / "fp32", torch_dtype=torch.bfloat16,
                                                    device="cpu")
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in bf16.parameters()} == {"cpu"}
    assert bf16.cls.predictions.decoder.weight is bf16.bert.embeddings.word_embeddings.weight
    assert outputs(bf16)[0].dtype == torch.bfloat16

    model.to(torch.float16).save_pretrained(tmp_path / "fp16")
    default = modeling.BertForMaskedLM.from_pretrained(tmp_path / "fp16")
    assert {p.dtype for p in default.parameters()} == {torch.float32}   # as 0.6.2: float32
    auto = modeling.BertForMaskedLM.from_pretrained(tmp_path / "fp16", torch_dtype="auto")
    assert {p.dtype for p in auto.parameters()} == {torch.float16}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.cuda
def test_device_cuda(tmp_path):
    modeling.BertModel(tiny_config()).save_pretrained(tmp_path)
    model = modeling.BertModel.from_pretrained(tmp_path, device="cuda")
    assert {p.device.type for p in model.parameters()} == {"cuda"}


def test_state_dict_argument_is_used_and_not_aliased(tmp_path):
    source = modeling.BertModel(tiny_config())
    randomize(source, seed=1)
    other = modeling.BertModel(tiny_config())
    randomize(other, seed=2)
    other.save_pretrained(tmp_path)
    state = source.state_dict()
    model = modeling.BertModel.from_pretrained(tmp_path, state_dict=state)
    assert torch.equal(model.pooler.dense.weight, source.pooler.dense.weight)
    with torch.no_grad():
        model.pooler.dense.weight.add_(1.0)
    assert not torch.equal(model.pooler.dense.weight, source.pooler.dense.weight)


# -- errors when loading ------------------------------------------------------------------------
def test_shape_mismatch_names_the_fix(tmp_path):
    model = modeling.BertForSequenceClassification(tiny_config(), 3)
    model.save_pretrained(tmp_path)
    with pytest.raises(ConversionError, match=r"classifier.weight: checkpoint \(3, 32\), model "
                                              r"\(2, 32\) \(.*pass num_labels=3"):
        modeling.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    config = json.loads((tmp_path / "bert_config.json").read_text())
    config["vocab_size"] = 50
    (tmp_path / "bert_config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match=r"word_embeddings.weight: checkpoint \(99, 32\), "
                                              r"model \(50, 32\) \(the config does not describe"):
        modeling.BertForSequenceClassification.from_pretrained(tmp_path, num_labels=3)


class NotAWeight:
    pass


def test_pickle_with_code_is_refused(tmp_path):
    model = modeling.BertModel(tiny_config())
    model.config.to_json_file(tmp_path / "bert_config.json")
    state = dict(model.state_dict(), extra=NotAWeight())
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(ConversionError, match=r"cannot read .*pytorch_model.bin' with torch.load\("
                                              r"weights_only=True\): it holds a Python object "
                                              r"\(test_load_save.NotAWeight\), not only tensors"):
        modeling.BertModel.from_pretrained(tmp_path)


def test_corrupt_safetensors(tmp_path):
    tiny_config().to_json_file(tmp_path / "bert_config.json")
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}garbage")
    with pytest.raises(ConversionError, match=r"is not a valid safetensors file"):
        modeling.BertModel.from_pretrained(tmp_path)


# -- Hugging Face folders -----------------------------------------------------------------------
@pytest.fixture()
def transformers():
    return pytest.importorskip("transformers", reason="transformers not installed")


def hf_config(transformers):
    return transformers.BertConfig(vocab_size=VOCAB, hidden_act="gelu",
                                   attn_implementation="sdpa", **TINY)


@pytest.mark.parametrize("weights", ["model.safetensors", "pytorch_model.bin"])
def test_hugging_face_pretraining_folder(tmp_path, transformers, weights):
    hf = transformers.BertForPreTraining(hf_config(transformers)).eval()
    randomize(hf, seed=4)
    hf.save_pretrained(tmp_path)
    if weights == "pytorch_model.bin":                 # the older Hugging Face layout
        state = load_file(tmp_path / "model.safetensors")
        (tmp_path / "model.safetensors").unlink()
        torch.save(state, tmp_path / "pytorch_model.bin")
    ours = modeling.BertForPreTraining.from_pretrained(tmp_path, unpad=False)
    ids, types, mask = inputs()
    with torch.no_grad():
        want = hf(input_ids=ids, token_type_ids=types, attention_mask=mask)
        scores, nsp = ours(ids, types, mask)
    assert_close((scores, nsp), (want.prediction_logits, want.seq_relationship_logits))


def test_hugging_face_base_folder_into_classifier(tmp_path, transformers):
    hf = transformers.BertModel(hf_config(transformers)).eval()
    randomize(hf, seed=6)
    hf.save_pretrained(tmp_path)
    ours = modeling.BertForTokenClassification.from_pretrained(tmp_path, num_labels=3,
                                                               unpad=False)
    ids, types, mask = inputs()
    with torch.no_grad():
        want = hf(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
        got, _ = ours.bert(ids, types, mask, output_all_encoded_layers=False)
    assert_close(got, want)


def test_safetensors_preferred_over_pytorch_model_bin(tmp_path):
    first, second = modeling.BertModel(tiny_config()), modeling.BertModel(tiny_config())
    randomize(first, seed=1)
    randomize(second, seed=2)
    first.save_pretrained(tmp_path)
    torch.save(second.state_dict(), tmp_path / "pytorch_model.bin")
    assert hub.resolve_model(tmp_path).weights_file == tmp_path / "model.safetensors"
    loaded = modeling.BertModel.from_pretrained(tmp_path)
    assert torch.equal(loaded.pooler.dense.weight, first.pooler.dense.weight)


# -- the resolver, local layouts (registry names, URLs, archives, Google folders: test_hub.py) ----
def test_resolver_layouts(tmp_path):
    ours = tmp_path / "ours"
    modeling.BertModel(tiny_config()).save_pretrained(ours)
    (ours / "vocab.txt").write_text("[PAD]\n")
    files = hub.resolve_model(str(ours))
    assert files == hub.ModelFiles(folder=ours, config_file=ours / "bert_config.json",
                                   weights_file=ours / "model.safetensors",
                                   vocab_file=ours / "vocab.txt")
    config_only = tmp_path / "config_only"
    config_only.mkdir()
    tiny_config().to_json_file(config_only / "config.json")
    files = hub.resolve_model(config_only, need_weights=False)
    assert files.config_file == config_only / "config.json" and files.weights_file is None


def test_resolver_errors(tmp_path):
    with pytest.raises(EntryNotFoundError, match=r"'.*/missing' does not exist. Accepted: a folder "
                                                 r"with bert_config.json \+ model.safetensors"):
        hub.resolve_model(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("x")
    with pytest.raises(ArchiveLayoutError, match=r"holds no BERT model: looked for "
                                                 r"bert_config.json or config.json .*notes.txt"):
        hub.resolve_model(empty)
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    tiny_config().to_json_file(no_weights / "bert_config.json")
    with pytest.raises(ArchiveLayoutError, match=r"looked for model.safetensors or "
                                                 r"pytorch_model.bin"):
        modeling.BertModel.from_pretrained(no_weights)
    for error in (EntryNotFoundError, ArchiveLayoutError):
        assert issubclass(error, BertHubError)


def test_hub_does_not_import_torch():
    code = "import sys, bert_hub.hub; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_save_file_accepts_model_tensors_directly(tmp_path):
    """The packed query/key/value buffer is shared: save_pretrained must cope (regression)."""
    model = modeling.BertModel(tiny_config())
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert torch.equal(tensors["encoder.layer.0.attention.self.key.weight"],
                       model.encoder.layer[0].attention.self.key.weight)
    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")   # the library itself works
