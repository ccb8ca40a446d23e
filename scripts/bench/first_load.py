"""Cold and warm `from_pretrained` of a BERT-base-sized Google archive from a loopback mirror,
by stage: download (hashing while receiving), extract (+ per-file SHA-256), convert, load.

A BERT-base-sized checkpoint is written once by TensorFlow (scripts/make_tf_checkpoint.py),
zipped in Google's layout and served at Google's URL path by the test suite's HTTP server
(sendfile, no throttle) through BERT_HUB_ENDPOINT, registered with its per-file hashes through
BERT_HUB_REGISTRY. Each round is a fresh process on an empty cache (cold), then a fresh process
on the filled cache (warm); medians over rounds. Also reported: the floor of a warm load
(`import torch` + opening the safetensors file) for comparison.

    python scripts/bench/first_load.py [--reps 3]

Prints a table, writes bench-results/first_load.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts" / "bench"))

TOP = "uncased_L-12_H-768_A-12"
URL_PATH = f"/bert_models/2018_10_18/{TOP}.zip"

# Runs in a fresh process: times each stage of the hub path, then the load itself.
_COLD = r"""
import json, sys, time
t0 = time.perf_counter()
from bert_hub import cache, hub
from bert_hub.registry import load_registry, resolve_url
stages = {}
spec = load_registry().get("bench-base")
root = cache.cache_root()
part = root / ".tmp" / "bench-base.part"
t = time.perf_counter()
from bert_hub import download
(root / ".tmp").mkdir(parents=True, exist_ok=True)
result = download.fetch(resolve_url(spec), part, progress=False)
stages["download+hash"] = time.perf_counter() - t
t = time.perf_counter()
folder = cache.ensure_local_archive_entry("bench-base", part, root=root, check_layout=hub.check_layout)
stages["extract+verify"] = time.perf_counter() - t
t = time.perf_counter()
hub.ensure_converted(folder, lock_name="bench-base")
stages["convert"] = time.perf_counter() - t
t = time.perf_counter()
import torch
from bert_hub import BertModel
stages["import torch"] = time.perf_counter() - t
t = time.perf_counter()
BertModel.from_pretrained("bench-base")
stages["load"] = time.perf_counter() - t
stages["total"] = time.perf_counter() - t0
print(json.dumps(stages))
"""

_WARM = r"""
import json, time
t0 = time.perf_counter()
from bert_hub import BertModel
BertModel.from_pretrained("bench-base")
print(json.dumps({"total": time.perf_counter() - t0}))
"""

_FLOOR = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from safetensors import safe_open
with safe_open(sys.argv[1], framework="pt") as f:
    names = list(f.keys())
print(json.dumps({"total": time.perf_counter() - t0}))
"""


def build_archive(work: Path) -> tuple:
    from convert import make_checkpoint  # scripts/bench/convert.py: the BERT-base TF checkpoint
    folder = work / TOP
    folder.mkdir(parents=True, exist_ok=True)
    make_checkpoint(folder)
    archive = work / f"{TOP}.zip"
    if not archive.exists():
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:   # Google's zips barely compress
            for path in sorted(folder.iterdir()):
                zf.write(path, f"{TOP}/{path.name}")
    hashes = {}
    for path in folder.iterdir():
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        hashes[path.name] = digest.hexdigest()
    return archive, hashes


def run(code: str, env: dict, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                         text=True, timeout=600)
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "first_load.json"))
    args = parser.parse_args()
    work = ROOT / "bench-results" / "first_load"
    work.mkdir(parents=True, exist_ok=True)
    archive, hashes = build_archive(work)
    from http_server import FileServer
    registry = work / "registry.json"
    registry.write_text(json.dumps({"models": [{
        "name": "bench-base", "url": "https://storage.googleapis.com" + URL_PATH,
        "top_folder": TOP, "do_lower_case": True, "max_len": 512, "file_sha256": hashes}]}))
    cold, warm, floor = [], [], []
    with FileServer({URL_PATH: archive}) as server, tempfile.TemporaryDirectory(dir=work) as tmp:
        env = dict(os.environ, BERT_HUB_ENDPOINT=server.endpoint, BERT_HUB_REGISTRY=str(registry),
                   BERT_HUB_DISABLE_PROGRESS="1")
        for rep in range(args.reps):
            cache_dir = Path(tmp) / f"cache{rep}"
            env["BERT_HUB_CACHE"] = str(cache_dir)
            cold.append(run(_COLD, env))
            warm.append(run(_WARM, env))
            weights = cache_dir / "models" / "bench-base" / "model.safetensors"
            floor.append(run(_FLOOR, env, str(weights)))
            shutil.rmtree(cache_dir)
    size = archive.stat().st_size
    med = {k: statistics.median(r[k] for r in cold) for k in cold[0]}
    result = {
        "archive_bytes": size, "reps": args.reps, "cold_stages_s": med,
        "download_MBps": size / 1e6 / med["download+hash"],
        "warm_load_s": statistics.median(r["total"] for r in warm),
        "floor_s": statistics.median(r["total"] for r in floor),
    }
    print(f"BERT-base-sized Google archive, {size / 1e6:.0f} MB, loopback mirror, {args.reps} rounds (medians)")
    for stage, seconds in med.items():
        print(f"  cold {stage:16s} {seconds:7.2f} s")
    print(f"  download throughput   {result['download_MBps']:7.0f} MB/s (hashing while receiving)")
    print(f"  warm load (fresh process)  {result['warm_load_s']:.2f} s;"
          f" floor (import torch + open safetensors) {result['floor_s']:.2f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
