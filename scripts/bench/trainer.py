"""Trainer step time vs a minimal hand-written loop on the same model, data and optimizer, and,
with ``--baseline SRC``, vs the Trainer of another source tree (e.g. the main branch's ``src/``).

Both kinds of contender do the same work per step: forward + backward, clipping by the global
norm, fused AdamW, the warmup-linear LambdaLR, zero_grad, with a shuffling DataLoader. Every
contender runs in a worker process (this script with ``--serve``), one per source tree, so two
trees' bert_hub never meet in one process; each worker times the hand loop and its tree's
Trainer on its own copy of the same model and data. Each round builds its own optimizer and
loader and runs ``--steps`` steps; the contenders' order rotates round by round. Reported: median
wall time per step, median process CPU time per step (less sensitive to other processes on a
shared machine), their ratios Trainer / loop (target <= 1.03), the median of the per-round
paired CPU-time ratios, and with a baseline the same for this Trainer / the baseline's Trainer
(target <= 1.0: no slower) and the baseline's own Trainer / loop. The load average before and
after is recorded: figures from a busy machine are indicative only.

Models: a trivial one (embedding + linear: the step is nearly all loop overhead, giving the
Trainer's absolute overhead per step), a tiny BERT (2 layers, hidden 32) and a BERT-base-sized
one (12 layers, hidden 768), both bert_hub's BertForSequenceClassification when
bert_hub.modeling exists, else an equivalent stack of nn.TransformerEncoderLayer. On a CUDA
machine, also: peak GPU memory and step time of BERT-base with and without optimize_on_cpu, and
samples/s for bf16 vs fp32 (skipped without).

    python scripts/bench/trainer.py [--rounds 9] [--steps 20] [--base-rounds 7] [--base-steps 2]
                                    [--baseline /path/to/other/tree/src] [--threads N]

Prints a table, writes bench-results/trainer.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from bert_hub.optimization import get_scheduler, parameter_groups
from bert_hub.trainer import Trainer

ROOT = Path(__file__).resolve().parents[2]
SIZES = {"tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                  "intermediate_size": 37},
         "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "intermediate_size": 3072}}


class EncoderClassifier(nn.Module):
    """Stand-in with BERT's shapes when bert_hub.modeling is absent."""

    def __init__(self, vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
                 intermediate_size):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_size)
        layer = nn.TransformerEncoderLayer(hidden_size, num_attention_heads, intermediate_size,
                                           dropout=0.1, activation="gelu", batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_hidden_layers)
        self.classifier = nn.Linear(hidden_size, 2)

    def forward(self, input_ids, attention_mask=None, labels=None):
        hidden = self.encoder(self.embed(input_ids))
        logits = self.classifier(hidden[:, 0])
        return logits if labels is None else F.cross_entropy(logits, labels)


class Trivial(nn.Module):
    """Almost no compute: what remains of a step is the loop's own overhead."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(30522, 4)
        self.classifier = nn.Linear(4, 2)

    def forward(self, input_ids, attention_mask=None, labels=None):
        logits = self.classifier(self.embed(input_ids[:, 0]))
        return logits if labels is None else F.cross_entropy(logits, labels)


def build_model(size: str) -> tuple[nn.Module, str]:
    torch.manual_seed(0)
    if size == "trivial":
        return Trivial(), "embedding + linear (overhead only)"
    try:
        from bert_hub.config import BertConfig
        from bert_hub.modeling import BertForSequenceClassification
    except ImportError:
        return EncoderClassifier(30522, **SIZES[size]), "nn.TransformerEncoder stack"
    config = BertConfig(vocab_size=30522, **SIZES[size])
    return BertForSequenceClassification(config, num_labels=2), "bert_hub BertForSequenceClassification"


class Data(torch.utils.data.Dataset):
    def __init__(self, n, length):
        g = torch.Generator().manual_seed(0)
        self.ids = torch.randint(1, 30522, (n, length), generator=g)
        self.labels = torch.randint(0, 2, (n,), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]),
                "labels": self.labels[i]}


def hand_loop(model, data, batch, steps, device):
    """The 2018 scripts' loop, minus everything optional."""
    opt = torch.optim.AdamW(parameter_groups(model, 0.01), lr=5e-5, eps=1e-6, fused=True)
    sched = get_scheduler(opt, "warmup_linear", 0.1, steps)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True)
    model.train()
    done = 0
    while done < steps:
        for b in loader:
            b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
            loss = model(**b)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            done += 1
            if done == steps:
                break
    return float(loss.detach())


