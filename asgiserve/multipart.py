"""``multipart/form-data`` request bodies (RFC 7578) decoded into an api's input.

The parser is strict on purpose: a valid ``boundary`` (RFC 2046 5.1.1, 1-70 characters), CRLF line ends,
a ``Content-Disposition: form-data`` header with a ``name`` on every part, no folded header lines, and
the closing delimiter present. Anything else is a 400, never a guess. ``FormParser`` reads a body in
pieces as they arrive (``receive_form``: a ``Path`` parameter's upload goes to its file as it comes, the
body limit checked by whoever hands the pieces over) or whole (``parse_form``), with the same verdicts.

Parts become arguments by parameter: ``Path`` parameters get a temporary file (removed after the request)
or, for a plain field, a URL the server downloads; ``bytes`` parameters get the raw part; every other
field is JSON (as BentoML's client sends it), or plain text when it is not valid JSON. A parameter that
accepts ``str`` keeps a plain field's text as it is ("123" stays "123"), unless the part is declared
``application/json``. A field repeated for a list parameter collects its values in order, as HTML forms
send them. Uploads larger than ``_INLINE_WRITE`` are written to disk off the event loop.
"""

from __future__ import annotations

import asyncio
import pathlib
import re
import shutil
import tempfile
import types
import typing
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal, Union

import msgspec

from .codec import APICodec, FileURL, _dec_hook, validation_detail
from .downloads import fetch_urls
from .errors import BadRequest
from .iotypes import Upload

__all__ = ["FormParser", "Part", "decode_form", "parse_form", "receive_form"]

