"""The whole hub path over real HTTP on 127.0.0.1: registry -> download -> verify -> extract ->
lazy conversion -> load, for models and tokenizers, with concurrency, kills, bad archives and
cache faults (`cache rm` during loads, full disks, killed conversions)."""
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from floats import assert_close
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
        assert_close(ours, ref, tol=1e-6)
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
        assert_close(ours, ref, tol=1e-6)
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
            assert_close(ours, expected, tol=1e-6)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_google_folder_converts_in_memory(tmp_path):
    folder = tmp_path / "ro"
    shutil.copytree(TF_TINY, folder)
    folder.chmod(0o555)
    try:
        model = BertForPreTraining.from_pretrained(folder)
        assert not (folder / "model.safetensors").exists()
        assert_close(outputs(model)[0], outputs(reference_model())[0], tol=1e-6)
    finally:
        folder.chmod(0o755)


def test_read_only_google_folder_converts_in_memory_via_flag(tmp_path, monkeypatch):
    """Same as above for root: a folder we may not write to is detected by os.access."""
    folder = tmp_path / "ro"
    shutil.copytree(TF_TINY, folder)
    monkeypatch.setattr(hub, "_writable", lambda path: False)
    model = BertForPreTraining.from_pretrained(folder)
    assert not (folder / "model.safetensors").exists()
    assert_close(outputs(model)[0], outputs(reference_model())[0], tol=1e-6)


def test_truncated_converted_file_is_redone_not_served(mirror):
    BertModel.from_pretrained("tiny-bert")
    weights = Path(os.environ["BERT_HUB_CACHE"]) / "models" / "tiny-bert" / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    model = BertForPreTraining.from_pretrained("tiny-bert")
    assert weights.read_bytes() == good
    assert_close(outputs(model)[0], outputs(reference_model())[0], tol=1e-6)
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
    assert_close(outputs(model)[0], outputs(reference_model())[0], tol=1e-6)
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

    from bert_hub.errors import InsufficientSpaceError
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: Usage(1 << 30, 1 << 30, 1 << 20))
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
                assert_close(a, b)


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


# --- cache faults: nothing lost, nothing corrupt served --------------------------------------


_RACE_LOADER = textwrap.dedent("""
    import json, logging, sys, time
    from pathlib import Path
    import torch
    from bert_hub import BertModel, BertTokenizer
    from bert_hub.errors import BertHubError
    archive, go, loads, what = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[5]

    def load():
        if what == "tokenizer":                    # its ids and size: the right vocabulary
            tok = BertTokenizer.from_pretrained(archive)
            return repr(tok.convert_tokens_to_ids(tok.tokenize("the [SEP]")) + [len(tok.vocab)])
        with torch.no_grad():
            return repr(round(BertModel.from_pretrained(archive)(ids)[1].sum().item(), 5))

    retries = []
    logging.getLogger("bert_hub.hub").addHandler(logging.Handler())
    logging.getLogger("bert_hub.hub").handlers[-1].emit = lambda record: retries.append(record.getMessage())
    Path(sys.argv[4]).touch()                      # ready
    while not go.exists():
        time.sleep(0.01)
    outcomes, ids = {}, torch.tensor([[2, 7, 9, 3]])
    for _ in range(loads):
        try:
            outcome = load()
        except BertHubError as exc:
            outcome = "typed " + type(exc).__name__
        except Exception as exc:
            outcome = f"UNTYPED {type(exc).__name__}: {exc}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    Path(sys.argv[4] + ".done").touch()
    print(json.dumps({"outcomes": outcomes, "retries": len(retries)}))
""")

_RACE_REMOVER = textwrap.dedent("""
    import json, random, sys, time
    from pathlib import Path
    from bert_hub import cache
    from bert_hub.errors import EntryNotFoundError
    root, name, go, loaders = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4:6]
    Path(sys.argv[6]).touch()
    while not go.exists():
        time.sleep(0.01)
    removed, rng = 0, random.Random(0)
    deadline = time.monotonic() + 100
    while not all(Path(f + ".done").exists() for f in loaders) and time.monotonic() < deadline:
        try:
            cache.remove_entry(root, name)
            removed += 1
        except EntryNotFoundError:
            pass
        time.sleep(rng.uniform(0, 0.02))
    print(json.dumps({"removed": removed}))
""")


