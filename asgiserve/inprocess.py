"""The server in this process with no socket: its real protocol on one end of an in-memory pipe, a client
connection on the other.

``LocalServer`` starts an app the way a server process does (``server.Server.startup``: the server
state, the tick, lifespan startup) but opens no listener; ``connect`` gives a connected client
``AsyncConnection`` whose bytes go to a fresh server protocol (``http.auto.protocol_class``), so a request
takes the same path as one read from a socket: the parser, the direct call or ASGI, the router, the
codecs and the traffic rules, then the client's response parser. The pipe keeps a socket's order and
timing where the two sides can tell: bytes from the client reach the server on a later loop pass (never
inside the client's task, which is where a socket read comes from too), bytes from the server reach the
client's parser at once; a side that stops reading holds what comes (the server is told to pause writing
past ``_HIGH_WATER``), and a close reaches both protocols on a later pass.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from asyncio import current_task
from asyncio.tasks import _enter_task, _leave_task
from collections.abc import Iterable

from .client.aiopool import AsyncConnection
from .embed import StartupError
from .http.auto import protocol_class
from .http.connection import HTTPProtocol
from .server.config import Config
from .server.server import Server
from .types import ASGIApp

__all__ = ["LocalServer", "Pipe", "sent_by"]

_HIGH_WATER = 256 * 1024  # bytes held for a client that stopped reading before the server must wait
_PEER = ("127.0.0.1", 50000)
_SOCKNAME = ("127.0.0.1", 80)
# In a connection's server side: the thread that sent it its latest bytes, in a list of one, the pipe's.
_SENDER: contextvars.ContextVar[list[int]] = contextvars.ContextVar("asgiserve_sender")


def sent_by(thread: int) -> bool:
    """Whether the connection whose server side runs now was last written to by thread ``thread`` (whose
    request it is then serving: a client connection carries one request at a time)."""
    sender = _SENDER.get(None)
    return sender is not None and sender[0] == thread


class Pipe:
    """One connection between a server protocol and a client connection, both in this loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        server: HTTPProtocol,
        client: AsyncConnection,
        live: set[Pipe] | None = None,
        context: contextvars.Context | None = None,
        sender: list[int] | None = None,
    ) -> None:
        self.loop = loop
        # The server side's reads run in one context of their own, as a socket's reader callback does.
        self.context = contextvars.copy_context() if context is None else context
        self.live = live  # the open pipes of a ``LocalServer``
        self.server = server
        self.client = client
        self.to_server: list[bytes] = []  # sent while the server was not reading
        self.to_client: list[bytes] = []  # sent while the client was not reading
        self.held = 0  # bytes in ``to_client``
        self.server_reading = True
        self.client_reading = True
        self.write_paused = False
        self.sender = [0] if sender is None else sender  # the thread that wrote last (``sent_by``)
        self.closed = False
        self.lost = False
        self.delivering = False
        self.server_end = _ServerEnd(self)
        self.client_end = _ClientEnd(self)
        if live is not None:
            live.add(self)
        client.connection_made(self.client_end)
        server.connection_made(self.server_end)

    def send_to_server(self, data: bytes) -> None:
        """The client wrote ``data``: the server reads it now, outside the client's task.

        Read at once, a call the server answers without waiting is over before the client's write returns,
        so it takes no loop pass (a loop pass costs more than the whole exchange). The server's protocol
        is run as a socket's reader callback runs: in its own context, with no current task (the client's
        task is left for the time of the read, then entered again).
        """
        if self.closed:
            return
        self.sender[0] = threading.get_ident()
        pending = self.to_server
        if pending or self.delivering or not self.server_reading:
            pending.append(data)  # taken in order, after what the server has not read yet
            return
        self.delivering = True
        loop = self.loop
        task = current_task(loop)
        if task is not None:
            _leave_task(loop, task)
        try:
            self._read(data)
            while pending and self.server_reading and not self.lost:
                self._read(pending.pop(0))
        finally:
            self.delivering = False
            if task is not None:
                _enter_task(loop, task)

    def _read(self, data: bytes) -> None:
        try:
            self.context.run(self.server.data_received, data)
        except Exception as exc:  # as the loop reports an error in a reader callback, which goes on
            self.loop.call_exception_handler(
                {
                    "message": "Exception in the server protocol's data_received",
                    "exception": exc,
                    "protocol": self.server,
                }
            )

    def _deliver_to_server(self) -> None:
        pending = self.to_server
        if self.delivering:
            return
        self.delivering = True
        try:
            while pending and self.server_reading and not self.lost:
                self._read(pending.pop(0))
        finally:
            self.delivering = False

    def send_to_client(self, data: bytes) -> None:
        """The server wrote ``data``: the client's parser takes it now, unless it stopped reading."""
        if self.closed:
            return
        if self.client_reading and not self.to_client:
            self.client.data_received(data)
            return
        self.to_client.append(data)
        self.held += len(data)
        if self.held > _HIGH_WATER and not self.write_paused:
            self.write_paused = True
            self.server.pause_writing()

    def resume_client(self) -> None:
        """The client reads again: hand it what was held, and let the server write on."""
        self.client_reading = True
        while self.to_client and self.client_reading and not self.lost:
            self.client.data_received(self.to_client.pop(0))
        self.held = sum(map(len, self.to_client))
        if self.write_paused and not self.to_client:
            self.write_paused = False
            self.server.resume_writing()

    def resume_server(self) -> None:
        """The server reads again: what the client sent meanwhile follows on a later pass."""
        self.server_reading = True
        if self.to_server:
            self.loop.call_soon(self._deliver_to_server)

    def close(self) -> None:
        """Either side closed: both protocols hear of it on a later pass (after what was written)."""
        if not self.closed:
            self.closed = True
            if self.loop.is_closed():  # a stream collected after its client closed: nothing to tell
                self.lost = True
                return
            self.loop.call_soon(self._lose)

    def _lose(self) -> None:
        if self.lost:
            return
        self.lost = True
        if self.live is not None:
            self.live.discard(self)
        while self.to_client:  # what the server wrote before closing still reaches the client
            self.client.data_received(self.to_client.pop(0))
        self.server.connection_lost(None)
        self.client.connection_lost(None)


