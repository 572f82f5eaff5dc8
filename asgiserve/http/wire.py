"""Sans-IO HTTP/1.1 rules shared by both parsers: request verdicts and framing, response heads.

Nothing here does I/O or imports asyncio. The protocols feed parsed request heads in and get either the
framing decision (body length or chunked, keep-alive, 100-continue) or a ``ProtocolError`` carrying the
status to answer (400, 413, 414, 431, 501) before the connection is closed. Both parsers go through the
same checks, so httptools and h11 give the same verdict on hostile input (RFC 9112 section 6.3 for framing,
section 5 for field syntax). Request heads for the pure-Python parser are read in ``heads.py``.
"""

from __future__ import annotations

import re
from http import HTTPStatus

__all__ = [
    "CHUNKED",
    "CONTINUE",
    "LAST_CHUNK",
    "LENGTHS",
    "METHODS",
    "OK_PREFIX",
    "STATUS_LINES",
    "ProtocolError",
    "ResponseHead",
    "api_head",
    "check_transfer_encoding",
    "encode_chunk",
    "error_response",
    "is_field",
    "request_framing",
    "response_head",
    "status_line",
]

CHUNKED = -1  # framing: chunked body
NO_BODY = 0


class ProtocolError(Exception):
    """A request the server refuses; ``status`` is what to answer before closing."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n`` (any status 100-999)."""
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    return b"HTTP/1.1 %d %s\r\n" % (status, reason)


STATUS_LINES: dict[int, bytes] = {int(s): status_line(int(s)) for s in HTTPStatus}

# The methods llhttp knows; anything else is refused by both parsers alike.
METHODS: dict[bytes, str] = {
    m.encode(): m
    for m in [
        "DELETE",
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "CONNECT",
        "OPTIONS",
        "TRACE",
        "COPY",
        "LOCK",
        "MKCOL",
        "MOVE",
        "PROPFIND",
        "PROPPATCH",
        "SEARCH",
        "UNLOCK",
        "BIND",
        "REBIND",
        "UNBIND",
        "ACL",
        "REPORT",
        "MKACTIVITY",
        "CHECKOUT",
        "MERGE",
        "M-SEARCH",
        "NOTIFY",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "PATCH",
        "PURGE",
        "MKCALENDAR",
        "LINK",
        "UNLINK",
        "SOURCE",
        "QUERY",
    ]
}

# Header names the framing decision looks at (and the request id, which the access log echoes: picked up
# in the same pass over the headers); every other header is passed through untouched.
_CL, _TE, _CONN, _EXPECT, _HOST, _UPGRADE, _RID = range(7)
_SPECIAL = {
    b"content-length": _CL,
    b"transfer-encoding": _TE,
    b"connection": _CONN,
    b"expect": _EXPECT,
    b"host": _HOST,
    b"upgrade": _UPGRADE,
    b"x-request-id": _RID,
}
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_MAX_CL_DIGITS = 18  # below 2**63, so int() never grows past a machine word
_CL_VALUES: dict[bytes, int] = {}  # valid Content-Length values seen, parsed


