"""What a researcher runs into: wrong arguments, odd files, damaged caches. Each case must end in
a typed error that names the problem and the fix (or just work), never a deep traceback."""
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import bert_hub
from bert_hub import cache, hub
from bert_hub.config import BertConfig
from bert_hub.errors import (
    CacheNotWritableError,
    ConfigError,
    EntryNotFoundError,
    InvalidArgumentError,
    InvalidInputError,
    TrainerError,
)
from bert_hub.modeling import BertForSequenceClassification, BertModel
from bert_hub.tokenization import BertTokenizer
from bert_hub.trainer import Trainer

TF_TINY = Path(__file__).parent / "data" / "tf_tiny"
SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             max_position_embeddings=16)


@pytest.fixture
def saved_model(tmp_path):
    """A bert_hub folder (bert_config.json + model.safetensors)."""
    torch.manual_seed(0)
    BertModel(BertConfig(30, **SMALL)).save_pretrained(tmp_path / "m")
    return tmp_path / "m"


# ------------------------------------------------------------------------ config files
def test_config_file_forms(tmp_path):
    fields = {"vocab_size": 30, **SMALL}
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(fields).encode())   # as Notepad saves it
    assert BertConfig(str(bom)) == BertConfig(30, **SMALL)
    with pytest.raises(ConfigError, match="is a folder; pass the bert_config.json inside it"):
        BertConfig(str(tmp_path))
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00{")
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        BertConfig.from_json_file(binary)
    # A string vocab_size used to be taken for a config file path ("'30' does not exist").
    with pytest.raises(ConfigError, match="vocab_size must be an integer, got '30'"):
        BertConfig.from_dict({**fields, "vocab_size": "30"})
    with pytest.raises(ConfigError, match="initializer_range must be a non-negative number"):
        BertConfig(30, initializer_range=float("nan")).validate()


# ------------------------------------------------------------------------ vocabularies
def test_vocab_with_bom_keeps_its_first_token(tmp_path):
    words = (TF_TINY / "vocab.txt").read_text(encoding="utf-8")
    (tmp_path / "vocab.txt").write_bytes(b"\xef\xbb\xbf" + words.encode())
    tok = BertTokenizer(str(tmp_path / "vocab.txt"))
    plain = BertTokenizer(str(TF_TINY / "vocab.txt"))
    assert tok.vocab == plain.vocab                                  # not '\ufeff[PAD]'
    padded = tok.encode_batch(["w1", "w1 w2 w3"])
    assert padded["input_ids"][0, -1].item() == plain.vocab["[PAD]"]


def test_vocab_not_utf8(tmp_path):
    (tmp_path / "vocab.txt").write_bytes("[PAD]\n[UNK]\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(InvalidInputError, match="is not UTF-8.*re-save it as UTF-8"):
        BertTokenizer(str(tmp_path / "vocab.txt"))


# ------------------------------------------------------------------------ from_pretrained args
def test_unknown_constructor_argument_fails_before_resolving(tmp_path):
    missing = str(tmp_path / "not-there")          # resolving it would raise EntryNotFoundError
    with pytest.raises(InvalidArgumentError, match="Did you mean 'num_labels'") as info:
        BertForSequenceClassification.from_pretrained(missing, num_lables=3)
    assert isinstance(info.value, TypeError)        # what Python itself raises for this
    with pytest.raises(InvalidArgumentError, match="num_labels belongs to "
                                                   "BertForSequenceClassification"):
        BertModel.from_pretrained(missing, num_labels=3)
    with pytest.raises(EntryNotFoundError):          # right arguments: the path is the problem
        BertForSequenceClassification.from_pretrained(missing, 3)


def test_dtype_device_and_state_dict_options(saved_model):
    model = BertModel.from_pretrained(saved_model, torch_dtype="bfloat16")
    assert model.pooler.dense.weight.dtype == torch.bfloat16
    model = BertModel.from_pretrained(saved_model, torch_dtype="torch.float16")
    assert model.pooler.dense.weight.dtype == torch.float16
    for bad in ("fp17", torch.int64, 16):
        with pytest.raises(InvalidInputError, match="torch_dtype must be a floating dtype"):
            BertModel.from_pretrained(saved_model, torch_dtype=bad)
    with pytest.raises(InvalidInputError, match="device='gpu' is not a torch device"):
        BertModel.from_pretrained(saved_model, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            BertModel.from_pretrained(saved_model, device="cuda")
    with pytest.raises(InvalidInputError, match="state_dict must be a mapping"):
        BertModel.from_pretrained(saved_model, state_dict=[("a", torch.zeros(1))])
    with pytest.raises(InvalidInputError, match="'pooler.dense.weight' holds a list"):
        BertModel.from_pretrained(saved_model, state_dict={"pooler.dense.weight": [1.0]})


def test_empty_name_and_save_into_a_file(saved_model, tmp_path, monkeypatch):
    monkeypatch.chdir(saved_model)           # '' used to mean the current folder
    with pytest.raises(EntryNotFoundError, match="the model name or path is empty"):
        BertModel.from_pretrained("")
    model = BertModel.from_pretrained(saved_model)
    with pytest.raises(InvalidInputError, match="that is a file; pass a folder"):
        model.save_pretrained(saved_model / "model.safetensors")


# ------------------------------------------------------------------------ the cache
def test_damaged_cache_entry_is_fetched_again(caplog):
    folder = hub.download_model("bert-hub-demo", convert=False)
    vocab = (folder / "vocab.txt").read_bytes()
    (folder / "vocab.txt").unlink()
    with caplog.at_level(logging.WARNING, logger="bert_hub.cache"):
        tok = BertTokenizer.from_pretrained("bert-hub-demo")
    assert "vocab.txt: missing" in caplog.text and caplog.text.count("is damaged") == 1
    assert (folder / "vocab.txt").read_bytes() == vocab and len(tok.vocab) > 5
    with open(folder / "bert_config.json", "a") as f:      # a file that changed size
        f.write(" ")
    os.environ["BERT_HUB_OFFLINE"] = "1"   # its source is package data: no network to refuse
    try:
        files = hub.resolve_model("bert-hub-demo", need_weights=False)
    finally:
        del os.environ["BERT_HUB_OFFLINE"]
    assert BertConfig.from_json_file(files.config_file).hidden_size == 32
    assert cache.cached_entry(cache.cache_root(), "bert-hub-demo") == folder


def test_unwritable_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BERT_HUB_CACHE", str(blocker))
    with pytest.raises(CacheNotWritableError, match="point BERT_HUB_CACHE"):
        bert_hub.BertModel.from_pretrained("bert-hub-demo")
    proc = subprocess.run([sys.executable, "-m", "bert_hub.cli", "download", "bert-hub-demo"],
                          capture_output=True, text=True, timeout=120, env=dict(os.environ))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("bert-hub: error: cannot create")


# ------------------------------------------------------------------------ trainer and scripts
def test_trainer_output_dir_is_a_file(tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("")
    with pytest.raises(TrainerError, match="is a file; pass a folder"):
        Trainer(torch.nn.Linear(2, 1), [torch.zeros(2)], epochs=1, output_dir=target)


def test_google_folder_copy_converts_beside_it(tmp_path):
    folder = tmp_path / "google"
    shutil.copytree(TF_TINY, folder)
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=3,
                                                          torch_dtype="float32")
    assert (folder / "model.safetensors").is_file() and model.classifier.out_features == 3


def test_2018_convert_script_unwritable_output_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    script = Path(__file__).parent.parent / "scripts" / "convert_tf_checkpoint_to_pytorch.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--tf_checkpoint_path", str(TF_TINY / "bert_model.ckpt"),
         "--bert_config_file", str(TF_TINY / "bert_config.json"),
         "--pytorch_dump_path", str(blocker / "pytorch_model.bin")],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and str(blocker) in proc.stderr
