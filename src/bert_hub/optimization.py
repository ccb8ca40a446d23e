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

import torch
from torch.nn.utils import clip_grad_norm_
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from bert_hub.errors import InvalidArgumentError, TrainerError

logger = logging.getLogger(__name__)

# Names whose weights are not decayed, as in Google's and the 2018 PyTorch fine-tuning scripts.
NO_DECAY = ("bias", "LayerNorm.weight", "LayerNorm.bias")


# --------------------------------------------------------------------------- schedules
class LRSchedule:
    """Learning-rate multiplier at a given optimizer step (0.6.2's ``_LRSchedule``): subclasses
    give the curve over ``progress = step / t_total`` in ``get_lr_``. ``t_total < 0`` means no
    schedule (multiplier 1). Only plain numbers as attributes, so that a schedule's state
    pickles into ``weights_only`` checkpoints."""

    warn_t_total = False  # True where training past t_total makes no sense (decaying curves)

    def __init__(self, warmup: float = 0.002, t_total: float = -1, **kwargs):
        if kwargs:
            raise InvalidArgumentError(
                f"{type(self).__name__} got unexpected argument(s) {', '.join(sorted(kwargs))}: "
                "it takes warmup and t_total (and cycles for the cosine schedules)")
        _check_warmup(warmup)
        if t_total == 0:
            raise TrainerError("t_total 0 leaves no optimizer step to schedule: pass the "
                               "planned number of steps, or -1 for a constant learning rate")
        self.warmup = float(max(warmup, 0.0))
        self.t_total = float(t_total)
        self.warned_past_t_total = False

    def get_lr(self, step: int, nowarn: bool = False) -> float:
        """The multiplier for optimizer step ``step`` (0-based); warns once past t_total."""
        if self.t_total < 0:
            return 1.0
        progress = float(step) / self.t_total
        value = self.get_lr_(progress)
        if self.warn_t_total and progress > 1.0 and not nowarn and not self.warned_past_t_total:
            logger.warning(
                "Training beyond t_total (%d steps) of %s: the learning-rate multiplier is now %s. "
                "Set t_total to the real number of optimizer steps.", int(self.t_total),
                type(self).__name__, value)
            self.warned_past_t_total = True
        return value

    def __call__(self, step: int) -> float:
        return self.get_lr(step)

    def get_lr_(self, progress: float) -> float:
        raise NotImplementedError(f"{type(self).__name__} must define get_lr_(progress)")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "warned_past_t_total")
        return f"{type(self).__name__}({fields})"


class ConstantLR(LRSchedule):
    """Multiplier 1 throughout."""

    def get_lr_(self, progress: float) -> float:
        return 1.0


class WarmupCosineSchedule(LRSchedule):
    """Linear warmup from 0 to 1 over the ``warmup`` fraction, then ``cycles`` (default half a
    period) of a cosine: from 1 down to 0 at t_total."""

    warn_t_total = True

    def __init__(self, warmup: float = 0.002, t_total: float = -1, cycles: float = 0.5, **kwargs):
        super().__init__(warmup=warmup, t_total=t_total, **kwargs)
        self.cycles = float(cycles)

    def get_lr_(self, progress: float) -> float:
        if progress < self.warmup:
            return progress / self.warmup
        progress = (progress - self.warmup) / (1 - self.warmup)  # progress after warmup
        return 0.5 * (1.0 + math.cos(math.pi * self.cycles * 2 * progress))


class WarmupCosineWithHardRestartsSchedule(WarmupCosineSchedule):
    """Linear warmup, then ``cycles`` (>= 1) cosine decays from 1 to 0, each restarting at 1."""

    def __init__(self, warmup: float = 0.002, t_total: float = -1, cycles: float = 1.0, **kwargs):
        if not cycles >= 1.0:
            raise TrainerError(f"cycles {cycles!r}: a schedule with hard restarts needs at "
                               "least one cycle (cycles >= 1)")
        super().__init__(warmup=warmup, t_total=t_total, cycles=cycles, **kwargs)

    def get_lr_(self, progress: float) -> float:
        if progress < self.warmup:
            return progress / self.warmup
        progress = (progress - self.warmup) / (1 - self.warmup)  # progress after warmup
        return 0.5 * (1.0 + math.cos(math.pi * ((self.cycles * progress) % 1)))


class WarmupCosineWithWarmupRestartsSchedule(WarmupCosineWithHardRestartsSchedule):
    """Training split into ``cycles`` equal parts, each a linear warmup over its first
    ``warmup`` fraction followed by a cosine decay from 1 to 0."""

    def __init__(self, warmup: float = 0.002, t_total: float = -1, cycles: float = 1.0, **kwargs):
        if not warmup * cycles < 1.0:
            raise TrainerError(f"warmup {warmup!r} x cycles {cycles!r} must be below 1: each "
                               "cycle needs room to decay after its warmup")
        super().__init__(warmup=warmup * cycles if warmup >= 0 else warmup, t_total=t_total,
                         cycles=cycles, **kwargs)

    def get_lr_(self, progress: float) -> float:
        progress = progress * self.cycles % 1.0
        if progress < self.warmup:
            return progress / self.warmup
        progress = (progress - self.warmup) / (1 - self.warmup)  # progress after warmup
        return 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupConstantSchedule(LRSchedule):
    """Linear warmup from 0 to 1 over the ``warmup`` fraction, then 1."""

    def get_lr_(self, progress: float) -> float:
        if progress < self.warmup:
            return progress / self.warmup
        return 1.0


