"""The one builder of BERT's ``[CLS] a [SEP] (b [SEP])`` inputs, against the references it
replaces: Google's two truncation loops (run_classifier.py, which 0.6.2's scripts copy, and
create_pretraining_data.py), written here from their definitions, on random inputs; and the
tokenizer and tasks that use it."""
import random

import pytest

from bert_hub import sequence_pairs
from bert_hub.errors import InvalidInputError
from bert_hub.tasks import glue, pretraining
from bert_hub.tokenization import BertTokenizer


def classifier_truncate(a, b, max_length):
    """Google's run_classifier._truncate_seq_pair: pop from the end of the longer list."""
    while len(a) + len(b) > max_length:
        (a if len(a) > len(b) else b).pop()


def pretraining_truncate(a, b, max_length, rng):
    """Google's create_pretraining_data.truncate_seq_pair: the longer list loses its first or
    its last item, one rng.random() draw per item."""
    while len(a) + len(b) > max_length:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def random_pair(rng):
    a = [f"a{i}" for i in range(rng.randint(0, 60))]
    b = [f"b{i}" for i in range(rng.randint(0, 60))]
    return a, b, rng.randint(0, 130)


def test_truncation_without_rng_is_the_classifiers():
    rng = random.Random(0)
    for _ in range(5000):
        a, b, limit = random_pair(rng)
        want_a, want_b = list(a), list(b)
        classifier_truncate(want_a, want_b, limit)
        sequence_pairs.truncate_seq_pair(a, b, limit)
        assert (a, b) == (want_a, want_b), limit


def test_truncation_with_rng_is_the_pretraining_generators():
    rng = random.Random(1)
    for seed in range(3000):
        a, b, limit = random_pair(rng)
        want_a, want_b = list(a), list(b)
        ours, reference = random.Random(seed), random.Random(seed)
        pretraining_truncate(want_a, want_b, limit, reference)
        sequence_pairs.truncate_seq_pair(a, b, limit, ours)
        assert (a, b) == (want_a, want_b), (seed, limit)
        assert ours.random() == reference.random()  # the same number of draws


def test_every_task_uses_the_one_function():
    assert glue.truncate_seq_pair is pretraining.truncate_seq_pair is sequence_pairs.truncate_seq_pair


def test_assemble_layout_and_segments():
    rng = random.Random(2)
    for _ in range(500):
        a, b, _ = random_pair(rng)
        items, segments = sequence_pairs.assemble(a, b, "[CLS]", "[SEP]")
        assert items == ["[CLS]", *a, "[SEP]", *b, "[SEP]"]
        assert segments == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        items, segments = sequence_pairs.assemble(a, None, 101, 102)
        assert items == [101, *a, 102] and segments == [0] * len(items)


def test_truncate_and_assemble_fits_and_leaves_its_inputs_alone():
    rng = random.Random(3)
    for _ in range(3000):
        a, b, limit = random_pair(rng)
        limit = max(limit, 3)
        copies = (list(a), list(b))
        items, segments = sequence_pairs.truncate_and_assemble(a, b, limit, "[CLS]", "[SEP]")
        assert (a, b) == copies
        classifier_truncate(copies[0], copies[1], limit - 3)
        assert items == ["[CLS]", *copies[0], "[SEP]", *copies[1], "[SEP]"]
        assert len(items) == len(segments) <= limit
        single, _ = sequence_pairs.truncate_and_assemble(a, None, limit, "[CLS]", "[SEP]")
        assert single == ["[CLS]", *a[:limit - 2], "[SEP]"]
    unlimited, _ = sequence_pairs.truncate_and_assemble(["x"] * 600, ["y"], None, 1, 2)
    assert len(unlimited) == 604


def test_too_small_limits_are_clear_errors():
    with pytest.raises(InvalidInputError, match=r"max_length \(2\) leaves no room for \[CLS\] and two"):
        sequence_pairs.truncate_and_assemble(["a"], ["b"], 2, "[CLS]", "[SEP]")
    with pytest.raises(InvalidInputError, match=r"max_length \(1\) .* at least 2"):
        sequence_pairs.truncate_and_assemble(["a"], None, 1, "[CLS]", "[SEP]")
    with pytest.raises(InvalidInputError, match="max_length must be >= 0"):
        sequence_pairs.truncate_seq_pair([], [], -1)


@pytest.fixture
def tokenizer(tmp_path):
    words = [f"w{i}" for i in range(40)]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    return BertTokenizer(str(path)), words


def test_tokenizer_and_glue_build_the_same_inputs(tokenizer):
    """encode() (ids) and GLUE's features (word pieces, padded) follow one layout and one cut."""
    tok, words = tokenizer
    rng = random.Random(4)
    for _ in range(300):
        text_a = " ".join(rng.choices(words, k=rng.randint(1, 30)))
        text_b = " ".join(rng.choices(words, k=rng.randint(1, 30)))
        limit = rng.randint(4, 50)
        a, b = tok.tokenize(text_a), tok.tokenize(text_b)
        classifier_truncate(a, b, limit - 3)
        want = tok.convert_tokens_to_ids(["[CLS]", *a, "[SEP]", *b, "[SEP]"])
        encoded = tok.encode(text_a, text_b, max_length=limit)
        assert encoded["input_ids"] == want
        assert encoded["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
        tokens, input_ids, input_mask, segment_ids = glue.encode_pair(tok, text_a, text_b, limit)
        assert input_ids[:len(want)] == want and input_mask.count(1) == len(want)
        assert segment_ids[:len(want)] == encoded["token_type_ids"]
