"""Google's masked-LM / next-sentence recipe: corpus reading, pair building, masking rates."""
import random

import pytest

from bert_hub.errors import DataFormatError, EntryNotFoundError
from bert_hub.tasks import pretraining

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class WordTokenizer:
    """Space-split words; every word of the corpus is in the vocabulary."""

    def __init__(self, words):
        self.vocab = {w: i for i, w in enumerate(SPECIAL + sorted(set(words)))}

    def tokenize(self, text):
        return text.split()

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab[t] for t in tokens]


def corpus(n_docs=6, n_sents=8):
    """Sentence k of document d is the two words "d{d}" "s{k}": pairs can be traced back."""
    return [[[f"d{d}", f"s{k}"] for k in range(n_sents)] for d in range(n_docs)]


def test_read_corpus_splits_documents_on_blank_lines(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("a b\nc\n\n\nd e f\n   \ng\n\n", encoding="utf-8")
    docs = pretraining.read_corpus(str(path), WordTokenizer("abcdefg"))
    assert docs == [[["a", "b"], ["c"]], [["d", "e", "f"]], [["g"]]]


def test_corpus_errors(tmp_path):
    with pytest.raises(EntryNotFoundError, match=r"corpus file .*missing\.txt does not exist; "
                                                 r"check --train_corpus"):
        pretraining.read_corpus(str(tmp_path / "missing.txt"), WordTokenizer("a"))
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("ok\nfine\n".encode() + "caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"latin1\.txt, line 3: not UTF-8 text"):
        pretraining.read_corpus(str(bad), WordTokenizer(["ok", "fine"]))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"empty\.txt, line 1: the corpus holds no text"):
        pretraining.read_corpus(str(empty), WordTokenizer("a"))


def test_masking_picks_fifteen_percent_never_special_tokens():
    tokens = ["[CLS]"] + [f"w{i}" for i in range(38)] + ["[SEP]"]  # 40 tokens -> 6 predictions
    vocab = [f"v{i}" for i in range(1000)]
    out, positions, labels = pretraining.create_masked_lm_predictions(
        tokens, 0.15, 20, vocab, random.Random(0))
    assert len(positions) == round(40 * 0.15) == 6
    assert positions == sorted(positions) and 0 not in positions and 39 not in positions
    assert labels == [tokens[p] for p in positions]
    assert [i for i, (a, b) in enumerate(zip(tokens, out)) if a != b] == \
        [p for p in positions if out[p] != tokens[p]]
    _, positions, _ = pretraining.create_masked_lm_predictions(tokens, 0.15, 4, vocab,
                                                               random.Random(0))
    assert len(positions) == 4  # max_predictions_per_seq caps it
    _, positions, _ = pretraining.create_masked_lm_predictions(["[CLS]", "a", "[SEP]"], 0.15, 20,
                                                               vocab, random.Random(0))
    assert positions == [1]  # at least one


def test_masking_is_eighty_ten_ten():
    rng = random.Random(1)
    tokens = ["[CLS]"] + [f"w{i}" for i in range(98)] + ["[SEP]"]
    vocab = [f"v{i}" for i in range(5000)]
    counts = {"mask": 0, "same": 0, "random": 0}
    for _ in range(300):  # 300 x 15 = 4500 predictions
        out, positions, labels = pretraining.create_masked_lm_predictions(tokens, 0.15, 20, vocab,
                                                                          rng)
        for p, label in zip(positions, labels):
            kind = "mask" if out[p] == "[MASK]" else "same" if out[p] == label else "random"
            counts[kind] += 1
    total = sum(counts.values())
    assert total == 300 * 15
    assert counts["mask"] / total == pytest.approx(0.8, abs=0.03)
    assert counts["same"] / total == pytest.approx(0.1, abs=0.02)
    assert counts["random"] / total == pytest.approx(0.1, abs=0.02)


def test_whole_word_masking_keeps_pieces_together():
    tokens = ["[CLS]", "un", "##want", "##ed", "run", "##ning", "[SEP]"]
    for seed in range(20):
        _, positions, _ = pretraining.create_masked_lm_predictions(
            tokens, 0.5, 20, ["x"], random.Random(seed), whole_word_mask=True)
        chosen = set(positions)
        assert chosen & {1, 2, 3} in (set(), {1, 2, 3})
        assert chosen & {4, 5} in (set(), {4, 5})


def test_pairs_are_real_continuations_or_from_another_document():
    docs = corpus()
    rng = random.Random(3)
    instances = pretraining.create_training_instances(
        docs, max_seq_length=64, vocab_words=["[MASK]"], rng=rng, dupe_factor=5,
        short_seq_prob=0.0, masked_lm_prob=0.0001, max_predictions_per_seq=1)
    assert instances
    random_next = 0
    for inst in instances:
        sep = inst.tokens.index("[SEP]")
        a, b = inst.tokens[1:sep], inst.tokens[sep + 1:-1]
        assert inst.tokens[0] == "[CLS]" and inst.tokens[-1] == "[SEP]"
        assert inst.segment_ids == [0] * (sep + 1) + [1] * (len(b) + 1)
        # undo the single masked position to read the sentence ids back
        restored = list(inst.tokens)
        for p, label in zip(inst.masked_lm_positions, inst.masked_lm_labels):
            restored[p] = label
        a, b = restored[1:sep], restored[sep + 1:-1]
        doc_a, doc_b = a[0], b[0]
        if inst.is_random_next:
            random_next += 1
            assert doc_b != doc_a
        else:
            assert doc_b == doc_a
            assert int(b[1][1:]) == int(a[-1][1:]) + 1  # B starts right after A
    assert 0.3 < random_next / len(instances) < 0.7


def test_lengths_respect_max_seq_length_and_short_sequences_occur():
    docs = corpus(n_docs=4, n_sents=30)
    instances = pretraining.create_training_instances(
        docs, max_seq_length=16, vocab_words=["[MASK]"], rng=random.Random(0), dupe_factor=3,
        short_seq_prob=0.5)
    lengths = [len(i.tokens) for i in instances]
    assert max(lengths) <= 16
    assert min(lengths) < 12  # short targets happen


def test_instances_to_tensors_labels_only_at_masked_positions():
    torch = pytest.importorskip("torch")
    words = [w for d in corpus(3, 5) for s in d for w in s]
    tok = WordTokenizer(words)
    instances = pretraining.create_training_instances(
        corpus(3, 5), 24, pretraining.vocab_words(tok), random.Random(0))
    tensors = pretraining.instances_to_tensors(instances, tok, 24)
    assert tensors["input_ids"].shape == (len(instances), 24)
    for k, inst in enumerate(instances):
        labels = tensors["masked_lm_labels"][k]
        expected = torch.full((24,), -1)
        for p, label in zip(inst.masked_lm_positions, inst.masked_lm_labels):
            expected[p] = tok.vocab[label]
        assert torch.equal(labels, expected)
        assert int(tensors["attention_mask"][k].sum()) == len(inst.tokens)
        assert int(tensors["next_sentence_label"][k]) == int(inst.is_random_next)
        assert tensors["token_type_ids"][k].tolist()[:len(inst.tokens)] == inst.segment_ids


def test_build_is_deterministic_for_a_seed(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("\n\n".join("\n".join(" ".join(s) for s in d) for d in corpus(3, 6)),
                    encoding="utf-8")
    tok = WordTokenizer([w for d in corpus(3, 6) for s in d for w in s])
    one = pretraining.build_pretraining_data(str(path), tok, 20, seed=7)
    two = pretraining.build_pretraining_data(str(path), tok, 20, seed=7)
    three = pretraining.build_pretraining_data(str(path), tok, 20, seed=8)
    one, two, three = one.datasets, two.datasets, three.datasets
    assert set(one) == {"input_ids", "token_type_ids", "attention_mask", "masked_lm_labels",
                        "next_sentence_label"}
    assert all(one[k].equal(two[k]) for k in one)
    assert not one["input_ids"].equal(three["input_ids"]) or \
        not one["masked_lm_labels"].equal(three["masked_lm_labels"])
