"""The service's errors: one JSON shape for HTTP responses and WebSocket messages.

``{"error": {"code": "too_large", "status": 413, "message": "..."}}``: ``code``
is a stable string, ``status`` the HTTP status it goes with (on a WebSocket
too, where older clients read a number). Codes: 400 undecodable, 401 bad key,
404 unknown model or route, 408 body too slow, 413 too many bytes or pixels,
415 unsupported type, 422 bad parameters, 499 client went away (metrics and
logs only: nobody is left to answer), 503 overloaded or shutting down (with
``Retry-After``), 504 deadline.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["CLIENT_GONE", "ApiError", "ClientGone", "error_body", "error_json", "error_response"]

#: The status recorded for a request whose client disconnected before the answer (nginx's convention).
CLIENT_GONE = 499

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_parameters",
    CLIENT_GONE: "client_closed_request",
    500: "internal_error",
    503: "overloaded",
    504: "timeout",
}


class ApiError(Exception):
    """Raised by handlers; becomes a JSON error response (``code`` defaults to the status's)."""

    def __init__(
        self, status: int, message: str, headers: dict[str, str] | None = None, *, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
        self.code = code or _CODES.get(status, "error")


class ClientGone(Exception):
    """The client disconnected before its answer: its work was dropped and nothing is sent."""


def error_body(status: int, message: str, code: str | None = None) -> dict[str, Any]:
    """The error object, the same for HTTP and WebSocket."""
    return {"error": {"code": code or _CODES.get(status, "error"), "status": status, "message": message}}


def error_json(exc: ApiError) -> str:
    """``exc`` as a JSON text (a WebSocket message)."""
    return json.dumps(error_body(exc.status, exc.message, exc.code))


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, code: str | None = None
) -> JSONResponse:
    """The JSON error response for ``status``."""
    return JSONResponse(error_body(status, message, code), status_code=status, headers=headers)
