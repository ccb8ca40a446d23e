"""``create_app``: the ASGI app of ``bert-hub serve``, for uvicorn or for mounting in your own
FastAPI / Starlette app. One model per app; the model loads on a thread when the app starts
(its lifespan, or its first request when mounted), so ``GET /health`` answers 503 until it is
loaded and warm, then 200."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Optional, Union

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from .. import __version__
from ..errors import BertHubError, InvalidArgumentError
from ..pipelines.base import Pipeline
from . import hf_routes, openai_routes, page, tei_routes
from .errors import body, describe, type_of_status
from .guard import Guard
from .settings import ServeSettings
from .state import ClientGone, ServerState, json_response

logger = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 30.0      # the longest the lifespan waits for accepted inputs to be computed
CLIENT_CLOSED = 499          # the status logged for a request whose client left (nothing is sent)


def create_app(model: Union[str, Pipeline, None] = None, *, settings: Optional[ServeSettings] = None,
               **options) -> FastAPI:
    """The server for ``model``: anything ``from_pretrained`` takes (a registry name, a folder,
    a Hub id, a URL), or a ``bert_hub`` pipeline built in Python. ``options`` are
    :class:`ServeSettings`' fields (``task="auto"``, ``max_batch_tokens``, ``api_key``, ...),
    or pass ``settings``.

    Mounted in another app (``parent.mount("/bert", create_app(...))``), the model loads on the
    first request; run ``app.router.lifespan_context`` in the parent's lifespan to load it at
    start-up and drain it at shutdown."""
    unknown = sorted(set(options) - set(ServeSettings.options()))
    if unknown:
        raise InvalidArgumentError(f"create_app() got unknown options {unknown}; it takes "
                                   f"{', '.join(ServeSettings.options())}")
    pipeline = model if isinstance(model, Pipeline) else None
    if settings is None:
        if model is None:
            raise InvalidArgumentError("create_app() needs a model: a name, folder, Hub id or URL, or a "
                                       "bert_hub pipeline")
        settings = ServeSettings(model="" if pipeline is not None else str(model), **options)
    elif options or (model is not None and pipeline is None and str(model) != settings.model):
        raise InvalidArgumentError("pass either settings= or the model and options, not both")
    state = ServerState(settings, pipeline)

    @asynccontextmanager
    async def lifespan(app):
        state.start()
        yield
        await run_in_threadpool(state.stop, SHUTDOWN_SECONDS)

    app = FastAPI(title="bert_hub serve", version=__version__, lifespan=lifespan, redoc_url=None,
                  description="BERT inference: text-embeddings-inference, OpenAI and Hugging Face "
                              "inference routes over one token-budget scheduler.")
    app.state.bert_hub = state
    routers = [module.router for module in (tei_routes, openai_routes, hf_routes, page)]
    for router in routers:
        app.include_router(router)
    _add_error_handlers(app)
    paths = {route.path for router in routers for route in router.routes}   # the metrics' route labels
    app.add_middleware(Guard, state=state, routes=paths)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    async def validation(request, exc):
        return json_response(body(_validation_message(exc.errors()), "validation"), status=422)

    async def http_error(request, exc: HTTPException):
        kind = type_of_status(exc.status_code)
        message = {404: f"no route {request.method} {request.url.path}; the routes are listed at /docs",
                   405: f"{request.url.path} does not take {request.method}; see /docs"}.get(
                       exc.status_code, str(exc.detail))
        return json_response(body(message, kind), status=exc.status_code, headers=exc.headers)

    async def known_error(request, exc: BaseException):
        status, kind, message = describe(exc)
        headers = {"Retry-After": str(exc.retry_after)} if getattr(exc, "retry_after", None) else None
        return json_response(body(message, kind), status=status, headers=headers)

    async def client_gone(request, exc):
        return Response(status_code=CLIENT_CLOSED)

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(ValidationError, validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(BertHubError, known_error)
    app.add_exception_handler(ClientGone, client_gone)
    app.add_exception_handler(Exception, known_error)


def _validation_message(errors) -> str:
    """The problems of the first few fields, as ``field: what is wrong``; a field that matches
    none of a union's forms is said once, with the forms it may take."""
    fields = {}
    for error in errors:
        loc = [str(x) for x in error.get("loc", ()) if x != "body"]
        if error.get("type") == "json_invalid":
            detail = (error.get("ctx") or {}).get("error", "")
            return f"the body is not valid JSON: {detail} at character {loc[0] if loc else 0}"
        fields.setdefault(loc[0] if loc else "body", []).append((loc, error))
    parts = []
    for field, found in list(fields.items())[:3]:
        if len(found) == 1 or len({tuple(loc[:2]) for loc, _ in found}) == 1:
            loc, error = found[0]
            parts.append(f"{'.'.join(loc) or 'body'}: {error.get('msg')}")
        else:
            forms = list(dict.fromkeys(loc[1] for loc, _ in found if len(loc) > 1))
            given = found[0][1].get("input")
            parts.append(f"{field}: got {type(given).__name__} {str(given)[:60]!s}; expected one of "
                         f"{', '.join(forms)}")
    more = f" (and {len(fields) - 3} more fields)" if len(fields) > 3 else ""
    return "invalid request: " + "; ".join(parts) + more
