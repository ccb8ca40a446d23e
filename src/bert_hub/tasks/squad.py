"""SQuAD v1.1 / v2.0: reading, Google's feature construction and n-best post-processing (the
official evaluation is in ``squad_metrics`` and re-exported here).

Follows Google's run_squad.py step for step (whitespace split with char-to-word offsets, doc
spans with a stride, max-context tokens, answer span improvement, get_final_text), because the
published numbers depend on these details.
"""
from __future__ import annotations

import collections
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
from torch.utils.data import StackDataset

from bert_hub.errors import DataFormatError, EntryNotFoundError
from bert_hub.sequence_pairs import assemble, input_tensors
from bert_hub.tasks.squad_metrics import (  # noqa: F401  (the evaluation's names, re-exported)
    evaluate,
    evaluate_v1,
    evaluate_v2,
    exact_match_score,
    f1_score,
    normalize_answer,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------------------------
@dataclass
class SquadExample:
    """One question; positions are word indices into ``doc_tokens`` (training only)."""

    qas_id: str
    question_text: str
    doc_tokens: List[str]
    orig_answer_text: Optional[str] = None
    start_position: Optional[int] = None
    end_position: Optional[int] = None
    is_impossible: bool = False


def _is_whitespace(c: str) -> bool:
    return c in " \t\r\n" or ord(c) == 0x202F


def split_on_whitespace(text: str) -> Tuple[List[str], List[int]]:
    """Words of ``text`` and, for each character, the index of the word it belongs to (a space
    maps to the word before it)."""
    doc_tokens: List[str] = []
    char_to_word_offset: List[int] = []
    prev_is_whitespace = True
    for c in text:
        if _is_whitespace(c):
            prev_is_whitespace = True
        else:
            if prev_is_whitespace:
                doc_tokens.append(c)
            else:
                doc_tokens[-1] += c
            prev_is_whitespace = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def load_squad_json(path: str) -> list:
    """The ``data`` list of a SQuAD file, with errors that name the file and line."""
    if not os.path.isfile(path):
        raise EntryNotFoundError(
            f"SQuAD file {path} does not exist; check --train_file / --predict_file")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        dataset = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFormatError(
            f"{path}, line {exc.lineno} column {exc.colno}: not valid JSON ({exc.msg})") from None
    if not isinstance(dataset, dict) or not isinstance(dataset.get("data"), list):
        raise DataFormatError(
            f"{path}, line 1: not a SQuAD file (expected an object with a 'data' list, "
            f"as in train-v1.1.json)")
    return dataset["data"]


def _locate(text: str, needle: Optional[str]) -> str:
    """Best-effort ``line L column C`` of ``needle`` in a JSON file's text (for messages)."""
    pos = text.find(needle) if needle else -1
    if pos < 0:
        return "line 1"
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def read_squad_examples(path: str, is_training: bool,
                        version_2_with_negative: bool = False) -> List[SquadExample]:
    """Examples of a SQuAD JSON file. For training each answerable question needs exactly one
    answer whose text is found at ``answer_start``; answers that cannot be recovered from the
    whitespace-split context are skipped with a warning, as Google does."""
    data = load_squad_json(path)
    raw: Optional[str] = None
    examples = []
    for entry in data:
        for paragraph in (entry.get("paragraphs", []) if isinstance(entry, dict) else [None]):
            try:
                doc_tokens, char_to_word_offset = split_on_whitespace(paragraph["context"])
                qas = paragraph["qas"]
            except (KeyError, TypeError, AttributeError) as exc:
                raw = raw if raw is not None else _read_text(path)
                needle = None
                if isinstance(paragraph, dict) and isinstance(paragraph.get("context"), str):
                    needle = json.dumps(paragraph["context"])[:40]
                raise DataFormatError(
                    f"{path}, {_locate(raw, needle)}: a paragraph needs a 'context' string and "
                    f"a 'qas' list ({_describe(exc)})") from None
            for qa in qas:
                try:
                    examples_or_none = _read_qa(qa, doc_tokens, char_to_word_offset,
                                                is_training, version_2_with_negative)
                except (KeyError, TypeError, IndexError, ValueError) as exc:
                    raw = raw if raw is not None else _read_text(path)
                    qid = qa.get("id") if isinstance(qa, dict) else None
                    needle = json.dumps(qid) if qid is not None else None
                    raise DataFormatError(
                        f"{path}, {_locate(raw, needle)}: question {qid!r}: {_describe(exc)}"
                    ) from None
                if examples_or_none is not None:
                    examples.append(examples_or_none)
    return examples


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)


