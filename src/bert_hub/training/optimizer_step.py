"""One optimizer step, with the parameters it steps either on the model's device or, with
``optimize_on_cpu``, as fp32 masters in host memory; the loop calls the same methods either way
and never asks which. Also the choice of optimizer and schedule from the Trainer's arguments.

A step: gather the gradients (offload: from the device), unscale (fp16), clip by the global
norm, step (skipped on fp16 overflow), clear the gradients, then, when it stepped, publish the
weights (offload: copy the masters back) and advance the schedule.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from bert_hub.errors import TrainerError
from bert_hub.optimization import BertAdam, get_scheduler, parameter_groups
from bert_hub.training.precision import Precision


class OptimizerStep:
    """The optimizer, its schedule and clipping over the model's trainable parameters, where
    they live.

    names / params: the trainable parameters (by name) that the optimizer steps and clipping
    sees. The optimizer and schedule are attached once built (:func:`build_optimizer`).
    """

    def __init__(self, named_params: Sequence[tuple[str, nn.Parameter]], precision: Precision):
        self.names = [n for n, _ in named_params]
        self.params: list[torch.Tensor] = [p for _, p in named_params]
        self.precision = precision
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler = None
        self.max_grad_norm: float | None = None
        self.grad_norm: torch.Tensor | None = None  # of the last clipped step
        self._grads_to_clear: list[torch.Tensor] | None = None

    def groups(self, groups: Iterable[dict]) -> list[dict]:
        """Parameter groups over the model's parameters -> groups over what is stepped."""
        return list(groups)

    def attach(self, optimizer: torch.optim.Optimizer, scheduler,
               max_grad_norm: float | None) -> None:
        self.optimizer, self.scheduler = optimizer, scheduler
        # BertAdam clips each tensor on its own, inside its step (0.6.2): no global clipping
        self.max_grad_norm = None if isinstance(optimizer, BertAdam) else max_grad_norm
        self._grads_to_clear = self._gradient_holders()

    def _gradient_holders(self) -> list[torch.Tensor] | None:
        """Every tensor whose .grad a step leaves behind: the optimizer's parameters, plus the
        stepped parameters it does not hold (an Optimizer over a subset). None: the optimizer
        overrides zero_grad, so call it."""
        if type(self.optimizer).zero_grad is not torch.optim.Optimizer.zero_grad:
            return None
        held = [p for g in self.optimizer.param_groups for p in g["params"]]
        ids = {id(p) for p in held}
        return held + [p for p in self.params if id(p) not in ids]

    def before_backward(self, final: bool) -> None:
        """Called before each micro-step's forward and backward; ``final``: the window's last
        micro-step (whose backward completes the gradients)."""

    def step(self) -> bool:
        """One optimizer step on the accumulated gradients; False when fp16 overflowed and the
        step was skipped (parameters and schedule held)."""
        self._gather_grads()
        self.precision.unscale(self.optimizer)
        if self.max_grad_norm is not None:
            self.grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        skipped = self.precision.step(self.optimizer)
        self._clear_grads()
        if skipped:
            return False
        self._publish()
        if self.scheduler is not None:
            self.scheduler.step()
        return True

    def _gather_grads(self) -> None:
        """Make each stepped parameter's .grad this window's gradient."""

    def _publish(self) -> None:
        """Make the stepped values the model's weights."""

    def _clear_grads(self) -> None:
        if self._grads_to_clear is None:
            self.optimizer.zero_grad(set_to_none=True)
            for p in self.params:
                p.grad = None
        else:  # what zero_grad does, without its per-call machinery
            for p in self._grads_to_clear:
                p.grad = None

    def next_lr(self, step: int) -> float:
        """Learning rate of the first parameter group for optimizer step ``step``."""
        group = self.optimizer.param_groups[0]
        if isinstance(self.optimizer, BertAdam):
            return group["lr"] * self.optimizer._schedule(group)(step)
        return group["lr"]

    # ------------------------------------------------------------------ checkpoints
    def weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The model's state dict as a checkpoint stores it."""
        return state

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        """After the model loaded ``tensors``: bring what is stepped in line."""

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "scaler": self.precision.state_dict()}

    def load_state_dict(self, saved: dict) -> None:
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        self.precision.load_state_dict(saved["scaler"])


class OffloadedOptimizerStep(OptimizerStep):
    """The optimizer steps fp32 masters in host memory (:class:`HostMasterWeights`) while the
    model, in any dtype, stays on its device: gradients go to the host during the window's last
    backward (or after it, when ``capture_in_hooks`` is False: DDP all-reduces after the hooks),
    and the updated masters come back cast to the device dtype. ``params`` are the masters;
    checkpoints hold them."""

    def __init__(self, named_params: Sequence[tuple[str, nn.Parameter]], precision: Precision,
                 capture_in_hooks: bool = True):
        if precision.scaler is not None and not precision.host_step:
            raise TrainerError(f"the {precision.name} precision part scales on the device: "
                               "build it with precision_for(..., host_step=True) for the "
                               "offloaded optimizer, so its step-or-skip flag is a host value")
        super().__init__(named_params, precision)
        self.host = HostMasterWeights(self.params)
        self.params = list(self.host.masters)
        self.capture_in_hooks = capture_in_hooks

    def groups(self, groups: Iterable[dict]) -> list[dict]:
        return self.host.groups_over_masters(groups)

    def before_backward(self, final: bool) -> None:
        self.host.capture(final and self.capture_in_hooks)

    def _gather_grads(self) -> None:
        self.host.capture(False)
        self.host.collect_grads()

    def _publish(self) -> None:
        self.host.push()

    def weights(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The fp32 masters, not the (maybe bf16) device copies."""
        master_of = {n: m.detach() for n, m in zip(self.names, self.params)}
        return {k: master_of.get(k, v) for k, v in state.items()}

    @torch.no_grad()
    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, master in zip(self.names, self.params):
            master.copy_(tensors[name])


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
        for i, p in enumerate(self.params):
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(self._hook(i))

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


def build_optimizer(choice, model: nn.Module, stepper: OptimizerStep, *, lr: float,
                    schedule: str | None, warmup: float, weight_decay: float,
                    max_grad_norm: float | None, t_total: int):
    """(optimizer, scheduler or None) for the Trainer's ``optimizer`` argument: None / "adamw"
    (fused where possible, with the schedule as a LambdaLR), "bertadam" (schedule inside), a
    callable ``param_groups -> Optimizer``, or an Optimizer over the model's parameters."""
    groups = stepper.groups(parameter_groups(model, weight_decay))
    if choice == "bertadam":
        opt = BertAdam(groups, lr=lr, warmup=warmup, t_total=t_total, schedule=schedule,
                       weight_decay=weight_decay, max_grad_norm=max_grad_norm or -1)
    elif choice is None or choice == "adamw":
        fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda")
                    for g in groups for p in g["params"])
        opt = torch.optim.AdamW(groups, lr=lr, eps=1e-6, fused=fused or None)
    elif isinstance(choice, torch.optim.Optimizer):
        opt = choice
        owned = {id(p) for p in model.parameters()}
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
    return opt, get_scheduler(opt, schedule, warmup, t_total)
