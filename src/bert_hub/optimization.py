"""BertAdam and the BERT warmup schedules (pytorch-pretrained-bert 0.6.2 semantics), the same
schedules as ``torch.optim.lr_scheduler`` objects, parameter groups without decay for biases and
LayerNorm weights, and fp32 master weights on the host for CPU-offloaded optimizer steps.

Schedule convention (0.6.2's): the multiplier used by optimizer step ``t`` (0-based) is
``schedule(t / t_total)``; with warmup the very first step therefore has multiplier 0.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
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


# --------------------------------------------------------------------------- CPU offload
class HostMasterWeights:
    """fp32 master copies of a model's parameters in (pinned) host memory, for optimizer steps
    on the CPU while the model, in any dtype, stays on its device.

    Life of one optimizer step:
      1. ``capture(True)`` before the last backward of a window: each gradient is copied to the
         host as soon as autograd has accumulated it (a post-accumulate-grad hook; on CUDA on a
         side stream, non-blocking), and the device gradient is freed.
      2. ``collect_grads()`` waits for those copies and copies any gradient not captured yet (the
         DDP path, whose all-reduce lands after the hooks), so ``masters[i].grad`` holds the fp32
         gradient, or None where the device parameter had none.
      3. The optimizer (built over ``masters``) steps on the CPU.
      4. ``push()`` copies each updated master back, cast to the device dtype.

    On a CPU device the same code runs without streams or pinning.
    """

    def __init__(self, params: Sequence[torch.nn.Parameter]):
        self.params = list(params)
        self.device = self.params[0].device if self.params else torch.device("cpu")
        self.on_cuda = self.device.type == "cuda"
        pin = self.on_cuda
        self.masters: list[torch.nn.Parameter] = []
        self._grad_buffers: list[torch.Tensor] = []  # host fp32 gradients
        self._staging: list[torch.Tensor | None] = []  # host copies in the device dtype
        for p in self.params:
            master = torch.empty(p.shape, dtype=torch.float32, pin_memory=pin)
            master.copy_(p.detach())
            self.masters.append(torch.nn.Parameter(master, requires_grad=p.requires_grad))
            self._grad_buffers.append(torch.zeros(p.shape, dtype=torch.float32, pin_memory=pin))
            same = p.dtype == torch.float32
            self._staging.append(None if same else torch.empty(p.shape, dtype=p.dtype,
                                                               pin_memory=pin))
        self._captured = [False] * len(self.params)
        self._capturing = False
        self._stream = torch.cuda.Stream(self.device) if self.on_cuda else None
        self._hooks = [p.register_post_accumulate_grad_hook(self._hook(i))
                       for i, p in enumerate(self.params) if p.requires_grad]

    def groups_over_masters(self, groups: Iterable[dict]) -> list[dict]:
        """The same parameter groups with each device parameter replaced by its host master."""
        master_of = {id(p): m for p, m in zip(self.params, self.masters)}
        return [{**g, "params": [master_of[id(p)] for p in g["params"]]} for g in groups]

    def capture(self, enabled: bool) -> None:
        self._capturing = enabled

    def _hook(self, i: int):
        def hook(p: torch.Tensor) -> None:
            if not self._capturing or p.grad is None:
                return
            self._copy_grad_to_host(i, p)
            self._captured[i] = True
            p.grad = None  # frees device memory now, not at zero_grad
        return hook

    def _copy_grad_to_host(self, i: int, p: torch.Tensor) -> None:
        target = self._staging[i] if self._staging[i] is not None else self._grad_buffers[i]
        if self._stream is None:
            target.copy_(p.grad)
            return
        grad = p.grad
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            target.copy_(grad, non_blocking=True)
        grad.record_stream(self._stream)  # keep the memory until the copy has run

    def collect_grads(self) -> None:
        """Make ``masters[i].grad`` the (fp32) gradient of ``params[i]`` for this step."""
        for i, p in enumerate(self.params):
            if not self._captured[i] and p.grad is not None:
                self._copy_grad_to_host(i, p)
                self._captured[i] = True
                p.grad = None
        if self._stream is not None:
            self._stream.synchronize()
        for i, master in enumerate(self.masters):
            if not self._captured[i]:
                master.grad = None  # unused this step: the optimizer skips it, as on the device
                continue
            if self._staging[i] is not None:
                self._grad_buffers[i].copy_(self._staging[i])  # exact upcast to fp32
            master.grad = self._grad_buffers[i]
        self._captured = [False] * len(self.params)

    @torch.no_grad()
    def push(self) -> None:
        """Copy every master back to its device parameter (cast to the parameter's dtype)."""
        if self._stream is None:
            for p, master in zip(self.params, self.masters):
                p.copy_(master)
            return
        self._stream.wait_stream(torch.cuda.current_stream(self.device))  # p no longer in use
        for p, master, staging in zip(self.params, self.masters, self._staging):
            source = master
            if staging is not None:
                staging.copy_(master)  # cast on the host, so the transfer stays asynchronous
                source = staging
            with torch.cuda.stream(self._stream):
                p.copy_(source, non_blocking=True)  # overlaps the next parameter's host cast
        torch.cuda.current_stream(self.device).wait_stream(self._stream)

    @torch.no_grad()
    def load_from_device(self) -> None:
        """Refresh the masters from the device parameters (after loading device weights)."""
        for p, master in zip(self.params, self.masters):
            master.copy_(p.detach())

    def clear_device_grads(self) -> None:
        for p in self.params:
            p.grad = None

    def remove_hooks(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
