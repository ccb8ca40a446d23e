"""``question-answering``: the span of a context that answers a question, with the semantics of
transformers 4.x's pipeline (removed from transformers 5):

- a context longer than the model takes is cut into overlapping windows of ``max_seq_len``
  tokens (question, context part and specials; default ``min(max length, 384)``), consecutive
  windows sharing ``doc_stride`` context tokens (default ``min(max_seq_len // 2, 128)``);
- in each window, a softmax over the context positions (and [CLS]) gives p(start) and p(end);
  a span's score is p(start) x p(end), spans run forwards and hold at most ``max_answer_len``
  tokens (15);
- the best spans of all windows are ranked together; each is widened to whole words
  (``align_to_words``) and returned as ``{"score", "start", "end", "answer"}`` where
  ``context[start:end] == answer``.
"""
from __future__ import annotations

from typing import List, Optional

import torch

from ..errors import InvalidInputError
from ..modeling import BertForQuestionAnswering
from .base import Features, Pipeline

NULL_SCORE = 1_000_000.0   # transformers' starting value for the no-answer score
MASKED = -10000.0          # logit given to positions that cannot be in an answer


class QuestionAnsweringPipeline(Pipeline):
    """``pipe(question=..., context=...)``, ``pipe({"question": ..., "context": ...})``, or
    lists of either; ``top_k`` answers per question (one: a dict; several: a list)."""

    task = "question-answering"
    heads = (BertForQuestionAnswering,)

    def __call__(self, *args, question=None, context=None, top_k: int = 1,
                 doc_stride: Optional[int] = None, max_answer_len: int = 15,
                 max_seq_len: Optional[int] = None, handle_impossible_answer: bool = False,
                 align_to_words: bool = True):
        examples, single = examples_of(args, question, context)
        options = self.options(top_k=top_k, doc_stride=doc_stride, max_answer_len=max_answer_len,
                               max_seq_len=max_seq_len, handle_impossible_answer=handle_impossible_answer,
                               align_to_words=align_to_words)
        windows = self.windows(examples, options)
        logits = self.run(windows, self.forward, self.read_logits)
        results = self.answers(examples, windows, logits, options)
        return results[0] if single else results

    def options(self, top_k: int = 1, doc_stride: Optional[int] = None, max_answer_len: int = 15,
                max_seq_len: Optional[int] = None, handle_impossible_answer: bool = False,
                align_to_words: bool = True) -> dict:
        """The call's options checked, with the defaults that depend on the model filled in."""
        for name, value in (("top_k", top_k), ("max_answer_len", max_answer_len)):
            _check_positive(name, value)
        max_seq_len = min(self.max_length, 384) if max_seq_len is None else max_seq_len
        _check_positive("max_seq_len", max_seq_len)
        if max_seq_len > self.max_length:
            raise InvalidInputError(f"max_seq_len ({max_seq_len}) is more than the model takes "
                                    f"({self.max_length})")
        doc_stride = min(max_seq_len // 2, 128) if doc_stride is None else doc_stride
        if isinstance(doc_stride, bool) or not isinstance(doc_stride, int) or doc_stride < 0:
            raise InvalidInputError(f"doc_stride must be an int >= 0, got {doc_stride!r}")
        if doc_stride > max_seq_len:
            raise InvalidInputError(f"doc_stride ({doc_stride}) is larger than max_seq_len ({max_seq_len})")
        return dict(top_k=top_k, doc_stride=doc_stride, max_answer_len=max_answer_len,
                    max_seq_len=max_seq_len, handle_impossible_answer=bool(handle_impossible_answer),
                    align_to_words=bool(align_to_words))

    def windows(self, examples: List[tuple], options: dict) -> List[Features]:
        """Every (question, context) example's windows, in order (``extra["example"]``: its number)."""
        windows: List[Features] = []
        for number, (q, c) in enumerate(examples):
            windows += self._windows(number, q, c, options["max_seq_len"], options["doc_stride"])
        return windows

    @staticmethod
    def read_logits(outputs, row: int, length: int):
        start, end = outputs                                                    # each (B, S)
        return start[row, :length].float().cpu(), end[row, :length].float().cpu()

    def answers(self, examples: List[tuple], windows: List[Features], logits: List[tuple],
                options: dict) -> list:
        """Per example: its best answer (a dict), or its ``top_k`` best (a list)."""
        top_k = options["top_k"]
        results = []
        for number, (_, c) in enumerate(examples):
            answers, null = [], NULL_SCORE
            for window, (start, end) in zip(windows, logits):
                if window.extra["example"] != number:
                    continue
                found, null = self._spans(window, start, end, c, null, top_k, options["max_answer_len"],
                                          options["align_to_words"])
                answers += found
            if options["handle_impossible_answer"]:
                answers.append({"score": null, "start": 0, "end": 0, "answer": ""})
            answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
            results.append(answers[0] if len(answers) == 1 else answers)
        return results

    def _windows(self, number: int, question: str, context: str, max_seq_len: int,
                 doc_stride: int) -> List[Features]:
        """The question with successive parts of the context, sharing ``doc_stride`` tokens."""
        q_ids = self.ids(self.tokenizer.tokenize(question))
        spans = self.tokenizer.tokenize_with_offsets(context)
        c_ids = self.ids(s.token for s in spans)
        budget = max_seq_len - len(q_ids) - 3
        if len(c_ids) <= budget:
            starts = [0]
        elif budget <= doc_stride:
            raise InvalidInputError(
                f"the question has {len(q_ids)} tokens: with max_seq_len={max_seq_len} that leaves "
                f"{max(budget, 0)} context tokens per window, not more than doc_stride={doc_stride}; "
                "shorten the question, or lower doc_stride")
        else:
            starts = [0]
            while starts[-1] + budget < len(c_ids):      # the last window reaches the end
                starts.append(starts[-1] + budget - doc_stride)
        windows = []
        for first in starts:
            last = min(first + budget, len(c_ids))
            windows.append(self.features(q_ids, c_ids[first:last], example=number,
                                         offset=len(q_ids) + 2, spans=spans[first:last]))
        return windows

    def _spans(self, window: Features, start: torch.Tensor, end: torch.Tensor, context: str,
               null: float, top_k: int, max_answer_len: int, align_to_words: bool):
        """This window's ``top_k`` spans, and the no-answer score updated."""
        offset, spans = window.extra["offset"], window.extra["spans"]
        allowed = torch.zeros(len(window.input_ids), dtype=torch.bool)         # (S,)
        allowed[0] = True                                                       # [CLS] stays
        allowed[offset:offset + len(spans)] = True                              # the context
        start = torch.softmax(torch.where(allowed, start, torch.tensor(MASKED)), dim=-1)
        end = torch.softmax(torch.where(allowed, end, torch.tensor(MASKED)), dim=-1)
        null = min(null, float(start[0] * end[0]))
        start[0] = end[0] = 0.0
        outer = start[:, None] * end[None, :]                                   # (S, S)
        candidates = torch.tril(torch.triu(outer), max_answer_len - 1)         # end >= start, short
        flat = candidates.flatten()
        order = [int(flat.argmax())] if top_k == 1 else \
            torch.argsort(flat, descending=True, stable=True)[:top_k].tolist()
        found = []
        for index in order:
            s, e = divmod(index, candidates.shape[1])
            if not (allowed[s] and allowed[e]):
                continue
            if s == 0:        # [CLS] has no word: transformers falls back to raw offsets, (0, 0)
                char_start, char_end = 0, (spans[e - offset].end if e else 0)
            else:
                char_start, char_end = _char_span(spans, s - offset, e - offset, align_to_words)
            found.append({"score": float(candidates[s, e]), "start": char_start, "end": char_end,
                          "answer": context[char_start:char_end]})
        return found, null


def _char_span(spans, s: int, e: int, align_to_words: bool):
    """Characters of context tokens s..e, widened to the words they are in (within the window)."""
    if not align_to_words:
        return spans[s].start, spans[e].end
    first = min(x.start for x in spans if x.word == spans[s].word)
    last = max(x.end for x in spans if x.word == spans[e].word)
    return first, last


def examples_of(args, question=None, context=None):
    """[(question, context)] and whether one example was given."""
    if args and (question is not None or context is not None):
        raise InvalidInputError("give the inputs either positionally or as question=/context=, not both")
    if len(args) == 2 and all(isinstance(a, str) for a in args):
        question, context = args
    elif len(args) == 1:
        items, single = (args[0], False) if isinstance(args[0], (list, tuple)) else ([args[0]], True)
        pairs = []
        for item in items:
            if not (isinstance(item, dict) and set(item) == {"question", "context"}):
                raise InvalidInputError(
                    f"each input must be {{'question': ..., 'context': ...}}, got {item!r:.80}")
            pairs.append((item["question"], item["context"]))
        return _checked(pairs), single
    elif args:
        raise InvalidInputError(f"pass question=..., context=... (got {len(args)} positional inputs)")
    if isinstance(question, str) and isinstance(context, str):
        return _checked([(question, context)]), True
    if isinstance(question, (list, tuple)) and isinstance(context, (list, tuple)) \
            and len(question) == len(context) and question:
        return _checked(list(zip(question, context))), False
    if isinstance(question, (list, tuple)) and isinstance(context, str) and question:
        return _checked([(q, context) for q in question]), False
    raise InvalidInputError(
        "pass question=... and context=... (two texts, or two lists of the same length), got "
        f"question={question!r:.60} and context={context!r:.60}")


def _checked(pairs) -> List[tuple]:
    for q, c in pairs:
        if not isinstance(q, str) or not isinstance(c, str) or not q.strip() or not c.strip():
            raise InvalidInputError(f"question and context must be non-empty texts, got "
                                    f"{q!r:.60} and {c!r:.60}")
    return pairs


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be a positive int, got {value!r}")
