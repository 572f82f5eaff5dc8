"""The access log: one line per request with method, path, status, body bytes, duration, client and id.

It costs nothing when off: the server swaps in ``logged_class(cls)``, a subclass of the connection class,
only when the log is on, so without it the connection code runs unchanged (no clock read, no request id,
no line). With it on, each request gets an id: its own ``X-Request-ID`` when that is a sane token (1-128
visible ASCII characters, so it can be echoed and logged as is), else 20 hex digits: a random per-process
prefix plus a counter (unique across workers and restarts, and no syscall as ``uuid4`` makes), made 256 at
a time by two C calls and popped. The id is echoed in the response's ``x-request-id``; a direct call's own
id was picked up by ``wire.request_framing`` in its pass over the headers (a second pass here cost 1.3k
instructions). A direct api call is logged from ``send_answer`` (its answer is whole there: status, bytes,
and the clock since its body arrived); an ASGI request through a wrapper around the app (from the app's
call to its last body message).

A request leaves its text line as pieces of bytes added to one list, joined when the lines are written (a
join per line, or a call to make it, costs more than the pieces): the line up to its status and size,
kept per connection for a keep-alive client that repeats its target (and per client and target in
``AccessLog.prefixes``), the duration from a table (no number formatted for most lines) and the id. Each
line's pieces begin with its newline, so that no piece ends it. For the JSON format a request leaves a
record (a tuple of what its line shows). The lines are written to the stream in batches: the first one
queued schedules a flush 50 ms later, so a line shows at once to a person and a busy server writes 20
times a second, not once per request. They do not go through ``logging``: a record per request (caller
lookup, lock, format, flush) costs more than answering the request. ``repr`` escapes control characters in
the text format and JSON escapes them in the JSON one, so a hostile path cannot forge a line.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Awaitable, Callable
from math import floor
from time import monotonic
from typing import TextIO, TypeAlias, cast

import msgspec

from ..types import Answer, Headers, Message, Receive, Scope, Send
from .connection import HTTPProtocol, ServerState
from .exchange import APICall
from .state import split_target
from .wire import OK_PREFIX

__all__ = ["AccessLog", "LoggedProtocol", "logged_class", "request_id_ok"]

_ID_HEADER = b"x-request-id"
_ID_OK = re.compile(rb"[!-~]{1,128}")
_FLUSH_AFTER = 0.05  # seconds
# Pieces of a text line made once: a number formatted into bytes costs more than the rest of the line.
_MS = [b"%.2fms id=" % (i / 100) for i in range(1000)]  # durations under 10 ms, by hundredths of a ms
_SIZES = [b"%d " % i for i in range(2048)]
_STATUSES = [b"%d " % status for status in range(600)]
_OK_SIZES = [b"200 %d " % i for i in range(2048)]  # most lines' status and size in one piece
_ID_LENGTHS = [b"%d\r\nx-request-id: " % i for i in range(2048)]  # a head's length, then the id's name
# A batch of generated ids ends in these (after an empty first piece: see ``AccessLog.new_id``).
_ID_ENDS = [b"%02x" % i for i in reversed(range(256))]  # a batch's ids' last digits, popped: 00 first
_encode = msgspec.json.encode

# What a request leaves for its JSON line: its client, method, path, query and HTTP version (cached, see
# ``AccessLog.prefix``), status, body bytes, the clock when it began and when it ended, request id.
Record = tuple["Request", int, int, float, float, str]
# The request's part of a JSON line: client, method, path, query, HTTP version.
Request = tuple[str, str, str, str, str]
# The part of a line a request's connection and target decide: a text line's first bytes, or the above.
Prefix: TypeAlias = "bytes | Request"


def request_id_ok(value: bytes) -> bool:
    """True when a client's request id can be used as is: 1-128 visible ASCII characters."""
    return _ID_OK.fullmatch(value) is not None


