"""GPU benchmarks (the bench stage of `make gpu-check`): ratios against transformers on the same
GPU in the same run, interleaved rounds, medians.

1. BERT-base fine-tuning step, batch 32 x 128, bf16 autocast, fused AdamW, clipping, warmup:
   samples/s of the bert_hub Trainer, of bert_hub's model in a hand-written loop doing the same
   work, and of transformers' BertForSequenceClassification (sdpa) in that loop, on the same
   weights. Target: the Trainer at least as fast as transformers.
2. BERT-large (24 layers, hidden 1024, random weights), batch 32 x 128, bf16 autocast: peak GPU
   memory and time per optimizer step with the optimizer on the GPU (fp32 weights) and with
   optimize_on_cpu (fp32 weights, and bf16 weights whose fp32 masters live on the host), at
   gradient accumulation 1 and 4; beside them the bytes of fp32 master weights + Adam state.
   Targets: offload cuts the peak by at least those bytes, at most 1.5x the step time.
3. Real-length batches: scripts/bench/real_length.py --device cuda --dtype bf16, when that script
   exists ("not available" otherwise). Target: at least 2x transformers sdpa.

    python scripts/bench/gpu.py [--out DIR] [--rounds 5] [--steps 10] [--budget 300] [--smoke]

Writes DIR/bench.json and DIR/bench.md (DIR: --out, else $OUT, else gpu-results/) after every
section, so a run stopped midway keeps what it measured. Without CUDA: "no CUDA device:
skipped". --smoke runs every section at toy size on any device (a check of this script only).
"""
from __future__ import annotations

import argparse
import copy
import gc
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from trainer import Data as Batches  # scripts/bench/trainer.py: random ids, full masks, labels

from bert_hub.modeling import BertConfig, BertForSequenceClassification
from bert_hub.optimization import get_scheduler, parameter_groups
from bert_hub.trainer import Trainer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VOCAB = 30522
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
LARGE = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
             intermediate_size=4096)
TOY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
NO_CUDA = "no CUDA device: skipped"
ADAM_MASTER_BYTES = 12  # per parameter: fp32 master weight + Adam's two fp32 moments


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bert(size: dict, seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    return BertForSequenceClassification(BertConfig(VOCAB, **size), num_labels=2)


# ---------------------------------------------------------------------------- 1. fine-tuning step
def hand_loop(model, data, batch: int, steps: int, device, loss_of) -> None:
    """The Trainer's work per step, written out: bf16 autocast, backward, clipping, fused AdamW,
    warmup-linear schedule, zero_grad, from a shuffling pinned DataLoader."""
    opt = torch.optim.AdamW(parameter_groups(model, 0.01), lr=5e-5, eps=1e-6, fused=True)
    sched = get_scheduler(opt, "warmup_linear", 0.1, steps)
    loader = torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True,
                                         pin_memory=device.type == "cuda")
    model.train()
    for b in itertools.islice(itertools.cycle(loader), steps):
        b = {k: v.to(device, non_blocking=True) for k, v in b.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = loss_of(model, b)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)


def trainer_run(model, data, batch: int, steps: int, device, **kwargs) -> Trainer:
    trainer = Trainer(model, data, batch_size=batch, max_steps=steps, lr=5e-5, precision="bf16",
                      progress=False, log_steps=10**9, device=device, **kwargs)
    trainer.train(resume=False)
    return trainer


def finetune_step(size: dict, batch: int, length: int, rounds: int, steps: int, device) -> dict:
    import transformers

    ours = bert(size).to(device)
    hf_config = transformers.BertConfig(vocab_size=VOCAB, hidden_act="gelu", num_labels=2,
                                        attn_implementation="sdpa", **size)
    hf = transformers.BertForSequenceClassification(hf_config)
    keys = hf.load_state_dict({k: v.cpu() for k, v in ours.state_dict().items()}, strict=False)
    hf.to(device)
    data = Batches(batch * steps, length)
    contenders = {
        "bert_hub Trainer": lambda n: trainer_run(ours, data, batch, n, device),
        "bert_hub loop": lambda n: hand_loop(ours, data, batch, n, device,
                                             lambda m, b: m(**b)),
        "transformers loop": lambda n: hand_loop(hf, data, batch, n, device,
                                                 lambda m, b: m(**b).loss),
    }
    names = list(contenders)
    for run in contenders.values():  # warm-up: kernels, cuBLAS heuristics, allocator
        run(2)
    per_step = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # rotating order
            sync(device)
            start = time.perf_counter()
            contenders[name](steps)
            sync(device)
            per_step[name].append((time.perf_counter() - start) / steps)
    samples = {name: batch / statistics.median(times) for name, times in per_step.items()}
    peer = samples["transformers loop"]
    return {"batch": batch, "seq_len": length, "rounds": rounds, "steps_per_round": steps,
            "precision": "bf16 autocast, fp32 weights",
            "weights_not_copied_to_transformers": sorted(keys.missing_keys),
            "samples_per_s": samples,
            "step_ms_runs": {k: [round(t * 1e3, 3) for t in v] for k, v in per_step.items()},
            "trainer_vs_transformers": samples["bert_hub Trainer"] / peer,
            "model_vs_transformers": samples["bert_hub loop"] / peer,
            "target": "Trainer samples/s >= transformers",
            "met": samples["bert_hub Trainer"] >= peer}