class WarmupLinearSchedule(LRSchedule):
    """Linear warmup from 0 to 1 over the ``warmup`` fraction, then linear decay to 0 at
    t_total (0 after it)."""

    warn_t_total = True

    def get_lr_(self, progress: float) -> float:
        if progress < self.warmup:
            return progress / self.warmup
        return max((progress - 1.0) / (self.warmup - 1.0), 0.0)


# Schedule names -> classes, as in 0.6.2.
SCHEDULES: dict[str | None, type[LRSchedule]] = {
    None: ConstantLR,
    "none": ConstantLR,
    "warmup_cosine": WarmupCosineSchedule,
    "warmup_constant": WarmupConstantSchedule,
    "warmup_linear": WarmupLinearSchedule,
}
_SCHEDULE_CLASSES = {cls.__name__: cls for cls in (
    ConstantLR, WarmupCosineSchedule, WarmupCosineWithHardRestartsSchedule,
    WarmupCosineWithWarmupRestartsSchedule, WarmupConstantSchedule, WarmupLinearSchedule)}


def _check_warmup(warmup: float) -> None:
    if not (0.0 <= warmup < 1.0 or warmup == -1):
        raise TrainerError(
            f"warmup {warmup!r} is the fraction of t_total spent warming up: "
            "use a value in [0, 1), or -1 for none")


def _check_schedule(schedule, warmup: float) -> None:
    if isinstance(schedule, LRSchedule):
        return
    if not (schedule is None or isinstance(schedule, str)) or schedule not in SCHEDULES:
        names = ", ".join(repr(k) for k in SCHEDULES if k is not None)
        raise TrainerError(f"unknown schedule {schedule!r}: use one of {names} (or None, or an "
                           "LRSchedule object such as WarmupLinearSchedule(warmup, t_total))")
    _check_warmup(warmup)


def Schedule(name: str | None = "warmup_linear", warmup: float = 0.002,  # noqa: N802
             t_total: float = -1) -> LRSchedule:
    """The schedule called ``name`` (a key of ``SCHEDULES``): ``Schedule(name, warmup,
    t_total)(step)`` is the multiplier of optimizer step ``step``."""
    _check_schedule(name, warmup)
    if isinstance(name, LRSchedule):
        raise TrainerError(f"Schedule() takes a schedule's name; {name!r} is already a schedule")
    return SCHEDULES[name](warmup=warmup, t_total=t_total)


def _schedule_state(schedule: LRSchedule) -> dict:
    """A schedule as plain data (its class name and attributes), for optimizer state dicts."""
    return {"class": type(schedule).__name__, **vars(schedule)}


def _schedule_from_state(saved, group: dict, current: LRSchedule) -> LRSchedule:
    """The schedule a saved param group describes: ``_schedule_state``'s dict, an object, or
    (state dicts from before schedule objects) a name with the group's warmup and t_total."""
    if isinstance(saved, LRSchedule):
        return saved
    if isinstance(saved, dict):
        name = saved.get("class")
        cls = type(current) if type(current).__name__ == name else _SCHEDULE_CLASSES.get(name)
        if cls is None:
            raise TrainerError(
                f"the saved optimizer state uses a schedule of class {name!r}, which this "
                f"BertAdam (schedule {type(current).__name__}) cannot rebuild: create BertAdam "
                "with the same schedule object before loading its state")
        schedule = cls.__new__(cls)
        schedule.__dict__.update({k: v for k, v in saved.items() if k != "class"})
        return schedule
    warmup, t_total = group.pop("warmup", -1), group.pop("t_total", -1)
    return Schedule(saved, warmup, t_total)


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
        schedule: ``'warmup_linear'``, ``'warmup_cosine'``, ``'warmup_constant'``, ``'none'``/None,
            or an ``LRSchedule`` object (e.g. ``WarmupCosineWithHardRestartsSchedule(0.1, 1000,
            cycles=3)``), which then carries warmup and t_total itself. Either way the param
            groups hold the schedule object under ``"schedule"``, as in 0.6.2.
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
        if isinstance(schedule, LRSchedule):
            if warmup != -1 or t_total != -1:
                logger.warning("BertAdam: warmup and t_total are ignored when schedule is an "
                               "LRSchedule object; set them on the schedule (%r)", schedule)
        else:
            schedule = SCHEDULES[schedule](warmup=warmup, t_total=t_total)
        defaults = {"lr": lr, "schedule": schedule, "b1": b1, "b2": b2, "e": e,
                    "weight_decay": weight_decay, "max_grad_norm": max_grad_norm}
        super().__init__(params, defaults)

    def _schedule(self, group: dict) -> LRSchedule:
        return group["schedule"]

    def state_dict(self) -> dict:
        """As ``Optimizer.state_dict``, with each group's schedule as plain data, so the result
        loads with ``torch.load(..., weights_only=True)``."""
        state = super().state_dict()
        for group in state["param_groups"]:  # fresh dicts: the live groups are untouched
            group["schedule"] = _schedule_state(group["schedule"])
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        current = [group["schedule"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, schedule in zip(self.param_groups, current):
            group["schedule"] = _schedule_from_state(group["schedule"], group, schedule)

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
