"""A user's own training script, as torchrun runs it in tests/test_multihost.py and
tests/test_distributed.py: ``Trainer(...).train()``, the results saved, then it returns, tearing
nothing down by hand.

``python _user_script.py REPORT_DIR OUTPUT_DIR MAX_STEPS [--ddp_timeout S] [--slow S] [--cli]
[--predictions N] [--gathers_only N]``

Each rank writes ``REPORT_DIR/report_rank<r>.json`` (global step, train loss, the checkpoints
its output folder holds) and rank 0 ``REPORT_DIR/params.pt``. ``--slow S``: sleep S seconds
per batch and write ``REPORT_DIR/running_rank<r>`` once training runs (for cutting the network
in the middle of a run). ``--cli``: run as the scripts do, through ``run_cli``.
``--predictions N``: predict N times after training (collectives right before the exit).
``--gathers_only N``: no Trainer: ``distributed.setup()`` and N gathers, then return.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time

import torch
from _train_worker import Classifier, DictData

from bert_hub.trainer import Trainer

# save_steps 2: a checkpoint every second step; one process with batch_size 8 trains the same;
# one schedule whatever max_steps, so a resumed longer run equals one run
ARGS = {"batch_size": 4, "lr": 1e-2, "save_steps": 2, "seed": 3, "progress": False,
        "keep_checkpoints": 2, "schedule": "none"}


def slow_collate(seconds: float, marker: str):
    def collate(examples):
        if not os.path.exists(marker):
            with open(marker, "w", encoding="utf-8"):
                pass
        time.sleep(seconds)
        return torch.utils.data.default_collate(examples)
    return collate


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("report_dir")
    parser.add_argument("output_dir")
    parser.add_argument("max_steps", type=int)
    parser.add_argument("--ddp_timeout", type=float, default=None)
    parser.add_argument("--slow", type=float, default=0.0)
    parser.add_argument("--cli", action="store_true")
    parser.add_argument("--predictions", type=int, default=0)
    parser.add_argument("--gathers_only", type=int, default=0)
    args = parser.parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO)  # the Trainer's lines: resuming, checkpoints
    os.makedirs(args.report_dir, exist_ok=True)
    if args.gathers_only:
        from bert_hub import distributed

        strategy = distributed.setup("cpu")
        for _ in range(args.gathers_only):
            strategy.all_gather_rows(torch.ones(1000, 1))
        return
    extra = {}
    if args.ddp_timeout is not None:
        extra["ddp_timeout"] = args.ddp_timeout
    if args.slow:
        extra["collate_fn"] = slow_collate(
            args.slow, os.path.join(args.report_dir, f"running_rank{rank}"))
    torch.manual_seed(0)
    model = Classifier()
    trainer = Trainer(model, DictData(32), max_steps=args.max_steps, output_dir=args.output_dir,
                      **ARGS, **extra)
    result = trainer.train()
    for _ in range(args.predictions):
        trainer.predict(DictData(13, labelled=False, seed=9))
    report = {**result, "checkpoints": sorted(os.listdir(args.output_dir)),
              "hostname": os.uname().nodename}
    if rank == 0:
        torch.save(model.state_dict(), os.path.join(args.report_dir, "params.pt"))
    with open(os.path.join(args.report_dir, f"report_rank{rank}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    if "--cli" in sys.argv:
        from bert_hub.tasks.script_support import run_cli
        run_cli(main)
    else:
        main()
