"""Download throughput on loopback: bert_hub's fetch vs `curl -o` vs pytorch-pretrained-bert 0.6.2.

One ~400 MB file of random bytes is served by the test server (tests/http_server.py) in its own
process, with Google's headers (ETag, x-goog-hash, x-goog-stored-content-length) and sendfile,
so the server is not the bottleneck. Contenders run interleaved, outputs deleted and dirty pages
synced between runs, one warm-up round first; medians reported, with the ratio to curl from the
same run and the CPU seconds each used (user + system; on a busy machine wall time follows it).

- bert_hub: ``fetch(url, dest, expected_sha256=...)``: SHA-256 and CRC32C computed while
  receiving and checked (verification on), timed in-process.
- curl: ``curl -s -o FILE URL`` (no verification), timed as a process.
- 0.6.2: ``pytorch_pretrained_bert.file_utils.cached_path(url, cache_dir)`` with a fresh cache
  dir each run (HEAD, GET in 1 KiB chunks to a temp file, copy into the cache), in-process.

    python scripts/bench/download.py [--mb 400] [--reps 5]

Prints a table and writes bench-results/download.json.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVER = """
import sys, time
sys.path.insert(0, {tests!r})
from pathlib import Path
from http_server import FileServer
server = FileServer({{"/bert_models/bench.zip": Path({path!r})}}).start()
print(server.port, flush=True)
sys.stdin.read()   # serve until the parent closes our stdin
server.stop()
"""


def make_payload(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(left, 16 << 20))
            digest.update(block)
            f.write(block)
            left -= len(block)
    return digest.hexdigest()


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_ours(url: str, work: Path, sha256: str) -> tuple:
    from bert_hub.download import fetch

    dest = work / "ours.part"
    cpu, start = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    result = fetch(url, dest, expected_sha256=sha256, progress=False)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu
    assert result.sha256 == sha256
    dest.unlink()
    return elapsed, cpu


def run_curl(url: str, work: Path, sha256: str) -> tuple:
    dest = work / "curl.out"
    cpu, start = cpu_seconds(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(["curl", "-s", "-f", "-o", str(dest), url], check=True)
    elapsed, cpu = time.perf_counter() - start, cpu_seconds(resource.RUSAGE_CHILDREN) - cpu
    dest.unlink()
    return elapsed, cpu


def run_062(url: str, work: Path, sha256: str) -> tuple:
    from pytorch_pretrained_bert.file_utils import cached_path

    cache = work / "ppb_cache"
    cpu, start = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # its tqdm bar
        path = cached_path(url, cache_dir=str(cache))
    elapsed, cpu = time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu
    assert os.path.getsize(path) > 0
    shutil.rmtree(cache)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=400, help="payload size in MB (10^6 bytes)")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("curl") is None:
        sys.exit("curl is not installed: it is the reference this benchmark compares against")
    contenders = {"bert_hub": run_ours, "curl": run_curl}
    try:
        import pytorch_pretrained_bert  # noqa: F401
        contenders["ppb-0.6.2"] = run_062
    except ImportError:
        print("pytorch-pretrained-bert 0.6.2 is not installed: skipping it", file=sys.stderr)

    size = args.mb * 10**6
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        work = Path(tmp)
        payload = work / "payload.zip"
        sha256 = make_payload(payload, size)
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER.format(tests=str(REPO / "tests"), path=str(payload))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            port = int(server.stdout.readline())
            url = f"http://127.0.0.1:{port}/bert_models/bench.zip"
            times = {name: [] for name in contenders}
            cpus = {name: [] for name in contenders}
            for rep in range(args.reps + 1):  # round 0 warms up page cache, imports, sockets
                order = list(contenders)
                order = order[rep % len(order):] + order[:rep % len(order)]
                for name in order:
                    os.sync()  # no contender pays for writing back another's file
                    elapsed, cpu = contenders[name](url, work, sha256)
                    if rep:
                        times[name].append(elapsed)
                        cpus[name].append(cpu)
        finally:
            server.stdin.close()
            server.wait(timeout=30)

    curl_mbs = size / 1e6 / statistics.median(times["curl"])
    rows = {}
    print(f"download of {size / 1e6:.0f} MB over loopback, median of {args.reps} (interleaved)")
    print(f"{'contender':<12} {'median s':>9} {'MB/s':>8} {'x curl':>7} {'CPU s':>6}   runs (s)")
    for name, values in times.items():
        med, cpu = statistics.median(values), statistics.median(cpus[name])
        mbs = size / 1e6 / med
        rows[name] = {"median_s": med, "mb_per_s": mbs, "ratio_to_curl": mbs / curl_mbs,
                      "median_cpu_s": cpu, "runs_s": values, "cpu_s": cpus[name]}
        print(f"{name:<12} {med:>9.3f} {mbs:>8.0f} {mbs / curl_mbs:>7.2f} {cpu:>6.2f}   "
              + " ".join(f"{v:.3f}" for v in values))
    out = REPO / "bench-results" / "download.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"size_bytes": size, "reps": args.reps, "results": rows,
                               "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                           "python": platform.python_version()}}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
