"""``bert-hub serve MODEL``: the app under uvicorn. SIGTERM or SIGINT: /health turns 503, new
requests get 503, the listening socket closes, every accepted request is answered, and the
process exits 0 within ``--graceful-timeout`` (a second signal stops at once). A model that
fails to load ends the process with one clear line and exit code 1."""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading

from .settings import DTYPES, POOLINGS, TASKS, ServeSettings

EXIT_LOAD_FAILED = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL",
                   help="registry name, folder, archive, URL or Hugging Face Hub id (the embedded "
                        "demo: bert-hub-demo)")
    p.add_argument("--task", choices=TASKS, default="auto",
                   help="what to serve (default: auto, read from the model's files)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; "
                                                        "0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8080, help="default: %(default)s")
    p.add_argument("--api-key", default=None,
                   help="require `Authorization: Bearer KEY` (default: BERT_HUB_API_KEY, else no "
                        "key); /health and /metrics stay open")
    p.add_argument("--max-batch-tokens", type=int, default=None,
                   help="real tokens per forward (default 16384; fill-mask 4096)")
    p.add_argument("--max-client-batch-size", type=int, default=32, help="inputs per request (default 32)")
    p.add_argument("--max-concurrent-requests", type=int, default=512,
                   help="requests in flight; more are answered 429 (default 512)")
    p.add_argument("--auto-truncate", action=argparse.BooleanOptionalAction, default=True,
                   help="cut inputs longer than the model takes (default); --no-auto-truncate: 422")
    p.add_argument("--pooling", choices=POOLINGS, default=None,
                   help="embed: cls or mean (default: the model's own, else mean)")
    p.add_argument("--dtype", choices=DTYPES, default="float32")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--served-model-name", default=None, help="the name /info and OpenAI's `model` show")
    p.add_argument("--payload-limit", type=int, default=2_000_000,
                   help="bytes per request body; more are answered 413 (default 2000000)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the model (default: torch's, one per core)")
    p.add_argument("--revision", default=None, help="Hugging Face Hub ids: branch, tag or commit")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds to finish accepted requests after SIGTERM (default 30)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def run(args) -> int:
    try:
        from .app import create_app
    except ImportError as exc:
        from ..errors import MissingDependencyError
        raise MissingDependencyError(f"bert-hub serve needs the serve extra ({exc.name} is missing): "
                                     "pip install 'bert_hub[serve]'") from None

    settings = ServeSettings(
        model=args.model, task=args.task, served_model_name=args.served_model_name,
        api_key=args.api_key if args.api_key is not None else os.environ.get("BERT_HUB_API_KEY"),
        max_batch_tokens=args.max_batch_tokens, max_client_batch_size=args.max_client_batch_size,
        max_concurrent_requests=args.max_concurrent_requests, auto_truncate=args.auto_truncate,
        pooling=args.pooling, dtype=args.dtype, device=args.device, payload_limit=args.payload_limit,
        threads=args.threads, cache_dir=args.cache_dir, revision=args.revision)
    logging.getLogger("bert_hub.serve").setLevel(args.log_level.upper())
    print(f"bert-hub serve: loading {args.model} on http://{args.host}:{args.port} "
          "(GET /health answers 200 once it is ready)", file=sys.stderr, flush=True)
    return serve(create_app(settings=settings), host=args.host, port=args.port,
                 graceful_timeout=args.graceful_timeout, log_level=args.log_level)


def serve(app, host: str = "127.0.0.1", port: int = 8080, graceful_timeout: float = 30.0,
          log_level: str = "info") -> int:
    """Run an app of ``create_app`` under uvicorn until SIGTERM / SIGINT, then drain it; 0 after
    a clean stop, 1 if its model failed to load."""
    try:
        import uvicorn
    except ImportError:
        from ..errors import MissingDependencyError
        raise MissingDependencyError("bert-hub serve needs the serve extra (uvicorn is missing): "
                                     "pip install 'bert_hub[serve]'") from None
    from .state import FAILED
    state = app.state.bert_hub
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level,
                            timeout_graceful_shutdown=graceful_timeout, lifespan="on")
    server = _server(config, state)
    state.on_failed = lambda: setattr(server, "should_exit", True)
    server.run()
    if state.status == FAILED:
        print(f"bert-hub: error: {state.problem}", file=sys.stderr)
        return EXIT_LOAD_FAILED
    return 0


def _server(config, state):
    """uvicorn's server, draining our app first on a signal and returning normally afterwards
    (uvicorn raises the signal again once it stops, which would end the process with it)."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            state.drain()
            super().handle_exit(sig, frame)

        @contextlib.contextmanager
        def capture_signals(self):
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return Server(config)
