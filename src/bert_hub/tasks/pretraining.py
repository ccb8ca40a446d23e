"""Masked-LM + next-sentence training data from a plain-text corpus, with Google's recipe
(create_pretraining_data.py): one sentence per line, a blank line between documents; sequence
pairs packed up to a target length (sometimes shorter), half of the second segments drawn from
another document, 15% of word pieces predicted (80% [MASK], 10% random, 10% unchanged).
"""
from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import List, Optional

import torch
from torch import nn
from torch.utils.data import StackDataset

from bert_hub.errors import DataFormatError, EntryNotFoundError
from bert_hub.sequence_pairs import assemble, truncate_seq_pair  # noqa: F401  (this module's name too)

IGNORE_INDEX = -1  # masked_lm_labels at positions that are not predicted (0.6.2's convention)


@dataclass
class TrainingInstance:
    tokens: List[str]
    segment_ids: List[int]
    masked_lm_positions: List[int]
    masked_lm_labels: List[str]
    is_random_next: bool


def read_corpus(path: str, tokenizer) -> List[List[List[str]]]:
    """Documents -> sentences -> word pieces. Lines that tokenize to nothing are dropped, and so
    are empty documents."""
    if not os.path.isfile(path):
        raise EntryNotFoundError(
            f"corpus file {path} does not exist; check --train_corpus (one sentence per line, a "
            f"blank line between documents)")
    documents: List[List[List[str]]] = [[]]
    with open(path, "rb") as f:
        for line_num, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise DataFormatError(
                    f"{path}, line {line_num}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                    f"re-encode the corpus as UTF-8") from None
            if not line:
                documents.append([])
                continue
            tokens = tokenizer.tokenize(line)
            if tokens:
                documents[-1].append(tokens)
    documents = [d for d in documents if d]
    if not documents:
        raise DataFormatError(f"{path}, line 1: the corpus holds no text")
    return documents


def create_masked_lm_predictions(tokens: Sequence[str], masked_lm_prob: float,
                                 max_predictions_per_seq: int, vocab_words: Sequence[str],
                                 rng: random.Random, whole_word_mask: bool = False):
    """Returns (output_tokens, masked positions, original tokens at those positions), positions
    sorted. ``round(len(tokens) * masked_lm_prob)`` positions (at least 1, at most
    ``max_predictions_per_seq``) are chosen, never [CLS] or [SEP]."""
    cand_indexes: List[List[int]] = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if whole_word_mask and cand_indexes and token.startswith("##"):
            cand_indexes[-1].append(i)
        else:
            cand_indexes.append([i])
    rng.shuffle(cand_indexes)
    output_tokens = list(tokens)
    num_to_predict = min(max_predictions_per_seq, max(1, int(round(len(tokens) * masked_lm_prob))))
    masked = []  # (index, original token)
    covered = set()
    for index_set in cand_indexes:
        if len(masked) >= num_to_predict:
            break
        if len(masked) + len(index_set) > num_to_predict:
            continue
        if any(index in covered for index in index_set):
            continue
        for index in index_set:
            covered.add(index)
            if rng.random() < 0.8:
                masked_token = "[MASK]"
            elif rng.random() < 0.5:
                masked_token = tokens[index]
            else:
                masked_token = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            output_tokens[index] = masked_token
            masked.append((index, tokens[index]))
    masked.sort()
    return output_tokens, [i for i, _ in masked], [t for _, t in masked]


def create_instances_from_document(all_documents, document_index: int, max_seq_length: int,
                                   short_seq_prob: float, masked_lm_prob: float,
                                   max_predictions_per_seq: int, vocab_words: Sequence[str],
                                   rng: random.Random,
                                   whole_word_mask: bool = False) -> List[TrainingInstance]:
    """Pack the sentences of one document into ``[CLS] A [SEP] B [SEP]`` pairs."""
    document = all_documents[document_index]
    max_num_tokens = max_seq_length - 3
    # Mostly fill the sequence, but sometimes train on shorter ones so that fine-tuning on short
    # inputs is not out of distribution.
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = rng.randint(2, max_num_tokens)

    instances = []
    current_chunk: List[List[str]] = []
    current_length = 0
    i = 0
    while i < len(document):
        segment = document[i]
        current_chunk.append(segment)
        current_length += len(segment)
        if i == len(document) - 1 or current_length >= target_seq_length:
            if current_chunk:
                a_end = rng.randint(1, len(current_chunk) - 1) if len(current_chunk) >= 2 else 1
                tokens_a = [t for seg in current_chunk[:a_end] for t in seg]
                tokens_b: List[str] = []
                if len(current_chunk) == 1 or rng.random() < 0.5:
                    is_random_next = True
                    target_b_length = target_seq_length - len(tokens_a)
                    for _ in range(10):  # a bounded search for another document
                        random_document_index = rng.randint(0, len(all_documents) - 1)
                        if random_document_index != document_index:
                            break
                    random_document = all_documents[random_document_index]
                    random_start = rng.randint(0, len(random_document) - 1)
                    for j in range(random_start, len(random_document)):
                        tokens_b.extend(random_document[j])
                        if len(tokens_b) >= target_b_length:
                            break
                    # put the unused segments back so they are not wasted
                    i -= len(current_chunk) - a_end
                else:
                    is_random_next = False
                    tokens_b = [t for seg in current_chunk[a_end:] for t in seg]
                # from the front or the back at random (more noise than always the end)
                truncate_seq_pair(tokens_a, tokens_b, max_num_tokens, rng)
                if tokens_a and tokens_b:
                    tokens, segment_ids = assemble(tokens_a, tokens_b, "[CLS]", "[SEP]")
                    tokens, positions, labels = create_masked_lm_predictions(
                        tokens, masked_lm_prob, max_predictions_per_seq, vocab_words, rng,
                        whole_word_mask)
                    instances.append(TrainingInstance(tokens, segment_ids, positions, labels,
                                                      is_random_next))
            current_chunk, current_length = [], 0
        i += 1
    return instances


def create_training_instances(documents, max_seq_length: int, vocab_words: Sequence[str],
                              rng: random.Random, dupe_factor: int = 1,
                              short_seq_prob: float = 0.1, masked_lm_prob: float = 0.15,
                              max_predictions_per_seq: int = 20,
                              whole_word_mask: bool = False) -> List[TrainingInstance]:
    """All instances of a corpus, ``dupe_factor`` times with different masks, shuffled."""
    if max_seq_length < 5:
        raise ValueError(f"max_seq_length ({max_seq_length}) must be at least 5 for a sentence pair")
    instances = []
    for _ in range(dupe_factor):
        for document_index in range(len(documents)):
            instances.extend(create_instances_from_document(
                documents, document_index, max_seq_length, short_seq_prob, masked_lm_prob,
                max_predictions_per_seq, vocab_words, rng, whole_word_mask))
    rng.shuffle(instances)
    return instances


def instances_to_tensors(instances: Sequence[TrainingInstance], tokenizer, max_seq_length: int,
                         ignore_index: int = IGNORE_INDEX):
    """Stacked tensors named as ``BertForPreTraining``'s arguments: input_ids, token_type_ids,
    attention_mask, masked_lm_labels ((N, T) long; ``ignore_index`` where nothing is predicted)
    and next_sentence_label ((N,) long; 0 = B follows A, 1 = B is random)."""
    n = len(instances)
    input_ids = torch.zeros(n, max_seq_length, dtype=torch.long)
    input_mask = torch.zeros(n, max_seq_length, dtype=torch.long)
    segment_ids = torch.zeros(n, max_seq_length, dtype=torch.long)
    lm_labels = torch.full((n, max_seq_length), ignore_index, dtype=torch.long)
    for k, inst in enumerate(instances):
        t = len(inst.tokens)
        input_ids[k, :t] = torch.tensor(tokenizer.convert_tokens_to_ids(inst.tokens))
        input_mask[k, :t] = 1
        segment_ids[k, :t] = torch.tensor(inst.segment_ids)
        if inst.masked_lm_positions:
            lm_labels[k, inst.masked_lm_positions] = torch.tensor(
                tokenizer.convert_tokens_to_ids(inst.masked_lm_labels))
    return {
        "input_ids": input_ids, "token_type_ids": segment_ids, "attention_mask": input_mask,
        "masked_lm_labels": lm_labels,
        "next_sentence_label": torch.tensor([int(i.is_random_next) for i in instances],
                                            dtype=torch.long),
    }


def vocab_words(tokenizer) -> List[str]:
    """The vocabulary in id order (what random replacement draws from)."""
    vocab = getattr(tokenizer, "vocab", None)
    if vocab is None:
        raise TypeError("the tokenizer has no .vocab mapping; use a BertTokenizer")
    return [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1])]


