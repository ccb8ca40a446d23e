"""The loaders the Trainer builds from map-style datasets: training shards that change order each
epoch and can skip what a resumed run already saw, and evaluation shards that see each example
exactly once over all ranks (and their outputs gathered back in dataset order)."""
from __future__ import annotations

import itertools
import json

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, SequentialSampler, Subset

from bert_hub.distributed import Strategy, interleave
from bert_hub.errors import TrainerError


def is_map_dataset(data) -> bool:
    """``__len__`` + ``__getitem__``, and not a loader or an iterable dataset."""
    return hasattr(data, "__len__") and hasattr(data, "__getitem__") and not isinstance(
        data, (DataLoader, torch.utils.data.IterableDataset))


class SkipSampler(Sampler):
    """The first ``skip`` indices of a deterministic sampler dropped (mid-epoch resume)."""

    def __init__(self, sampler: Sampler, skip: int):
        self.sampler, self.skip = sampler, skip

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


def train_loader(data, strategy: Strategy, *, batch_size: int, seed: int, epoch: int,
                 skip: int, collate_fn, num_workers: int) -> DataLoader:
    """This rank's shard of ``data`` for ``epoch`` in batches of ``batch_size``, its first
    ``skip`` examples dropped. The order depends on ``seed`` and ``epoch`` only (the same on
    every rank, and after a resume)."""
    sampler = DistributedSampler(data, num_replicas=strategy.world_size, rank=strategy.rank,
                                 shuffle=True, seed=seed, drop_last=False)
    sampler.set_epoch(epoch)  # a new order each epoch, the same on every rank
    if skip:
        sampler = SkipSampler(sampler, skip)
    generator = torch.Generator()  # worker seeds, kept off the global RNG (exact resume)
    generator.manual_seed(seed * 1_000_003 + epoch)
    return DataLoader(data, batch_size=batch_size, sampler=sampler, collate_fn=collate_fn,
                      num_workers=num_workers, pin_memory=strategy.device.type == "cuda",
                      generator=generator, drop_last=False)


def eval_loader(data, strategy: Strategy, *, batch_size: int, collate_fn,
                num_workers: int) -> DataLoader:
    """This rank's examples ``rank::world_size`` of ``data``, in order."""
    shard = Subset(data, strategy.eval_indices(len(data)))
    return DataLoader(shard, batch_size=batch_size, sampler=SequentialSampler(shard),
                      collate_fn=collate_fn, num_workers=num_workers,
                      pin_memory=strategy.device.type == "cuda")


def _layout(parts: list) -> list | None:
    """[dtype, shape past dim 0] of each output in per-batch ``parts`` (None: no batches)."""
    if not parts:
        return None
    first = parts[0] if isinstance(parts[0], tuple) else (parts[0],)
    return [[str(t.dtype).removeprefix("torch."), list(t.shape[1:])] for t in first]


def gather_in_order(parts: list, strategy: Strategy):
    """This rank's per-batch outputs of an evaluation shard (each a tensor or a tuple of
    tensors) -> the whole dataset's, in dataset order, on the CPU. A rank whose shard is empty
    (fewer examples than ranks) takes the outputs' layout from the others."""
    layouts = [json.loads(b) for b in strategy.all_gather_bytes(json.dumps(_layout(parts)).encode())]
    known = [layout for layout in layouts if layout is not None]
    if not known:
        raise TrainerError("there are no outputs to gather: the dataset is empty")
    if any(layout != known[0] for layout in known):
        raise TrainerError(f"the ranks' outputs have different shapes ({known}): pad every "
                           "example to the same length (e.g. max_seq_length) so they can be "
                           "gathered")
    columns = []
    for i, (dtype, shape) in enumerate(known[0]):
        batches = [p[i] if isinstance(p, tuple) else p for p in parts]
        try:
            local = (torch.cat(batches) if batches
                     else torch.empty((0, *shape), dtype=getattr(torch, dtype)))
        except RuntimeError as error:
            shapes = sorted({tuple(b.shape[1:]) for b in batches})
            raise TrainerError(f"outputs of different batches have different shapes {shapes}: "
                               "pad every example to the same length (e.g. max_seq_length) so "
                               "they can be concatenated") from error
        columns.append(interleave([g.cpu() for g in strategy.all_gather_rows(local)]))
    return tuple(columns) if len(columns) > 1 else columns[0]
