"""What every fine-tuning script in ``scripts/`` shares: the 2018 flags and how they map onto
the Trainer, the launch (seed, logging, torchrun process group), training and saving, where
results go, and turning a ``BertHubError`` into one line and an exit status. The scripts then
hold only what is particular to their task.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from typing import Dict, Optional

logger = logging.getLogger(__name__)


def add_common_args(parser: argparse.ArgumentParser, *, train_batch_size: int = 32,
                    learning_rate: float = 5e-5, num_train_epochs: float = 3.0) -> None:
    """The model, output, optimisation and launch flags of the 2018 scripts, plus --bf16."""
    add = parser.add_argument
    add("--bert_model", required=True,
        help="a registry name (bert-base-uncased, ...), a model folder or archive, or a URL")
    add("--output_dir", required=True,
        help="where the fine-tuned model, checkpoints and results are written")
    add("--cache_dir", default=None, help="download cache (default: BERT_HUB_CACHE)")
    add("--do_lower_case", dest="do_lower_case", action="store_const", const=True, default=None,
        help="lower-case the input (uncased models); default: what the model says")
    add("--no_lower_case", dest="do_lower_case", action="store_const", const=False,
        help="keep case (cased models); default: what the model says")
    add("--train_batch_size", type=int, default=train_batch_size,
        help="examples per optimizer step, over all processes, GPUs and accumulation steps")
    add("--eval_batch_size", type=int, default=8, help="examples per device for evaluation")
    add("--learning_rate", type=float, default=learning_rate, help="peak Adam learning rate")
    add("--num_train_epochs", type=float, default=num_train_epochs)
    add("--max_steps", type=int, default=None, help="stop after this many optimizer steps")
    add("--warmup_proportion", type=float, default=0.1,
        help="fraction of the optimizer steps with a linear learning-rate warm-up")
    add("--gradient_accumulation_steps", type=int, default=1,
        help="micro-batches accumulated into one optimizer step")
    add("--fp16", action="store_true", help="float16 autocast with dynamic loss scaling")
    add("--bf16", action="store_true", help="bfloat16 autocast")
    add("--loss_scale", type=float, default=0,
        help="accepted for compatibility; fp16 always uses dynamic loss scaling")
    add("--optimize_on_cpu", action="store_true",
        help="keep fp32 master weights and Adam state in host memory")
    add("--seed", type=int, default=42)
    add("--no_cuda", action="store_true", help="run on the CPU even when CUDA is available")
    add("--save_steps", type=int, default=500,
        help="a checkpoint every N optimizer steps (and at the end), so a stopped run continues "
             "where it stopped when started again; 0: only at the end")
    add("--ddp_timeout", type=float, default=None,
        help="seconds a process waits for the others (torchrun) before the run fails, so a "
             "dead machine or a cut network link ends the run instead of hanging it (default: "
             "bert_hub.distributed.DEFAULT_TIMEOUT_S, 300)")
    add("--local_rank", type=int, default=-1,
        help="set by the legacy torch.distributed.launch; torchrun sets LOCAL_RANK instead")


def check_common_args(parser: argparse.ArgumentParser, args) -> None:
    """Flag combinations that cannot work, reported before anything is loaded."""
    if args.fp16 and args.bf16:
        parser.error("--fp16 and --bf16 exclude each other: pick one")
    if args.gradient_accumulation_steps < 1:
        parser.error(f"--gradient_accumulation_steps must be >= 1, got "
                     f"{args.gradient_accumulation_steps}")
    if args.train_batch_size < 1 or args.eval_batch_size < 1:
        parser.error("--train_batch_size and --eval_batch_size must be >= 1")
    if args.save_steps < 0:
        parser.error(f"--save_steps must be >= 0 (0: a checkpoint only at the end), got "
                     f"{args.save_steps}")
    if args.ddp_timeout is not None and not args.ddp_timeout > 0:
        parser.error(f"--ddp_timeout must be a number of seconds > 0, got {args.ddp_timeout}")
    if args.local_rank != -1 and "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)  # torch.distributed.launch's way


def precision(args) -> str:
    return "fp16" if args.fp16 else "bf16" if args.bf16 else "fp32"


def launch(args):
    """Seed, set up logging and the process group (torchrun), and return the Trainer's strategy.

    Seeding here, before the model is loaded, makes the randomly initialised head the same in
    every run and on every rank (the Trainer seeds again, per rank, for dropout)."""
    import random

    import numpy as np
    import torch

    from bert_hub import distributed

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    strategy = distributed.setup("cpu" if args.no_cuda else None, timeout=args.ddp_timeout)
    configure_logging(strategy)
    logger.info("device %s, %s, world size %d, precision %s", strategy.device, strategy.kind,
                strategy.world_size, precision(args))
    return strategy


def configure_logging(strategy) -> None:
    """INFO lines from the first process of each machine (rank 0 and, on the other machines,
    LOCAL_RANK 0: each machine shows its progress, and its warnings once), errors only from the
    others; under torchrun each line names its rank. Python warnings go through logging too."""
    shown = strategy.is_main or strategy.is_local_main
    where = f" [rank {strategy.rank}]" if strategy.world_size > 1 else ""
    logging.basicConfig(format=f"%(asctime)s %(levelname)s{where} %(name)s: %(message)s",
                        datefmt="%H:%M:%S", level=logging.INFO if shown else logging.ERROR)
    logging.captureWarnings(True)


def per_device_batch_size(parser: argparse.ArgumentParser, args, strategy) -> int:
    """--train_batch_size is the batch of one optimizer step over everything; each device's
    micro-batch is that divided by accumulation steps, processes and GPUs per process, so the
    optimisation is the same however the run is launched."""
    parts = args.gradient_accumulation_steps * strategy.world_size * strategy.devices_per_process
    if args.train_batch_size % parts:
        parser.error(
            f"--train_batch_size {args.train_batch_size} does not split evenly over "
            f"{args.gradient_accumulation_steps} accumulation steps x {strategy.world_size} "
            f"processes x {strategy.devices_per_process} GPUs per process: use a multiple of "
            f"{parts}")
    return args.train_batch_size // parts


def load_tokenizer(args):
    from bert_hub.tokenization import BertTokenizer

    return BertTokenizer.from_pretrained(args.bert_model, cache_dir=args.cache_dir,
                                         do_lower_case=args.do_lower_case)


def make_trainer(args, model, train_data, batch_size: int, **kwargs):
    """The Trainer as the scripts use it: checkpoints (the newest one) and metrics.jsonl in
    --output_dir, so an interrupted run continues where it stopped when started again."""
    from bert_hub.trainer import Trainer

    epochs = None if args.max_steps else max(1, round(args.num_train_epochs))
    if not args.max_steps and epochs != args.num_train_epochs:
        logger.warning("--num_train_epochs %s rounded to %d", args.num_train_epochs, epochs)
    return Trainer(
        model, train_data, lr=args.learning_rate, epochs=epochs, max_steps=args.max_steps,
        batch_size=batch_size, gradient_accumulation_steps=args.gradient_accumulation_steps,
        warmup_proportion=args.warmup_proportion, precision=precision(args),
        optimize_on_cpu=args.optimize_on_cpu, seed=args.seed, output_dir=args.output_dir,
        save_steps=args.save_steps or None, keep_checkpoints=1,
        eval_batch_size=args.eval_batch_size,
        device="cpu" if args.no_cuda else None,  # None: the launch decides, as in launch()
        **kwargs)  # the process group, and its --ddp_timeout, come from launch()


def train_and_save(trainer, model, tokenizer, args, strategy) -> dict:
    """Train, then (main process only) save the model and its vocabulary to --output_dir, where
    ``from_pretrained(output_dir)`` finds them. Returns the Trainer's summary."""
    summary = trainer.train()
    if strategy.is_main:
        model.save_pretrained(args.output_dir)
        tokenizer.save_pretrained(args.output_dir)
        logger.info("fine-tuned model saved to %s", args.output_dir)
    return summary


