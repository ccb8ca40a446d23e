"""The whole hub path over real HTTP on 127.0.0.1: registry -> download -> verify -> extract ->
lazy conversion -> load, for models and tokenizers, with concurrency, kills and bad archives."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from http_server import Fault
from mirror import GOOGLE_PATH, TF_TINY, TOP, google_zip

from bert_hub import BertForPreTraining, BertModel, BertTokenizer, cached_path
from bert_hub import hub
from bert_hub.convert import tf_to_state_dict
from bert_hub.errors import (
    EntryNotFoundError,
    IntegrityError,
    OfflineError,
    UnknownModelError,
    UnsafeArchiveError,
)

def reference_model():
    """The same checkpoint converted in memory, straight from the TF files."""
    from bert_hub import BertConfig
    config = BertConfig.from_json_file(TF_TINY / "bert_config.json")
    model = BertForPreTraining(config)
    missing, unexpected = model.load_state_dict(tf_to_state_dict(TF_TINY / "bert_model.ckpt", config),
                                                strict=False)
    assert not unexpected and all("decoder" in k for k in missing)
    return model.eval()


def outputs(model):
    ids = torch.tensor([[2, 7, 9, 11, 3, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]])
    with torch.no_grad():
        return model(ids, attention_mask=mask)


def test_registry_name_downloads_once_converts_lazily_and_matches(mirror):
    model = BertForPreTraining.from_pretrained("tiny-bert")
    assert mirror.count(GOOGLE_PATH) == 1
    entry = Path(os.environ["BERT_HUB_CACHE"]) / "models" / "tiny-bert"
    assert (entry / "model.safetensors").exists()          # converted on first load
    assert (entry / "bert_model.ckpt.index").exists()
    for ours, ref in zip(outputs(model), outputs(reference_model())):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    # Second load, with an alias: no request at all, even with the server gone.
    mirror.stop()
    again = BertModel.from_pretrained("tiny_L-2")
    assert mirror.count(GOOGLE_PATH) == 1
    assert not again.training


def test_tokenizer_uses_the_same_cache_and_registry_casing(mirror):
    tok = BertTokenizer.from_pretrained("tiny-bert")
    assert mirror.count(GOOGLE_PATH) == 1
    assert tok.basic_tokenizer.do_lower_case is True
    assert tok.max_len == 16
    entry = Path(os.environ["BERT_HUB_CACHE"]) / "models" / "tiny-bert"
    assert not (entry / "model.safetensors").exists()       # a tokenizer never converts
    BertModel.from_pretrained("tiny-bert")
    assert mirror.count(GOOGLE_PATH) == 1


def test_offline_mode(mirror, monkeypatch):
    monkeypatch.setenv("BERT_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="tiny-bert"):
        BertModel.from_pretrained("tiny-bert")
    with pytest.raises(OfflineError):
        BertModel.from_pretrained("bert-base-uncased", local_files_only=True)
    assert mirror.count(GOOGLE_PATH) == 0
    monkeypatch.delenv("BERT_HUB_OFFLINE")
    BertModel.from_pretrained("tiny-bert")
    monkeypatch.setenv("BERT_HUB_OFFLINE", "1")
    BertModel.from_pretrained("tiny-bert")                  # a hit works offline
    assert mirror.count(GOOGLE_PATH) == 1


def test_published_hashes_are_enforced(file_server, monkeypatch):
    """A mirror serving something else under Google's real bert-base-uncased path is caught by the
    registry's per-file SHA-256, and nothing is left in the cache."""
    file_server.put("/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip",
                    google_zip(top="uncased_L-12_H-768_A-12"))
    monkeypatch.setenv("BERT_HUB_ENDPOINT", file_server.endpoint)
    with pytest.raises(IntegrityError, match="registry expects") as info:
        BertModel.from_pretrained("bert-base-uncased")
    assert "bert_config.json" in str(info.value) or "bert_model.ckpt" in str(info.value)
    root = Path(os.environ["BERT_HUB_CACHE"])
    assert not (root / "models" / "bert-base-uncased").exists()
    assert [p for p in (root / ".tmp").iterdir()] == []


def test_unknown_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match="bert-base-uncased") as info:
        BertModel.from_pretrained("bert-base-uncasd")
    assert isinstance(info.value, ValueError)
    with pytest.raises(EntryNotFoundError, match="does not exist"):
        BertModel.from_pretrained("./no/such/folder")