def _read_qa(qa, doc_tokens, char_to_word_offset, is_training, version_2_with_negative):
    qas_id, question_text = qa["id"], qa["question"]
    start_position = end_position = orig_answer_text = None
    is_impossible = False
    if is_training:
        if version_2_with_negative:
            is_impossible = bool(qa["is_impossible"])
        if len(qa["answers"]) != 1 and not is_impossible:
            raise ValueError(
                f"for training, each answerable question needs exactly 1 answer, found "
                f"{len(qa['answers'])}")
        if not is_impossible:
            answer = qa["answers"][0]
            orig_answer_text = answer["text"]
            answer_offset = int(answer["answer_start"])
            if not 0 <= answer_offset < len(char_to_word_offset) or not orig_answer_text:
                raise ValueError(f"answer_start {answer_offset} is outside the context")
            start_position = char_to_word_offset[answer_offset]
            end_position = char_to_word_offset[
                min(answer_offset + len(orig_answer_text) - 1, len(char_to_word_offset) - 1)]
            actual_text = " ".join(doc_tokens[start_position:end_position + 1])
            cleaned_answer_text = " ".join(orig_answer_text.split())
            if actual_text.find(cleaned_answer_text) == -1:
                logger.warning("Could not find answer: %r vs. %r", actual_text, cleaned_answer_text)
                return None
        else:
            start_position = end_position = -1
            orig_answer_text = ""
    return SquadExample(qas_id, question_text, doc_tokens, orig_answer_text,
                        start_position, end_position, is_impossible)


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------
@dataclass
class SquadFeatures:
    """One window (doc span) of one example, padded to ``max_seq_length``."""

    unique_id: int
    example_index: int
    doc_span_index: int
    tokens: List[str]
    token_to_orig_map: Dict[int, int]  # feature position -> word index in example.doc_tokens
    token_is_max_context: Dict[int, bool]
    input_ids: List[int]
    input_mask: List[int]
    segment_ids: List[int]
    start_position: Optional[int] = None
    end_position: Optional[int] = None
    is_impossible: bool = False


_DocSpan = collections.namedtuple("DocSpan", ["start", "length"])


def improve_answer_span(doc_tokens: List[str], input_start: int, input_end: int, tokenizer,
                        orig_answer_text: str) -> Tuple[int, int]:
    """The tightest word-piece span that tokenizes exactly like the answer: for the answer
    "1895" in "(1895-1943)." the word-level span is "( 1895 - 1943 ) ." and this finds "1895"."""
    tok_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start:new_end + 1]) == tok_answer_text:
                return new_start, new_end
    return input_start, input_end


def check_is_max_context(doc_spans: Sequence[_DocSpan], cur_span_index: int, position: int) -> bool:
    """Whether span ``cur_span_index`` is the one where token ``position`` has the most context
    (min of left and right context, plus a small bonus for longer spans)."""
    best_score, best_span_index = None, None
    for span_index, doc_span in enumerate(doc_spans):
        end = doc_span.start + doc_span.length - 1
        if position < doc_span.start or position > end:
            continue
        num_left_context = position - doc_span.start
        num_right_context = end - position
        score = min(num_left_context, num_right_context) + 0.01 * doc_span.length
        if best_score is None or score > best_score:
            best_score, best_span_index = score, span_index
    return cur_span_index == best_span_index


