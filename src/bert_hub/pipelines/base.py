"""What every pipeline shares: the model and tokenizer, BERT inputs from token ids, length-sorted
padded batches with a progress bar, and turning tokens back into text as ``transformers`` does.

A pipeline reads a model's outputs only at the real positions of each row, never at padding."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from .. import env
from ..errors import InvalidInputError
from ..tokenization import SPECIAL_TOKENS, BertTokenizer

PROGRESS_MIN_INPUTS = 64   # a list this long shows a progress bar (in a terminal or notebook)
# The tokens the WordPiece decoder of transformers glues to the previous one (its `cleanup`).
_CLEANUPS = ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
             (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re"))


@dataclass
class Features:
    """One model input row: ``[CLS] a [SEP] (b [SEP])`` ids, and what the task needs after."""

    input_ids: List[int]
    token_type_ids: List[int]
    extra: Dict[str, Any] = field(default_factory=dict)


class Pipeline:
    """A model, its tokenizer, and the batching they share; subclasses turn inputs into
    ``Features``, run ``forward`` on padded batches and read each row back."""

    task = ""
    #: model classes this task runs (the first is the one ``pipeline()`` loads by name)
    heads: tuple = ()

    def __init__(self, model, tokenizer: BertTokenizer, *, batch_size: int = 8,
                 progress: Optional[bool] = None):
        if not isinstance(tokenizer, BertTokenizer):
            raise InvalidInputError(
                f"tokenizer must be a bert_hub BertTokenizer, got {type(tokenizer).__name__}; load "
                "one with BertTokenizer.from_pretrained(name)")
        if self.heads and not isinstance(model, self.heads):
            raise InvalidInputError(
                f"the {self.task!r} pipeline runs {' or '.join(h.__name__ for h in self.heads)}, "
                f"got {type(model).__name__}; pass model=NAME to load the right one")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive int, got {batch_size!r}")
        self.model = model.eval()
        # A transformers-style model (bert_hub.transformers_compat) is its 0.6.2-style class
        # underneath: the pipelines call that class's forward (positional inputs, tensors out).
        self.forward_model = plain_forward(model)
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.progress = progress
        self.max_length = min(tokenizer.max_len, model.config.max_position_embeddings)
        cls, sep, pad = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]", "[PAD]"])
        self.cls_id, self.sep_id, self.pad_id = cls, sep, pad
        self._special_ids = {tokenizer.vocab[t] for t in SPECIAL_TOKENS if t in tokenizer.vocab}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def id2label(self) -> Dict[int, str]:
        """The model's labels (from its config), else transformers' LABEL_0, LABEL_1, ..."""
        given = getattr(self.model, "id2label", None) or {}
        count = getattr(self.model, "num_labels", len(given))
        return {i: given.get(i, f"LABEL_{i}") for i in range(count)}

    # -- inputs ----------------------------------------------------------------------------------
    def ids(self, tokens) -> List[int]:
        """Ids of tokens the tokenizer made (no length warning: windows and truncation follow)."""
        vocab = self.tokenizer.vocab
        return [vocab[t] for t in tokens]

    def features(self, first: List[int], second: Optional[List[int]] = None, **extra) -> Features:
        """``[CLS] first [SEP] (second [SEP])`` with segment ids; already short enough."""
        ids = [self.cls_id] + first + [self.sep_id]
        types = [0] * len(ids)
        if second is not None:
            ids += second + [self.sep_id]
            types += [1] * (len(second) + 1)
        return Features(ids, types, dict(extra))

    def encode_texts(self, texts: Sequence[str], pairs: Optional[Sequence[str]] = None,
                     max_length: Optional[int] = None) -> List[Features]:
        """BERT rows of texts (or pairs), truncated as the tokenizer does (longest first)."""
        encoded = self.tokenizer.encode_batch(list(texts), list(pairs) if pairs is not None else None,
                                              max_length=max_length or self.max_length,
                                              truncation=True, padding=False, return_tensors=None)
        return [Features(ids, types) for ids, types in zip(encoded["input_ids"],
                                                           encoded["token_type_ids"])]

    # -- batches ---------------------------------------------------------------------------------
    def forward(self, batch: Dict[str, torch.Tensor]):
        """The model's outputs on a padded batch (most heads; a task may read other outputs)."""
        return self.forward_model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])

    def run(self, rows: Sequence[Features], forward: Callable[[Dict[str, torch.Tensor]], Any],
            read: Callable[[Any, int, int], Any]) -> List[Any]:
        """``read(outputs, row_in_batch, length)`` for every row, in the order given.

        Rows are sorted by length and padded per batch (little padding, fewer wasted FLOPs);
        ``forward`` takes the batch's ``input_ids``, ``token_type_ids``, ``attention_mask``
        (each (B, S) on the model's device) and runs under ``torch.inference_mode``."""
        order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))
        results: List[Any] = [None] * len(rows)
        bar = self._progress_bar(len(rows))
        try:
            for begin in range(0, len(order), self.batch_size):
                chosen = order[begin:begin + self.batch_size]
                for i, result in zip(chosen, self.run_batch([rows[i] for i in chosen], forward, read)):
                    results[i] = result
                if bar is not None:
                    bar.update(len(chosen))
        finally:
            if bar is not None:
                bar.close()
        return results

    def run_batch(self, rows: Sequence[Features], forward: Callable[[Dict[str, torch.Tensor]], Any],
                  read: Callable[[Any, int, int], Any], batch: Optional[Dict[str, torch.Tensor]] = None
                  ) -> List[Any]:
        """One batch of ``rows`` as given (a caller that forms its own batches, e.g. a server
        batching across requests): ``read`` per row. ``batch``: ``pad(rows)`` made beforehand."""
        batch = self.pad(rows) if batch is None else batch
        with torch.inference_mode():
            outputs = forward(batch)
        return [read(outputs, i, len(r.input_ids)) for i, r in enumerate(rows)]

    def pad(self, rows: Sequence[Features]) -> Dict[str, torch.Tensor]:
        """``input_ids``, ``token_type_ids``, ``attention_mask``: each (B, S) on the model's
        device, S the longest row."""
        width = max(len(r.input_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)       # (B, S)
        types = torch.zeros((len(rows), width), dtype=torch.long)                 # (B, S)
        mask = torch.zeros((len(rows), width), dtype=torch.long)                  # (B, S)
        for i, r in enumerate(rows):
            n = len(r.input_ids)
            ids[i, :n] = torch.tensor(r.input_ids)
            types[i, :n] = torch.tensor(r.token_type_ids)
            mask[i, :n] = 1
        device = self.device
        return {"input_ids": ids.to(device), "token_type_ids": types.to(device),
                "attention_mask": mask.to(device)}

    def _progress_bar(self, count: int):
        # None: the download bars' rule (a terminal or a notebook, BERT_HUB_DISABLE_PROGRESS
        # unset), for long lists only.
        show = self.progress
        if show is None:
            show = count >= PROGRESS_MIN_INPUTS and env.progress_enabled()
        if not show:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=count, desc=self.task, unit="input", leave=False, dynamic_ncols=True)

    # -- text from tokens ------------------------------------------------------------------------
    def tokens_to_string(self, tokens: Sequence[str]) -> str:
        """transformers' WordPiece decoder: '##' pieces glued to the previous token (not on the
        first token), punctuation and contractions glued too, one token at a time."""
        out = []
        for i, token in enumerate(tokens):
            if i:
                token = token[2:] if token.startswith("##") else " " + token
            for dirty, clean in _CLEANUPS:
                token = token.replace(dirty, clean)
            out.append(token)
        return "".join(out)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._special_ids]
        return self.tokens_to_string(self.tokenizer.convert_ids_to_tokens(ids))


def plain_forward(model) -> Callable:
    """The model's 0.6.2-style forward: ``model.plain_forward`` for a transformers-style model,
    else the model itself."""
    return getattr(model, "plain_forward", model)


def as_list(inputs, kind: type, what: str):
    """``(items, single)``: one input of type ``kind`` or a list of them."""
    if isinstance(inputs, kind):
        return [inputs], True
    if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(x, kind) for x in inputs):
        return list(inputs), False
    raise InvalidInputError(
        f"inputs must be {what} or a non-empty list of them, got {type(inputs).__name__}"
        + (f" of {sorted({type(x).__name__ for x in inputs})}" if isinstance(inputs, (list, tuple))
           and inputs else ""))


def softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dim in float32 (half-precision models too)."""
    return torch.softmax(logits.float(), dim=-1)
