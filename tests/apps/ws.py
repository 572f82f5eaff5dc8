"""A service with a mounted Starlette app speaking WebSocket: echo, refusals, crashes, server closes."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import asgiserve

disconnects: list[int] = []  # close codes the app saw, newest last


async def echo(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="chat" if "chat" in offered else None)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                disconnects.append(message["code"])
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect as exc:
        disconnects.append(exc.code)


async def refuse(websocket: WebSocket) -> None:
    await websocket.close(code=1008)  # before accepting: the handshake is answered 403


async def crash(websocket: WebSocket) -> None:
    raise RuntimeError("no socket for you")


async def bye(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("bye soon")
    await websocket.close(code=4001, reason="bye")


async def wait(websocket: WebSocket) -> None:
    """Accepts, then waits for the client (or the server's shutdown) to end it."""
    await websocket.accept()
    message = await websocket.receive()
    while message["type"] != "websocket.disconnect":
        message = await websocket.receive()
    disconnects.append(message["code"])


sockets = Starlette(
    routes=[
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/refuse", refuse),
        WebSocketRoute("/crash", crash),
        WebSocketRoute("/bye", bye),
        WebSocketRoute("/wait", wait),
    ]
)


@asgiserve.service
@asgiserve.mount_asgi_app(sockets, path="/ws")
class Sockets:
    @asgiserve.api
    async def seen(self) -> list[int]:
        """The close codes the websocket app has seen so far."""
        return disconnects


app = asgiserve.to_asgi(Sockets)
token_app = asgiserve.to_asgi(Sockets, api_token="s3cret")
