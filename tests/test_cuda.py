"""Every CUDA code path on a real GPU, with the CPU in fp32 as the oracle: the heads in fp32, bf16
and fp16 (cast and autocast), SDPA's fused kernels and padding masks, loading onto the GPU, the
Trainer's fp16 loss scaling, bf16 autocast and accumulation, the CPU-offloaded optimizer (same
weights, GPU memory, copies overlapping compute), and torchrun: one process with NCCL, two
processes sharing the one GPU through gloo (tests/_cuda_worker.py is what torchrun runs).

Skipped without CUDA. ``make gpu-check`` runs this module (docs/gpu.md); measurements that are
reported rather than asserted are printed and appended, one JSON object per line, to the file
named by GPU_CHECK_FACTS when it is set. DataParallel needs two GPUs: its test lives in
tests/test_trainer.py and skips on one.
"""
from __future__ import annotations

import gc
import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch
from _cuda_worker import GLOO_RUNS
from _train_worker import BertData, Classifier, DictData, accuracy, sgd, tiny_bert_classifier
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

from bert_hub import modeling, unpadding
from bert_hub.modeling import BertConfig
from bert_hub.trainer import Trainer

HERE = os.path.dirname(os.path.abspath(__file__))
CUDA = torch.cuda.is_available()
pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not CUDA, reason="no CUDA device: these tests need a GPU "
                                 "(run `make gpu-check` on a CUDA machine, see docs/gpu.md)")]

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Largest |GPU - CPU fp32| over max(1, |CPU fp32|): the CPU's own bf16 / fp16 casts of these
# models stay below 8e-3 / 1.2e-3; fp32 on the GPU differs by rounding only (TF32 is off).
TOLERANCE = {"fp32": 2e-4, "bf16": 3e-2, "fp16": 5e-3}
VOCAB = 99
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
            max_position_embeddings=64, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0)
HEADS = {  # name -> constructor extra args
    "BertModel": (), "BertForPreTraining": (), "BertForMaskedLM": (),
    "BertForNextSentencePrediction": (), "BertForSequenceClassification": (3,),
    "BertForMultipleChoice": (4,), "BertForTokenClassification": (3,),
    "BertForQuestionAnswering": (),
}
LABELS = {  # name -> labels (batch of 3, length S)
    "BertForPreTraining": lambda s: dict(masked_lm_labels=_ids((3, s), 5)[0] % VOCAB,
                                         next_sentence_label=torch.tensor([0, 1, 1])),
    "BertForMaskedLM": lambda s: dict(masked_lm_labels=_ids((3, s), 5)[0] % VOCAB),
    "BertForNextSentencePrediction": lambda s: dict(next_sentence_label=torch.tensor([1, 0, 1])),
    "BertForSequenceClassification": lambda s: dict(labels=torch.tensor([0, 2, 1])),
    "BertForMultipleChoice": lambda s: dict(labels=torch.tensor([3, 0, 1])),
    "BertForTokenClassification": lambda s: dict(labels=_ids((3, s), 6)[0] % 3),
    "BertForQuestionAnswering": lambda s: dict(start_positions=torch.tensor([1, 4, 0]),
                                               end_positions=torch.tensor([3, 6, 2])),
}


