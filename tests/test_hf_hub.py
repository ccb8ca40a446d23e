"""Hugging Face Hub ids over real HTTP on 127.0.0.1: a loopback Hub (tests/hf_server.py) that
answers as the Hub does, huggingface_hub as the client, transformers as the oracle."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from floats import assert_close
from hf_server import FakeHub
from http_server import Fault
from tiny_hf import NER_LABELS, repo_files, write_model

from bert_hub import BertForSequenceClassification, BertForTokenClassification, BertModel, BertTokenizer
from bert_hub import cli, hf_hub, hub
from bert_hub.config import BertConfig
from bert_hub.errors import (
    AccessDeniedError,
    ArchiveLayoutError,
    ConfigError,
    ConversionError,
    DownloadError,
    EntryNotFoundError,
    InvalidArgumentError,
    InvalidInputError,
    MissingDependencyError,
    OfflineError,
)

pytest.importorskip("huggingface_hub")
transformers = pytest.importorskip("transformers")

_HF_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE", "HF_ENDPOINT",
            "HF_HOME")


@pytest.fixture(autouse=True)
def hf_home(tmp_path, monkeypatch):
    """Every test has its own Hugging Face cache and no token, endpoint or offline setting."""
    for name in _HF_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return tmp_path / "hf_home" / "hub"


@pytest.fixture
def fake_hub(monkeypatch):
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


@pytest.fixture(scope="module")
def ner(tmp_path_factory):
    """A cased token-classification model with labels: (repository files, transformers model)."""
    folder = tmp_path_factory.mktemp("ner")
    model = write_model(folder, "BertForTokenClassification", cased=True, labels=NER_LABELS)
    return repo_files(folder), model


@pytest.fixture(scope="module")
def base_pair(tmp_path_factory):
    """Two BertModels with different weights (for revisions)."""
    out = []
    for seed in (1, 2):
        folder = tmp_path_factory.mktemp(f"base{seed}")
        model = write_model(folder, "BertModel", seed=seed)
        out.append((repo_files(folder), model))
    return out


IDS = torch.tensor([[2, 40, 41, 52, 60, 3, 0]])
MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 0]])


def same_outputs(ours, theirs):
    with torch.no_grad():
        out = ours(IDS, attention_mask=MASK)
        ref = theirs(IDS, attention_mask=MASK)
    if isinstance(out, tuple):   # BertModel: (encoded layers, pooled)
        assert_close(out[0][-1][:, :6], ref.last_hidden_state[:, :6])
        return
    assert_close(out[:, :6], ref.logits[:, :6])


def snapshot_dir(root: Path, repo_id: str) -> Path:
    return root / ("models--" + repo_id.replace("/", "--")) / "snapshots"


# -- names --------------------------------------------------------------------------------------
def test_which_names_are_hub_ids(tmp_path, monkeypatch):
    assert hf_hub.hub_repo_id("dslim/bert-base-NER") == "dslim/bert-base-NER"
    assert hf_hub.hub_repo_id("hf://google-bert/bert-base-uncased") == "google-bert/bert-base-uncased"
    assert hf_hub.hub_repo_id("hf://bert-base-uncased") == "bert-base-uncased"   # the Hub, always
    for not_hub in ("bert-base-uncased", "./org/name", "~/org/name", "a/b/c", "/abs/path",
                    "org/model.zip", "org/vocab.txt", "org/na--me", "org/.hidden", "http://127.0.0.1/y.zip"):
        assert hf_hub.hub_repo_id(not_hub) is None, not_hub
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert hf_hub.hub_repo_id("org/name") is None        # an existing local path keeps priority
    with pytest.raises(InvalidInputError, match="hf://org/name"):
        hf_hub.hub_repo_id("hf://org//x")
    with pytest.raises(InvalidArgumentError, match="revision='v1' applies to Hugging Face Hub ids"):
        BertModel.from_pretrained("bert-base-uncased", revision="v1")


def test_missing_extra_names_it(fake_hub, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'bert_hub\[hf\]'"):
        BertModel.from_pretrained("org/anything")
    assert fake_hub.total_requests() == 0


# -- loading ------------------------------------------------------------------------------------
def test_model_and_tokenizer_from_the_hub_then_from_the_cache(fake_hub, ner, hf_home):
    files, reference = ner
    fake_hub.add_repo("acme/tiny-ner", files)
    model = BertForTokenClassification.from_pretrained("acme/tiny-ner")
    assert model.num_labels == len(NER_LABELS)                      # from id2label
    assert model.id2label == dict(enumerate(NER_LABELS))
    assert model.label2id == {name: i for i, name in enumerate(NER_LABELS)}
    same_outputs(model, reference)
    assert fake_hub.cdn.count(fake_hub.lfs_path(files["model.safetensors"])) == 1

    tok = BertTokenizer.from_pretrained("acme/tiny-ner")            # do_lower_case from tokenizer_config
    assert tok.do_lower_case is False and tok.max_len == 128
    assert tok.tokenize("John lives in Paris") == ["John", "lives", "in", "Paris"]

    before = fake_hub.total_requests()
    again = BertForTokenClassification.from_pretrained("hf://acme/tiny-ner")
    BertTokenizer.from_pretrained("hf://acme/tiny-ner")
    assert fake_hub.total_requests() == before                      # a complete snapshot: no call
    same_outputs(again, reference)
    assert [p.name for p in snapshot_dir(hf_home, "acme/tiny-ner").iterdir()] == [
        fake_hub._lookup("acme/tiny-ner", "main")[1]]


def test_num_labels_given_and_labels_for_other_heads(fake_hub, ner):
    fake_hub.add_repo("acme/tiny-ner", ner[0])
    same = BertForTokenClassification.from_pretrained("acme/tiny-ner", num_labels=len(NER_LABELS))
    assert same.id2label[1] == "B-PER"
    with pytest.raises(ConversionError, match="pass num_labels=7"):
        BertForTokenClassification.from_pretrained("acme/tiny-ner", num_labels=3)
    base = BertModel.from_pretrained("acme/tiny-ner")               # the encoder alone
    assert base.id2label == dict(enumerate(NER_LABELS))
    seq = BertForSequenceClassification.from_pretrained("acme/tiny-ner")
    assert seq.num_labels == len(NER_LABELS)                        # new head, sized by the labels


def test_revisions_branch_tag_commit(fake_hub, base_pair, hf_home):
    (files_a, model_a), (files_b, model_b) = base_pair
    commit_a = fake_hub.add_repo("acme/base", files_a)
    fake_hub.tag("acme/base", "v1.0", commit_a)
    commit_dev = fake_hub.commit("acme/base", {"model.safetensors": files_b["model.safetensors"]},
                                 branch="dev")
    same_outputs(BertModel.from_pretrained("acme/base"), model_a)
    same_outputs(BertModel.from_pretrained("acme/base", revision="dev"), model_b)
    same_outputs(BertModel.from_pretrained("acme/base", revision="v1.0"), model_a)
    same_outputs(BertModel.from_pretrained("acme/base", revision=commit_dev), model_b)
    assert BertTokenizer.from_pretrained("acme/base", revision="v1.0").vocab_file.startswith(str(hf_home))

    # main moves on: a load keeps the complete cached snapshot (no call); a download refreshes.
    fake_hub.commit("acme/base", {"model.safetensors": files_b["model.safetensors"]})
    before = fake_hub.total_requests()
    same_outputs(BertModel.from_pretrained("acme/base"), model_a)
    assert fake_hub.total_requests() == before
    hub.download_model("acme/base")
    same_outputs(BertModel.from_pretrained("acme/base"), model_b)
    with pytest.raises(EntryNotFoundError, match="has no revision 'nope'"):
        BertModel.from_pretrained("acme/base", revision="nope")


def test_offline_after_a_first_download(fake_hub, ner, monkeypatch):
    fake_hub.add_repo("acme/tiny-ner", ner[0])
    BertForTokenClassification.from_pretrained("acme/tiny-ner")
    BertTokenizer.from_pretrained("acme/tiny-ner")
    fake_hub.stop()
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "BERT_HUB_OFFLINE"):
        monkeypatch.setenv(variable, "1")
        same_outputs(BertForTokenClassification.from_pretrained("acme/tiny-ner"), ner[1])
        assert BertTokenizer.from_pretrained("acme/tiny-ner").do_lower_case is False
        with pytest.raises(OfflineError, match="bert-hub download acme/other"):
            BertModel.from_pretrained("acme/other")
        monkeypatch.delenv(variable)
    same_outputs(BertForTokenClassification.from_pretrained("acme/tiny-ner", local_files_only=True),
                 ner[1])
    with pytest.raises(OfflineError):
        BertModel.from_pretrained("acme/other", local_files_only=True)


def test_cache_dir_is_the_hugging_face_cache_for_this_call(fake_hub, ner, hf_home, tmp_path):
    fake_hub.add_repo("acme/tiny-ner", ner[0])
    custom = tmp_path / "elsewhere"
    same_outputs(BertForTokenClassification.from_pretrained("acme/tiny-ner", cache_dir=custom),
                 ner[1])
    assert BertTokenizer.from_pretrained("acme/tiny-ner", cache_dir=custom).vocab_file.startswith(
        str(custom))
    assert list(snapshot_dir(custom, "acme/tiny-ner").glob("*/model.safetensors"))
    assert not hf_home.exists()


def test_state_dict_needs_no_weights_and_a_tokenizer_needs_no_config(fake_hub, ner):
    files, reference = ner
    fake_hub.add_repo("acme/tiny-ner", files)
    model = BertForTokenClassification.from_pretrained("acme/tiny-ner",
                                                       state_dict=reference.state_dict())
    same_outputs(model, reference)
    assert fake_hub.cdn.count(fake_hub.lfs_path(files["model.safetensors"])) == 0
    fake_hub.add_repo("acme/tokenizer-only", {"vocab.txt": files["vocab.txt"],
                                              "tokenizer_config.json": files["tokenizer_config.json"]})
    assert BertTokenizer.from_pretrained("acme/tokenizer-only").do_lower_case is False
    with pytest.raises(ArchiveLayoutError, match="acme/tokenizer-only has no config.json"):
        BertModel.from_pretrained("acme/tokenizer-only")


def test_force_download_fetches_again(fake_hub, ner):
    fake_hub.add_repo("acme/tiny-ner", ner[0])
    path = fake_hub.lfs_path(ner[0]["model.safetensors"])
    BertForTokenClassification.from_pretrained("acme/tiny-ner")
    BertForTokenClassification.from_pretrained("acme/tiny-ner", force_download=True)
    assert fake_hub.cdn.count(path) == 2


# -- what the Hub says no to --------------------------------------------------------------------
def test_errors_name_the_problem(fake_hub, ner, tmp_path):
    with pytest.raises(EntryNotFoundError, match="'acme/missing' is neither a local folder nor a model"):
        BertModel.from_pretrained("acme/missing")

    roberta = dict(ner[0])
    config = json.loads(roberta["config.json"])
    roberta["config.json"] = json.dumps({**config, "model_type": "roberta",
                                         "architectures": ["RobertaForMaskedLM"]}).encode()
    fake_hub.add_repo("acme/roberta", roberta)
    with pytest.raises(ConfigError, match=r"acme/roberta is a 'roberta' model .* BERT models only"):
        BertModel.from_pretrained("acme/roberta")
    assert fake_hub.cdn.count(fake_hub.lfs_path(roberta["model.safetensors"])) == 0   # no weights fetched

    fake_hub.add_repo("acme/no-weights", {k: v for k, v in ner[0].items() if k != "model.safetensors"}
                      | {"tf_model.h5": b"h5"})
    with pytest.raises(ArchiveLayoutError, match=r"acme/no-weights has no PyTorch weights .*tf_model.h5"):
        BertModel.from_pretrained("acme/no-weights")
    fake_hub.add_repo("acme/no-vocab", {k: v for k, v in ner[0].items() if k != "vocab.txt"})
    with pytest.raises(EntryNotFoundError, match="'acme/no-vocab' resolved to files without a vocabulary"):
        BertTokenizer.from_pretrained("acme/no-vocab")
    fake_hub.add_repo("acme/no-config", {"README.md": b"hi"})
    with pytest.raises(ArchiveLayoutError, match="acme/no-config has no config.json"):
        BertModel.from_pretrained("acme/no-config")

    fake_hub.add_repo("acme/lost", ner[0])
    fake_hub.lose("acme/lost", "model.safetensors")      # listed, but the download is a 404
    with pytest.raises(EntryNotFoundError, match=r"a file of acme/lost .* is missing on the Hub"):
        BertModel.from_pretrained("acme/lost")

    fake_hub.add_repo("acme/gated", ner[0], gated=True, accepted_tokens=("hf_secret",))
    with pytest.raises(AccessDeniedError, match="acme/gated .* is gated: accept its conditions"):
        BertForTokenClassification.from_pretrained("acme/gated")
    model = BertForTokenClassification.from_pretrained("acme/gated", token="hf_secret")
    same_outputs(model, ner[1])
    assert any(r.authorization == "Bearer hf_secret" for r in fake_hub.requests)


def local_folder(folder: Path, files) -> dict:
    """The repository's files written to ``folder``; returns its config.json as a dict."""
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return json.loads((folder / "config.json").read_text())