def convert_examples_to_features(examples: Sequence[SquadExample], tokenizer, max_seq_length: int,
                                 doc_stride: int, max_query_length: int,
                                 is_training: bool) -> List[SquadFeatures]:
    """Google's windows: ``[CLS] query [SEP] doc-span [SEP]``, spans of the document that
    overlap by ``max_tokens_for_doc - doc_stride`` tokens."""
    unique_id = 1000000000
    features = []
    for example_index, example in enumerate(examples):
        query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]

        tok_to_orig_index, orig_to_tok_index, all_doc_tokens = [], [], []
        for i, token in enumerate(example.doc_tokens):
            orig_to_tok_index.append(len(all_doc_tokens))
            for sub_token in tokenizer.tokenize(token):
                tok_to_orig_index.append(i)
                all_doc_tokens.append(sub_token)

        tok_start_position = tok_end_position = None
        if is_training and example.is_impossible:
            tok_start_position = tok_end_position = -1
        if is_training and not example.is_impossible:
            tok_start_position = orig_to_tok_index[example.start_position]
            if example.end_position < len(example.doc_tokens) - 1:
                tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
            else:
                tok_end_position = len(all_doc_tokens) - 1
            tok_start_position, tok_end_position = improve_answer_span(
                all_doc_tokens, tok_start_position, tok_end_position, tokenizer,
                example.orig_answer_text)

        max_tokens_for_doc = max_seq_length - len(query_tokens) - 3  # [CLS] [SEP] [SEP]
        if max_tokens_for_doc < 1:
            raise ValueError(
                f"max_seq_length ({max_seq_length}) leaves no room for the document after a "
                f"{len(query_tokens)}-token question; raise it or lower max_query_length")
        doc_spans = []
        start_offset = 0
        while start_offset < len(all_doc_tokens):
            length = min(len(all_doc_tokens) - start_offset, max_tokens_for_doc)
            doc_spans.append(_DocSpan(start=start_offset, length=length))
            if start_offset + length == len(all_doc_tokens):
                break
            start_offset += min(length, doc_stride)

        doc_offset = len(query_tokens) + 2  # where the document starts: after [CLS] q [SEP]
        for doc_span_index, doc_span in enumerate(doc_spans):
            span_end = doc_span.start + doc_span.length
            tokens, segment_ids = assemble(query_tokens, all_doc_tokens[doc_span.start:span_end],
                                           "[CLS]", "[SEP]")
            token_to_orig_map, token_is_max_context = {}, {}
            for split_token_index in range(doc_span.start, span_end):
                position = doc_offset + split_token_index - doc_span.start
                token_to_orig_map[position] = tok_to_orig_index[split_token_index]
                token_is_max_context[position] = check_is_max_context(
                    doc_spans, doc_span_index, split_token_index)

            input_ids = list(tokenizer.convert_tokens_to_ids(tokens))
            input_mask = [1] * len(input_ids)
            padding = [0] * (max_seq_length - len(input_ids))

            start_position = end_position = None
            if is_training and not example.is_impossible:
                doc_start = doc_span.start
                doc_end = doc_span.start + doc_span.length - 1
                if tok_start_position >= doc_start and tok_end_position <= doc_end:
                    start_position = tok_start_position - doc_start + doc_offset
                    end_position = tok_end_position - doc_start + doc_offset
                else:  # the answer is not (entirely) in this window: point at [CLS]
                    start_position = end_position = 0
            if is_training and example.is_impossible:
                start_position = end_position = 0

            features.append(SquadFeatures(
                unique_id=unique_id, example_index=example_index, doc_span_index=doc_span_index,
                tokens=tokens, token_to_orig_map=token_to_orig_map,
                token_is_max_context=token_is_max_context, input_ids=input_ids + padding,
                input_mask=input_mask + padding, segment_ids=segment_ids + padding,
                start_position=start_position, end_position=end_position,
                is_impossible=example.is_impossible))
            unique_id += 1
    return features


def features_to_tensors(features: Sequence[SquadFeatures], is_training: bool):
    """Stacked tensors named as ``BertForQuestionAnswering``'s arguments: input_ids,
    token_type_ids, attention_mask ((N, T) long) and, for training, start_positions and
    end_positions ((N,) long)."""
    if not features:
        raise ValueError("no examples to convert: the SQuAD file holds no usable question")
    out = input_tensors(features)
    if is_training:
        out["start_positions"] = torch.tensor([f.start_position for f in features], dtype=torch.long)
        out["end_positions"] = torch.tensor([f.end_position for f in features], dtype=torch.long)
    return out