# ---------------------------------------------------------------------------- 2. offload
def offload_case(cpu_model, dtype, offload: bool, accum: int, batch: int, length: int,
                 warm: int, timed: int, device) -> dict:
    """Peak GPU memory over a whole run (weights included) and the median time per optimizer
    step after ``warm`` steps, from the host clock at the first forward of each window (the GPU
    synchronised there, so each interval is one whole step)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    model = copy.deepcopy(cpu_model).to(device, dtype)
    weights = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    starts: list[float] = []

    def stamp(module, args):
        sync(device)
        starts.append(time.perf_counter())

    model.register_forward_pre_hook(stamp)
    steps = warm + timed + 1  # the last window closes the last timed interval
    trainer_run(model, Batches(batch * accum * steps, length), batch, steps, device,
                gradient_accumulation_steps=accum, optimize_on_cpu=offload)
    sync(device)
    windows = starts[::accum]
    step_s = [b - a for a, b in zip(windows, windows[1:])][warm:]
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    del model
    return {"weights_dtype": str(dtype).replace("torch.", ""), "optimize_on_cpu": offload,
            "accumulation": accum, "step_ms": statistics.median(step_s) * 1e3,
            "step_ms_runs": [round(s * 1e3, 2) for s in step_s],
            "weights_gib": None if weights is None else weights / 2**30,
            "peak_gib": None if peak is None else peak / 2**30}


def large_offload(size: dict, batch: int, length: int, warm: int, timed: int, device) -> dict:
    cpu_model = bert(size)
    params = sum(p.numel() for p in cpu_model.parameters())
    theory = params * ADAM_MASTER_BYTES
    cases = []
    for accum in (1, 4):
        for dtype, offload in ((torch.float32, False), (torch.float32, True),
                               (torch.bfloat16, True)):
            cases.append(offload_case(cpu_model, dtype, offload, accum, batch, length, warm,
                                      timed, device))
    verdicts = []
    for accum in (1, 4):
        base = next(c for c in cases if c["accumulation"] == accum and not c["optimize_on_cpu"])
        for c in cases:
            if c["accumulation"] != accum or not c["optimize_on_cpu"]:
                continue
            cut = None if base["peak_gib"] is None else (base["peak_gib"] - c["peak_gib"]) * 2**30
            ratio = c["step_ms"] / base["step_ms"]
            verdicts.append({"accumulation": accum, "weights_dtype": c["weights_dtype"],
                             "peak_cut_gib": None if cut is None else cut / 2**30,
                             "cut_met": None if cut is None else cut >= theory,
                             "step_ratio": ratio, "step_met": ratio <= 1.5})
    return {"params_M": params / 1e6, "batch": batch, "seq_len": length,
            "precision": "bf16 autocast", "fp32_master_plus_adam_gib": theory / 2**30,
            "targets": "peak cut >= fp32 master + Adam bytes; step time <= 1.5x on-device",
            "cases": cases, "verdicts": verdicts}


# ---------------------------------------------------------------------------- 3. real length
def real_length(timeout: float, out_dir: Path) -> dict:
    script = HERE / "real_length.py"
    if not script.exists():
        return {"status": "not available", "reason": "scripts/bench/real_length.py is not in "
                "this tree"}
    if timeout < 30:
        return {"status": "skipped", "reason": f"only {timeout:.0f} s of the budget left"}
    cmd = [sys.executable, str(script), "--device", "cuda", "--dtype", "bf16"]
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                               text=True, timeout=120, check=False).stdout
    if "--out" in help_text:
        cmd += ["--out", str(out_dir / "real_length.json")]
    started = time.time()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        status, output = ("ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})",
                          proc.stdout + proc.stderr)
    except subprocess.TimeoutExpired as stopped:
        status = f"timed out after {timeout:.0f} s"
        output = "".join(s.decode() if isinstance(s, bytes) else (s or "")
                         for s in (stopped.stdout, stopped.stderr))
    result = {"status": status, "command": " ".join(cmd[1:]), "output_tail": output[-6000:]}
    for candidate in (out_dir / "real_length.json", ROOT / "bench-results" / "real_length.json"):
        if candidate.exists() and candidate.stat().st_mtime >= started:
            result["json"] = str(candidate)
            try:
                result["results"] = json.loads(candidate.read_text())
            except ValueError as error:
                result["results_error"] = str(error)
            break
    return result


# ---------------------------------------------------------------------------- report
def markdown(results: dict) -> str:
    smoke = " (--smoke: toy sizes, not measurements)" if results.get("smoke") else ""
    lines = [f"# GPU benchmarks: {results.get('device', '?')}{smoke}", ""]
    if results.get("status") == NO_CUDA:
        return "\n".join(lines + [f"**{NO_CUDA}** (real-length benchmark: "
                                  f"{results['real_length_script']})", ""])
    lines.append(f"torch {results['torch']}, transformers {results.get('transformers', '?')}, "
                 f"CUDA {results.get('cuda_version')}; medians of interleaved rounds.")
    ft = results.get("finetune")
    if ft:
        lines += ["", f"## BERT-base fine-tuning step, {ft['batch']} x {ft['seq_len']}, "
                  f"{ft['precision']}", "", "| contender | samples/s | x transformers |",
                  "|---|---:|---:|"]
        peer = ft["samples_per_s"]["transformers loop"]
        for name, value in ft["samples_per_s"].items():
            lines.append(f"| {name} | {value:.1f} | {value / peer:.3f} |")
        lines += ["", f"Target (Trainer >= transformers): **{'met' if ft['met'] else 'missed'}** "
                  f"({ft['trainer_vs_transformers']:.3f}x)."]
    large = results.get("large")
    if large:
        lines += ["", f"## BERT-large ({large['params_M']:.0f}M parameters) optimizer offload, "
                  f"{large['batch']} x {large['seq_len']}, {large['precision']}", "",
                  f"fp32 master weights + Adam state: {large['fp32_master_plus_adam_gib']:.2f} GiB",
                  "", "| accumulation | weights on GPU | optimizer | peak GiB | ms / step |",
                  "|---:|---|---|---:|---:|"]
        for c in large["cases"]:
            peak = "-" if c["peak_gib"] is None else f"{c['peak_gib']:.2f}"
            where = "host (optimize_on_cpu)" if c["optimize_on_cpu"] else "GPU"
            lines.append(f"| {c['accumulation']} | {c['weights_dtype']} | {where} | {peak} | "
                         f"{c['step_ms']:.1f} |")
        lines += ["", "| accumulation | offloaded weights | peak cut GiB | cut target | "
                  "step ratio | step target |", "|---:|---|---:|---|---:|---|"]
        for v in large["verdicts"]:
            cut = "-" if v["peak_cut_gib"] is None else f"{v['peak_cut_gib']:.2f}"
            lines.append(f"| {v['accumulation']} | {v['weights_dtype']} | {cut} | "
                         f"{_verdict(v['cut_met'])} | {v['step_ratio']:.2f}x | "
                         f"{_verdict(v['step_met'])} |")
    rl = results.get("real_length")
    if rl:
        lines += ["", "## Real-length batches (scripts/bench/real_length.py --device cuda "
                  "--dtype bf16)", "", f"Status: **{rl['status']}**"
                  + (f" ({rl['reason']})" if "reason" in rl else "")]
        if rl.get("output_tail"):
            lines += ["", "```", rl["output_tail"][-3000:].rstrip(), "```"]
    for name, error in results.get("errors", {}).items():
        lines += ["", f"**{name} failed**:", "", "```", error[-2000:].rstrip(), "```"]
    return "\n".join(lines) + "\n"


def _verdict(met) -> str:
    return "-" if met is None else ("met" if met else "**missed**")


def write(results: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(results, indent=1))
    (out / "bench.md").write_text(markdown(results))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or "gpu-results")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per round")
    parser.add_argument("--budget", type=float, default=300.0,
                        help="seconds: later sections are skipped once it is spent")
    parser.add_argument("--smoke", action="store_true",
                        help="toy sizes on any device: checks this script, measures nothing")
    args = parser.parse_args()
    deadline = time.monotonic() + args.budget
    out = Path(args.out)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    results = {"torch": torch.__version__, "python": platform.python_version(),
               "device": torch.cuda.get_device_name(device) if cuda else "CPU",
               "cuda_version": torch.version.cuda, "smoke": args.smoke,
               "real_length_script": ("present" if (HERE / "real_length.py").exists()
                                      else "not available"), "errors": {}}
    if not cuda and not args.smoke:
        results["status"] = NO_CUDA
        write(results, out)
        print(f"GPU benchmarks: {NO_CUDA} (real-length benchmark: "
              f"{results['real_length_script']}); wrote {out / 'bench.md'}")
        return 0
    import transformers
    results["transformers"] = transformers.__version__
    base, large, (batch, length) = (TOY, TOY, (4, 16)) if args.smoke else (BASE, LARGE, (32, 128))
    rounds, steps = (2, 2) if args.smoke else (args.rounds, args.steps)
    sections = [
        ("finetune", lambda: finetune_step(base, batch, length, rounds, steps, device)),
        ("large", lambda: large_offload(large, batch, length, 2, 1 if args.smoke else 4, device)),
        ("real_length", lambda: real_length(deadline - time.monotonic() - 15, out)
         if cuda else {"status": "skipped", "reason": "needs CUDA"}),
    ]
    failed = False
    for name, run in sections:
        if time.monotonic() > deadline:
            results[name] = None
            results["errors"][name] = f"skipped: the {args.budget:.0f} s budget was spent"
            failed = True
            continue
        start = time.monotonic()
        print(f"--- {name}", flush=True)
        try:
            results[name] = run()
        except Exception as error:  # the other sections still run and are reported
            import traceback
            results["errors"][name] = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
            failed = True
        results.setdefault("seconds", {})[name] = round(time.monotonic() - start, 1)
        write(results, out)
    print(markdown(results))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