def test_wrong_architecture_in_a_local_folder_too(tmp_path, ner):
    folder = tmp_path / "distil"
    config = local_folder(folder, ner[0])
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "distilbert"}))
    with pytest.raises(ConfigError, match="'distilbert' model"):
        BertModel.from_pretrained(folder)


def test_config_fields_are_mapped(tmp_path, ner):
    folder = tmp_path / "m"
    config = local_folder(folder, ner[0])
    for hf_act, ours in (("gelu_python", "gelu"), ("gelu_fast", "gelu_new"), ("gelu_new", "gelu_new")):
        (folder / "config.json").write_text(json.dumps({**config, "hidden_act": hf_act}))
        assert hf_hub.read_config(folder / "config.json").hidden_act == ours
    (folder / "config.json").write_text(json.dumps({**config, "hidden_act": "quick_gelu"}))
    with pytest.raises(ConfigError, match="unknown hidden_act 'quick_gelu'"):
        BertModel.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-5}))
    model = BertModel.from_pretrained(folder)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert norms and {m.eps for m in norms} == {1e-5}
    (folder / "config.json").write_text(json.dumps({**config, "id2label": {"0": "A", "2": "C"}}))
    with pytest.raises(ConfigError, match="id2label must name classes 0..1"):
        BertModel.from_pretrained(folder)


