"""`bert-hub demo` end to end, offline, as a user runs it: the embedded TensorFlow checkpoint
through every hub stage, fine-tuned by the Trainer on the embedded reviews until it is well above
chance, its loss curve drawn, saved, reloaded and asked through a pipeline."""
import json
import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from bert_hub.demo import DEFAULT_TEXTS, load_reviews

EXPECTED = ["positive", "negative", "positive", "negative"]   # the four DEFAULT_TEXTS
STAGES = ["resolve", "fetch+verify+extract", "convert TF -> safetensors", "load model",
          "load tokenizer", "tokenize labelled set", "build Trainer", "evaluate (before)",
          "fine-tune (Trainer)", "evaluate (after)", "save", "load saved model", "pipeline"]


def demo(*args, offline=True):
    env = dict(os.environ, BERT_HUB_OFFLINE="1" if offline else "0")
    return subprocess.run([sys.executable, "-m", "bert_hub.cli", "demo", *args],
                          capture_output=True, text=True, timeout=300, env=env)


def test_the_labelled_set_is_balanced_and_its_test_split_held_out():
    reviews = load_reviews()
    assert len(reviews) >= 300
    counts = Counter((split, label) for split, label, _ in reviews)
    assert set(counts) == {(s, lab) for s in ("train", "test") for lab in ("positive", "negative")}
    assert counts["train", "positive"] == counts["train", "negative"]
    assert counts["test", "positive"] == counts["test", "negative"]
    train = {text.lower() for split, _, text in reviews if split == "train"}
    assert not train & {text.lower() for split, _, text in reviews if split == "test"}


def test_demo_learns_offline_and_answers_through_a_pipeline(tmp_path):
    out = tmp_path / "out"
    proc = demo("--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for stage in STAGES:
        assert re.search(rf"^  {re.escape(stage)} +\d+\.\d+ m?s", text, re.M), (stage, text)
    assert "file://" in text and "WARNING" not in proc.stderr

    before, after = map(float, re.search(r"accuracy on held-out reviews: ([\d.]+)% before "
                                         r"fine-tuning, ([\d.]+)% after", text).groups())
    assert after >= 70 and after - before >= 20, text       # chance is 50%; 64 held out, so seeds vary by +-6 points

    curve = out / "training_curves.png"
    assert f"loss curve: {curve}" in text
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and curve.stat().st_size > 5000
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if "loss" in json.loads(line)]
    assert len(losses) > 10 and losses[-1] < losses[0] / 2

    assert "predictions equal the trained model's" in text
    saved = json.loads((out / "model" / "bert_config.json").read_text())
    assert saved["id2label"] == {"0": "negative", "1": "positive"}
    answers = re.findall(r"^ +(positive|negative) \((\d\.\d\d)\)  (.+)$", text, re.M)
    assert [t for _, _, t in answers] == list(DEFAULT_TEXTS)
    assert [label for label, _, _ in answers] == EXPECTED, text

    again = demo("--output-dir", str(out), "--epochs", "1", "--text", "A wonderful film.")
    assert again.returncode == 0, again.stderr
    assert "cache hit, no I/O" in again.stdout and "already converted" in again.stdout
    assert re.search(r"^ +(positive|negative) \(\d\.\d\d\)  A wonderful film\.$", again.stdout, re.M)


@pytest.mark.parametrize("args, words", [
    (("--epochs", "0"), "epochs must be a whole number >= 1"),
    (("--text", " "), "texts must be non-empty strings"),
])
def test_demo_refuses_bad_arguments_in_one_line(args, words):
    proc = demo(*args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and len(lines) == 1 and words in lines[0], proc.stderr


def test_demo_refuses_an_output_dir_that_is_a_file(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = demo("--output-dir", str(blocker))
    assert proc.returncode != 0 and "is a file; pass a folder" in proc.stderr
    assert "Traceback" not in proc.stderr
