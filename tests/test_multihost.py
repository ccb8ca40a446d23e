"""Two hosts on one machine: two network namespaces joined by a veth pair (10.213.7.1 and .2),
each with its own host name (``unshare --uts``; both names in each namespace's hosts file) and
its own disk under the same output path (a bind mount in the namespace's private mount
namespace). torchrun runs one process per host with gloo over the veth.

- static rendezvous: a run with checkpoints on node-local disks, each disk a complete copy;
- c10d rendezvous by host name: a longer run resumes there, each host from its own disk, and
  ends equal to one process trained without a stop;
- the link cut mid-run: both hosts end within the process-group timeout, with a one-line error.

Needs root and ``ip netns`` (skipped otherwise). The namespaces are removed even on failure;
every wait is bounded; only 10.213.7.x inside the namespaces made here is contacted.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from _train_worker import Classifier, DictData
from _user_script import ARGS

from bert_hub.trainer import Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
NODES = ("a", "b")
ADDRESS = {"a": "10.213.7.1", "b": "10.213.7.2"}
PORT = 29531  # free: each namespace is new
JOIN = 60  # seconds a node waits for the other to join (torch's defaults: 600 c10d, 900 static)
RUN_LIMIT = 150  # seconds any launch may take before the test fails


def _can_make_namespaces() -> str | None:
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "needs root on Linux to create network namespaces"
    for tool in ("ip", "unshare", "mount"):
        if shutil.which(tool) is None:
            return f"needs the {tool!r} command"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.decode().strip()}"
    return None


pytestmark = pytest.mark.skipif(_can_make_namespaces() is not None,
                                reason=_can_make_namespaces() or "")


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Hosts:
    """Two namespaces ``<tag>a`` / ``<tag>b``, veth ends ``<tag>va`` / ``<tag>vb``."""

    def __init__(self, tag: str):
        self.ns = {n: f"{tag}{n}" for n in NODES}
        self.veth = {n: f"{tag}v{n}" for n in NODES}

    def __enter__(self):
        try:
            for n in NODES:
                _ip("netns", "add", self.ns[n])
            _ip("link", "add", self.veth["a"], "type", "veth", "peer", "name", self.veth["b"])
            for n in NODES:
                _ip("link", "set", self.veth[n], "netns", self.ns[n])
                _ip("-n", self.ns[n], "addr", "add", f"{ADDRESS[n]}/24", "dev", self.veth[n])
                _ip("-n", self.ns[n], "link", "set", self.veth[n], "up")
                _ip("-n", self.ns[n], "link", "set", "lo", "up")
                folder = f"/etc/netns/{self.ns[n]}"
                os.makedirs(folder, exist_ok=True)
                with open(f"{folder}/hosts", "w", encoding="utf-8") as f:
                    f.write("127.0.0.1 localhost\n" + "".join(
                        f"{ADDRESS[m]} node-{m}\n" for m in NODES))
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for n in NODES:  # deleting a namespace deletes its veth end, and the pair with it
            subprocess.run(["ip", "netns", "del", self.ns[n]], capture_output=True, check=False,
                           timeout=30)
            shutil.rmtree(f"/etc/netns/{self.ns[n]}", ignore_errors=True)

    def cut(self) -> None:
        _ip("-n", self.ns["a"], "link", "set", self.veth["a"], "down")

    def launch(self, node: str, torchrun: list[str], script_args: list[str], *, disk: str,
               output: str, log: str) -> subprocess.Popen:
        """torchrun on ``node``: its host name, its network, ``disk`` mounted at ``output``."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
        env.update(GLOO_SOCKET_IFNAME=self.veth[node], OMP_NUM_THREADS="1",
                   CUDA_VISIBLE_DEVICES="", BERT_HUB_DISABLE_PROGRESS="1",
                   PYTHONPATH=os.pathsep.join([HERE, env.get("PYTHONPATH", "")]))
        run = [sys.executable, "-m", "torch.distributed.run", *torchrun,
               os.path.join(HERE, "_user_script.py"), *script_args]
        inner = ('hostname "$1" && mount --bind "$2" "$3" && shift 3 && exec "$@"')
        cmd = ["ip", "netns", "exec", self.ns[node], "unshare", "--uts", "sh", "-c", inner,
               "sh", f"node-{node}", disk, output, *run]
        return subprocess.Popen(cmd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                start_new_session=True)


