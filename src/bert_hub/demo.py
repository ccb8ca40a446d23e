"""The embedded demo: the main job of the library, offline, in seconds.

A tiny Google-layout archive written by TensorFlow ships inside the package and is registered as
``bert-hub-demo``; it takes the path a real checkpoint takes (resolve, fetch, verify, extract,
convert, load), each stage timed. The model is then fine-tuned with the Trainer on a small
labelled set that also ships in the package (``data/demo_reviews.tsv``: short reviews, positive
or negative, with a fixed train / test split that keeps a review and its opposite together),
evaluated before and after, saved, loaded again, and asked about a few new texts through a
``text-classification`` pipeline. The model is random before fine-tuning, so what it knows
afterwards it learned here.
"""
from __future__ import annotations

import csv
import importlib.resources
import json
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from .errors import InvalidInputError

DEMO_NAME = "bert-hub-demo"
REVIEWS_FILE = "demo_reviews.tsv"
DEFAULT_OUTPUT_DIR = "bert-hub-demo-output"
DEFAULT_TEXTS = (
    "The staff were friendly and the breakfast was delicious.",
    "The room was dirty and the service was slow.",
    "A brilliant film with a wonderful cast.",
    "Boring plot, terrible acting, a waste of money.",
)
# Fine-tuning settings: a randomly initialised 2-layer model learns best with a learning rate far
# above BERT's usual 2e-5..5e-5; ten passes over 258 reviews take a few seconds on one core.
TRAINING = dict(lr=2e-3, epochs=15, batch_size=16, log_steps=5, seed=42)
_NAME_WIDTH = 26


