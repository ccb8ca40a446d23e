"""``bert-hub serve``: BERT inference over HTTP, keeping the real-length speed.

Routes that existing clients speak (text-embeddings-inference's ``/embed``, ``/predict``,
``/rerank``, ...; OpenAI's ``/v1/embeddings``; the Hugging Face inference API's ``POST /``),
one scheduler that batches inputs across requests by a budget of real tokens, bounded queues,
typed JSON errors, Prometheus metrics, and a page at ``GET /`` to try the model::

    from bert_hub.serve import create_app
    app = create_app("bert-hub-demo", task="embed")      # an ASGI app: uvicorn, or mount it
    serve(app, port=8080)                                  # or run it, draining on SIGTERM

Needs the ``serve`` extra (``pip install 'bert_hub[serve]'``): FastAPI, uvicorn,
prometheus_client. Importing this package imports none of them; ``create_app`` does.
"""
from __future__ import annotations

from .cli import serve
from .settings import ServeSettings

__all__ = ["create_app", "serve", "ServeSettings"]


def create_app(*args, **kwargs):
    """See :func:`bert_hub.serve.app.create_app`."""
    try:
        from .app import create_app as build
    except ImportError as exc:
        from ..errors import MissingDependencyError
        raise MissingDependencyError(
            f"bert-hub serve needs the serve extra ({exc.name} is missing): "
            "pip install 'bert_hub[serve]'") from None
    return build(*args, **kwargs)
