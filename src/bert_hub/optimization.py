"""BertAdam and the BERT warmup schedules (pytorch-pretrained-bert 0.6.2 semantics), the same
schedules as ``torch.optim.lr_scheduler`` objects, and parameter groups without decay for biases
and LayerNorm weights. (CPU-offloaded optimizer steps live in bert_hub.training.optimizer_step.)

Schedule convention (0.6.2's): the multiplier used by optimizer step ``t`` (0-based) is
``schedule(t / t_total)``; with warmup the very first step therefore has multiplier 0.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Callable

import torch
from torch.nn.utils import clip_grad_norm_
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from bert_hub.errors import TrainerError

logger = logging.getLogger(__name__)

# Names whose weights are not decayed, as in Google's and the 2018 PyTorch fine-tuning scripts.
NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias")


# --------------------------------------------------------------------------- schedules
def _warmup_linear(progress: float, warmup: float) -> float:
    if progress < warmup:
        return progress / warmup
    return max((progress - 1.0) / (warmup - 1.0), 0.0)


def _warmup_cosine(progress: float, warmup: float, cycles: float = 0.5) -> float:
    if progress < warmup:
        return progress / warmup
    progress = (progress - warmup) / (1 - warmup)  # progress after warmup
    return 0.5 * (1.0 + math.cos(math.pi * cycles * 2 * progress))


def _warmup_constant(progress: float, warmup: float) -> float:
    if progress < warmup:
        return progress / warmup
    return 1.0


def _constant(progress: float, warmup: float) -> float:
    return 1.0


# name -> (multiplier(progress, warmup), warn when training past t_total)
SCHEDULES: dict[str | None, tuple[Callable[[float, float], float], bool]] = {
    None: (_constant, False),
    "none": (_constant, False),
    "warmup_linear": (_warmup_linear, True),
    "warmup_cosine": (_warmup_cosine, True),
    "warmup_constant": (_warmup_constant, False),
}


def _check_schedule(schedule, warmup: float) -> None:
    if schedule not in SCHEDULES:
        names = ", ".join(repr(k) for k in SCHEDULES if k is not None)
        raise TrainerError(f"unknown schedule {schedule!r}: use one of {names} (or None)")
    if not (0.0 <= warmup < 1.0 or warmup == -1):
        raise TrainerError(
            f"warmup {warmup!r} is the fraction of t_total spent warming up: "
            "use a value in [0, 1), or -1 for none")


class Schedule:
    """Learning-rate multiplier at a given optimizer step, as 0.6.2 computes it.

    Plain floats and a name only, so that it pickles into ``weights_only`` checkpoints.
    ``t_total < 0`` means no schedule (multiplier 1)."""

    def __init__(self, name: str | None = "warmup_linear", warmup: float = 0.002,
                 t_total: int = -1):
        _check_schedule(name, warmup)
        self.name = name
        self.warmup = float(max(warmup, 0.0))
        self.t_total = float(t_total)
        self.warned_past_t_total = False

    def __call__(self, step: int) -> float:
        if self.t_total < 0:
            return 1.0
        fn, warn = SCHEDULES[self.name]
        progress = float(step) / self.t_total
        value = fn(progress, self.warmup)
        if warn and progress > 1.0 and not self.warned_past_t_total:
            logger.warning(
                "Training beyond t_total (%d steps): the learning-rate multiplier is now %s. "
                "Set t_total to the real number of optimizer steps.", int(self.t_total), value)
            self.warned_past_t_total = True
        return value


def get_scheduler(optimizer: Optimizer, schedule: str | None = "warmup_linear",
                  warmup: float = 0.1, t_total: int = -1) -> LambdaLR:
    """The BERT schedule as a ``LambdaLR`` for any torch optimizer (e.g. ``torch.optim.AdamW``).

    Call ``scheduler.step()`` once per optimizer step: optimizer step ``t`` then uses
    ``lr * schedule(t)``, exactly the multiplier ``BertAdam`` applies at its step ``t``."""
    return LambdaLR(optimizer, Schedule(schedule, warmup, t_total))


def parameter_groups(model: torch.nn.Module, weight_decay: float = 0.01,
                     no_decay: Sequence[str] = NO_DECAY) -> list[dict]:
    """Two groups: decayed weights, and parameters whose name contains one of ``no_decay``
    (biases and LayerNorm weights, as the 2018 scripts did). Empty groups are dropped."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (plain if any(nd in name for nd in no_decay) else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": plain, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


