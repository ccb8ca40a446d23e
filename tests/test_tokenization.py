"""BertTokenizer against its peers: pytorch-pretrained-bert 0.6.2 (the reference, token for
token), Hugging Face's slow and Rust tokenizers (ids), and our own Rust fast path; plus model
inputs (encode / encode_batch), files, and every error message."""
from __future__ import annotations

import collections
import logging
import random
import sys
import unicodedata
from pathlib import Path

import pytest

from bert_hub.errors import (
    BertHubError,
    EntryNotFoundError,
    InvalidInputError,
    MissingDependencyError,
    UnknownModelError,
    UnknownTokenError,
)
from bert_hub.tokenization import BasicTokenizer, BertTokenizer, WordpieceTokenizer

old = pytest.importorskip("pytorch_pretrained_bert.tokenization",
                          reason="needs pytorch-pretrained-bert==0.6.2 (the reference tokenizer)")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Written for these tests: every class of input the basic tokenizer treats specially.
SAMPLE = [
    "Hello, World! This is BERT's tokenizer -- isn't it great?",
    "unaffable unwanted running runner runs RUNNING Unaffable",
    "Crème brûlée, café au lait, naïve façade; Ångström, Øresund, Straße, Ærøskøbing.",
    "¿Dónde está el niño? ¡Mañana! São Paulo, coração, ação.",
    "İstanbul'da ılık bir gün; ŞEHİR ışıkları, Çamlıca.",
    "北京大学的研究人员发布了新的中文模型。自然语言处理！",
    "東京の桜は三月に咲きます。カタカナとひらがな、한국어 문장입니다.",
    "Η ΑΘΗΝΑ ΕΙΝΑΙ Η ΠΡΩΤΕΥΟΥΣΑ ΤΗΣ ΕΛΛΑΔΟΣ. ΟΔΟΣ Σωκράτης, ΣΟΦΟΣ ΑΣ ΣΣ.",
    "Москва — столица России; «ёлка» и ЁЖ.",
    "اللغة العربية جميلة، أليس كذلك؟ भारत एक विशाल देश है।",
    "Tiếng Việt có sáu thanh điệu: à, á, ả, ã, ạ.",
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u2003em\u3000ideographic\u2028line\u2029para",
    "control\x00chars\x07here\x0bvertical\x0cfeed\x1cfile\x1fsep\x7fdel\x85nel",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u00adsoft\u2060wj and \ufffd replacement",
    "emoji 🚀🔥 family 👩\u200d👩\u200d👧 flags 🇫🇷 skin 👍🏽 math ½ ™ © ℃ ﬁ",
    "a" * 99 + " " + "b" * 100 + " " + "c" * 101 + " " + "ab" * 60,
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "Price: $1,299.99 (-15%) ship 2024-03-01, mail a.b@example.com https://example.org/p?q=1&r=2#f",
    "[CLS] Who was Jim Henson ? [SEP] Jim Henson was a puppeteer [SEP]",
    "glued[CLS]tokens[SEP]and [MASK]ed words [PAD] [UNK] [cls] [Cls]",
    "unassigned \ufa6e\ufa6f and private \ue000 and surrogate-free \U0001f9ea",
    "combining e\u0301 a\u0300 n\u0303 o\u0308 \u0301alone \u1fef\u1fc1 \u212b \u2126",
    "   leading and trailing whitespace   ",
    "",
    "\u200b\u200b",
    "ÀÉÎÕÜ ÇÑ ÄÖÜ and lowercase àéîõü çñ äöü",
    "wörd-with-hyphens_and_underscores/and/slashes\\back`tick^caret~tilde|pipe",
]


def _words(texts, lower):
    ref = old.BasicTokenizer(do_lower_case=lower, never_split=())
    return [w for t in texts for w in ref.tokenize(t)]


