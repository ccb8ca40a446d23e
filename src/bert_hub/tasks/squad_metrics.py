"""SQuAD's official evaluation (evaluate-v1.1.py and evaluate-v2.0.py), built in so a run needs
nothing else: answer normalisation, exact match and F1, v2.0's no-answer threshold search."""
from __future__ import annotations

import collections
import logging
import re
import string
from typing import Dict, List, Optional

logger = logging.getLogger(__name__)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower case, drop punctuation, drop the articles a/an/the, collapse whitespace."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCTUATION)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _tokens(s: str) -> List[str]:
    return normalize_answer(s).split() if s else []


def exact_match_score(prediction: str, ground_truth: str) -> int:
    return int(normalize_answer(prediction) == normalize_answer(ground_truth))


def f1_score(prediction: str, ground_truth: str, version_2: bool = True) -> float:
    """Token-overlap F1 of the normalized strings. v2.0 scores an empty side (no answer) 1 when
    both are empty, else 0; v1.1 scores any empty side 0."""
    pred_toks, gold_toks = _tokens(prediction), _tokens(ground_truth)
    if not pred_toks or not gold_toks:
        return float(version_2 and pred_toks == gold_toks)
    common = collections.Counter(pred_toks) & collections.Counter(gold_toks)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision, recall = num_same / len(pred_toks), num_same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def _gold_answers(qa: dict, version_2: bool) -> List[str]:
    golds = [a["text"] for a in qa["answers"]]
    if version_2:  # the v2.0 script drops answers that normalize to nothing
        golds = [g for g in golds if normalize_answer(g)] or [""]
    return golds


def evaluate_v1(dataset: list, predictions: Dict[str, str]) -> Dict[str, float]:
    """evaluate-v1.1.py: exact_match and f1 in percent, a missing prediction scoring 0."""
    f1 = exact_match = total = 0.0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                total += 1
                if qa["id"] not in predictions:
                    logger.warning("Unanswered question %s will receive score 0.", qa["id"])
                    continue
                golds = _gold_answers(qa, version_2=False)
                pred = predictions[qa["id"]]
                exact_match += max(exact_match_score(pred, g) for g in golds)
                f1 += max(f1_score(pred, g, version_2=False) for g in golds)
    total = max(total, 1.0)
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1 / total}


def _find_best_thresh(preds, scores, na_probs, qid_to_has_ans):
    num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
    cur_score = best_score = num_no_ans
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_ans[qid]:
            diff = scores[qid]
        else:
            diff = -1 if preds[qid] else 0
        cur_score += diff
        if cur_score > best_score:
            best_score, best_thresh = cur_score, na_probs[qid]
    return 100.0 * best_score / len(scores), best_thresh


def evaluate_v2(dataset: list, predictions: Dict[str, str],
                na_probs: Optional[Dict[str, float]] = None,
                na_prob_thresh: float = 1.0) -> Dict[str, float]:
    """evaluate-v2.0.py: exact / f1 overall and on the HasAns and NoAns splits, and the best
    no-answer thresholds (``best_exact``, ``best_f1`` with their ``*_thresh``).

    Every question needs a prediction (the official script refuses otherwise)."""
    qid_to_has_ans, exact_raw, f1_raw = {}, {}, {}
    missing = []
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                qid = qa["id"]
                qid_to_has_ans[qid] = bool(qa["answers"])
                if qid not in predictions:
                    missing.append(qid)
                    continue
                golds = _gold_answers(qa, version_2=True)
                pred = predictions[qid]
                exact_raw[qid] = max(exact_match_score(pred, g) for g in golds)
                f1_raw[qid] = max(f1_score(pred, g) for g in golds)
    if missing:
        raise ValueError(f"{len(missing)} questions have no prediction (e.g. {missing[0]!r})")
    if na_probs is None:
        na_probs = {k: 0.0 for k in predictions}

    def apply_threshold(raw):
        return {qid: (float(not qid_to_has_ans[qid]) if na_probs[qid] > na_prob_thresh else s)
                for qid, s in raw.items()}

    exact, f1 = apply_threshold(exact_raw), apply_threshold(f1_raw)

    def summary(qids, prefix=""):
        n = len(qids)
        return {f"{prefix}exact": 100.0 * sum(exact[k] for k in qids) / n,
                f"{prefix}f1": 100.0 * sum(f1[k] for k in qids) / n,
                f"{prefix}total": n}

    out = summary(list(qid_to_has_ans)) if qid_to_has_ans else {"exact": 0.0, "f1": 0.0, "total": 0}
    has_ans = [k for k, v in qid_to_has_ans.items() if v]
    no_ans = [k for k, v in qid_to_has_ans.items() if not v]
    if has_ans:
        out.update(summary(has_ans, "HasAns_"))
    if no_ans:
        out.update(summary(no_ans, "NoAns_"))
    if qid_to_has_ans:
        out["best_exact"], out["best_exact_thresh"] = _find_best_thresh(
            predictions, exact_raw, na_probs, qid_to_has_ans)
        out["best_f1"], out["best_f1_thresh"] = _find_best_thresh(
            predictions, f1_raw, na_probs, qid_to_has_ans)
    return out


def evaluate(dataset: list, predictions: Dict[str, str], version_2_with_negative: bool = False,
             na_probs: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """The official metric of the SQuAD version in use."""
    if version_2_with_negative:
        return evaluate_v2(dataset, predictions, na_probs)
    return evaluate_v1(dataset, predictions)
