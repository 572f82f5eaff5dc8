"""File outputs: an api returning a ``Path`` answers with the file, streamed from disk off the event loop.

The file is opened before the response starts, so that a missing file is an ordinary 500; its content type
is the api's declared media type, else guessed from the name; ``Content-Disposition`` carries the name, with
the RFC 8187 UTF-8 form when it is not ASCII.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import pathlib
import urllib.parse
from typing import BinaryIO, NamedTuple

from .codec import BYTES_CT
from .types import Headers, Send

__all__ = ["FileOut", "open_file", "send_file"]

_FILE_CHUNK = 256 * 1024


class FileOut(NamedTuple):
    """A file output, opened and ready to stream from disk."""

    fh: BinaryIO
    size: int
    ctype: bytes
    extra: Headers

    async def read_all(self) -> bytes:
        """The whole file (for callers that need the body in one piece), closing it."""
        try:
            return await asyncio.get_running_loop().run_in_executor(None, self.fh.read)
        finally:
            self.fh.close()


def disposition(name: str) -> bytes:
    """A Content-Disposition header value: an ASCII fallback plus the RFC 8187 UTF-8 form when needed."""
    ascii_name = name.encode("ascii", "replace").decode().replace('"', "").replace("\\", "")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{urllib.parse.quote(name)}"
    return value.encode("latin-1")


async def open_file(path: pathlib.Path, declared: bytes | None) -> FileOut:
    """Open ``path`` for an answer; ``declared`` is the api's own media type, if it has one."""
    fh = await asyncio.get_running_loop().run_in_executor(None, path.open, "rb")
    size = os.fstat(fh.fileno()).st_size
    if declared is not None:
        ctype = declared
    else:
        guessed = mimetypes.guess_type(path.name)[0]
        ctype = guessed.encode() if guessed else BYTES_CT
    return FileOut(fh, size, ctype, [(b"content-disposition", disposition(path.name))])


async def send_file(send: Send, fo: FileOut, status: int = 200) -> int:
    """Stream a file output from disk in chunks (reads off the event loop); returns the status sent."""
    loop = asyncio.get_running_loop()
    fh, size = fo.fh, fo.size
    headers = [(b"content-type", fo.ctype), (b"content-length", b"%d" % size), *fo.extra]
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if not size:
            await send({"type": "http.response.body", "body": b""})
        left = size
        while left > 0:
            chunk = await loop.run_in_executor(None, fh.read, min(_FILE_CHUNK, left))
            if not chunk:  # the file shrank while being sent: end the response abnormally
                raise RuntimeError(f"file output {fh.name} was truncated while being sent")
            left -= len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": left > 0})
    finally:
        fh.close()
    return status
