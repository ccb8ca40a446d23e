"""Tokenizer throughput (MB/s of UTF-8 text) against pytorch-pretrained-bert 0.6.2's tokenizer.

The corpus is generated on the spot, no downloads: English prose from Python's own
documentation (``pydoc_data.topics``) and the standard library's docstrings, mixed with
paragraphs sampled word by word from short texts in 14 other languages and scripts (accents,
CJK, Greek with capital sigma, Arabic, Devanagari, emoji, URLs, numbers). The vocabulary is built
from the corpus the way BERT's looks: frequent whole words, frequent word endings as ``##``
pieces, every character.

Every contender gets a fresh tokenizer in every round (cold caches: the time includes learning
the corpus' words), the contenders take turns within a round, and the table gives medians.

    python scripts/bench/tokenizer_speed.py [--mb 3] [--rounds 5]
"""
from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))

from bert_hub.tokenization import BasicTokenizer, BertTokenizer  # noqa: E402  (after the path set-up)

OTHER_LANGUAGES = {
    "fr": "Le théâtre de la Comédie-Française présente ce soir une pièce où l'héroïne, "
          "déçue par l'été, s'enfuit à Besançon. « Où êtes-vous ? » demande-t-elle ; "
          "personne ne répond, mais le garçon du café lui sert un crème brûlée.",
    "de": "Die Größe der Straßenbahn überraschte die Bürger von Köln. Übermäßige Geschwindigkeit "
          "ist gefährlich, schreibt die Behörde; Fußgänger müssen außerdem auf Schlaglöcher achten.",
    "es": "¿Dónde está la estación? El niño señaló el camión y dijo: ¡mañana iremos a León! "
          "La canción de la región habla de corazones, montañas y añoranza.",
    "pt": "A educação é a razão da ação: não há coração sem emoção, disse o avô à irmã em São Paulo.",
    "tr": "İstanbul'da yaşayan öğrenciler ılık bir günde Çamlıca tepesine çıktılar; şehrin ışıkları "
          "gözlerini kamaştırdı.",
    "ru": "Москва — столица России. Вчера в Санкт-Петербурге прошёл концерт, и зрители "
          "аплодировали стоя; билеты были распроданы за неделю.",
    "el": "Η ΑΘΗΝΑ ΕΙΝΑΙ Η ΠΡΩΤΕΥΟΥΣΑ ΤΗΣ ΕΛΛΑΔΟΣ. Ο Σωκράτης και ο Αριστοτέλης συζητούσαν "
          "για τους νόμους της φύσης· ΟΔΟΣ ΠΑΝΕΠΙΣΤΗΜΙΟΥ, Σάββατο πρωί.",
    "zh": "自然语言处理是人工智能的一个重要方向。北京大学的研究人员发布了新的中文预训练模型，"
          "在阅读理解任务上取得了很好的成绩。",
    "ja": "東京の桜は三月の終わりに咲きます。私たちはカタカナとひらがなを使って、"
          "トークナイザーの動作を確かめました。",
    "ko": "서울은 대한민국의 수도입니다. 오늘은 날씨가 맑고 사람들이 한강 공원에서 산책을 합니다.",
    "ar": "اللغة العربية من أقدم اللغات السامية، ويتحدث بها أكثر من أربعمائة مليون شخص حول العالم.",
    "hi": "भारत एक विशाल देश है। यहाँ अनेक भाषाएँ बोली जाती हैं और हर राज्य की अपनी संस्कृति है।",
    "vi": "Tiếng Việt có sáu thanh điệu; người Hà Nội và người Sài Gòn phát âm khác nhau.",
    "mixed": "Price: $1,299.99 (-15%) → ship by 2024-03-01 🚀🔥 email a.b@example.com, visit "
             "https://example.org/path?q=naïve&x=1 #hashtag @user 👩‍👩‍👧 ½ ™ ©",
}


