"""The access log: one line per request with method, path, status, body bytes, duration, client and id.

It costs nothing when off: the server swaps in ``logged_class(cls)``, a subclass of the connection class,
only when the log is on, so without it the connection code runs unchanged (no clock read, no request id,
no line). With it on, each request gets an id: its own ``X-Request-ID`` when that is a sane token (1-128
visible ASCII characters, so it can be echoed and logged as is), else one made of a random per-process
prefix and a counter (unique across workers and restarts, and no syscall as ``uuid4`` makes). The id is
echoed in the response's ``x-request-id``. A direct api call is logged from ``send_answer`` (its answer is
whole there: status, bytes, and the clock since its body arrived); an ASGI request through a wrapper
around the app (from the app's call to its last body message).

Lines are written straight to the stream in batches: the first line queued schedules a write 50 ms
later, so a line shows at once to a person and a busy server writes 20 times a second, not once per
request. They do not go through ``logging``: a record per request (caller lookup, lock, format, flush)
costs more than answering the request. ``repr`` escapes control characters in the text format and JSON
escapes them in the JSON one, so a hostile path cannot forge a line.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from time import monotonic
from typing import TextIO, cast

import msgspec

from ..types import Answer, ASGIApp, Message, Receive, Scope, Send
from .connection import HTTPProtocol, ServerState
from .exchange import APICall
from .state import split_target

__all__ = ["AccessLog", "LoggedProtocol", "logged_class", "request_id_ok"]

_ID_HEADER = b"x-request-id"
_ID_OK = re.compile(rb"[!-~]{1,128}")
_FLUSH_AFTER = 0.05  # seconds
# Durations under 10 ms, formatted once: a float format costs more than the rest of the line.
_MS = [f"{i / 100:.2f}" for i in range(1000)]
_encode = msgspec.json.encode


def request_id_ok(value: bytes) -> bool:
    """True when a client's request id can be used as is: 1-128 visible ASCII characters."""
    return _ID_OK.fullmatch(value) is not None