class AccessLog:
    """Keeps a line (text) or a record (JSON) per request and writes the lines to ``stream`` in batches."""

    def __init__(self, stream: TextIO, fmt: str = "text") -> None:
        self.stream = stream
        self.json = fmt == "json"
        # Text lines are bytes in the stream's encoding (a path's characters as it would encode them).
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
        self.lines: list[bytes] = []  # text lines' pieces, each line's first its newline
        self.records: list[Record] = []  # JSON lines' records
        # The next batch of generated ids, as a number: 48 random bits (drawn per worker: each worker's
        # server makes its own AccessLog; the top one set, so that the id is always 20 hex digits) over a
        # 32-bit count. A batch's ids are ``high`` (its first 18 digits) and one of the last digits left
        # in ``lows``: two pieces that exist already, where one id's bytes to make and free cost more than
        # the piece more that lines and heads then join.
        self.next_id = (int.from_bytes(os.urandom(6), "big") | 1 << 47) << 32
        self.high = b""
        self.lows: list[bytes] = []
        # Line prefixes by (client, target, HTTP/1.0) for direct calls, (client, method, path, query,
        # version) for ASGI requests: most requests repeat a few, and the prefix is most of a line's cost.
        self.prefixes: dict[tuple[object, ...], Prefix] = {}
        self._second = -1
        self._stamp = ""

    def request_id(self, headers: Headers) -> bytes:
        """The request's own id when it sent a sane one (visible ASCII), else a new one."""
        for name, value in headers:
            if name == _ID_HEADER:
                return self.own_id(value)
        return self.new_id()

    def own_id(self, value: bytes | None) -> bytes:
        """``value`` (a request's ``X-Request-ID``) when it is sane, else a new id."""
        if value is not None and _ID_OK.fullmatch(value) is not None:
            return bytes(value)
        return self.new_id()

    def new_id(self) -> bytes:
        """A generated request id."""
        low = self.next_low()
        return self.high + low

    def next_low(self) -> bytes:
        """The last digits of the next generated id (``high`` holds the rest, from now on)."""
        lows = self.lows
        if not lows:
            self.high = b"%018x" % (self.next_id >> 8)
            self.next_id += 256
            lows += _ID_ENDS  # the same list: ``text_answers`` holds it
        return lows.pop()

    def prefix(
        self, key: tuple[object, ...], who: str, method: str, path: str, query: bytes, version: str
    ) -> Prefix:
        """The request's part of its line, kept under ``key``."""
        made: Prefix
        if self.json:
            made = (who, method, path, query.decode("latin-1"), version)
        else:
            target = path + "?" + query.decode("latin-1") if query else path
            if not target.isprintable():
                target = repr(target)[1:-1]
            text = f'\nINFO: {who} - "{method} {target} HTTP/{version}" '
            made = text.encode(self.encoding, "backslashreplace")
        if len(self.prefixes) >= 4096:
            self.prefixes.clear()
        self.prefixes[key] = made
        return made

    def add(
        self, pre: Prefix, status: int, size: int, t0: float, rid: bytes, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Queue one request's line (made now; for JSON, its record); it is written within 50 ms."""
        end = monotonic()
        if self.json:
            if not self.records:
                loop.call_later(_FLUSH_AFTER, self.flush)
            self.records.append((cast(Request, pre), status, size, t0, end, rid.decode("ascii")))
        else:
            if not self.lines:
                loop.call_later(_FLUSH_AFTER, self.flush)
            self.lines += text_line(cast(bytes, pre), status, size, end - t0, rid)

    def flush(self) -> None:
        """Write the queued lines."""
        try:
            if self.json:
                records = self.records
                if records:
                    self.records = []
                    texts = self._json(records)
                    texts.append("")
                    self.stream.write("\n".join(texts))
                    self.stream.flush()
                return
            lines = self.lines
            if not lines:
                return
            # Each line's pieces begin with its newline: the batch's first one goes at its end instead.
            lines.append(b"\n")
            data = memoryview(b"".join(lines))[1:]
            lines.clear()  # the same list: ``text_answers`` holds it
            buffer = getattr(self.stream, "buffer", None)
            if buffer is None:
                self.stream.write(str(data, self.encoding))
                self.stream.flush()
            else:  # after what was written to the text layer, so that lines keep their order
                self.stream.flush()
                buffer.write(data)
                buffer.flush()
        except (OSError, ValueError):  # stderr closed or gone: the server goes on serving
            pass

    def _json(self, records: list[Record]) -> list[str]:
        # Each line's wall-clock time is worked out from the monotonic one its record keeps.
        wall = time.time() - monotonic()
        lines = []
        for pre, status, size, t0, end, rid in records:
            who, method, path, query, version = pre
            now = wall + end
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
                "query": query,
                "http_version": version,
                "status": status,
                "bytes": size,
                "duration_ms": round((end - t0) * 1000, 3),
                "request_id": rid,
            }
            lines.append(_encode(record).decode())
        return lines