DOCUMENTED_MODULES = (
    "argparse", "asyncio", "collections", "concurrent.futures", "csv", "dataclasses",
    "datetime", "decimal", "email", "functools", "http.client", "importlib", "inspect", "json",
    "logging", "multiprocessing", "os", "pathlib", "pickle", "random", "re", "shutil",
    "socket", "sqlite3", "statistics", "string", "subprocess", "tarfile", "threading",
    "unittest", "urllib.request", "xml.etree.ElementTree", "zipfile",
)


def english_sources():
    """Real English prose: the Python documentation topics and stdlib docstrings."""
    from pydoc_data.topics import topics
    texts = list(topics.values())
    for name in DOCUMENTED_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:  # a trimmed Python without it
            continue
        for obj in [module] + [getattr(module, n, None) for n in sorted(dir(module))]:
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and len(doc) > 80:
                texts.append(doc)
    paragraphs = []
    for text in texts:
        paragraphs += [p.strip() for p in text.split("\n\n") if len(p.strip()) > 20]
    return sorted(set(paragraphs))


def build_corpus(megabytes: float, seed: int = 0):
    """Paragraphs (str) totalling about ``megabytes`` of UTF-8: 75% English, 25% others."""
    rng = random.Random(seed)
    english = english_sources()
    words = {lang: text.split() for lang, text in OTHER_LANGUAGES.items()}
    out, size, target = [], 0, int(megabytes * 1e6)
    while size < target:
        if rng.random() < 0.75:
            para = rng.choice(english)
        else:
            pool = words[rng.choice(sorted(words))]
            para = " ".join(rng.choice(pool) for _ in range(rng.randint(10, 120)))
        out.append(para)
        size += len(para.encode("utf-8"))
    return out


def build_vocab(paragraphs, path, size=30000):
    """BERT-like: specials, every character (alone and as ##), frequent words and endings."""
    basic = BasicTokenizer(do_lower_case=True)
    counts = collections.Counter(w for p in paragraphs for w in basic.tokenize(p))
    chars = sorted({c for w in counts for c in w})
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in chars]
    endings = collections.Counter()
    for word, n in counts.items():
        for k in range(2, min(len(word), 7)):
            endings["##" + word[-k:]] += n
    budget = size - len(tokens)
    tokens += [w for w, _ in counts.most_common(budget * 2 // 3)]
    seen = set(tokens)
    tokens += [e for e, _ in endings.most_common(budget) if e not in seen][: size - len(tokens)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(dict.fromkeys(tokens)) + "\n")


def contenders(vocab_file):
    """name -> (make a fresh tokenizer, run it over the corpus)."""
    from pytorch_pretrained_bert.tokenization import BertTokenizer as Old

    def tokens_each(tok, paragraphs):
        for p in paragraphs:
            tok.tokenize(p)

    def ids_each(tok, paragraphs):
        for p in paragraphs:
            tok.convert_tokens_to_ids(tok.tokenize(p))

    def ids_batched(tok, paragraphs):
        for i in range(0, len(paragraphs), 256):
            tok.encode_batch(paragraphs[i:i + 256], padding=False, return_tensors=None)

    found = {
        "0.6.2 tokenize": (lambda: Old(vocab_file), tokens_each),
        "0.6.2 tokenize+ids": (lambda: Old(vocab_file), ids_each),
        "ours tokenize": (lambda: BertTokenizer(vocab_file), tokens_each),
        "ours encode_batch": (lambda: BertTokenizer(vocab_file), ids_batched),
    }
    try:
        import tokenizers  # noqa: F401
    except ImportError:
        print("tokenizers is not installed: skipping the fast path (pip install bert_hub[fast])")
    else:
        found["ours fast tokenize"] = (lambda: BertTokenizer(vocab_file, use_fast=True),
                                       tokens_each)
        found["ours fast encode_batch"] = (lambda: BertTokenizer(vocab_file, use_fast=True),
                                           ids_batched)

        def raw_rust():  # the ceiling: Rust alone, no screening (its output differs a little)
            from tokenizers import BertWordPieceTokenizer
            return BertWordPieceTokenizer(vocab_file, lowercase=True)

        def raw_batched(tok, paragraphs):
            for i in range(0, len(paragraphs), 256):
                tok.encode_batch(paragraphs[i:i + 256], add_special_tokens=False)

        found["raw tokenizers batch ids"] = (raw_rust, raw_batched)
    return found


def unique_words_corpus(megabytes: float, seed: int = 1):
    """Worst case for word caches: paragraphs of pseudo-words that (almost) never repeat."""
    rng = random.Random(seed)
    alphabets = ["abcdefghijklmnopqrstuvwxyz", "àéèêëîïôöüçñß", "абвгдежзиклмнопрст",
                 "αβγδεζηθικλμνξοπρστυφχψω"]
    out, size, target = [], 0, int(megabytes * 1e6)
    while size < target:
        letters = rng.choice(alphabets) + "aeiou"
        words = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 12)))
                 + rng.choice(["", "", "", ",", "."]) for _ in range(rng.randint(10, 120))]
        para = " ".join(words)
        out.append(para)
        size += len(para.encode("utf-8"))
    return out