def trainer_run(model, data, batch, steps, device, **kwargs):
    trainer = Trainer(model, data, batch_size=batch, max_steps=steps, lr=5e-5, progress=False,
                      log_steps=10**9, device=device, **kwargs)
    return trainer.train(resume=False)["train_loss"]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def serve(device: torch.device) -> None:
    """Worker: one JSON request a line on stdin ({"size", "batch", "length", "steps",
    "contender"}), one JSON answer a line ({"wall", "cpu"} seconds per step, the model)."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed, by Python or a library, goes to stderr
    built = {}
    for line in sys.stdin:
        req = json.loads(line)
        key = (req["size"], req["batch"], req["length"], req["steps"])
        if key not in built:
            built.clear()  # one model at a time: BERT-base and its optimizer state are large
            model, kind = build_model(req["size"])
            built[key] = (model.to(device), kind, Data(req["batch"] * req["steps"], req["length"]))
        model, kind, data = built[key]
        run = trainer_run if req["contender"] == "trainer" else hand_loop
        sync(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        run(model, data, req["batch"], req["steps"], device)
        sync(device)
        answers.write(json.dumps({
            "wall": (time.perf_counter() - start) / req["steps"],
            "cpu": (time.process_time() - start_cpu) / req["steps"], "model": kind,
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1)}) + "\n")
        answers.flush()


class Worker:
    """A ``--serve`` process importing bert_hub from ``src``."""

    def __init__(self, src: Path, device: torch.device, threads: int | None):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(src)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        command = [sys.executable, __file__, "--serve", "--device", str(device)]
        if threads:
            command += ["--threads", str(threads)]
        self.proc = subprocess.Popen(command, env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def run(self, **request) -> dict:
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with {self.proc.wait()}: see stderr")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def compare(size, rounds, steps, batch, length, workers: dict[str, Worker]):
    """Interleaved rounds of every (tree, contender); medians and ratios."""
    contenders = [(tree, c) for tree in workers for c in ("loop", "trainer")]
    wall = {f"{t}:{c}": [] for t, c in contenders}
    cpu = {f"{t}:{c}": [] for t, c in contenders}
    request = {"size": size, "batch": batch, "length": length}
    for tree, contender in contenders:  # warm-up: first touches, allocator, kernels
        info = workers[tree].run(**request, steps=min(steps, 2), contender=contender)
    for r in range(rounds):
        shift = r % len(contenders)
        order = contenders[shift:] + contenders[:shift]
        for tree, contender in (order if r % 2 == 0 else order[::-1]):
            got = workers[tree].run(**request, steps=steps, contender=contender)
            wall[f"{tree}:{contender}"].append(got["wall"])
            cpu[f"{tree}:{contender}"].append(got["cpu"])

    def ratios(a: str, b: str, prefix: str) -> dict:
        return {f"{prefix}_wall": statistics.median(wall[a]) / statistics.median(wall[b]),
                f"{prefix}_cpu": statistics.median(cpu[a]) / statistics.median(cpu[b]),
                f"{prefix}_cpu_paired": statistics.median(x / y for x, y in zip(cpu[a], cpu[b]))}

    result = {"size": size, "model": info["model"], "batch": batch, "seq_len": length,
              "steps": steps, "rounds": rounds, "params_M": info["params_M"],
              "ms": {k: statistics.median(v) * 1e3 for k, v in wall.items()},
              "cpu_ms": {k: statistics.median(v) * 1e3 for k, v in cpu.items()},
              **ratios("this:trainer", "this:loop", "trainer_vs_loop"),
              "wall_ms_rounds": {k: [t * 1e3 for t in v] for k, v in wall.items()},
              "cpu_ms_rounds": {k: [t * 1e3 for t in v] for k, v in cpu.items()}}
    if "baseline" in workers:
        result.update(ratios("this:trainer", "baseline:trainer", "trainer_vs_baseline"))
        result.update(ratios("baseline:trainer", "baseline:loop", "baseline_vs_loop"))
    return result


def print_header(baseline: bool) -> None:
    print("ms per step (wall); ratios Trainer / loop (wall, CPU, paired CPU)"
          + ("; this Trainer / baseline Trainer; baseline Trainer / its loop" if baseline else ""))
    head = (f"{'model':7} {'params':>7} {'batch x len':>12} | {'loop':>8} {'Trainer':>8} "
            f"{'wall':>6} {'CPU':>6} {'paired':>6}")
    if baseline:
        head += f" | {'baseline':>8} {'wall':>6} {'paired':>6} | {'base/loop':>9}"
    print(head, flush=True)


def print_row(c: dict) -> None:
    row = (f"{c['size']:7} {c['params_M']:>6}M {c['batch']:>5} x {c['seq_len']:<4} | "
           f"{c['ms']['this:loop']:>8.2f} {c['ms']['this:trainer']:>8.2f} "
           f"{c['trainer_vs_loop_wall']:>6.3f} {c['trainer_vs_loop_cpu']:>6.3f} "
           f"{c['trainer_vs_loop_cpu_paired']:>6.3f}")
    if "trainer_vs_baseline_wall" in c:
        row += (f" | {c['ms']['baseline:trainer']:>8.2f} {c['trainer_vs_baseline_wall']:>6.3f} "
                f"{c['trainer_vs_baseline_cpu_paired']:>6.3f} | "
                f"{c['baseline_vs_loop_cpu_paired']:>9.3f}")
    print(row, flush=True)


def gpu_section(steps):
    """BERT-base on CUDA: memory and time with / without optimize_on_cpu; bf16 vs fp32."""
    device = torch.device("cuda")
    out = {}
    data = Data(32 * steps, 128)
    for label, kwargs in (("fp32", {}), ("fp32 optimize_on_cpu", {"optimize_on_cpu": True}),
                          ("bf16", {"precision": "bf16"})):
        model, _ = build_model("base")
        model.to(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        trainer_run(model, data, 32, 2, device, **kwargs)  # warm-up
        sync(device)
        start = time.perf_counter()
        trainer_run(model, data, 32, steps, device, **kwargs)
        sync(device)
        per_step = (time.perf_counter() - start) / steps
        out[label] = {"step_ms": per_step * 1e3, "samples_per_s": 32 / per_step,
                      "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20}
        del model
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--base-rounds", type=int, default=7)
    parser.add_argument("--base-steps", type=int, default=2)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="the src/ folder of another tree whose Trainer runs alongside")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads in each worker (default: torch's); 1 keeps a busy "
                        "machine's figures steadier")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--device", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.serve:
        return serve(device)
    results = {"machine": platform.processor() or platform.machine(),
               "torch": torch.__version__, "threads": torch.get_num_threads(),
               "baseline": str(args.baseline) if args.baseline else None,
               "load_average_before": os.getloadavg(), "cases": []}
    workers = {"this": Worker(ROOT / "src", device, args.threads)}
    if args.baseline is not None:
        workers["baseline"] = Worker(args.baseline.resolve(), device, args.threads)
    base_batch, base_len = (32, 128) if device.type == "cuda" else (4, 64)
    cases = [("trivial", args.rounds, 200, 8, 8), ("tiny", args.rounds, args.steps, 8, 32),
             ("base", args.base_rounds, args.base_steps, base_batch, base_len)]
    print_header("baseline" in workers)
    try:
        for case in cases:
            results["cases"].append(compare(*case, workers))
            print_row(results["cases"][-1])
    finally:
        for worker in workers.values():
            worker.close()
    results["load_average_after"] = os.getloadavg()
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} "
          "{:.2f}".format(*results["load_average_before"], *results["load_average_after"]))
    if torch.cuda.is_available():
        results["gpu"] = gpu_section(10)
        for label, r in results["gpu"].items():
            print(f"GPU BERT-base {label:22} {r['step_ms']:8.1f} ms/step "
                  f"{r['samples_per_s']:8.1f} samples/s peak {r['peak_gpu_mib']:8.0f} MiB")
    else:
        print("GPU section skipped: no CUDA device")
        results["gpu"] = None
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "trainer.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {out / 'trainer.json'}")


if __name__ == "__main__":
    main()
