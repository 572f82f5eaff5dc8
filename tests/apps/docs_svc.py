"""A service for the docs page's browser tests: every kind of form field and every kind of output."""

from __future__ import annotations

import asyncio
import pathlib
import struct
import tempfile
import zlib
from collections.abc import AsyncGenerator
from typing import Annotated, Literal

import msgspec
from fastapi import FastAPI

import asgiserve

v1 = FastAPI()


@v1.get("/hello")
def hello() -> dict[str, str]:
    return {"hello": "from FastAPI"}


class Options(msgspec.Struct):
    temperature: float = 0.5
    stop: list[str] = []


def png(size: int) -> bytes:
    """A ``size`` x ``size`` red PNG."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * size for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    head = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", head) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


@asgiserve.service
@asgiserve.mount_asgi_app(v1, path="/v1")
class DocsDemo:
    """A demo of the docs page.

    Each api below gets a form."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    @asgiserve.api
    def classify(
        self,
        text: str,
        mode: Literal["fast", "careful"] = "fast",
        top: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3,
        shout: bool = False,
        options: Options | None = None,
    ) -> dict[str, object]:
        """Classify a text (the answer echoes the inputs)."""
        label = text.upper() if shout else text
        return {"label": label, "mode": mode, "top": top, "options": options}

    @asgiserve.api
    def echo(self, text: str = "hello") -> str:
        """Say it back."""
        return text

    @asgiserve.api
    async def generate(self, prompt: str = "Once", n: int = 3) -> AsyncGenerator[str, None]:
        """Stream tokens: the first at once, the rest after ``POST /release``."""
        yield f"{prompt}-first "
        await asyncio.wait_for(self.released.wait(), 20)
        for i in range(n):
            yield f"tok{i} "
        self.released.clear()

    @asgiserve.api
    async def release(self) -> str:
        """Let a waiting ``generate`` go on."""
        self.released.set()
        return "released"

    @asgiserve.api(media_type="text/event-stream")
    async def events(self, n: int = 2) -> AsyncGenerator[dict[str, int], None]:
        """Server-sent events."""
        for i in range(n):
            yield {"i": i}

    @asgiserve.api
    def upload(self, doc: pathlib.Path, note: str = "") -> dict[str, object]:
        """Read an uploaded file."""
        data = doc.read_bytes()
        return {"size": len(data), "head": data[:20].decode(errors="replace"), "note": note}

    @asgiserve.api
    def image(self, size: int = 8) -> pathlib.Path:
        """A red square, as a PNG file."""
        out = pathlib.Path(tempfile.mkdtemp()) / "square.png"
        out.write_bytes(png(size))
        return out

    @asgiserve.api
    def archive(self, size: int = 100) -> pathlib.Path:
        """A file to download."""
        out = pathlib.Path(tempfile.mkdtemp()) / "data.bin"
        out.write_bytes(bytes(range(256)) * (size // 256) + bytes(size % 256))
        return out
