"""Checkpoints: ``checkpoint-<step>`` folders in the output folder, written atomically (never
partial), read back with the checks that make a resume exact, listed, pruned and found again on
resume; the RNG state of every rank goes with them.

A checkpoint folder::

    model.safetensors     model weights; tied weights stored once, their aliases in the metadata
    optimizer.pt          {"optimizer", "scheduler", "scaler"} state dicts
    rng_state_<rank>.pt   Python, NumPy, torch (and CUDA) RNG states of each rank
    trainer_state.json    step, epoch, position in the epoch, loss sums, and what must match

Every ``.pt`` file loads with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from collections.abc import Mapping

import numpy as np
import torch

from bert_hub.distributed import Strategy
from bert_hub.errors import TrainerError
from bert_hub.filenames import SAFE_WEIGHTS_NAME
# The weights module owns the file format (the same tied-weights rule as save_pretrained, so a
# checkpoint's model.safetensors loads with from_pretrained): load_weights restores the aliases.
from bert_hub.weights import load_weights
from bert_hub.weights import save_safetensors as save_weights

logger = logging.getLogger("bert_hub.trainer")  # what users configure for the Trainer's lines

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
MODEL_FILE = SAFE_WEIGHTS_NAME
OPTIMIZER_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.json"
# trainer_state.json entries a resumed run must share (the position in the epoch depends on them)
MUST_MATCH = ("world_size", "batch_size", "gradient_accumulation_steps", "seed")


# ---------------------------------------------------------------------------- random state
def seed_everything(seed: int, device: torch.device) -> None:
    """Python, NumPy and torch (every CUDA device too) seeded with ``seed``."""
    random.seed(seed)
    np.random.seed(seed)
    if device.type == "cpu" and not torch.cuda.is_available():
        # what torch.manual_seed does here, without queueing seeds for absent devices
        torch.default_generator.manual_seed(seed)
    else:
        torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG's state as tensors and plain values (loads with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ---------------------------------------------------------------------------- folders
class Checkpoints:
    """The checkpoints of one run: ``output_dir/checkpoint-<step>``, the newest ``keep`` kept
    (None: all). Writes happen on rank 0, the RNG state on every rank, with barriers between."""

    def __init__(self, output_dir: str | None, keep: int | None, strategy: Strategy):
        self.output_dir, self.keep, self.strategy = output_dir, keep, strategy

    def path_for(self, step: int) -> str:
        if self.output_dir is None:
            raise TrainerError("save_checkpoint() has nowhere to write: pass output_dir=... "
                               "to the Trainer or save_checkpoint(path)")
        return os.path.join(self.output_dir, f"checkpoint-{step}")

    def save(self, path: str, weights: Mapping[str, torch.Tensor], training: dict,
             state: dict) -> str:
        """Write ``path`` (through ``path.tmp``, renamed when complete) and prune old ones.
        weights: the model's state dict; training: the optimizer step's state dicts; state:
        trainer_state.json's content (rank 0's is written)."""
        strategy = self.strategy
        tmp = path + ".tmp"
        if strategy.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
        strategy.barrier()
        torch.save(rng_state(), os.path.join(tmp, f"rng_state_{strategy.rank}.pt"))
        if strategy.is_main:
            save_weights(weights, os.path.join(tmp, MODEL_FILE))
            torch.save(training, os.path.join(tmp, OPTIMIZER_FILE))
        strategy.barrier()
        if strategy.is_main:
            with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1)
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
            self.prune()
        strategy.barrier()
        return path

    def load(self, path: str, expected: Mapping[str, object]):
        """(weights, training, state) of the checkpoint at ``path``, this rank's RNG state
        restored. ``expected``: this run's values of :data:`MUST_MATCH`."""
        state_file = os.path.join(path, STATE_FILE)
        if not os.path.isfile(state_file):
            raise TrainerError(f"{path} is not a complete checkpoint (no {STATE_FILE}): pass a "
                               "checkpoint-<step> folder written by save_checkpoint()")
        with open(state_file, encoding="utf-8") as f:
            state = json.load(f)
        for key in MUST_MATCH:
            if state[key] != expected[key]:
                raise TrainerError(
                    f"checkpoint {path} was written with {key}={state[key]}, this run has "
                    f"{key}={expected[key]}: resume with the same {key} (the position in the "
                    "epoch depends on it), or start afresh with train(resume=False) / a new "
                    "output_dir")
        weights = load_weights(os.path.join(path, MODEL_FILE))
        training = torch.load(os.path.join(path, OPTIMIZER_FILE), map_location="cpu",
                              weights_only=True)
        rng_file = os.path.join(path, f"rng_state_{self.strategy.rank}.pt")
        set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=True))
        return weights, training, state

    def list(self) -> list[str]:
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

    def prune(self) -> None:
        if self.keep is None:
            return
        for old in self.list()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def resume_target(self, resume) -> str | None:
        """The checkpoint train(resume=...) continues from, or None to start afresh."""
        if resume is False or resume is None:
            return None
        if resume not in (True, "auto"):
            return os.fspath(resume)
        found = self.list()
        if found:
            logger.info("resuming from %s", found[-1])
            return found[-1]
        if resume is True:
            raise TrainerError(f"resume=True but output_dir {self.output_dir!r} holds no "
                               "checkpoint: pass resume='auto' to start afresh when there is none")
        return None