def build_pretraining_data(path: str, tokenizer, max_seq_length: int, seed: int = 42,
                           dupe_factor: int = 1, short_seq_prob: float = 0.1,
                           masked_lm_prob: float = 0.15, max_predictions_per_seq: int = 20,
                           whole_word_mask: bool = False, rng: Optional[random.Random] = None):
    """Corpus file -> a map-style dataset of dicts (see :func:`instances_to_tensors`) that
    ``BertForPreTraining(**batch)`` takes; deterministic for a seed."""
    rng = rng or random.Random(seed)
    documents = read_corpus(path, tokenizer)
    instances = create_training_instances(
        documents, max_seq_length, vocab_words(tokenizer), rng, dupe_factor, short_seq_prob,
        masked_lm_prob, max_predictions_per_seq, whole_word_mask)
    if not instances:
        raise DataFormatError(f"{path}, line 1: no sentence pair could be built from the corpus")
    return StackDataset(**instances_to_tensors(instances, tokenizer, max_seq_length))


class PreTrainingObjective(nn.Module):
    """A ``BertForPreTraining`` with 0.6.2's loss (masked-LM cross-entropy over the predicted
    positions + next-sentence cross-entropy), returning with it what evaluation needs, per
    example, so a whole eval set never holds (N, T, vocab) logits: ``{"loss", "mlm_correct" (B,),
    "mlm_count" (B,), "nsp_logits" (B, 2)}``. ``.model`` is the wrapped model."""

    def __init__(self, model: nn.Module, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.model = model
        self.ignore_index = ignore_index

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, masked_lm_labels=None,
                next_sentence_label=None):
        # (B, T, V), (B, 2)
        scores, nsp_logits = self.model(input_ids, token_type_ids, attention_mask)
        if masked_lm_labels is None or next_sentence_label is None:
            return scores, nsp_logits
        scores, nsp = scores.float(), nsp_logits.float()
        mlm_loss = nn.functional.cross_entropy(scores.view(-1, scores.size(-1)),
                                               masked_lm_labels.view(-1),
                                               ignore_index=self.ignore_index)
        nsp_loss = nn.functional.cross_entropy(nsp, next_sentence_label.view(-1))
        predicted = masked_lm_labels != self.ignore_index  # (B, T)
        correct = (scores.argmax(-1) == masked_lm_labels) & predicted
        return {"loss": mlm_loss + nsp_loss, "mlm_correct": correct.sum(-1),
                "mlm_count": predicted.sum(-1), "nsp_logits": nsp_logits}


def pretraining_metrics(predictions, labels) -> dict:
    """Trainer ``compute_metrics`` for :class:`PreTrainingObjective`: masked-LM accuracy over
    the predicted positions and next-sentence accuracy."""
    import numpy as np

    mlm_correct, mlm_count, nsp_logits = predictions
    _, next_sentence_label = labels
    return {"mlm_accuracy": float(np.sum(mlm_correct) / max(np.sum(mlm_count), 1)),
            "nsp_accuracy": float(np.mean(np.argmax(nsp_logits, -1) == next_sentence_label))}