def test_archive_url_and_flat_archive(file_server, tmp_path):
    file_server.put("/x/flat.zip", google_zip(top=None))
    model = BertForPreTraining.from_pretrained(file_server.url("/x/flat.zip"))
    for ours, ref in zip(outputs(model), outputs(reference_model())):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)
    BertTokenizer.from_pretrained(file_server.url("/x/flat.zip"))
    assert file_server.count("/x/flat.zip") == 1


@pytest.mark.parametrize("member", ["../evil.txt", "/abs/evil.txt"])
def test_unsafe_archive_from_url_is_refused(file_server, member):
    file_server.put("/x/evil.zip", google_zip(extra={member: b"boom"}))
    with pytest.raises(UnsafeArchiveError):
        BertModel.from_pretrained(file_server.url("/x/evil.zip"))
    root = Path(os.environ["BERT_HUB_CACHE"])
    assert not any((root / "models").glob("*")) if (root / "models").exists() else True
    assert [p for p in (root / ".tmp").iterdir()] == []


def test_local_archive_and_google_folder(tmp_path):
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(google_zip())
    from_zip = BertForPreTraining.from_pretrained(archive)
    folder = tmp_path / "google"
    shutil.copytree(TF_TINY, folder)
    from_folder = BertForPreTraining.from_pretrained(folder)
    assert (folder / "model.safetensors").exists()          # converted beside it, once
    mtime = (folder / "model.safetensors").stat().st_mtime_ns
    BertForPreTraining.from_pretrained(folder)
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime
    ref = outputs(reference_model())
    for model in (from_zip, from_folder):
        for ours, expected in zip(outputs(model), ref):
            torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_google_folder_converts_in_memory(tmp_path):
    folder = tmp_path / "ro"
    shutil.copytree(TF_TINY, folder)
    folder.chmod(0o555)
    try:
        model = BertForPreTraining.from_pretrained(folder)
        assert not (folder / "model.safetensors").exists()
        torch.testing.assert_close(outputs(model)[0], outputs(reference_model())[0], rtol=0, atol=1e-6)
    finally:
        folder.chmod(0o755)


def test_read_only_google_folder_converts_in_memory_via_flag(tmp_path, monkeypatch):
    """Same as above for root: a folder we may not write to is detected by os.access."""
    folder = tmp_path / "ro"
    shutil.copytree(TF_TINY, folder)
    monkeypatch.setattr(hub, "_writable", lambda path: False)
    model = BertForPreTraining.from_pretrained(folder)
    assert not (folder / "model.safetensors").exists()
    torch.testing.assert_close(outputs(model)[0], outputs(reference_model())[0], rtol=0, atol=1e-6)


def test_truncated_converted_file_is_redone_not_served(mirror):
    BertModel.from_pretrained("tiny-bert")
    weights = Path(os.environ["BERT_HUB_CACHE"]) / "models" / "tiny-bert" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    model = BertForPreTraining.from_pretrained("tiny-bert")
    assert weights.read_bytes() == good
    torch.testing.assert_close(outputs(model)[0], outputs(reference_model())[0], rtol=0, atol=1e-6)
    assert mirror.count(GOOGLE_PATH) == 1


def test_cached_path(file_server, tmp_path):
    file_server.put("/files/vocab.txt", b"[PAD]\n[UNK]\n")
    local = cached_path(file_server.url("/files/vocab.txt"))
    assert Path(local).read_bytes() == b"[PAD]\n[UNK]\n"
    assert cached_path(file_server.url("/files/vocab.txt")) == local
    assert file_server.count("/files/vocab.txt") == 1
    plain = tmp_path / "here.txt"
    plain.write_text("x")
    assert cached_path(str(plain)) == str(plain)
    with pytest.raises(EntryNotFoundError, match="does not exist"):
        cached_path(str(tmp_path / "missing.txt"))


_LOADER = textwrap.dedent("""
    import hashlib, sys, torch
    from bert_hub import BertModel
    model = BertModel.from_pretrained("tiny-bert")
    with torch.no_grad():
        _, pooled = model(torch.tensor([[2, 7, 9, 3]]))
    path = sys.argv[1]
    from bert_hub.cache import cache_root
    weights = cache_root() / "models" / "tiny-bert" / "model.safetensors"
    print(hashlib.sha256(weights.read_bytes()).hexdigest(), repr(pooled.sum().item()))
""")


def test_eight_processes_one_download(mirror, tmp_path):
    mirror.always(GOOGLE_PATH, None)
    mirror.rate = 200_000  # slow enough that all eight arrive while the first is downloading
    script = tmp_path / "load.py"
    script.write_text(_LOADER)
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=env, text=True) for i in range(8)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        results.append(out.strip())
    assert mirror.count(GOOGLE_PATH) == 1
    assert len(set(results)) == 1


