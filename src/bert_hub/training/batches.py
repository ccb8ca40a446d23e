"""The model contract: how a batch reaches the model, what comes back, and what counts as labels.

- A batch reaches the model as ``model(**batch)`` (a dict), ``model(*batch)`` (a tuple or list)
  or ``model(batch)`` (anything else), after its tensors are moved to the device.
- With labels in the batch, forward returns the loss: a scalar tensor, a tuple / list starting
  with it, or a mapping with a ``"loss"`` entry. The loss is the mean over the batch's labelled
  items (what ``CrossEntropyLoss`` returns).
- Without labels, forward returns the predictions (a tensor or a tuple of tensors).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable

import torch
from torch import nn

from bert_hub.errors import TrainerError

# Batch-dict keys taken to hold labels (the 0.6.2 heads' and transformers' argument names).
LABEL_NAMES = ("labels", "label_ids", "label", "masked_lm_labels", "next_sentence_label",
               "start_positions", "end_positions")


def count_labels(key: str | int = "labels", ignore_index: int = -1) -> Callable[[Any], int]:
    """A ``loss_weight`` for token-level losses: the number of labels that are not
    ``ignore_index`` in ``batch[key]`` (masked LM: ``count_labels("masked_lm_labels", -1)``;
    token classification with transformers' convention: ``count_labels("labels", -100)``)."""
    def weight(batch) -> int:
        return int((batch[key] != ignore_index).sum())
    weight.__name__ = f"count_labels({key!r}, ignore_index={ignore_index})"
    return weight


def _first_tensor(batch) -> torch.Tensor:
    values = batch.values() if isinstance(batch, Mapping) else (
        batch if isinstance(batch, (tuple, list)) else [batch])
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise TrainerError("a batch holds no tensor to count examples by: give the Trainer a "
                       "loss_weight=callable(batch) -> number of items")


def count_examples(batch) -> int:
    """The default ``loss_weight``: examples in the batch (dim 0 of its first tensor)."""
    return int(_first_tensor(batch).shape[0])


def to_device(batch, device: torch.device):
    """The batch with every tensor (also nested in dicts, tuples, lists) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def call(model: nn.Module, batch):
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def loss_of(output, replicas: int = 1) -> torch.Tensor:
    """The loss in a forward's output; ``replicas`` losses (one per GPU) under DataParallel."""
    loss = output
    if isinstance(output, Mapping):
        loss = output.get("loss")
    elif isinstance(output, (tuple, list)) and output:
        loss = output[0]
    if not isinstance(loss, torch.Tensor) or not loss.is_floating_point() or not (
            loss.dim() == 0 or (replicas > 1 and loss.shape == (replicas,))):
        raise TrainerError(
            f"the model returned {type(output).__name__} but the Trainer needs the loss: with "
            "labels in the batch, forward must return a scalar loss tensor, a tuple starting "
            "with it, or a mapping with a 'loss' entry")
    # DataParallel returns one loss per GPU (the 2018 scripts' mean); a scalar is kept as is
    return loss if loss.dim() == 0 else loss.mean()


def predictions_of(output):
    """Model output -> predictions: a tensor, or a tuple of tensors."""
    if isinstance(output, Mapping):
        output = tuple(v for k, v in output.items() if k != "loss")
    if isinstance(output, (tuple, list)):
        output = tuple(output)
        return output[0] if len(output) == 1 else output
    return output


def split_labels(batch, label_names: Sequence[str | int] | None):
    """(batch without labels, labels or None): dict keys named in ``label_names`` (default
    :data:`LABEL_NAMES`), or tuple positions (default: the last)."""
    if isinstance(batch, Mapping):
        keys = [k for k in (label_names or LABEL_NAMES) if k in batch]
        if not keys:
            return batch, None
        rest = {k: v for k, v in batch.items() if k not in keys}
        labels = tuple(batch[k] for k in keys)
        return rest, labels[0] if len(labels) == 1 else labels
    if isinstance(batch, (tuple, list)):
        n = len(batch)
        positions = sorted({p % n for p in (label_names or (-1,))})
        rest = type(batch)(v for i, v in enumerate(batch) if i not in positions)
        labels = tuple(batch[p] for p in positions)
        return rest, labels[0] if len(labels) == 1 else labels
    raise TrainerError("evaluate() needs batches that are dicts or tuples holding labels: "
                       "use predict() for unlabelled data")


def without_label_keys(batch, label_names: Sequence[str | int] | None):
    """A dict batch without its label keys (predict); other batches as they are."""
    if isinstance(batch, Mapping):
        names = label_names or LABEL_NAMES
        return {k: v for k, v in batch.items() if k not in names}
    return batch


def detach(value):
    """Predictions or labels -> float32 (if floating) CPU tensors, for gathering."""
    if isinstance(value, tuple):
        return tuple(detach(v) for v in value)
    if not isinstance(value, torch.Tensor):
        raise TrainerError(f"the model returned a {type(value).__name__} as predictions: "
                           "forward without labels must return a tensor or a tuple of tensors")
    value = value.detach()
    return (value.float() if value.is_floating_point() else value).cpu()


def to_numpy(value):
    if isinstance(value, tuple):
        return tuple(to_numpy(v) for v in value)
    return value.numpy()
