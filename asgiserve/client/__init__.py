"""HTTP clients for asgiserve (and BentoML) services: ``SyncHTTPClient`` and ``AsyncHTTPClient``.

``wire`` is the sans-IO HTTP/1.1 core, ``pool`` and ``aiopool`` the blocking and asyncio connection
pools, ``endpoints`` the per-api request and response handling, ``clients`` the public classes.
"""

from __future__ import annotations

from .aiopool import AsyncConnectionPool
from .clients import AsyncHTTPClient, ClientResponse, SyncHTTPClient
from .pool import ConnectionPool
from .wire import (
    ConnectError,
    ConnectTimeout,
    PoolTimeout,
    ReadTimeout,
    RemoteProtocolError,
    ServerDisconnected,
    TransportError,
)

__all__ = [
    "AsyncConnectionPool",
    "AsyncHTTPClient",
    "ClientResponse",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "ServerDisconnected",
    "SyncHTTPClient",
    "TransportError",
]
