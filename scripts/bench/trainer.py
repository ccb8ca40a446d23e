"""Trainer step time vs a minimal hand-written loop on the same model, data and optimizer.

Both contenders do the same work per step: forward + backward, clipping by the global norm,
fused AdamW, the warmup-linear LambdaLR, zero_grad, with a shuffling DataLoader. Each round
builds its own optimizer and loader and runs ``--steps`` steps; contenders alternate round by
round. Reported: median wall time per step, median process CPU time per step (less sensitive to
other processes on a shared machine), their ratios Trainer / loop (target <= 1.03), and the
median of the per-round paired CPU-time ratios.

Models: a trivial one (embedding + linear: the step is nearly all loop overhead, giving the
Trainer's absolute overhead per step), a tiny BERT (2 layers, hidden 32) and a BERT-base-sized one (12 layers, hidden 768),
both bert_hub's BertForSequenceClassification when bert_hub.modeling exists, else an equivalent
stack of nn.TransformerEncoderLayer. On a CUDA machine, also: peak GPU memory and step time of
BERT-base with and without optimize_on_cpu, and samples/s for bf16 vs fp32 (skipped without).

    python scripts/bench/trainer.py [--rounds 9] [--steps 20] [--base-rounds 7] [--base-steps 2]

Prints a table, writes bench-results/trainer.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
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


def compare(size, rounds, steps, batch, length, device):
    model, kind = build_model(size)
    model.to(device)
    data = Data(batch * steps, length)
    wall = {"trainer": [], "loop": []}
    cpu = {"trainer": [], "loop": []}
    contenders = {"trainer": trainer_run, "loop": hand_loop}
    for fn in contenders.values():  # warm-up: first touches, allocator, kernels
        fn(model, data, batch, min(steps, 2), device)
    for r in range(rounds):
        order = list(contenders) if r % 2 == 0 else list(reversed(contenders))
        for name in order:
            sync(device)
            start, start_cpu = time.perf_counter(), time.process_time()
            contenders[name](model, data, batch, steps, device)
            sync(device)
            wall[name].append((time.perf_counter() - start) / steps)
            cpu[name].append((time.process_time() - start_cpu) / steps)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    paired = statistics.median(t / loop for t, loop in zip(cpu["trainer"], cpu["loop"]))
    return {"size": size, "model": kind, "batch": batch, "seq_len": length, "steps": steps,
            "rounds": rounds, "device": str(device),
            "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "trainer_ms": med["trainer"] * 1e3, "loop_ms": med["loop"] * 1e3,
            "ratio_wall": med["trainer"] / med["loop"],
            "trainer_cpu_ms": med_cpu["trainer"] * 1e3, "loop_cpu_ms": med_cpu["loop"] * 1e3,
            "ratio_cpu": med_cpu["trainer"] / med_cpu["loop"], "ratio_cpu_paired": paired,
            "wall_ms": {k: [t * 1e3 for t in v] for k, v in wall.items()},
            "cpu_ms": {k: [t * 1e3 for t in v] for k, v in cpu.items()}}


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
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = {"machine": platform.processor() or platform.machine(),
               "torch": torch.__version__, "threads": torch.get_num_threads(), "cases": []}
    results["cases"].append(compare("trivial", args.rounds, 200, 8, 8, device))
    results["cases"].append(compare("tiny", args.rounds, args.steps, 8, 32, device))
    base_batch, base_len = (32, 128) if device.type == "cuda" else (4, 64)
    results["cases"].append(compare("base", args.base_rounds, args.base_steps,
                                    base_batch, base_len, device))
    print(f"{'model':7} {'params':>7} {'batch x len':>12} | {'wall: loop':>10} {'Trainer':>9} "
          f"{'ratio':>6} | {'CPU time: loop':>14} {'Trainer':>9} {'ratio':>6} {'paired':>7}")
    for c in results["cases"]:
        print(f"{c['size']:7} {c['params_M']:>6}M {c['batch']:>5} x {c['seq_len']:<4} | "
              f"{c['loop_ms']:>8.1f}ms {c['trainer_ms']:>7.1f}ms {c['ratio_wall']:>6.3f} | "
              f"{c['loop_cpu_ms']:>12.1f}ms {c['trainer_cpu_ms']:>7.1f}ms {c['ratio_cpu']:>6.3f} "
              f"{c['ratio_cpu_paired']:>7.3f}")
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
