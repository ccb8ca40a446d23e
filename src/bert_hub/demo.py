"""The embedded demo: a tiny Google-layout archive written by TensorFlow ships inside the
package and is registered as ``bert-hub-demo``, so the whole path a real checkpoint takes
(resolve, fetch, verify, extract, convert, load, tokenize, forward) runs offline, in seconds."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import List, Optional, Tuple

DEMO_NAME = "bert-hub-demo"


@contextmanager
def _stage(rows: List[Tuple[str, float, str]], name: str, note: str = ""):
    start = time.perf_counter()
    box = {"note": note}
    yield box
    rows.append((name, time.perf_counter() - start, box["note"]))


def run_demo(cache_dir: Optional[str] = None, text: str = "Who was Jim Henson? Jim Henson was a puppeteer.",
             print_fn=print) -> dict:
    """Run every stage once and print its time; returns what it printed, for tests."""
    from . import cache, hub, registry

    rows: List[Tuple[str, float, str]] = []
    root = cache.cache_root(cache_dir)
    with _stage(rows, "resolve") as box:
        spec = registry.load_registry().get(DEMO_NAME)
        url = registry.resolve_url(spec)
        box["note"] = url
    was_cached = cache.cached_entry(root, spec.name, warn=False) is not None
    with _stage(rows, "fetch+verify+extract", "cache hit, no I/O" if was_cached else "") as box:
        folder = hub.download_model(DEMO_NAME, cache_dir=cache_dir, convert=False)
        if not was_cached:
            box["note"] = f"into {folder}"
    was_converted = (folder / hub.SAFE_WEIGHTS_NAME).exists()
    with _stage(rows, "convert TF -> safetensors", "already converted" if was_converted else "") as box:
        weights = hub.ensure_converted(folder, cache_dir=cache_dir)
        if not was_converted:
            box["note"] = weights.name
    with _stage(rows, "import torch + models"):
        import torch

        from .modeling import BertModel
        from .tokenization import BertTokenizer
    with _stage(rows, "load model") as box:
        model = BertModel.from_pretrained(DEMO_NAME, cache_dir=cache_dir)
        cfg = model.config
        box["note"] = f"{cfg.num_hidden_layers} layers, hidden {cfg.hidden_size}"
    with _stage(rows, "load tokenizer") as box:
        tokenizer = BertTokenizer.from_pretrained(DEMO_NAME, cache_dir=cache_dir)
        box["note"] = f"{len(tokenizer.vocab)} wordpieces"
    with _stage(rows, "tokenize") as box:
        encoded = tokenizer.encode(text)
        tokens = tokenizer.convert_ids_to_tokens(encoded["input_ids"])
        box["note"] = " ".join(tokens)
    with _stage(rows, "forward") as box:
        with torch.no_grad():
            ids = torch.tensor([encoded["input_ids"]])
            types = torch.tensor([encoded["token_type_ids"]])
            mask = torch.tensor([encoded["attention_mask"]])
            layers, pooled = model(ids, types, mask, output_all_encoded_layers=False)
        box["note"] = f"sequence output {tuple(layers.shape)}"

    print_fn(f"bert-hub demo: {DEMO_NAME!r} through the cache at {root}")
    width = max(len(r[0]) for r in rows)
    for name, seconds, note in rows:
        print_fn(f"  {name.ljust(width)}  {seconds * 1000:8.1f} ms  {note}")
    print_fn(f"pooled output shape: {tuple(pooled.shape)}")
    return {"stages": rows, "pooled_shape": tuple(pooled.shape), "tokens": tokens, "folder": folder}
