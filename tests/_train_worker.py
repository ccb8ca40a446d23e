"""Shared tiny models and data for the Trainer tests, and the script that ``torchrun`` runs in
tests/test_distributed.py (``python -m torch.distributed.run ... _train_worker.py OUT``).

Each run writes what each rank saw into OUT: ``<name>_rank<r>.json`` (sampler shards,
all-reduce count, step, evaluate / predict results) and, on rank 0, ``<name>_params.pt`` (final
parameters). First ``strategy_rank<r>.json``: the DDP strategy's own collectives. Runs: mlp, tagger,
bert, offload (optimize_on_cpu), unused (find_unused_parameters), then ``small_rank<r>.json``
(evaluate / predict of fewer examples than ranks, a resume from a shared output folder),
``unused_error_rank<r>.json``: the errors without find_unused_parameters, and last
``shutdown_rank<r>.json``: the process group ended by ``distributed.shutdown()``."""
from __future__ import annotations

import json
import os
import sys

import torch
from torch import nn
from torch.nn import functional as F


class Classifier(nn.Module):
    """0.6.2-style head: forward(x, labels=None) -> loss when labels are given, else logits."""

    def __init__(self, dim=8, hidden=16, classes=3, dropout=0.0):
        super().__init__()
        self.dense = nn.Linear(dim, hidden)
        self.LayerNorm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, classes)
        self.calls = 0
        self.poison_calls = set()  # forward calls whose loss is made inf (overflow tests)

    def forward(self, x, labels=None):
        self.calls += 1
        logits = self.classifier(self.dropout(torch.tanh(self.LayerNorm(self.dense(x)))))
        if labels is None:
            return logits  # [B, classes]
        loss = F.cross_entropy(logits.float(), labels)
        if self.calls in self.poison_calls:
            loss = loss * float("inf")
        return loss


class Tagger(nn.Module):
    """Token-level head: forward(x [B, T, dim], labels [B, T] with -1 = ignore) ->
    (mean loss over labelled tokens, logits [B, T, classes])."""

    def __init__(self, dim=8, classes=4):
        super().__init__()
        self.proj = nn.Linear(dim, 12)
        self.out = nn.Linear(12, classes)

    def forward(self, x, labels=None):
        logits = self.out(torch.relu(self.proj(x)))
        if labels is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-1)
        return loss, logits


class WithUnused(Classifier):
    """A Classifier holding a layer that forward never uses (an unused head, a frozen-out
    branch): under DDP it needs find_unused_parameters=True."""

    def __init__(self):
        super().__init__()
        self.unused = nn.Linear(3, 3)


class SometimesUnused(nn.Module):
    """Uses its ``extra`` layer in the first two forward calls only (the first window of
    two micro-batches): the first step's check passes, a later step's reduction stalls."""

    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(8, 3)
        self.extra = nn.Linear(8, 3)
        self.calls = 0

    def forward(self, x, labels=None):
        self.calls += 1
        logits = self.dense(x)
        if self.calls <= 2:
            logits = logits + self.extra(x)
        return logits if labels is None else F.cross_entropy(logits, labels)


class DictData(torch.utils.data.Dataset):
    """A learnable task: the label is the argmax of a fixed linear map of x."""

    def __init__(self, n=32, dim=8, classes=3, seed=0, labelled=True):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, dim, generator=g)
        w = torch.randn(dim, classes, generator=torch.Generator().manual_seed(1234))
        self.y = (self.x @ w).argmax(-1)
        self.labelled = labelled

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        if not self.labelled:
            return {"x": self.x[i]}
        return {"x": self.x[i], "labels": self.y[i]}


def token_data(n=24, length=6, dim=8, classes=4, seed=0):
    """(x, labels) with a different number of labelled tokens in each example."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, dim, generator=g)
    labels = torch.randint(0, classes, (n, length), generator=g)
    keep = torch.arange(length)[None, :] < torch.randint(1, length + 1, (n, 1), generator=g)
    labels[~keep] = -1
    return torch.utils.data.TensorDataset(x, labels)


def tiny_bert_classifier(seed=0):
    """bert_hub's own BertForSequenceClassification at test size, or None if absent."""
    try:
        from bert_hub.config import BertConfig
        from bert_hub.modeling import BertForSequenceClassification
    except ImportError:
        return None
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                        max_position_embeddings=16)
    return BertForSequenceClassification(config, num_labels=3)