def dataset(features: Sequence[SquadFeatures], is_training: bool):
    """A map-style dataset of dicts that ``BertForQuestionAnswering(**batch)`` takes: the loss
    with positions (training), ``(start_logits, end_logits)`` (B, T) each without."""
    return StackDataset(**features_to_tensors(features, is_training))


def raw_results(features: Sequence[SquadFeatures], start_logits, end_logits) -> List[RawResult]:
    """Pair the model's outputs for ``features`` (in order; (N, T) each) with their ids."""
    return [RawResult(f.unique_id, start_logits[i].tolist(), end_logits[i].tolist())
            for i, f in enumerate(features)]


# --------------------------------------------------------------------------------------------
# Post-processing
# --------------------------------------------------------------------------------------------
@dataclass
class RawResult:
    unique_id: int
    start_logits: List[float]
    end_logits: List[float]


def _strip_spaces(text: str):
    ns_chars, ns_to_s_map = [], collections.OrderedDict()
    for i, c in enumerate(text):
        if c == " ":
            continue
        ns_to_s_map[len(ns_chars)] = i
        ns_chars.append(c)
    return "".join(ns_chars), ns_to_s_map


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool, basic_tokenizer=None) -> str:
    """Project the (normalized, word-piece) prediction back onto the original text.

    ``pred_text = "steve smith"`` and ``orig_text = "Steve Smith's"`` give ``"Steve Smith"``: the
    original is run through the basic tokenizer, characters are aligned ignoring spaces, and the
    span is cut from the original. When alignment fails the whole original span is returned."""
    if basic_tokenizer is None:
        from bert_hub.tokenization import BasicTokenizer

        basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    tok_text = " ".join(basic_tokenizer.tokenize(orig_text))
    start_position = tok_text.find(pred_text)
    if start_position == -1:
        return orig_text
    end_position = start_position + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s_map = _strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = _strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        return orig_text
    tok_s_to_ns_map = {v: k for k, v in tok_ns_to_s_map.items()}

    orig_start_position = orig_end_position = None
    if start_position in tok_s_to_ns_map:
        orig_start_position = orig_ns_to_s_map.get(tok_s_to_ns_map[start_position])
    if end_position in tok_s_to_ns_map:
        orig_end_position = orig_ns_to_s_map.get(tok_s_to_ns_map[end_position])
    if orig_start_position is None or orig_end_position is None:
        return orig_text
    return orig_text[orig_start_position:orig_end_position + 1]


def _get_best_indexes(logits: Sequence[float], n_best_size: int) -> List[int]:
    return sorted(range(len(logits)), key=lambda i: logits[i], reverse=True)[:n_best_size]


def _compute_softmax(scores: Sequence[float]) -> List[float]:
    if not scores:
        return []
    max_score = max(scores)
    exp_scores = [math.exp(s - max_score) for s in scores]
    total = sum(exp_scores)
    return [e / total for e in exp_scores]


_Prelim = collections.namedtuple("Prelim", ["feature_index", "start_index", "end_index",
                                            "start_logit", "end_logit"])
_Nbest = collections.namedtuple("Nbest", ["text", "start_logit", "end_logit"])


