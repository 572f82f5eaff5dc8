"""HTTP clients for asgiserve (and BentoML) services: ``SyncHTTPClient`` and ``AsyncHTTPClient``.

Sans-IO cores: ``wire`` (HTTP/1.1 framing), ``bookkeeper`` (what a pool reuses, opens, waits for and
retries), ``endpoints`` (per-api requests and responses), ``_base`` (URL, headers, schema). I/O drivers
over them: ``pool`` and ``aiopool``, the blocking and asyncio connection pools. The clients' calls are
written once, in ``_async_client``, and generated for the blocking client (``_sync_client``, by
``tests/unasync.py``); ``clients`` holds the public classes. Every error is an ``AsgiserveError``
(``asgiserve.errors``): ``HTTPError`` for a status, ``TransportError`` for the network.
"""

from __future__ import annotations

from ._async_client import AsyncTask, AsyncTaskEndpoint
from ._sync_client import Task, TaskEndpoint
from .aiopool import AsyncConnectionPool
from .clients import AsyncHTTPClient, ClientResponse, SyncHTTPClient
from .endpoints import TaskStatus
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
    "AsyncTask",
    "AsyncTaskEndpoint",
    "ClientResponse",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionPool",
    "PoolTimeout",
    "ReadTimeout",
    "RemoteProtocolError",
    "ResultStatus",
    "ServerDisconnected",
    "SyncHTTPClient",
    "Task",
    "TaskEndpoint",
    "TaskStatus",
    "TransportError",
]

ResultStatus = TaskStatus  # BentoML's name for it
