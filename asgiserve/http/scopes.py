"""The ASGI scopes asgiserve's server builds for a request head: ``http`` and ``websocket``."""

from __future__ import annotations

from ..types import Headers, Scope
from .state import ServerState

__all__ = ["http_scope", "websocket_scope"]

_ASGI = {"version": "3.0", "spec_version": "2.4"}
Address = tuple[str, int] | None


def http_scope(
    server: ServerState,
    method: str,
    version: str,
    path: str,
    raw_path: bytes,
    query: bytes,
    headers: Headers,
    sockname: Address,
    client: Address,
) -> Scope:
    """An ``http`` scope, with a copy of the server's lifespan state."""
    return {
        "type": "http",
        "asgi": _ASGI,
        "http_version": version,
        "server": sockname,
        "client": client,
        "scheme": server.scheme,
        "method": method,
        "root_path": server.root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "state": server.state.copy(),
    }


def websocket_scope(
    server: ServerState,
    version: str,
    path: str,
    raw_path: bytes,
    query: bytes,
    headers: Headers,
    sockname: Address,
    client: Address,
    offered: str,
) -> Scope:
    """A ``websocket`` scope; ``offered`` is the Sec-WebSocket-Protocol header's value."""
    return {
        "type": "websocket",
        "asgi": _ASGI,
        "http_version": version,
        "server": sockname,
        "client": client,
        "scheme": server.ws_scheme,
        "root_path": server.root_path,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "headers": headers,
        "subprotocols": [p.strip() for p in offered.split(",") if p.strip()],
        "state": server.state.copy(),
    }
