"""The ASGI scopes asgiserve's server builds for a request head: ``http`` and ``websocket``."""

from __future__ import annotations

from ..types import Headers, Scope

__all__ = ["http_scope", "websocket_scope"]

_ASGI = {"version": "3.0", "spec_version": "2.4"}
Address = tuple[str, int] | None


def http_scope(
    method: str,
    version: str,
    path: str,
    raw_path: bytes,
    query: bytes,
    headers: Headers,
    *,
    server: Address,
    client: Address,
    root_path: str,
    state: dict[str, object],
) -> Scope:
    """An ``http`` scope; ``state`` is the server's lifespan state, copied for this request."""
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": version,
        "server": server,
        "client": client,
        "scheme": "http",
        "method": method,
        "root_path": root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "state": state.copy(),
    }


def websocket_scope(
    version: str,
    path: str,
    raw_path: bytes,
    query: bytes,
    headers: Headers,
    offered: str,
    *,
    server: Address,
    client: Address,
    root_path: str,
    state: dict[str, object],
) -> Scope:
    """A ``websocket`` scope; ``offered`` is the Sec-WebSocket-Protocol header's value."""
    return {
        "type": "websocket",
        "asgi": _ASGI,
        "http_version": version,
        "server": server,
        "client": client,
        "scheme": "ws",
        "root_path": root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "subprotocols": [p.strip() for p in offered.split(",") if p.strip()],
        "state": state.copy(),
    }
