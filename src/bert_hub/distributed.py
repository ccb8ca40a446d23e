"""One interface over the three ways of running on several devices, so the training loop has no
``if ddp:``: a single process on one device, DataParallel over the GPUs of one process (the 2018
scripts' way), and DistributedDataParallel with one process per device, started by ``torchrun``.

``torchrun`` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; they are read when
:func:`setup` runs. One node or many: torchrun's own rendezvous decides, nothing here changes.
"""
from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from bert_hub.errors import TrainerError

logger = logging.getLogger(__name__)
_hinted_torchrun = False


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise TrainerError(f"environment variable {name}={value!r} is not an integer: "
                           "launch with torchrun, which sets it, or unset it") from None


@dataclass
class Strategy:
    """Where this process runs and how it talks to the others.

    kind: "single" (one device), "dp" (DataParallel over ``n_gpu`` GPUs of this process) or
    "ddp" (one process per device; ``world_size`` processes in all).
    """

    kind: str
    device: torch.device
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    n_gpu: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, writes files and shows progress."""
        return self.rank == 0

    @property
    def devices_per_process(self) -> int:
        return self.n_gpu if self.kind == "dp" else 1

    # ------------------------------------------------------------------ model
    def wrap(self, model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """The module to call in the loop (DataParallel / DDP wrapper, or the model itself).

        ``find_unused_parameters`` (DDP only): let DDP walk the autograd graph after each
        forward to mark parameters that got no gradient as ready, so a model with parameters
        unused in forward trains instead of stalling the reduction (costs a graph walk per
        step, hence off by default)."""
        if self.kind == "dp":
            return nn.DataParallel(model)
        if self.kind == "ddp":
            ids = [self.device.index] if self.device.type == "cuda" else None
            return nn.parallel.DistributedDataParallel(
                model, device_ids=ids, find_unused_parameters=find_unused_parameters)
        return model

    def no_sync(self, wrapped: nn.Module, skip: bool):
        """Context for one micro-step's backward: with ``skip`` (a non-final micro-step of an
        accumulation window) DDP keeps the gradients local; they are all-reduced, summed over
        the window, by the final micro-step's backward."""
        if skip and self.kind == "ddp":
            return wrapped.no_sync()
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ collectives
    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place (identity in one process)."""
        if self.kind == "ddp":
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def all_gather_rows(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (shapes may differ in dim 0 only), in rank order."""
        if self.kind != "ddp":
            return [tensor]
        n = torch.tensor([tensor.shape[0]], device=tensor.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world_size)]
        dist.all_gather(sizes, n)
        longest = int(max(int(s) for s in sizes))
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded.contiguous())
        return [part[: int(size)] for part, size in zip(parts, sizes)]

    def all_gather_object(self, obj) -> list:
        if self.kind != "ddp":
            return [obj]
        out = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.kind == "ddp":
            if self.device.type == "cuda":
                dist.barrier(device_ids=[self.device.index])
            else:
                dist.barrier()

    # ------------------------------------------------------------------ data
    def eval_indices(self, n: int) -> list[int]:
        """This rank's share of an evaluation set: ``rank::world_size``, no padding, so each
        example is seen exactly once; :func:`interleave` restores dataset order."""
        return list(range(self.rank, n, self.world_size))


def interleave(parts: Sequence[torch.Tensor]) -> torch.Tensor:
    """Inverse of the ``rank::world_size`` split: rows of rank r go to positions r, r+W, ..."""
    world = len(parts)
    if world == 1:
        return parts[0]
    total = sum(p.shape[0] for p in parts)
    out = parts[0].new_empty((total, *parts[0].shape[1:]))
    for r, part in enumerate(parts):
        out[r::world] = part
    return out


def setup(device: str | torch.device | None = None, backend: str | None = None) -> Strategy:
    """Read the launcher's environment, start the process group if there are several
    processes, and pick the strategy.

    - WORLD_SIZE > 1 (torchrun): DDP; device ``cuda:LOCAL_RANK`` with nccl when CUDA is
      available, else the CPU with gloo. The process group is initialised once and reused.
    - one process, several visible GPUs and no explicit device: DataParallel, with a one-time
      hint that torchrun is faster.
    - otherwise one device (``device``, else ``cuda`` if available, else ``cpu``).
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size > 1:
        rank = _env_int("RANK", 0)
        local_rank = _env_int("LOCAL_RANK", 0)
        if device is None:
            device = (torch.device("cuda", local_rank) if torch.cuda.is_available()
                      else torch.device("cpu"))
        device = torch.device(device)
        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            if "MASTER_ADDR" not in os.environ and "TORCHELASTIC_RUN_ID" not in os.environ:
                raise TrainerError(
                    f"WORLD_SIZE={world_size} but MASTER_ADDR is not set: start the script with "
                    "`torchrun --nproc_per_node=N script.py`, or unset WORLD_SIZE")
            chosen = backend or ("nccl" if device.type == "cuda" else "gloo")
            dist.init_process_group(backend=chosen, rank=rank, world_size=world_size)
        return Strategy("ddp", device, rank=dist.get_rank(), local_rank=local_rank,
                        world_size=dist.get_world_size())
    if device is None and torch.cuda.device_count() > 1:
        global _hinted_torchrun
        if not _hinted_torchrun:
            logger.info("Using DataParallel over %d GPUs in one process; "
                        "`torchrun --nproc_per_node=%d script.py` is faster (one process per GPU).",
                        torch.cuda.device_count(), torch.cuda.device_count())
            _hinted_torchrun = True
        return Strategy("dp", torch.device("cuda", 0), n_gpu=torch.cuda.device_count())
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return Strategy("single", device)