def measure(runs, paragraphs, rounds):
    """Median seconds per contender; contenders take turns, each with a fresh tokenizer."""
    seconds = collections.defaultdict(list)
    for _ in range(rounds):
        for name, (make, run) in runs.items():
            tok = make()
            start = time.perf_counter()
            run(tok, paragraphs)
            seconds[name].append(time.perf_counter() - start)
    return seconds


def report(title, paragraphs, seconds):
    megabytes = sum(len(p.encode("utf-8")) for p in paragraphs) / 1e6
    base = {"tokenize": statistics.median(seconds["0.6.2 tokenize"]),
            "ids": statistics.median(seconds["0.6.2 tokenize+ids"])}
    print(f"\n{title}: {megabytes:.2f} MB in {len(paragraphs)} paragraphs, "
          f"{len(next(iter(seconds.values())))} rounds, medians")
    print(f"{'contender':<24}{'seconds':>9}{'MB/s':>8}{'vs 0.6.2':>10}")
    results = {}
    for name, times in seconds.items():
        median = statistics.median(times)
        peer = base["ids"] if ("ids" in name or "encode" in name) else base["tokenize"]
        results[name] = {"median_s": median, "mb_per_s": megabytes / median,
                         "speedup_vs_0.6.2": peer / median, "all_s": times}
        print(f"{name:<24}{median:>9.3f}{megabytes / median:>8.2f}{peer / median:>9.2f}x")
    return {"megabytes": megabytes, "paragraphs": len(paragraphs), "results": results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=3.0, help="mixed corpus size in MB")
    parser.add_argument("--unique-mb", type=float, default=0.5,
                        help="size of the never-repeating corpus in MB (0 skips it)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default="bench-results/tokenizer_speed.json")
    args = parser.parse_args()

    corpora = {"mixed text": build_corpus(args.mb)}
    if args.unique_mb > 0:
        corpora["unique words"] = unique_words_corpus(args.unique_mb)
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = os.path.join(tmp, "vocab.txt")
        build_vocab(corpora["mixed text"], vocab_file)
        runs = contenders(vocab_file)
        for title, paragraphs in corpora.items():
            # Same output first: a benchmark of different work would mean nothing.
            reference = [runs["0.6.2 tokenize"][0]().tokenize(p) for p in paragraphs]
            for name in ("ours tokenize", "ours fast tokenize"):
                if name in runs:
                    tok = runs[name][0]()
                    if [tok.tokenize(p) for p in paragraphs] != reference:
                        raise SystemExit(f"{name} differs from 0.6.2 on the {title} corpus")
            summary[title] = report(title, paragraphs, measure(runs, paragraphs, args.rounds))

    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"benchmark": "tokenizer_speed", "rounds": args.rounds,
                   "python": platform.python_version(), "machine": platform.machine(),
                   "cpus": os.cpu_count(), "corpora": summary}, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
