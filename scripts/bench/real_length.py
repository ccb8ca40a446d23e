"""Real-length batches at BERT-base size: bert_hub (padding removed) vs bert_hub ``unpad=False``
(every position, as before) vs transformers (sdpa) vs the token floor.

Batches: 32 sentences padded to 128, lengths drawn from a skewed (log-normal) distribution with a
mean of about 40 and two full-length sentences per batch (about two thirds padding); a
SQuAD-like case, 8 features padded to 384 of which most are full; and an unpadded batch
(32 x 128, an all-ones mask). The token floor is one dense forward of bert_hub over a batch of
k rows holding the same number of real tokens, no padding, no mask: what the real tokens cost.

Cases: inference (eval, no_grad) in fp32 and bf16 (or the one --dtype), and a training step
(forward + backward of BertForSequenceClassification, dropout on). The same random weights in
every contender; contenders run interleaved in rotating order over several batches, medians.
On CUDA, bert_hub also runs with each attention choice of ``unpadding.ATTENTION``.

    python scripts/bench/real_length.py [--device cpu|cuda] [--dtype fp32|bf16]
                                        [--rounds 5] [--out FILE] [--smoke]

Prints a table and the targets, writes JSON (--out, default bench-results/real_length.json).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from bert_hub import unpadding
from bert_hub.modeling import BertConfig, BertForSequenceClassification

ROOT = Path(__file__).resolve().parents[2]
VOCAB = 30522
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TOY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Targets: (contender, peer, largest ratio of median times); ratios below 1 mean faster.
INFERENCE_TARGETS = [("bert_hub", "transformers", 1 / 2.5), ("bert_hub", "token floor", 1.3)]
TRAINING_TARGETS = [("bert_hub", "transformers", 1 / 2.0)]
NO_SLOWER = [("bert_hub", "bert_hub unpad=False", 1.02)]


# ---------------------------------------------------------------------------- batches
def real_lengths(gen: torch.Generator, batch: int, max_len: int, full: int) -> torch.Tensor:
    """Sentence lengths (batch,): log-normal (median 30), clipped to [5, max_len], ``full`` of
    them max_len, shuffled."""
    normal = torch.randn(batch, generator=gen)
    lengths = torch.exp(math.log(30.0) + 0.65 * normal).round().clamp(5, max_len).long()
    lengths[:full] = max_len
    return lengths[torch.randperm(batch, generator=gen)]


def squad_lengths(gen: torch.Generator, batch: int, max_len: int) -> torch.Tensor:
    """Most features full (a document cut into windows); the last window of a document shorter."""
    lengths = torch.full((batch,), max_len)
    short = torch.rand(batch, generator=gen) < 0.25
    lengths[short] = torch.randint(max_len // 3, max_len, (int(short.sum()),), generator=gen)
    return lengths


def make_batch(lengths: torch.Tensor, max_len: int, gen: torch.Generator):
    """(input_ids, token_type_ids, attention_mask), right-padded: [CLS] ... [SEP] pad."""
    batch = len(lengths)
    ids = torch.randint(1000, VOCAB, (batch, max_len), generator=gen)
    positions = torch.arange(max_len)[None]
    mask = (positions < lengths[:, None]).long()
    ids[:, 0] = 101
    ids[torch.arange(batch), lengths - 1] = 102
    ids = ids * mask
    types = ((positions >= (lengths[:, None] // 2)) & mask.bool()).long()
    return ids, types, mask


def floor_batch(tokens: int, max_len: int, gen: torch.Generator):
    """k rows of equal length, no padding, about ``tokens`` tokens in all."""
    rows = math.ceil(tokens / max_len)
    length = math.ceil(tokens / rows)
    ids = torch.randint(1000, VOCAB, (rows, length), generator=gen)
    return ids, torch.zeros_like(ids), None


def batches_for(case: str, count: int, size: dict, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    small = size is TOY
    out = []
    for _ in range(count):
        if case == "squad":
            max_len = 96 if small else 384
            lengths = squad_lengths(gen, 8, max_len)
        elif case == "unpadded":
            max_len = 32 if small else 128
            lengths = torch.full((32,), max_len)
        else:
            max_len = 32 if small else 128
            lengths = real_lengths(gen, 32, max_len, full=2)
        padded = make_batch(lengths, max_len, gen)
        out.append({"padded": padded, "floor": floor_batch(int(lengths.sum()), max_len, gen),
                    "tokens": int(lengths.sum()), "positions": lengths.numel() * max_len})
    return out


# ---------------------------------------------------------------------------- contenders
def build(size: dict, dtype: torch.dtype, device: torch.device, train: bool):
    """name -> callable(ids, types, mask) running one forward (or forward + backward), all on
    the same random weights."""
    torch.manual_seed(0)
    ours = BertForSequenceClassification(BertConfig(VOCAB, **size), num_labels=2)
    state = {k: v.clone() for k, v in ours.state_dict().items()}
    ours = ours.to(device, dtype).train(train)
    dense = BertForSequenceClassification(BertConfig(VOCAB, **size), num_labels=2)
    dense.load_state_dict(state)
    dense = dense.to(device, dtype).train(train)
    dense.unpad = False

    import transformers
    hf_config = transformers.BertConfig(vocab_size=VOCAB, hidden_act="gelu", num_labels=2,
                                        attn_implementation="sdpa", **size)
    hf = transformers.BertForSequenceClassification(hf_config)
    missing = hf.load_state_dict(state, strict=False)
    assert not [k for k in missing.missing_keys if "position_ids" not in k], missing
    hf = hf.to(device, dtype).train(train)

    def ours_call(model):
        if not train:
            return lambda i, t, m: model.bert(i, t, m, output_all_encoded_layers=False)[0]
        return lambda i, t, m: step(model, model(i, t, m, labels=_labels(i)))

    def hf_call():
        if not train:
            return lambda i, t, m: hf.bert(input_ids=i, token_type_ids=t,
                                           attention_mask=m).last_hidden_state
        return lambda i, t, m: step(hf, hf(input_ids=i, token_type_ids=t, attention_mask=m,
                                          labels=_labels(i)).loss)

    return {"bert_hub": ours_call(ours), "bert_hub unpad=False": ours_call(dense),
            "transformers": hf_call(), "token floor": ours_call(ours)}


def _labels(ids: torch.Tensor) -> torch.Tensor:
    return (ids[:, 1] % 2).long()


def step(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return loss


def time_case(contenders: dict, batches: list, rounds: int, device: torch.device,
              train: bool) -> dict:
    names = list(contenders)
    times = {name: [] for name in names}

    def run(name, item):
        inputs = item["floor"] if name == "token floor" else item["padded"]
        inputs = tuple(None if t is None else t.to(device) for t in inputs)
        sync(device)
        start = time.perf_counter()
        contenders[name](*inputs)
        sync(device)
        return time.perf_counter() - start

    with torch.set_grad_enabled(train):
        for name in names:                            # warm-up: allocator, kernels, primitives
            run(name, batches[0])
        for r in range(rounds):
            item = batches[r % len(batches)]
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                times[name].append(run(name, item))
    return {name: statistics.median(values) for name, values in times.items()}


def with_attention(choice: str, call):
    """``call`` with ``unpadding.ATTENTION`` set to ``choice`` while it runs."""
    def run(*inputs):
        unpadding.ATTENTION = choice
        try:
            return call(*inputs)
        finally:
            unpadding.ATTENTION = "auto"
    return run


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------- report
def verdicts(medians: dict, targets) -> list:
    out = []
    for name, peer, limit in targets:
        if name in medians and peer in medians:
            ratio = medians[name] / medians[peer]
            out.append(dict(contender=name, peer=peer, ratio=ratio, limit=limit,
                            met=ratio <= limit))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default=None,
                        help="inference dtype (default: fp32 and bf16); training runs in fp32 "
                             "on the CPU and in this dtype (default bf16) on CUDA")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=3, help="distinct batches per case")
    parser.add_argument("--cases", default="inference,training,squad,unpadded,attention")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "real_length.json"))
    parser.add_argument("--smoke", action="store_true",
                        help="toy model, 2 rounds: a check of this script, not a measurement")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    size = TOY if args.smoke else BASE
    rounds = 2 if args.smoke else args.rounds
    cases = set(args.cases.split(","))
    inference_dtypes = [args.dtype] if args.dtype else ["fp32", "bf16"]
    train_dtype = args.dtype or ("bf16" if device.type == "cuda" else "fp32")
    load_before = os.getloadavg()
    results = []
    out = Path(args.out)

    def write() -> None:
        """The JSON so far: a run stopped midway keeps the cases it measured."""
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(dict(
            device=str(device), torch=torch.__version__, threads=torch.get_num_threads(),
            machine=platform.processor() or platform.machine(), cpus=os.cpu_count(),
            gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            rounds=rounds, smoke=args.smoke, load_average_before=load_before,
            load_average_after=os.getloadavg(), results=results), indent=2))

    def record(case, dtype, batches, medians, targets, **extra):
        tokens = statistics.mean(b["tokens"] for b in batches)
        positions = statistics.mean(b["positions"] for b in batches)
        row = dict(case=case, dtype=dtype, real_tokens=tokens, positions=positions,
                   padding=1 - tokens / positions, seconds=medians,
                   targets=verdicts(medians, targets), **extra)
        results.append(row)
        print(f"\n{case} ({dtype}): {tokens:.0f} real tokens of {positions:.0f} positions "
              f"({100 * row['padding']:.0f}% padding)")
        fastest_peer = medians.get("transformers")
        for name, seconds in medians.items():
            vs = f"{seconds / fastest_peer:8.3f}x transformers" if fastest_peer else ""
            print(f"  {name:<26}{seconds:9.4f} s {vs}")
        for t in row["targets"]:
            print(f"  target {t['contender']} / {t['peer']} = {t['ratio']:.3f} (<= "
                  f"{t['limit']:.3f}): {'met' if t['met'] else 'MISSED'}")
        write()

    for dtype in inference_dtypes:
        if "inference" in cases:
            batches = batches_for("real", args.batches, size)
            medians = time_case(build(size, DTYPES[dtype], device, False), batches, rounds,
                                device, False)
            record("inference", dtype, batches, medians, INFERENCE_TARGETS)
    if "training" in cases:
        batches = batches_for("real", args.batches, size)
        medians = time_case(build(size, DTYPES[train_dtype], device, True), batches, rounds,
                            device, True)
        record("training step", train_dtype, batches, medians, TRAINING_TARGETS)
    for case in ("squad", "unpadded"):
        if case in cases:
            dtype = inference_dtypes[0]
            batches = batches_for(case, args.batches, size)
            medians = time_case(build(size, DTYPES[dtype], device, False), batches, rounds,
                                device, False)
            record(f"{case} inference", dtype, batches, medians, NO_SLOWER)
    if "attention" in cases:
        dtype = inference_dtypes[-1]
        batches = batches_for("real", args.batches, size)
        ours = build(size, DTYPES[dtype], device, False)["bert_hub"]
        choices = ["groups", "padded", "nested"]
        medians = time_case({f"bert_hub attention={c}": with_attention(c, ours) for c in choices},
                            batches, rounds, device, False)
        record("attention choices (inference)", dtype, batches, medians, [])

    write()
    print(f"\nload average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; "
          f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
