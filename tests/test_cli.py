"""The installed `bert-hub` command, run as a user runs it: every subcommand and its exit code."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mirror import GOOGLE_PATH, TF_TINY

EXE = shutil.which("bert-hub", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
pytestmark = pytest.mark.skipif(EXE is None, reason="the bert-hub console script is not installed "
                                                    "(pip install -e .)")


def run(*args, check=None):
    proc = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, env=dict(os.environ))
    if check is not None:
        assert proc.returncode == check, (proc.stdout, proc.stderr)
    return proc


def assert_one_clear_line(proc, *words):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("bert-hub: error: "), proc.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("command", ["download", "list", "convert", "cache", "env", "demo"])
def test_help_for_each_subcommand(command):
    proc = run(command, "--help", check=0)
    assert "usage: bert-hub " + command in proc.stdout


def test_download_list_cache_ls_verify_rm(mirror):
    root = Path(os.environ["BERT_HUB_CACHE"])
    entry = root / "models" / "tiny-bert"
    proc = run("download", "tiny-bert", "--no-convert", check=0)
    assert "tiny-bert" in proc.stdout
    assert entry.is_dir() and not (entry / "model.safetensors").exists()
    run("download", "tiny-bert", check=0)                  # cached: converts, no new request
    assert (entry / "model.safetensors").exists()
    assert mirror.count(GOOGLE_PATH) == 1

    listing = run("list", check=0).stdout
    row = next(line for line in listing.splitlines() if line.startswith("tiny-bert "))
    assert "yes" in row and "tiny_L-2" in row
    assert any(line.startswith("bert-base-uncased ") and " no " in line for line in listing.splitlines())

    ls = run("cache", "ls", check=0).stdout
    assert "tiny-bert" in ls and "1 entries" in ls
    assert "tiny-bert: ok" in run("cache", "verify", check=0).stdout

    (entry / "vocab.txt").write_text((entry / "vocab.txt").read_text().replace("[MASK]", "[MASQ]"))
    bad = run("cache", "verify", "tiny-bert", check=1)
    assert "CORRUPT" in bad.stdout and "vocab.txt" in bad.stdout and "cache rm" in bad.stderr

    assert "removed tiny-bert" in run("cache", "rm", "tiny-bert", check=0).stdout
    assert not entry.exists()
    assert_one_clear_line(run("cache", "rm", "tiny-bert"), "tiny-bert", "bert-hub cache ls")


def test_prune_removes_leftovers():
    root = Path(os.environ["BERT_HUB_CACHE"])
    (root / ".tmp").mkdir(parents=True)
    (root / ".tmp" / "gone.part").write_bytes(b"half")
    proc = run("cache", "prune", check=0)
    assert "1 leftover item(s) removed" in proc.stdout
    assert not (root / ".tmp" / "gone.part").exists()


def test_download_failures_are_one_clear_line(monkeypatch):
    assert_one_clear_line(run("download", "bert-base-uncasd"), "bert-base-uncased")
    monkeypatch.setenv("BERT_HUB_OFFLINE", "1")
    assert_one_clear_line(run("download", "bert-base-uncased"), "offline")


def test_convert_both_directions_and_errors(tmp_path):
    out = tmp_path / "model.safetensors"
    run("convert", "--tf-checkpoint", str(TF_TINY / "bert_model.ckpt"),
        "--config", str(TF_TINY / "bert_config.json"), "--out", str(out), check=0)
    back = tmp_path / "tf" / "bert_model.ckpt"
    run("convert", "--to-tf", "--weights", str(out), "--config", str(TF_TINY / "bert_config.json"),
        "--out", str(back), check=0)
    from bert_hub.tf_checkpoint import CheckpointReader
    ours, original = CheckpointReader(back), CheckpointReader(TF_TINY / "bert_model.ckpt")
    for name, _, _ in ours.list_variables():
        assert (ours.get_tensor(name) == original.get_tensor(name)).all(), name
    missing_input = run("convert", "--config", str(TF_TINY / "bert_config.json"), "--out", str(out))
    assert missing_input.returncode == 2
    assert_one_clear_line(missing_input, "--tf-checkpoint")
    assert_one_clear_line(run("convert", "--tf-checkpoint", str(tmp_path / "nope.ckpt"),
                              "--config", str(TF_TINY / "bert_config.json"), "--out", str(out)))


def test_env():   # `demo` has its own tests (tests/test_demo.py)
    env = run("env", check=0).stdout
    assert os.environ["BERT_HUB_CACHE"] in env and "torch" in env


def test_download_accepts_a_local_archive(tmp_path):
    from mirror import google_zip
    archive = tmp_path / "tiny.zip"
    archive.write_bytes(google_zip())
    proc = run("download", str(archive), check=0)
    folder = Path(proc.stdout.split(": ", 1)[1].rsplit(" (", 1)[0])
    assert (folder / "model.safetensors").exists() and folder.is_relative_to(Path(os.environ["BERT_HUB_CACHE"]))