def load_reviews() -> List[Tuple[str, str, str]]:
    """``(split, label, text)`` rows of the embedded labelled set."""
    source = importlib.resources.files("bert_hub").joinpath("data", REVIEWS_FILE)
    with source.open("r", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != ["split", "label", "text"] or any(len(r) != 3 for r in rows[1:]):
        raise InvalidInputError(f"{source} is not the demo's labelled set (split, label, text "
                                "columns); reinstall bert_hub")
    return [tuple(r) for r in rows[1:]]


@contextmanager
def _stage(rows: List[Tuple[str, float, str]], name: str, print_fn: Callable, note: str = ""):
    """Time one stage and print it when it ends (``box["note"]`` is printed beside it)."""
    start = time.perf_counter()
    box = {"note": note}
    yield box
    seconds = time.perf_counter() - start
    rows.append((name, seconds, box["note"]))
    shown = f"{seconds * 1000:8.1f} ms" if seconds < 1 else f"{seconds:8.2f} s "
    print_fn(f"  {name.ljust(_NAME_WIDTH)}{shown}  {box['note']}".rstrip())


def run_demo(cache_dir: Optional[str] = None, output_dir: Optional[os.PathLike] = None,
             texts=DEFAULT_TEXTS, print_fn: Callable = print,
             epochs: int = TRAINING["epochs"]) -> dict:
    """Run every stage, printing each; returns what it printed, for tests: ``stages``
    (name, seconds, note), ``accuracy_before`` / ``accuracy_after`` on the test split,
    ``curve`` (the loss-curve PNG, or None without matplotlib), ``model_dir`` and ``answers``."""
    from . import cache, hub, registry

    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise InvalidInputError(f"epochs must be a whole number >= 1, got {epochs!r}")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise InvalidInputError("texts must be non-empty strings for the classifier to answer")

    out = Path(output_dir if output_dir is not None else DEFAULT_OUTPUT_DIR).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--output-dir {str(out)!r} is a file; pass a folder (it is "
                                "created if missing)")
    rows: List[Tuple[str, float, str]] = []
    root = cache.cache_root(cache_dir)
    print_fn(f"bert-hub demo: {DEMO_NAME!r} through the cache at {root}")
    with _stage(rows, "resolve", print_fn) as box:
        spec = registry.load_registry().get(DEMO_NAME)
        box["note"] = registry.resolve_url(spec)
    was_cached = cache.cached_entry(root, spec.name, warn=False) is not None
    with _stage(rows, "fetch+verify+extract", print_fn,
                "cache hit, no I/O" if was_cached else "") as box:
        folder = hub.download_model(DEMO_NAME, cache_dir=cache_dir, convert=False)
        if not was_cached:
            box["note"] = f"into {folder}"
    was_converted = (folder / hub.SAFE_WEIGHTS_NAME).exists()
    with _stage(rows, "convert TF -> safetensors", print_fn,
                "already converted" if was_converted else "") as box:
        weights = hub.ensure_converted(folder, cache_dir=cache_dir)
        if not was_converted:
            box["note"] = weights.name
    with _stage(rows, "import torch + models", print_fn):
        import torch

        from .modeling import BertForSequenceClassification
        from .pipelines import pipeline
        from .tokenization import BertTokenizer
        from .trainer import Trainer

    threads = torch.get_num_threads()
    # A hidden-32 model gains nothing from a second thread, and on a busy machine the threads
    # waiting for each other cost ten times the work (measured on 2 shared cores).
    torch.set_num_threads(1)
    try:
        reviews = load_reviews()
        labels = sorted({label for _, label, _ in reviews})
        with _stage(rows, "load model", print_fn) as box:
            torch.manual_seed(TRAINING["seed"])   # the classifier's initial weights
            with _quiet("bert_hub.loading"):      # "classifier initialised randomly": trained below
                model = BertForSequenceClassification.from_pretrained(
                    DEMO_NAME, cache_dir=cache_dir, num_labels=len(labels))
            model.id2label = dict(enumerate(labels))
            model.label2id = {label: i for i, label in enumerate(labels)}
            cfg = model.config
            box["note"] = (f"{type(model).__name__}: {cfg.num_hidden_layers} layers, hidden "
                           f"{cfg.hidden_size}, new classifier for {', '.join(labels)}")
        with _stage(rows, "load tokenizer", print_fn) as box:
            tokenizer = BertTokenizer.from_pretrained(DEMO_NAME, cache_dir=cache_dir)
            box["note"] = f"{len(tokenizer.vocab)} wordpieces"
        with _stage(rows, "tokenize labelled set", print_fn) as box:
            train, test = _datasets(reviews, tokenizer, model.label2id)
            box["note"] = (f"{len(train)} reviews to train on, {len(test)} held out, "
                           f"{train[0]['input_ids'].shape[0]} tokens each (padded)")
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".train-", dir=out) as work:
            with _stage(rows, "build Trainer", print_fn,
                        "AdamW + warmup; torch.optim loads torch._dynamo on first use"):
                trainer = Trainer(model, train, eval_data=test, compute_metrics=_accuracy,
                                  output_dir=work, device="cpu", **dict(TRAINING, epochs=epochs))
            with _stage(rows, "evaluate (before)", print_fn) as box:
                before = trainer.evaluate()["accuracy"]
                box["note"] = (f"accuracy {before:.1%} on the {len(test)} held-out reviews "
                               f"(chance: {1 / len(labels):.0%})")
            with _stage(rows, "fine-tune (Trainer)", print_fn) as box:
                result = trainer.train(resume=False)
                losses = _losses(Path(work) / "metrics.jsonl")
                box["note"] = (f"{result['global_step']} steps, {result['epoch']} epochs, "
                               f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
            with _stage(rows, "evaluate (after)", print_fn) as box:
                after = trainer.evaluate()["accuracy"]
                box["note"] = f"accuracy {after:.1%} on the {len(test)} held-out reviews"
            curve = _keep(Path(work), out, "training_curves.png")
            _keep(Path(work), out, "metrics.jsonl")
        model_dir = out / "model"
        with _stage(rows, "save", print_fn) as box:
            model.save_pretrained(model_dir)
            tokenizer.save_pretrained(model_dir)
            box["note"] = f"{model_dir} (weights, config with labels, vocabulary)"
        with _stage(rows, "load saved model", print_fn) as box:
            classify = pipeline("text-classification", model=str(model_dir), device="cpu")
            same = _same_predictions(model, classify.model, test)
            box["note"] = ("predictions equal the trained model's" if same else
                           "PREDICTIONS DIFFER from the trained model's")
        with _stage(rows, "pipeline", print_fn) as box:
            answers = classify(texts)
            box["note"] = f"text-classification, {len(answers)} new texts"
    finally:
        torch.set_num_threads(threads)
    if curve is not None:
        print_fn(f"loss curve: {curve}")
    else:
        print_fn("loss curve: not drawn (it needs matplotlib: pip install 'bert_hub[plot]'); "
                 f"the losses are in {out / 'metrics.jsonl'}")
    print_fn(f"accuracy on held-out reviews: {before:.1%} before fine-tuning, {after:.1%} after")
    for text, answer in zip(texts, answers):
        print_fn(f"  {answer['label']:>8} ({answer['score']:.2f})  {text}")
    return {"stages": rows, "accuracy_before": before, "accuracy_after": after, "curve": curve,
            "model_dir": model_dir, "answers": answers, "reloaded_equal": same}


@contextmanager
def _quiet(logger_name: str):
    """Hold back a logger's warnings for a step whose warning the demo answers itself."""
    log = logging.getLogger(logger_name)
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _datasets(reviews, tokenizer, label2id: Dict[str, int]):
    """(train, test): lists of dicts of (S,) tensors padded to one length, and the label."""
    import torch

    batch = tokenizer.encode_batch([text for _, _, text in reviews])   # each (N, S)
    examples = {"train": [], "test": []}
    for i, (split, label, _) in enumerate(reviews):
        examples[split].append({"input_ids": batch["input_ids"][i],
                                "token_type_ids": batch["token_type_ids"][i],
                                "attention_mask": batch["attention_mask"][i],
                                "labels": torch.tensor(label2id[label])})
    return examples["train"], examples["test"]


def _accuracy(predictions, labels) -> dict:
    """Share of the logits (N, labels) whose argmax is the label (N,)."""
    return {"accuracy": float((predictions.argmax(-1) == labels).mean())}


def _same_predictions(trained, reloaded, examples) -> bool:
    """Whether both models give the same logits on ``examples`` (eval mode, no dropout)."""
    import torch

    trained.eval()
    keys = ("input_ids", "token_type_ids", "attention_mask")
    inputs = [torch.stack([e[k] for e in examples]) for k in keys]     # each (N, S)
    with torch.no_grad():
        return torch.allclose(trained(*inputs), reloaded(*inputs), rtol=0, atol=1e-6)


def _losses(metrics: Path) -> List[float]:
    """The training losses the Trainer logged, in order."""
    records = (json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines())
    return [r["loss"] for r in records if "loss" in r]


def _keep(work: Path, out: Path, name: str) -> Optional[Path]:
    """Move ``work/name`` to ``out/name`` (replacing an earlier run's); None when absent."""
    if not (work / name).is_file():
        (out / name).unlink(missing_ok=True)   # an earlier run's would pass for this one's
        return None
    os.replace(work / name, out / name)
    return out / name


__all__ = ["DEMO_NAME", "DEFAULT_TEXTS", "load_reviews", "run_demo"]
