"""Checkpoints: ``checkpoint-<step>`` folders in the output folder, written atomically (never
partial), read back with the checks that make a resume exact, listed, pruned and found again on
resume; the RNG state of every rank goes with them.

The output folder may be one shared folder or, on a cluster without a shared file system, a
folder at the same path on each machine's own disk. Which ranks share a disk is found once, by
each rank writing a marker file and looking for the others'; the lowest rank of each disk
writes a complete copy of every checkpoint there (the weights and optimizer state are the same
on every rank; the RNG states of all ranks are gathered), so each machine resumes from its
own disk, and from any copy of a checkpoint folder.

A checkpoint folder::

    model.safetensors     model weights; tied weights stored once, their aliases in the metadata
    optimizer.pt          {"optimizer", "scheduler", "scaler"} state dicts
    rng_state_<rank>.pt   Python, NumPy, torch (and CUDA) RNG states of each rank
    trainer_state.json    step, epoch, position in the epoch, loss sums, and what must match
    bert_config.json      the model's config, when it has one (``config.to_json_file``): with
                          model.safetensors it makes the folder a model folder, so
                          ``from_pretrained(checkpoint)`` loads the weights

Every ``.pt`` file loads with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import io
import json
import logging
import os
import random
import re
import shutil
import uuid
from collections.abc import Mapping

import numpy as np
import torch

from bert_hub.distributed import Strategy
from bert_hub.errors import TrainerError
from bert_hub.filenames import CONFIG_NAME, SAFE_WEIGHTS_NAME
from bert_hub.json_files import read_json
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


# trainer_state.json entries a resume reads
STATE_KEYS = ("global_step", "epoch", "micro_in_epoch", "loss_total", "windows_total",
              "loss_interval", "windows_interval", "last_lr")


def check_fits(weights: Mapping[str, torch.Tensor], model_state: Mapping[str, torch.Tensor],
               file: str) -> None:
    """A TrainerError naming every name the file and the model do not share, and every shape
    that differs (name, both shapes, the file): the model resumed must be the one saved."""
    problems = [f"{k}: checkpoint {tuple(weights[k].shape)}, model {tuple(v.shape)}"
                for k, v in model_state.items()
                if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    missing = sorted(set(model_state) - set(weights))
    extra = sorted(set(weights) - set(model_state))
    if missing:
        problems.append(f"not in the checkpoint: {', '.join(missing[:10])}"
                        f"{' ...' if len(missing) > 10 else ''}")
    if extra:
        problems.append(f"not in the model: {', '.join(extra[:10])}"
                        f"{' ...' if len(extra) > 10 else ''}")
    if problems:
        raise TrainerError(f"the weights in {file!r} do not fit the model being trained:\n  "
                           + "\n  ".join(problems) + "\nresume with the model (and config) the "
                           "checkpoint was written with, or start afresh with "
                           "train(resume=False) / a new output_dir")


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


def rng_state_bytes() -> bytes:
    """:func:`rng_state` as the bytes of an ``rng_state_<rank>.pt`` file."""
    buffer = io.BytesIO()
    torch.save(rng_state(), buffer)
    return buffer.getvalue()


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
    (None: all). One rank per disk writes (rank 0 alone when the folder is shared), with
    barriers between the steps; every rank reads its own disk's copy."""

    def __init__(self, output_dir: str | None, keep: int | None, strategy: Strategy):
        self.output_dir, self.keep, self.strategy = output_dir, keep, strategy
        self._writes: dict[str, bool] = {}  # folder -> whether this rank writes there

    def path_for(self, step: int) -> str:
        if self.output_dir is None:
            raise TrainerError("save_checkpoint() has nowhere to write: pass output_dir=... "
                               "to the Trainer or save_checkpoint(path)")
        return os.path.join(self.output_dir, f"checkpoint-{step}")

    def writes(self, folder: str) -> bool:
        """Whether this rank writes checkpoints in ``folder``: the lowest rank among those that
        see the same folder (the same disk). Found at the first call for a folder, on every
        rank together (a collective)."""
        folder = os.path.abspath(folder)
        if folder not in self._writes:
            self._writes[folder] = self._find_writes(folder)
        return self._writes[folder]

    def _find_writes(self, folder: str) -> bool:
        strategy = self.strategy
        os.makedirs(folder, exist_ok=True)
        if strategy.world_size == 1:
            return True
        token = strategy.all_gather_bytes(uuid.uuid4().hex.encode())[0].decode()  # rank 0's
        def marker(rank): return os.path.join(folder, f".rank-{token}-{rank}")
        with open(marker(strategy.rank), "w", encoding="utf-8"):
            pass
        strategy.barrier()
        # looked up by name: a fresh name has no cached answer, even on NFS
        same_disk = [r for r in range(strategy.world_size) if os.path.exists(marker(r))]
        strategy.barrier()
        os.remove(marker(strategy.rank))
        writes = same_disk[0] == strategy.rank
        if writes and len(same_disk) < strategy.world_size:
            logger.info("%s is not shared by all processes (this copy: rank %s): rank %d "
                        "writes a complete copy of each checkpoint here", folder,
                        _ranges(same_disk), strategy.rank)
        return writes

    def save(self, path: str, weights: Mapping[str, torch.Tensor], training: dict,
             state: dict, config=None) -> str:
        """Write ``path`` (through ``path.tmp``, renamed when complete) on every disk, then
        prune old ones. weights: the model's state dict; training: the optimizer step's state
        dicts; state: trainer_state.json's content (the same on every rank); config: the
        model's config, written as bert_config.json when it has ``to_json_file`` (any other
        value, None too, writes none: the Trainer trains any module)."""
        strategy = self.strategy
        rng_files = strategy.all_gather_bytes(rng_state_bytes())  # every rank's, to every disk
        writes = self.writes(os.path.dirname(os.path.abspath(path)))
        tmp = path + ".tmp"
        if writes:
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            for rank, data in enumerate(rng_files):
                with open(os.path.join(tmp, f"rng_state_{rank}.pt"), "wb") as f:
                    f.write(data)
            save_weights(weights, os.path.join(tmp, MODEL_FILE))
            torch.save(training, os.path.join(tmp, OPTIMIZER_FILE))
            if callable(getattr(config, "to_json_file", None)):
                config.to_json_file(os.path.join(tmp, CONFIG_NAME))
            with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1)
        strategy.barrier()  # complete on every disk
        if writes:
            shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
        # renamed on every disk before any disk drops an older one: a crash in between leaves
        # a checkpoint that every disk holds
        strategy.barrier()
        if writes:
            self.prune()
        return path

    def load(self, path: str, expected: Mapping[str, object],
             model_state: Mapping[str, torch.Tensor]):
        """(weights, training, state) of the checkpoint at ``path``, this rank's RNG state
        restored. ``expected``: this run's values of :data:`MUST_MATCH`; ``model_state``: the
        state dict of the model it goes into (names and shapes checked here, with the file
        named, rather than by ``load_state_dict``)."""
        state_file = os.path.join(path, STATE_FILE)
        if not os.path.isfile(state_file):
            raise TrainerError(f"{path} is not a complete checkpoint (no {STATE_FILE}): pass a "
                               "checkpoint-<step> folder written by save_checkpoint()")
        fix = "pass a checkpoint-<step> folder written by save_checkpoint()"
        state = read_json(state_file, TrainerError, "trainer state", fix=fix)
        absent = [k for k in MUST_MATCH + STATE_KEYS if not isinstance(state, dict) or k not in state]
        if absent:
            raise TrainerError(f"trainer state {state_file!r} lacks {', '.join(absent)}; {fix}")
        for key in MUST_MATCH:
            if state[key] != expected[key]:
                raise TrainerError(
                    f"checkpoint {path} was written with {key}={state[key]}, this run has "
                    f"{key}={expected[key]}: resume with the same {key} (the position in the "
                    "epoch depends on it), or start afresh with train(resume=False) / a new "
                    "output_dir")
        weights = load_weights(os.path.join(path, MODEL_FILE))
        check_fits(weights, model_state, os.path.join(path, MODEL_FILE))
        optimizer_file = os.path.join(path, OPTIMIZER_FILE)
        training = torch.load(optimizer_file, map_location="cpu", weights_only=True)
        rng_file = os.path.join(path, f"rng_state_{self.strategy.rank}.pt")
        set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=True))
        return weights, training, state

    def _steps(self) -> list[int]:
        """Steps of the complete checkpoints in output_dir (this rank's copy), oldest first."""
        if self.output_dir is None or not os.path.isdir(self.output_dir):
            return []
        found = []
        for name in os.listdir(self.output_dir):
            match = CHECKPOINT_RE.match(name)
            if match and os.path.isfile(os.path.join(self.output_dir, name, STATE_FILE)):
                found.append(int(match.group(1)))
        return sorted(found)

    def list(self) -> list[str]:
        """Complete checkpoints in output_dir, oldest first."""
        return [self.path_for(step) for step in self._steps()]

    def prune(self) -> None:
        if self.keep is None:
            return
        for old in self.list()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def remove_all(self) -> None:
        """Delete the checkpoints in output_dir on every disk (a new run starts there: an
        earlier run's checkpoints must not be resumed, or pruned as if they were its own)."""
        if self.output_dir is None or not self.writes(self.output_dir):
            return
        old = self.list()
        if old:
            logger.info("starting afresh: removing %d checkpoint(s) of an earlier run from %s",
                        len(old), self.output_dir)
        for path in old:
            shutil.rmtree(path, ignore_errors=True)

    def resume_target(self, resume) -> str | None:
        """The checkpoint train(resume=...) continues from, or None to start afresh. "auto" and
        True take the newest checkpoint that every rank's copy of output_dir holds."""
        if resume is False or resume is None:
            return None
        if resume not in (True, "auto"):
            return os.fspath(resume)
        held = [json.loads(b) for b in
                self.strategy.all_gather_bytes(json.dumps(self._steps()).encode())]
        common = set(held[0]).intersection(*held[1:])
        if common:
            path = self.path_for(max(common))
            logger.info("resuming from %s", path)
            return path
        if any(held):
            shown = "; ".join(f"rank {r}: {steps or 'none'}" for r, steps in enumerate(held))
            raise TrainerError(
                f"the copies of output_dir {self.output_dir!r} hold no checkpoint in common "
                f"(steps per rank: {shown}): copy the newest checkpoint-<step> folder to the "
                "output_dir of every machine, or start afresh with train(resume=False) or a "
                "new output_dir")
        if resume is True:
            raise TrainerError(f"resume=True but output_dir {self.output_dir!r} holds no "
                               "checkpoint: pass resume='auto' to start afresh when there is none")
        return None


def _ranges(ranks: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2, 5"."""
    runs: list[list[int]] = []
    for rank in ranks:
        if runs and runs[-1][1] == rank - 1:
            runs[-1][1] = rank
        else:
            runs.append([rank, rank])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)
