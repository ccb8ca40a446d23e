"""One interface (:class:`Strategy`) over the three ways of running, so the training loop has no
``if ddp:``: :class:`SingleDeviceStrategy` (one process, one device), :class:`DataParallelStrategy`
(DataParallel over the GPUs of one process, the 2018 scripts' way) and :class:`DDPStrategy`
(DistributedDataParallel, one process per device, started by ``torchrun``); :func:`setup` picks
one from the environment.

``torchrun`` sets RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; they are read when
:func:`setup` runs. One node or many: torchrun's own rendezvous decides, nothing here changes.
A process group that :func:`setup` starts is ended by :func:`shutdown` (registered with
``atexit``), so a program ends cleanly without tearing anything down itself.
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import os
import weakref
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

from bert_hub.errors import TrainerError

logger = logging.getLogger(__name__)
_hinted_torchrun = False
# How long a collective waits for the other processes before failing (seconds): a dead peer or
# a cut network link then ends the run instead of hanging it (torch's own default: 30 min).
DEFAULT_TIMEOUT_S = 300.0
_started_group = False  # setup() started the process group, so shutdown() ends it
_atexit_registered = False
_wrapping_strategies: weakref.WeakSet = weakref.WeakSet()  # DDP wrappers hold the group


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise TrainerError(f"environment variable {name}={value!r} is not an integer: "
                           "launch with torchrun, which sets it, or unset it") from None


_NO_CONTEXT = contextlib.nullcontext()  # reusable: entering it does nothing
# How DDP says that a parameter got no gradient in the previous step.
_DDP_UNUSED = ("find_unused_parameters", "Expected to have finished reduction")


class Strategy:
    """Where this process runs and how it talks to the others: the interface the training loop
    calls, with the behaviour of one process (collectives are identities, nothing to wait for).

    kind: a name for logs ("single", "dp", "ddp"); the loop never branches on it.
    """

    kind = "single"
    # Replicas one process feeds per step: its micro-batch holds that many device batches.
    devices_per_process = 1
    # Whether a parameter's gradient is final when its post-accumulate-grad hook fires
    # (not under DDP, whose all-reduce lands after the hooks).
    gradients_final_in_hooks = True

    def __init__(self, device: torch.device, rank: int = 0, local_rank: int = 0,
                 world_size: int = 1):
        self.device = device
        self.rank, self.local_rank, self.world_size = rank, local_rank, world_size
        # what wrap() returned: the module the loop calls (None once shutdown() released it)
        self.wrapped: nn.Module | None = None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(device={self.device}, rank={self.rank}, "
                f"world_size={self.world_size})")

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, writes files and shows progress."""
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        """The first process of its machine (LOCAL_RANK 0): where that machine shows progress."""
        return self.local_rank == 0

    # ------------------------------------------------------------------ model
    def wrap(self, model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """The module to call in the loop (a DataParallel / DDP wrapper, or the model itself),
        also kept as :attr:`wrapped`."""
        self.wrapped = model
        return model

    def no_sync(self, wrapped: nn.Module, skip: bool):
        """Context for one micro-step's backward: with ``skip`` (a non-final micro-step of an
        accumulation window) the gradients stay local to the process."""
        return _NO_CONTEXT

    def check_gradients(self, wrapped: nn.Module, named_params) -> None:
        """Called once, after the first window's backward and before its step: raises when the
        gradients cannot be reduced as they are."""

    def explain_forward_error(self, error: RuntimeError) -> TrainerError | None:
        """A TrainerError naming the fix for an error raised by the wrapped forward, or None."""
        return None

    # ------------------------------------------------------------------ collectives
    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks, in place."""
        return tensor

    def sum_over_ranks(self, value: float) -> float:
        """A number summed over ranks."""
        return value

    def all_gather_rows(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (shapes may differ in dim 0 only), in rank order."""
        return [tensor]

    def all_gather_bytes(self, data: bytes) -> list[bytes]:
        """Every rank's ``data`` (any length, empty too), in rank order."""
        return [data]

    def barrier(self) -> None:
        """Wait until every rank gets here."""

    # ------------------------------------------------------------------ data
    def eval_indices(self, n: int) -> list[int]:
        """This rank's share of an evaluation set: ``rank::world_size``, no padding, so each
        example is seen exactly once; :func:`interleave` restores dataset order."""
        return list(range(self.rank, n, self.world_size))


class SingleDeviceStrategy(Strategy):
    """One process on one device."""


class DataParallelStrategy(Strategy):
    """One process driving ``n_gpu`` GPUs with ``nn.DataParallel`` (the 2018 scripts' way): each
    micro-batch is split over the GPUs, whose losses come back one per GPU."""

    kind = "dp"

    def __init__(self, n_gpu: int):
        super().__init__(torch.device("cuda", 0))
        self.n_gpu = self.devices_per_process = n_gpu

    def wrap(self, model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        self.wrapped = nn.DataParallel(model)
        return self.wrapped


class DDPStrategy(Strategy):
    """One process per device (``world_size`` in all, started by torchrun), gradients
    all-reduced by DistributedDataParallel on each window's final backward."""

    kind = "ddp"
    gradients_final_in_hooks = False

    def wrap(self, model: nn.Module, find_unused_parameters: bool = False) -> nn.Module:
        """``find_unused_parameters``: let DDP walk the autograd graph after each forward to
        mark parameters that got no gradient as ready, so a model with parameters unused in
        forward trains instead of stalling the reduction (costs a graph walk per step, hence
        off by default)."""
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.wrapped = nn.parallel.DistributedDataParallel(
            model, device_ids=ids, find_unused_parameters=find_unused_parameters)
        _wrapping_strategies.add(self)
        return self.wrapped

    def release(self) -> None:
        """Drop the DDP wrapper (its reducer holds the process group), before the group ends."""
        self.wrapped = None

    def no_sync(self, wrapped: nn.Module, skip: bool):
        """DDP keeps a skipped micro-step's gradients local; the final micro-step's backward
        all-reduces them, summed over the window."""
        return wrapped.no_sync() if skip else _NO_CONTEXT

    def check_gradients(self, wrapped: nn.Module, named_params) -> None:
        """Without find_unused_parameters, a trainable parameter with no gradient after the
        first window means DDP's reduction never finished: say so before a step."""
        if wrapped.find_unused_parameters:
            return
        ignored = wrapped.parameters_to_ignore
        unused = [n for n, p in named_params if p.grad is None and n not in ignored]
        if unused:
            shown = ", ".join(unused[:5]) + (f" and {len(unused) - 5} more"
                                             if len(unused) > 5 else "")
            raise TrainerError(
                f"parameters {shown} got no gradient (forward did not use them), so DDP cannot "
                "reduce the gradients: pass find_unused_parameters=True to the Trainer, or set "
                "requires_grad=False on parameters that are never used")

    def explain_forward_error(self, error: RuntimeError) -> TrainerError | None:
        if any(m in str(error) for m in _DDP_UNUSED):
            return TrainerError(
                "a parameter got no gradient in an earlier step (forward did not use it "
                "for that batch), so DDP could not reduce the gradients: pass "
                "find_unused_parameters=True to the Trainer")
        return None

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def sum_over_ranks(self, value: float) -> float:
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        return float(self.all_reduce_sum(total))

    def all_gather_rows(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        tensor = tensor.to(self.device)  # the backend's device (nccl: this GPU; gloo: any)
        n = torch.tensor([tensor.shape[0]], device=tensor.device)
        sizes = [torch.zeros_like(n) for _ in range(self.world_size)]
        dist.all_gather(sizes, n)
        longest = int(max(int(s) for s in sizes))
        padded = tensor.new_zeros((longest, *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(parts, padded.contiguous())
        return [part[: int(size)] for part, size in zip(parts, sizes)]

    def all_gather_bytes(self, data: bytes) -> list[bytes]:
        local = (torch.frombuffer(bytearray(data), dtype=torch.uint8) if data
                 else torch.zeros(0, dtype=torch.uint8))
        return [part.cpu().numpy().tobytes() for part in self.all_gather_rows(local)]

    def barrier(self) -> None:
        if self.device.type == "cuda":
            dist.barrier(device_ids=[self.device.index])
        else:
            dist.barrier()


# How the backends say that another process stopped answering or went away.
_TIMED_OUT = ("Timed out waiting", "operation timeout", "Socket Timeout")
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe")


def explain_collective_error(error: BaseException) -> str | None:
    """One line for an error that a collective raised because another process of the run
    stopped answering (the process group timeout) or went away; None for any other error."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    text = str(error)
    if any(m in text for m in _TIMED_OUT):
        return ("a collective operation got no answer from another process within the process "
                "group timeout: a process on another machine stopped or hangs, or the network "
                "between the machines failed; see every machine's log. The timeout is "
                "--ddp_timeout (Trainer: ddp_timeout): raise it only when one process may work "
                f"alone longer (e.g. a first download on one machine). ({text.strip()[-160:]})")
    if any(m in text for m in _PEER_GONE):
        return ("another process of the run closed its connection: it stopped or failed "
                f"(see its log), or its machine went down. ({text.strip()[-160:]})")
    return None


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


def setup(device: str | torch.device | None = None, backend: str | None = None,
          timeout: float | None = None) -> Strategy:
    """Read the launcher's environment, start the process group if there are several
    processes, and pick the strategy.

    - WORLD_SIZE > 1 (torchrun): DDP; device ``cuda:LOCAL_RANK`` with nccl when CUDA is
      available, else the CPU with gloo. The process group is initialised once and reused;
      ``timeout`` (seconds, default :data:`DEFAULT_TIMEOUT_S`) bounds how long its collectives
      wait for the other processes. A group started here is ended by :func:`shutdown` at exit.
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
            _start_group(chosen, rank, world_size,
                         DEFAULT_TIMEOUT_S if timeout is None else timeout)
        return DDPStrategy(device, rank=dist.get_rank(), local_rank=local_rank,
                           world_size=dist.get_world_size())
    if device is None and torch.cuda.device_count() > 1:
        global _hinted_torchrun
        if not _hinted_torchrun:
            logger.info("Using DataParallel over %d GPUs in one process; "
                        "`torchrun --nproc_per_node=%d script.py` is faster (one process per GPU).",
                        torch.cuda.device_count(), torch.cuda.device_count())
            _hinted_torchrun = True
        return DataParallelStrategy(torch.cuda.device_count())
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return SingleDeviceStrategy(device)



def _start_group(backend: str, rank: int, world_size: int, timeout: float) -> None:
    global _started_group, _atexit_registered
    # This module binds ``group=group.WORLD`` as default arguments when first imported (DDP
    # imports it through torch._dynamo): imported after the group exists, those defaults hold
    # the group for good, so destroying it no longer frees it. Imported first, they hold None.
    import torch.distributed.nn.functional  # noqa: F401

    dist.init_process_group(backend=backend, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=timeout))
    _started_group = True
    if not _atexit_registered:
        atexit.register(shutdown)
        _atexit_registered = True


def shutdown() -> None:
    """End the process group that :func:`setup` started (nothing when it started none, or the
    group has ended); registered with ``atexit``, and safe to call earlier.

    The DDP wrappers made here are released first (their reducers hold the group), so
    destroying the group drops its last reference and the backend joins its worker threads now,
    while Python is fully alive. Left to interpreter exit, a gloo worker thread can drop the last
    reference to a tensor after finalisation has begun; taking the GIL then ends that thread by
    a forced unwind, which C++ turns into ``std::terminate`` ("terminate called without an
    active exception", SIGABRT). Trainers that used the group cannot run after this.
    """
    global _started_group
    if not _started_group:
        return
    _started_group = False
    for strategy in list(_wrapping_strategies):
        strategy.release()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
