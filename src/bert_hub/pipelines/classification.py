"""``text-classification`` (labels of whole texts or pairs) and ``token-classification``
(entities, with transformers' aggregation strategies and character offsets into the input)."""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Union

import torch

from ..errors import InvalidInputError
from ..modeling import BertForSequenceClassification, BertForTokenClassification
from .base import Features, Pipeline, as_list, softmax

FUNCTIONS = ("softmax", "sigmoid", "none")
STRATEGIES = ("none", "simple", "first", "average", "max")
_DEFAULT = object()   # top_k not given: transformers' one-best layout


class TextClassificationPipeline(Pipeline):
    """``pipe("a fine film")`` -> ``[{"label": ..., "score": ...}]``; a pair as
    ``{"text": ..., "text_pair": ...}``; a list gives one best label per input.

    ``top_k=n`` (or ``None`` for all) returns, per input, the ``n`` best labels sorted by score.
    ``function_to_apply``: "softmax" (several labels), "sigmoid" (one label, or a config's
    ``problem_type`` "multi_label_classification"), "none" (``problem_type`` "regression"),
    chosen from the model's config by default."""

    task = "text-classification"
    heads = (BertForSequenceClassification,)

    def __call__(self, inputs, top_k=_DEFAULT, function_to_apply: Optional[str] = None,
                 truncation: bool = True):
        items, single = _texts_or_pairs(inputs)
        function = self.function(function_to_apply)
        rows = self.encode_items(items, truncation)
        self._check_lengths(rows)
        logits = self.run(rows, self.forward, self.read_logits)
        results = [self.labels_of(row_logits, function, top_k) for row_logits in logits]
        if not single:
            return results
        return [results[0]] if top_k is _DEFAULT and isinstance(items[0], str) else results[0]

    def encode_items(self, items: Sequence[Union[str, dict]], truncation: bool = True) -> List[Features]:
        """BERT rows of texts and ``{"text", "text_pair"}`` pairs (mixed or not)."""
        texts = [t if isinstance(t, str) else t["text"] for t in items]
        pairs = [t.get("text_pair") if isinstance(t, dict) else None for t in items]
        limit = self.max_length if truncation else int(1e9)
        if all(pair is None for pair in pairs):
            return self.encode_texts(texts, max_length=limit)
        return [self.encode_texts([text], None if pair is None else [pair], max_length=limit)[0]
                for text, pair in zip(texts, pairs)]

    @staticmethod
    def read_logits(outputs: torch.Tensor, row: int, length: int) -> torch.Tensor:
        return outputs[row].float().cpu()                                      # (labels,)

    def _check_lengths(self, rows: List[Features]) -> None:
        longest = max(len(r.input_ids) for r in rows)
        if longest > self.max_length:
            raise InvalidInputError(
                f"an input has {longest} tokens, more than the model takes ({self.max_length}); "
                "pass truncation=True (the default) or shorten it")

    def function(self, name: Optional[str] = None) -> str:
        """The score function: ``name`` checked, else the one the model's config implies."""
        if name is not None:
            if str(name).lower() not in FUNCTIONS:
                raise InvalidInputError(f"function_to_apply must be one of {FUNCTIONS}, got {name!r}")
            return str(name).lower()
        problem = self.model.config.extra.get("problem_type")
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or self.model.num_labels == 1:
            return "sigmoid"
        return "softmax"

    def labels_of(self, logits: torch.Tensor, function: str, top_k=_DEFAULT):
        """One row's (labels,) logits as the best label (``top_k`` not given), or the ``top_k``
        best (None: all) sorted by score."""
        scores = {"softmax": softmax, "sigmoid": torch.sigmoid, "none": lambda x: x}[function](logits)
        labels = self.id2label
        if top_k is _DEFAULT:
            best = int(scores.argmax())
            return {"label": labels[best], "score": float(scores[best])}
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
            raise InvalidInputError(f"top_k must be a positive int or None (all labels), got {top_k!r}")
        ranked = sorted(({"label": labels[i], "score": float(s)} for i, s in enumerate(scores.tolist())),
                        key=lambda d: d["score"], reverse=True)
        return ranked if top_k is None else ranked[:top_k]


def _texts_or_pairs(inputs):
    if isinstance(inputs, (str, dict)):
        items, single = [inputs], True
    elif isinstance(inputs, (list, tuple)) and inputs:
        items, single = list(inputs), False
    else:
        items, single = [inputs], True
    for item in items:
        ok = isinstance(item, str) or (isinstance(item, dict) and isinstance(item.get("text"), str)
                                       and isinstance(item.get("text_pair", ""), str)
                                       and set(item) <= {"text", "text_pair"})
        if not ok:
            raise InvalidInputError(
                f"inputs must be a text, a pair {{'text': ..., 'text_pair': ...}}, or a non-empty "
                f"list of them; got {item!r:.80}")
    return items, single


