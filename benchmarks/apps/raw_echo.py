"""The array benchmark's floor: a bare uvloop protocol that answers each request with its own body.

No parsing beyond the head's Content-Length, no decoding: the cost of moving the bytes there and back.

    python raw_echo.py PORT
"""

from __future__ import annotations

import asyncio
import sys

import uvloop


class Echo(asyncio.Protocol):
    """Reads a head and ``Content-Length`` bytes, writes them back as a 200."""

    def __init__(self) -> None:
        self.head = b""
        self.parts: list[bytes] = []
        self.have = 0
        self.need = -1  # the body's length once the head is read
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        """Answer every whole request received; the head is scanned once, the body only counted."""
        while data:
            if self.need < 0:
                self.head += data
                end = self.head.find(b"\r\n\r\n")
                if end < 0:
                    return
                data = self.head[end + 4 :]
                self.need = 0
                for line in self.head[:end].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        self.need = int(value)
                self.head = b""
            take = self.need - self.have
            self.parts.append(data[:take])
            self.have += min(take, len(data))
            data = data[take:]
            if self.have < self.need:
                return
            body = b"".join(self.parts)
            self.parts, self.have, self.need = [], 0, -1
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-npy\r\ncontent-length: %d\r\n\r\n"
                % len(body)
            )
            self.transport.write(body)


async def main(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until killed."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
