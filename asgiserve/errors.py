"""The error hierarchy, shared by the server side (turned into JSON responses) and the clients (raised).

One root, ``AsgiserveError``, with two branches:
- ``HTTPError``, carrying ``status`` and ``message``, with a subclass per status callers may want to catch
  or retry on; the server answers these, and ``error_for_status`` maps a status back to its class at the
  client boundary;
- ``TransportError``, the clients' errors with no HTTP status to report (the server could not be reached,
  broke HTTP/1.1 framing, closed the connection, or stayed silent too long). Both connection pools raise
  these and only these for network failures, the same class for the same failure. They stay
  ``ConnectionError`` (so ``OSError``) and the timeouts ``TimeoutError``, as callers catch them that way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = [
    "AsgiserveError",
    "BadRequest",
    "ConnectError",
    "ConnectTimeout",
    "HTTPError",
    "InternalServerError",
    "InvalidArgument",
    "MethodNotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "ServerDisconnected",
    "ServiceUnavailable",
    "TLSError",
    "Timeout",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_for_status",
    "origin",
]


class AsgiserveError(Exception):
    """The root of every error asgiserve raises or answers: ``HTTPError`` and ``TransportError``."""


class HTTPError(AsgiserveError):
    """An HTTP error with a status code and a message, raised by clients and answered by the server."""

    status: int = 500

    def __init__(
        self, message: str, status: int | None = None, *, detail: Sequence[object] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.detail: list[object] | None = None if detail is None else list(detail)

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


def error_for_status(status: int, message: str, detail: Sequence[object] | None = None) -> HTTPError:
    """The most specific ``HTTPError`` for a response status."""
    cls = _BY_STATUS.get(status, HTTPError)
    return cls(message, status, detail=detail)


class TransportError(AsgiserveError, ConnectionError):
    """The request could not be completed at the connection level (no HTTP status to report)."""


class ConnectError(TransportError):
    """The server could not be reached."""


class TLSError(ConnectError):
    """The TLS handshake failed (an untrusted certificate, a wrong hostname, no common protocol): a retry
    cannot help, so a client waiting for the server to be ready raises it at once."""


class ConnectTimeout(ConnectError, TimeoutError):
    """Connecting took longer than the connect timeout."""


class ReadTimeout(TransportError, TimeoutError):
    """The server sent nothing for longer than the read timeout."""


class PoolTimeout(TransportError, TimeoutError):
    """Every connection of the pool stayed busy for longer than the timeout."""


class RemoteProtocolError(TransportError):
    """The server broke HTTP/1.1 framing (bad status line, bad chunk size, conflicting lengths...) or TLS."""


class ServerDisconnected(TransportError):
    """The server closed the connection before the response was complete."""


def origin(exc: BaseException) -> str:
    """Where ``exc`` was raised, as ``file:line in function``: the deepest frame outside asgiserve and the
    import machinery (the user's own code, or the library it called), for one-line startup errors."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        name = code.co_filename
        if not name.startswith(here) and not name.startswith("<frozen"):
            found = f"{name}:{tb.tb_lineno} in {code.co_name}"
        tb = tb.tb_next
    return found
