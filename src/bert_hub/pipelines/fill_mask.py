"""``fill-mask``: the most likely tokens for each ``[MASK]`` of a text, as transformers returns
them (``score``, ``token``, ``token_str``, ``sequence``)."""
from __future__ import annotations

import logging
from typing import List, Optional, Sequence, Union

import torch

from ..errors import InvalidInputError
from ..modeling import BertForMaskedLM, BertForPreTraining
from .base import Features, Pipeline, as_list, softmax

logger = logging.getLogger(__name__)

MASK = "[MASK]"


class FillMaskPipeline(Pipeline):
    """``pipe("Paris is the [MASK] of France.", top_k=5, targets=None)``.

    One mask: a list of ``top_k`` dicts, best first; several masks: one such list per mask;
    a list of texts: one result per text. ``[MASK]`` is found anywhere in the text (also glued
    to a word or a full stop), as transformers splits it out before tokenizing."""

    task = "fill-mask"
    heads = (BertForMaskedLM, BertForPreTraining)

    def __init__(self, model, tokenizer, **options):
        super().__init__(model, tokenizer, **options)
        self.mask_id = tokenizer.convert_tokens_to_ids([MASK])[0]

    def __call__(self, inputs: Union[str, Sequence[str]], top_k: int = 5,
                 targets: Optional[Union[str, Sequence[str]]] = None):
        texts, single = as_list(inputs, str, "a text with [MASK]")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise InvalidInputError(f"top_k must be a positive int, got {top_k!r}")
        target_ids = self.target_ids(targets) if targets is not None else None
        rows = [self.encode(text) for text in texts]
        probs = self.run(rows, self.forward, self.read_masks)
        out = [self.answers(features, p, top_k, target_ids) for features, p in zip(rows, probs)]
        return out[0] if single else out

    def forward(self, batch):
        scores = self.forward_model(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
        return (scores[0] if isinstance(scores, tuple) else scores), batch["input_ids"]

    def read_masks(self, outputs, row: int, length: int) -> torch.Tensor:
        """(masks, V) probabilities at the row's mask positions."""
        scores, ids = outputs                                                  # (B, S, V), (B, S)
        positions = (ids[row, :length] == self.mask_id).nonzero().squeeze(-1)
        return softmax(scores[row, positions]).cpu()

    def encode(self, text: str) -> Features:
        """Token ids with the mask id wherever ``[MASK]`` is written."""
        parts = text.split(MASK)
        if len(parts) == 1:
            raise InvalidInputError(f"no {MASK} in the input {text!r:.200}: write {MASK} where a word "
                                    "should be predicted")
        ids: List[int] = []
        for i, part in enumerate(parts):
            if i:
                ids.append(self.mask_id)
            ids += self.ids(self.tokenizer.tokenize(part))
        if len(ids) + 2 > self.max_length:
            raise InvalidInputError(
                f"the input has {len(ids) + 2} tokens, more than the model takes ({self.max_length}); "
                f"shorten it around the {MASK}")
        return self.features(ids)

    def answers(self, features: Features, probs: torch.Tensor, top_k: int,
                 target_ids: Optional[List[int]]):
        """transformers' layout: the mask filled in, the other masks kept when there are several."""
        if target_ids is not None:
            probs = probs[:, target_ids]                                       # (masks, T)
        k = min(top_k, probs.shape[-1])
        values, indices = probs.topk(k)                                        # (masks, k)
        positions = [i for i, t in enumerate(features.input_ids) if t == self.mask_id]
        single = len(positions) == 1
        per_mask = []
        for m, position in enumerate(positions):
            answers = []
            for score, index in zip(values[m].tolist(), indices[m].tolist()):
                token = target_ids[index] if target_ids is not None else index
                ids = list(features.input_ids)
                ids[position] = token
                answers.append({"score": score, "token": token, "token_str": self.decode([token]),
                                "sequence": self.decode(ids, skip_special_tokens=single)})
            per_mask.append(answers)
        return per_mask[0] if single else per_mask

    def target_ids(self, targets) -> List[int]:
        """Ids of ``targets``: a vocabulary token, else the first token of the word (warned)."""
        words = [targets] if isinstance(targets, str) else list(targets)
        ids = []
        for word in words:
            if not isinstance(word, str):
                raise InvalidInputError(f"targets must be strings, got {word!r}")
            if word in self.tokenizer.vocab:
                ids.append(self.tokenizer.vocab[word])
                continue
            pieces = self.tokenizer.tokenize(word)
            if not pieces:
                logger.warning("target %r has no token in the vocabulary; ignoring it", word)
                continue
            logger.warning("target %r is not in the vocabulary; using %r instead", word, pieces[0])
            ids.append(self.tokenizer.vocab[pieces[0]])
        ids = sorted(set(ids))
        if not ids:
            raise InvalidInputError(f"none of the targets {words!r} can be scored; give words of "
                                    "the vocabulary")
        return ids
