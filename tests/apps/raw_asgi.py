"""Plain ASGI 3 apps (no framework) that exercise the server: body echo, streaming, misbehaviour, lifespan."""

from __future__ import annotations

import asyncio
import json
from typing import Any

events: dict[str, int] = {"disconnects": 0, "late_sends": 0}


async def _body(receive: Any, delay: float = 0.0) -> bytes:
    parts = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            raise ConnectionError("client left")
        parts.append(msg.get("body", b""))
        if delay:
            await asyncio.sleep(delay)
        if not msg.get("more_body"):
            return b"".join(parts)


async def _respond(send: Any, status: int, body: bytes, ctype: bytes = b"text/plain") -> None:
    headers = [(b"content-type", ctype), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _query(scope: dict[str, Any]) -> dict[str, str]:
    pairs = [p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p]
    return dict(pairs)


async def _lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            scope["state"]["started"] = True
            scope["state"]["shared"] = []
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Routes named for the behaviour they exercise."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    path = scope["path"]
    q = _query(scope)
    if path == "/echo":
        body = await _body(receive)
        await _respond(send, 200, body, b"application/octet-stream")
    elif path.startswith("/scope"):
        await _body(receive)
        info = {
            "method": scope["method"],
            "path": scope["path"],
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "http_version": scope["http_version"],
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
            "state": sorted(scope["state"]),
        }
        scope["state"]["mutated"] = True  # a shallow copy: the next request must not see this
        scope["state"]["shared"].append(1)
        await _respond(send, 200, json.dumps(info).encode(), b"application/json")
    elif path == "/slowread":
        body = await _body(receive, delay=0.002)
        await _respond(send, 200, b"%d" % len(body))
    elif path == "/stream":
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        for i in range(int(q.get("n", "3"))):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big":
        size = int(q.get("n", "1000000"))
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]}
        )
        block = b"x" * 65536
        left = size
        while left:
            piece = block[: min(left, len(block))]
            left -= len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": bool(left)})
    elif path == "/slow":
        await asyncio.sleep(float(q.get("s", "0.2")))
        await _respond(send, 200, path.encode() + b"?" + scope["query_string"])
    elif path == "/status":
        status = int(q.get("code", "200"))
        await send({"type": "http.response.start", "status": status, "headers": [(b"x-status", b"yes")]})
        await send({"type": "http.response.body", "body": b"should not be sent"})
    elif path == "/raise-before":
        raise RuntimeError("boom before start")
    elif path == "/raise-after":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        await asyncio.sleep(0.01)
        raise RuntimeError("boom after start")
    elif path == "/no-response":
        return
    elif path == "/short":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"12345"})
    elif path == "/long":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"12345"})
    elif path == "/bad-header":
        value = {"crlf": b"a\r\nx-injected: 1", "lf": b"a\nb", "nul": b"a\x00b"}[q.get("kind", "crlf")]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-test", value)]})
        await send({"type": "http.response.body", "body": b"nope"})
    elif path == "/wait-disconnect":
        await _body(receive)
        while (await receive())["type"] != "http.disconnect":
            pass
        events["disconnects"] += 1
        # Sending after the client left must be harmless.
        await _respond(send, 200, b"too late")
        events["late_sends"] += 1
    elif path == "/events":
        await _respond(send, 200, json.dumps(events).encode(), b"application/json")
    else:
        await _respond(send, 404, b"not found")


async def no_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app that refuses the lifespan scope: served anyway."""
    if scope["type"] != "http":
        raise ValueError("only http here")
    await _respond(send, 200, b"plain")


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app whose startup fails: the server must exit non-zero with the message."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _respond(send, 200, b"never")