def request_framing(
    method: bytes, version: str, headers: list[tuple[bytes, bytes]], max_body: int
) -> tuple[int, bool, bool, bool, bytes | None]:
    """Decide ``(length or CHUNKED, keep_alive, expect_100, upgrade, request_id)`` for a parsed request
    head; ``request_id`` is the first ``X-Request-ID`` value, or None.

    ``headers`` have lowercase names. Raises ``ProtocolError`` for anything a smuggler could use: both
    Content-Length and Transfer-Encoding, a repeated or malformed Content-Length, a Transfer-Encoding other
    than one final ``chunked``, Transfer-Encoding on HTTP/1.0, a missing or repeated Host on HTTP/1.1.
    """
    if version == "1.1":
        keep_alive = True
    elif version == "1.0":
        keep_alive = False
    else:
        raise ProtocolError(f"Unsupported HTTP version {version!r}")
    length = NO_BODY
    cl: bytes | None = None
    te: bytes | None = None
    rid: bytes | None = None
    hosts = 0
    expect = upgrade = False
    for name, value in headers:
        kind = _SPECIAL.get(name)
        if kind is None:
            continue
        if kind == _HOST:
            hosts += 1
        elif kind == _CL:
            if cl is not None:
                raise ProtocolError("Repeated Content-Length")
            cl = value
        elif kind == _TE:
            if te is not None:
                raise ProtocolError("Repeated Transfer-Encoding")
            te = value
        elif kind == _CONN:
            for token in value.lower().split(b","):
                token = token.strip()
                if token == b"close":
                    keep_alive = False
                elif token == b"keep-alive" and version == "1.0":
                    keep_alive = True
                elif token == b"upgrade":
                    upgrade = True
        elif kind == _EXPECT:
            expect = value.lower() == b"100-continue" and version == "1.1"
        elif kind == _RID and rid is None:
            rid = value
    if hosts != 1 and version == "1.1":
        raise ProtocolError("HTTP/1.1 requests need exactly one Host header")
    if te is not None:
        if cl is not None:
            raise ProtocolError("Both Content-Length and Transfer-Encoding")
        if version == "1.0":
            raise ProtocolError("Transfer-Encoding on an HTTP/1.0 request")
        check_transfer_encoding(te)
        length = CHUNKED
    elif cl is not None:
        length = _CL_VALUES.get(cl, -1)
        if length < 0:
            if len(cl) > _MAX_CL_DIGITS or not cl.isdigit() or not cl.isascii():
                raise ProtocolError("Malformed Content-Length")
            length = int(cl)  # int() of bytes costs as much as the rest of this function: cache it
            if len(_CL_VALUES) < 4096:
                _CL_VALUES[cl] = length
        if length > max_body:
            raise ProtocolError(f"Request body over the {max_body} byte limit", 413)
    if (upgrade and any(n == b"upgrade" for n, _ in headers)) or method == b"CONNECT":
        # Tunnels and protocol switches are not served: answer over HTTP, then close.
        keep_alive = False
        upgrade = True
    return length, keep_alive, expect, upgrade, rid


def check_transfer_encoding(value: bytes) -> None:
    """Accept only a single final ``chunked`` (RFC 9112 6.3); other codings are 501, malformed lists 400."""
    codings = [c.strip(b" \t").lower() for c in value.split(b",")]
    if not all(_TOKEN.fullmatch(c) for c in codings):
        raise ProtocolError("Malformed Transfer-Encoding")
    if codings.count(b"chunked") != 1 or codings[-1] != b"chunked":
        # Without a final chunked the body length cannot be known.
        raise ProtocolError("Transfer-Encoding must end with a single chunked")
    if len(codings) > 1:
        raise ProtocolError("Only Transfer-Encoding: chunked is supported", 501)


# Field lines (RFC 9112 5): ``name ":" OWS value OWS``, a token name, no control character but HTAB.
TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
VALUE_BYTE = rb"[^\x00-\x08\x0a-\x1f\x7f]"  # HTAB, SP, visible ASCII, obs-text
FIELD_LINE = re.compile(rb"(" + TCHAR + rb"+):[ \t]*(" + VALUE_BYTE + rb"*?)[ \t]*")

OK_PREFIX: dict[bytes, bytes] = {}  # content type -> head of a 200 up to its Content-Length value
LENGTHS = [b"%d\r\n" % n for n in range(2048)]  # Content-Length values, rendered once


def api_head(
    status: int,
    ctype: bytes,
    length: int,
    extra: list[tuple[bytes, bytes]] | None,
    defaults: bytes,
    keep_alive: bool,
    http10: bool,
) -> bytes:
    """The head of a response that asgiserve built itself (its own, trusted header values), with a
    Content-Length: nothing to validate, so no scan of the result."""
    prefix = STATUS_LINES[status] + b"content-type: " + ctype + b"\r\ncontent-length: "
    if status == 200 and len(OK_PREFIX) < 256:  # api content types are few; bound the cache all the same
        OK_PREFIX[ctype] = prefix
    if keep_alive and not http10:
        if extra is None:
            return b"%s%d\r\n%s\r\n" % (prefix, length, defaults)
        if len(extra) == 1:  # one header of its own (a request id, Retry-After): one format, no join
            return b"%s%d\r\n%s: %s\r\n%s\r\n" % (prefix, length, extra[0][0], extra[0][1], defaults)
    head = b"%s%d\r\n" % (prefix, length)
    if extra:
        head += b"".join(name + b": " + value + b"\r\n" for name, value in extra)
    if not keep_alive:
        head += b"connection: close\r\n"
    elif http10:
        head += b"connection: keep-alive\r\n"
    return head + defaults + b"\r\n"


class ResponseHead:
    """A response head ready to write, with the framing chosen for its body."""

    __slots__ = ("chunked", "data", "keep_alive", "length", "no_body")

    def __init__(self, data: bytes, length: int, chunked: bool, keep_alive: bool, no_body: bool) -> None:
        self.data = data
        self.length = length  # declared Content-Length, -1 when none
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.no_body = no_body  # HEAD, 1xx, 204 and 304 carry no body (RFC 9110 6.4.1)


