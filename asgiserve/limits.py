"""The limits a server enforces on every connection, with their defaults, in one place.

``Config`` (flags and ``ASGISERVE_*`` variables), the server's per-connection checks and the app's own body
limit (which holds under any ASGI server) all read their defaults from ``Limits``.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_LIMITS", "Limits"]


@dataclass(frozen=True)
class Limits:
    """Sizes (bytes, counts) and deadlines (seconds) of one server's connections."""

    max_header_size: int = 64 * 1024  # the header fields of a request head (431 above)
    max_headers: int = 100  # header fields in one head (431 above)
    max_url_size: int = 8 * 1024  # the request target (414 above)
    max_body_size: int = 100 * 1024 * 1024  # a request body (413 above)
    keep_alive_timeout: float = 5.0  # an idle keep-alive connection is closed after this
    header_timeout: float = 10.0  # a head must be complete this long after its first byte
    # A request body: at most this long between two reads (nginx's client_body_timeout), and done within
    # this long plus a second for each ``body_min_rate`` bytes received (Apache mod_reqtimeout's MinRate);
    # 408 when not met; a rate of 0 turns that part off.
    body_timeout: float = 60.0
    body_min_rate: float = 500.0
    max_connections: int = 2048  # open connections; more are answered 503 and closed


DEFAULT_LIMITS = Limits()