def compute_predictions(examples: Sequence[SquadExample], features: Sequence[SquadFeatures],
                        results: Iterable[RawResult], n_best_size: int, max_answer_length: int,
                        do_lower_case: bool, version_2_with_negative: bool = False,
                        null_score_diff_threshold: float = 0.0, basic_tokenizer=None):
    """Google's write_predictions without the writing.

    Returns (predictions {qas_id: text}, nbest {qas_id: [{text, probability, start_logit,
    end_logit}]}, null_odds {qas_id: score_null - best_non_null_score}, empty unless v2.0)."""
    if basic_tokenizer is None:
        from bert_hub.tokenization import BasicTokenizer

        basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    by_example = collections.defaultdict(list)
    for feature in features:
        by_example[feature.example_index].append(feature)
    by_id = {r.unique_id: r for r in results}

    predictions, all_nbest, null_odds = (collections.OrderedDict() for _ in range(3))
    for example_index, example in enumerate(examples):
        ex_features = by_example[example_index]
        prelim = []
        score_null = 1000000.0  # the smallest [CLS] score over the windows
        min_null_feature_index, null_start_logit, null_end_logit = 0, 0.0, 0.0
        for feature_index, feature in enumerate(ex_features):
            result = by_id[feature.unique_id]
            if version_2_with_negative:
                feature_null_score = result.start_logits[0] + result.end_logits[0]
                if feature_null_score < score_null:
                    score_null = feature_null_score
                    min_null_feature_index = feature_index
                    null_start_logit, null_end_logit = result.start_logits[0], result.end_logits[0]
            for start_index in _get_best_indexes(result.start_logits, n_best_size):
                for end_index in _get_best_indexes(result.end_logits, n_best_size):
                    # spans in the query, in padding, outside this window's max context, or
                    # too long cannot be answers
                    if start_index >= len(feature.tokens) or end_index >= len(feature.tokens):
                        continue
                    if start_index not in feature.token_to_orig_map:
                        continue
                    if end_index not in feature.token_to_orig_map:
                        continue
                    if not feature.token_is_max_context.get(start_index, False):
                        continue
                    if end_index < start_index or end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim.append(_Prelim(feature_index, start_index, end_index,
                                          result.start_logits[start_index],
                                          result.end_logits[end_index]))
        if version_2_with_negative:
            prelim.append(_Prelim(min_null_feature_index, 0, 0, null_start_logit, null_end_logit))
        prelim.sort(key=lambda p: p.start_logit + p.end_logit, reverse=True)

        seen, nbest = set(), []
        for pred in prelim:
            if len(nbest) >= n_best_size:
                break
            feature = ex_features[pred.feature_index]
            if pred.start_index > 0:  # a non-null answer
                tok_tokens = feature.tokens[pred.start_index:pred.end_index + 1]
                orig_doc_start = feature.token_to_orig_map[pred.start_index]
                orig_doc_end = feature.token_to_orig_map[pred.end_index]
                orig_tokens = example.doc_tokens[orig_doc_start:orig_doc_end + 1]
                tok_text = " ".join(tok_tokens).replace(" ##", "").replace("##", "")
                tok_text = " ".join(tok_text.strip().split())
                orig_text = " ".join(orig_tokens)
                final_text = get_final_text(tok_text, orig_text, do_lower_case, basic_tokenizer)
                if final_text in seen:
                    continue
            else:
                final_text = ""
            seen.add(final_text)
            nbest.append(_Nbest(final_text, pred.start_logit, pred.end_logit))

        if version_2_with_negative:
            if "" not in seen:
                nbest.append(_Nbest("", null_start_logit, null_end_logit))
            if len(nbest) == 1:  # only the null answer: add a placeholder non-null one
                nbest.insert(0, _Nbest("empty", 0.0, 0.0))
        if not nbest:
            nbest.append(_Nbest("empty", 0.0, 0.0))

        total_scores = [e.start_logit + e.end_logit for e in nbest]
        best_non_null = next((e for e in nbest if e.text), None)
        probs = _compute_softmax(total_scores)
        all_nbest[example.qas_id] = [
            collections.OrderedDict(text=e.text, probability=p, start_logit=float(e.start_logit),
                                    end_logit=float(e.end_logit))
            for e, p in zip(nbest, probs)
        ]
        if not version_2_with_negative:
            predictions[example.qas_id] = nbest[0].text
        else:
            score_diff = score_null - best_non_null.start_logit - best_non_null.end_logit
            null_odds[example.qas_id] = float(score_diff)
            predictions[example.qas_id] = "" if score_diff > null_score_diff_threshold \
                else best_non_null.text
    return predictions, all_nbest, null_odds


def write_predictions(output_dir: str, predictions, nbest, null_odds) -> Dict[str, str]:
    """predictions.json, nbest_predictions.json and (v2.0) null_odds.json; returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    paths = {"predictions": os.path.join(output_dir, "predictions.json"),
             "nbest": os.path.join(output_dir, "nbest_predictions.json")}
    if null_odds:
        paths["null_odds"] = os.path.join(output_dir, "null_odds.json")
    for key, value in (("predictions", predictions), ("nbest", nbest), ("null_odds", null_odds)):
        if key in paths:
            with open(paths[key], "w", encoding="utf-8") as f:
                json.dump(value, f, indent=4)
                f.write("\n")
    return paths
