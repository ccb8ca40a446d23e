"""The Trainer: fine-tunes any ``nn.Module`` with the four techniques of the 2018 BERT scripts
(gradient accumulation, several devices, a CPU-offloaded optimizer, mixed precision), plus exact
checkpoint / resume. See docs/trainer.md for the contract in full, and
:mod:`bert_hub.training.batches` for what forward must accept and return.

This module is the loop; it calls parts that each own their branches (the loop never asks
"fp16 or bf16?", "offloaded or not?", "DDP or not?"):

- :mod:`bert_hub.training.arguments`: ``TrainerArgs``, the settings, validated once;
- :mod:`bert_hub.distributed`: the strategy (one device, DataParallel, DDP): wrapping,
  gradient sync, collectives;
- :mod:`bert_hub.training.precision`: autocast, loss scaling, skipped fp16 steps;
- :mod:`bert_hub.training.optimizer_step`: the optimizer and schedule, clipping, CPU offload;
- :mod:`bert_hub.training.checkpointing`: checkpoint folders, weights, RNG state, resume;
- :mod:`bert_hub.training.logging_sinks`: metrics.jsonl, TensorBoard, the plot, the bar;
- :mod:`bert_hub.training.data`: the loaders (shards, epoch order, mid-epoch resume).
"""
from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Mapping
from typing import Any, Callable

import torch
from torch import nn

from bert_hub import distributed
from bert_hub.errors import TrainerError
from bert_hub.optimization import Schedule
from bert_hub.training import checkpointing
from bert_hub.training.arguments import TrainerArgs, check_inputs
from bert_hub.training.batches import (
    call,
    count_examples,
    count_labels,
    detach,
    loss_of,
    predictions_of,
    split_labels,
    to_device,
    to_numpy,
    without_label_keys,
)
from bert_hub.training.data import eval_loader, gather_in_order, is_map_dataset, train_loader
from bert_hub.training.logging_sinks import MetricsLog, progress_bar
from bert_hub.training.optimizer_step import (
    OffloadedOptimizerStep,
    OptimizerStep,
    build_optimizer,
)
from bert_hub.training.precision import precision_for


def _all_on(model: nn.Module, device: torch.device) -> bool:
    """Whether every parameter and buffer is on ``device`` already (then ``.to`` is a no-op
    that still walks every module)."""
    return all(t.device == device for t in itertools.chain(model.parameters(), model.buffers()))


