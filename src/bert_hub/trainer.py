"""The Trainer: fine-tunes any ``nn.Module`` with the four techniques of the 2018 BERT scripts
(gradient accumulation, several GPUs, a CPU-offloaded optimizer, mixed precision), plus exact
checkpoint / resume. See docs/trainer.md for the contract in full.

The model contract, in one place:
- A batch reaches the model as ``model(**batch)`` (a dict), ``model(*batch)`` (a tuple or list)
  or ``model(batch)`` (anything else).
- With labels in the batch, forward returns the loss: a scalar tensor, a tuple / list starting
  with it, or a mapping with a ``"loss"`` entry. The loss is the mean over the batch's labelled
  items (what ``CrossEntropyLoss`` returns).
- Without labels, forward returns the predictions (a tensor or a tuple of tensors).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import random
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import (
    DataLoader,
    DistributedSampler,
    Sampler,
    SequentialSampler,
    Subset,
)

from bert_hub import distributed
from bert_hub.errors import TrainerError
from bert_hub.optimization import BertAdam, HostMasterWeights, Schedule, get_scheduler
from bert_hub.optimization import parameter_groups as default_parameter_groups

logger = logging.getLogger(__name__)

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# Batch-dict keys taken to hold labels (the 0.6.2 heads' and transformers' argument names).
LABEL_NAMES = ("labels", "label_ids", "label", "masked_lm_labels", "next_sentence_label",
               "start_positions", "end_positions")
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.json"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "training_curves.png"
_NO_CONTEXT = contextlib.nullcontext()  # reusable: entering it does nothing
# How DDP says that a parameter got no gradient in the previous step.
_DDP_UNUSED = ("find_unused_parameters", "Expected to have finished reduction")


def count_labels(key: str | int = "labels", ignore_index: int = -1) -> Callable[[Any], int]:
    """A ``loss_weight`` for token-level losses: the number of labels that are not
    ``ignore_index`` in ``batch[key]`` (masked LM: ``count_labels("masked_lm_labels", -1)``;
    token classification with transformers' convention: ``count_labels("labels", -100)``)."""
    def weight(batch) -> int:
        return int((batch[key] != ignore_index).sum())
    weight.__name__ = f"count_labels({key!r}, ignore_index={ignore_index})"
    return weight


def _first_tensor(batch) -> torch.Tensor:
    values = batch.values() if isinstance(batch, Mapping) else (
        batch if isinstance(batch, (tuple, list)) else [batch])
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise TrainerError("a batch holds no tensor to count examples by: give the Trainer a "
                       "loss_weight=callable(batch) -> number of items")


def count_examples(batch) -> int:
    """The default ``loss_weight``: examples in the batch (dim 0 of its first tensor)."""
    return int(_first_tensor(batch).shape[0])


def _to_device(batch, device: torch.device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _call(model: nn.Module, batch):
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _loss_of(output, replicas: int = 1) -> torch.Tensor:
    """The loss in a forward's output; ``replicas`` losses (one per GPU) under DataParallel."""
    loss = output
    if isinstance(output, Mapping):
        loss = output.get("loss")
    elif isinstance(output, (tuple, list)) and output:
        loss = output[0]
    if not isinstance(loss, torch.Tensor) or not loss.is_floating_point() or not (
            loss.dim() == 0 or (replicas > 1 and loss.shape == (replicas,))):
        raise TrainerError(
            f"the model returned {type(output).__name__} but the Trainer needs the loss: with "
            "labels in the batch, forward must return a scalar loss tensor, a tuple starting "
            "with it, or a mapping with a 'loss' entry")
    # DataParallel returns one loss per GPU (the 2018 scripts' mean); a scalar is kept as is
    return loss if loss.dim() == 0 else loss.mean()


def _predictions_of(output):
    """Model output -> predictions: a tensor, or a tuple of tensors."""
    if isinstance(output, Mapping):
        output = tuple(v for k, v in output.items() if k != "loss")
    if isinstance(output, (tuple, list)):
        output = tuple(output)
        return output[0] if len(output) == 1 else output
    return output


class _SkipSampler(Sampler):
    """The first ``skip`` indices of a deterministic sampler dropped (mid-epoch resume)."""

    def __init__(self, sampler: Sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


def _all_on(model: nn.Module, device: torch.device) -> bool:
    """Whether every parameter and buffer is on ``device`` already (then ``.to`` is a no-op
    that still walks every module)."""
    return all(t.device == device for t in itertools.chain(model.parameters(), model.buffers()))


def _is_map_dataset(data) -> bool:
    return hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(
        data, (DataLoader, torch.utils.data.IterableDataset))


class Trainer:
    """Trains any ``nn.Module``; see the module docstring for what forward must accept and return.

    Args:
        model: the module (moved to the device by the Trainer; its dtype is kept).
        train_data: a map-style dataset (``__len__`` + ``__getitem__``, e.g. ``TensorDataset``
            or a list of dicts); the Trainer builds the loader (sampler, shards, resume).
        eval_data: a map-style dataset with labels, used by :meth:`evaluate` and at the end of
            each epoch.
        optimizer: None or "adamw" (``torch.optim.AdamW``, eps 1e-6, fused where available, with
            the schedule as a ``LambdaLR``), "bertadam" (0.6.2's BertAdam: schedule and
            per-tensor clipping inside; no global clipping), a callable
            ``param_groups -> Optimizer`` (the groups have no decay for biases and LayerNorm
            weights), or an ``Optimizer`` over the model's parameters.
        schedule: "warmup_linear", "warmup_cosine", "warmup_constant" or "none".
        lr: peak learning rate. epochs / max_steps: length of training (max_steps wins).
        batch_size: examples per micro-batch per device.
        gradient_accumulation_steps: micro-batches summed into one optimizer step.
        warmup_proportion: fraction of the optimizer steps spent warming up.
        weight_decay: decoupled decay of the weights (not biases and LayerNorm weights).
        max_grad_norm: clipping by the global norm (None or <= 0: none).
        precision: "fp32", "bf16" (autocast) or "fp16" (autocast + GradScaler).
        optimize_on_cpu: fp32 master weights and optimizer state on the host (see docs).
        seed: seeds Python, NumPy and torch (``seed + rank``: dropout differs per rank) and the
            data order (``seed``, the same on every rank).
        output_dir: checkpoints, metrics.jsonl and the plot go here; ``train()`` resumes from it.
        save_steps: a checkpoint every N optimizer steps (and always at the end).
        keep_checkpoints: how many of the newest checkpoints to keep (None: all).
        log_steps: a metrics line every N optimizer steps.
        collate_fn: turns a list of examples into a batch (default: torch's default_collate).
        compute_metrics: ``(predictions, labels) -> dict`` on NumPy arrays (see evaluate()).
        loss_weight: ``batch -> number of items the loss averages over``; each micro-batch's
            mean loss is weighted by it over the whole window on all ranks (default: examples;
            token-level losses: :func:`count_labels`).
        label_names: the batch-dict keys (or tuple positions) that hold labels; default: the
            known names (``labels``, ``label_ids``, ``masked_lm_labels``, ...) for dicts, the
            last element for tuples.
        eval_batch_size: per device (default: batch_size). device: default cuda if available.
        num_workers: DataLoader workers. progress: a tqdm bar on rank 0.
        tensorboard: also write TensorBoard events to ``output_dir/runs`` (needs tensorboard).
        find_unused_parameters: under torchrun (DDP), for models with parameters that forward
            does not use (an unused head, a branch): DDP then marks them ready each step
            instead of waiting for their gradients. Off by default (a graph walk per step); the
            first step checks and names the parameters when it is needed.
    """

    def __init__(self, model: nn.Module, train_data=None, *, eval_data=None, optimizer=None,
                 schedule: str | None = "warmup_linear", lr: float = 5e-5,
                 epochs: float | None = None, max_steps: int | None = None, batch_size: int = 32,
                 gradient_accumulation_steps: int = 1, warmup_proportion: float = 0.1,
                 weight_decay: float = 0.01, max_grad_norm: float | None = 1.0,
                 precision: str = "fp32", optimize_on_cpu: bool = False, seed: int = 42,
                 output_dir: str | os.PathLike | None = None, save_steps: int | None = None,
                 keep_checkpoints: int | None = 2, log_steps: int = 50, collate_fn=None,
                 compute_metrics: Callable[..., dict] | None = None,
                 loss_weight: Callable[[Any], float] | None = None,
                 label_names: Sequence[str | int] | None = None,
                 eval_batch_size: int | None = None, device=None, num_workers: int = 0,
                 progress: bool = True, tensorboard: bool = False,
                 find_unused_parameters: bool = False):
        self._validate(model, train_data, eval_data, optimizer, schedule, lr, epochs, max_steps,
                       batch_size, gradient_accumulation_steps, warmup_proportion, precision,
                       optimize_on_cpu, output_dir, save_steps, log_steps, keep_checkpoints,
                       eval_batch_size, find_unused_parameters)
        self.train_data, self.eval_data = train_data, eval_data
        self.schedule, self.lr, self.max_steps = schedule, lr, max_steps
        self.epochs = None if epochs is None else int(epochs)
        self.batch_size, self.accum = batch_size, gradient_accumulation_steps
        self.warmup_proportion, self.weight_decay = warmup_proportion, weight_decay
        self.max_grad_norm = max_grad_norm if max_grad_norm and max_grad_norm > 0 else None
        self.precision, self.seed = precision, seed
        self.output_dir = None if output_dir is None else os.fspath(output_dir)
        self.save_steps, self.keep_checkpoints, self.log_steps = save_steps, keep_checkpoints, \
            log_steps
        self.collate_fn, self.compute_metrics = collate_fn, compute_metrics
        self.loss_weight, self.label_names = loss_weight, label_names
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers, self.progress, self.tensorboard = num_workers, progress, tensorboard

        self.strategy = distributed.setup(device)
        self.device = self.strategy.device
        self.model = model if _all_on(model, self.device) else model.to(self.device)
        self.wrapped = self.strategy.wrap(self.model, find_unused_parameters)
        # DDP without find_unused_parameters stalls on a parameter that gets no gradient: the
        # first window checks, before any step, and names them.
        self._check_unused = self.strategy.kind == "ddp" and not find_unused_parameters
        self._replicas = self.strategy.n_gpu if self.strategy.kind == "dp" else 1
        self._named_params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.offload = (HostMasterWeights([p for _, p in self._named_params])
                        if optimize_on_cpu else None)
        self.scaler = (torch.amp.GradScaler(self.device.type) if precision == "fp16" else None)
        self.global_step, self.epoch, self.micro_in_epoch = 0, 0, 0
        self._loss_total = torch.zeros((), dtype=torch.float64, device=self.device)
        self._loss_interval = torch.zeros((), dtype=torch.float64, device=self.device)
        self._windows_total, self._windows_interval = 0, 0
        self._grad_norm, self._last_lr = None, None
        self.optimizer, self.scheduler = self._build_optimizer(optimizer)
        self._writer = None
        # Computed once, not per step: what clipping sees, and which gradients zero_grad clears.
        self._clip_params = (self.offload.masters if self.offload is not None
                             else [p for _, p in self._named_params])
        self._grads_to_clear = self._gradient_holders()

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _validate(model, train_data, eval_data, optimizer, schedule, lr, epochs, max_steps,
                  batch_size, accum, warmup, precision, optimize_on_cpu, output_dir, save_steps,
                  log_steps, keep_checkpoints, eval_batch_size, find_unused_parameters):
        def fail(message):
            raise TrainerError(message)
        if not isinstance(model, nn.Module):
            fail(f"model is a {type(model).__name__}, not an nn.Module: pass the model itself")
        for name, data in (("train_data", train_data), ("eval_data", eval_data)):
            if data is not None and not _is_map_dataset(data):
                fail(f"{name} is a {type(data).__name__}: pass a map-style dataset (with __len__ "
                     "and __getitem__, e.g. TensorDataset), not a DataLoader or an iterable: "
                     "the Trainer builds the loader itself (sampler, shards, resume)")
            if data is not None and len(data) == 0:
                fail(f"{name} is empty: pass a dataset with at least one example")
        if train_data is not None and epochs is None and max_steps is None:
            fail("the length of training is not set: pass epochs=N or max_steps=N")
        if epochs is not None and (epochs <= 0 or float(epochs) != int(epochs)):
            fail(f"epochs={epochs!r}: use a whole number >= 1 (or max_steps for a fraction)")
        if max_steps is not None and (not isinstance(max_steps, int) or max_steps < 1):
            fail(f"max_steps={max_steps!r}: use an integer >= 1")
        for name, value in (("batch_size", batch_size), ("gradient_accumulation_steps", accum),
                            ("log_steps", log_steps)):
            if not isinstance(value, int) or value < 1:
                fail(f"{name}={value!r}: use an integer >= 1")
        for name, value in (("save_steps", save_steps), ("keep_checkpoints", keep_checkpoints),
                            ("eval_batch_size", eval_batch_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                fail(f"{name}={value!r}: use an integer >= 1, or None")
        if not lr > 0:
            fail(f"lr={lr!r}: the learning rate must be > 0 (BERT fine-tuning uses 2e-5 to 5e-5)")
        if not 0.0 <= warmup < 1.0:
            fail(f"warmup_proportion={warmup!r}: use a fraction in [0, 1), e.g. 0.1")
        if schedule not in (None, "none", "warmup_linear", "warmup_cosine", "warmup_constant"):
            fail(f"schedule={schedule!r}: use 'warmup_linear', 'warmup_cosine', "
                 "'warmup_constant' or 'none'")
        if precision not in PRECISIONS:
            fail(f"precision={precision!r}: use one of {', '.join(map(repr, PRECISIONS))}")
        if isinstance(optimizer, str) and optimizer not in ("adamw", "bertadam"):
            fail(f"optimizer={optimizer!r}: use 'adamw', 'bertadam', a callable "
                 "param_groups -> Optimizer, or an Optimizer instance")
        if optimize_on_cpu and isinstance(optimizer, torch.optim.Optimizer):
            fail("optimize_on_cpu=True builds its optimizer over host copies of the weights: "
                 "pass optimizer='adamw', 'bertadam' or a callable param_groups -> Optimizer "
                 "instead of an Optimizer instance")
        if (precision == "fp16" and not optimize_on_cpu and any(
                p.dtype == torch.float16 for p in model.parameters())):
            fail("precision='fp16' with fp16 weights cannot be unscaled and stepped safely: keep "
                 "the weights in fp32 (autocast does the fp16 math), or set optimize_on_cpu=True "
                 "for fp32 master weights")
        if output_dir is not None and os.path.exists(output_dir) and \
                not os.path.isdir(output_dir):
            fail(f"output_dir {os.fspath(output_dir)!r} is a file; pass a folder (it is "
                 "created if missing)")
        if save_steps is not None and output_dir is None:
            fail("save_steps is set but output_dir is not: pass output_dir=... for checkpoints")
        if not isinstance(find_unused_parameters, bool):
            fail(f"find_unused_parameters={find_unused_parameters!r}: use True (the model has "
                 "parameters that forward does not use) or False")

    # ------------------------------------------------------------------ optimizer
    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (the last window may be partial)."""
        return math.ceil(self._micro_batches_per_epoch() / self.accum)

    @property
    def total_steps(self) -> int:
        """The schedule's t_total: max_steps, else epochs x steps per epoch."""
        if self.max_steps is not None:
            return self.max_steps
        return self.epochs * self.steps_per_epoch

    def _micro_batch_size(self) -> int:
        return self.batch_size * self.strategy.devices_per_process

    def _micro_batches_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.train_data) / self.strategy.world_size)  # DistributedSampler
        return math.ceil(per_rank / self._micro_batch_size())

    def _build_optimizer(self, choice):
        if self.train_data is None and not isinstance(choice, torch.optim.Optimizer):
            return None, None
        t_total = self.total_steps if self.train_data is not None else -1
        groups = default_parameter_groups(self.model, self.weight_decay)
        if self.offload is not None:
            groups = self.offload.groups_over_masters(groups)
        if choice == "bertadam":
            opt = BertAdam(groups, lr=self.lr, warmup=self.warmup_proportion, t_total=t_total,
                           schedule=self.schedule, weight_decay=self.weight_decay,
                           max_grad_norm=self.max_grad_norm or -1)
        elif choice is None or choice == "adamw":
            fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                        for g in groups for p in g["params"])
            opt = torch.optim.AdamW(groups, lr=self.lr, eps=1e-6, fused=fused or None)
        elif isinstance(choice, torch.optim.Optimizer):
            opt = choice
            owned = {id(p) for p in self.model.parameters()}
            if any(id(p) not in owned for g in opt.param_groups for p in g["params"]):
                raise TrainerError("the optimizer holds parameters that are not the model's: "
                                   "build it over model.parameters() (after moving the model), "
                                   "or pass a callable param_groups -> Optimizer")
        elif callable(choice):
            opt = choice(groups)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TrainerError(f"the optimizer callable returned {type(opt).__name__}: it "
                                   "must return a torch.optim.Optimizer built over the groups")
        else:
            raise TrainerError(f"optimizer={choice!r}: use 'adamw', 'bertadam', a callable "
                               "param_groups -> Optimizer, or an Optimizer instance")
        if isinstance(opt, BertAdam):
            return opt, None  # schedule inside
        return opt, get_scheduler(opt, self.schedule, self.warmup_proportion, t_total)

    def current_lr(self) -> float:
        """Learning rate of the first parameter group for the next optimizer step."""
        group = self.optimizer.param_groups[0]
        if isinstance(self.optimizer, BertAdam):
            return group["lr"] * self.optimizer._schedule(group)(self.global_step)
        return group["lr"]

    def _gradient_holders(self) -> list[torch.Tensor] | None:
        """Every tensor whose .grad a step leaves behind: the optimizer's parameters, plus
        trainable model parameters it does not hold (an Optimizer over a subset). With
        optimize_on_cpu the device gradients are already released by collect_grads(). None: the
        optimizer overrides zero_grad, so call it."""
        if self.optimizer is None or \
                type(self.optimizer).zero_grad is not torch.optim.Optimizer.zero_grad:
            return None
        held = [p for g in self.optimizer.param_groups for p in g["params"]]
        if self.offload is None:
            ids = {id(p) for p in held}
            held += [p for _, p in self._named_params if id(p) not in ids]
        return held

    # ------------------------------------------------------------------ data
    def _train_loader(self, epoch: int, skip_micro: int) -> DataLoader:
        sampler = DistributedSampler(self.train_data, num_replicas=self.strategy.world_size,
                                     rank=self.strategy.rank, shuffle=True, seed=self.seed,
                                     drop_last=False)
        sampler.set_epoch(epoch)  # a new order each epoch, the same on every rank
        if skip_micro:
            sampler = _SkipSampler(sampler, skip_micro * self._micro_batch_size())
        generator = torch.Generator()  # worker seeds, kept off the global RNG (exact resume)
        generator.manual_seed(self.seed * 1_000_003 + epoch)
        return DataLoader(self.train_data, batch_size=self._micro_batch_size(), sampler=sampler,
                          collate_fn=self.collate_fn, num_workers=self.num_workers,
                          pin_memory=self.device.type == "cuda", generator=generator,
                          drop_last=False)

    def _eval_loader(self, data) -> DataLoader:
        shard = Subset(data, self.strategy.eval_indices(len(data)))
        return DataLoader(shard, batch_size=self.eval_batch_size * self.strategy.devices_per_process,
                          sampler=SequentialSampler(shard), collate_fn=self.collate_fn,
                          num_workers=self.num_workers, pin_memory=self.device.type == "cuda")

    def _autocast(self):
        dtype = PRECISIONS[self.precision]
        if dtype is None and not torch.is_autocast_enabled(self.device.type):
            return _NO_CONTEXT  # fp32: nothing to switch (torch.autocast costs ~10 us a step)
        return torch.autocast(self.device.type, dtype=dtype or torch.float32,
                              enabled=dtype is not None)

    def _weight(self, batch) -> float:
        return float((self.loss_weight or count_examples)(batch))

    # ------------------------------------------------------------------ training
    def train(self, resume: bool | str | os.PathLike = "auto") -> dict:
        """Train for ``epochs`` (or ``max_steps``) and return ``{"global_step", "train_loss",
        "epoch"}`` (train_loss: the mean window loss over all optimizer steps, resumed ones
        included).

        resume: "auto" continues from the newest checkpoint in output_dir when there is one;
        True requires one; False starts afresh; a path names a checkpoint folder.
        """
        if self.train_data is None:
            raise TrainerError("train() needs data: pass train_data=... to the Trainer")
        checkpoint = self._resume_target(resume)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
            self._truncate_metrics()
        else:
            self._seed_everything()
        self.model.train()
        bar = self._progress_bar()
        per_epoch = self._micro_batches_per_epoch()
        start = time.perf_counter()
        while not self._finished():
            loader = self._train_loader(self.epoch, self.micro_in_epoch)
            batches = iter(loader)
            while self.micro_in_epoch < per_epoch and not self._finished():
                size = min(self.accum, per_epoch - self.micro_in_epoch)
                window = [next(batches) for _ in range(size)]
                stepped = self._train_window(window)
                self.micro_in_epoch += size
                if not stepped:
                    continue
                if bar is not None:
                    bar.update(1)
                if self.global_step % self.log_steps == 0:
                    self._log_training(time.perf_counter() - start)
                if self.save_steps and self.global_step % self.save_steps == 0:
                    self.save_checkpoint()
            if self.micro_in_epoch >= per_epoch:
                self.epoch, self.micro_in_epoch = self.epoch + 1, 0
                if self.eval_data is not None:
                    self._log(dict(self.evaluate(), step=self.global_step, epoch=self.epoch))
        if self._windows_interval:
            self._log_training(time.perf_counter() - start)
        if bar is not None:
            bar.close()
        if self.output_dir is not None:
            self.save_checkpoint()
            if self.strategy.is_main:
                self._plot()
        total = self.strategy.all_reduce_sum(self._loss_total.clone())
        return {"global_step": self.global_step, "epoch": self.epoch,
                "train_loss": float(total) / max(self._windows_total, 1)}

    def _finished(self) -> bool:
        if self.max_steps is not None:
            return self.global_step >= self.max_steps
        return self.epoch >= self.epochs

    def _train_window(self, window: list) -> bool:
        """Forward / backward each micro-batch of one accumulation window, then one optimizer
        step. Each micro-batch's mean loss is scaled by its share of the window's items on all
        ranks (times world size, since DDP averages over ranks), so the summed gradient is that
        of the mean loss over the whole window: the same as one big batch."""
        weights = [self._weight(b) for b in window]
        world = self.strategy.world_size
        if self.loss_weight is None:
            total = sum(weights) * world  # DistributedSampler gives every rank equal batches
        elif world == 1:
            total = sum(weights)
        else:
            count = torch.tensor([sum(weights)], dtype=torch.float64, device=self.device)
            total = float(self.strategy.all_reduce_sum(count))
        window_loss = None  # float64 on the device: no sync per step
        last = len(window) - 1
        for i, (batch, weight) in enumerate(zip(window, weights)):
            final = i == last
            batch = _to_device(batch, self.device)
            if self.offload is not None:
                self.offload.capture(final and self.strategy.kind != "ddp")
            with self.strategy.no_sync(self.wrapped, skip=not final):
                with self._autocast():
                    loss = _loss_of(self._forward(batch), self._replicas)
                share = weight / total if total > 0 else 0.0
                if share == 0.0:
                    loss = torch.nan_to_num(loss)  # no labelled item: contributes nothing
                part = loss.detach().double()  # this rank's part of the window loss
                if share != 1.0:
                    part = part * share
                window_loss = part if window_loss is None else window_loss + part
                factor = share * world
                if factor != 1.0:  # exactly 1.0: one process, one micro-batch, full weight
                    loss = loss * factor
                if self.scaler is not None:
                    loss = self.scaler.scale(loss)
                loss.backward()
        if self._check_unused:
            self._check_unused = False
            self._raise_on_unused_parameters()
        stepped = self._optimizer_step()
        if stepped:
            self._loss_interval += window_loss
        return stepped

    def _forward(self, batch):
        try:
            return _call(self.wrapped, batch)
        except RuntimeError as error:
            if self.strategy.kind == "ddp" and any(m in str(error) for m in _DDP_UNUSED):
                raise TrainerError(
                    "a parameter got no gradient in an earlier step (forward did not use it "
                    "for that batch), so DDP could not reduce the gradients: pass "
                    "find_unused_parameters=True to the Trainer") from error
            raise

    def _raise_on_unused_parameters(self) -> None:
        """Under DDP without find_unused_parameters, a trainable parameter with no gradient
        after the first window means DDP's reduction never finished: say so before a step."""
        ignored = getattr(self.wrapped, "parameters_to_ignore", ())
        unused = [n for n, p in self._named_params if p.grad is None and n not in ignored]
        if unused:
            shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more"
                                             if len(unused) > 5 else "")
            raise TrainerError(
                f"parameters {shown} got no gradient (forward did not use them), so DDP cannot "
                "reduce the gradients: pass find_unused_parameters=True to the Trainer, or set "
                "requires_grad=False on parameters that are never used")

    def _optimizer_step(self) -> bool:
        """Unscale (fp16), clip, step, then the schedule; False when fp16 overflowed and the
        step was skipped (parameters, schedule and global_step held)."""
        if self.offload is not None:
            self.offload.capture(False)
            self.offload.collect_grads()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.max_grad_norm is not None and not isinstance(self.optimizer, BertAdam):
            self._grad_norm = torch.nn.utils.clip_grad_norm_(self._clip_params,
                                                             self.max_grad_norm)
        self._last_lr = self.current_lr()
        stepped = True
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            stepped = self.scaler.get_scale() >= scale  # a lower scale: inf/nan, step skipped
        else:
            self.optimizer.step()
        if self._grads_to_clear is None:
            self.optimizer.zero_grad(set_to_none=True)
            self.model.zero_grad(set_to_none=True)
        else:  # what both zero_grad calls did, without their per-call machinery
            for p in self._grads_to_clear:
                p.grad = None
        if not stepped:
            return False
        if self.offload is not None:
            self.offload.push()
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_step += 1
        self._windows_interval += 1
        return True

    # ------------------------------------------------------------------ evaluation
    def _labels_of(self, batch):
        """(batch without labels, labels or None)."""
        if isinstance(batch, Mapping):
            keys = [k for k in (self.label_names or LABEL_NAMES) if k in batch]
            if not keys:
                return batch, None
            rest = {k: v for k, v in batch.items() if k not in keys}
            labels = tuple(batch[k] for k in keys)
            return rest, labels[0] if len(labels) == 1 else labels
        if isinstance(batch, (tuple, list)):
            n = len(batch)
            positions = sorted({p % n for p in (self.label_names or (-1,))})
            rest = type(batch)(v for i, v in enumerate(batch) if i not in positions)
            labels = tuple(batch[p] for p in positions)
            return rest, labels[0] if len(labels) == 1 else labels
        raise TrainerError("evaluate() needs batches that are dicts or tuples holding labels: "
                           "use predict() for unlabelled data")

    @torch.no_grad()
    def evaluate(self, data=None) -> dict:
        """Loss and metrics on ``data`` (default: eval_data), each example seen once over all
        ranks; every rank returns the same dict: ``{"eval_loss": mean loss weighted by
        loss_weight, **compute_metrics(predictions, labels)}``.

        predictions: the model's outputs without labels in dataset order, as float32 NumPy
        arrays (one array, or a tuple of arrays when forward returns several tensors); labels:
        the label field(s) likewise. If forward with labels returns only the loss (0.6.2 heads),
        a second forward without labels gives the predictions (only when compute_metrics is set).
        """
        data = self.eval_data if data is None else data
        if data is None:
            raise TrainerError("evaluate() has no data: pass eval_data=... to the Trainer or "
                               "evaluate(dataset)")
        if not _is_map_dataset(data):
            raise TrainerError(f"evaluate() got a {type(data).__name__}: pass a map-style dataset")
        was_training = self.model.training
        self.wrapped.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        weight_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        preds, labels = [], []
        for batch in self._eval_loader(data):
            batch = _to_device(batch, self.device)
            weight = self._weight(batch)
            with self._autocast():
                output = _call(self.wrapped, batch)
                loss = _loss_of(output, self._replicas)
                if self.compute_metrics is not None:
                    rest, label = self._labels_of(batch)
                    if isinstance(output, (tuple, list)):
                        pred = _predictions_of(output[1:])  # (loss, *predictions)
                    elif isinstance(output, Mapping):
                        pred = _predictions_of(output)
                    else:
                        pred = _predictions_of(_call(self.wrapped, rest))
                    preds.append(_detach(pred))
                    labels.append(_detach(label))
            if weight > 0:
                loss_sum += loss.double() * weight
                weight_sum += weight
        self.wrapped.train(was_training)
        self.strategy.all_reduce_sum(loss_sum)
        self.strategy.all_reduce_sum(weight_sum)
        result = {"eval_loss": float(loss_sum / weight_sum) if weight_sum > 0 else float("nan")}
        if self.compute_metrics is not None:
            p = _to_numpy(self._gather(preds))
            y = _to_numpy(self._gather(labels))
            metrics = self.compute_metrics(p, y)
            if not isinstance(metrics, Mapping):
                raise TrainerError(f"compute_metrics returned {type(metrics).__name__}: it must "
                                   "return a dict of metric name -> number")
            result.update(metrics)
        return result

    @torch.no_grad()
    def predict(self, data):
        """The model's outputs on an unlabelled dataset, in dataset order, gathered from all
        ranks: a float32 CPU tensor ``[len(data), ...]``, or a tuple of them when forward returns
        several tensors. Label keys in dict batches (see label_names) are dropped first."""
        if not _is_map_dataset(data):
            raise TrainerError(f"predict() got a {type(data).__name__}: pass a map-style dataset")
        was_training = self.model.training
        self.wrapped.eval()
        outputs = []
        for batch in self._eval_loader(data):
            batch = _to_device(batch, self.device)
            if isinstance(batch, Mapping):
                batch = {k: v for k, v in batch.items()
                         if k not in (self.label_names or LABEL_NAMES)}
            with self._autocast():
                outputs.append(_detach(_predictions_of(_call(self.wrapped, batch))))
        self.wrapped.train(was_training)
        return self._gather(outputs)

    def _gather(self, parts: list):
        """Per-batch outputs (tensor or tuple of tensors) -> the whole dataset in order."""
        if isinstance(parts[0], tuple):
            return tuple(self._gather([p[i] for p in parts]) for i in range(len(parts[0])))
        try:
            local = torch.cat(parts)
        except RuntimeError as error:
            shapes = sorted({tuple(p.shape[1:]) for p in parts})
            raise TrainerError(f"outputs of different batches have different shapes {shapes}: "
                               "pad every example to the same length (e.g. max_seq_length) so "
                               "they can be concatenated") from error
        comm = self.device if self.strategy.kind == "ddp" else local.device
        gathered = self.strategy.all_gather_rows(local.to(comm))
        return distributed.interleave([g.cpu() for g in gathered])

    # ------------------------------------------------------------------ logging
    def _progress_bar(self):
        if not (self.progress and self.strategy.is_main) or os.environ.get(
                "BERT_HUB_DISABLE_PROGRESS"):
            return None
        from tqdm.auto import tqdm
        return tqdm(total=self.total_steps, initial=self.global_step, desc="train", unit="step")

    def _log_training(self, elapsed: float) -> None:
        interval = self.strategy.all_reduce_sum(self._loss_interval.clone())
        windows = self._windows_interval
        self._loss_total += self._loss_interval
        self._windows_total += windows
        self._loss_interval.zero_()
        self._windows_interval = 0
        record = {"step": self.global_step,
                  "epoch": self.epoch + self.micro_in_epoch / self._micro_batches_per_epoch(),
                  "loss": float(interval) / max(windows, 1), "lr": self._last_lr,
                  "elapsed_s": round(elapsed, 3)}
        if self._grad_norm is not None:
            record["grad_norm"] = float(self._grad_norm)
        if self.scaler is not None:
            record["loss_scale"] = self.scaler.get_scale()
        self._log(record)

    def _log(self, record: dict) -> None:
        if not self.strategy.is_main:
            return
        logger.info("%s", " ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in record.items()))
        if self.output_dir is None:
            return
        os.makedirs(self.output_dir, exist_ok=True)
        with open(os.path.join(self.output_dir, METRICS_FILE), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.tensorboard:
            self._tensorboard(record)

    def _tensorboard(self, record: dict) -> None:
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as error:
                raise TrainerError("tensorboard=True needs the tensorboard package: "
                                   "pip install tensorboard, or set tensorboard=False") from error
            self._writer = SummaryWriter(os.path.join(self.output_dir, "runs"))
        for key, value in record.items():
            if key not in ("step", "epoch") and isinstance(value, (int, float)):
                self._writer.add_scalar(key, value, record["step"])
        self._writer.flush()

    def _plot(self) -> None:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            logger.info("matplotlib is not installed: no %s (pip install matplotlib for it)",
                        PLOT_FILE)
            return
        rows = [r for r in _read_metrics(self.output_dir) if "loss" in r]
        if not rows:
            return
        fig, (ax_loss, ax_lr) = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
        ax_loss.plot([r["step"] for r in rows], [r["loss"] for r in rows])
        ax_loss.set_ylabel("training loss")
        ax_lr.plot([r["step"] for r in rows], [r["lr"] for r in rows])
        ax_lr.set_ylabel("learning rate")
        ax_lr.set_xlabel("optimizer step")
        fig.tight_layout()
        fig.savefig(os.path.join(self.output_dir, PLOT_FILE))
        plt.close(fig)

    # ------------------------------------------------------------------ checkpoints
    def _seed_everything(self) -> None:
        seed = self.seed + self.strategy.rank
        random.seed(seed)
        np.random.seed(seed)
        if self.device.type == "cpu" and not torch.cuda.is_available():
            # what torch.manual_seed does here, without queueing seeds for absent devices
            torch.default_generator.manual_seed(seed)
        else:
            torch.manual_seed(seed)  # also every CUDA device

    def save_checkpoint(self, path: str | os.PathLike | None = None) -> str:
        """Write ``checkpoint-<global_step>`` in output_dir (or ``path``) atomically and return
        its path: model.safetensors (the fp32 master weights with optimize_on_cpu),
        optimizer.pt (optimizer, scheduler, scaler), rng_state_<rank>.pt (per rank) and
        trainer_state.json (step, epoch, position in the epoch, loss sums)."""
        if path is None:
            if self.output_dir is None:
                raise TrainerError("save_checkpoint() has nowhere to write: pass output_dir=... "
                                   "to the Trainer or save_checkpoint(path)")
            path = os.path.join(self.output_dir, f"checkpoint-{self.global_step}")
        path = os.fspath(path)
        tmp = path + ".tmp"
        loss_total = self.strategy.all_reduce_sum(self._loss_total.clone())
        loss_interval = self.strategy.all_reduce_sum(self._loss_interval.clone())
        if self.strategy.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
        self.strategy.barrier()
        torch.save(_rng_state(), os.path.join(tmp, f"rng_state_{self.strategy.rank}.pt"))
        if self.strategy.is_main:
            self._save_weights(os.path.join(tmp, MODEL_FILE))
            torch.save({"optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                        "scaler": self.scaler.state_dict() if self.scaler else None},
                       os.path.join(tmp, OPTIMIZER_FILE))
        self.strategy.barrier()
        if self.strategy.is_main:
            state = {"global_step": self.global_step, "epoch": self.epoch,
                     "micro_in_epoch": self.micro_in_epoch,
                     "world_size": self.strategy.world_size, "batch_size": self.batch_size,
                     "gradient_accumulation_steps": self.accum, "seed": self.seed,
                     "loss_total": float(loss_total), "windows_total": self._windows_total,
                     "loss_interval": float(loss_interval),
                     "windows_interval": self._windows_interval,
                     "last_lr": getattr(self, "_last_lr", None)}
            with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1)
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
            self._prune_checkpoints()
        self.strategy.barrier()
        return path

    def _save_weights(self, file: str) -> None:
        tensors, aliases, seen = {}, {}, {}
        state = self.model.state_dict()
        if self.offload is not None:  # the fp32 masters, not the (maybe bf16) device copies
            master_of = {n: m.detach() for (n, _), m in zip(self._named_params,
                                                             self.offload.masters)}
            state = {k: master_of.get(k, v) for k, v in state.items()}
        for key, tensor in state.items():
            ptr = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape)
            if ptr in seen:  # tied weights (e.g. MLM decoder = word embeddings): stored once
                aliases[key] = seen[ptr]
                continue
            seen[ptr] = key
            tensors[key] = tensor.detach().cpu().contiguous()
        save_file(tensors, file, metadata={"format": "pt", "aliases": json.dumps(aliases)})

    def _load_weights(self, file: str) -> None:
        from safetensors import safe_open
        with safe_open(file, framework="pt") as f:
            aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
        tensors = load_file(file)
        for alias, key in aliases.items():
            tensors[alias] = tensors[key]
        self.model.load_state_dict(tensors, strict=True)
        if self.offload is not None:
            with torch.no_grad():
                for (name, _), master in zip(self._named_params, self.offload.masters):
                    master.copy_(tensors[name])

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore everything :meth:`save_checkpoint` wrote; the next train() continues from it
        exactly (same batches, same RNG draws)."""
        path = os.fspath(path)
        state_file = os.path.join(path, STATE_FILE)
        if not os.path.isfile(state_file):
            raise TrainerError(f"{path} is not a complete checkpoint (no {STATE_FILE}): pass a "
                               "checkpoint-<step> folder written by save_checkpoint()")
        with open(state_file, encoding="utf-8") as f:
            state = json.load(f)
        for key, mine in (("world_size", self.strategy.world_size),
                          ("batch_size", self.batch_size),
                          ("gradient_accumulation_steps", self.accum), ("seed", self.seed)):
            if state[key] != mine:
                raise TrainerError(
                    f"checkpoint {path} was written with {key}={state[key]}, this run has "
                    f"{key}={mine}: resume with the same {key} (the position in the epoch depends "
                    "on it), or start afresh with train(resume=False) / a new output_dir")
        self._load_weights(os.path.join(path, MODEL_FILE))
        optimizer_file = os.path.join(path, OPTIMIZER_FILE)
        saved = torch.load(optimizer_file, map_location="cpu", weights_only=True)
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler is not None and saved["scaler"] is not None:
            self.scaler.load_state_dict(saved["scaler"])
        rng_file = os.path.join(path, f"rng_state_{self.strategy.rank}.pt")
        _set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=True))
        self.global_step, self.epoch = state["global_step"], state["epoch"]
        self.micro_in_epoch = state["micro_in_epoch"]
        main = self.strategy.is_main  # the restored sums live on rank 0; all_reduce adds zeros
        self._loss_total.fill_(state["loss_total"] if main else 0.0)
        self._loss_interval.fill_(state["loss_interval"] if main else 0.0)
        self._windows_total, self._windows_interval = (state["windows_total"],
                                                       state["windows_interval"])
        self._last_lr = state["last_lr"]

    def checkpoints(self) -> list[str]:
        """Complete checkpoints in output_dir, oldest first."""
        if self.output_dir is None or not os.path.isdir(self.output_dir):
            return []
        found = []
        for name in os.listdir(self.output_dir):
            match = CHECKPOINT_RE.match(name)
            full = os.path.join(self.output_dir, name)
            if match and os.path.isfile(os.path.join(full, STATE_FILE)):
                found.append((int(match.group(1)), full))
        return [p for _, p in sorted(found)]

    def _prune_checkpoints(self) -> None:
        if self.keep_checkpoints is None:
            return
        for old in self.checkpoints()[:-self.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)

    def _resume_target(self, resume) -> str | None:
        if resume is False or resume is None:
            return None
        if resume not in (True, "auto"):
            return os.fspath(resume)
        found = self.checkpoints()
        if found:
            logger.info("resuming from %s", found[-1])
            return found[-1]
        if resume is True:
            raise TrainerError(f"resume=True but output_dir {self.output_dir!r} holds no "
                               "checkpoint: pass resume='auto' to start afresh when there is none")
        return None

    def _truncate_metrics(self) -> None:
        """Drop metric lines written after the checkpoint (they will be written again)."""
        if not self.strategy.is_main or self.output_dir is None:
            return
        file = os.path.join(self.output_dir, METRICS_FILE)
        if not os.path.isfile(file):
            return
        keep = [r for r in _read_metrics(self.output_dir) if r.get("step", 0) <= self.global_step]
        with open(file, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in keep)


def _detach(value):
    if isinstance(value, tuple):
        return tuple(_detach(v) for v in value)
    if not isinstance(value, torch.Tensor):
        raise TrainerError(f"the model returned a {type(value).__name__} as predictions: "
                           "forward without labels must return a tensor or a tuple of tensors")
    value = value.detach()
    return (value.float() if value.is_floating_point() else value).cpu()


def _to_numpy(value):
    if isinstance(value, tuple):
        return tuple(_to_numpy(v) for v in value)
    return value.numpy()


def _read_metrics(output_dir: str) -> list[dict]:
    file = os.path.join(output_dir, METRICS_FILE)
    if not os.path.isfile(file):
        return []
    with open(file, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


__all__ = ["Schedule", "Trainer", "count_examples", "count_labels"]