def _finish(procs: dict, logs: dict, limit: float = RUN_LIMIT) -> dict:
    """Wait for every launch (at most ``limit`` seconds in all); kill the rest on failure."""
    end = time.monotonic() + limit
    codes = {}
    try:
        for n, proc in procs.items():
            codes[n] = proc.wait(timeout=max(1.0, end - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=30)
    if len(codes) < len(procs):
        pytest.fail(f"a launch ran over {limit} s:\n" + _tails(logs))
    return codes


def _tails(logs: dict) -> str:
    return "\n".join(f"--- node {n}:\n{open(p).read()[-3000:]}" for n, p in logs.items())


def _static(node: str) -> list[str]:
    return ["--nnodes=2", "--nproc_per_node=1", f"--node_rank={NODES.index(node)}",
            "--master_addr=node-a", f"--master_port={PORT}", "--rdzv_conf",
            f"join_timeout={JOIN}"]


def _c10d(node: str) -> list[str]:
    return ["--nnodes=2", "--nproc_per_node=1", "--rdzv_backend=c10d",
            f"--rdzv_endpoint=node-a:{PORT}", "--rdzv_id=multihost-test", "--rdzv_conf",
            f"join_timeout={JOIN}", "--max_restarts=0"]


@pytest.fixture
def hosts():
    with Hosts(f"bh{os.getpid() % 100000}") as made:
        yield made


def _run(hosts, tmp_path, name, launcher, output, disks, *script_args):
    logs = {n: str(tmp_path / f"{name}-{n}.log") for n in NODES}
    procs = {n: hosts.launch(n, launcher(n), [str(tmp_path / f"{name}-report-{n}"), output,
                                              *script_args],
                             disk=disks[n], output=output, log=logs[n]) for n in NODES}
    return _finish(procs, logs), logs


def _reports(tmp_path, name):
    return {n: json.loads((tmp_path / f"{name}-report-{n}" / f"report_rank{r}.json").read_text())
            for n in NODES for r in (0, 1)
            if (tmp_path / f"{name}-report-{n}" / f"report_rank{r}.json").exists()}


@pytest.mark.slow  # three two-host launches: 63-80 s on a busy 2-core machine
def test_node_local_checkpoints_resume_and_a_cut_link(hosts, tmp_path):
    output = str(tmp_path / "output")  # the same path on both hosts, a different disk on each
    os.makedirs(output)
    disks = {n: str(tmp_path / f"disk-{n}") for n in NODES}
    for disk in disks.values():
        os.makedirs(disk)

    # 1. static rendezvous: 4 steps, a checkpoint every 2, each disk a complete copy
    codes, logs = _run(hosts, tmp_path, "first", _static, output, disks, "4")
    assert codes == {"a": 0, "b": 0}, _tails(logs)
    reports = _reports(tmp_path, "first")
    assert {r["hostname"] for r in reports.values()} == {"node-a", "node-b"}
    assert os.listdir(output) == []  # everything went to the disks mounted there
    for disk in disks.values():
        assert sorted(n for n in os.listdir(disk) if n.startswith("checkpoint-")) == \
            ["checkpoint-2", "checkpoint-4"]
        assert sorted(os.listdir(os.path.join(disk, "checkpoint-4"))) == [
            "model.safetensors", "optimizer.pt", "rng_state_0.pt", "rng_state_1.pt",
            "trainer_state.json"]
        assert not [n for n in os.listdir(disk) if n.startswith(".rank-") or n.endswith(".tmp")]
    same = [open(os.path.join(disks[n], "checkpoint-4", "model.safetensors"), "rb").read()
            for n in NODES]
    assert same[0] == same[1]
    assert "metrics.jsonl" in os.listdir(disks["a"])  # rank 0's records, on rank 0's disk

    # 2. c10d rendezvous by host name: 6 steps, resumed from step 4 on each host's own disk
    codes, logs = _run(hosts, tmp_path, "second", _c10d, output, disks, "6")
    assert codes == {"a": 0, "b": 0}, _tails(logs)
    for n in NODES:
        text = open(logs[n]).read()
        assert "resuming from" in text and "checkpoint-4" in text, text[-3000:]
    assert [r["global_step"] for r in _reports(tmp_path, "second").values()] == [6, 6]
    params = [tmp_path / f"second-report-{n}" / "params.pt" for n in NODES]
    saved = torch.load(next(p for p in params if p.exists()), weights_only=True)
    torch.manual_seed(0)
    whole = Classifier()
    Trainer(whole, DictData(32), max_steps=6, output_dir=tmp_path / "one",
            **dict(ARGS, batch_size=8)).train()
    assert max(float((whole.state_dict()[k] - saved[k]).abs().max()) for k in saved) <= 1e-6

    # 3. the link cut mid-run: both hosts end within the process-group timeout, in one line
    cut_disks = {n: str(tmp_path / f"cut-disk-{n}") for n in NODES}
    for disk in cut_disks.values():
        os.makedirs(disk)
    logs = {n: str(tmp_path / f"cut-{n}.log") for n in NODES}
    procs = {n: hosts.launch(n, _static(n), [str(tmp_path / f"cut-report-{n}"), output, "100000",
                                             "--slow", "0.05", "--ddp_timeout", "5", "--cli"],
                             disk=cut_disks[n], output=output, log=logs[n]) for n in NODES}
    deadline = time.monotonic() + RUN_LIMIT
    while not all((tmp_path / f"cut-report-{n}" / f"running_rank{r}").exists()
                  for n, r in (("a", 0), ("b", 1))):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs.values()):
            _finish(procs, logs, limit=1)
            pytest.fail("the run to cut did not start:\n" + _tails(logs))
        time.sleep(0.2)
    time.sleep(1.0)
    hosts.cut()
    cut_at = time.monotonic()
    codes = _finish(procs, logs, limit=60)
    took = time.monotonic() - cut_at
    assert codes["a"] != 0 and codes["b"] != 0, _tails(logs)
    assert took < 60  # 5 s timeout, then the exit (torch's default: hung for 30 min)
    for n in NODES:
        text = open(logs[n]).read()
        assert "error: a collective operation got no answer" in text or \
            "error: another process of the run closed its connection" in text, text[-3000:]
