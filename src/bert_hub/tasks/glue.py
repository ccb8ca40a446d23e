"""GLUE sentence(-pair) classification: the official TSV layouts, Google's feature conversion,
the metrics each task is reported with, and the pieces the Trainer needs (a dataset of dicts and
a module returning the loss).
"""
from __future__ import annotations

import csv
import difflib
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import StackDataset

from bert_hub.errors import DataFormatError, EntryNotFoundError, UnknownTaskError
from bert_hub.sequence_pairs import (  # noqa: F401  (truncate_seq_pair: this module's name since 2018)
    input_tensors,
    second_text,
    truncate_and_assemble,
    truncate_seq_pair,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Data records
# --------------------------------------------------------------------------------------------
@dataclass
class InputExample:
    """One example as read from a file; ``label`` is None for test sets, a float for STS-B."""

    guid: str
    text_a: str
    text_b: Optional[str] = None
    label: Optional[str] = None


@dataclass
class InputFeatures:
    """One example as the model sees it, every list of length ``max_seq_length``."""

    input_ids: List[int]
    input_mask: List[int]
    segment_ids: List[int]
    label_id: Optional[float]  # int class index, float for regression, None without a label
    tokens: Optional[List[str]] = None


# --------------------------------------------------------------------------------------------
# The official layouts, as data
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TsvLayout:
    """Where the fields of one GLUE file are. Indices may be negative (from the end)."""

    filename: str
    header: bool
    text_a: int
    text_b: Optional[int] = None
    label: Optional[int] = None  # None: an unlabelled (test) file


@dataclass(frozen=True)
class GlueTask:
    name: str
    labels: Tuple[str, ...]  # () for a regression task
    metric: str  # "mcc" | "acc" | "acc_and_f1" | "pearson_and_spearman"
    train: TsvLayout
    dev: TsvLayout
    test: TsvLayout

    @property
    def output_mode(self) -> str:
        return "classification" if self.labels else "regression"

    @property
    def num_labels(self) -> int:
        return len(self.labels) if self.labels else 1


def _pair(name, labels, metric, a, b, label, test_a, test_b, dev="dev.tsv", test="test.tsv"):
    return GlueTask(
        name, labels, metric,
        train=TsvLayout("train.tsv", True, a, b, label),
        dev=TsvLayout(dev, True, a, b, label),
        test=TsvLayout(test, True, test_a, test_b, None),
    )


# Column layouts of the GLUE distribution (download_glue_data.py), as Google's run_classifier.py
# reads them. CoLA's train and dev files have no header; its test file has one.
GLUE_TASKS: Dict[str, GlueTask] = {
    "cola": GlueTask(
        "cola", ("0", "1"), "mcc",
        train=TsvLayout("train.tsv", False, 3, None, 1),
        dev=TsvLayout("dev.tsv", False, 3, None, 1),
        test=TsvLayout("test.tsv", True, 1, None, None),
    ),
    "sst-2": GlueTask(
        "sst-2", ("0", "1"), "acc",
        train=TsvLayout("train.tsv", True, 0, None, 1),
        dev=TsvLayout("dev.tsv", True, 0, None, 1),
        test=TsvLayout("test.tsv", True, 1, None, None),
    ),
    # Quality  #1 ID  #2 ID  #1 String  #2 String  (test: index  #1 ID  #2 ID  #1 String  #2 String)
    "mrpc": _pair("mrpc", ("0", "1"), "acc_and_f1", 3, 4, 0, 3, 4),
    # index genre filename year old_index source1 source2 sentence1 sentence2 score
    "sts-b": _pair("sts-b", (), "pearson_and_spearman", 7, 8, -1, 7, 8),
    # id qid1 qid2 question1 question2 is_duplicate  (test: id question1 question2)
    "qqp": _pair("qqp", ("0", "1"), "acc_and_f1", 3, 4, 5, 1, 2),
    # index promptID pairID genre s1_binary_parse s2_binary_parse s1_parse s2_parse
    # sentence1 sentence2 label1 [label2..label5] gold_label
    "mnli": _pair("mnli", ("contradiction", "entailment", "neutral"), "acc", 8, 9, -1, 8, 9,
                  dev="dev_matched.tsv", test="test_matched.tsv"),
    "mnli-mm": _pair("mnli-mm", ("contradiction", "entailment", "neutral"), "acc", 8, 9, -1, 8, 9,
                     dev="dev_mismatched.tsv", test="test_mismatched.tsv"),
    # index question sentence label
    "qnli": _pair("qnli", ("entailment", "not_entailment"), "acc", 1, 2, -1, 1, 2),
    # index sentence1 sentence2 label
    "rte": _pair("rte", ("entailment", "not_entailment"), "acc", 1, 2, -1, 1, 2),
    "wnli": _pair("wnli", ("0", "1"), "acc", 1, 2, -1, 1, 2),
}
_ALIASES = {"sst2": "sst-2", "stsb": "sts-b", "mnli-m": "mnli", "mnli_mm": "mnli-mm",
            "mnli-mismatched": "mnli-mm", "mnli-matched": "mnli"}


def get_task(name: str) -> GlueTask:
    """The task spec for ``name`` (case-insensitive; ``SST-2``, ``sst2`` both work)."""
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in GLUE_TASKS:
        return GLUE_TASKS[key]
    close = difflib.get_close_matches(key, list(GLUE_TASKS) + list(_ALIASES), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownTaskError(
        f"unknown GLUE task {name!r}.{hint} Known tasks: {', '.join(GLUE_TASKS)}."
    )


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def read_tsv(path: str) -> List[Tuple[int, List[str]]]:
    """Rows of a GLUE TSV file as ``(line_number, fields)``; quotes are plain characters, as in
    Google's reader (``quotechar=None``)."""
    if not os.path.isfile(path):
        raise EntryNotFoundError(
            f"data file {path} does not exist; check --data_dir (the GLUE task folder holding "
            f"{os.path.basename(path)}, as written by download_glue_data.py)"
        )
    rows = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        try:
            for fields in reader:
                rows.append((reader.line_num, fields))
        except csv.Error as exc:
            raise DataFormatError(f"{path}, line {reader.line_num}: not a TSV row ({exc})") from exc
    return rows


class GlueProcessor:
    """Reads one task's train / dev / test files into :class:`InputExample` lists.

    ``skip_malformed=True`` logs and skips rows with missing columns or unknown labels instead of
    raising (the first QQP release has a few such rows)."""

    def __init__(self, task: str, skip_malformed: bool = False):
        self.task = get_task(task)
        self.skip_malformed = skip_malformed

    def get_labels(self) -> List[str]:
        return list(self.task.labels)

    def get_train_examples(self, data_dir: str) -> List[InputExample]:
        return self._read(data_dir, self.task.train, "train")

    def get_dev_examples(self, data_dir: str) -> List[InputExample]:
        return self._read(data_dir, self.task.dev, "dev")

    def get_test_examples(self, data_dir: str) -> List[InputExample]:
        return self._read(data_dir, self.task.test, "test")

    def _read(self, data_dir: str, layout: TsvLayout, set_type: str) -> List[InputExample]:
        path = os.path.join(data_dir, layout.filename)
        rows = read_tsv(path)
        if layout.header:
            if not rows:
                raise DataFormatError(f"{path}: the file is empty; expected a header line")
            width = len(rows[0][1])
            rows = rows[1:]
        else:
            width = 4  # CoLA: source, label, original judgement, sentence
        examples = []
        for line_num, fields in rows:
            if fields == [] or fields == [""]:
                continue  # a trailing blank line
            try:
                examples.append(self._example(fields, width, layout, f"{set_type}-{len(examples)}"))
            except ValueError as exc:
                message = f"{path}, line {line_num}: {exc}"
                if not self.skip_malformed:
                    raise DataFormatError(
                        f"{message}. Fix the row, or pass --skip_malformed_rows to skip such rows."
                    ) from None
                logger.warning("skipping %s", message)
        return examples

    def _example(self, fields: List[str], width: int, layout: TsvLayout, guid: str) -> InputExample:
        if len(fields) != width:
            raise ValueError(
                f"expected {width} tab-separated columns for {self.task.name} "
                f"{layout.filename}, found {len(fields)}"
            )
        text_b = fields[layout.text_b] if layout.text_b is not None else None
        label = None
        if layout.label is not None:
            label = fields[layout.label].strip()
            if self.task.labels:
                if label not in self.task.labels:
                    raise ValueError(
                        f"label {label!r} is not one of {list(self.task.labels)} for {self.task.name}"
                    )
            else:
                try:
                    label = float(label)
                except ValueError:
                    raise ValueError(f"score {label!r} is not a number") from None
        return InputExample(guid=guid, text_a=fields[layout.text_a], text_b=text_b, label=label)


# --------------------------------------------------------------------------------------------
# Features (Google's convert_single_example)
# --------------------------------------------------------------------------------------------
def encode_pair(tokenizer, text_a: str, text_b: Optional[str], max_seq_length: int, *,
                cut_empty_as_pair: bool = True):
    """``[CLS] a [SEP] (b [SEP])`` padded to ``max_seq_length``; a pair too long loses word
    pieces from the end of the longer text (Google's ``_truncate_seq_pair``).

    A ``text_b`` of None or "" is no pair; one that tokenizes to nothing (whitespace only) adds
    no second segment but cuts ``a`` as a pair's first text, as 0.6.2's ``run_classifier.py``
    does (``sequence_pairs``); ``cut_empty_as_pair=False`` cuts it as a single text, as its
    ``extract_features.py`` does.

    Returns (tokens, input_ids, input_mask, segment_ids); the last three have length
    ``max_seq_length`` and tokens are the unpadded word pieces."""
    text_b = second_text(text_b)
    if max_seq_length < 3 + (text_b is not None):
        raise ValueError(f"max_seq_length ({max_seq_length}) leaves no room for any token")
    tokens_a = tokenizer.tokenize(text_a)
    tokens_b = tokenizer.tokenize(text_b) if text_b is not None else None
    if not tokens_b and not cut_empty_as_pair:
        tokens_b = None
    tokens, segment_ids = truncate_and_assemble(tokens_a, tokens_b, max_seq_length, "[CLS]", "[SEP]")
    input_ids = list(tokenizer.convert_tokens_to_ids(tokens))
    input_mask = [1] * len(input_ids)
    padding = [0] * (max_seq_length - len(input_ids))
    return tokens, input_ids + padding, input_mask + padding, segment_ids + padding


def convert_examples_to_features(
    examples: Sequence[InputExample], label_list: Sequence[str], max_seq_length: int,
    tokenizer, output_mode: str = "classification",
) -> List[InputFeatures]:
    """Google's feature conversion; works with any tokenizer that has ``tokenize`` and
    ``convert_tokens_to_ids``."""
    label_map = {label: i for i, label in enumerate(label_list)}
    features = []
    for example in examples:
        tokens, input_ids, input_mask, segment_ids = encode_pair(
            tokenizer, example.text_a, example.text_b, max_seq_length)
        if example.label is None:
            label_id = None
        elif output_mode == "classification":
            label_id = label_map[example.label]
        else:
            label_id = float(example.label)
        features.append(InputFeatures(input_ids, input_mask, segment_ids, label_id, tokens))
    return features


def features_to_tensors(features: Sequence[InputFeatures], output_mode: str = "classification"):
    """A dict of stacked tensors named as the model's arguments: input_ids, token_type_ids
    (segment ids), attention_mask (input mask), all (N, T) long, and, when every feature has a
    label, label_ids ((N,), long, or float for regression)."""
    if not features:
        raise ValueError("no examples to convert: the data file holds no rows")
    out = input_tensors(features)
    if all(f.label_id is not None for f in features):
        dtype = torch.long if output_mode == "classification" else torch.float
        out["label_ids"] = torch.tensor([f.label_id for f in features], dtype=dtype)
    return out


# --------------------------------------------------------------------------------------------
# Metrics (sklearn / scipy definitions, on numpy)
# --------------------------------------------------------------------------------------------
def simple_accuracy(preds, labels) -> float:
    preds, labels = np.asarray(preds), np.asarray(labels)
    return float((preds == labels).mean())


def f1_score(preds, labels, positive=1) -> float:
    """Binary F1 of the ``positive`` class; 0.0 when there are no true or predicted positives
    (sklearn's ``zero_division=0``)."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    tp = float(np.sum((preds == positive) & (labels == positive)))
    fp = float(np.sum((preds == positive) & (labels != positive)))
    fn = float(np.sum((preds != positive) & (labels == positive)))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def matthews_corrcoef(preds, labels) -> float:
    """Matthews correlation for any number of classes (Gorodkin's R_K, as sklearn); 0.0 when
    undefined (a constant prediction or constant labels)."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    classes, encoded = np.unique(np.concatenate([labels, preds]), return_inverse=True)
    y_true, y_pred = encoded[: len(labels)], encoded[len(labels):]
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.float64)
    np.add.at(confusion, (y_true, y_pred), 1)
    t_sum, p_sum = confusion.sum(axis=1), confusion.sum(axis=0)
    correct, total = np.trace(confusion), confusion.sum()
    cov_ytyp = correct * total - np.dot(t_sum, p_sum)
    cov_ypyp = total ** 2 - np.dot(p_sum, p_sum)
    cov_ytyt = total ** 2 - np.dot(t_sum, t_sum)
    if cov_ypyp * cov_ytyt == 0:
        return 0.0
    return float(cov_ytyp / math.sqrt(cov_ytyt * cov_ypyp))


def pearson(x, y) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    xm, ym = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(np.dot(xm, xm)) * float(np.dot(ym, ym)))
    return float("nan") if denom == 0 else float(np.dot(xm, ym) / denom)


def _average_ranks(x) -> np.ndarray:
    """1-based ranks, ties sharing their mean rank (scipy.stats.rankdata's 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return ranks


def spearman(x, y) -> float:
    return pearson(_average_ranks(x), _average_ranks(y))


def compute_metrics(task_name: str, preds, labels) -> Dict[str, float]:
    """The GLUE leaderboard metrics of ``task_name``: class predictions (or scores for STS-B)
    against gold labels (indices, or scores)."""
    metric = get_task(task_name).metric
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    if metric == "mcc":
        return {"mcc": matthews_corrcoef(preds, labels)}
    if metric == "acc":
        return {"acc": simple_accuracy(preds, labels)}
    if metric == "acc_and_f1":
        acc, f1 = simple_accuracy(preds, labels), f1_score(preds, labels)
        return {"acc": acc, "f1": f1, "acc_and_f1": (acc + f1) / 2}
    p, s = pearson(preds, labels), spearman(preds, labels)
    return {"pearson": p, "spearmanr": s, "corr": (p + s) / 2}


def metrics_function(task_name: str):
    """``(logits (N, num_labels), label_ids (N,)) -> compute_metrics(...)``, the form the Trainer's
    ``compute_metrics`` takes: argmax for classification, the single column for regression."""
    task = get_task(task_name)

    def compute(logits, labels):
        logits = np.asarray(logits)
        preds = logits.reshape(-1) if task.output_mode == "regression" else logits.argmax(-1)
        return compute_metrics(task.name, preds, np.asarray(labels))

    compute.__name__ = f"glue_metrics_{task.name}"
    return compute


def dataset(features: Sequence[InputFeatures], output_mode: str = "classification"):
    """A map-style dataset of dicts (see :func:`features_to_tensors`) for the Trainer."""
    return StackDataset(**features_to_tensors(features, output_mode))


class SequenceClassifier(nn.Module):
    """A ``BertForSequenceClassification`` taking the dataset's dict batches: ``{"loss",
    "logits"}`` with labels (cross-entropy, or mean squared error for regression; one forward
    gives the Trainer both), logits (B, num_labels) without. ``.model`` is the wrapped model, to
    save with ``save_pretrained``."""

    def __init__(self, model: nn.Module, output_mode: str = "classification"):
        super().__init__()
        self.model = model
        self.output_mode = output_mode

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, label_ids=None):
        logits = self.model(input_ids, token_type_ids, attention_mask)  # (B, num_labels)
        if label_ids is None:
            return logits
        flat = logits.float()
        if self.output_mode == "regression":
            loss = nn.functional.mse_loss(flat.view(-1), label_ids.float().view(-1))
        else:
            loss = nn.functional.cross_entropy(flat.view(-1, flat.size(-1)), label_ids.view(-1))
        return {"loss": loss, "logits": logits}
