"""The httptools (llhttp) protocol: parser callbacks translated into the shared cycle's calls.

llhttp is strict by default (CRLF only, no obs-fold, no whitespace before colons, Content-Length and
Transfer-Encoding rules), so most hostile input is refused inside ``feed_data``; the size limits are
counted here as the callbacks arrive, and the framing rules both parsers share run in ``on_request``.
"""

from __future__ import annotations

import httptools

from .connection import HTTPProtocol
from .state import CLOSING, HEAD, IDLE, ServerState
from .wire import ProtocolError

__all__ = ["HttpToolsProtocol"]


class HttpToolsProtocol(HTTPProtocol):
    """An HTTP/1.1 connection parsed by httptools."""

    def __init__(self, server: ServerState) -> None:
        super().__init__(server)
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] | None = None  # the fields of the head in progress
        self.head_size = 0  # the head in progress, counted header by header (when ``count_head``)
        self.raw_head = 0  # the head in progress, counted in whole chunks (bytes of earlier reads)
        self.count_head = False
        self.heads_done = False  # a head was completed in this read

    def data_received(self, data: bytes) -> None:
        """Feed llhttp; its errors become the shared refusal (400 unless a limit says otherwise)."""
        phase = self.phase
        if phase >= CLOSING:
            if self.ws is not None:
                self.ws.feed(data)
            return
        server = self.server
        body_before = 0
        if phase == IDLE:
            self.begin_head()
            was_in_head = True
        else:
            was_in_head = phase == HEAD
            if not was_in_head and self.parsing is not None:
                body_before = self.parsing.received  # this read may start with the rest of a body
        # Headers are only measured one by one when this chunk could take the head over the limit.
        raw_head = self.raw_head
        count = self.count_head = raw_head + len(data) > server.max_header_size
        if count and raw_head > self.head_size:
            self.head_size = raw_head
        self.heads_done = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self.ws is not None:  # a websocket: what follows the handshake request is its frames
                rest = data[int(exc.args[0]) :]
                if rest:
                    self.ws.feed(rest)
                return
            # CONNECT or another upgrade: the request itself is answered; the rest is not HTTP.
            self.stop_reading()
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                self.protocol_error(cause.status, str(cause))
            else:
                self.protocol_error(400, f"Invalid HTTP request: {exc}")
            return
        if self.phase == HEAD:
            # A head is unfinished at the end of this read (llhttp buffers an unfinished header itself):
            # count the bytes it has so far.
            p = self.parsing
            if self.heads_done:
                # After other requests: what follows the last blank line, less the body of the last one
                # (all of which came in this read, after its head).
                body = p.received if p is not None else 0
                self.raw_head = max(len(data) - max(data.rfind(b"\r\n\r\n") + 4, 0) - body, 0)
            elif was_in_head:
                self.raw_head += len(data)  # the whole read was head bytes
            else:  # the rest of a body, then this head
                self.raw_head = len(data) - ((p.received if p is not None else 0) - body_before)
            if self.raw_head > self.server.max_header_size:
                self.protocol_error(431, "Request header fields too large")

    # -- llhttp callbacks ----------------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        """The request target (possibly in pieces); every request has one, so it also marks the start.

        (No ``on_message_begin``: a callback from llhttp costs as much as the work it would do, which
        ``on_headers_complete`` and the first piece of the next target do instead.)
        """
        if self.url:
            url = self.url + url
        else:  # the first piece: a new head, whose fields go to a new list
            self.headers = []
            if self.phase < CLOSING:
                self.phase = HEAD
        self.url = url
        if len(url) > self.server.max_url:
            raise ProtocolError("Request target too long", 414)

    def on_header(self, name: bytes, value: bytes) -> None:
        """One header field; names are lowercased and trailing whitespace dropped, as h11 does."""
        headers = self.headers
        if headers is None:
            return  # a chunked trailer (no head in progress): read and dropped
        if self.count_head:
            size = self.head_size + len(name) + len(value) + 4
            self.head_size = size
            if size > self.server.max_header_size:
                raise ProtocolError("Request header fields too large", 431)
        headers.append((name.lower(), value.rstrip(b" \t")))

    def on_headers_complete(self) -> None:
        """The head is complete: hand it to the shared connection."""
        parser = self.parser
        url, headers = self.url, self.headers
        self.url = b""
        self.headers = None
        self.raw_head = self.head_size = 0
        self.heads_done = True
        self.on_request(parser.get_method(), url, parser.get_http_version(), headers)  # type: ignore[arg-type]
