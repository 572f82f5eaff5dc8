"""``multipart/form-data`` request bodies (RFC 7578) decoded into an api's input.

The parser is strict on purpose: a valid ``boundary`` (RFC 2046 5.1.1, 1-70 characters), CRLF line ends,
a ``Content-Disposition: form-data`` header with a ``name`` on every part, no folded header lines, and
the closing delimiter present. Anything else is a 400, never a guess. It works on the whole body, which
the handler has already read under the server's body-size limit.

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
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

import msgspec

from .codec import APICodec, FileURL, _dec_hook, validation_detail
from .downloads import fetch_urls
from .errors import BadRequest
from .iotypes import Upload

__all__ = ["Part", "decode_form", "parse_form"]

MAX_PARTS = 1000
MAX_PART_HEADER = 8192
_INLINE_WRITE = 64 * 1024  # uploads up to this size are written on the loop (cheaper than a thread hop)
# Parameter names are case-insensitive (RFC 9110 5.6.6); the boundary value itself is not.
_BOUNDARY_RE = re.compile(rb"""(?i:boundary)=(?:"([^"]{1,70})"|([0-9A-Za-z'()+_,\-./:=?]{1,70}))(?:;|\s|$)""")
_BCHARS = re.compile(rb"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)="((?:[^"\\]|\\.)*)"|;\s*([A-Za-z0-9_*-]+)=([^;\s]*)')
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._ -]")


class Part:
    """One form part: field name, optional filename and content type, and its bytes."""

    __slots__ = ("content_type", "data", "filename", "name")

    def __init__(self, name: str, filename: str | None, content_type: str | None, data: bytes) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.data = data

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


def parse_form(body: bytes, ctype: bytes) -> list[Part]:
    """Split a ``multipart/form-data`` body into parts; ``BadRequest`` when it is malformed."""
    delim = b"--" + boundary_of(ctype)
    if body.startswith(delim):
        pos = len(delim)
    else:  # a preamble is allowed before the first delimiter line (RFC 2046 5.1.1)
        start = body.find(b"\r\n" + delim)
        if start < 0:
            raise BadRequest("multipart body without its first boundary")
        pos = start + 2 + len(delim)
    parts: list[Part] = []
    sep = b"\r\n" + delim
    while True:
        tail = body[pos : pos + 2]
        if tail == b"--":
            return parts
        if tail != b"\r\n":
            raise BadRequest("malformed multipart boundary line")
        pos += 2
        head_end = body.find(b"\r\n\r\n", pos, pos + MAX_PART_HEADER)
        if body.startswith(b"\r\n", pos):
            raise BadRequest("multipart part without a Content-Disposition header")
        if head_end < 0:
            raise BadRequest("multipart part headers are missing or too large")
        name = filename = ptype = None
        fields = [line.partition(b":") for line in body[pos:head_end].split(b"\r\n")]
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
        data_start = head_end + 4
        end = body.find(sep, data_start)
        if end < 0:
            raise BadRequest("multipart body without its closing boundary")
        parts.append(Part(name, filename, ptype, body[data_start:end]))
        if len(parts) > MAX_PARTS:
            raise BadRequest(f"multipart body with more than {MAX_PARTS} parts")
        pos = end + len(sep)


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


def _save(part: Part, folder: pathlib.Path, index: int) -> pathlib.Path:
    name = _SAFE_NAME.sub("_", pathlib.PurePosixPath((part.filename or "").replace("\\", "/")).name)
    name = name.strip(". ")[:200] or "upload"
    sub = folder / str(index)
    sub.mkdir()
    path = sub / name
    path.write_bytes(part.data)
    return Upload.of(path, part.content_type)  # the part's media type, for ``validators.ContentType``


async def decode_form(
    codec: APICodec, body: bytes, ctype: bytes, allow_private_urls: bool
) -> tuple[msgspec.Struct, Callable[[], None]]:
    """The api's input from a form body, and a cleanup removing its temporary files."""
    parts = parse_form(body, ctype)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="asgiserve-upload-"))

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