# -- files: redirects, shards, pickles ----------------------------------------------------------
def test_renamed_repo_redirects(fake_hub, ner):
    fake_hub.add_repo("acme/new-name", ner[0])
    fake_hub.rename("acme/old-name", "acme/new-name")
    same_outputs(BertForTokenClassification.from_pretrained("acme/old-name"), ner[1])
    assert fake_hub.count("HEAD", "/acme/old-name/resolve/") > 0
    assert fake_hub.count("HEAD", "/acme/new-name/resolve/") > 0


def test_sharded_safetensors_preferred_over_pickles(fake_hub, tmp_path):
    folder = tmp_path / "sharded"
    model = write_model(folder, "BertForMaskedLM")
    model.save_pretrained(folder, max_shard_size="40KB")
    files = repo_files(folder)
    files.pop("model.safetensors", None)                    # the unsharded file of the first save
    shards = [n for n in files if n.startswith("model-") and n.endswith(".safetensors")]
    assert len(shards) >= 2 and "model.safetensors.index.json" in files
    files["pytorch_model.bin"] = b"never fetched"
    fake_hub.add_repo("acme/sharded", files)
    from bert_hub import BertForMaskedLM
    ours = BertForMaskedLM.from_pretrained("acme/sharded")
    with torch.no_grad():
        assert_close(ours(IDS, attention_mask=MASK)[:, :6], model(IDS, attention_mask=MASK).logits[:, :6])
    assert fake_hub.cdn.count(fake_hub.lfs_path(b"never fetched")) == 0
    assert fake_hub.count("HEAD", "pytorch_model.bin") == 0

    del files[shards[-1]]                                    # the index names a shard not there
    fake_hub.add_repo("acme/short", files)
    with pytest.raises(EntryNotFoundError, match=rf"names shards the repository does not hold: "
                                                 rf"\['{shards[-1]}'\]"):
        BertForMaskedLM.from_pretrained("acme/short")