def response_head(
    status: int,
    headers: object,
    defaults: bytes,
    keep_alive: bool,
    http10: bool,
    is_head: bool,
    body_len: int,
) -> ResponseHead:
    """Build the head for an ASGI ``http.response.start``; ``body_len`` is -1 when the body is still coming.

    Raises ``ValueError`` for a header that could split the response (CR, LF or NUL) or a bad
    Content-Length, so the server answers 500 instead of writing it.
    """
    line = STATUS_LINES.get(status)
    if line is None:
        if type(status) is not int or not 100 <= status <= 999:
            raise ValueError(f"invalid status {status!r}")
        line = status_line(status)
    parts = [line]
    length = -1
    chunked = False
    own_defaults = False
    lines = 2  # the status line and the blank line; every header adds one
    for name, value in headers:  # type: ignore[attr-defined]
        lname = name.lower()
        if lname not in _GOOD_NAMES and not _name_ok(lname):
            raise ValueError(f"refusing response header name {bytes(name)!r}")
        if lname in _FRAMING:
            if lname == b"content-length":
                if not value.isdigit():
                    raise ValueError(f"invalid Content-Length {bytes(value)!r}")
                length = int(value)
            elif lname == b"transfer-encoding":
                # The server does the chunk coding itself; the app's header is replaced by ours.
                chunked = True
                continue
            elif lname == b"connection":
                if b"close" in value.lower():
                    keep_alive = False
                continue
            else:
                own_defaults = True
        parts += (name, b": ", value, b"\r\n")
        lines += 1
    no_body = is_head or status < 200 or status == 204 or status == 304
    if status < 200 or status == 204 or status == 304:
        chunked = False
    elif chunked:
        length = -1
        if http10:
            chunked = False
            keep_alive = False
        else:
            parts.append(b"transfer-encoding: chunked\r\n")
            lines += 1
    elif length < 0 and not is_head:
        if body_len >= 0:
            length = body_len
            parts += (b"content-length: ", b"%d" % body_len, b"\r\n")
            lines += 1
        elif http10:
            keep_alive = False  # the body ends when the connection does
        else:
            chunked = True
            parts.append(b"transfer-encoding: chunked\r\n")
            lines += 1
    if not keep_alive:
        parts.append(b"connection: close\r\n")
        lines += 1
    elif http10:
        parts.append(b"connection: keep-alive\r\n")
        lines += 1
    if own_defaults:
        defaults = _drop_defaults(defaults, parts)
    parts.append(defaults)
    parts.append(b"\r\n")
    data = b"".join(parts)
    # A CR, LF or NUL inside a value would split the response: the line count gives it away in one scan.
    lines += defaults.count(b"\n")
    if data.count(b"\n") != lines or data.count(b"\r") != lines or b"\0" in data:
        raise ValueError("refusing a response header value holding CR, LF or NUL")
    return ResponseHead(data, length, chunked, keep_alive, no_body)


_FRAMING = frozenset([b"content-length", b"transfer-encoding", b"connection", b"date", b"server"])
_GOOD_NAMES: set[bytes] = {
    b"content-type",
    b"content-length",
    b"content-disposition",
    b"retry-after",
    b"allow",
}
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")


def _name_ok(lname: bytes) -> bool:
    if _NAME.fullmatch(lname) is None:
        return False
    if len(_GOOD_NAMES) < 512:
        _GOOD_NAMES.add(lname)
    return True


def _drop_defaults(defaults: bytes, parts: list[bytes]) -> bytes:
    """The default headers minus those (date, server) the app set itself."""
    names = {p.lower() for p in parts[1::4]}
    keep = [line for line in defaults.split(b"\r\n") if line and line.split(b":", 1)[0] not in names]
    return b"".join(line + b"\r\n" for line in keep)


def error_response(status: int, message: str, defaults: bytes) -> bytes:
    """A complete JSON error response that closes the connection."""
    body = b'{"error":"%s"}' % message.replace("\\", "\\\\").replace('"', '\\"').encode("ascii", "replace")
    return b"".join(
        (
            STATUS_LINES.get(status) or status_line(status),
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n" % len(body),
            defaults,
            b"\r\n",
            body,
        )
    )


def encode_chunk(data: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def is_field(line: bytes) -> bool:
    """True for a well-formed ``name: value`` field line (no CR, LF or control characters)."""
    return FIELD_LINE.fullmatch(line) is not None