@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    """Covers many word pieces of SAMPLE, but not all: whole words (every other one),
    prefixes, '##' endings and every character, so WordPiece has real choices to make."""
    words = _words(SAMPLE, True) + _words(SAMPLE, False)
    counts = collections.Counter(words)
    tokens = list(SPECIALS) + ["[", "]", "cl", "##s", "##p", "ma", "##sk", "se", "pa", "##d"]
    for i, word in enumerate(sorted(counts)):
        if i % 2 == 0 and len(word) < 40:
            tokens.append(word)
        tokens += [word[:3], "##" + word[-3:], "##" + word[-2:]]
    chars = sorted({c for w in words for c in w})
    tokens += chars + ["##" + c for c in chars]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def hf_folder(vocab_file, tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    (folder / "vocab.txt").write_bytes(Path(vocab_file).read_bytes())
    return str(folder)


def _tokenizers_or_skip():
    return pytest.importorskip("tokenizers", reason="needs Rust tokenizers (pip install bert_hub[fast])")


# --- identical to 0.6.2 -------------------------------------------------------------------------

@pytest.mark.parametrize("lower", [True, False])
def test_tokenize_and_ids_match_062(vocab_file, lower):
    ours = BertTokenizer(vocab_file, do_lower_case=lower)
    ref = old.BertTokenizer(vocab_file, do_lower_case=lower)
    unk = 0
    for text in SAMPLE:
        expected = ref.tokenize(text)
        assert ours.tokenize(text) == expected, text
        assert ours.convert_tokens_to_ids(expected) == ref.convert_tokens_to_ids(expected)
        unk += expected.count("[UNK]")
        assert ours.tokenize(text) == expected  # second time: from the word cache
    assert unk > 0  # the vocabulary is partial: unknown words are exercised too


@pytest.mark.parametrize("lower", [True, False])
def test_google_mode_matches_062_never_split_empty(vocab_file, lower):
    ours = BertTokenizer(vocab_file, do_lower_case=lower, never_split=())
    ref = old.BertTokenizer(vocab_file, do_lower_case=lower, never_split=())
    for text in SAMPLE:
        assert ours.tokenize(text) == ref.tokenize(text), text


def test_literal_special_tokens_default_and_google_mode(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(SPECIALS + ["[", "]", "cl", "##s", "x", "hi"]) + "\n")
    default = BertTokenizer(str(path))
    google = BertTokenizer(str(path), never_split=())
    assert google.tokenize("[CLS]") == old.BertTokenizer(str(path), never_split=()).tokenize("[CLS]")
    assert default.tokenize("[CLS] hi [SEP]")[0] == "[CLS]"
    assert google.tokenize("[CLS]") == ["[", "cl", "##s", "]"]
    # Glued to other characters, a special token is split even by default (unlike transformers).
    assert default.tokenize("x[CLS]")[1:] == ["[", "cl", "##s", "]"]
    assert default.tokenize("[cls]") == ["[", "cl", "##s", "]"]


@pytest.mark.slow
@pytest.mark.parametrize("lower", [True, False])
def test_basic_tokenizer_matches_062_on_every_code_point(lower):
    """All 1,114,112 code points, alone and inside a word."""
    ours = BasicTokenizer(do_lower_case=lower)
    ref = old.BasicTokenizer(do_lower_case=lower)
    chars = [chr(cp) for cp in range(0x110000)]
    for sep in (" ", "x"):
        for i in range(0, len(chars), 8192):
            text = sep.join(chars[i:i + 8192])
            if ours.tokenize(text) != ref.tokenize(text):
                bad = next(c for c in chars[i:i + 8192]
                           if ours.tokenize(f"x{c}x") != ref.tokenize(f"x{c}x")
                           or ours.tokenize(c) != ref.tokenize(c))
                pytest.fail(f"U+{ord(bad):04X} ({unicodedata.name(bad, '?')}) differs")


def test_wordpiece_matches_062_on_random_words():
    rng = random.Random(0)
    vocab = collections.OrderedDict((t, i) for i, t in enumerate(
        SPECIALS + ["a", "ab", "abc", "b", "ba", "##a", "##b", "##bc", "##cab", "c", "##c", "abcabc"]))
    ours, ref = WordpieceTokenizer(vocab), old.WordpieceTokenizer(vocab)
    words = ["".join(rng.choice("abcd") for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    words += ["a" * 100, "a" * 101, "ab" * 50 + "x"]
    for word in words:
        assert ours.tokenize(word) == ref.tokenize(word), word
    assert ours.tokenize(" ".join(words)) == ref.tokenize(" ".join(words))


def test_vocab_edited_in_place_is_seen(vocab_file):
    """0.6.2 users add words to tokenizer.vocab; the word cache must not hide them."""
    ours, ref = BertTokenizer(vocab_file), old.BertTokenizer(vocab_file)
    assert ours.tokenize("\u2603x") == ref.tokenize("\u2603x") == ["[UNK]"]
    for tok in (ours, ref):
        tok.vocab["\u2603x"] = len(tok.vocab)
    assert ours.tokenize("\u2603x") == ref.tokenize("\u2603x") == ["\u2603x"]


def test_a_vocabulary_that_vanishes_or_cannot_be_read_is_a_typed_error(vocab_file, monkeypatch):
    """Removed between the check and the read (`bert-hub cache rm`), or unreadable: typed, named
    (from_pretrained resolves a removed cache entry again: tests/fuzz/test_fuzz_folders.py)."""
    from bert_hub import wordpiece
    from bert_hub.errors import AccessDeniedError

    for error, typed, message in ((FileNotFoundError(2, "No such file"), EntryNotFoundError,
                                   "was removed while it was being read"),
                                  (PermissionError(13, "Permission denied"), AccessDeniedError,
                                   "cannot be read \\(Permission denied\\)"),
                                  (OSError(5, "Input/output error"), EntryNotFoundError,
                                   "cannot be read \\(Input/output error\\)")):
        def failing(*args, error=error, **kwargs):
            raise error
        monkeypatch.setattr(wordpiece, "open", failing, raising=False)
        with pytest.raises(typed, match=message) as info:
            BertTokenizer(vocab_file)
        assert vocab_file in str(info.value)


def test_vocab_file_quirks_load_like_062(tmp_path):
    """Lines are stripped, '\\r' ends a line, a repeated token keeps its last id."""
    path = tmp_path / "vocab.txt"
    path.write_bytes(b"[PAD]\r\n[UNK]\n  spaced  \n[CLS]\r[SEP]\nrepeat\nrepeat\n\nlast")
    assert BertTokenizer(str(path)).vocab == old.load_vocab(str(path))
    assert BertTokenizer(str(path)).ids_to_tokens == old.BertTokenizer(str(path)).ids_to_tokens


# --- Hugging Face ---------------------------------------------------------------------------------

_HF_DIFFERS = ("ΣΟΦΟΣ", "ΕΛΛΑΔΟΣ", "\ufa6e", "[CLS]tokens", "[MASK]ed")  # documented below


def _hf_agreeing_sample():
    return [t for t in SAMPLE if not any(d in t for d in _HF_DIFFERS)]


@pytest.mark.parametrize("kind", ["slow", "rust"])
def test_ids_match_transformers(vocab_file, hf_folder, kind):
    transformers = pytest.importorskip("transformers", reason="needs transformers")
    if kind == "slow":
        from transformers.models.bert.tokenization_bert_legacy import (
            BertTokenizerLegacy,
        )
        hf = BertTokenizerLegacy.from_pretrained(hf_folder)
    else:
        hf = transformers.BertTokenizer.from_pretrained(hf_folder)
    ours = BertTokenizer(vocab_file)
    texts = _hf_agreeing_sample()
    assert len(texts) >= len(SAMPLE) - 4
    for text in texts:
        assert ours.encode(text)["input_ids"] == hf(text)["input_ids"], text
    pair = ours.encode(texts[0], texts[2])
    expected = hf(texts[0], texts[2])
    assert pair["input_ids"] == expected["input_ids"]
    if kind == "rust":
        assert pair["token_type_ids"] == expected["token_type_ids"]


def test_documented_differences_from_transformers(vocab_file, hf_folder):
    """docs/tokenizer.md lists these; if transformers changes, the page must change."""
    transformers = pytest.importorskip("transformers", reason="needs transformers")
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
    ours = BertTokenizer(vocab_file)
    slow = BertTokenizerLegacy.from_pretrained(hf_folder)
    rust = transformers.BertTokenizer.from_pretrained(hf_folder)
    glued = "glued[CLS]tokens"
    assert "[CLS]" not in ours.tokenize(glued)
    assert "[CLS]" in slow.tokenize(glued) and "[CLS]" in rust.tokenize(glued)
    assert ours.tokenize("ΟΔΟΣ") == slow.tokenize("ΟΔΟΣ")  # final sigma: ς (Python)
    assert "ς" in "".join(ours.tokenize("ΟΔΟΣ")) and "σ" in "".join(rust.tokenize("ΟΔΟΣ"))
    assert ours.tokenize("x\ufa6ex") == slow.tokenize("x\ufa6ex")  # unassigned: dropped
    assert rust.tokenize("x\ufa6ex") != ours.tokenize("x\ufa6ex")


# --- the Rust fast path -----------------------------------------------------------------------------

@pytest.mark.parametrize("lower", [True, False])
def test_fast_path_identical_on_sample(vocab_file, lower):
    _tokenizers_or_skip()
    fast = BertTokenizer(vocab_file, do_lower_case=lower, use_fast=True)
    ref = old.BertTokenizer(vocab_file, do_lower_case=lower)
    for text in SAMPLE:
        assert fast.tokenize(text) == ref.tokenize(text), text
    batch = fast.encode_batch(SAMPLE, padding=False, return_tensors=None)
    python = BertTokenizer(vocab_file, do_lower_case=lower).encode_batch(
        SAMPLE, padding=False, return_tensors=None)
    assert batch == python
    # The Rust path really ran on the plain texts and was bypassed where it differs.
    assert fast._rust.accepts(SAMPLE[0]) and fast._rust.accepts(SAMPLE[5])
    assert not fast._rust.accepts(SAMPLE[18])  # literal [CLS]
    assert not fast._rust.accepts("x\ufa6ex")


def test_fast_path_screens_out_every_known_rust_difference(vocab_file):
    """Raw Rust differs on these; the screened fast path does not."""
    _tokenizers_or_skip()
    fast = BertTokenizer(vocab_file, use_fast=True)
    ref = old.BertTokenizer(vocab_file)
    risky = ["ΟΔΟΣ", "x\ufa6ex", "[CLS] hi", "a\ud800b", "\U0001fae8 new emoji",
             "ΣΑΣ ΣΟΦΟΣ", "\u0e33 thai sara am", "\u1fef\u0385"]
    raw = fast._rust._tok
    raw_differs = 0
    for text in risky:
        assert fast.tokenize(text) == ref.tokenize(text), ascii(text)
        try:
            raw_tokens = raw.encode(text, add_special_tokens=False).tokens
        except TypeError:  # Rust cannot take a lone surrogate at all
            raw_tokens = None
        raw_differs += raw_tokens != ref.tokenize(text)
    assert raw_differs >= 4


def test_fast_path_fuzz_identical(vocab_file):
    """Random strings over a mixed alphabet: the fast path never differs."""
    _tokenizers_or_skip()
    rng = random.Random(1)
    alphabet = ("abcXYZ  \t\n.,'-éÉñßİıΣσςΟ北京の한\u0301\u200b\x00\ufa6e🚀[]CLS" + "\u0345\u03c2")
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(1500)]
    for lower in (True, False):
        fast = BertTokenizer(vocab_file, do_lower_case=lower, use_fast=True)
        ref = old.BertTokenizer(vocab_file, do_lower_case=lower)
        for text in texts:
            assert fast.tokenize(text) == ref.tokenize(text), ascii(text)


def test_use_fast_without_tokenizers_names_the_extra(vocab_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # import tokenizers -> ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install bert_hub\[fast\]") as info:
        BertTokenizer(vocab_file, use_fast=True)
    assert isinstance(info.value, ImportError)
    assert BertTokenizer(vocab_file).tokenize("hello")  # the Python path still works


def test_use_fast_needs_basic_tokenization(vocab_file):
    _tokenizers_or_skip()
    with pytest.raises(InvalidInputError, match="use_fast=True needs do_basic_tokenize=True"):
        BertTokenizer(vocab_file, do_basic_tokenize=False, use_fast=True)


def test_use_fast_without_unk_in_vocab_warns_and_stays_exact(tmp_path):
    _tokenizers_or_skip()
    path = tmp_path / "vocab.txt"
    path.write_text("[CLS]\n[SEP]\nhello\n", encoding="utf-8")
    with pytest.warns(UserWarning, match=r"has no '\[UNK\]' token.*pure-Python path"):
        tok = BertTokenizer(str(path), use_fast=True)
    assert tok.tokenize("hello world") == old.BertTokenizer(str(path)).tokenize("hello world")


# --- encode / encode_batch ----------------------------------------------------------------------------

def _google_truncate(a, b, budget):
    """Google's run_classifier._truncate_seq_pair, as the reference."""
    a, b = list(a), list(b)
    while len(a) + len(b) > budget:
        if len(a) > len(b):
            a.pop()
        else:
            b.pop()
    return a, b


def test_encode_layout_single_and_pair(vocab_file):
    tok = BertTokenizer(vocab_file)
    a = tok.convert_tokens_to_ids(tok.tokenize(SAMPLE[0]))
    b = tok.convert_tokens_to_ids(tok.tokenize(SAMPLE[2]))
    cls, sep = tok.vocab["[CLS]"], tok.vocab["[SEP]"]
    one = tok.encode(SAMPLE[0])
    assert one == {"input_ids": [cls] + a + [sep], "token_type_ids": [0] * (len(a) + 2),
                   "attention_mask": [1] * (len(a) + 2)}
    two = tok.encode(SAMPLE[0], SAMPLE[2])
    assert two["input_ids"] == [cls] + a + [sep] + b + [sep]
    assert two["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert two["attention_mask"] == [1] * (len(a) + len(b) + 3)


def test_encode_pair_truncation_is_googles(vocab_file):
    tok = BertTokenizer(vocab_file)
    rng = random.Random(2)
    words = _words(SAMPLE[:6], True)
    cls, sep = tok.vocab["[CLS]"], tok.vocab["[SEP]"]
    for _ in range(300):
        text_a = " ".join(rng.choices(words, k=rng.randint(0, 30)))
        text_b = " ".join(rng.choices(words, k=rng.randint(0, 30)))
        limit = rng.randint(3, 50)
        a = tok.convert_tokens_to_ids(tok.tokenize(text_a))
        b = tok.convert_tokens_to_ids(tok.tokenize(text_b))
        ta, tb = _google_truncate(a, b, limit - 3)
        got = tok.encode(text_a, text_b, max_length=limit)
        single = tok.encode(text_a, max_length=limit)
        assert single["input_ids"] == [cls] + a[:limit - 2] + [sep]
        if not text_b:                  # no second text (0.6.2's run_classifier.py)
            assert got == single
        else:                           # b cut to nothing adds no second [SEP] either
            assert got["input_ids"] == [cls] + ta + [sep] + (tb + [sep] if tb else [])


def test_encode_padding_and_default_max_len(vocab_file):
    tok = BertTokenizer(vocab_file, max_len=16)
    out = tok.encode("hello", padding=True)
    n = out["attention_mask"].count(1)
    assert len(out["input_ids"]) == 16 and out["input_ids"][n:] == [tok.vocab["[PAD]"]] * (16 - n)
    assert out["token_type_ids"] == [0] * 16 and out["attention_mask"] == [1] * n + [0] * (16 - n)
    assert len(tok.encode(SAMPLE[2])["input_ids"]) == 16  # max_len truncates by default


def test_encode_batch_shapes_and_padding(vocab_file):
    torch = pytest.importorskip("torch", reason="needs torch")
    tok = BertTokenizer(vocab_file)
    singles = [tok.encode(t) for t in SAMPLE]
    width = max(len(s["input_ids"]) for s in singles)
    batch = tok.encode_batch(SAMPLE)
    assert set(batch) == {"input_ids", "token_type_ids", "attention_mask"}
    for tensor in batch.values():
        assert tensor.dtype == torch.long and tuple(tensor.shape) == (len(SAMPLE), width)
    for row, single in zip(batch["input_ids"].tolist(), singles):
        n = len(single["input_ids"])
        assert row[:n] == single["input_ids"] and row[n:] == [tok.vocab["[PAD]"]] * (width - n)
    assert batch["attention_mask"].sum(1).tolist() == [len(s["input_ids"]) for s in singles]

    pairs = tok.encode_batch(SAMPLE[:4], SAMPLE[4:8], max_length=24, padding="max_length")
    assert tuple(pairs["input_ids"].shape) == (4, 24)
    assert pairs["input_ids"][1].tolist()[:pairs["attention_mask"][1].sum()] == \
        tok.encode(SAMPLE[1], SAMPLE[5], max_length=24)["input_ids"]
    np_batch = tok.encode_batch(SAMPLE[:3], return_tensors="np")
    assert np_batch["input_ids"].dtype.name == "int64" and np_batch["input_ids"].shape[0] == 3
    lists = tok.encode_batch(SAMPLE[:3], padding=False, return_tensors=None)
    assert lists["input_ids"] == [s["input_ids"] for s in singles[:3]]
    assert tuple(tok.encode_batch([], return_tensors="pt")["input_ids"].shape) == (0, 0)


# --- files and from_pretrained ----------------------------------------------------------------------

def test_save_vocabulary_round_trip(vocab_file, tmp_path):
    tok = BertTokenizer(vocab_file)
    assert tok.save_vocabulary(str(tmp_path)) == str(tmp_path / "vocab.txt")
    assert BertTokenizer(str(tmp_path / "vocab.txt")).vocab == tok.vocab
    target = tmp_path / "other.txt"
    assert tok.save_vocabulary(str(target)) == str(target)  # a file path (0.6.2 crashed here)
    assert target.read_bytes() == Path(vocab_file).read_bytes()


def test_save_vocabulary_warns_on_gaps(tmp_path, caplog):
    path = tmp_path / "vocab.txt"
    path.write_text("a\nb\na\n", encoding="utf-8")  # 'a' keeps id 2: ids 1, 2
    with caplog.at_level(logging.WARNING, logger="bert_hub.tokenization"):
        BertTokenizer(str(path)).save_vocabulary(str(tmp_path / "out.txt"))
    assert "vocabulary indices are not consecutive" in caplog.text


def test_save_pretrained_round_trip_keeps_casing(vocab_file, tmp_path):
    tok = BertTokenizer(vocab_file, do_lower_case=False, max_len=128)
    folder = tok.save_pretrained(str(tmp_path / "saved"))
    again = BertTokenizer.from_pretrained(folder)
    assert (again.do_lower_case, again.max_len) == (False, 128)
    assert again.tokenize(SAMPLE[2]) == tok.tokenize(SAMPLE[2])


def test_from_pretrained_file_and_folder(vocab_file, hf_folder):
    by_file = BertTokenizer.from_pretrained(vocab_file)
    by_folder = BertTokenizer.from_pretrained(hf_folder, max_len=64)
    assert by_file.vocab == by_folder.vocab and by_folder.max_len == 64
    assert by_file.do_lower_case is True


def test_from_pretrained_reads_transformers_folder_casing(vocab_file, tmp_path):
    transformers = pytest.importorskip("transformers", reason="needs transformers")
    folder = tmp_path / "cased-model"
    folder.mkdir()
    (folder / "vocab.txt").write_bytes(Path(vocab_file).read_bytes())
    transformers.BertTokenizer.from_pretrained(str(folder), do_lower_case=False) \
        .save_pretrained(str(folder))
    assert BertTokenizer.from_pretrained(str(folder)).do_lower_case is False


def test_from_pretrained_warns_on_cased_looking_name(vocab_file, tmp_path):
    folder = tmp_path / "multi_cased_L-12_H-768_A-12"
    folder.mkdir()
    (folder / "vocab.txt").write_bytes(Path(vocab_file).read_bytes())
    with pytest.warns(UserWarning, match="looks like a cased model.*do_lower_case=False"):
        assert BertTokenizer.from_pretrained(str(folder)).do_lower_case is True
    uncased = tmp_path / "uncased_L-12_H-768_A-12"
    uncased.mkdir()
    (uncased / "vocab.txt").write_bytes(Path(vocab_file).read_bytes())
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BertTokenizer.from_pretrained(str(uncased))
        BertTokenizer.from_pretrained(str(folder), do_lower_case=False)


def test_from_pretrained_warns_when_casing_contradicts_folder(vocab_file, tmp_path):
    folder = BertTokenizer(vocab_file, do_lower_case=False).save_pretrained(str(tmp_path / "m"))
    with pytest.warns(UserWarning, match="is a cased model but do_lower_case=True was passed"):
        assert BertTokenizer.from_pretrained(folder, do_lower_case=True).do_lower_case is True


def test_from_pretrained_missing_things(tmp_path):
    with pytest.raises(EntryNotFoundError, match=r"nowhere' does not exist.*a vocab.txt file"):
        BertTokenizer.from_pretrained(str(tmp_path / "nowhere"))
    with pytest.raises(EntryNotFoundError, match=r"has no vocab.txt, bert_config.json or "
                                                 r"config.json .*pass a folder holding"):
        BertTokenizer.from_pretrained(str(tmp_path))
    model_only = tmp_path / "model_only"
    model_only.mkdir()
    (model_only / "bert_config.json").write_text("{}")
    with pytest.raises(EntryNotFoundError, match="resolved to files without a vocabulary"):
        BertTokenizer.from_pretrained(str(model_only))
    with pytest.raises(UnknownModelError):
        BertTokenizer.from_pretrained("no-such-model-name")


def test_bad_tokenizer_config_json(vocab_file, tmp_path):
    (tmp_path / "vocab.txt").write_bytes(Path(vocab_file).read_bytes())
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(InvalidInputError, match="is not valid JSON.*fix or delete it"):
        BertTokenizer.from_pretrained(str(tmp_path))


# --- errors --------------------------------------------------------------------------------------------

def test_constructor_errors(tmp_path, vocab_file):
    with pytest.raises(EntryNotFoundError, match="no vocabulary file at .*missing.txt.*from_pretrained"):
        BertTokenizer(str(tmp_path / "missing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InvalidInputError, match="is empty: pass a BERT vocab.txt"):
        BertTokenizer(str(empty))
    with pytest.raises(InvalidInputError, match=r"max_len must be an int >= 2.*got 1"):
        BertTokenizer(vocab_file, max_len=1)


def test_text_must_be_str(vocab_file):
    tok = BertTokenizer(vocab_file)
    with pytest.raises(InvalidInputError, match=r"text must be a str, got bytes \(decode it first"):
        tok.tokenize(b"bytes")
    with pytest.raises(InvalidInputError, match="text_pair must be a str, got int"):
        tok.encode("a", 3)
    with pytest.raises(InvalidInputError, match=r"texts\[i\] must be a str, got NoneType"):
        tok.encode_batch(["a", None])


def test_convert_errors_and_max_len_warning(vocab_file, caplog):
    tok = BertTokenizer(vocab_file, max_len=4)
    with pytest.raises(UnknownTokenError, match="token 'nope!' is not in the vocabulary") as info:
        tok.convert_tokens_to_ids(["[CLS]", "nope!"])
    assert isinstance(info.value, KeyError) and str(info.value).startswith("token")
    with pytest.raises(InvalidInputError, match="takes a list of tokens, got one str"):
        tok.convert_tokens_to_ids("hello")
    with pytest.raises(InvalidInputError, match="tokens must be strings, got int 7.*convert_ids_to_tokens"):
        tok.convert_tokens_to_ids(["[CLS]", 7])
    with pytest.raises(UnknownTokenError, match=r"id 99999 is not in the vocabulary .*\(ids 0\.\."):
        tok.convert_ids_to_tokens([0, 99999])
    with caplog.at_level(logging.WARNING, logger="bert_hub.tokenization"):
        ids = tok.convert_tokens_to_ids(["[CLS]"] * 5)
    assert len(ids) == 5
    assert "longer than the specified maximum sequence length for this BERT model (5 > 4)" \
        in caplog.text and "max_length=4" in caplog.text


def test_encode_errors(vocab_file, tmp_path):
    tok = BertTokenizer(vocab_file)
    with pytest.raises(InvalidInputError, match="has 9 tokens, more than max_length=5; pass truncation=True"):
        tok.encode("a b c d e f g", max_length=5, truncation=False)
    with pytest.raises(InvalidInputError, match=r"max_length must be an int >= 3 \(room for \[CLS\] and two \[SEP\]\)"):
        tok.encode("a", "b", max_length=2)
    with pytest.raises(InvalidInputError, match="padding=True pads to max_length, but no max_length"):
        tok.encode("a", padding=True)
    with pytest.raises(InvalidInputError, match="max_len \\(2\\) leaves no room for a pair"):
        BertTokenizer(vocab_file, max_len=2).encode("a", "b")
    no_cls = tmp_path / "vocab.txt"
    no_cls.write_text("[UNK]\nhello\n")
    with pytest.raises(UnknownTokenError, match=r"has no '\[CLS\]' token, which encode\(\) needs"):
        BertTokenizer(str(no_cls)).encode("hello")


def test_encode_batch_errors(vocab_file):
    tok = BertTokenizer(vocab_file)
    with pytest.raises(InvalidInputError, match="texts must be a list of str, got str; for one text use encode"):
        tok.encode_batch("one text")
    with pytest.raises(InvalidInputError, match=r"text_pairs must be a list of str as long as texts \(2\), got 1"):
        tok.encode_batch(["a", "b"], ["c"])
    with pytest.raises(InvalidInputError, match="padding must be True/'longest', 'max_length' or False"):
        tok.encode_batch(["a"], padding="left")
    with pytest.raises(InvalidInputError, match="return_tensors must be 'pt', 'np' or None, got 'tf'"):
        tok.encode_batch(["a"], return_tensors="tf")
    with pytest.raises(InvalidInputError, match="padding='max_length' needs max_length=N"):
        tok.encode_batch(["a"], padding="max_length")
    with pytest.raises(InvalidInputError, match=r"different lengths \[\d+, \d+\] cannot form one tensor; pass padding=True"):
        tok.encode_batch(["hello", "hello hello"], padding=False)


def test_save_vocabulary_missing_folder(vocab_file, tmp_path):
    with pytest.raises(EntryNotFoundError, match="the folder .*absent.* does not exist; create it"):
        BertTokenizer(vocab_file).save_vocabulary(str(tmp_path / "absent" / "vocab.txt"))


def test_errors_are_bert_hub_errors():
    for cls in (EntryNotFoundError, InvalidInputError, MissingDependencyError, UnknownTokenError):
        assert issubclass(cls, BertHubError)


def test_without_basic_tokenization_matches_062(vocab_file):
    ours = BertTokenizer(vocab_file, do_basic_tokenize=False)
    ref = old.BertTokenizer(vocab_file, do_basic_tokenize=False)
    for text in SAMPLE:
        assert ours.tokenize(text) == ref.tokenize(text), text


def test_public_names_are_exported():
    import bert_hub
    assert bert_hub.BertTokenizer is BertTokenizer
    assert bert_hub.BasicTokenizer is BasicTokenizer
    assert bert_hub.WordpieceTokenizer is WordpieceTokenizer


# --- Google's tokenizer and module functions (drop-in for its tokenization.py) -------------------

from bert_hub import tokenization  # noqa: E402
from bert_hub.tokenization import CONTROLS_GOOGLE, FullTokenizer  # noqa: E402


def _google_control(char):
    """Google's current definition: only Cc and Cf count, tab/newline/CR are whitespace."""
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf")


@pytest.fixture
def google_reference(monkeypatch):
    """Google's FullTokenizer as its definition says, built from 0.6.2's classes: no
    never_split, WordPiece up to 200 characters, only Cc/Cf dropped as control characters."""
    monkeypatch.setattr(old, "_is_control", _google_control)

    def build(vocab_file, lower):
        basic = old.BasicTokenizer(do_lower_case=lower, never_split=())
        wordpiece = old.WordpieceTokenizer(vocab=old.load_vocab(vocab_file),
                                           max_input_chars_per_word=200)
        return lambda text: [p for w in basic.tokenize(text) for p in wordpiece.tokenize(w)]
    return build


def _google_mode_texts(seed=5):
    """SAMPLE, plus words of 95-210 characters and the code points the two definitions of
    a control character disagree on (private use, unassigned, surrogates)."""
    rng = random.Random(seed)
    letters = "abcdefghij\u00e9\u4e2d"
    texts = list(SAMPLE)
    for _ in range(60):
        words = ["".join(rng.choice(letters) for _ in range(rng.randint(95, 210)))
                 for _ in range(rng.randint(1, 4))]
        words.insert(rng.randint(0, len(words)), rng.choice(
            ["\ue000", "x\uf8ffy", "\U000f0000", "\ufa6e", "\u0378z", "a\ud800b", "[CLS]", "\u200b"]))
        texts.append(" ".join(words))
    return texts


@pytest.mark.parametrize("lower", [True, False])
def test_full_tokenizer_is_googles(vocab_file, lower, google_reference):
    ours = FullTokenizer(vocab_file, do_lower_case=lower)
    reference = google_reference(vocab_file, lower)
    texts = _google_mode_texts()
    for text in texts:
        assert ours.tokenize(text) == reference(text), text
    # The three settings matter on these texts: 0.6.2's defaults give other tokens.
    default = BertTokenizer(vocab_file, do_lower_case=lower)
    assert sum(default.tokenize(t) != ours.tokenize(t) for t in texts) > 30


def test_google_wordpiece_length_limit_matches_062_set_to_200():
    """0.6.2's WordpieceTokenizer with max_input_chars_per_word=200 is Google's; a 101-200
    character word is [UNK] by default (0.6.2) and word-pieced in Google's mode."""
    rng = random.Random(1)
    vocab = collections.OrderedDict((t, i) for i, t in enumerate(
        SPECIALS + ["a", "ab", "abc", "b", "##a", "##b", "##ab", "##c", "##abc", "c"]))
    reference = old.WordpieceTokenizer(vocab, max_input_chars_per_word=200)
    ours = WordpieceTokenizer(vocab, max_input_chars_per_word=200)
    words = ["".join(rng.choice("abc") for _ in range(rng.randint(95, 210))) for _ in range(400)]
    for word in words:
        assert ours.tokenize(word) == reference.tokenize(word), word
    word_150 = "abc" * 50
    assert WordpieceTokenizer(vocab).tokenize(word_150) == ["[UNK]"]
    assert ours.tokenize(word_150) == ["abc"] + ["##abc"] * 49


def test_full_tokenizer_fast_path_identical(vocab_file):
    _tokenizers_or_skip()
    python, rust = FullTokenizer(vocab_file), FullTokenizer(vocab_file, use_fast=True)
    for text in _google_mode_texts(seed=9):
        assert rust.tokenize(text) == python.tokenize(text), text


def test_full_tokenizer_api_is_googles(vocab_file):
    tok = FullTokenizer(vocab_file=vocab_file, do_lower_case=False)
    assert tok.vocab == tokenization.load_vocab(vocab_file)
    assert tok.inv_vocab == {i: t for t, i in tok.vocab.items()}
    assert tok.basic_tokenizer.do_lower_case is False
    assert tok.wordpiece_tokenizer.max_input_chars_per_word == 200
    tokens = tok.tokenize(SAMPLE[2])
    ids = tok.convert_tokens_to_ids(tokens)
    assert ids == [tok.vocab[t] for t in tokens] and tok.convert_ids_to_tokens(ids) == tokens
    with pytest.raises(KeyError, match="not in the vocabulary"):
        tok.convert_tokens_to_ids(["no-such-piece"])
    again = FullTokenizer.from_pretrained(vocab_file, do_lower_case=False)
    assert type(again) is FullTokenizer and again.tokenize(SAMPLE[2]) == tokens


def test_module_character_classes_match_062():
    """_is_whitespace / _is_control / _is_punctuation equal 0.6.2's on a stride through all
    of Unicode plus the first 1,024 code points; Google's control set is a documented subset."""
    codepoints = list(range(1024)) + list(range(1024, 0x110000, 97)) + [0xE000, 0xFA6E, 0xD800]
    for cp in codepoints:
        char = chr(cp)
        assert tokenization._is_whitespace(char) == old._is_whitespace(char), hex(cp)
        assert tokenization._is_control(char) == old._is_control(char), hex(cp)
        assert tokenization._is_punctuation(char) == old._is_punctuation(char), hex(cp)
        assert tokenization._is_control(char, CONTROLS_GOOGLE) == _google_control(char), hex(cp)
    assert tokenization._is_control("\ue000") and not tokenization._is_control("\ue000", CONTROLS_GOOGLE)


def test_module_text_and_vocab_functions(vocab_file):
    rng = random.Random(3)
    for _ in range(200):
        text = "".join(rng.choice(["a", "b", " ", "\t", "\n", "\u3000", "\u00a0", "\r"])
                       for _ in range(rng.randint(0, 20)))
        assert tokenization.whitespace_tokenize(text) == old.whitespace_tokenize(text), repr(text)
    assert tokenization.convert_to_unicode("café") == "café"
    assert tokenization.convert_to_unicode("café".encode() + b"\xff") == "café"  # bad bytes dropped
    with pytest.raises(InvalidInputError, match="str or UTF-8 bytes, got int"):
        tokenization.convert_to_unicode(7)
    vocab = tokenization.load_vocab(vocab_file)
    inv_vocab = {i: t for t, i in vocab.items()}
    tokens = BertTokenizer(vocab_file).tokenize(SAMPLE[0])
    ids = tokenization.convert_tokens_to_ids(vocab, tokens)
    assert ids == old.BertTokenizer(vocab_file).convert_tokens_to_ids(tokens)
    assert tokenization.convert_ids_to_tokens(inv_vocab, ids) == tokens
    with pytest.raises(UnknownTokenError, match="'zzz-unknown' is not in the vocabulary"):
        tokenization.convert_tokens_to_ids(vocab, ["zzz-unknown"])
    with pytest.raises(KeyError):
        tokenization.convert_ids_to_tokens(inv_vocab, [len(vocab)])
    with pytest.raises(InvalidInputError, match="flat list of tokens"):
        tokenization.convert_tokens_to_ids(vocab, [["nested"]])


def test_google_settings_are_checked(vocab_file):
    with pytest.raises(InvalidInputError, match="control_categories may hold only .*'Zs'"):
        BertTokenizer(vocab_file, control_categories=("Cc", "Zs"))
    for bad in (0, 1.5, True):
        with pytest.raises(InvalidInputError, match="max_input_chars_per_word must be an int >= 1"):
            BertTokenizer(vocab_file, max_input_chars_per_word=bad)