def test_pytorch_model_bin_loads_with_weights_only(fake_hub, tmp_path, ner):
    reference = ner[1]
    state = {k: v.clone() for k, v in reference.state_dict().items()}
    files = {k: v for k, v in ner[0].items() if k != "model.safetensors"}
    path = tmp_path / "w.bin"
    torch.save(state, path)
    files["pytorch_model.bin"] = path.read_bytes()
    fake_hub.add_repo("acme/pickled", files)
    same_outputs(BertForTokenClassification.from_pretrained("acme/pickled"), reference)

    torch.save({"weights": state, "hook": _Evil()}, path)
    files["pytorch_model.bin"] = path.read_bytes()
    fake_hub.add_repo("acme/evil", files)
    with pytest.raises(ConversionError, match="weights_only=True"):
        BertForTokenClassification.from_pretrained("acme/evil")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


# -- interrupted transfers ----------------------------------------------------------------------
def test_cut_connection_resumes_with_range(fake_hub, ner):
    files, reference = ner
    fake_hub.add_repo("acme/tiny-ner", files)
    path = fake_hub.lfs_path(files["model.safetensors"])
    fake_hub.cdn.add_faults(path, Fault("truncate", at=20000))
    same_outputs(BertForTokenClassification.from_pretrained("acme/tiny-ner"), reference)
    assert len(fake_hub.cdn.ranges(path)) == 2              # huggingface_hub resumed it itself


