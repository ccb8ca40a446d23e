"""What ``torchrun`` runs for tests/test_cuda.py: ``_cuda_worker.py MODE OUT``.

- ``gloo`` (2 processes): both ranks on cuda:0 in a gloo process group (NCCL refuses two ranks
  on one GPU), the Trainer under DDP: runs mlp, bert and offload (each rank writes
  ``<run>_rank<r>.json``, rank 0 also ``<run>_params.pt``), then evaluate (outputs gathered
  across ranks).
- ``nccl`` (1 process): an NCCL process group of one; a model wrapped in DDP by the Strategy
  interface trains step for step beside the plain model, and the collectives the Trainer uses
  run on CUDA tensors. Writes ``nccl_rank0.json``.

Every report has ``error``: None, or the failure, so the test shows what broke.
"""
from __future__ import annotations

import copy
import json
import os
import sys
import traceback
from datetime import timedelta

import torch
import torch.distributed as dist
from _train_worker import (
    OFFLOAD_ARGS,
    BertData,
    Classifier,
    DictData,
    accuracy,
    sgd,
    tiny_bert_classifier,
)

from bert_hub.distributed import Strategy
from bert_hub.trainer import Trainer

TIMEOUT = timedelta(seconds=60)  # a rank that fails must not leave the other waiting for 30 min
GLOO_RUNS = {  # name -> (model, data, Trainer arguments); test_cuda.py runs the same at batch 8
    "mlp": (Classifier, lambda: DictData(32),
            dict(optimizer=sgd, batch_size=4, gradient_accumulation_steps=2, epochs=2)),
    "bert": (tiny_bert_classifier, lambda: BertData(32),
             dict(batch_size=4, gradient_accumulation_steps=2, epochs=1, lr=1e-3)),
    "offload": (Classifier, lambda: DictData(32), OFFLOAD_ARGS),
}


def _write(out_dir: str, name: str, rank: int, report: dict) -> None:
    with open(os.path.join(out_dir, f"{name}_rank{rank}.json"), "w", encoding="utf-8") as f:
        json.dump(report, f)


def _guarded(out_dir: str, name: str, rank: int, run) -> None:
    report = {"error": None}
    try:
        report.update(run())
    except Exception:  # reported to the test, which fails with it
        report["error"] = traceback.format_exc()
    _write(out_dir, name, rank, report)


def gloo(out_dir: str) -> None:
    dist.init_process_group("gloo", timeout=TIMEOUT)
    rank, device = dist.get_rank(), torch.device("cuda", 0)

    def train(name):
        build, data, kwargs = GLOO_RUNS[name]
        torch.manual_seed(0)
        model = build()
        result = Trainer(model, data(), device=device, seed=3, progress=False,
                         **kwargs).train(resume=False)
        if rank == 0:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                       os.path.join(out_dir, f"{name}_params.pt"))
        return {"global_step": result["global_step"], "train_loss": result["train_loss"],
                "world_size": dist.get_world_size()}

    def evaluate():
        torch.manual_seed(0)
        trainer = Trainer(Classifier(), eval_data=DictData(13, seed=5), compute_metrics=accuracy,
                          batch_size=2, progress=False, device=device)
        return {"evaluate": trainer.evaluate()}

    for name in GLOO_RUNS:
        _guarded(out_dir, name, rank, lambda: train(name))
    _guarded(out_dir, "evaluate", rank, evaluate)
    dist.destroy_process_group()


def nccl(out_dir: str) -> None:
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", timeout=TIMEOUT, device_id=device)

    def run():
        strategy = Strategy("ddp", device, rank=dist.get_rank(), world_size=dist.get_world_size())
        torch.manual_seed(0)
        plain = Classifier().to(device)
        start = {k: v.clone() for k, v in plain.state_dict().items()}
        wrapped = strategy.wrap(copy.deepcopy(plain))
        optimizers = [torch.optim.SGD(m.parameters(), lr=0.5) for m in (plain, wrapped)]
        data = DictData(32)
        for step in range(4):  # windows of 2 micro-batches: no_sync on the first
            for micro in range(2):
                rows = slice(step * 8 + micro * 4, step * 8 + micro * 4 + 4)
                x, y = data.x[rows].to(device), data.y[rows].to(device)
                plain(x, y).div(2).backward()
                with strategy.no_sync(wrapped, skip=micro == 0):
                    wrapped(x, y).div(2).backward()
            for opt in optimizers:
                opt.step()
                opt.zero_grad(set_to_none=True)
        ddp_state = wrapped.module.state_dict()
        value = torch.tensor([1.5, 2.5], device=device)
        rows = torch.arange(6, device=device).view(3, 2)
        gathered = strategy.all_gather_rows(rows)
        strategy.barrier()
        torch.cuda.synchronize(device)
        return {
            "backend": dist.get_backend(),
            "ddp_vs_plain_max_diff": max(float((ddp_state[k] - v).abs().max())
                                         for k, v in plain.state_dict().items()),
            "weights_moved": max(float((start[k] - v).abs().max())
                                 for k, v in plain.state_dict().items()),
            "collectives": {
                "all_reduce_sum": strategy.all_reduce_sum(value.clone()).tolist() == [1.5, 2.5],
                "all_gather_rows": len(gathered) == 1 and torch.equal(gathered[0], rows),
                "all_gather_object": strategy.all_gather_object({"rank": 0}) == [{"rank": 0}],
                "barrier": True,
            },
        }

    _guarded(out_dir, "nccl", dist.get_rank(), run)
    dist.destroy_process_group()


if __name__ == "__main__":
    {"gloo": gloo, "nccl": nccl}[sys.argv[1]](sys.argv[2])