class TokenClassificationPipeline(Pipeline):
    """``pipe("John lives in Paris")`` -> entities, each with ``word``, ``score``, ``start`` and
    ``end`` (``text[start:end]`` is the entity in the input) and, by strategy:

    - ``aggregation_strategy="none"``: one entry per token: ``entity``, ``index``;
    - "simple": adjacent tokens of one entity type (B-/I- tags) merged: ``entity_group``;
    - "first" / "average" / "max": each word takes the label of its first token / of its
      tokens' averaged scores / of its most confident token, then as "simple".

    Labels in ``ignore_labels`` (default ["O"]) are left out. A text longer than the model
    takes is truncated, as transformers does."""

    task = "token-classification"
    heads = (BertForTokenClassification,)

    def __call__(self, inputs: Union[str, Sequence[str]], aggregation_strategy: str = "none",
                 ignore_labels: Optional[Sequence[str]] = None):
        texts, single = as_list(inputs, str, "a text")
        strategy = str(aggregation_strategy).lower()
        if strategy not in STRATEGIES:
            raise InvalidInputError(
                f"aggregation_strategy must be one of {STRATEGIES}, got {aggregation_strategy!r}")
        ignored = set(["O"] if ignore_labels is None else ignore_labels)
        rows = [self.encode(text) for text in texts]
        scores = self.run(rows, self.forward, self.read_scores)
        results = [self.entities(text, row, row_scores, strategy, ignored)
                   for text, row, row_scores in zip(texts, rows, scores)]
        return results[0] if single else results

    def encode(self, text: str, truncation: bool = True) -> Features:
        """The text's row with each token's character span; longer than the model takes: cut
        (``truncation``) or an error."""
        spans = self.tokenizer.tokenize_with_offsets(text)
        if len(spans) + 2 > self.max_length and not truncation:
            raise InvalidInputError(
                f"the input has {len(spans) + 2} tokens, more than the model takes "
                f"({self.max_length}); allow truncation or shorten it")
        spans = spans[: self.max_length - 2]
        return self.features(self.ids(s.token for s in spans), spans=spans)

    @staticmethod
    def read_scores(outputs: torch.Tensor, row: int, length: int) -> torch.Tensor:
        return softmax(outputs[row, :length]).cpu()                            # (S, labels)

    def entities(self, text: str, row: Features, scores: torch.Tensor, strategy: str = "none",
                 ignored=("O",)) -> List[Dict]:
        """One text's entities from its row's (S, labels) probabilities."""
        ignored = set(ignored)
        entities = self._aggregate(self._tokens(text, row, scores), strategy)
        return [e for e in entities if e.get("entity", e.get("entity_group")) not in ignored]

    def _tokens(self, text: str, row: Features, scores: torch.Tensor) -> List[Dict]:
        """Per real token: its scores, span and whether it continues a word (transformers' test:
        the token is not as long as its text, e.g. '##ing'; [UNK] shows the text itself)."""
        out = []
        unk = self.tokenizer.wordpiece_tokenizer.unk_token
        for position, span in enumerate(row.extra["spans"], start=1):      # 0 is [CLS]
            piece = text[span.start:span.end]
            word = piece if span.token == unk else span.token
            out.append({"word": word, "scores": scores[position], "start": span.start,
                        "end": span.end, "index": position,
                        "is_subword": span.token != unk and len(span.token) != len(piece)})
        return out

    def _aggregate(self, tokens: List[Dict], strategy: str) -> List[Dict]:
        labels = self.id2label
        if strategy in ("none", "simple"):
            entities = []
            for t in tokens:
                best = int(t["scores"].argmax())
                entities.append({"entity": labels[best], "score": float(t["scores"][best]),
                                 "index": t["index"], "word": t["word"], "start": t["start"],
                                 "end": t["end"]})
            return entities if strategy == "none" else self._group(entities)
        words, group = [], []
        for t in tokens:
            if group and not t["is_subword"]:
                words.append(self._word(group, strategy))
                group = []
            group.append(t)
        if group:
            words.append(self._word(group, strategy))
        return self._group(words)

    def _word(self, tokens: List[Dict], strategy: str) -> Dict:
        if strategy == "first":
            scores = tokens[0]["scores"]
        elif strategy == "max":
            scores = max(tokens, key=lambda t: float(t["scores"].max()))["scores"]
        else:
            scores = torch.stack([t["scores"] for t in tokens]).mean(dim=0)
        best = int(scores.argmax())
        return {"entity": self.id2label[best], "score": float(scores[best]),
                "word": self.tokens_to_string([t["word"] for t in tokens]),
                "start": tokens[0]["start"], "end": tokens[-1]["end"]}

    def _group(self, entities: List[Dict]) -> List[Dict]:
        """Adjacent entities of one type merged; a B- tag starts a new group."""
        groups, current = [], []
        for entity in entities:
            bi, tag = _tag(entity["entity"])
            if current and (tag != _tag(current[-1]["entity"])[1] or bi == "B"):
                groups.append(self._merge(current))
                current = []
            current.append(entity)
        if current:
            groups.append(self._merge(current))
        return groups

    def _merge(self, entities: List[Dict]) -> Dict:
        return {"entity_group": entities[0]["entity"].split("-", 1)[-1],
                "score": sum(e["score"] for e in entities) / len(entities),
                "word": self.tokens_to_string([e["word"] for e in entities]),
                "start": entities[0]["start"], "end": entities[-1]["end"]}


def _tag(label: str):
    """("B" or "I", type) of a label; a label without a B-/I- prefix continues ("I")."""
    if label.startswith(("B-", "I-")):
        return label[0], label[2:]
    return "I", label
