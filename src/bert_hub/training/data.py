"""The loaders the Trainer builds from map-style datasets: training shards that change order each
epoch and can skip what a resumed run already saw, and evaluation shards that see each example
exactly once over all ranks."""
from __future__ import annotations

import itertools

import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler, SequentialSampler, Subset

from bert_hub.distributed import Strategy


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
