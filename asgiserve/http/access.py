"""The access log: one line per request with method, path, status, body bytes, duration, client and id.

It costs nothing when off. The server only swaps in ``logged_class(cls)``, a subclass of the connection
class, when the log is on; without it the connection code runs unchanged (no clock read, no request id,
no line). With it on, each request gets an id: its own ``X-Request-ID`` when that is a sane token (1-128
visible ASCII characters, so it can be echoed and logged as is), else one generated from a random
per-process prefix and a counter (unique across workers and restarts, and no syscall as ``uuid4`` makes).
The id is echoed in the response's ``x-request-id``.

Lines are written straight to the stream, batched: the first line of a loop pass schedules one write at
the end of the pass, so a lone request's line shows at once and a busy server writes once for many. They
do not go through ``logging``: a record per request (caller lookup, lock, format, flush) costs more than
answering the request. ``repr`` escapes control characters in the text format and JSON escapes them in the
JSON one, so a hostile path cannot forge a line.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from time import monotonic
from typing import TextIO, cast

import msgspec

from ..types import Answer, Message, Receive, Scope, Send
from .connection import HTTPProtocol, ServerState
from .exchange import APICall, Exchange

__all__ = ["AccessLog", "LoggedProtocol", "logged_class", "request_id_ok"]

_ID_HEADER = b"x-request-id"
_encode = msgspec.json.encode


def request_id_ok(value: bytes) -> bool:
    """True when a client's request id can be used as is: 1-128 visible ASCII characters."""
    return 0 < len(value) <= 128 and value.isascii() and all(0x21 <= b <= 0x7E for b in value)


class AccessLog:
    """Formats access lines (``text`` or ``json``) and writes them to ``stream`` once per loop pass."""

    def __init__(self, stream: TextIO, fmt: str = "text") -> None:
        self.stream = stream
        self.json = fmt == "json"
        self.lines: list[str] = []
        self.prefix = os.urandom(6).hex()  # drawn per worker: a forked worker makes its own AccessLog
        self.count = 0
        self._second = -1
        self._stamp = ""

    def new_id(self) -> str:
        """A request id for a request that came without one."""
        self.count += 1
        return "%s%08x" % (self.prefix, self.count)

    def write(
        self,
        loop: asyncio.AbstractEventLoop,
        client: tuple[str, int] | None,
        c: Exchange,
        size: int,
        ms: float,
        rid: str,
    ) -> None:
        """Queue the line for the finished request ``c``; the loop pass's end writes it."""
        method, path, query, version = c.describe()
        who = f"{client[0]}:{client[1]}" if client else "-"
        if self.json:
            now = time.time()
            second = int(now)
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            record = {
                "time": "%s.%03dZ" % (self._stamp, int((now - second) * 1000)),
                "level": "info",
                "logger": "asgiserve.access",
                "client": who,
                "method": method,
                "path": path,
                "query": query.decode("latin-1"),
                "http_version": version,
                "status": c.status,
                "bytes": size,
                "duration_ms": round(ms, 3),
                "request_id": rid,
            }
            line = _encode(record).decode()
        else:
            target = path + "?" + query.decode("latin-1") if query else path
            line = 'INFO: %s - "%s %s HTTP/%s" %d %d %.2fms id=%s' % (
                who,
                method,
                repr(target)[1:-1],
                version,
                c.status,
                size,
                ms,
                rid,
            )
        lines = self.lines
        if not lines:
            loop.call_soon(self.flush)
        lines.append(line)

    def flush(self) -> None:
        """Write the queued lines."""
        lines = self.lines
        if not lines:
            return
        self.lines = []
        lines.append("")
        try:
            self.stream.write("\n".join(lines))
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: the server goes on serving
            pass


class _Pending:
    """What the log needs of a request in flight."""

    __slots__ = ("header", "rid", "sent", "t0")

    def __init__(self, rid: str, t0: float) -> None:
        self.rid = rid
        self.header = (_ID_HEADER, rid.encode())
        self.t0 = t0
        self.sent = 0  # body bytes an ASGI app sent (a direct call's are ``Exchange.sent``)


class LoggedProtocol(HTTPProtocol):
    """The connection with the access log on: ids in, ids echoed, one line per finished request."""

    log: AccessLog  # set on each subclass ``logged_class`` makes

    def __init__(self, server: ServerState) -> None:
        super().__init__(server)
        self.pending: dict[Exchange | None, _Pending] = {}
        self.inner = self.app
        self.app = self._app  # ASGI requests go through it (``RequestCycle.run`` calls ``proto.app``)

    def on_request(self, method: bytes, target: bytes, version: str, headers: list[tuple[bytes, bytes]]) -> int:
        """Take the request id (or make one) and the start time, then go on as usual."""
        length = super().on_request(method, target, version, headers)
        c = self.parsing
        if c is not None:
            rid = None
            for name, value in headers:
                if name == _ID_HEADER:
                    if request_id_ok(value):
                        rid = value.decode("ascii")
                    break
            self.pending[c] = _Pending(rid or self.log.new_id(), monotonic())
        return length

    def send_answer(self, c: APICall, answer: Answer | None) -> None:
        """A direct api answer, with the request id among its headers."""
        p = self.pending.get(c)
        if answer is not None and p is not None:
            status, ctype, out, extra = answer
            answer = (status, ctype, out, [*(extra or ()), p.header])
        super().send_answer(c, answer)

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An ASGI request starts as the current one (pipelined ones wait their turn).
        p = self.pending.get(self.current) if scope["type"] == "http" else None
        if p is None:
            await self.inner(scope, receive, send)
            return
        header = p.header

        async def send_with_id(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                headers = message.get("headers") or []
                if not any(name.lower() == _ID_HEADER for name, _ in headers):
                    message = {**message, "headers": [*headers, header]}
            elif kind == "http.response.body":
                p.sent += len(message.get("body", b""))
            await send(message)

        await self.inner(scope, receive, send_with_id)

    def response_complete(self, exchange: Exchange, keep_alive: bool) -> None:
        """Log the finished request, then go on as usual."""
        p = self.pending.pop(exchange, None)
        if p is not None:
            self._log(exchange, p)
        super().response_complete(exchange, keep_alive)

    def connection_lost(self, exc: Exception | None) -> None:
        """Requests whose response started but never finished (the app failed midway, the peer left) are
        logged with what was sent."""
        pending = self.pending
        for c, p in list(pending.items()):
            if c is not None and c.status:
                self._log(c, p)
        pending.clear()
        super().connection_lost(exc)

    def _log(self, c: Exchange, p: _Pending) -> None:
        if c.direct:
            size = c.sent
        else:
            size = 0 if getattr(c, "is_head", False) else p.sent
        self.log.write(self.loop, self.client, c, size, (monotonic() - p.t0) * 1000.0, p.rid)


def logged_class(
    base: Callable[[ServerState], HTTPProtocol], log: AccessLog
) -> Callable[[ServerState], HTTPProtocol]:
    """The connection class ``base`` (from ``auto.protocol_class``) with the access log ``log`` on."""
    name = "Logged" + getattr(base, "__name__", "Protocol")
    cls = type(name, (LoggedProtocol, cast(type, base)), {"log": log})
    return cast(Callable[[ServerState], HTTPProtocol], cls)