def report(check: str, **values) -> None:
    """Print a measurement and append it to $GPU_CHECK_FACTS (read by the gpu-check summary)."""
    record = {"check": check, **values}
    print(json.dumps(record))
    path = os.environ.get("GPU_CHECK_FACTS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------------------- models and inputs
def _ids(shape, seed=1):
    """(input_ids, token_type_ids, attention_mask) of ``shape`` (B, S) or (B, C, S); row 1 has
    real tokens up to 7, row 2 up to 4: padding in every batch."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, shape, generator=gen)
    types = torch.randint(0, 2, shape, generator=gen)
    mask = torch.ones(shape, dtype=torch.long)
    mask[1, ..., 7:] = 0
    mask[2, ..., 4:] = 0
    return ids, types, mask


def _head(name: str, seed: int = 0) -> nn.Module:
    """A tiny head with random values in every parameter (LayerNorm and biases too)."""
    torch.manual_seed(seed)
    model = getattr(modeling, name)(BertConfig(VOCAB, **TINY), *HEADS[name])
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model.eval()


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat(o)]
    return [out]


def _relative_error(out, ref) -> float:
    """max |out - ref| / max(1, max |ref|) over every tensor of the outputs."""
    out, ref = _flat(out), _flat(ref)
    assert [o.shape for o in out] == [r.shape for r in ref]
    return max(float((o.detach().float().cpu() - r).abs().max()) / max(1.0, float(r.abs().max()))
               for o, r in zip(out, ref))


def _to_cuda(tensors):
    return tuple(t.cuda() for t in tensors)


# ---------------------------------------------------------------------------- heads
@pytest.mark.parametrize("mode", ["fp32", "bf16", "fp16", "autocast-bf16", "autocast-fp16"])
@pytest.mark.parametrize("name", list(HEADS))
def test_head_on_cuda_equals_cpu_fp32(name, mode):
    """Outputs and loss of each head on the GPU (weights cast to the dtype, or fp32 weights under
    autocast) against the same head on the CPU in fp32, on a batch with padding."""
    dtype_name = mode.split("-")[-1]
    model = _head(name)
    shape = (3, 4, 11) if name == "BertForMultipleChoice" else (3, 11)
    inputs = _ids(shape)
    labels = LABELS[name](11) if name in LABELS else None
    with torch.no_grad():
        ref = model(*inputs)
        ref_loss = model(*inputs, **labels) if labels else None
        autocast = mode.startswith("autocast")
        gpu = model.to("cuda", torch.float32 if autocast else DTYPES[dtype_name])
        with torch.autocast("cuda", dtype=DTYPES[dtype_name], enabled=autocast):
            out = gpu(*_to_cuda(inputs))
            loss = gpu(*_to_cuda(inputs), **{k: v.cuda() for k, v in labels.items()}) \
                if labels else None
    error = _relative_error(out, ref)
    report("head", head=name, mode=mode, error=error)
    assert error <= TOLERANCE[dtype_name]
    if labels:
        assert math.isfinite(float(loss))
        assert _relative_error(loss, ref_loss) <= TOLERANCE[dtype_name]


def _attention_ops(model, *inputs) -> list[str]:
    """The SDPA implementations (aten op names) a forward ran."""
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        model(*inputs)
    names = {event.name for event in prof.events()}
    return sorted(n for n in names if "scaled_dot_product" in n or "attention" in n.lower())


@pytest.mark.parametrize("seq", [16, 11])
@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp32"])
def test_sdpa_runs_a_fused_kernel(dtype, padded, seq):
    """Flash attention (no mask; fp16 / bf16) or memory-efficient attention (an additive padding
    mask, or fp32): never the unfused math path."""
    model = _head("BertModel").to("cuda", DTYPES[dtype])
    ids, types, mask = _to_cuda(_ids((3, seq)))
    if not padded:
        mask = torch.ones_like(mask)
    ops = _attention_ops(model, ids, types, mask)
    fused = [n for n in ops if any(k in n for k in ("flash", "efficient", "cudnn"))]
    report("sdpa", dtype=dtype, padded=padded, seq=seq, ops=ops)
    assert fused, f"no fused attention kernel ran: {ops}"
    assert not any("math" in n for n in ops), f"SDPA fell back to the math path: {ops}"
    # restricted to the two fused backends, the forward runs (no "No available kernel") and agrees
    with torch.no_grad():
        default = model(ids, types, mask)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            restricted = model(ids, types, mask)
    assert _relative_error(restricted, [t.float().cpu() for t in _flat(default)]) <= \
        TOLERANCE[dtype]


@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_padding_is_invisible_to_real_tokens(dtype):
    """Each row of a padded batch equals that sequence run alone without padding, and changing
    the padded tokens changes nothing."""
    model = _head("BertModel").to("cuda", DTYPES[dtype])
    ids, types, mask = _to_cuda(_ids((3, 11)))
    with torch.no_grad():
        layers, pooled = model(ids, types, mask)
        noise = torch.randint(1, VOCAB, ids.shape, device="cuda")
        other_ids = torch.where(mask.bool(), ids, noise)
        other_layers, other_pooled = model(other_ids, types, mask)
        for row in range(3):
            n = int(mask[row].sum())
            alone_layers, alone_pooled = model(ids[row:row + 1, :n], types[row:row + 1, :n])
            assert _relative_error(layers[-1][row, :n], alone_layers[-1][0].float().cpu()) <= \
                TOLERANCE[dtype]
            assert _relative_error(pooled[row], alone_pooled[0].float().cpu()) <= \
                TOLERANCE[dtype]
            # a leak through the mask would move these by O(0.1): the dtype's rounding is far less
            assert _relative_error(other_layers[-1][row, :n], layers[-1][row, :n].float().cpu()) \
                <= TOLERANCE[dtype]
        assert _relative_error(other_pooled, pooled.float().cpu()) <= TOLERANCE[dtype]


def test_from_pretrained_onto_the_gpu_in_bf16(tmp_path):
    model = _head("BertForSequenceClassification")
    model.save_pretrained(tmp_path)
    loaded = modeling.BertForSequenceClassification.from_pretrained(
        tmp_path, num_labels=3, device="cuda", torch_dtype=torch.bfloat16)
    assert {(p.device.type, p.dtype) for p in loaded.parameters()} == {("cuda", torch.bfloat16)}
    inputs = _ids((3, 11))
    with torch.no_grad():
        ref = model(*inputs)
        out = loaded.eval()(*_to_cuda(inputs))
    assert _relative_error(out, ref) <= TOLERANCE["bf16"]


# ---------------------------------------------------------------------------- unpadding
def _unpadded_and_dense(name: str, dtype: torch.dtype):
    """(unpadded, dense) copies of one tiny head on the GPU in ``dtype``, the same weights."""
    model = _head(name)
    dense = _head(name)
    dense.unpad = False
    return model.to("cuda", dtype), dense.to("cuda", dtype)


def _zeroed_at_padding(name: str, out, mask: torch.Tensor) -> list[torch.Tensor]:
    """The dense path's outputs as the unpadded path gives them (docs/models.md): per-token
    outputs zero at padded positions, question answering's logits -10000."""
    fill = unpadding.MASKED_LOGIT if name == "BertForQuestionAnswering" else 0.0
    fixed = []
    for t in _flat(out):
        if mask.dim() == 2 and t.dim() >= 2 and t.shape[:2] == mask.shape:
            t = t.masked_fill((mask == 0).view(*mask.shape, *[1] * (t.dim() - 2)), fill)
        fixed.append(t.float().cpu())
    return fixed


@pytest.mark.parametrize("choice", ["auto", "groups", "padded", "nested"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("name", list(HEADS))
def test_unpadded_equals_dense_on_cuda(name, dtype, choice, monkeypatch):
    """Every head, every attention choice: real tokens computed alone give the dense path's
    outputs on the GPU (zeros at padded positions)."""
    monkeypatch.setattr(unpadding, "ATTENTION", choice)
    model, dense = _unpadded_and_dense(name, DTYPES[dtype])
    shape = (3, 4, 11) if name == "BertForMultipleChoice" else (3, 11)
    inputs = _to_cuda(_ids(shape))
    with torch.no_grad():
        out = model(*inputs)
        ref = _zeroed_at_padding(name, dense(*inputs), inputs[2])
    error = _relative_error(out, ref)
    report("unpadded vs dense", head=name, dtype=dtype, attention=choice, error=error)
    assert error <= TOLERANCE[dtype]


@pytest.mark.parametrize("choice", ["auto", "groups", "padded", "nested"])
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_unpadded_training_step_on_cuda_equals_dense(dtype, choice, monkeypatch):
    """Loss and every gradient of a sequence classifier, through the gather and the scatter."""
    monkeypatch.setattr(unpadding, "ATTENTION", choice)
    model, dense = _unpadded_and_dense("BertForSequenceClassification", DTYPES[dtype])
    ids, types, mask = _to_cuda(_ids((3, 11)))
    labels = torch.tensor([0, 2, 1], device="cuda")
    losses = [m.train()(ids, types, mask, labels=labels) for m in (model, dense)]
    for loss in losses:
        loss.backward()
    assert _relative_error(losses[0], losses[1].float().cpu()) <= TOLERANCE[dtype]
    grads = dict(dense.named_parameters())
    error = max(_relative_error(p.grad, grads[k].grad.float().cpu())
                for k, p in model.named_parameters())
    report("unpadded training step", dtype=dtype, attention=choice, grad_error=error)
    assert error <= TOLERANCE[dtype]


# ---------------------------------------------------------------------------- Trainer
def _params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().float().cpu().clone() for n, p in model.named_parameters()}


def _max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def _train(model, data, **kwargs):
    kwargs.setdefault("progress", False)
    kwargs.setdefault("seed", 3)
    trainer = Trainer(model, data, **kwargs)
    return trainer, trainer.train(resume=False)


def test_trainer_on_cuda_equals_trainer_on_cpu():
    """Tiny BERT, AdamW, accumulation over 2 micro-batches: the same weights on both devices."""
    runs, start = {}, _params(tiny_bert_classifier())
    for device in ("cpu", "cuda"):
        model = tiny_bert_classifier()
        _, result = _train(model, BertData(32), batch_size=4, gradient_accumulation_steps=2,
                           epochs=1, lr=1e-3, device=device)
        assert result["global_step"] == 4
        runs[device] = _params(model)
    moved, diff = _max_diff(start, runs["cpu"]), _max_diff(runs["cpu"], runs["cuda"])
    report("trainer cuda vs cpu", weights_moved=moved, max_diff=diff)
    assert moved > 1e-3 and diff <= 1e-5


def test_accumulation_on_cuda_equals_one_big_batch():
    runs = {}
    for batch, accum in ((8, 1), (4, 2)):
        torch.manual_seed(0)
        model = Classifier()
        _train(model, DictData(32), optimizer=sgd, batch_size=batch,
               gradient_accumulation_steps=accum, epochs=2, device="cuda")
        runs[accum] = _params(model)
    assert _max_diff(runs[1], runs[2]) <= 1e-5


class _Recording(Classifier):
    """A Classifier that keeps a host copy of its weights at the start of every forward call, so
    a test sees whether the optimizer step between two calls changed them."""

    def __init__(self):
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x, labels=None):
        self.seen.append(torch.cat([p.detach().float().flatten() for p in self.parameters()]).cpu())
        return super().forward(x, labels)


def _metrics(output_dir) -> list[dict]:
    with open(os.path.join(output_dir, "metrics.jsonl"), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize("offload", [False, True], ids=["on-device", "optimize_on_cpu"])
def test_fp16_overflow_skips_the_step_and_lowers_the_loss_scale(tmp_path, offload):
    """fp16 autocast + GradScaler with accumulation over 2 micro-batches; the third window's first
    loss is inf: that window's step is skipped (weights unchanged), the scale halves, training
    goes on to max_steps with finite weights. With optimize_on_cpu the inf is found in the host
    gradients and the host optimizer must skip too."""
    torch.manual_seed(0)
    model = _Recording()
    model.poison_calls = {5}  # calls 1-2: step 1, 3-4: step 2, 5-6: skipped, 7-8: step 3, ...
    trainer, result = _train(model, DictData(96), batch_size=8, gradient_accumulation_steps=2,
                             max_steps=4, lr=1e-2, precision="fp16", device="cuda",
                             warmup_proportion=0.0, output_dir=tmp_path, log_steps=1,
                             optimize_on_cpu=offload)
    seen = model.seen
    assert len(seen) == 10 and result["global_step"] == 4
    assert all(bool(s.isfinite().all()) for s in seen + [_params(model)["dense.weight"]])
    if offload:
        assert all(bool(p.isfinite().all()) for p in _host_optimizer(trainer))
    assert not torch.equal(seen[2], seen[4])  # step 2 (after calls 3-4) changed the weights
    assert torch.equal(seen[4], seen[6])  # the overflowed window (calls 5-6) did not
    assert not torch.equal(seen[6], seen[8])  # step 3 did again
    scales = [r["loss_scale"] for r in _metrics(tmp_path) if "loss_scale" in r]
    report("fp16 overflow", optimize_on_cpu=offload, loss_scales=scales)
    assert len(scales) == 4 and scales[0] == scales[1] and scales[2] == scales[3] == scales[1] / 2
    assert math.isfinite(result["train_loss"])


def test_bf16_autocast_on_cuda_runs_in_bf16_and_learns():
    torch.manual_seed(0)
    model = Classifier()
    seen = set()
    model.dense.register_forward_hook(lambda m, i, out: seen.add(out.dtype))
    trainer = Trainer(model, DictData(64), eval_data=DictData(64), batch_size=8, epochs=6,
                      lr=1e-2, precision="bf16", progress=False, seed=1, device="cuda")
    before = trainer.evaluate()["eval_loss"]
    trainer.train(resume=False)
    after = trainer.evaluate()["eval_loss"]
    report("bf16 autocast", eval_loss_before=before, eval_loss_after=after)
    assert seen == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert after < 0.6 * before


def _host_optimizer(trainer) -> list[torch.Tensor]:
    """The optimizer's parameters, checked to be fp32 tensors in pinned host memory."""
    params = [p for g in trainer.optimizer.param_groups for p in g["params"]]
    assert params and all(p.device.type == "cpu" and p.dtype == torch.float32 and p.is_pinned()
                          for p in params)
    for state in trainer.optimizer.state.values():
        assert all(v.device.type == "cpu" for v in state.values() if isinstance(v, torch.Tensor))
    return params


def test_optimize_on_cpu_gives_the_weights_of_the_on_device_optimizer():
    runs, start = {}, _params(tiny_bert_classifier())
    for offload in (False, True):
        model = tiny_bert_classifier()
        trainer, _ = _train(model, BertData(32), batch_size=4, gradient_accumulation_steps=2,
                            epochs=2, lr=1e-3, device="cuda", optimize_on_cpu=offload)
        if offload:
            _host_optimizer(trainer)
            assert all(p.device.type == "cuda" and p.grad is None for p in model.parameters())
        runs[offload] = _params(model)
    moved, diff = _max_diff(start, runs[False]), _max_diff(runs[False], runs[True])
    report("optimize_on_cpu weights", weights_moved=moved, max_diff=diff)
    assert moved > 1e-3 and diff <= 1e-5


def test_fp16_weights_with_optimize_on_cpu_learn():
    """The 2018 recipe: an fp16 model on the GPU, fp32 master weights and Adam on the host, loss
    scaling."""
    torch.manual_seed(0)
    model = Classifier().to("cuda", torch.float16)
    trainer = Trainer(model, DictData(64), eval_data=DictData(64), batch_size=8, epochs=6,
                      lr=1e-2, precision="fp16", optimize_on_cpu=True, progress=False, seed=1,
                      device="cuda")
    before = trainer.evaluate()["eval_loss"]
    trainer.train(resume=False)
    after = trainer.evaluate()["eval_loss"]
    masters = _host_optimizer(trainer)
    report("fp16 + optimize_on_cpu", eval_loss_before=before, eval_loss_after=after)
    assert all(p.dtype == torch.float16 for p in model.parameters())
    assert sum(m.numel() for m in masters) == sum(p.numel() for p in model.parameters())
    assert after < 0.6 * before


class Stack(nn.Module):
    """``depth`` square linear layers: enough parameters for optimizer memory to dominate."""

    def __init__(self, width: int = 1024, depth: int = 8):
        super().__init__()
        self.body = nn.Sequential(*[nn.Linear(width, width) for _ in range(depth)])

    def forward(self, x, labels=None):
        return self.body(x.to(self.body[0].weight.dtype)).float().pow(2).mean()  # a scalar


def _extra_peak(model: nn.Module, **kwargs) -> int:
    """Peak GPU bytes a 3-step Trainer run allocates beyond what is allocated before it (the
    model's weights, cuBLAS workspaces made by a warm-up forward and backward)."""
    width = model.body[0].in_features
    model.to("cuda")
    model(torch.randn(8, width, device="cuda")).backward()
    for p in model.parameters():
        p.grad = None
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    data = torch.utils.data.TensorDataset(torch.randn(24, width), torch.zeros(24))
    trainer, _ = _train(model, data, batch_size=8, max_steps=3, lr=1e-3, device="cuda", **kwargs)
    torch.cuda.synchronize()
    if kwargs.get("optimize_on_cpu"):
        _host_optimizer(trainer)
    return torch.cuda.max_memory_allocated() - base


def test_optimize_on_cpu_keeps_masters_and_adam_state_off_the_gpu():
    fp32_bytes = sum(p.numel() for p in Stack().parameters()) * 4
    torch.manual_seed(0)
    on_device = _extra_peak(Stack())
    offloaded = _extra_peak(Stack(), optimize_on_cpu=True)
    bf16_offloaded = _extra_peak(Stack().to(torch.bfloat16), optimize_on_cpu=True,
                                 precision="bf16")
    report("offload memory", fp32_weights_mib=fp32_bytes / 2**20,
           extra_peak_mib={"on_device": on_device / 2**20, "optimize_on_cpu": offloaded / 2**20,
                           "bf16 model + optimize_on_cpu": bf16_offloaded / 2**20})
    # on the device: fp32 gradients + Adam's two fp32 moments; offloaded, at most the gradients
    # in flight: the difference is at least Adam's state
    assert on_device - offloaded >= 0.9 * 2 * fp32_bytes
    # a bf16 model whose masters live on the host: the GPU never holds an fp32 copy of the weights
    assert bf16_offloaded < 0.75 * fp32_bytes


def _gpu_activity(trace_file: str) -> tuple[list[dict], list[dict]]:
    """(kernels, memcpys) from a Chrome trace of the torch profiler: dicts with start, end (us),
    stream, name and bytes (memcpys)."""
    with open(trace_file, encoding="utf-8") as f:
        events = json.load(f)["traceEvents"]
    kernels, copies = [], []
    for e in events:
        if e.get("ph") != "X" or "dur" not in e:
            continue
        args = e.get("args") or {}
        item = {"start": float(e["ts"]), "end": float(e["ts"]) + float(e["dur"]),
                "stream": args.get("stream", e.get("tid")), "name": e.get("name", ""),
                "bytes": args.get("bytes", 0)}
        if e.get("cat") == "kernel":
            kernels.append(item)
        elif e.get("cat") == "gpu_memcpy":
            copies.append(item)
    return kernels, copies


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _length(intervals) -> float:
    return sum(b - a for a, b in intervals)


def _intersection(a, b) -> float:
    """Total time covered by both unions of intervals (each sorted, disjoint)."""
    total, i, j = 0.0, 0, 0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def test_offloaded_gradient_copies_run_on_a_side_stream_beside_compute(tmp_path):
    """The offloaded step copies each gradient to the host as soon as it exists, on its own
    stream, while the backward goes on: asserted, the copies' stream and volume; reported, how
    much copy time overlapped kernels on the compute stream."""
    torch.manual_seed(0)
    width, depth, steps = 2048, 8, 2
    model = Stack(width, depth).to("cuda")
    weight_grad_bytes = depth * width * width * 4  # the 16 MiB weight gradients (biases: 8 KiB)
    data = torch.utils.data.TensorDataset(torch.randn(4096, width), torch.zeros(4096))
    _train(model, data, batch_size=2048, max_steps=1, device="cuda", optimize_on_cpu=True)
    # built outside the profile: building copies the weights to the host on the compute stream
    trainer = Trainer(model, data, batch_size=2048, max_steps=steps, device="cuda",
                      optimize_on_cpu=True, progress=False, seed=3)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        trainer.train(resume=False)
        torch.cuda.synchronize()
    trace = str(tmp_path / "trace.json")
    prof.export_chrome_trace(trace)
    kernels, copies = _gpu_activity(trace)
    if not kernels:
        pytest.skip("the profiler recorded no CUDA kernels (CUPTI unavailable): overlap not "
                    "measurable here")
    busy: dict = {}
    for k in kernels:
        busy[k["stream"]] = busy.get(k["stream"], 0.0) + k["end"] - k["start"]
    main = max(busy, key=busy.get)  # the stream that runs the forward and backward
    to_host = [c for c in copies if "DtoH" in c["name"]]
    if any(c["bytes"] for c in to_host):  # the loop's own scalar reads are a few bytes
        gradients = [c for c in to_host if c["bytes"] >= 2**20]
    else:
        gradients = [c for c in to_host if c["end"] - c["start"] >= 50]  # us
    compute = _union([(k["start"], k["end"]) for k in kernels if k["stream"] == main])
    copy_time = _union([(c["start"], c["end"]) for c in gradients])
    overlap = _intersection(compute, copy_time)
    report("offload overlap", steps=steps, weight_grad_mib_per_step=weight_grad_bytes / 2**20,
           gradient_copies=len(gradients),
           gradient_copy_mib=sum(c["bytes"] for c in gradients) / 2**20,
           copy_ms=_length(copy_time) / 1e3, compute_ms=_length(compute) / 1e3,
           copy_overlapping_compute_ms=overlap / 1e3,
           overlap_fraction_of_copy=overlap / max(_length(copy_time), 1e-9),
           copy_streams=sorted({str(c["stream"]) for c in gradients}), main_stream=str(main))
    assert gradients, f"no gradient copies to the host recorded among {len(copies)} copies"
    assert all(c["stream"] != main for c in gradients), "gradient copies ran on the compute stream"
    if any(c["bytes"] for c in gradients):
        assert sum(c["bytes"] for c in gradients) >= steps * weight_grad_bytes


# ---------------------------------------------------------------------------- torchrun
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(nproc: int, mode: str, out) -> None:
    """``torchrun --nproc_per_node=nproc tests/_cuda_worker.py mode out`` on 127.0.0.1."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(GLOO_SOCKET_IFNAME="lo", NCCL_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([HERE, env.get("PYTHONPATH", "")]))
    for _ in range(2):  # the free port may be taken before torchrun binds it: once more
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--nnodes=1", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
               os.path.join(HERE, "_cuda_worker.py"), mode, str(out)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180,
                              check=False)
        if proc.returncode == 0 or "address already in use" not in proc.stderr.lower():
            break
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def gloo_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("gloo")
    _torchrun(2, "gloo", out)
    return out


def _rank_reports(out, name: str) -> list[dict]:
    reports = [json.loads((out / f"{name}_rank{r}.json").read_text()) for r in (0, 1)]
    for r in reports:
        assert r["error"] is None, r["error"]
    return reports


@pytest.mark.parametrize("name, tol", [("mlp", 1e-5), ("bert", 2e-5), ("offload", 1e-5)])
def test_two_processes_sharing_the_gpu_through_gloo_equal_one(gloo_out, name, tol):
    """DDP over gloo, both ranks on cuda:0, against one process on the whole batch."""
    reports = _rank_reports(gloo_out, name)
    build, data, kwargs = GLOO_RUNS[name]
    torch.manual_seed(0)
    model = build()
    _, result = _train(model, data(), device="cuda", **dict(kwargs, batch_size=8))
    saved = torch.load(gloo_out / f"{name}_params.pt", weights_only=True)
    diff = _max_diff(_params(model), {k: v.float() for k, v in saved.items()})
    report("gloo two processes on one GPU", run=name, max_diff=diff)
    assert [r["world_size"] for r in reports] == [2, 2]
    assert [r["global_step"] for r in reports] == [result["global_step"]] * 2
    assert reports[0]["train_loss"] == pytest.approx(result["train_loss"], abs=1e-5)
    assert diff <= tol


def test_evaluate_gathers_cuda_outputs_across_processes_through_gloo(gloo_out):
    reports = _rank_reports(gloo_out, "evaluate")
    torch.manual_seed(0)
    trainer = Trainer(Classifier(), eval_data=DictData(13, seed=5), compute_metrics=accuracy,
                      batch_size=4, progress=False, device="cuda")
    single = trainer.evaluate()
    for r in reports:
        assert r["evaluate"]["n"] == 13
        assert r["evaluate"]["eval_loss"] == pytest.approx(single["eval_loss"], abs=1e-5)
        assert r["evaluate"]["accuracy"] == pytest.approx(single["accuracy"])


def test_one_process_with_nccl(tmp_path):
    """An NCCL process group of one under torchrun: DDP through the Strategy interface equals
    the plain model step for step, and every collective the Trainer uses runs on the GPU.
    (NCCL refuses two ranks on one GPU; several ranks need several GPUs.)"""
    _torchrun(1, "nccl", tmp_path)
    result = json.loads((tmp_path / "nccl_rank0.json").read_text())
    report("nccl one process", **result)
    assert result["error"] is None, result["error"]
    assert result["backend"] == "nccl"
    assert result["ddp_vs_plain_max_diff"] <= 1e-6 and result["weights_moved"] > 1e-3
    assert result["collectives"] == {"all_reduce_sum": True, "all_gather_rows": True,
                                     "barrier": True}