def test_reset_connection_is_tried_again(fake_hub, ner, hf_home):
    files, reference = ner
    fake_hub.add_repo("acme/tiny-ner", files)
    path = fake_hub.lfs_path(files["model.safetensors"])
    fake_hub.cdn.add_faults(path, Fault("reset", at=20000, pause=0.2), Fault("reset", at=100))
    same_outputs(BertForTokenClassification.from_pretrained("acme/tiny-ner"), reference)
    assert fake_hub.cdn.count(path) == 3
    assert fake_hub.count("GET", "/config.json") == 1       # finished files are not fetched again


def test_failed_download_leaves_no_model_file(fake_hub, ner, hf_home):
    files = ner[0]
    fake_hub.add_repo("acme/tiny-ner", files)
    path = fake_hub.lfs_path(files["model.safetensors"])
    fake_hub.cdn.always(path, Fault("status", status=500))
    with pytest.raises(DownloadError, match="acme/tiny-ner"):
        BertForTokenClassification.from_pretrained("acme/tiny-ner")
    assert not list(snapshot_dir(hf_home, "acme/tiny-ner").glob("*/model.safetensors"))
    fake_hub.cdn.always(path, None)
    BertForTokenClassification.from_pretrained("acme/tiny-ner")
    assert list(snapshot_dir(hf_home, "acme/tiny-ner").glob("*/model.safetensors"))


_KILLABLE = textwrap.dedent("""
    from bert_hub import BertForTokenClassification
    BertForTokenClassification.from_pretrained("acme/tiny-ner")
""")


def test_killed_download_is_never_served_and_completes_later(fake_hub, ner, hf_home, tmp_path):
    files, reference = ner
    fake_hub.add_repo("acme/tiny-ner", files)
    fake_hub.cdn.rate = 20_000            # bytes/s: the weights take seconds
    script = tmp_path / "dl.py"
    script.write_text(_KILLABLE)
    blobs = hf_home / "models--acme--tiny-ner" / "blobs"
    proc = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if blobs.is_dir() and list(blobs.glob("*.incomplete")):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the download never got going")
        time.sleep(1.0)                   # mid-transfer: about a fifth of the weights sent
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert not list(snapshot_dir(hf_home, "acme/tiny-ner").glob("*/model.safetensors"))
    fake_hub.cdn.rate = None
    same_outputs(BertForTokenClassification.from_pretrained("acme/tiny-ner"), reference)


# -- the Hugging Face cache, shared with transformers -------------------------------------------
_TRANSFORMERS_DOWNLOAD = textwrap.dedent("""
    import transformers
    transformers.AutoModelForTokenClassification.from_pretrained("acme/tiny-ner")
    transformers.AutoTokenizer.from_pretrained("acme/tiny-ner")
""")

