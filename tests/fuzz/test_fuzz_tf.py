"""A seeded campaign of hostile inputs against the TensorFlow reader, the conversions, configs
and the CLI (tf_mutations.py makes the cases, tf_cases.py is the worker that runs them).

Every case must end in success or a ``BertHubError``, within its time, under a memory cap.
Cases run in worker processes under ``RLIMIT_AS`` and a per-case alarm; a worker that dies or
stops answering is killed, its case reported, and the campaign carries on with the next one.

The default run takes a slice (``BERT_HUB_FUZZ_CASES``, default 200); ``make fuzz`` runs the
full campaign (12,000 cases). ``BERT_HUB_FUZZ_SEED`` picks the seed (default 1404); a finding
prints the command that replays it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import tf_cases  # noqa: E402

SEED = int(os.environ.get("BERT_HUB_FUZZ_SEED") or 1404)
CASES = int(os.environ.get("BERT_HUB_FUZZ_CASES") or 200)
# Seconds per call before it counts as a hang: the largest cases (a 20,000-variable index) take
# about a second a call on an idle machine; a real hang never ends, so the margin is wide.
CASE_TIMEOUT = 30.0
MEMORY_LIMIT = 3 << 30  # address space of a worker (torch alone maps about 650 MB)
BATCH = 400  # cases per worker process
WORKERS = 2

pytestmark = pytest.mark.fuzz


def _worker(seed: int, start: int, stop: int, out: Path, case_timeout: float,
            script: Path = HERE / "tf_cases.py", *extra: str) -> subprocess.Popen:
    """A worker process running cases [start, stop); its stderr goes beside its log."""
    with open(out.with_suffix(".err"), "w") as err:
        return subprocess.Popen(
            [sys.executable, str(script), *extra, "--seed", str(seed), "--start", str(start),
             "--stop", str(stop), "--out", str(out), "--case-timeout", str(case_timeout),
             "--memory-limit", str(MEMORY_LIMIT)],
            stdout=subprocess.DEVNULL, stderr=err)


def _read_log(path: Path) -> tuple[dict, tuple]:
    """({index: done record}, (index started but not done, its case)) from a worker's log."""
    done, started, case = {}, None, {}
    if path.exists():
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "start" in record:
                started, case = record["start"], {"index": record["start"]}
            elif "case" in record and "done" not in record:
                case = record["case"]
            else:
                done[record["done"]] = record
                started = None
    return done, (started, case)


STARTUP = 120.0  # seconds a worker may take to import torch and build its materials


def run_campaign(seed: int, cases: int, case_timeout: float = CASE_TIMEOUT,
                 workers: int = WORKERS, batch: int = BATCH, launch=_worker) -> dict:
    """Run cases [0, cases) of ``seed``; return {index: record} (findings included).

    A worker whose log stops growing for longer than a case can take (every call hitting its
    alarm) is stuck where the alarm cannot reach: it is killed and its case reported."""
    silent_limit = (len(tf_cases.CHECKPOINT_TARGETS) + 2) * case_timeout
    pending = [(a, min(a + batch, cases)) for a in range(0, cases, batch)]
    records: dict = {}
    with tempfile.TemporaryDirectory(prefix="fuzz_tf_logs_") as tmp:
        running: list = []
        while pending or running:
            while pending and len(running) < workers:
                start, stop = pending.pop(0)
                log = Path(tmp) / f"log{start}-{stop}.jsonl"
                running.append({"proc": launch(seed, start, stop, log, case_timeout), "log": log,
                                "stop": stop, "size": 0, "seen": time.monotonic() + STARTUP})
            time.sleep(0.25)
            for item in list(running):
                size = item["log"].stat().st_size if item["log"].exists() else 0
                if size != item["size"]:  # progress (the first line ends the start-up grace)
                    item["size"], item["seen"] = size, time.monotonic()
                stuck = time.monotonic() - item["seen"] > silent_limit
                proc = item["proc"]
                if proc.poll() is None and not stuck:
                    continue
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                stderr = item["log"].with_suffix(".err").read_text(errors="replace")
                done, (started, case) = _read_log(item["log"])
                records.update(done)
                running.remove(item)
                if started is not None:  # the case it was running killed it, or hung
                    what = "hang (worker killed)" if stuck else f"crash (exit {proc.returncode})"
                    records[started] = {"done": started, "case": case,
                                        "findings": [{"target": "?", "error":
                                                      f"{what}: {stderr.strip()[-300:]}"}]}
                    if started + 1 < item["stop"]:
                        pending.insert(0, (started + 1, item["stop"]))
                elif not done or max(done) + 1 < item["stop"]:
                    raise AssertionError(f"a fuzz worker failed outside any case:\n{stderr[-3000:]}")
    return records


