"""Build the embedded demo model: a tiny Google-layout archive written by real TensorFlow.

    python scripts/make_demo_archive.py   # needs tensorflow-cpu; rewrites src/bert_hub/data/

Writes ``bert-hub-demo.zip`` (top folder ``uncased_L-2_H-32_A-2``: bert_config.json, vocab.txt,
bert_model.ckpt.{index,data-00000-of-00001,meta}, exactly as Google's archives are laid out)
and ``demo_registry.json``, whose entry carries the SHA-256 of every file, so the demo takes the
same verified path as a real download.

The vocabulary holds every word of the embedded labelled set (``data/demo_reviews.tsv``, which
the demo fine-tunes on) and two hundred common words, plus single characters and suffixes as
word pieces, so that English text tokenizes into words rather than letters.
"""
import hashlib
import json
import string
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from bert_hub.filenames import VOCAB_NAME
from bert_hub.wordpiece import BasicTokenizer

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "bert_hub" / "data"
TOP = "uncased_L-2_H-32_A-2"
WORDS = """the of and to a in is was for on that with as by he it at from his an were are which
this be or has had not but first one their its new after who they have her she two been other
when there all during into school time may years more most only over city some world would where
later up such used many can state about national out known university united then made team
american game film between under while him no these year well them three de both part became
north south east west series could through before being called jim henson puppet muppets
sesame street show music play played language model text word words sentence hello good day
read write learn learning machine deep network train data test""".split()
PIECES = ["##s", "##ed", "##ing", "##er", "##eer", "##ly", "##son", "##en", "##es", "##est",
          "##ness", "##ful", "##less", "##able", "##ment", "##y", "##ies"]
REVIEWS = DATA / "demo_reviews.tsv"   # the labelled set the demo fine-tunes on


def review_words() -> list:
    """Every word of the labelled set, most frequent first (ties alphabetical)."""
    basic = BasicTokenizer(do_lower_case=True)
    counts: dict = {}
    lines = REVIEWS.read_text(encoding="utf-8").splitlines()[1:]   # after the header
    for line in lines:
        for word in basic.tokenize(line.split("\t", 2)[2]):
            counts[word] = counts.get(word, 0) + 1
    return sorted(counts, key=lambda w: (-counts[w], w))


def vocab() -> list:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.punctuation) + list(string.digits) + list(string.ascii_lowercase)
    pieces = [f"##{c}" for c in string.ascii_lowercase + string.digits] + PIECES
    seen, out = set(), []
    for token in specials + chars + pieces + WORDS + review_words():
        if token not in seen:
            seen.add(token)
            out.append(token)
    return out


def main() -> None:
    tokens = vocab()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / TOP
        subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "make_tf_checkpoint.py"), str(folder),
             "--layers", "2", "--hidden", "32", "--heads", "2", "--intermediate", "64",
             "--vocab", str(len(tokens)), "--max-position", "128", "--no-adam",
             "--with-config", "--seed", "2018"],
            check=True)
        (folder / VOCAB_NAME).write_text("\n".join(tokens) + "\n", encoding="utf-8")
        names = sorted(p.name for p in folder.iterdir())
        archive = DATA / "bert-hub-demo.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(zipfile.ZipInfo(f"{TOP}/"), b"")
            for name in names:
                zf.write(folder / name, f"{TOP}/{name}")
        file_sha256 = {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}
    entry = {
        "name": "bert-hub-demo",
        "aliases": [TOP],
        "url": "package://bert_hub/data/bert-hub-demo.zip",
        "top_folder": TOP,
        "do_lower_case": True,
        "max_len": 128,
        "file_sha256": file_sha256,
        "archive_sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
        "note": (f"Embedded demo: random weights written by TensorFlow, 2 layers, hidden 32, "
                 f"{len(tokens)} wordpieces."),
    }
    registry = {"_about": "The embedded demo model; written by scripts/make_demo_archive.py.",
                "models": [entry]}
    (DATA / "demo_registry.json").write_text(json.dumps(registry, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {archive} ({archive.stat().st_size} bytes) and demo_registry.json")


if __name__ == "__main__":
    main()
