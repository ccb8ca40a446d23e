"""One resolver: the tokenizer, the models and `bert-hub convert` find their files through
``hub.resolve_model``, whatever the form (registry name over the loopback mirror, Google
folder, Hugging Face folder, our folder, a local or remote archive, a vocabulary file)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mirror import GOOGLE_PATH, TF_TINY, google_zip

from bert_hub import BertConfig, BertModel, hub
from bert_hub.convert import tf_to_state_dict
from bert_hub.errors import EntryNotFoundError
from bert_hub.tf_checkpoint import CheckpointReader
from bert_hub.tokenization import BertTokenizer

TEXT = "W3 w4 ,w5 W24"
EXE = shutil.which("bert-hub", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))


def ours_folder(folder: Path) -> Path:
    """A model saved by bert_hub, with a cased tokenizer of 20 positions."""
    BertModel(BertConfig.from_json_file(TF_TINY / "bert_config.json")).save_pretrained(folder)
    BertTokenizer(str(TF_TINY / "vocab.txt"), do_lower_case=False, max_len=20).save_pretrained(folder)
    return folder


def hugging_face_folder(folder: Path) -> Path:
    """A Hugging Face BERT folder as transformers writes it: config.json, and vocab.txt with
    tokenizer_config.json from its slow (Python) tokenizer, as the Hub's BERT repos hold them."""
    transformers = pytest.importorskip("transformers", reason="needs transformers")
    plain = folder.parent / "plain_vocab"
    plain.mkdir()
    shutil.copy(TF_TINY / "vocab.txt", plain / "vocab.txt")
    transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=32).save_pretrained(folder)
    transformers.BertTokenizerLegacy.from_pretrained(str(plain), do_lower_case=False,
                                                     model_max_length=24).save_pretrained(folder)
    return folder


def source(form, tmp_path, file_server):
    """(what the user passes, expected do_lower_case, expected max_len)."""
    if form == "registry name":
        return "tiny-bert", True, 16
    if form == "google folder":
        return shutil.copytree(TF_TINY, tmp_path / "uncased_L-2_H-16_A-2"), True, None
    if form == "hugging face folder":
        return hugging_face_folder(tmp_path / "hf"), False, 24
    if form == "our folder":
        return ours_folder(tmp_path / "ours"), False, 20
    if form == "url archive":
        file_server.put("/x/ours.zip", google_zip(top="ours", source=ours_folder(tmp_path / "o")))
        return file_server.url("/x/ours.zip"), False, 20
    if form == "local archive":
        (tmp_path / "google.zip").write_bytes(google_zip())
        return tmp_path / "google.zip", True, None
    if form == "vocab file":
        return TF_TINY / "vocab.txt", True, None
    raise AssertionError(form)


FORMS = ["registry name", "google folder", "hugging face folder", "our folder", "url archive",
         "local archive", "vocab file"]


@pytest.mark.parametrize("form", FORMS)
def test_tokenizer_resolves_every_form_through_the_hub(form, tmp_path, mirror):
    name, lower, max_len = source(form, tmp_path, mirror)
    tok = BertTokenizer.from_pretrained(name)
    files = hub.resolve_model(name, need_weights=False)
    assert tok.vocab_file == str(files.vocab_file)
    assert (tok.do_lower_case, tok.max_len if max_len else None) == (lower, max_len)
    reference = BertTokenizer(str(TF_TINY / "vocab.txt"), do_lower_case=lower)
    assert tok.tokenize(TEXT) == reference.tokenize(TEXT)
    assert tok.tokenize(TEXT)[0] == ("w3" if lower else "[UNK]")
    assert not (files.folder / "model.safetensors").exists() or form in ("our folder", "url archive")


def test_registry_download_is_shared_by_tokenizer_and_model(mirror):
    BertTokenizer.from_pretrained("tiny-bert")
    BertModel.from_pretrained("tiny_L-2")
    assert mirror.count(GOOGLE_PATH) == 1


def test_vocab_file_alone_ignores_a_tokenizer_config_beside_it(tmp_path):
    """0.6.2's from_pretrained(vocab_file): the file is the whole tokenizer (lower-cased)."""
    folder = ours_folder(tmp_path / "ours")           # its tokenizer_config.json says cased
    assert BertTokenizer.from_pretrained(folder).do_lower_case is False
    assert BertTokenizer.from_pretrained(folder / "vocab.txt").do_lower_case is True


def test_tokenizer_errors_name_what_is_missing(tmp_path):
    with pytest.raises(EntryNotFoundError, match=r"missing\.txt' does not exist"):
        BertTokenizer.from_pretrained(tmp_path / "missing.txt")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.md").write_text("x")
    with pytest.raises(EntryNotFoundError, match=r"has no vocab.txt.*found: readme.md"):
        BertTokenizer.from_pretrained(tmp_path / "notes")


# ------------------------------------------------------------------------------ bert-hub convert
def run(*args, check=0):
    if EXE is None:
        pytest.skip("the bert-hub console script is not installed (pip install -e .)")
    proc = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ))
    assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def reference_tensors():
    return tf_to_state_dict(TF_TINY / "bert_model.ckpt",
                            BertConfig.from_json_file(TF_TINY / "bert_config.json"))


def assert_same(tensors, reference):
    assert sorted(tensors) == sorted(reference)
    for key, value in reference.items():
        assert torch.equal(tensors[key], value), key


@pytest.mark.parametrize("form", ["folder", "prefix without --config", "registry name", "url"])
def test_convert_finds_checkpoint_and_config(form, tmp_path, mirror):
    folder = shutil.copytree(TF_TINY, tmp_path / "google")
    given = {"folder": folder, "prefix without --config": folder / "bert_model.ckpt",
             "registry name": "tiny-bert", "url": mirror.url(GOOGLE_PATH)}[form]
    out = tmp_path / "out.safetensors"
    run("convert", "--tf-checkpoint", given, "--out", out)
    assert_same(load_file(out), reference_tensors())
    assert not (folder / "model.safetensors").exists()   # converted to --out only


def test_convert_to_tf_from_a_model_folder(tmp_path):
    folder = tmp_path / "model"
    BertModel.from_pretrained(shutil.copytree(TF_TINY, tmp_path / "google")).save_pretrained(folder)
    run("convert", "--to-tf", "--weights", folder, "--out", tmp_path / "tf" / "bert_model.ckpt")
    exported, original = CheckpointReader(tmp_path / "tf" / "bert_model.ckpt"), \
        CheckpointReader(TF_TINY / "bert_model.ckpt")
    names = [n for n, _, _ in exported.list_variables()]
    assert names and all(n.startswith("bert/") for n in names)
    for name in names:
        assert (exported.get_tensor(name) == original.get_tensor(name)).all(), name


def test_convert_errors_are_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run("convert", "--tf-checkpoint", tmp_path / "empty", "--out", tmp_path / "x", check=1)
    assert "has no vocab.txt, bert_config.json" in proc.stderr and "Traceback" not in proc.stderr
    shutil.copytree(TF_TINY, tmp_path / "ckpt_only")
    (tmp_path / "ckpt_only" / "bert_config.json").unlink()
    (tmp_path / "ckpt_only" / "vocab.txt").unlink()
    proc = run("convert", "--tf-checkpoint", tmp_path / "ckpt_only" / "bert_model.ckpt",
               "--out", tmp_path / "x", check=2)
    assert "pass --config" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    ours = ours_folder(tmp_path / "ours")
    proc = run("convert", "--tf-checkpoint", ours, "--out", tmp_path / "x", check=1)
    assert "holds no TensorFlow checkpoint" in proc.stderr