def _report(seed: int, records: dict) -> str:
    lines = []
    for index in sorted(records):
        record = records[index]
        for finding in record["findings"]:
            case = record["case"]
            lines.append(f"case {seed}/{index} [{case.get('kind', '?')} on {case.get('base', '?')}:"
                         f" {case.get('notes', '')}] {finding['target']}: {finding['error']}\n"
                         f"    replay: python tests/fuzz/tf_cases.py --seed {seed} --replay {index}")
    return "\n".join(lines)


@pytest.mark.timeout(STARTUP + 2 * CASES)  # the campaign's own bounds come first
def test_hostile_tf_inputs_end_in_typed_errors_within_bounds():
    print(f"\nfuzz_tf: seed {SEED}, {CASES} cases (BERT_HUB_FUZZ_SEED / BERT_HUB_FUZZ_CASES)")
    began = time.monotonic()
    records = run_campaign(SEED, CASES)
    assert sorted(records) == list(range(CASES)), "some cases were never run"
    calls = sum(len(r["case"].get("targets", ())) for r in records.values())
    kinds = Counter(r["case"].get("kind", "?") for r in records.values())
    slowest = sorted(records.values(), key=lambda r: -r.get("seconds", 0))[:5]
    print(f"fuzz_tf: {CASES} cases, {calls} calls in {time.monotonic() - began:.0f} s; "
          f"{dict(sorted(kinds.items()))}; slowest: "
          + ", ".join(f"{r['done']} {r['case'].get('kind')} {r.get('seconds', 0):.2f} s"
                      for r in slowest))
    report = _report(SEED, records)
    assert not report, f"seed {SEED}: hostile inputs that did not end in a BertHubError:\n{report}"
    if CASES >= 200:  # every class of input is exercised
        assert set(kinds) == set(tf_cases.KINDS)


def test_cases_are_reproducible_from_seed_and_index(tmp_path):
    mats = tf_cases.Materials(tmp_path / "materials")
    first = [tf_cases.make_case(7, i, mats, tmp_path / "a") for i in range(12)]
    again = [tf_cases.make_case(7, i, mats, tmp_path / "b") for i in range(12)]
    for a, b in zip(first, again):
        assert {k: v for k, v in a.items() if k != "folder"} == \
            {k: v for k, v in b.items() if k != "folder"}
        files_a = {p.name: p.read_bytes() for p in Path(a["folder"]).iterdir() if p.is_file()}
        files_b = {p.name: p.read_bytes() for p in Path(b["folder"]).iterdir() if p.is_file()}
        assert files_a == files_b, a["index"]
    assert len({c["notes"] for c in first}) > 6  # and different indexes give different cases


SELF_TEST = """
import sys, time
sys.path.insert(0, sys.argv[1])
import tf_cases
from pathlib import Path

def run_target(target, folder, mats, cache):
    if target == "untyped":
        {}["missing"]
    if target == "hang":
        while True:
            time.sleep(0.01)
    if target == "huge":
        bytearray(64 << 30)
    if target == "crash":
        import os
        os._exit(3)
    if target == "typed":
        from bert_hub.errors import CheckpointError
        raise CheckpointError("fine")

class Mats:
    def __init__(self, root):
        pass
    def folder(self, base, dest):
        dest.mkdir()
        return dest

tf_cases.run_target = run_target
tf_cases.Materials = Mats
order = ["typed", "untyped", "hang", "huge", "crash", "typed"]
tf_cases.make_case = lambda seed, index, mats, workdir: {
    "seed": seed, "index": index, "kind": order[index], "base": "-", "notes": "",
    "folder": str(workdir / f"c{index}"), "targets": (order[index],)}
sys.exit(tf_cases.main(sys.argv[2:]))
"""


def test_the_harness_reports_untyped_errors_hangs_huge_allocations_and_crashes(tmp_path):
    """Negative control: a target that misbehaves in each way is reported, and the case after
    a crash still runs."""
    script = tmp_path / "selftest_worker.py"
    script.write_text(SELF_TEST)

    def launch(seed, start, stop, out, case_timeout):
        return _worker(seed, start, stop, out, case_timeout, script, str(HERE))

    records = run_campaign(0, 6, case_timeout=1.0, workers=1, launch=launch)
    errors = {i: [f["error"] for f in r["findings"]] for i, r in records.items()}
    assert errors[0] == [] and errors[5] == []
    assert errors[1][0].startswith("KeyError: 'missing'")
    assert errors[2][0].startswith("hang: still running after 1 s")
    assert errors[3][0].startswith("MemoryError")
    assert errors[4][0].startswith("crash (exit 3)")
