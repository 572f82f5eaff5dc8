"""Small ASGI send helpers with headers prepared once: whole answers and JSON error bodies."""

from __future__ import annotations

import msgspec

from .codec import JSON_CT
from .types import Answer, Headers, Send

__all__ = ["error_body", "send_answer", "send_body", "send_error"]

_encode = msgspec.json.encode


def error_body(message: str, detail: list[object] | None = None) -> bytes:
    """The JSON error body: ``{"error": message}`` plus ``detail`` when given."""
    if detail is None:
        return _encode({"error": message})
    return _encode({"error": message, "detail": detail})


async def send_body(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: Headers | None = None,
) -> None:
    """Send a complete response with Content-Length."""
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    if extra:
        headers.extend(extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_answer(send: Send, answer: Answer) -> int:
    """Send a whole ``Answer`` and return its status."""
    status, ctype, body, extra = answer
    await send_body(send, status, body, ctype, extra)
    return status


async def send_error(
    send: Send,
    status: int,
    message: str,
    detail: list[object] | None = None,
    extra: Headers | None = None,
) -> None:
    """Send a JSON error response."""
    await send_body(send, status, error_body(message, detail), JSON_CT, extra)
