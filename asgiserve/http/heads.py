"""Request heads for the pure-Python parser (``h11_impl``): read in one pass, refused like llhttp refuses.

``parse_head`` splits a complete head into method, target, version and fields, applying on the way the
byte-level rules that llhttp applies by itself (bare LF, lone CR, obs-fold, control characters, repeated
Content-Length), so that both parsers refuse the same heads with the same status. ``check_raw_head``
words the refusal of a head ``parse_head`` will not take.
"""

from __future__ import annotations

import re
from typing import NoReturn

from .wire import FIELD_LINE, METHODS, TCHAR, VALUE_BYTE, ProtocolError, check_transfer_encoding

__all__ = [
    "check_fields_so_far",
    "check_method_so_far",
    "check_raw_head",
    "has_bad_eol",
    "lf_line_as_crlf",
    "parse_head",
]


# Request heads (RFC 9112 2.2, 3, 5): every line ends in CRLF (no CR or LF alone), the request line is
# ``method SP target SP HTTP/d.d`` (h11's grammar: a token, visible ASCII, one digit each side of the dot),
# and each field line is ``name ":" OWS value OWS`` with a token name (no whitespace before the colon, no
# line folding) and no control character but HTAB in the value: h11's field grammar narrowed to what
# llhttp also accepts, so that both parsers refuse the same heads.
_VALUE_EDGE = rb"[^\x00-\x20\x7f]"  # the same less HTAB and SP: a value's first and last byte
# One space or more between the parts, as llhttp takes them (a tab is refused by both).
_REQUEST_LINE = re.compile(rb"(" + TCHAR + rb"+) +([\x21-\x7e]+) +HTTP/([0-9]\.[0-9])\r\n")
# One match per line: a field (name, value without its surrounding whitespace), or any other line, whose
# empty name marks it as malformed.
_FIELD_LINES = re.compile(
    rb"(" + TCHAR + rb"+):[ \t]*((?:" + _VALUE_EDGE + rb"(?:" + VALUE_BYTE + rb"*" + _VALUE_EDGE + rb")?)?)"
    rb"[ \t]*\r\n|[^\r\n]*\r\n"
)
_MALFORMED, _HOST_FIELD, _CL_FIELD, _TE_FIELD = range(4)
_WATCHED = {
    b"": _MALFORMED,
    b"host": _HOST_FIELD,
    b"content-length": _CL_FIELD,
    b"transfer-encoding": _TE_FIELD,
}
_VERSIONS = {b"1.1": "1.1", b"1.0": "1.0"}
_MAX_CL_FIELD = 20  # digits h11 takes in a Content-Length (request_framing's own limit is lower)


def _bad_eol(data: bytes | bytearray, end: int) -> bool:
    # Each CRLF pairs one CR with one LF, so any other CR or LF makes the counts differ (a C scan each).
    crlf = data.count(b"\r\n", 0, end)
    return data.count(b"\n", 0, end) != crlf or data.count(b"\r", 0, end) != crlf


def parse_head(head: bytes) -> tuple[bytes, bytes, str, list[tuple[bytes, bytes]]]:
    """Validate and split a complete request head (request line to the blank line) in one pass.

    Returns ``(method, target, version, headers)``, header names lowercased and values without their
    surrounding whitespace. Raises ``ProtocolError`` with the status and in the order of the rules of
    ``check_raw_head`` first (field lines, Content-Length, Transfer-Encoding), then the request line, then
    h11's own limits (a Content-Length of at most 20 digits; exactly one Host on HTTP/1.1, at most one on
    other versions).
    """
    if _bad_eol(head, len(head)):
        raise ProtocolError("Invalid line ending (bare LF or lone CR)")
    line = _REQUEST_LINE.match(head)
    if line is None:
        _refuse(head)
    headers: list[tuple[bytes, bytes]] = []
    hosts = cls = tes = cl_digits = 0
    for name, value in _FIELD_LINES.findall(head, line.end(), len(head) - 2):
        name = name.lower()
        kind = _WATCHED.get(name)
        if kind is not None:
            if kind == _HOST_FIELD:
                hosts += 1
            elif kind == _CL_FIELD:
                cls += 1
                if cls > 1 or not value.isdigit():
                    raise ProtocolError("Malformed or repeated Content-Length")
                cl_digits = len(value)
            elif kind == _TE_FIELD:
                tes += 1
                if tes > 1:
                    raise ProtocolError("Repeated Transfer-Encoding")
                check_transfer_encoding(value)
                value = value.lower()  # as h11 hands it over (its only one is chunked)
            else:
                _refuse(head)
        headers.append((name, value))
    method, target, version = line.groups()
    if cl_digits > _MAX_CL_FIELD:
        raise ProtocolError("Malformed Content-Length")
    if hosts > 1:
        raise ProtocolError("Invalid HTTP request: Found multiple Host: headers")
    if not hosts and version == b"1.1":
        raise ProtocolError("Invalid HTTP request: Missing mandatory Host: header")
    return method, target, _VERSIONS.get(version) or version.decode(), headers


