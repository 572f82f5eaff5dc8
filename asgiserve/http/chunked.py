"""Strict incremental decoding of chunked request bodies (RFC 9112 section 7.1), sans-IO.

Used where the parser does not decode bodies itself (the h11 protocol reads only heads with h11). Chunk
sizes are 1-16 hex digits with optional extensions, every chunk ends in CRLF, trailers are checked as
header fields and dropped; anything else is a ``ProtocolError`` (400).
"""

from __future__ import annotations

import re

from .wire import TCHAR, VALUE_BYTE, ProtocolError, is_field

__all__ = ["ChunkedDecoder"]

_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(;[^\r\n]*)?")
_TRAILER_BEGUN = re.compile(rb"(?:" + TCHAR + rb"+(?::" + VALUE_BYTE + rb"*\r?)?|\r)?")
# A size line as far as it has come: an extension only after at least one digit, as llhttp reads it.
_SIZE_BEGUN = re.compile(rb"(?:[0-9A-Fa-f]{1,16}(?:;[^\r\n]*)?\r?)?")


class ChunkedDecoder:
    """Incremental strict decoder of a chunked body (RFC 9112 7.1); trailers are read and dropped."""

    __slots__ = ("_buf", "_left", "_state", "done")

    def __init__(self) -> None:
        self._buf = b""
        self._left = 0
        self._state = 0  # 0 size line, 1 data, 2 CRLF after data, 3 trailers
        self.done = False

    def feed(self, data: bytes) -> tuple[list[bytes], bytes]:
        """Decode ``data``: return the body pieces and the bytes left over after the final chunk."""
        buf = self._buf + data if self._buf else data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        while pos < n and not self.done:
            state = self._state
            if state == 1:
                take = min(self._left, n - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._left -= take
                if self._left == 0:
                    self._state = 2
                continue
            if state == 2:
                if n - pos < 2:
                    if buf[pos] != 13:  # refused at the first wrong byte, as llhttp does
                        raise ProtocolError("Chunk data not followed by CRLF")
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("Chunk data not followed by CRLF")
                pos += 2
                self._state = 0
                continue
            end = buf.find(b"\r\n", pos)
            if end < 0:
                if n - pos > 4096:
                    raise ProtocolError("Chunk size line too long")
                # Refused at the first wrong byte, as llhttp refuses it, not at the line's end.
                if state == 0 and _SIZE_BEGUN.fullmatch(buf, pos) is None:
                    raise ProtocolError("Invalid chunk size")
                if state == 3 and _TRAILER_BEGUN.fullmatch(buf, pos) is None:
                    raise ProtocolError("Invalid trailer line")
                break
            line = buf[pos:end]
            pos = end + 2
            if state == 0:
                m = _CHUNK_SIZE.fullmatch(line)
                if m is None or b"\n" in line or b"\r" in line:
                    raise ProtocolError("Invalid chunk size")
                size = int(m.group(1), 16)
                if size == 0:
                    self._state = 3
                else:
                    self._left = size
                    self._state = 1
            elif line:
                if not is_field(line):
                    raise ProtocolError("Invalid trailer line")
            else:
                self.done = True
        rest = buf[pos:]
        if self.done:
            self._buf = b""
            return out, rest
        self._buf = rest
        if len(rest) > 8192:
            raise ProtocolError("Chunk framing too long")
        return out, b""
