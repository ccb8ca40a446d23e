"""The suite's kernel mode (``BERT_HUB_TEST_KERNELS``, docs/testing.md) holds in this process
and in the Python processes tests start, and an unknown mode is refused."""
import os
import subprocess
import sys

import torch

from bert_hub import fast_path

MODE = os.environ.get("BERT_HUB_TEST_KERNELS", "").strip() or "default"
REPORT = ("import sys, torch; from bert_hub import fast_path; "
          "print(fast_path.ENABLED, torch.backends.mkldnn.enabled)")


def expected(mode):
    return (mode != "plain", mode != "no-onednn")


def test_this_process_runs_in_the_suites_mode():
    assert (fast_path.ENABLED, torch.backends.mkldnn.enabled) == expected(MODE)


def test_child_processes_run_in_the_same_mode():
    child = subprocess.run([sys.executable, "-c", REPORT], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ))
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == [str(v) for v in expected(MODE)]


def test_an_unknown_mode_stops_the_run(tmp_path):
    folder = os.path.join(os.path.dirname(__file__), "kernel_mode")
    env = dict(os.environ, BERT_HUB_TEST_KERNELS="fastest", PYTHONPATH=folder)
    child = subprocess.run([sys.executable, "-c", "pass"], capture_output=True, text=True,
                           timeout=60, env=env)
    assert child.returncode != 0
    assert "'fastest' is not a kernel mode" in child.stderr and "no-onednn" in child.stderr
