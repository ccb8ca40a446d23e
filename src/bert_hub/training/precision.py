"""Numeric precision of a training step, one class per choice with one interface, so the loop
never asks "fp16 or bf16?": the forward's autocast context, backward (with loss scaling), unscaling
before clipping, the optimizer step (skipped on fp16 overflow) and the state a checkpoint keeps.
"""
from __future__ import annotations

import contextlib

import torch

_NO_CONTEXT = contextlib.nullcontext()  # reusable: entering it does nothing


class Precision:
    """The interface every precision keeps, with full precision's behaviour: no autocast, no
    loss scaling."""

    name = "fp32"
    scaler: torch.amp.GradScaler | None = None  # fp16 only

    def __init__(self, device_type: str, host_step: bool = False):
        self.device_type = device_type
        # the optimizer steps host copies of the weights (optimize_on_cpu): what decides "step
        # or skip" must then be a host value, read by host code
        self.host_step = host_step

    def autocast(self):
        """Context for forward passes. fp32 only switches off an autocast the caller entered
        (entering torch.autocast costs about 10 us a step, so nothing is entered otherwise)."""
        if not torch.is_autocast_enabled(self.device_type):
            return _NO_CONTEXT
        return torch.autocast(self.device_type, enabled=False)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients of ``optimizer``'s parameters to their true size (before
        clipping); fp16 also records whether any is inf/nan."""

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        """Step ``optimizer``; True when the step was skipped (fp16: inf/nan gradients)."""
        optimizer.step()
        return False

    def state_dict(self) -> dict | None:
        """What a checkpoint keeps (None: nothing)."""
        return None

    def load_state_dict(self, state: dict | None) -> None:
        """Restore :meth:`state_dict`'s result (None: nothing to restore)."""

    def metrics(self) -> dict:
        """Extra fields for a metrics line."""
        return {}


class FP32(Precision):
    """Full precision (the default)."""


class BF16(Precision):
    """bf16 autocast: fp32 range, so no loss scaling; weights and optimizer stay as they are."""

    name = "bf16"

    def autocast(self):
        return torch.autocast(self.device_type, dtype=torch.bfloat16)


class FP16(Precision):
    """fp16 autocast with dynamic loss scaling (``torch.amp.GradScaler``): the loss is scaled
    up before backward so small gradients survive fp16; a window whose gradients hold inf/nan
    is skipped and the scale halved.

    With ``host_step`` (the optimizer steps fp32 masters on the host) the scaler and its state
    live on the host: unscaling, the inf/nan flag and the fused CPU Adam's skip decision are
    host tensors written and read by host kernels. A device scaler would hand them to the CPU
    through non-blocking device -> host copies, which a CPU kernel may read before they land.
    Only scaling the loss crosses to the device (host -> device, staged at once)."""

    name = "fp16"

    def __init__(self, device_type: str, host_step: bool = False):
        super().__init__(device_type, host_step)
        if host_step:
            self.scaler = torch.amp.GradScaler("cpu")
            self.scaler.scale(torch.ones(()))  # the scale is created where its first use is
        else:
            self.scaler = torch.amp.GradScaler(device_type)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=torch.float16)

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> bool:
        scale = self.scaler.get_scale()
        self.scaler.step(optimizer)  # does not step when unscale_ found inf/nan
        self.scaler.update()
        return self.scaler.get_scale() < scale  # a lower scale: inf/nan, step skipped

    def state_dict(self) -> dict:
        return self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if state is not None:
            self.scaler.load_state_dict(state)

    def metrics(self) -> dict:
        return {"loss_scale": self.scaler.get_scale()}


PRECISIONS = {cls.name: cls for cls in (FP32, BF16, FP16)}


def precision_for(name: str, device: torch.device, host_step: bool = False) -> Precision:
    """The precision part called ``name`` ("fp32", "bf16", "fp16") for ``device``;
    ``host_step``: the optimizer steps on the host (optimize_on_cpu)."""
    return PRECISIONS[name](device.type, host_step)
