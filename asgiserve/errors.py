"""The error hierarchy, shared by the server side (turned into JSON responses) and the clients (raised).

One base class, ``HTTPError``, carrying ``status`` and ``message``; a subclass per status callers may want
to catch or retry on. ``error_for_status`` maps a status back to its class at the client boundary.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BadRequest",
    "HTTPError",
    "InternalServerError",
    "InvalidArgument",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "ServiceUnavailable",
    "Timeout",
    "TooManyRequests",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_for_status",
]


class HTTPError(Exception):
    """An HTTP error with a status code and a message, raised by clients and answered by the server."""

    status: int = 500

    def __init__(self, message: str, status: int | None = None, *, detail: list[Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.detail = detail

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class InvalidArgument(HTTPError):
    """400: the request's input failed validation."""

    status = 400


BadRequest = InvalidArgument


class Unauthorized(HTTPError):
    """401: a missing or wrong API token."""

    status = 401


class NotFound(HTTPError):
    """404: no route for this path."""

    status = 404


class MethodNotAllowed(HTTPError):
    """405: the route exists but not for this method."""

    status = 405


class PayloadTooLarge(HTTPError):
    """413: the request body is over the configured limit."""

    status = 413


class UnsupportedMediaType(HTTPError):
    """415: a request body in a content type the api cannot decode."""

    status = 415


class TooManyRequests(HTTPError):
    """429: over the service's ``max_concurrency``; retry later."""

    status = 429


class InternalServerError(HTTPError):
    """500: the api raised; details are in the server log only."""

    status = 500


class ServiceUnavailable(HTTPError):
    """503: the service is starting or draining."""

    status = 503


class Timeout(HTTPError):
    """504: no response started within ``traffic.timeout``."""

    status = 504


_BY_STATUS: dict[int, type[HTTPError]] = {
    cls.status: cls
    for cls in (
        InvalidArgument,
        Unauthorized,
        NotFound,
        MethodNotAllowed,
        PayloadTooLarge,
        UnsupportedMediaType,
        TooManyRequests,
        InternalServerError,
        ServiceUnavailable,
        Timeout,
    )
}


def error_for_status(status: int, message: str, detail: list[Any] | None = None) -> HTTPError:
    """The most specific ``HTTPError`` for a response status."""
    cls = _BY_STATUS.get(status, HTTPError)
    return cls(message, status, detail=detail)
