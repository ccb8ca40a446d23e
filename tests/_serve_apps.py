"""Servers with a model of known behaviour, for the serve tests: ``slow`` (every forward sleeps
DELAY seconds) or ``raising`` (a forward whose batch holds the word "puppet" raises), around a
tiny sentence-embedding pipeline; run by ``bert_hub.serve.serve`` exactly as ``bert-hub serve``
runs its app.

    python _serve_apps.py KIND MODEL_FOLDER [--max-batch-tokens N] [--max-concurrent-requests N]
        [--delay S] --host H --port P --log-level L
"""
import argparse
import sys
import time

from bert_hub import pipeline
from bert_hub.serve import create_app, serve

MARKER = "puppet"


def build(kind: str, folder: str, delay: float, **options):
    pipe = pipeline("sentence-embedding", model=folder)
    forward = pipe.forward
    if kind == "slow":
        def patched(batch):
            time.sleep(delay)
            return forward(batch)
    elif kind == "raising":
        marker = pipe.tokenizer.vocab[MARKER]

        def patched(batch):
            if bool((batch["input_ids"] == marker).any()):
                raise RuntimeError(f"the model broke on a batch with {MARKER!r}")
            return forward(batch)
    else:
        raise SystemExit(f"unknown kind {kind!r}")
    pipe.forward = patched
    return create_app(pipe, served_model_name=kind, **options)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("kind")
    p.add_argument("model")
    p.add_argument("--max-batch-tokens", type=int, default=None)
    p.add_argument("--max-concurrent-requests", type=int, default=512)
    p.add_argument("--delay", type=float, default=0.2)
    p.add_argument("--graceful-timeout", type=float, default=30.0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--log-level", default="warning")
    a = p.parse_args(argv)
    app = build(a.kind, a.model, a.delay, max_batch_tokens=a.max_batch_tokens,
                max_concurrent_requests=a.max_concurrent_requests)
    return serve(app, host=a.host, port=a.port, graceful_timeout=a.graceful_timeout, log_level=a.log_level)


if __name__ == "__main__":
    sys.exit(main())
