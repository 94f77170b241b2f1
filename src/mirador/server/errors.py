"""Errors the HTTP edge adds, their status codes, and JSON error bodies in each dialect.

    MiradorError (mirador.errors)
    └── HttpError                  an error that only exists at the server's edge
        ├── BadRequestError        a body or parameter the server cannot use (400)
        ├── UnauthorizedError      no or wrong bearer token (401)
        ├── ForbiddenError         a host or origin this server does not serve (403)
        ├── NotFoundError          no such route, answer or memory (404)
        ├── RequestTooLargeError   a body over server.max_request_bytes (413)
        ├── FeatureUnavailableError  memory or ratings are not installed here (501)
        └── ServerBusyError        the answer queue is full (503, Retry-After)

Every error leaves the server as JSON in the dialect of the route it hit: Ollama's
`{"error": "..."}` under /api, OpenAI's `{"error": {"message", "type", ...}}` under /v1,
and Mirador's `{"error": {"type", "message"}}` elsewhere. Never a traceback.
"""

from __future__ import annotations

from typing import Any

from mirador.errors import (
    AllStagesFailedError,
    BackendError,
    BackendUnavailableError,
    ConfigError,
    ContextOverflowError,
    EmbedderChanged,
    MemoryStoreError,
    MiradorError,
    MissingExtraError,
    ModelBusyError,
    ModelError,
    ModelNotFoundError,
    RatingError,
)


class HttpError(MiradorError):
    status = 500
    kind = "server_error"
    headers: dict[str, str] = {}


class BadRequestError(HttpError):
    status, kind = 400, "invalid_request"


class UnauthorizedError(HttpError):
    status, kind = 401, "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


class ForbiddenError(HttpError):
    status, kind = 403, "forbidden"


class NotFoundError(HttpError):
    status, kind = 404, "not_found"


class RequestTooLargeError(HttpError):
    status, kind = 413, "request_too_large"


class FeatureUnavailableError(HttpError):
    status, kind = 501, "not_implemented"


class ServerBusyError(HttpError):
    status, kind = 503, "server_busy"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


# Mirador's own errors by class, most specific first: (status, type).
_STATUS: tuple[tuple[type[MiradorError], int, str], ...] = (
    (ModelNotFoundError, 404, "model_not_found"),
    (ContextOverflowError, 400, "context_length_exceeded"),
    (ModelBusyError, 503, "server_busy"),
    (RatingError, 404, "answer_not_found"),
    (ConfigError, 400, "invalid_request"),
    (MissingExtraError, 501, "not_implemented"),
    (BackendUnavailableError, 502, "backend_unavailable"),
    (BackendError, 502, "backend_error"),
    (ModelError, 500, "model_error"),
    (AllStagesFailedError, 500, "no_answer"),
    (EmbedderChanged, 409, "embedder_changed"),  # the store, not the request: reindex
    (MemoryStoreError, 500, "memory_error"),
)


def status_of(exc: BaseException) -> tuple[int, str, dict[str, str]]:
    """HTTP status, error type and extra headers for any exception."""
    if isinstance(exc, HttpError):
        return exc.status, exc.kind, dict(exc.headers)
    for cls, status, kind in _STATUS:
        if isinstance(exc, cls):
            return status, kind, {}
    return 500, "internal_error", {}


def message_of(exc: BaseException) -> str:
    if isinstance(exc, MiradorError):
        return str(exc)
    return (f"internal error ({type(exc).__name__}); the server log has the details. "
            "Please report it.")


def dialect_for(path: str) -> str:
    """Which API a path belongs to: 'ollama', 'openai' or 'native'."""
    if path.startswith("/api/") or path == "/api":
        return "ollama"
    if path.startswith("/v1/") or path == "/v1":
        return "openai"
    return "native"


def error_body(path: str, message: str, kind: str) -> dict[str, Any]:
    """The JSON body of an error, shaped as the route's clients expect."""
    dialect = dialect_for(path)
    if dialect == "ollama":
        return {"error": message}
    if dialect == "openai":
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}
    return {"error": {"type": kind, "message": message}}
