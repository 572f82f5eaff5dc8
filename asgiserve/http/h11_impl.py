"""The pure-Python protocol (``--http h11``): each request head is parsed in one pass by ``heads.parse_head``.

The head grammar is h11's (request line and field lines), narrowed where h11 is more lenient than llhttp
(bare LF, obs-fold, control characters, repeated Content-Length, which h11 merges), so both parsers refuse
the same requests with the same status. Only the head is parsed here; the body framing is the shared wire
module's, and the response is written by the shared cycle.
"""

from __future__ import annotations

from .chunked import ChunkedDecoder
from .connection import HTTPProtocol
from .heads import check_fields_so_far, check_method_so_far, has_bad_eol, lf_line_as_crlf, parse_head
from .state import CLOSING, HEAD, ServerState
from .wire import CHUNKED, ProtocolError

__all__ = ["H11Protocol"]


class H11Protocol(HTTPProtocol):
    """An HTTP/1.1 connection whose request heads are parsed in Python (h11's grammar)."""

    def __init__(self, server: ServerState) -> None:
        super().__init__(server)
        self.buf = b""
        self.left = -1  # Content-Length bytes still to come; -1 when reading a head
        self.decoder: ChunkedDecoder | None = None

    def data_received(self, data: bytes) -> None:
        """Split the stream into heads and bodies (Content-Length or chunked)."""
        if self.phase >= CLOSING:
            if self.ws is not None:
                self.ws.feed(data)
            return
        buf = self.buf + data if self.buf else data
        self.buf = b""
        try:
            self._process(buf)
        except ProtocolError as exc:
            self.protocol_error(exc.status, str(exc))

    def _process(self, buf: bytes) -> None:
        while buf and self.phase < CLOSING:
            if self.decoder is not None:
                pieces, buf = self.decoder.feed(buf)
                for piece in pieces:
                    self.on_body(piece)
                if not self.decoder.done:
                    return
                self.decoder = None
                self.on_message_complete()
            elif self.left > 0:
                take = min(self.left, len(buf))
                self.on_body(buf[:take] if take < len(buf) else buf)
                buf = buf[take:]
                self.left -= take
                if self.left == 0:
                    self.left = -1
                    self.on_message_complete()
            elif self.phase != HEAD and buf[:1] in (b"\r", b"\n"):
                buf = buf.lstrip(b"\r\n")  # RFC 9112 2.2: empty lines before a request line are ignored
            else:
                rest = self._head(buf)
                if rest is None:
                    self.buf = buf
                    return
                buf = rest
                if self.ws is not None:  # a websocket: what follows the handshake request is its frames
                    if buf:
                        self.ws.feed(buf)
                    return

    def _head(self, buf: bytes) -> bytes | None:
        """Parse one request head from ``buf``; return the bytes after it, or None until it is complete."""
        if self.phase != HEAD:
            self.begin_head()
        end = buf.find(b"\r\n\r\n")
        if end < 0 and b"\n" in buf:
            buf = lf_line_as_crlf(buf)
            end = buf.find(b"\r\n\r\n")
        server = self.server
        if end < 0:
            # Only head bytes so far: refuse a bare LF or lone CR now rather than wait for more.
            if has_bad_eol(buf):
                raise ProtocolError("Invalid line ending (bare LF or lone CR)")
            check_method_so_far(buf)
            if b"\r\n" in buf:
                check_fields_so_far(buf)
            if b"\r\n" not in buf and _target_length(buf) > server.max_url:
                raise ProtocolError("Request target too long", 414)
            if len(buf) > server.max_header_size:
                raise ProtocolError("Request header fields too large", 431)
            return None
        head, rest = buf[: end + 4], buf[end + 4 :]
        line_end = head.find(b"\r\n")
        if _target_length(head[:line_end]) > server.max_url:
            raise ProtocolError("Request target too long", 414)
        if len(head) - line_end > server.max_header_size:
            raise ProtocolError("Request header fields too large", 431)
        method, target, version, headers = parse_head(head)
        length = self.on_request(method, target, version, headers)
        if length == CHUNKED:
            self.decoder = ChunkedDecoder()
        elif length > 0:
            self.left = length
        else:
            self.on_message_complete()
        return rest


def _target_length(line: bytes) -> int:
    """The length of the target in a request line, or in as much of it as has arrived (the limit is the
    target's, as llhttp counts it); a line without a space counts whole."""
    start = line.find(b" ")
    if start < 0:
        return len(line)
    begin = len(line) - len(line[start:].lstrip(b" "))  # spaces after the method (llhttp allows several)
    end = line.find(b" ", begin)
    return (end if end >= 0 else len(line)) - begin