def write_results(output_dir: str, results: Dict[str, float], name: str = "eval_results",
                  title: Optional[str] = "Eval results") -> Dict[str, str]:
    """``name.txt`` (``key = value`` lines, as the 2018 scripts wrote) and ``name.json``."""
    os.makedirs(output_dir, exist_ok=True)
    txt, js = (os.path.join(output_dir, f"{name}.{ext}") for ext in ("txt", "json"))
    if title:
        logger.info("***** %s *****", title)
    with open(txt, "w", encoding="utf-8") as f:
        for key in sorted(results):
            logger.info("  %s = %s", key, results[key])
            f.write(f"{key} = {results[key]}\n")
    with open(js, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=2, sort_keys=True)
        f.write("\n")
    return {"txt": txt, "json": js}


def run_cli(main) -> None:
    """Run a script's ``main()``; a BertHubError becomes one line on stderr and exit status 2,
    a collective that timed out or lost a peer (torchrun) one line and exit status 1. The
    process group is ended on the way out (:func:`bert_hub.distributed.shutdown`)."""
    import sys

    import torch.distributed as dist

    from bert_hub import distributed
    from bert_hub.errors import BertHubError

    try:
        main()
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank done (rank 0 may still be writing) before teardown
    except BertHubError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except RuntimeError as error:
        explained = distributed.explain_collective_error(error)
        if explained is None:
            raise
        print(f"error: {explained}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        distributed.shutdown()
