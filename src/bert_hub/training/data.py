"""The loaders the Trainer builds from map-style datasets: training shards that change order each
epoch and can skip what a resumed run already saw, and evaluation shards that see each example
exactly once over all ranks, in batches of similar length (a model that drops padding, like
bert_hub's, then computes little beyond the real tokens), their outputs put back in order."""
from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Optional

import torch
from torch.utils.data import (DataLoader, DistributedSampler, Sampler, StackDataset, Subset,
                              TensorDataset)

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
    """This rank's examples ``rank::world_size`` of ``data``, longest first (see
    :class:`LengthSortedSampler`); :func:`in_shard_order` puts their outputs back in order."""
    shard = Subset(data, strategy.eval_indices(len(data)))
    return DataLoader(shard, batch_size=batch_size, sampler=LengthSortedSampler(shard),
                      collate_fn=collate_fn, num_workers=num_workers,
                      pin_memory=strategy.device.type == "cuda")


def _layout(parts: list) -> list | None:
    """[dtype, shape past dim 0] of each output in per-batch ``parts`` (None: no batches)."""
    if not parts:
        return None
    first = parts[0] if isinstance(parts[0], tuple) else (parts[0],)
    return [[str(t.dtype).removeprefix("torch."), list(t.shape[1:])] for t in first]


def gather_in_order(parts: list, strategy: Strategy, sampler: Optional[Sampler] = None):
    """This rank's per-batch outputs of an evaluation shard (each a tensor or a tuple of
    tensors), in the order its eval loader's ``sampler`` gave them -> the whole dataset's, in
    dataset order, on the CPU. A rank whose shard is empty (fewer examples than ranks) takes the
    outputs' layout from the others."""
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
        local = in_shard_order(local, sampler)
        columns.append(interleave([g.cpu() for g in strategy.all_gather_rows(local)]))
    return tuple(columns) if len(columns) > 1 else columns[0]


def in_shard_order(rows: torch.Tensor, sampler: Sampler) -> torch.Tensor:
    """Per-example outputs (N, ...) in the order ``sampler`` (an eval loader's) gave the examples
    -> in the order of its dataset (the shard)."""
    order = getattr(sampler, "order", None)
    if order is None:
        return rows
    inverse = torch.empty(len(order), dtype=torch.long)
    inverse[torch.as_tensor(order, dtype=torch.long)] = torch.arange(len(order))
    return rows.index_select(0, inverse.to(rows.device))


class LengthSortedSampler(Sampler):
    """The indices of ``data`` longest example first (ties in dataset order), so each batch
    holds examples of similar length; ``order`` is that permutation. Dataset order when an
    example's length cannot be read (see :func:`example_lengths`)."""

    def __init__(self, data):
        lengths = example_lengths(data)
        self.order = None if lengths is None else \
            sorted(range(len(lengths)), key=lambda i: -lengths[i])
        self.size = len(data)

    def __iter__(self):
        return iter(self.order if self.order is not None else range(self.size))

    def __len__(self) -> int:
        return self.size


# Dict keys read as an example's mask (real tokens 1) or ids (padding 0), in this order.
MASK_KEYS = ("attention_mask", "input_mask")
IDS_KEYS = ("input_ids",)


def example_lengths(data) -> Optional[list]:
    """Each example's token count: the sum of its attention mask (dict key ``attention_mask``
    or ``input_mask``), else the non-zero entries of its ids (dict key ``input_ids``, or the
    first integer tensor of a tuple / list example: 0 is BERT's padding id). None when an
    example has neither. Read column-wise from a ``TensorDataset`` or a ``StackDataset`` of
    tensors (under ``Subset``s), else example by example."""
    indices = None
    while isinstance(data, Subset):
        indices = list(data.indices) if indices is None else [data.indices[i] for i in indices]
        data = data.dataset
    columns = data.tensors if isinstance(data, TensorDataset) else \
        data.datasets if isinstance(data, StackDataset) else None
    if columns is not None:
        counts = _token_count(columns, batched=True)
        if counts is not None:
            counts = counts.tolist()
            return counts if indices is None else [counts[i] for i in indices]
    picked = range(len(data)) if indices is None else indices
    counts = []
    for i in picked:
        count = _token_count(data[i], batched=False)
        if count is None:
            return None
        counts.append(int(count))
    return counts


def _token_count(example, batched: bool):
    """The token count of one example (or of every row of a column-wise one), or None."""
    tensor, is_mask = None, False
    if isinstance(example, Mapping):
        for keys, mask in ((MASK_KEYS, True), (IDS_KEYS, False)):
            key = next((k for k in keys if k in example), None)
            if key is not None:
                tensor, is_mask = example[key], mask
                break
    elif isinstance(example, (tuple, list)):
        tensor = next((t for t in example if torch.is_tensor(t) and t.dim() >= 1 + batched
                       and not t.is_floating_point() and not t.is_complex()), None)
    if tensor is None or isinstance(tensor, (str, bytes)) or (batched and
                                                              not torch.is_tensor(tensor)):
        return None
    tensor = torch.as_tensor(tensor)
    if not is_mask:
        tensor = tensor != 0
    if batched:
        return tensor.reshape(len(tensor), -1).sum(dim=1) if tensor.dim() >= 2 else None
    return tensor.sum()