class AccessLog:
    """Formats access lines (``text`` or ``json``) and writes them to ``stream`` in batches."""

    def __init__(self, stream: TextIO, fmt: str = "text") -> None:
        self.stream = stream
        self.json = fmt == "json"
        self.lines: list[str] = []
        self.prefix = os.urandom(6).hex()  # drawn per worker: each worker's server makes its own AccessLog
        self.count = 0
        self._second = -1
        self._stamp = ""
        self._app: ASGIApp | None = None
        self._wrapped: ASGIApp | None = None

    def request_id(self, headers: list[tuple[bytes, bytes]]) -> str:
        """The request's own id when it sent a sane one, else a new one."""
        for name, value in headers:
            if name == _ID_HEADER:
                if _ID_OK.fullmatch(value) is not None:
                    return value.decode("ascii")
                break
        self.count += 1
        return f"{self.prefix}{self.count:08x}"

    def write(
        self,
        loop: asyncio.AbstractEventLoop,
        who: str,
        method: str,
        path: str,
        query: bytes,
        version: str,
        status: int,
        size: int,
        seconds: float,
        rid: str,
    ) -> None:
        """Queue one line; it is written within 50 ms."""
        if self.json:
            line = self._json(who, method, path, query, version, status, size, seconds, rid)
        else:
            target = path + "?" + query.decode("latin-1") if query else path
            if not target.isprintable():
                target = repr(target)[1:-1]
            hundredths = int(seconds * 100_000)
            ms = _MS[hundredths] if hundredths < 1000 else f"{seconds * 1000:.2f}"
            line = f'INFO: {who} - "{method} {target} HTTP/{version}" {status} {size} {ms}ms id={rid}'
        lines = self.lines
        if not lines:
            loop.call_later(_FLUSH_AFTER, self.flush)
        lines.append(line)

    def _json(
        self,
        who: str,
        method: str,
        path: str,
        query: bytes,
        version: str,
        status: int,
        size: int,
        seconds: float,
        rid: str,
    ) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        record = {
            "time": f"{self._stamp}.{int((now - second) * 1000):03d}Z",
            "level": "info",
            "logger": "asgiserve.access",
            "client": who,
            "method": method,
            "path": path,
            "query": query.decode("latin-1"),
            "http_version": version,
            "status": status,
            "bytes": size,
            "duration_ms": round(seconds * 1000, 3),
            "request_id": rid,
        }
        return _encode(record).decode()

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

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` with ids echoed and a line logged per HTTP request (made once per app)."""
        if self._app is app and self._wrapped is not None:
            return self._wrapped
        log = self

        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            t0 = monotonic()
            rid = log.request_id(scope["headers"])
            header = (_ID_HEADER, rid.encode())
            status = 0
            size = 0
            done = False

            def line(code: int) -> None:
                client = scope.get("client")
                who = f"{client[0]}:{client[1]}" if client else "-"
                sent = 0 if scope["method"] == "HEAD" else size
                loop = asyncio.get_running_loop()
                method, path, query = scope["method"], scope["path"], scope["query_string"]
                log.write(
                    loop, who, method, path, query, scope["http_version"], code, sent, monotonic() - t0, rid
                )

            async def send_with_id(message: Message) -> None:
                nonlocal status, size, done
                kind = message["type"]
                if kind == "http.response.start":
                    status = message["status"]
                    headers = message.get("headers") or []
                    if not any(name.lower() == _ID_HEADER for name, _ in headers):
                        message = {**message, "headers": [*headers, header]}
                elif kind == "http.response.body" and not done:
                    size += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        done = True
                        line(status)  # before the send, which may start the next pipelined request
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            except Exception:
                if not done:  # the server answers 500 when nothing was sent, else cuts the response
                    done = True
                    line(status or 500)
                raise

        self._app, self._wrapped = app, logged
        return logged


class LoggedProtocol(HTTPProtocol):
    """The connection with the access log on."""

    log: AccessLog  # set on each subclass ``logged_class`` makes

    def __init__(self, server: ServerState) -> None:
        super().__init__(server)
        self.app = self.log.wrap(server.app)  # ASGI requests go through it (``RequestCycle.run``)
        self.who = "-"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """As usual, and the client's address as the lines show it."""
        super().connection_made(transport)
        client = self.client
        if client is not None:
            self.who = f"{client[0]}:{client[1]}"

    def start_call(self, c: APICall, eager: bool = True) -> None:
        """As usual; a stream's call gets its request id now, for its head (``APICall.begin``)."""
        if c.handler.streams:
            c.extra = [(_ID_HEADER, self.log.request_id(c.headers).encode())]
        HTTPProtocol.start_call(self, c, eager)

    def end_stream(self, c: APICall, whole: bool) -> None:
        """A streamed answer ended: logged (status 500 when it broke), then ended as usual."""
        extra, c.extra = c.extra, None
        rid = extra[0][1].decode() if extra else self.log.request_id(c.headers)
        path, _, query = split_target(c.target)
        self.log.write(
            self.loop,
            self.who,
            "POST",
            path,
            query,
            "1.0" if c.http10 else "1.1",
            c.status if whole else 500,
            c.sent,
            monotonic() - c.t0,
            rid,
        )
        HTTPProtocol.end_stream(self, c, whole)

    def send_answer(self, c: APICall, answer: Answer | None) -> None:
        """A direct api answer: logged, with the request id among its headers."""
        extra, c.extra = c.extra, None
        if answer is not None and not c.disconnected:
            log = self.log
            rid = extra[0][1].decode() if extra else log.request_id(c.headers)
            status, ctype, out, extra = answer
            header = (_ID_HEADER, rid.encode())
            answer = (status, ctype, out, [header] if extra is None else [*extra, header])
            path, _, query = split_target(c.target)
            version = "1.0" if c.http10 else "1.1"
            log.write(
                self.loop, self.who, "POST", path, query, version, status, len(out), monotonic() - c.t0, rid
            )
        HTTPProtocol.send_answer(self, c, answer)


def logged_class(
    base: Callable[[ServerState], HTTPProtocol], log: AccessLog
) -> Callable[[ServerState], HTTPProtocol]:
    """The connection class ``base`` (from ``auto.protocol_class``) with the access log ``log`` on."""
    name = "Logged" + getattr(base, "__name__", "Protocol")
    cls = type(name, (LoggedProtocol, cast(type, base)), {"log": log})
    return cast(Callable[[ServerState], HTTPProtocol], cls)