def _refuse(head: bytes) -> NoReturn:
    """Raise the refusal of a head that does not parse: the field-line rules decide first, as in
    ``parse_head``, then the request line."""
    check_raw_head(head)
    if _REQUEST_LINE.match(head) is None:
        raise ProtocolError("Invalid HTTP request: illegal request line")
    raise ProtocolError("Invalid HTTP request")


def check_raw_head(head: bytes) -> None:
    """Validate the field lines of a complete request head (request line to the blank line) byte by byte.

    Also applies the Content-Length and Transfer-Encoding rules to the raw fields, line by line, so that
    a repeated field is refused rather than merged and a coding other than chunked is answered 501.
    """
    if _bad_eol(head, len(head)):
        raise ProtocolError("Invalid line ending (bare LF or lone CR)")
    lines = head.split(b"\r\n")
    cls = tes = 0
    for line in lines[1:-2]:
        if line[:1] in (b" ", b"\t"):
            raise ProtocolError("Obsolete line folding")
        m = FIELD_LINE.fullmatch(line)
        if m is None:
            raise ProtocolError("Invalid header line")
        if m.group(1).lower() == b"content-length":
            cls += 1
            if cls > 1 or not m.group(2).isdigit():
                raise ProtocolError("Malformed or repeated Content-Length")
        elif m.group(1).lower() == b"transfer-encoding":
            tes += 1
            if tes > 1:
                raise ProtocolError("Repeated Transfer-Encoding")
            check_transfer_encoding(m.group(2))


def has_bad_eol(data: bytes | bytearray) -> bool:
    """True when ``data`` (a head still arriving) holds a bare LF, or a CR followed by anything but LF."""
    # A CR at the very end may still be followed by its LF.
    return _bad_eol(data, len(data) - 1 if data.endswith(b"\r") else len(data))


# Every prefix of a method llhttp knows, each followed by the space that ends it once it is whole.
_METHOD_PREFIXES = frozenset(m[:i] for m in METHODS for i in range(len(m) + 1)) | {m + b" " for m in METHODS}
# llhttp also reads RTSP's methods as far as their names go (it refuses them for HTTP at the version).
_RTSP = (
    b"ANNOUNCE DESCRIBE FLUSH GET_PARAMETER PAUSE PLAY RECORD REDIRECT SETUP SET_PARAMETER TEARDOWN".split()
)
_METHOD_PREFIXES |= frozenset(m[:i] for m in _RTSP for i in range(len(m) + 1))


# A request line as far as it has come, as llhttp reads it byte by byte: the method, spaces, a target
# starting with "/" or "*" or an absolute URL's "scheme://" (a CONNECT's authority: anything visible),
# then spaces and as much of "HTTP/d.d" CR LF as has arrived, or CR LF at once (llhttp reads on, and
# refuses the head once it is whole, as ``parse_head`` does).
_TARGET = rb"(?:[/*][\x21-\x7e]*|[A-Za-z]+://[\x21-\x7e]*)"
_TARGET_BEGUN = rb"[A-Za-z]+(?::/?)?"  # an absolute URL's scheme, cut short
_VERSION_BEGUN = rb"(?: +(?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?|\r)?"
_LINE_BEGUN = re.compile(rb"[A-Z]+ +(?:" + _TARGET_BEGUN + rb"|" + _TARGET + _VERSION_BEGUN + rb")?")
_CONNECT_BEGUN = re.compile(rb"CONNECT +(?:[\x21-\x7e]+" + _VERSION_BEGUN + rb")?")
_LINE_WITHOUT_VERSION = re.compile(rb"[A-Z]+ +" + _TARGET + rb"\n")
_LINE = re.compile(rb"(?:[A-Z]+ +" + _TARGET + rb"|CONNECT +[\x21-\x7e]+)(?: +HTTP/[0-9]\.[0-9])?\r\n")


