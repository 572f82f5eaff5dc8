"""Raw ASGI peer: msgspec in and out, no framework; what a hand-written app on uvicorn or granian does."""

from __future__ import annotations

from typing import Any

import msgspec
from workload import HELLO_RESPONSE


class PredictIn(msgspec.Struct):
    """The predict input."""

    text: str


class Prediction(msgspec.Struct):
    """The predict output."""

    result: str
    length: int


_decode = msgspec.json.Decoder(PredictIn).decode
_encode = msgspec.json.Encoder().encode
_JSON = (b"content-type", b"application/json")
_HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [_JSON, (b"content-length", str(len(HELLO_RESPONSE)).encode())],
}
_HELLO_BODY = {"type": "http.response.body", "body": HELLO_RESPONSE}
_NOT_FOUND = b'{"error":"not found"}'


async def _body(receive: Any) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    parts = [body]
    while message.get("more_body"):
        message = await receive()
        parts.append(message.get("body", b""))
    return b"".join(parts)


async def _send(send: Any, status: int, body: bytes) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI 3 entry point: POST /predict, GET /hello."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/predict" and scope["method"] == "POST":
        try:
            req = _decode(await _body(receive))
        except msgspec.ValidationError as exc:
            await _send(send, 400, _encode({"error": str(exc)}))
            return
        await _send(send, 200, _encode(Prediction(result=req.text.upper(), length=len(req.text))))
    elif path == "/hello":
        await send(_HELLO_START)
        await send(_HELLO_BODY)
    else:
        await _send(send, 404, _NOT_FOUND)