MAX_PARTS = 1000
MAX_PART_HEADER = 8192
_INLINE_WRITE = 64 * 1024  # uploads up to this size are written on the loop (cheaper than a thread hop)
_SPOOL = 1024 * 1024  # an upload arriving is held in memory up to this, then written out in such pieces
# Parameter names are case-insensitive (RFC 9110 5.6.6); the boundary value itself is not.
_BOUNDARY_RE = re.compile(rb"""(?i:boundary)=(?:"([^"]{1,70})"|([0-9A-Za-z'()+_,\-./:=?]{1,70}))(?:;|\s|$)""")
_BCHARS = re.compile(rb"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)="((?:[^"\\]|\\.)*)"|;\s*([A-Za-z0-9_*-]+)=([^;\s]*)')
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


class Part:
    """One form part: field name, optional filename and content type, and its bytes (or the file holding
    them, for an upload that went to disk as it arrived)."""

    __slots__ = ("content_type", "data", "filename", "name", "path")

    def __init__(self, name: str, filename: str | None, content_type: str | None, data: bytes) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.data = data
        self.path: pathlib.Path | None = None

    def __repr__(self) -> str:
        return f"<Part {self.name!r} filename={self.filename!r} {len(self.data)} bytes>"


def boundary_of(ctype: bytes) -> bytes:
    """The boundary parameter of a multipart Content-Type, validated."""
    m = _BOUNDARY_RE.search(ctype)
    boundary = (m.group(1) or m.group(2)) if m else None
    if not boundary or not _BCHARS.match(boundary):
        raise BadRequest("multipart/form-data without a valid boundary parameter")
    return boundary


def _disposition(value: str) -> tuple[str, str | None]:
    kind, _, rest = value.partition(";")
    if kind.strip().lower() != "form-data":
        raise BadRequest("multipart part with a Content-Disposition other than form-data")
    params: dict[str, str] = {}
    for qkey, qval, key, val in _PARAM_RE.findall(";" + rest):
        k = (qkey or key).lower()
        if k in params:
            raise BadRequest(f"multipart part repeats the {k!r} parameter")
        params[k] = qval.replace('\\"', '"') if qkey else val
    if "name" not in params:
        raise BadRequest("multipart part without a field name")
    return params["name"], params.get("filename")


# Where a ``FormParser`` is: at the start, in a preamble, just after a delimiter, in a part's head or data.
_START, _PREAMBLE, _DELIMITED, _HEAD, _DATA, _END = range(6)


class FormParser:
    """A sans-IO ``multipart/form-data`` reader: ``feed`` it the body in pieces of any size, then ``close``.

    ``feed`` returns what the pieces completed, in order: a ``Part`` (its head; ``data`` empty) when a part
    begins, ``bytes`` of the current part's data, and None when that part ends. Data is handed on as it
    comes, holding back only what could be the start of the next delimiter. Malformed input raises
    ``BadRequest`` as soon as it is seen, with the same verdicts as on the whole body.
    """

    def __init__(self, boundary: bytes) -> None:
        self.delim = b"--" + boundary
        self.sep = b"\r\n" + self.delim
        self.buf = bytearray()
        self.state = _START
        self.parts = 0

    def feed(self, data: bytes) -> list[Part | bytes | None]:
        """The events completed by ``data``."""
        buf = self.buf
        buf += data
        out: list[Part | bytes | None] = []
        sep, delim = self.sep, self.delim
        while True:
            state = self.state
            if state == _DATA:
                end = buf.find(sep)
                if end < 0:
                    keep = len(sep) - 1  # the start of a delimiter split across pieces
                    if len(buf) > keep:
                        out.append(bytes(buf[: len(buf) - keep]))
                        del buf[: len(buf) - keep]
                    return out
                if end:
                    out.append(bytes(buf[:end]))
                out.append(None)
                del buf[: end + len(sep)]
                self.state = _DELIMITED
            elif state == _DELIMITED:
                if len(buf) < 2:
                    return out
                if buf[:2] == b"--":
                    self.state = _END
                elif buf[:2] != b"\r\n":
                    raise BadRequest("malformed multipart boundary line")
                else:
                    del buf[:2]
                    self.state = _HEAD
            elif state == _HEAD:
                if buf[:2] == b"\r\n":
                    raise BadRequest("multipart part without a Content-Disposition header")
                head_end = buf.find(b"\r\n\r\n", 0, MAX_PART_HEADER)
                if head_end < 0:
                    if len(buf) >= MAX_PART_HEADER:
                        raise BadRequest("multipart part headers are missing or too large")
                    return out
                self.parts += 1
                if self.parts > MAX_PARTS:
                    raise BadRequest(f"multipart body with more than {MAX_PARTS} parts")
                out.append(_part_head(bytes(buf[:head_end])))
                del buf[: head_end + 4]
                self.state = _DATA
            elif state == _START:
                if buf[: len(delim)] == delim:
                    del buf[: len(delim)]
                    self.state = _DELIMITED
                elif len(buf) < len(delim) and delim.startswith(buf):
                    return out
                else:  # a preamble is allowed before the first delimiter line (RFC 2046 5.1.1)
                    self.state = _PREAMBLE
            elif state == _PREAMBLE:
                start = buf.find(sep)
                if start < 0:
                    del buf[: max(0, len(buf) - len(sep) + 1)]  # only the tail could start a delimiter
                    return out
                del buf[: start + len(sep)]
                self.state = _DELIMITED
            else:  # _END: the epilogue after the closing delimiter is ignored
                buf.clear()
                return out

    def close(self) -> None:
        """The body ended: ``BadRequest`` unless the closing delimiter was read."""
        state = self.state
        if state == _END:
            return
        if state <= _PREAMBLE:
            raise BadRequest("multipart body without its first boundary")
        if state == _DELIMITED:
            raise BadRequest("malformed multipart boundary line")
        if state == _HEAD:
            if self.buf[:2] == b"\r\n":
                raise BadRequest("multipart part without a Content-Disposition header")
            raise BadRequest("multipart part headers are missing or too large")
        raise BadRequest("multipart body without its closing boundary")


def _part_head(head: bytes) -> Part:
    """The part a head (its header lines, without the blank line) describes."""
    name = filename = ptype = None
    fields = [line.partition(b":") for line in head.split(b"\r\n")]
    for key, colon, _ in fields:  # no folded lines (RFC 7578 4.8 forbids them), no bare names
        if not colon or not key or key != key.strip():
            raise BadRequest("malformed multipart part header")
    for key, _, value in fields:
        try:
            text = value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadRequest("multipart part header is not UTF-8") from None
        lkey = key.lower()
        if lkey == b"content-disposition":
            if name is not None:
                raise BadRequest("multipart part with two Content-Disposition headers")
            name, filename = _disposition(text)
        elif lkey == b"content-type":
            ptype = text
    if name is None:
        raise BadRequest("multipart part without a Content-Disposition header")
    return Part(name, filename, ptype, b"")


def parse_form(body: bytes, ctype: bytes) -> list[Part]:
    """Split a whole ``multipart/form-data`` body into parts; ``BadRequest`` when it is malformed."""
    parser = FormParser(boundary_of(ctype))
    parts: list[Part] = []
    pieces: list[bytes] = []
    for event in parser.feed(body):
        if isinstance(event, Part):
            parts.append(event)
        elif event is None:
            parts[-1].data = b"".join(pieces)
            pieces.clear()
        else:
            pieces.append(event)
    parser.close()
    return parts


def _list_item(tp: Any) -> Any:
    """The item type when ``tp`` is a list (or set, tuple), possibly optional or annotated; else None."""
    origin = typing.get_origin(tp)
    if origin in (list, tuple, set, frozenset):
        args = typing.get_args(tp)
        return args[0] if args else Any
    if tp is list:
        return Any
    if origin is Annotated:
        return _list_item(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        items = [_list_item(a) for a in typing.get_args(tp) if a is not type(None)]
        if len(items) == 1:
            return items[0]
    return None


def _takes_text(tp: Any) -> bool:
    """Whether a plain form field's text is a fine value as it is: ``str`` or a union holding it."""
    if tp is str:
        return True
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _takes_text(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return any(_takes_text(arg) for arg in typing.get_args(tp))
    if origin is Literal:
        return any(isinstance(arg, str) for arg in typing.get_args(tp))
    return False


def _field_value(part: Part, tp: Any) -> Any:
    try:
        value = msgspec.json.decode(part.data)
    except msgspec.DecodeError:
        return part.data.decode("utf-8", "replace")
    # A plain HTML form sends "123" for a str field: keep the text unless it was a JSON string or the
    # part says it is JSON (BentoML's client sends None as a JSON null).
    if not isinstance(value, str) and _takes_text(tp):
        ptype = (part.content_type or "").split(";")[0].strip().lower()
        if ptype != "application/json":
            return part.data.decode("utf-8", "replace")
    return value


def _file_url(part: Part) -> FileURL:
    try:
        text = part.data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise BadRequest(f"multipart field {part.name!r}: a URL must be UTF-8 text") from None
    if not text.startswith(("http://", "https://")):
        raise BadRequest(
            f"multipart field {part.name!r}: expected a file upload (a part with a filename) "
            "or an http(s) URL"
        )
    return FileURL.of(text)


def _upload_path(part: Part, folder: pathlib.Path, index: int) -> pathlib.Path:
    name = _SAFE_NAME.sub("_", pathlib.PurePosixPath((part.filename or "").replace("\\", "/")).name)
    name = name.strip(". ")[:200] or "upload"
    sub = folder / str(index)
    sub.mkdir()
    return sub / name


def _save(part: Part, folder: pathlib.Path, index: int) -> pathlib.Path:
    path = _upload_path(part, folder, index)
    path.write_bytes(part.data)
    return Upload.of(path, part.content_type)  # the part's media type, for ``validators.ContentType``


class _Spool:
    """An upload's bytes as they arrive: held in memory up to ``_SPOOL``, then written to its file in
    pieces of about that size, off the event loop."""

    def __init__(self, part: Part, folder: pathlib.Path, index: int) -> None:
        self.part = part
        self.path = _upload_path(part, folder, index)
        self.pending: list[bytes] = []
        self.size = 0
        self.file: typing.BinaryIO | None = None

    async def write(self, data: bytes) -> None:
        self.pending.append(data)
        self.size += len(data)
        if self.size >= _SPOOL:
            await asyncio.get_running_loop().run_in_executor(None, self._flush)

    def _flush(self) -> None:
        if self.file is None:
            self.file = self.path.open("wb")
        self.file.write(b"".join(self.pending))
        self.pending.clear()
        self.size = 0

    async def close(self) -> None:
        if self.file is None:  # small: written on the loop in one go
            self.path.write_bytes(b"".join(self.pending))
        else:
            await asyncio.get_running_loop().run_in_executor(None, self._flush)
            self.file.close()
        self.part.path = Upload.of(self.path, self.part.content_type)  # for ``validators.ContentType``

    def abandon(self) -> None:
        if self.file is not None:
            self.file.close()


async def receive_form(
    codec: APICodec, chunks: AsyncIterator[bytes], ctype: bytes, allow_private_urls: bool
) -> tuple[msgspec.Struct, Callable[[], None]]:
    """The api's input from a form body read piece by piece from ``chunks`` (which enforces the body
    limit), and a cleanup removing its temporary files. File parts for ``Path`` parameters go to disk as
    they arrive; other parts are kept in memory."""
    parser = FormParser(boundary_of(ctype))
    folder = pathlib.Path(tempfile.mkdtemp(prefix="asgiserve-upload-"))
    parts: list[Part] = []
    pieces: list[bytes] = []
    spool: _Spool | None = None
    try:
        async for chunk in chunks:
            for event in parser.feed(chunk):
                if isinstance(event, Part):
                    parts.append(event)
                    if event.filename is not None and event.name in codec.path_params:
                        spool = _Spool(event, folder, len(parts) - 1)
                elif event is None:
                    if spool is not None:
                        await spool.close()
                        spool = None
                    else:
                        parts[-1].data = b"".join(pieces)
                        pieces.clear()
                elif spool is not None:
                    await spool.write(event)
                else:
                    pieces.append(event)
        parser.close()
    except BaseException:
        if spool is not None:
            spool.abandon()
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return await _decode_parts(codec, parts, folder, allow_private_urls)


async def decode_form(
    codec: APICodec, body: bytes, ctype: bytes, allow_private_urls: bool
) -> tuple[msgspec.Struct, Callable[[], None]]:
    """The api's input from a whole form body, and a cleanup removing its temporary files."""
    parts = parse_form(body, ctype)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="asgiserve-upload-"))
    return await _decode_parts(codec, parts, folder, allow_private_urls)


async def _decode_parts(
    codec: APICodec, parts: list[Part], folder: pathlib.Path, allow_private_urls: bool
) -> tuple[msgspec.Struct, Callable[[], None]]:
    def cleanup() -> None:
        shutil.rmtree(folder, ignore_errors=True)

    try:
        values: dict[str, Any] = {}
        repeated: dict[str, list[tuple[Part, Any]]] = {}  # list parameters: every value, in order
        loop = asyncio.get_running_loop()
        for i, part in enumerate(parts):
            tp = codec.param_types.get(part.name)
            item_type = _list_item(tp)
            value: Any
            if part.name in codec.path_params:
                if part.filename is None:
                    value = _file_url(part)
                elif part.path is not None:
                    value = part.path
                elif len(part.data) <= _INLINE_WRITE:
                    value = _save(part, folder, i)
                else:
                    value = await loop.run_in_executor(None, _save, part, folder, i)
            elif part.name in codec.file_params:
                value = part.data
            else:
                value = _field_value(part, tp if item_type is None else item_type)
            if item_type is not None:
                repeated.setdefault(part.name, []).append((part, value))
            elif part.name in values:
                raise BadRequest(f"multipart field {part.name!r} given more than once")
            else:
                values[part.name] = value
        for name, items in repeated.items():
            values[name] = [value for _, value in items]
            if len(items) == 1 and name not in codec.file_params:
                # A single JSON array (what BentoML's client sends) is the whole list.
                try:
                    whole = msgspec.json.decode(items[0][0].data)
                except msgspec.DecodeError:
                    continue
                if isinstance(whole, list):
                    values[name] = whole
        try:
            obj: msgspec.Struct = msgspec.convert(values, codec.input_type, dec_hook=_dec_hook)
        except msgspec.ValidationError as exc:
            msg = str(exc)
            raise BadRequest(msg, detail=validation_detail(msg)) from None
        if codec.path_params:
            obj = await fetch_urls(codec, obj, folder, allow_private_urls)
    except BaseException:
        cleanup()
        raise
    return obj, cleanup