_BERT_HUB_LOAD = textwrap.dedent("""
    import sys, torch
    from bert_hub import BertForTokenClassification, BertTokenizer
    model = BertForTokenClassification.from_pretrained("acme/tiny-ner")
    tok = BertTokenizer.from_pretrained("acme/tiny-ner")
    ids = torch.tensor([tok.encode("John lives in Paris")["input_ids"]])
    torch.save(model(ids), sys.argv[1])
""")


@pytest.mark.slow
def test_what_transformers_downloaded_loads_with_no_network(fake_hub, ner, tmp_path, monkeypatch):
    """huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE at import: each side runs in a child
    process started with the environment in place."""
    files, reference = ner
    fake_hub.add_repo("acme/tiny-ner", files)
    env = dict(os.environ)
    subprocess.run([sys.executable, "-c", _TRANSFORMERS_DOWNLOAD], env=env, check=True, timeout=300,
                   capture_output=True)
    fake_hub.stop()
    out = tmp_path / "logits.pt"
    for offline in ("0", "1"):
        proc = subprocess.run([sys.executable, "-c", _BERT_HUB_LOAD, str(out)], timeout=300,
                              env={**env, "HF_HUB_OFFLINE": offline}, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        tok = transformers.AutoTokenizer.from_pretrained(
            str(next(snapshot_dir(Path(env["HF_HOME"]) / "hub", "acme/tiny-ner").iterdir())))
        ids = tok("John lives in Paris", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            assert_close(torch.load(out), reference(ids).logits)


# -- the command line ---------------------------------------------------------------------------
def test_cli_download_and_list_hf(fake_hub, ner, tmp_path, capsys):
    fake_hub.add_repo("acme/tiny-ner", ner[0])
    roberta = dict(ner[0])
    roberta["config.json"] = json.dumps({**json.loads(roberta["config.json"]),
                                         "model_type": "roberta"}).encode()
    assert cli.main(["download", "acme/tiny-ner"]) == 0
    assert "acme/tiny-ner" in capsys.readouterr().out
    # a repository transformers left in the same cache, which we cannot load
    fake_hub.add_repo("acme/roberta", roberta)
    from huggingface_hub import snapshot_download
    snapshot_download("acme/roberta", cache_dir=str(hf_hub.hf_cache_dir()), endpoint=fake_hub.endpoint)
    assert cli.main(["list", "--hf"]) == 0
    listing = capsys.readouterr().out
    row = next(line for line in listing.splitlines() if line.startswith("acme/tiny-ner "))
    assert "main" in row and "BertForTokenClassification" in row and "model.safetensors" in row
    assert "acme/roberta" in listing and "'roberta' model" in listing
    assert cli.main(["download", "acme/missing"]) == 1
    assert "neither a local folder nor a model" in capsys.readouterr().err


# -- local Hugging Face folders: shards, unused pooler, labels, layer_norm_eps ------------------
@pytest.mark.parametrize("safe", [True, False], ids=["safetensors", "bin"])
def test_local_sharded_folder_loads(tmp_path, safe):
    folder = tmp_path / "sharded"
    model = write_model(folder, "BertForMaskedLM")
    (folder / "model.safetensors").unlink()
    model.save_pretrained(folder, max_shard_size="40KB")
    index = folder / "model.safetensors.index.json"
    if not safe:   # transformers 5 writes safetensors only: the same shards as pickles, as 4.x did
        from safetensors.torch import load_file
        index_data = json.loads(index.read_text())
        renamed = {n: n.replace("model-", "pytorch_model-").replace(".safetensors", ".bin")
                   for n in set(index_data["weight_map"].values())}
        for name, new_name in renamed.items():
            torch.save(load_file(folder / name), folder / new_name)
            (folder / name).unlink()
        index_data["weight_map"] = {k: renamed[v] for k, v in index_data["weight_map"].items()}
        index.unlink()
        index = folder / "pytorch_model.bin.index.json"
        index.write_text(json.dumps(index_data))
    shards = sorted(json.loads(index.read_text())["weight_map"].values())
    assert len(set(shards)) >= 2 and not (folder / "model.safetensors").exists()
    assert hub.resolve_model(str(folder)).weights_file == index
    from bert_hub import BertForMaskedLM
    ours = BertForMaskedLM.from_pretrained(folder)
    with torch.no_grad():
        assert_close(ours(IDS, attention_mask=MASK)[:, :6], model(IDS, attention_mask=MASK).logits[:, :6])
    (folder / shards[-1]).unlink()
    with pytest.raises(EntryNotFoundError, match=rf"the shards \['{shards[-1]}'\] named by"):
        BertForMaskedLM.from_pretrained(folder)


def test_no_warning_for_a_pooler_the_head_never_uses(tmp_path, caplog):
    import logging

    from bert_hub import BertForMaskedLM, BertForQuestionAnswering
    folder = tmp_path / "mlm"
    write_model(folder, "BertForMaskedLM")                  # transformers saves it without a pooler
    from safetensors.torch import load_file
    assert not any("pooler" in k for k in load_file(folder / "model.safetensors"))
    with caplog.at_level(logging.INFO, logger="bert_hub.loading"):
        BertForMaskedLM.from_pretrained(folder)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not warnings, caplog.text
    assert "its forward never uses" in caplog.text and "bert.pooler.dense.weight" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bert_hub.loading"):
        BertForQuestionAnswering.from_pretrained(folder)    # qa_outputs matter; the pooler does not
    assert "qa_outputs.weight" in caplog.text and "bert.pooler" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bert_hub.loading"):
        BertForSequenceClassification.from_pretrained(folder, num_labels=2)   # reads the pooler
    assert "bert.pooler.dense.weight" in caplog.text and "classifier.weight" in caplog.text


def test_labels_survive_save_pretrained(tmp_path, ner):
    folder = tmp_path / "ner"
    local_folder(folder, ner[0])
    model = BertForTokenClassification.from_pretrained(folder)
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "bert_config.json").read_text())
    assert saved["id2label"] == {str(i): name for i, name in enumerate(NER_LABELS)}
    assert saved["label2id"] == {name: i for i, name in enumerate(NER_LABELS)}
    again = BertForTokenClassification.from_pretrained(tmp_path / "saved")
    assert again.num_labels == len(NER_LABELS)                # from the saved id2label
    assert again.id2label == dict(enumerate(NER_LABELS)) and again.label2id == model.label2id
    old = pytest.importorskip("pytorch_pretrained_bert.modeling")
    assert old.BertConfig.from_json_file(str(tmp_path / "saved" / "bert_config.json")).hidden_size == 32

    fresh = BertForSequenceClassification(again.config, num_labels=2)   # labels set by hand
    fresh.id2label, fresh.label2id = {0: "bad", 1: "good"}, {"bad": 0, "good": 1}
    fresh.save_pretrained(tmp_path / "fresh")
    assert BertForSequenceClassification.from_pretrained(tmp_path / "fresh").id2label == \
        {0: "bad", 1: "good"}
    plain = BertModel(BertConfig(99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                 intermediate_size=37))
    plain.save_pretrained(tmp_path / "plain")                 # no labels: Google's keys only
    assert "id2label" not in json.loads((tmp_path / "plain" / "bert_config.json").read_text())
    fresh.id2label = {0: "bad", 2: "good"}
    with pytest.raises(ConfigError, match="id2label must name classes 0..1"):
        fresh.save_pretrained(tmp_path / "broken")
    fresh.id2label = {0: "bad", 1: "good", 2: "ugly"}
    with pytest.raises(ConfigError, match="has 2 labels but id2label names 3"):
        fresh.save_pretrained(tmp_path / "broken")
    assert not (tmp_path / "broken").exists()                 # refused before anything is written


def test_layer_norm_eps_is_used_and_saved(tmp_path):
    folder = tmp_path / "eps"
    reference = write_model(folder, "BertModel", extra_config={"layer_norm_eps": 0.5})
    ours = BertModel.from_pretrained(folder)
    assert ours.config.layer_norm_eps == 0.5
    same_outputs(ours, reference)                             # 0.5 changes every output clearly
    ours.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "bert_config.json").read_text())["layer_norm_eps"] == 0.5
    same_outputs(BertModel.from_pretrained(tmp_path / "saved"), reference)