_EMPTY_CL = re.compile(rb"\r\n(?i:content-length):[ \t]*\r\n")
_TE_LINE = re.compile(rb"\r\n(?i:transfer-encoding):" + VALUE_BYTE + rb"*(?=\r\n)")  # well-formed bytes
_DIGITS_BEGUN = re.compile(rb"[ \t]*[0-9]*[ \t]*\r?")
_FIELD_BEGUN = re.compile(rb"(?:" + TCHAR + rb"+(?::[ \t]*" + VALUE_BYTE + rb"*\r?)?|\r)?")


def check_fields_so_far(head: bytes) -> None:
    """Refuse an unfinished head at the first field byte llhttp refuses (a folded line, a control
    character, a malformed or repeated field), rather than once the head is whole."""
    last = head.rfind(b"\r\n")
    first = head.find(b"\r\n")
    if last > first:  # whole field lines: the rules of a whole head
        whole = head[: last + 2] + b"\r\n"
        try:
            check_raw_head(whole)
        except ProtocolError:
            # llhttp refuses an empty Content-Length, and judges Transfer-Encoding, once the head is whole.
            if _EMPTY_CL.search(whole) is None and not _fine_without_te(whole):
                raise
        fields = head[first:last].lower()
        if b"\ncontent-length:" in fields and b"\ntransfer-encoding:" in fields:
            raise ProtocolError("Content-Length with Transfer-Encoding")
    if _FIELD_BEGUN.fullmatch(head, last + 2) is None:
        if head[last + 2 : last + 3] in (b" ", b"\t"):
            raise ProtocolError("Obsolete line folding")
        raise ProtocolError("Invalid header line")
    if head[last + 2 : last + 17].lower() == b"content-length:" and not _DIGITS_BEGUN.fullmatch(
        head, last + 17
    ):
        raise ProtocolError("Malformed or repeated Content-Length")  # llhttp reads its digits as they come


def _fine_without_te(whole: bytes) -> bool:
    """Whether ``whole`` (a head made of the field lines so far) passes once its Transfer-Encoding lines
    are left out: then only their values failed, which llhttp judges when the head is complete."""
    if _TE_LINE.search(whole) is None:
        return False
    try:
        check_raw_head(_TE_LINE.sub(b"", whole))
    except ProtocolError:
        return False
    return True


def lf_line_as_crlf(head: bytes) -> bytes:
    """``head`` with the bare LF ending a request line that has no version (``GET /`` LF) read as CR LF,
    as llhttp reads it (such a head is refused once whole, but its fields are read first)."""
    end = head.find(b"\n")
    if end <= 0 or head[end - 1] == 13 or _LINE_WITHOUT_VERSION.match(head, 0, end + 1) is None:
        return head
    return head[:end] + b"\r" + head[end:]


def check_method_so_far(head: bytes) -> None:
    """Refuse an unfinished head whose first bytes can start no request line (a TLS record, an SSH banner,
    a target no URL starts like, a version other than HTTP's), at once, as llhttp does, rather than after
    the header deadline."""
    space = head.find(b" ", 0, 24)
    so_far = head[: space + 1] if space >= 0 else head[:24]
    if so_far not in _METHOD_PREFIXES:
        raise ProtocolError("Unknown or malformed method")
    if space < 0:
        return
    line_end = head.find(b"\n")
    if line_end >= 0:  # the request line is whole (its CR checked already): it must parse
        if _LINE.match(head, 0, line_end + 1) is None:
            raise ProtocolError("Invalid HTTP request: illegal request line")
    elif (_CONNECT_BEGUN if head.startswith(b"CONNECT ") else _LINE_BEGUN).fullmatch(head) is None:
        raise ProtocolError("Invalid HTTP request: illegal request line")
