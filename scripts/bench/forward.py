"""Forward speed at BERT-base size: bert_hub vs transformers (sdpa) vs pytorch-pretrained-bert 0.6.2.

Same random weights in all three, eval mode, no_grad, an all-ones attention mask. Cases: fp32
8x128, fp32 1x128, bf16 8x128. Contenders run interleaved (rotating order), medians reported,
with % of the matmul peak measured in the same run. Prints a table, writes
bench-results/forward.json.

    python scripts/bench/forward.py [--reps 7]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from bert_hub import fast_path
from bert_hub.modeling import BertConfig, BertModel

BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
            max_position_embeddings=512, type_vocab_size=2)
VOCAB = 30522


def forward_flops(batch: int, seq: int, hidden: int = 768, layers: int = 12,
                  inter: int = 3072) -> float:
    """Multiply-adds x 2 of one forward: QKV + output (4H^2), FFN (2HI), scores and context
    (2SH) per token per layer, plus the pooler."""
    per_token_layer = 2 * (4 * hidden * hidden + 2 * hidden * inter + 2 * seq * hidden)
    return batch * seq * layers * per_token_layer + 2 * batch * hidden * hidden


def matmul_peak(dtype: torch.dtype, n: int = 2048, reps: int = 7) -> float:
    """Best FLOP/s of one n x n x n product, the better of torch.mm and bert_hub's dense layer
    (``fast_path.linear``: oneDNN's linear where this torch has it), best of reps: the ceiling a
    forward pass could reach."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    kernels = [lambda: torch.mm(a, b), lambda: fast_path.linear(a, b)]
    best = float("inf")
    for kernel in kernels:
        kernel()
        for _ in range(reps):
            t0 = time.perf_counter()
            kernel()
            best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def build_contenders(dtype: torch.dtype):
    """name -> callable(ids, types, mask), all holding the same weights."""
    torch.manual_seed(0)
    ours = BertModel(BertConfig(VOCAB, **BASE)).eval()
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    contenders = {}
    ours = ours.to(dtype)
    contenders["bert_hub"] = lambda i, t, m: ours(i, t, m, output_all_encoded_layers=False)[0]

    import transformers
    hf_config = transformers.BertConfig(vocab_size=VOCAB, hidden_act="gelu",
                                        attn_implementation="sdpa", **BASE)
    hf = transformers.BertModel(hf_config).eval()
    hf.load_state_dict(state, strict=False)
    hf = hf.to(dtype)
    contenders["transformers"] = lambda i, t, m: hf(input_ids=i, token_type_ids=t,
                                                    attention_mask=m).last_hidden_state

    from pytorch_pretrained_bert import modeling as old
    ppb = old.BertModel(old.BertConfig(VOCAB, **BASE)).eval()
    ppb.load_state_dict(state)
    ppb = ppb.to(dtype)
    contenders["ppb-0.6.2"] = lambda i, t, m: ppb(i, t, m, output_all_encoded_layers=False)[0]
    return contenders


def time_case(contenders, batch: int, seq: int, reps: int):
    torch.manual_seed(1)
    ids = torch.randint(1, VOCAB, (batch, seq))
    types = torch.zeros_like(ids)
    types[:, seq // 2:] = 1
    mask = torch.ones_like(ids)
    names = list(contenders)
    times = {name: [] for name in names}
    with torch.no_grad():
        for name in names:                       # warm-up (allocator, oneDNN primitives)
            contenders[name](ids, types, mask)
        for rep in range(reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for name in order:
                t0 = time.perf_counter()
                contenders[name](ids, types, mask)
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--out", default="bench-results/forward.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cases = [("fp32", torch.float32, 8, 128), ("fp32", torch.float32, 1, 128),
             ("bf16", torch.bfloat16, 8, 128)]
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    results = []
    built = {}
    for label, dtype, batch, seq in cases:
        if label not in built:
            built[label] = build_contenders(dtype)
        medians = time_case(built[label], batch, seq, args.reps)
        flops = forward_flops(batch, seq)
        for name, seconds in medians.items():
            results.append(dict(case=f"{label} {batch}x{seq}", contender=name, seconds=seconds,
                                pct_of_peak=100 * flops / seconds / peaks[label],
                                vs_transformers=seconds / medians["transformers"]))
    peaks_after = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}

    print(f"matmul peak (GFLOP/s, before / after): fp32 {peaks['fp32'] / 1e9:.0f} / "
          f"{peaks_after['fp32'] / 1e9:.0f}, bf16 {peaks['bf16'] / 1e9:.0f} / "
          f"{peaks_after['bf16'] / 1e9:.0f}; threads {torch.get_num_threads()}")
    print(f"{'case':<14}{'contender':<14}{'median s':>10}{'% peak':>9}{'x transformers':>16}")
    for row in results:
        print(f"{row['case']:<14}{row['contender']:<14}{row['seconds']:>10.4f}"
              f"{row['pct_of_peak']:>8.1f}%{row['vs_transformers']:>16.3f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(
        reps=args.reps, threads=torch.get_num_threads(), torch=torch.__version__,
        machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
        peak_flops=peaks, peak_flops_after=peaks_after, results=results), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
