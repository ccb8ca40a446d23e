"""Every failure the server answers, in one table: error type -> HTTP status. The body is
always ``{"error": "<the problem and the fix>", "error_type": "<type>"}``, as
text-embeddings-inference answers, so clients can tell a bad request from an overloaded server
without parsing prose."""
from __future__ import annotations

import logging
from typing import Optional, Tuple

from ..errors import BertHubError, InvalidInputError

logger = logging.getLogger(__name__)

# error_type -> status. The one place a status code is chosen.
STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "not_found": 404,
    "method_not_allowed": 405,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "validation": 422,
    "overloaded": 429,
    "backend": 500,
    "unhealthy": 503,
}
_TYPE_OF_STATUS = {status: kind for kind, status in STATUS.items()}


class ServeError(BertHubError):
    """A request the server refuses or cannot serve; ``error_type`` picks its status."""

    error_type = "backend"

    def __init__(self, message: str, *, retry_after: Optional[int] = None):
        super().__init__(message)
        self.retry_after = retry_after


class BadRequestError(ServeError, ValueError):
    error_type = "bad_request"


class UnauthorizedError(ServeError, PermissionError):
    error_type = "unauthorized"


class PayloadTooLargeError(ServeError, ValueError):
    error_type = "payload_too_large"


class UnsupportedMediaTypeError(ServeError, ValueError):
    error_type = "unsupported_media_type"


class OverloadedError(ServeError, RuntimeError):
    """The queue is full: come back later (``Retry-After``), never an unbounded wait."""

    error_type = "overloaded"


class UnavailableError(ServeError, RuntimeError):
    """Loading, draining after SIGTERM, or the model failed to load."""

    error_type = "unhealthy"


class BackendError(ServeError, RuntimeError):
    """The model raised on a batch holding this request's inputs."""

    error_type = "backend"


def describe(exc: BaseException) -> Tuple[int, str, str]:
    """``(status, error_type, message)`` of any exception a request raised."""
    if isinstance(exc, ServeError):
        return STATUS[exc.error_type], exc.error_type, str(exc)
    if isinstance(exc, (InvalidInputError, BertHubError)) and isinstance(exc, ValueError):
        return STATUS["validation"], "validation", str(exc)
    logger.error("request failed", exc_info=exc)
    return STATUS["backend"], "backend", f"internal error ({type(exc).__name__}); see the server log"


def type_of_status(status: int) -> str:
    """The error type of a status the web framework chose (404, 405, ...)."""
    return _TYPE_OF_STATUS.get(status, "bad_request" if 400 <= status < 500 else "backend")


def body(message: str, error_type: str) -> dict:
    return {"error": message, "error_type": error_type}