class Trainer:
    """Trains any ``nn.Module``; see :mod:`bert_hub.training.batches` for what forward must
    accept and return.

    Args:
        model: the module (moved to the device by the Trainer; its dtype is kept).
        train_data: a map-style dataset (``__len__`` + ``__getitem__``, e.g. ``TensorDataset``
            or a list of dicts); the Trainer builds the loader (sampler, shards, resume).
        eval_data: a map-style dataset with labels, used by :meth:`evaluate` and at the end of
            each epoch.
        args: a :class:`TrainerArgs` (the settings); keyword settings replace its fields.
        optimizer: None or "adamw" (``torch.optim.AdamW``, eps 1e-6, fused where available, with
            the schedule as a ``LambdaLR``), "bertadam" (0.6.2's BertAdam: schedule and
            per-tensor clipping inside; no global clipping), a callable
            ``param_groups -> Optimizer`` (the groups have no decay for biases and LayerNorm
            weights), or an ``Optimizer`` over the model's parameters.
        collate_fn: turns a list of examples into a batch (default: torch's default_collate).
        compute_metrics: ``(predictions, labels) -> dict`` on NumPy arrays (see evaluate()).
        loss_weight: ``batch -> number of items the loss averages over``; each micro-batch's
            mean loss is weighted by it over the whole window on all ranks (default: examples;
            token-level losses: :func:`count_labels`).
        **settings: :class:`TrainerArgs` fields by name (``lr``, ``epochs``, ``max_steps``,
            ``batch_size``, ``gradient_accumulation_steps``, ``precision``,
            ``optimize_on_cpu``, ``output_dir``, ...), each documented there.
    """

    def __init__(self, model: nn.Module, train_data=None, *, eval_data=None,
                 args: TrainerArgs | None = None, optimizer=None, collate_fn=None,
                 compute_metrics: Callable[..., dict] | None = None,
                 loss_weight: Callable[[Any], float] | None = None, **settings):
        self.args = args = TrainerArgs.from_keywords(args, settings)
        check_inputs(args, model, train_data, eval_data, optimizer)
        self.train_data, self.eval_data = train_data, eval_data
        self.collate_fn, self.compute_metrics = collate_fn, compute_metrics
        self.loss_weight = loss_weight or count_examples

        self.strategy = distributed.setup(args.device, timeout=args.ddp_timeout)
        self.device = self.strategy.device
        self.model = model if _all_on(model, self.device) else model.to(self.device)
        self.strategy.wrap(self.model, args.find_unused_parameters)
        self.precision = precision_for(args.precision, self.device,
                                       host_step=args.optimize_on_cpu)
        named_params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        self.stepper = (OffloadedOptimizerStep(named_params, self.precision,
                                               self.strategy.gradients_final_in_hooks)
                        if args.optimize_on_cpu else OptimizerStep(named_params, self.precision))
        if train_data is not None or isinstance(optimizer, torch.optim.Optimizer):
            t_total = self.total_steps if train_data is not None else -1
            self.stepper.attach(*build_optimizer(
                optimizer, self.model, self.stepper, lr=args.lr, schedule=args.schedule,
                warmup=args.warmup_proportion, weight_decay=args.weight_decay,
                max_grad_norm=args.max_grad_norm, t_total=t_total), args.max_grad_norm)
        self._named_params = named_params
        self._checkpoints = checkpointing.Checkpoints(args.output_dir, args.keep_checkpoints,
                                                      self.strategy)
        self._metrics = MetricsLog(args.output_dir, args.tensorboard, self.strategy.is_main,
                                   echo=self.strategy.is_local_main)
        # the first window checks, before any step, that every gradient can be reduced
        self._gradients_checked = False
        self.global_step, self.epoch, self.micro_in_epoch = 0, 0, 0
        # float64 loss sums on the device: no sync per step
        self._loss_total = torch.zeros((), dtype=torch.float64, device=self.device)
        self._loss_interval = torch.zeros((), dtype=torch.float64, device=self.device)
        self._windows_total, self._windows_interval = 0, 0
        self._last_lr = None

    # ------------------------------------------------------------------ parts' state
    @property
    def wrapped(self) -> nn.Module:
        """The module the loop calls: DDP or DataParallel around the model, or the model."""
        wrapped = self.strategy.wrapped
        if wrapped is None:
            raise TrainerError("the process group has ended (bert_hub.distributed.shutdown(), "
                               "which also runs at exit), so this Trainer can no longer run: "
                               "create a new Trainer")
        return wrapped

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self.stepper.optimizer

    @property
    def scheduler(self):
        """The schedule as a LambdaLR (None with BertAdam, whose schedule is inside)."""
        return self.stepper.scheduler

    @property
    def scaler(self) -> torch.amp.GradScaler | None:
        """fp16's loss scaler (None in other precisions)."""
        return self.precision.scaler

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps in one epoch (the last window may be partial)."""
        return math.ceil(self._micro_batches_per_epoch() / self.args.gradient_accumulation_steps)

    @property
    def total_steps(self) -> int:
        """The schedule's t_total: max_steps, else epochs x steps per epoch."""
        if self.args.max_steps is not None:
            return self.args.max_steps
        return self.args.epochs * self.steps_per_epoch

    def current_lr(self) -> float:
        """Learning rate of the first parameter group for the next optimizer step."""
        return self.stepper.next_lr(self.global_step)

    # ------------------------------------------------------------------ data
    def _micro_batch_size(self) -> int:
        return self.args.batch_size * self.strategy.devices_per_process

    def _micro_batches_per_epoch(self) -> int:
        per_rank = math.ceil(len(self.train_data) / self.strategy.world_size)  # DistributedSampler
        return math.ceil(per_rank / self._micro_batch_size())

    def _train_loader(self, epoch: int, skip_micro: int):
        return train_loader(self.train_data, self.strategy, batch_size=self._micro_batch_size(),
                            seed=self.args.seed, epoch=epoch,
                            skip=skip_micro * self._micro_batch_size(),
                            collate_fn=self.collate_fn, num_workers=self.args.num_workers)

    def _eval_loader(self, data):
        per_device = self.args.eval_batch_size or self.args.batch_size
        loader = eval_loader(data, self.strategy,
                             batch_size=per_device * self.strategy.devices_per_process,
                             collate_fn=self.collate_fn, num_workers=self.args.num_workers)
        self._eval_sampler = loader.sampler  # length-sorted: gather_in_order restores dataset order
        return loader

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
        checkpoint = self._checkpoints.resume_target(resume)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
            self._metrics.truncate(self.global_step)
        else:  # a new run: nothing of an earlier one in output_dir is continued or mixed in
            self._checkpoints.remove_all()
            self._metrics.reset()
            checkpointing.seed_everything(self.args.seed + self.strategy.rank, self.device)
        self.model.train()
        bar = progress_bar(self.args.progress and self.strategy.is_local_main, self.total_steps,
                           self.global_step)
        per_epoch = self._micro_batches_per_epoch()
        accum, log_steps, save_steps = (self.args.gradient_accumulation_steps,
                                        self.args.log_steps, self.args.save_steps)
        start = time.perf_counter()
        while not self._finished():
            batches = iter(self._train_loader(self.epoch, self.micro_in_epoch))
            while self.micro_in_epoch < per_epoch and not self._finished():
                size = min(accum, per_epoch - self.micro_in_epoch)
                window = [next(batches) for _ in range(size)]
                stepped = self._train_window(window)
                self.micro_in_epoch += size
                if not stepped:
                    continue
                if bar is not None:
                    bar.update(1)
                if self.global_step % log_steps == 0:
                    self._log_training(time.perf_counter() - start)
                if save_steps and self.global_step % save_steps == 0:
                    self.save_checkpoint()
            if self.micro_in_epoch >= per_epoch:
                self.epoch, self.micro_in_epoch = self.epoch + 1, 0
                if self.eval_data is not None:
                    self._metrics.log(dict(self.evaluate(), step=self.global_step,
                                           epoch=self.epoch))
        if self._windows_interval:
            self._log_training(time.perf_counter() - start)
        if bar is not None:
            bar.close()
        if self.args.output_dir is not None:
            self.save_checkpoint()
            self._metrics.finish()
        total = self.strategy.all_reduce_sum(self._loss_total.clone())
        return {"global_step": self.global_step, "epoch": self.epoch,
                "train_loss": float(total) / max(self._windows_total, 1)}

    def _finished(self) -> bool:
        if self.args.max_steps is not None:
            return self.global_step >= self.args.max_steps
        return self.epoch >= self.args.epochs

    def _train_window(self, window: list) -> bool:
        """Forward / backward each micro-batch of one accumulation window, then one optimizer
        step. Each micro-batch's mean loss is scaled by its share of the window's items on all
        ranks (times world size, since DDP averages over ranks), so the summed gradient is that
        of the mean loss over the whole window: the same as one big batch."""
        weights = [float(self.loss_weight(b)) for b in window]
        world = self.strategy.world_size
        if self.loss_weight is count_examples:
            total = sum(weights) * world  # DistributedSampler gives every rank equal batches
        else:
            total = self.strategy.sum_over_ranks(sum(weights))
        window_loss = None  # float64 on the device: no sync per step
        last = len(window) - 1
        replicas = self.strategy.devices_per_process
        for i, (batch, weight) in enumerate(zip(window, weights)):
            final = i == last
            batch = to_device(batch, self.device)
            self.stepper.before_backward(final)
            with self.strategy.no_sync(self.wrapped, skip=not final):
                with self.precision.autocast():
                    loss = loss_of(self._forward(batch), replicas)
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
                self.precision.backward(loss)
        if not self._gradients_checked:
            self._gradients_checked = True
            self.strategy.check_gradients(self.wrapped, self._named_params)
        stepped = self._optimizer_step()
        if stepped:
            self._loss_interval += window_loss
        return stepped

    def _forward(self, batch):
        try:
            return call(self.wrapped, batch)
        except RuntimeError as error:
            explained = self.strategy.explain_forward_error(error)
            if explained is None:
                raise
            raise explained from error

    def _optimizer_step(self) -> bool:
        """Unscale (fp16), clip, step, then the schedule; False when fp16 overflowed and the
        step was skipped (parameters, schedule and global_step held)."""
        self._last_lr = self.current_lr()
        if not self.stepper.step():
            return False
        self.global_step += 1
        self._windows_interval += 1
        return True

    # ------------------------------------------------------------------ evaluation
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
        if not is_map_dataset(data):
            raise TrainerError(f"evaluate() got a {type(data).__name__}: pass a map-style dataset")
        if len(data) == 0:
            raise TrainerError("evaluate() got an empty dataset: pass at least one example")
        was_training = self.model.training
        self.wrapped.eval()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        weight_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        preds, labels = [], []
        for batch in self._eval_loader(data):
            batch = to_device(batch, self.device)
            weight = float(self.loss_weight(batch))
            with self.precision.autocast():
                output = call(self.wrapped, batch)
                loss = loss_of(output, self.strategy.devices_per_process)
                if self.compute_metrics is not None:
                    rest, label = split_labels(batch, self.args.label_names)
                    if isinstance(output, (tuple, list)):
                        pred = predictions_of(output[1:])  # (loss, *predictions)
                    elif isinstance(output, Mapping):
                        pred = predictions_of(output)
                    else:
                        pred = predictions_of(call(self.wrapped, rest))
                    preds.append(detach(pred))
                    labels.append(detach(label))
            if weight > 0:
                loss_sum += loss.double() * weight
                weight_sum += weight
        self.wrapped.train(was_training)
        self.strategy.all_reduce_sum(loss_sum)
        self.strategy.all_reduce_sum(weight_sum)
        result = {"eval_loss": float(loss_sum / weight_sum) if weight_sum > 0 else float("nan")}
        if self.compute_metrics is not None:
            sampler = self._eval_sampler
            metrics = self.compute_metrics(to_numpy(gather_in_order(preds, self.strategy, sampler)),
                                           to_numpy(gather_in_order(labels, self.strategy, sampler)))
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
        if not is_map_dataset(data):
            raise TrainerError(f"predict() got a {type(data).__name__}: pass a map-style dataset")
        if len(data) == 0:
            raise TrainerError("predict() got an empty dataset: pass at least one example")
        was_training = self.model.training
        self.wrapped.eval()
        outputs = []
        for batch in self._eval_loader(data):
            batch = without_label_keys(to_device(batch, self.device), self.args.label_names)
            with self.precision.autocast():
                outputs.append(detach(predictions_of(call(self.wrapped, batch))))
        self.wrapped.train(was_training)
        return gather_in_order(outputs, self.strategy, self._eval_sampler)

    # ------------------------------------------------------------------ logging
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
        if self.stepper.grad_norm is not None:
            record["grad_norm"] = float(self.stepper.grad_norm)
        record.update(self.precision.metrics())
        self._metrics.log(record)

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | os.PathLike | None = None) -> str:
        """Write ``checkpoint-<global_step>`` in output_dir (or ``path``) atomically and return
        its path: model.safetensors (the fp32 master weights with optimize_on_cpu),
        optimizer.pt (optimizer, scheduler, scaler), rng_state_<rank>.pt (per rank),
        trainer_state.json (step, epoch, position in the epoch, loss sums) and, when the model
        has a ``config`` with ``to_json_file`` (bert_hub's models), bert_config.json, so
        ``from_pretrained(checkpoint)`` loads the checkpoint's weights."""
        path = self._checkpoints.path_for(self.global_step) if path is None else os.fspath(path)
        loss_total = self.strategy.all_reduce_sum(self._loss_total.clone())
        loss_interval = self.strategy.all_reduce_sum(self._loss_interval.clone())
        state = {"global_step": self.global_step, "epoch": self.epoch,
                 "micro_in_epoch": self.micro_in_epoch, **self._must_match(),
                 "loss_total": float(loss_total), "windows_total": self._windows_total,
                 "loss_interval": float(loss_interval),
                 "windows_interval": self._windows_interval, "last_lr": self._last_lr}
        return self._checkpoints.save(path, self.stepper.weights(self.model.state_dict()),
                                      self.stepper.state_dict(), state,
                                      config=getattr(self.model, "config", None))

    def _must_match(self) -> dict:
        return {"world_size": self.strategy.world_size, "batch_size": self.args.batch_size,
                "gradient_accumulation_steps": self.args.gradient_accumulation_steps,
                "seed": self.args.seed}

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore everything :meth:`save_checkpoint` wrote; the next train() continues from it
        exactly (same batches, same RNG draws)."""
        weights, training, state = self._checkpoints.load(os.fspath(path), self._must_match(),
                                                          self.model.state_dict())
        self.model.load_state_dict(weights, strict=True)
        self.stepper.load_weights(weights)
        self.stepper.load_state_dict(training)
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
        return self._checkpoints.list()


__all__ = ["Schedule", "Trainer", "TrainerArgs", "count_examples", "count_labels"]
