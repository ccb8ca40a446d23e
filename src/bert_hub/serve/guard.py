"""What every HTTP request passes before a route sees it (a plain ASGI middleware, so it also
works when the app is mounted in another): draining (503), the API key (401), the bound on
requests in flight (429 with ``Retry-After``: never an unbounded wait), the content type
(415), the payload limit (413, counted on the bytes received, not on a header's word); and the
metrics of every answer."""
from __future__ import annotations

import email.message
import hmac
import time

from starlette.responses import JSONResponse

from .errors import STATUS, body
from .state import DRAINING, ServerState

OPEN_PATHS = {"/health", "/metrics"}                  # load balancers and Prometheus need no key
OPEN_PAGES = {"/", "/docs", "/openapi.json", "/favicon.ico"}   # GET only: no model output
RETRY_AFTER_SECONDS = 1


class Guard:
    def __init__(self, app, state: ServerState, routes=()):
        self.app, self.state = app, state
        self.routes = set(routes) | OPEN_PATHS | OPEN_PAGES    # metric labels: never a client's path

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.state.start()                            # mounted apps get no lifespan: load now
        path = _route_path(scope)
        route = path if path in self.routes else "other"
        status = {"code": 500}

        async def counted_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        start = time.perf_counter()
        is_post = scope["method"] == "POST"
        try:
            refusal = self._refuse(scope, path)
            if refusal is not None:
                return await _error(scope, receive, counted_send, *refusal)
            if not is_post:
                return await self.app(scope, receive, counted_send)
            self.state.in_flight += 1
            self.state.metrics.in_flight.inc()
            try:
                received = await _read_body(receive, self.state.settings.payload_limit)
                if received is None:                  # the client left while sending
                    return
                if isinstance(received, tuple):
                    return await _error(scope, receive, counted_send, *received)
                await self.app(_json_scope(scope), _replay(received, receive), counted_send)
            finally:
                self.state.in_flight -= 1
                self.state.metrics.in_flight.dec()
        finally:
            metrics = self.state.metrics
            metrics.requests.labels(route, str(status["code"])).inc()
            metrics.request_seconds.labels(route).observe(time.perf_counter() - start)

    def _refuse(self, scope, path: str):
        """``(status type, message, headers)`` of a request refused before its body is read."""
        state, settings = self.state, self.state.settings
        is_post = scope["method"] == "POST"
        if path in OPEN_PATHS:
            return None
        if state.status == DRAINING and is_post:
            return ("unhealthy", "the server is shutting down; send the request to another replica",
                    {"Retry-After": str(RETRY_AFTER_SECONDS)})
        if settings.api_key is not None and not (scope["method"] in ("GET", "HEAD") and path in OPEN_PAGES):
            given = _header(scope, b"authorization")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                     settings.api_key.encode()):
                return ("unauthorized", "missing or wrong API key: send the header "
                        "`Authorization: Bearer <key>` with the key the server was started with",
                        {"WWW-Authenticate": "Bearer"})
        if not is_post:
            return None
        if state.in_flight >= settings.max_concurrent_requests:
            state.metrics.rejected.inc()
            return ("overloaded", f"the server is answering {settings.max_concurrent_requests} requests "
                    "(--max-concurrent-requests); retry after the Retry-After seconds",
                    {"Retry-After": str(RETRY_AFTER_SECONDS)})
        kind = _header(scope, b"content-type")
        if kind and not _is_json(kind):
            return ("unsupported_media_type", f"the body is {kind.split(';')[0]!r}; send JSON with "
                    "`Content-Type: application/json`", {})
        length = _header(scope, b"content-length")
        if length.isdigit() and int(length) > settings.payload_limit:
            return _too_large(settings.payload_limit, int(length))
        return None


def _route_path(scope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):      # mounted: routes are matched below the prefix
        return path[len(root):] or "/"
    return path


def _header(scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


def _is_json(kind: str) -> bool:
    message = email.message.Message()
    message["content-type"] = kind
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


def _too_large(limit: int, size: int):
    return ("payload_too_large", f"the body has {'more than ' if size > limit else ''}{size} bytes, "
            f"more than this server takes ({limit}, --payload-limit): send fewer or shorter inputs", {})


async def _read_body(receive, limit: int):
    """The whole body (bytes), a refusal tuple past ``limit``, or None if the client left."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return _too_large(limit, size)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(data: bytes, receive):
    """The body already read, then the client's own messages (a disconnect, for the scheduler)."""
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": data, "more_body": False}
        return await receive()
    return replay


def _json_scope(scope):
    """A POST without a content type is read as JSON (the web framework would refuse it)."""
    if _header(scope, b"content-type"):
        return scope
    return {**scope, "headers": list(scope.get("headers", [])) + [(b"content-type", b"application/json")]}


async def _error(scope, receive, send, error_type: str, message: str, headers: dict):
    response = JSONResponse(body(message, error_type), status_code=STATUS[error_type], headers=headers)
    await response(scope, receive, send)
