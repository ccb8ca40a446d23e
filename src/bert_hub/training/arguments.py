"""The Trainer's settings as one typed, frozen object, validated once when built; and the checks
of the objects the Trainer is given (model, datasets, optimizer) against those settings.

Every error is a :class:`~bert_hub.errors.TrainerError` that quotes the value and names the fix.
"""
from __future__ import annotations

import dataclasses
import difflib
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from bert_hub.distributed import DEFAULT_TIMEOUT_S
from bert_hub.errors import InvalidArgumentError, TrainerError
from bert_hub.training.data import is_map_dataset
from bert_hub.training.precision import PRECISIONS

SCHEDULE_NAMES = (None, "none", "warmup_linear", "warmup_cosine", "warmup_constant")
OPTIMIZER_NAMES = ("adamw", "bertadam")


def _fail(message: str):
    raise TrainerError(message)


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


@dataclass(frozen=True)
class TrainerArgs:
    """What to train for and how: numbers, names, paths and switches (the model, the data, the
    optimizer and the callables go to the Trainer itself). ``Trainer(model, data, lr=...)``
    builds one from its keywords; ``Trainer(model, data, args=TrainerArgs(...))`` takes one."""

    # "warmup_linear", "warmup_cosine", "warmup_constant" or "none": the lr multiplier per step
    schedule: str | None = "warmup_linear"
    lr: float = 5e-5  # peak learning rate (BERT fine-tuning: 2e-5 to 5e-5)
    epochs: int | None = None  # length of training in passes over train_data ...
    max_steps: int | None = None  # ... or in optimizer steps (wins when both are set)
    batch_size: int = 32  # examples per micro-batch per device
    gradient_accumulation_steps: int = 1  # micro-batches summed into one optimizer step
    warmup_proportion: float = 0.1  # fraction of the optimizer steps spent warming up
    weight_decay: float = 0.01  # decoupled decay of weights (never biases, LayerNorm weights)
    max_grad_norm: float | None = 1.0  # clip by the global norm; None or <= 0: no clipping
    precision: str = "fp32"  # "fp32", "bf16" (autocast) or "fp16" (autocast + loss scaling)
    optimize_on_cpu: bool = False  # fp32 master weights and optimizer state on the host
    seed: int = 42  # Python / NumPy / torch get seed + rank; the data order gets seed
    output_dir: str | None = None  # checkpoints, metrics.jsonl, the plot; train() resumes here
    save_steps: int | None = None  # a checkpoint every N optimizer steps (and at the end)
    keep_checkpoints: int | None = 2  # newest checkpoints kept (None: all)
    log_steps: int = 50  # a metrics line every N optimizer steps
    label_names: tuple[str | int, ...] | None = None  # batch keys / positions holding labels
    eval_batch_size: int | None = None  # per device; None: batch_size
    device: str | torch.device | None = None  # None: cuda if available (torchrun: LOCAL_RANK)
    num_workers: int = 0  # DataLoader worker processes
    progress: bool = True  # a tqdm bar on rank 0 (unless BERT_HUB_DISABLE_PROGRESS=1)
    tensorboard: bool = False  # also TensorBoard events in output_dir/runs
    find_unused_parameters: bool = False  # DDP: the model has parameters forward may not use
    # seconds a collective waits for the other processes before failing (a dead peer, a cut
    # link); applies when the Trainer starts the process group
    ddp_timeout: float = DEFAULT_TIMEOUT_S

    def __post_init__(self):
        for name in ("batch_size", "gradient_accumulation_steps", "log_steps"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                _fail(f"{name}={value!r}: use an integer >= 1")
        for name in ("save_steps", "keep_checkpoints", "eval_batch_size"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                _fail(f"{name}={value!r}: use an integer >= 1, or None")
        epochs, max_steps = self.epochs, self.max_steps
        if epochs is not None and (not _is_real(epochs) or epochs <= 0
                                   or float(epochs) != int(epochs)):
            _fail(f"epochs={epochs!r}: use a whole number >= 1 (or max_steps for a fraction)")
        if max_steps is not None and (not _is_int(max_steps) or max_steps < 1):
            _fail(f"max_steps={max_steps!r}: use an integer >= 1")
        if not _is_real(self.lr) or not self.lr > 0:
            _fail(f"lr={self.lr!r}: the learning rate must be > 0 (BERT fine-tuning uses 2e-5 "
                  "to 5e-5)")
        if not _is_real(self.warmup_proportion) or not 0.0 <= self.warmup_proportion < 1.0:
            _fail(f"warmup_proportion={self.warmup_proportion!r}: use a fraction in [0, 1), "
                  "e.g. 0.1")
        if not _is_real(self.weight_decay) or not self.weight_decay >= 0:
            _fail(f"weight_decay={self.weight_decay!r}: use a number >= 0 (BERT uses 0.01)")
        if self.max_grad_norm is not None and not _is_real(self.max_grad_norm):
            _fail(f"max_grad_norm={self.max_grad_norm!r}: use a number (None or <= 0: no "
                  "clipping)")
        if self.schedule not in SCHEDULE_NAMES:
            _fail(f"schedule={self.schedule!r}: use 'warmup_linear', 'warmup_cosine', "
                  "'warmup_constant' or 'none'")
        if self.precision not in PRECISIONS:
            _fail(f"precision={self.precision!r}: use one of {', '.join(map(repr, PRECISIONS))}")
        if not _is_int(self.seed):
            _fail(f"seed={self.seed!r}: use an integer")
        if not _is_int(self.num_workers) or self.num_workers < 0:
            _fail(f"num_workers={self.num_workers!r}: use an integer >= 0 (0: load in the "
                  "training process)")
        if not _is_real(self.ddp_timeout) or not self.ddp_timeout > 0:
            _fail(f"ddp_timeout={self.ddp_timeout!r}: use a number of seconds > 0 (default "
                  f"{DEFAULT_TIMEOUT_S:g}; longer when one process may work alone that long, "
                  "e.g. a first download on one machine)")
        if not isinstance(self.find_unused_parameters, bool):
            _fail(f"find_unused_parameters={self.find_unused_parameters!r}: use True (the "
                  "model has parameters that forward does not use) or False")
        for name in ("optimize_on_cpu", "progress", "tensorboard"):
            if not isinstance(getattr(self, name), bool):
                _fail(f"{name}={getattr(self, name)!r}: use True or False")
        self._check_paths()
        self._check_device()
        self._check_label_names()
        # normal forms: plain ints, a str path, a tuple of label names, no clipping as None
        for name in ("batch_size", "gradient_accumulation_steps", "log_steps", "save_steps",
                     "keep_checkpoints", "eval_batch_size", "max_steps", "epochs", "seed",
                     "num_workers"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, int(value))
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            object.__setattr__(self, "max_grad_norm", None)

    def _check_paths(self) -> None:
        if self.output_dir is not None:
            output_dir = os.fspath(self.output_dir)
            if os.path.exists(output_dir) and not os.path.isdir(output_dir):
                _fail(f"output_dir {output_dir!r} is a file; pass a folder (it is created if "
                      "missing)")
            object.__setattr__(self, "output_dir", output_dir)
        if self.save_steps is not None and self.output_dir is None:
            _fail("save_steps is set but output_dir is not: pass output_dir=... for checkpoints")

    def _check_device(self) -> None:
        if self.device is None:
            return
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            _fail(f"device={self.device!r}: use 'cpu', 'cuda', 'cuda:N', a torch.device, or "
                  "None (cuda if available)")

    def _check_label_names(self) -> None:
        names = self.label_names
        if names is None:
            return
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence) or \
                not all(isinstance(n, str) or _is_int(n) for n in names):
            _fail(f"label_names={names!r}: use a list of batch-dict keys or tuple positions, "
                  "e.g. ['labels'] or [-1]")
        object.__setattr__(self, "label_names", tuple(names) or None)  # empty: the default

    @classmethod
    def from_keywords(cls, args: TrainerArgs | None, settings: dict) -> TrainerArgs:
        """``args`` with ``settings`` (TrainerArgs field names) replaced, or a new one from the
        settings; an unknown name fails with the close ones."""
        fields = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in settings if k not in fields]
        if unknown:
            close = difflib.get_close_matches(unknown[0], fields, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise InvalidArgumentError(
                f"Trainer() got an unknown setting {unknown[0]!r}.{hint} The settings are "
                f"{', '.join(fields)}; the Trainer also takes model, train_data, eval_data, "
                "args, optimizer, collate_fn, compute_metrics and loss_weight")
        if args is None:
            return cls(**settings)
        if not isinstance(args, cls):
            raise InvalidArgumentError(f"args is a {type(args).__name__}: pass a TrainerArgs, "
                                       "or the settings as keywords")
        return dataclasses.replace(args, **settings)


def check_inputs(args: TrainerArgs, model, train_data, eval_data, optimizer) -> None:
    """The objects given to the Trainer, against each other and the settings."""
    if not isinstance(model, nn.Module):
        _fail(f"model is a {type(model).__name__}, not an nn.Module: pass the model itself")
    for name, data in (("train_data", train_data), ("eval_data", eval_data)):
        if data is not None and not is_map_dataset(data):
            _fail(f"{name} is a {type(data).__name__}: pass a map-style dataset (with __len__ "
                  "and __getitem__, e.g. TensorDataset), not a DataLoader or an iterable: "
                  "the Trainer builds the loader itself (sampler, shards, resume)")
        if data is not None and len(data) == 0:
            _fail(f"{name} is empty: pass a dataset with at least one example")
    if train_data is not None and args.epochs is None and args.max_steps is None:
        _fail("the length of training is not set: pass epochs=N or max_steps=N")
    if isinstance(optimizer, str) and optimizer not in OPTIMIZER_NAMES:
        _fail(f"optimizer={optimizer!r}: use 'adamw', 'bertadam', a callable "
              "param_groups -> Optimizer, or an Optimizer instance")
    if args.optimize_on_cpu and isinstance(optimizer, torch.optim.Optimizer):
        _fail("optimize_on_cpu=True builds its optimizer over host copies of the weights: "
              "pass optimizer='adamw', 'bertadam' or a callable param_groups -> Optimizer "
              "instead of an Optimizer instance")
    if (args.precision == "fp16" and not args.optimize_on_cpu and any(
            p.dtype == torch.float16 for p in model.parameters())):
        _fail("precision='fp16' with fp16 weights cannot be unscaled and stepped safely: keep "
              "the weights in fp32 (autocast does the fp16 math), or set optimize_on_cpu=True "
              "for fp32 master weights")