@pytest.mark.parametrize("what", ["model", "tokenizer"])
def test_cache_rm_while_other_processes_load(tmp_path, what):
    """`bert-hub cache rm` in a loop while two processes load the same entry (weights, or the
    tokenizer) in a loop: every load serves the right files or fails with a typed error; none
    fails untyped (a vocabulary removed between resolving and reading it is resolved again)."""
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(google_zip())
    name = hub.resolve_model(archive, need_weights=False).folder.name
    root = Path(os.environ["BERT_HUB_CACHE"])
    if what == "tokenizer":
        tok = BertTokenizer.from_pretrained(archive)
        expected = repr(tok.convert_tokens_to_ids(tok.tokenize("the [SEP]")) + [len(tok.vocab)])
    else:
        expected = repr(round(BertModel.from_pretrained(archive)(torch.tensor([[2, 7, 9, 3]]))[1].sum().item(), 5))
    go, loads = tmp_path / "go", "30" if what == "model" else "200"     # a tokenizer loads faster
    (tmp_path / "load.py").write_text(_RACE_LOADER)
    (tmp_path / "rm.py").write_text(_RACE_REMOVER)
    ready = [str(tmp_path / f"ready{i}") for i in range(3)]
    procs = [subprocess.Popen([sys.executable, str(tmp_path / "load.py"), str(archive), str(go), loads,
                               ready[i], what], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    procs.append(subprocess.Popen([sys.executable, str(tmp_path / "rm.py"), str(root), name, str(go),
                                   *ready], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + 120
        while not all(Path(r).exists() for r in ready):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "workers did not start"
            time.sleep(0.05)
        go.touch()
        results = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            proc.kill()
    outcomes = {}
    for result in results[:2]:
        for outcome, n in result["outcomes"].items():
            outcomes[outcome] = outcomes.get(outcome, 0) + n
    assert not [o for o in outcomes if o.startswith("UNTYPED")], outcomes
    assert set(outcomes) <= {expected, "typed EntryNotFoundError"}, outcomes    # right weights only
    total = 2 * int(loads)
    assert sum(outcomes.values()) == total and outcomes.get(expected, 0) >= total // 3, outcomes
    assert results[2]["removed"] >= 5, results    # the entry really was pulled away, many times


def test_full_disk_keeps_the_verified_download(mirror, monkeypatch):
    """The disk fills up while extracting: a typed error naming the path, and the verified
    archive stays in .tmp, so that the retry extracts it without downloading it again."""
    import errno

    from bert_hub import archive as archives
    from bert_hub.errors import InsufficientSpaceError
    real_open = open

    class FullDisk(io.RawIOBase):
        def __init__(self, path):
            self.path = path

        def writable(self):
            return True

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def full_disk_open(path, mode="r", *args, **kwargs):
        return FullDisk(path) if "x" in mode else real_open(path, mode, *args, **kwargs)
    with monkeypatch.context() as patched, pytest.raises(InsufficientSpaceError, match="No space") as info:
        patched.setattr(archives, "open", full_disk_open, raising=False)
        BertModel.from_pretrained("tiny-bert")
    root = Path(os.environ["BERT_HUB_CACHE"])
    (kept,) = (root / ".tmp").glob("tiny-bert.*.verified")
    assert str(kept) in str(info.value) and str(root / ".tmp") in str(info.value)
    assert not (root / "models" / "tiny-bert").exists()
    assert sorted(p.name for p in (root / ".tmp").iterdir()) == [kept.name]
    model = BertForPreTraining.from_pretrained("tiny-bert")
    assert_close(outputs(model)[0], outputs(reference_model())[0], tol=1e-6)
    assert mirror.count(GOOGLE_PATH) == 1                       # extracted, not downloaded again
    assert not kept.exists()


_KILLED_CONVERSION = textwrap.dedent("""
    import os, signal
    from bert_hub import convert, hub
    def killed(reader, rows, f):                   # half the file written, then SIGKILL
        f.write(b"half a safetensors file")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    convert._write_safetensors_streaming = killed
    hub.download_model("tiny-bert")
""")


def test_killed_conversion_leaves_nothing_forever(mirror, tmp_path):
    script = tmp_path / "kill.py"
    script.write_text(_KILLED_CONVERSION)
    proc = subprocess.run([sys.executable, str(script)], env=dict(os.environ), capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    from bert_hub import cache
    root = Path(os.environ["BERT_HUB_CACHE"])
    entry = root / "models" / "tiny-bert"
    (leftover,) = entry.glob(".model.safetensors.*.tmp")
    assert re.fullmatch(r"\.model\.safetensors\.[0-9a-f]{32}\.tmp", leftover.name)  # one temp name
    assert leftover.read_bytes() == b"half a safetensors file"
    assert (root / ".locks" / "tiny-bert.lock").exists()                # what the killed process held
    assert cache.verify_entry(cache.find_entry(root, "tiny-bert")) == []   # not part of the entry
    assert leftover in cache.prune(root) and not leftover.exists()
    assert not (root / ".locks" / "tiny-bert.lock").exists()    # nothing holds it any more
    # The same leftover is swept by the next conversion of the entry.
    (entry / leftover.name).write_bytes(b"half")
    BertModel.from_pretrained("tiny-bert")
    assert list(entry.glob(".*.tmp")) == [] and (entry / "model.safetensors").exists()
    cache.remove_entry(root, "tiny-bert")
    cache.prune(root)
    assert not (root / ".locks" / "tiny-bert.lock").exists()


def test_archive_shipping_a_manifest_is_not_damaged_on_every_load(file_server, caplog):
    file_server.put("/x/m.zip", google_zip(extra={f"{TOP}/.bert_hub.json": b'{"files": {"x": 1}}'}))
    url = file_server.url("/x/m.zip")
    for _ in range(3):
        BertTokenizer.from_pretrained(url)
    assert file_server.count("/x/m.zip") == 1
    assert "damaged" not in caplog.text


_CONVERT_ON_A_FULL_DISK = textwrap.dedent("""
    import json, resource, shutil, signal, sys
    from collections import namedtuple
    from pathlib import Path
    from bert_hub import cache, hub
    from bert_hub.errors import BertHubError
    root, archive, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    # The checks up front see room (as if another process filled the disk afterwards).
    shutil.disk_usage = lambda p: namedtuple("Usage", "total used free")(1 << 40, 0, 1 << 40)
    folder = cache.ensure_local_archive_entry("m", archive, root=root, check_layout=hub.check_layout)
    if mode == "fsize":
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
    try:
        hub.ensure_converted(folder, cache_dir=root)
        error = {"error": None}
    except BaseException as exc:
        error = {"error": type(exc).__name__, "typed": isinstance(exc, BertHubError), "message": str(exc)}
    error["leftovers"] = [p.name for p in folder.glob(".*.tmp")]
    error["recorded"] = sorted(cache.read_manifest(folder)["files"])
    print(json.dumps(error))
""")


@pytest.mark.parametrize("mode", ["tmpfs", "fsize"])
def test_full_disk_during_conversion_is_a_typed_error_naming_the_path(tmp_path, mode):
    """A real ENOSPC (a 104 KB tmpfs: room for the entry, not its conversion) or EFBIG (RLIMIT_FSIZE) while writing
    model.safetensors: InsufficientSpaceError naming the file, no temp file left, nothing
    recorded; with room again the conversion succeeds."""
    root = tmp_path / "cache"
    root.mkdir()
    if mode == "tmpfs":
        probe = tmp_path / "probe"
        probe.mkdir()
        if os.geteuid() != 0 or shutil.which("unshare") is None or subprocess.run(
                ["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
                capture_output=True, timeout=30).returncode:
            pytest.skip("needs root and `unshare -m` to mount a small tmpfs")
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(google_zip(source=_without_meta(tmp_path)))
    script = tmp_path / "convert.py"
    script.write_text(_CONVERT_ON_A_FULL_DISK)
    command = [sys.executable, str(script), str(root), str(archive), mode]
    if mode == "tmpfs":
        command = ["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=104k tmpfs {root} && exec \"$@\"",
                   "sh", *command]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["error"] == "InsufficientSpaceError" and result["typed"], result
    assert str(root / "models" / "m" / "model.safetensors") in result["message"], result
    assert result["leftovers"] == [] and "model.safetensors" not in result["recorded"], result
    if mode == "fsize":   # the same entry converts once there is room
        from bert_hub import cache
        weights = hub.ensure_converted(root / "models" / "m", cache_dir=root)
        assert cache.verify_entry(cache.find_entry(root, "m")) == [] and weights.stat().st_size > 20_000


def _without_meta(tmp_path):
    folder = tmp_path / "google"
    shutil.copytree(TF_TINY, folder, ignore=shutil.ignore_patterns("*.meta"))
    return folder
