"""A service exercising the clients: JSON, text, files (in, out, by URL), bytes, streams and crashes."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import tempfile
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import asgiserve

OUT_DIR = pathlib.Path(tempfile.gettempdir()) / f"asgiserve-test-out-{os.getpid()}"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
BIG_BLOCK, BIG_COUNT = 64 * 1024, 48  # 3 MiB served at /static/big.bin


async def static_files(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny ASGI app serving fixed files, the source of file inputs given as URLs."""
    if scope["type"] != "http":
        return
    path = scope["path"][len(scope.get("root_path", "")) :]
    if path == "/redirect":
        headers = [(b"location", b"/static/1.png"), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    if path == "/big.bin":  # in many body messages, as a large file would come
        headers = [(b"content-length", b"%d" % (BIG_BLOCK * BIG_COUNT))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        block = bytes(range(256)) * (BIG_BLOCK // 256)
        for _ in range(BIG_COUNT):
            await send({"type": "http.response.body", "body": block, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    if path not in ("/1.png", "/with space.png", "/caf\u00e9.png"):
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"no"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"image/png")]})
    await send({"type": "http.response.body", "body": PNG})


@asgiserve.service(traffic={"timeout": 20})
@asgiserve.mount_asgi_app(static_files, path="/static")
class ClientSvc:
    @asgiserve.api
    def summarize(self, text: str) -> str:
        return text.split(".")[0] + "."

    @asgiserve.api
    def predict(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"received": data, "keys": sorted(data)}

    @asgiserve.api
    async def add(self, a: int, b: int = 0) -> int:
        await asyncio.sleep(0.001 * (a % 5))
        return a + b

    @asgiserve.api
    def generate(self, img: pathlib.Path, scale: int = 1) -> pathlib.Path:
        data = img.read_bytes()
        OUT_DIR.mkdir(exist_ok=True)
        out = OUT_DIR / f"out-{img.stem}.png"
        out.write_bytes(data * scale)
        return out

    @asgiserve.api
    def inspect_upload(self, doc: pathlib.Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"name": doc.name, "size": doc.stat().st_size, "path": str(doc), "meta": meta}

    @asgiserve.api
    def join_uploads(self, docs: list[pathlib.Path], sep: str = "|") -> str:
        return sep.join(d.read_text() for d in docs)

    @asgiserve.api
    def blob_size(self, blob: bytes, label: str = "") -> dict[str, Any]:
        return {"size": len(blob), "label": label, "head": list(blob[:4])}

    @asgiserve.api
    def big_file(self, megabytes: int = 3) -> pathlib.Path:
        OUT_DIR.mkdir(exist_ok=True)
        out = OUT_DIR / "big.bin"
        out.write_bytes(bytes(range(256)) * (4096 * megabytes))
        return out

    @asgiserve.api
    def named_file(self, name: str, text: str = "") -> pathlib.Path:
        OUT_DIR.mkdir(exist_ok=True)
        out = OUT_DIR / name
        out.write_text(text)
        return out

    @asgiserve.api
    def form_fields(
        self,
        tags: list[str] | None = None,
        nums: list[int] | None = None,
        note: str | None = None,
        either: int | str = 0,
        count: int = 0,
    ) -> dict[str, Any]:
        return {"tags": tags, "nums": nums, "note": note, "either": either, "count": count}

    @asgiserve.api
    def stream_data(self, n: int = 3) -> Generator[str, None, None]:
        for i in range(n):
            yield f"chunk{i};"

    @asgiserve.api
    async def astream(self, n: int = 3, delay: float = 0.0) -> AsyncGenerator[dict[str, int], None]:
        for i in range(n):
            yield {"i": i}
            await asyncio.sleep(delay)

    @asgiserve.api
    async def slow_stream(self, n: int = 1000, delay: float = 0.01) -> AsyncGenerator[str, None]:
        for i in range(n):
            yield f"{i} "
            await asyncio.sleep(delay)

    @asgiserve.api
    async def crash_stream(self) -> AsyncGenerator[str, None]:
        yield "first "
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
        yield "never"

    @asgiserve.api
    def fail(self, code: int = 0) -> str:
        raise ValueError("always fails")

    @asgiserve.api
    def sleep(self, seconds: float = 0.0) -> str:
        time.sleep(seconds)
        return "slept"


app = asgiserve.to_asgi(ClientSvc)
app_token = asgiserve.to_asgi(ClientSvc, api_token="s3cret")


class CountConnections:
    """ASGI middleware counting distinct client connections (by peer address), served at GET /_conns."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.peers: set[Any] = set()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/_conns":
                body = str(len(self.peers)).encode()
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
                return
            self.peers.add(tuple(scope.get("client") or ()))
        await self.inner(scope, receive, send)


counted_app = CountConnections(app)