class BertData(torch.utils.data.Dataset):
    """Dict batches in the 0.6.2 forward's argument names."""

    def __init__(self, n=32, length=8, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 50, (n, length), generator=g)
        self.mask = torch.ones(n, length, dtype=torch.long)
        self.mask[n // 2:, length - 2:] = 0
        self.labels = self.ids[:, 0] % 3

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


def sgd(groups):
    return torch.optim.SGD(groups, lr=0.5)


# ---------------------------------------------------------------------------- torchrun part
def _count_allreduce_hook(counter):
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    def hook(state, bucket):
        counter["n"] += 1
        return allreduce_hook(None, bucket)
    return hook


def _run(out_dir: str, name: str, model: nn.Module, data, eval_data=None, **kwargs) -> dict:
    from bert_hub.trainer import Trainer

    rank = int(os.environ["RANK"])
    trainer = Trainer(model, data, eval_data=eval_data, seed=3, progress=False, **kwargs)
    counter = {"n": 0}
    trainer.wrapped.register_comm_hook(counter, _count_allreduce_hook(counter))
    shards = {str(e): list(iter(trainer._train_loader(e, 0).sampler)) for e in (0, 1)}
    result = trainer.train(resume=False)
    report = {"global_step": result["global_step"], "train_loss": result["train_loss"],
              "allreduce_calls": counter["n"], "shards": shards,
              "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters())}
    if eval_data is not None:
        report["evaluate"] = trainer.evaluate()
        report["predict"] = trainer.predict(DictData(13, labelled=False, seed=9)).tolist()
    if rank == 0:
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                   os.path.join(out_dir, f"{name}_params.pt"))
    with open(os.path.join(out_dir, f"{name}_rank{rank}.json"), "w") as f:
        json.dump(report, f)
    return report


def accuracy(predictions, labels):
    return {"accuracy": float((predictions.argmax(-1) == labels).mean()),
            "n": len(labels)}


def _strategy_collectives(out_dir: str) -> None:
    """What the DDP strategy does by itself: ragged gathers, sums, barrier."""
    from bert_hub.distributed import setup

    strategy = setup()
    rank = strategy.rank
    rows = strategy.all_gather_rows(torch.full((rank + 2, 3), float(rank)))  # 2 rows, then 3
    summed = strategy.all_reduce_sum(torch.tensor([rank + 1.0]))
    strategy.barrier()
    report = {"class": type(strategy).__name__, "kind": strategy.kind,
              "world_size": strategy.world_size, "is_main": strategy.is_main,
              "gradients_final_in_hooks": strategy.gradients_final_in_hooks,
              "rows": [r.tolist() for r in rows], "all_reduce_sum": summed.tolist(),
              "sum_over_ranks": strategy.sum_over_ranks(rank + 0.5)}
    with open(os.path.join(out_dir, f"strategy_rank{rank}.json"), "w") as f:
        json.dump(report, f)


def main(out_dir: str) -> None:
    _strategy_collectives(out_dir)
    torch.manual_seed(0)
    _run(out_dir, "mlp", Classifier(), DictData(32), eval_data=DictData(13, seed=5),
         optimizer=sgd, batch_size=4, gradient_accumulation_steps=2, epochs=2,
         output_dir=os.path.join(out_dir, "mlp_out"), log_steps=1, schedule="warmup_linear",
         compute_metrics=accuracy)
    torch.manual_seed(0)
    _run(out_dir, "tagger", Tagger(), token_data(24), optimizer=sgd, batch_size=3,
         gradient_accumulation_steps=2, epochs=2, max_grad_norm=None, schedule="none",
         loss_weight=_token_weight())
    bert = tiny_bert_classifier()
    if bert is not None:
        _run(out_dir, "bert", bert, BertData(32), batch_size=4, gradient_accumulation_steps=2,
             epochs=1, lr=1e-3)
    torch.manual_seed(0)
    _run(out_dir, "offload", Classifier(), DictData(32), **OFFLOAD_ARGS)
    torch.manual_seed(0)
    _run(out_dir, "unused", WithUnused(), DictData(32), **UNUSED_ARGS)
    _small_shards_and_resume(out_dir)
    _unused_without_the_option(out_dir)
    _shutdown(out_dir)


# DDP with the optimizer on the host; the test runs the same on one process with batch_size 8.
OFFLOAD_ARGS = {"batch_size": 4, "gradient_accumulation_steps": 2, "epochs": 2, "lr": 1e-2,
                "optimize_on_cpu": True}
UNUSED_ARGS = {"optimizer": sgd, "batch_size": 4, "gradient_accumulation_steps": 2, "epochs": 1,
               "find_unused_parameters": True}


# Trained 4 steps in one go, and 2 + 2 with a resume in between; the test runs it on one process.
RESUME_ARGS = {"batch_size": 4, "lr": 1e-2, "save_steps": 2, "seed": 3, "progress": False,
               "schedule": "none"}  # one schedule, whatever max_steps


def _small_shards_and_resume(out_dir: str) -> None:
    """evaluate / predict of datasets smaller than the world (rank 1's shard empty, or shorter
    than rank 0's), and a resume from a checkpoint in an output folder both ranks share."""
    from bert_hub.trainer import Trainer

    rank = int(os.environ["RANK"])
    torch.manual_seed(0)
    trainer = Trainer(Classifier(), DictData(8), batch_size=4, epochs=1, progress=False,
                      compute_metrics=accuracy)
    report = {"predict_1": trainer.predict(DictData(1, labelled=False, seed=9)).tolist(),
              "predict_3": trainer.predict(DictData(3, labelled=False, seed=9)).tolist(),
              "evaluate_1": trainer.evaluate(DictData(1, seed=5)),
              "evaluate_3": trainer.evaluate(DictData(3, seed=5))}
    folder = os.path.join(out_dir, "resume_out")
    torch.manual_seed(0)
    first = Classifier()
    Trainer(first, DictData(32), max_steps=2, output_dir=folder, **RESUME_ARGS).train()
    second = Classifier()  # other weights: the checkpoint's win
    resumed = Trainer(second, DictData(32), max_steps=4, output_dir=folder, **RESUME_ARGS)
    report["resumed"] = resumed.train(resume=True)
    report["checkpoints"] = sorted(os.listdir(os.path.join(folder, "checkpoint-4")))
    if rank == 0:
        torch.save(second.state_dict(), os.path.join(out_dir, "resumed_params.pt"))
    with open(os.path.join(out_dir, f"small_rank{rank}.json"), "w") as f:
        json.dump(report, f)


def _unused_without_the_option(out_dir: str) -> None:
    """Last in the run: the failed DDP reduction leaves that wrapper unusable."""
    from bert_hub.errors import TrainerError
    from bert_hub.trainer import Trainer

    rank = int(os.environ["RANK"])
    report = {}
    for name, build in (("static", WithUnused), ("later", SometimesUnused)):
        torch.manual_seed(0)  # the same weights on both ranks (DDP would broadcast rank 0's)
        model = build()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        trainer = Trainer(model, DictData(32), optimizer=sgd, batch_size=4, max_steps=3,
                          gradient_accumulation_steps=2, seed=3, progress=False)
        report[name] = {"error": None}
        try:
            trainer.train(resume=False)
        except TrainerError as error:
            report[name]["error"] = str(error)
        report[name]["unchanged"] = all(torch.equal(before[k], v)
                                        for k, v in model.state_dict().items())
    with open(os.path.join(out_dir, f"unused_error_rank{rank}.json"), "w") as f:
        json.dump(report, f)


def _shutdown(out_dir: str) -> None:
    """End the group early (atexit would); a Trainer that used it then says so when run."""
    import torch.distributed as dist

    from bert_hub import distributed
    from bert_hub.errors import TrainerError
    from bert_hub.trainer import Trainer

    rank = int(os.environ["RANK"])
    trainer = Trainer(Classifier(), DictData(8), batch_size=4, max_steps=1, progress=False)
    distributed.shutdown()
    report = {"initialized": dist.is_initialized(), "error": None}
    try:
        trainer.train(resume=False)
    except TrainerError as error:
        report["error"] = str(error)
    distributed.shutdown()  # twice: nothing
    with open(os.path.join(out_dir, f"shutdown_rank{rank}.json"), "w") as f:
        json.dump(report, f)


def _token_weight():
    from bert_hub.trainer import count_labels
    return count_labels(1, ignore_index=-1)


if __name__ == "__main__":
    main(sys.argv[1])