class _End(asyncio.Transport):
    """What both ends share: closing, addresses, no half-close."""

    def __init__(self, pipe: Pipe) -> None:
        super().__init__()
        self.pipe = pipe

    def close(self) -> None:
        """Close the connection, for both sides."""
        self.pipe.close()

    def abort(self) -> None:
        """Close at once (there is no buffer to drop)."""
        self.pipe.close()

    def is_closing(self) -> bool:
        """True once either side closed."""
        return self.pipe.closed

    def can_write_eof(self) -> bool:
        """No half-close."""
        return False

    def get_extra_info(self, name: str, default: object = None) -> object:
        """Loopback addresses, as a local socket has."""
        return {"peername": _PEER, "sockname": _SOCKNAME}.get(name, default)

    def writelines(self, list_of_data: Iterable[bytes | bytearray | memoryview]) -> None:
        """Write each piece."""
        for data in list_of_data:
            self.write(data)


class _ServerEnd(_End):
    """The server protocol's transport."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """To the client."""
        self.pipe.send_to_client(bytes(data))

    def pause_reading(self) -> None:
        """The server stops reading (a body piles up, or pipelined requests queue)."""
        self.pipe.server_reading = False

    def resume_reading(self) -> None:
        """The server reads again."""
        self.pipe.resume_server()

    def is_reading(self) -> bool:
        """Whether the server reads."""
        return self.pipe.server_reading and not self.pipe.closed

    def get_write_buffer_size(self) -> int:
        """Bytes the client has not taken yet."""
        return self.pipe.held


class _ClientEnd(_End):
    """The client connection's transport."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """To the server."""
        self.pipe.send_to_server(bytes(data))

    def pause_reading(self) -> None:
        """The client stops reading (a stream nobody consumes)."""
        self.pipe.client_reading = False

    def resume_reading(self) -> None:
        """The client reads again."""
        self.pipe.resume_client()

    def is_reading(self) -> bool:
        """Whether the client reads."""
        return self.pipe.client_reading and not self.pipe.closed


class LocalServer:
    """An app served in this loop without a listener: ``start``, ``connect`` as often as needed, ``stop``."""

    def __init__(self, config: Config, app: ASGIApp) -> None:
        self.config = config
        self.app = app
        self.server = Server(config, app, signals=())
        self.factory = protocol_class(config.http)
        self.started = False
        self.pipes: set[Pipe] = set()
        self.context = contextvars.Context()  # replaced at start by the context the app starts in

    async def start(self) -> None:
        """Run the app's lifespan startup; ``StartupError`` when it failed."""
        if not await self.server.startup():
            self.server.close()
            name = getattr(self.app, "name", None) or type(self.app).__name__
            raise StartupError(f"{name} failed to start: {self.server.failure}")
        # Each connection's reads run in a copy of it, as a listener's accepted sockets do.
        self.context = contextvars.copy_context()
        self.started = True

    async def connect(self) -> AsyncConnection:
        """A new client connection to the server (as a listener would accept it)."""
        state = self.server.state
        if not self.started or state is None:
            raise RuntimeError("the server is not started")
        client = AsyncConnection()
        context = self.context.copy()
        sender = [0]
        context.run(_SENDER.set, sender)
        # Made in that context, the protocol runs each request in a copy of it, where ``sent_by`` reads it.
        Pipe(state.loop, context.run(self.factory, state), client, self.pipes, context, sender)
        return client

    async def stop(self) -> None:
        """Close the connections (as a client that exits does), then drain and run lifespan shutdown."""
        if not self.started:
            return
        self.started = False
        for pipe in list(self.pipes):  # a stream left unread would otherwise hold the drain
            pipe.close()
        # The closes run on the next pass; then the drain finds nothing to wait for.
        await asyncio.sleep(0)
        try:
            await self.server.finish()
        finally:
            self.server.close()
