"""The service's error responses: ``{"error": {"code": ..., "message": ...}}`` with the right status.

Codes (DESIGN section 5): 400 undecodable, 401 bad key, 404 unknown model or
route, 413 too many bytes or pixels, 415 unsupported type, 422 bad
parameters, 503 overloaded (with ``Retry-After``), 504 deadline.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

__all__ = ["ApiError", "error_response"]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_parameters",
    500: "internal_error",
    503: "overloaded",
    504: "timeout",
}


class ApiError(Exception):
    """Raised by handlers; becomes a JSON error response."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON error body for ``status``."""
    body = {"error": {"code": _CODES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)