def text_line(pre: bytes, status: int, size: int, seconds: float, rid: bytes) -> tuple[bytes, ...]:
    """A text line's pieces: ``pre`` (from its newline), status and body bytes, duration in ms, request id."""
    hundredths = floor(seconds * 100_000.0)
    return (
        pre,
        _OK_SIZES[size] if status == 200 and size < 2048 else status_size(status, size),
        _MS[hundredths] if hundredths < 1000 else slow_ms(hundredths),
        rid,
    )


def status_size(status: int, size: int) -> bytes:
    """The status-and-size piece of a line but for a 200 under 2 KiB."""
    return (_STATUSES[status] if status < 600 else b"%d " % status) + (
        _SIZES[size] if size < 2048 else b"%d " % size
    )


def slow_ms(hundredths: int) -> bytes:
    """The duration piece of a line for 10 ms or more (``hundredths`` of a ms)."""
    return b"%d.%02dms id=" % divmod(hundredths, 100)


class LoggedProtocol(HTTPProtocol):
    """The connection with the access log on."""

    log: AccessLog  # set on each subclass ``logged_class`` makes

    def __init__(self, server: ServerState) -> None:
        super().__init__(server)
        self.app = self.logged  # ASGI requests go through it (``RequestCycle.run``)
        # The client as lines show it, and the last direct 200's HTTP/1.1 target, body size and text line up
        # to its duration, which a keep-alive client's next call likely shares. One attribute: past 29 of
        # them (the connection has 28), CPython 3.11 keeps an object's attributes in a dict of its own,
        # and every attribute read on the connection gets slower (measured: +1.8k instructions a request).
        self.last: tuple[str, bytes, int, bytes] = ("-", b"", -1, b"")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """As usual, and the client's address as the lines show it."""
        super().connection_made(transport)
        client = self.client
        if client is not None:
            self.last = (f"{client[0]}:{client[1]}", b"", -1, b"")

    async def logged(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app with ids echoed and a line logged per HTTP request."""
        app = self.server.app
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        t0 = monotonic()
        log = self.log
        rid = log.request_id(scope["headers"])
        status = 0
        size = 0
        done = False

        def line(code: int) -> None:
            method, path, query, version = (
                scope["method"],
                scope["path"],
                scope["query_string"],
                scope["http_version"],
            )
            who = self.last[0]
            key = (who, method, path, query, version)
            pre = log.prefixes.get(key) or log.prefix(key, who, method, path, query, version)
            log.add(pre, code, 0 if method == "HEAD" else size, t0, rid, self.loop)

        # Not a coroutine of its own: it hands back the server's send, one coroutine less per message.
        def send_with_id(message: Message) -> Awaitable[None]:
            nonlocal status, size, done
            kind = message["type"]
            if kind == "http.response.body":
                if not done:
                    size += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        done = True
                        line(status)  # before the send, which may start the next pipelined request
            elif kind == "http.response.start":
                status = message["status"]
                headers = message.get("headers") or []
                for name, _ in headers:
                    if len(name) == 12 and name.lower() == _ID_HEADER:
                        break
                else:
                    message = {**message, "headers": [*headers, (_ID_HEADER, rid)]}
            return send(message)

        try:
            await app(scope, receive, send_with_id)
        except Exception:
            if not done:  # the server answers 500 when nothing was sent, else cuts the response
                done = True
                line(status or 500)
            raise

    def stream_fields(self, call: APICall) -> Headers | None:
        """A stream's head echoes its request id (made now: the line is written when the stream ends)."""
        extra = call.extra = [(_ID_HEADER, self.log.own_id(call.rid))]
        return extra

    def _direct_prefix(self, c: APICall) -> Prefix:
        who = self.last[0]
        key = (who, c.target, c.http10)
        pre = self.log.prefixes.get(key)
        if pre is None:
            path, _, query = split_target(c.target)
            pre = self.log.prefix(key, who, "POST", path, query, "1.0" if c.http10 else "1.1")
        return pre

    def end_stream(self, c: APICall, whole: bool) -> None:
        """A streamed answer ended: logged (status 500 when it broke), then ended as usual."""
        extra, c.extra = c.extra, None
        rid = extra[0][1] if extra else self.log.own_id(c.rid)
        status = c.status if whole else 500
        self.log.add(self._direct_prefix(c), status, c.sent, c.t0, rid, self.loop)
        HTTPProtocol.end_stream(self, c, whole)

    def send_answer(self, c: APICall, answer: Answer | None) -> None:
        """A direct api answer: logged, with the request id among its headers (the JSON format's; text
        lines have ``text_answers``)."""
        if answer is not None and not c.disconnected:
            log = self.log
            rid = log.own_id(c.rid)
            status, ctype, out, more = answer
            log.add(self._direct_prefix(c), status, len(out), c.t0, rid, self.loop)
            header = (_ID_HEADER, rid)
            answer = (status, ctype, out, [header] if more is None else [*more, header])
        HTTPProtocol.send_answer(self, c, answer)

    def line_start(self, c: APICall, status: int, size: int) -> bytes:
        """A direct call's text line up to its duration; kept as ``last`` for a 200 on HTTP/1.1."""
        pre = cast(bytes, self._direct_prefix(c)) + status_size(status, size)
        if status == 200 and not c.http10:
            self.last = (self.last[0], c.target, size, pre)
        return pre


def text_answers(log: AccessLog) -> Callable[[LoggedProtocol, APICall, Answer | None], None]:
    """``LoggedProtocol.send_answer`` for text lines, with ``log``'s lists bound to it (closure cells read
    faster than the log's attributes: ``AccessLog.flush`` and ``new_id`` keep the same list objects)."""
    lines = log.lines
    lows = log.lows
    flush = log.flush

    def send_answer(self: LoggedProtocol, c: APICall, answer: Answer | None) -> None:
        """A direct api answer: logged, with the request id among its headers."""
        nonlocal lines
        if answer is None or c.disconnected:
            HTTPProtocol.send_answer(self, c, answer)
            return
        high = c.rid
        if high is None or _ID_OK.fullmatch(high) is None:
            try:  # ``AccessLog.next_low``, inlined but for a new batch (a ``try`` costs nothing until it fails)
                low = lows.pop()
            except IndexError:
                low = log.next_low()
            high = log.high
        else:
            low = b""
        status, ctype, out, more = answer
        size = len(out)
        last = self.last
        # A keep-alive client repeats its target, and its answers their status and size: the line up to
        # the duration, made once.
        if c.target == last[1] and size == last[2] and status == 200 and not c.http10:
            pre = last[3]
        else:
            pre = self.line_start(c, status, size)
        if not lines:
            self.loop.call_later(_FLUSH_AFTER, flush)
        # ``floor``, not ``int``: a plain builtin call, where ``int()`` is a type's (0.9k instructions).
        hundredths = floor((monotonic() - c.t0) * 100_000.0)
        lines += (pre, _MS[hundredths] if hundredths < 1000 else slow_ms(hundredths), high, low)
        server = self.server
        keep_alive = c.keep_alive and not server.draining
        prefix = (
            OK_PREFIX.get(ctype) if status == 200 and more is None and keep_alive and not c.http10 else None
        )
        if prefix is not None:
            # ``Calls.send_answer``'s prebuilt head with the id line in it: through ``api_head`` (as for
            # any answer with headers of its own) the id would cost three times as much.
            c.status = status
            c.finished = True
            c.sent = size
            length = _ID_LENGTHS[size] if size < 2048 else b"%d\r\nx-request-id: " % size
            data = b"".join((prefix, length, high, low, server.field_end, out))
            if self.out is None and not server.pass_open:  # ``emit``'s first case, inlined
                server.pass_open = True
                self.loop.call_soon(server.flush)
                self.transport.write(data)
            else:
                self.emit(data)
            self.response_complete(c, keep_alive)
            self.spare = c
            return
        header = (_ID_HEADER, high + low)
        HTTPProtocol.send_answer(self, c, (status, ctype, out, [header] if more is None else [*more, header]))

    return send_answer


def logged_class(
    base: Callable[[ServerState], HTTPProtocol], log: AccessLog
) -> Callable[[ServerState], HTTPProtocol]:
    """The connection class ``base`` (from ``auto.protocol_class``) with the access log ``log`` on."""
    name = "Logged" + getattr(base, "__name__", "Protocol")
    namespace: dict[str, object] = {"log": log}
    if not log.json:
        namespace["send_answer"] = text_answers(log)
    cls = type(name, (LoggedProtocol, cast(type, base)), namespace)
    return cast(Callable[[ServerState], HTTPProtocol], cls)