_KILLABLE = textwrap.dedent("""
    from bert_hub import hub
    hub.download_model("tiny-bert")
""")


def test_killed_download_resumes_with_range(mirror, tmp_path):
    # Large enough that the downloader has flushed a few MiB to its .part when it is killed.
    padding = os.urandom(12 << 20)
    mirror.put(GOOGLE_PATH, google_zip(extra={f"{TOP}/padding.bin": padding}))
    mirror.rate = 4 << 20
    script = tmp_path / "dl.py"
    script.write_text(_KILLABLE)
    part = Path(os.environ["BERT_HUB_CACHE"]) / ".tmp" / "tiny-bert.part"
    proc = subprocess.Popen([sys.executable, str(script)], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if part.exists() and part.stat().st_size > (5 << 20):
                break
            time.sleep(0.05)
        else:
            pytest.fail("the download never got going")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    have = part.stat().st_size
    assert have > 0
    mirror.rate = None
    model = BertForPreTraining.from_pretrained("tiny-bert")
    ranges = mirror.ranges(GOOGLE_PATH)
    assert ranges[0] is None and ranges[-1] is not None and ranges[-1].startswith("bytes=")
    assert int(ranges[-1][len("bytes="):].rstrip("-")) > 0
    torch.testing.assert_close(outputs(model)[0], outputs(reference_model())[0], rtol=0, atol=1e-6)
    assert not part.exists()


def test_faulty_mirror_never_leaves_a_corrupt_entry(mirror):
    mirror.add_faults(GOOGLE_PATH, *[Fault("corrupt", at=5000)] * 7)   # more than fetch retries
    with pytest.raises(IntegrityError):
        BertModel.from_pretrained("tiny-bert")
    root = Path(os.environ["BERT_HUB_CACHE"])
    assert not (root / "models" / "tiny-bert").exists()
    mirror.always(GOOGLE_PATH, None)
    mirror._faults.clear()
    BertModel.from_pretrained("tiny-bert")
    assert (root / "models" / "tiny-bert" / "model.safetensors").exists()


def test_no_space_for_the_download_fails_before_any_get(mirror, monkeypatch):
    from collections import namedtuple

    from bert_hub import cache
    from bert_hub.errors import InsufficientSpaceError
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(cache.shutil, "disk_usage", lambda p: Usage(1 << 30, 1 << 30, 1 << 20))
    with pytest.raises(InsufficientSpaceError, match="download"):
        BertModel.from_pretrained("tiny-bert")
    assert mirror.count(GOOGLE_PATH) == 0
    root = Path(os.environ["BERT_HUB_CACHE"])
    assert not (root / "models" / "tiny-bert").exists()


def test_062_tar_gz_archive_from_disk_and_url(tmp_path, file_server):
    """0.6.2 published its models as .tar.gz archives of bert_config.json + pytorch_model.bin."""
    import tarfile

    from pytorch_pretrained_bert import modeling as ppb
    config = ppb.BertConfig(vocab_size_or_config_json_file=40, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64, max_position_embeddings=16)
    torch.manual_seed(0)
    theirs = ppb.BertForPreTraining(config).eval()
    folder = tmp_path / "ppb"
    folder.mkdir()
    torch.save(theirs.state_dict(), folder / "pytorch_model.bin")
    (folder / "bert_config.json").write_text(config.to_json_string())
    archive = tmp_path / "bert-tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for name in ("bert_config.json", "pytorch_model.bin"):
            tf.add(folder / name, arcname=name)
    file_server.put("/models/bert-tiny.tar.gz", archive.read_bytes())
    ids = torch.tensor([[2, 7, 9, 11, 3]])
    with torch.no_grad():
        expected = theirs(ids)
        for source in (archive, file_server.url("/models/bert-tiny.tar.gz")):
            ours = BertForPreTraining.from_pretrained(source)
            for a, b in zip(ours(ids), expected):
                torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_google_folder_reconverted_when_its_checkpoint_is_newer(tmp_path):
    folder = tmp_path / "google"
    shutil.copytree(TF_TINY, folder)
    BertForPreTraining.from_pretrained(folder)
    weights = folder / "model.safetensors"
    first = weights.stat().st_mtime_ns
    BertForPreTraining.from_pretrained(folder)
    assert weights.stat().st_mtime_ns == first                     # fresh: reused
    later = first + 10**9
    os.utime(folder / "bert_model.ckpt.data-00000-of-00001", ns=(later, later))
    BertForPreTraining.from_pretrained(folder)
    assert weights.stat().st_mtime_ns > first                      # stale: converted again