# --------------------------------------------------------------------------- BertAdam
class BertAdam(Optimizer):
    """Adam as BERT was trained with it (pytorch-pretrained-bert 0.6.2, step for step).

    Differences from ``torch.optim.AdamW``: no bias correction; eps 1e-6 added to sqrt(v);
    decoupled weight decay added to the update before the learning rate; each parameter
    tensor's gradient clipped to ``max_grad_norm`` on its own (not the global norm); and the
    schedule applied inside the optimizer from each parameter's own step count.

    Args:
        params: parameters or parameter groups (see :func:`parameter_groups`).
        lr: peak learning rate.
        warmup: fraction of ``t_total`` spent warming up (-1: none).
        t_total: planned optimizer steps (-1: constant learning rate, no warmup).
        schedule: ``'warmup_linear'``, ``'warmup_cosine'``, ``'warmup_constant'``, ``'none'``/None.
        b1, b2, e: Adam's betas and epsilon.
        weight_decay: decoupled decay rate (0.6.2's default 0.01).
        max_grad_norm: per-tensor clipping threshold (<= 0: no clipping).
    """

    def __init__(self, params, lr: float, warmup: float = -1, t_total: int = -1,
                 schedule: str | None = "warmup_linear", b1: float = 0.9, b2: float = 0.999,
                 e: float = 1e-6, weight_decay: float = 0.01, max_grad_norm: float = 1.0):
        if lr < 0.0:
            raise TrainerError(f"learning rate {lr!r} is negative: use lr >= 0")
        _check_schedule(schedule, warmup)
        for name, beta in (("b1", b1), ("b2", b2)):
            if not 0.0 <= beta < 1.0:
                raise TrainerError(f"{name} {beta!r} is out of range: use a value in [0, 1)")
        if not e >= 0.0:
            raise TrainerError(f"epsilon e {e!r} is negative: use e >= 0")
        # Only plain values in the groups, so state_dict() loads with weights_only=True.
        defaults = {"lr": lr, "schedule": schedule, "warmup": warmup, "t_total": t_total, "b1": b1, "b2": b2,
                        "e": e, "weight_decay": weight_decay, "max_grad_norm": max_grad_norm}
        super().__init__(params, defaults)
        self._schedules: dict[tuple, Schedule] = {}

    def _schedule(self, group: dict) -> Schedule:
        key = (group["schedule"], group["warmup"], group["t_total"])
        if key not in self._schedules:
            self._schedules[key] = Schedule(*key)
        return self._schedules[key]

    def get_lr(self) -> list[float]:
        """The scheduled learning rate of each parameter for its next step ([0] before any)."""
        lrs = []
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state[p]
                if len(state) == 0:
                    return [0]
                lrs.append(group["lr"] * self._schedule(group)(state["step"]))
        return lrs

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            schedule = self._schedule(group)
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if grad.is_sparse:
                    raise TrainerError("BertAdam does not support sparse gradients: "
                                       "use torch.optim.SparseAdam for sparse embeddings")
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = 0
                    state["next_m"] = torch.zeros_like(p)  # EMA of gradients
                    state["next_v"] = torch.zeros_like(p)  # EMA of squared gradients
                next_m, next_v = state["next_m"], state["next_v"]
                if group["max_grad_norm"] > 0:
                    clip_grad_norm_(p, group["max_grad_norm"])  # this tensor alone
                next_m.mul_(group["b1"]).add_(grad, alpha=1 - group["b1"])
                next_v.mul_(group["b2"]).addcmul_(grad, grad, value=1 - group["b2"])
                update = next_m / (next_v.sqrt() + group["e"])
                if group["weight_decay"] > 0.0:
                    update += group["weight_decay"] * p  # decoupled: not through m and v
                lr_scheduled = group["lr"] * schedule(state["step"])
                p.add_(-(lr_scheduled * update))
                state["step"] += 1  # no bias correction, on purpose (as 0.6.2)
        return loss
