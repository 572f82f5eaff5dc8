"""What the clients know about each api, built once from ``/schema.json``: argument checks, the request
bytes (a pre-encoded head per api plus the body) and how to turn a response back into Python values.

Shared by ``SyncHTTPClient`` and ``AsyncHTTPClient``; nothing here does I/O except reading files given as
arguments and writing downloaded file outputs. The schema may come from asgiserve or from BentoML: file
parameters are recognised by BentoML's ``"type": "file"`` (and ``format: binary`` strings).
"""

from __future__ import annotations

import codecs
import enum
import inspect
import mimetypes
import os
import pathlib
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping

import msgspec

from ..errors import error_for_status
from .wire import Response, encode_head

__all__ = [
    "Endpoint",
    "StreamDecoder",
    "TaskStatus",
    "decode_response",
    "disposition_filename",
    "raise_for_status",
    "task_id_of",
    "task_status_of",
]

_json_encode = msgspec.json.Encoder(
    enc_hook=lambda o: str(o) if isinstance(o, pathlib.PurePath) else o
).encode
_json_decode = msgspec.json.decode
# Content-Disposition parameters: a quoted string (with backslash escapes) or a token (RFC 6266 4.1).
_DISPOSITION_PARAM = re.compile(
    r""";\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]*))"""
)
_EXT_VALUE = re.compile(r"^([!#$%&+^_`{}~0-9A-Za-z-]+)'[^']*'(.*)$")  # RFC 8187 3.2: charset'lang'value
_SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":", b"\n", b"\r\n")
_JSON_NAME = re.compile(r"^application/(?:[\w.+-]+\+)?json\b")


def _msgpack_encode() -> Callable[[object], bytes]:
    from ..tensors import encode_msgpack

    return encode_msgpack


def _is_binary(ctype: str) -> bool:
    return ctype.startswith(("application/msgpack", "application/vnd.msgpack", "application/x-msgpack")) or (
        ctype.startswith("application/x-npy")
    )


def _decode_binary(ctype: str, body: bytes) -> object:
    """A msgpack or .npy answer's value (arrays as numpy arrays, read-only views of ``body``)."""
    from ..tensors import decode_msgpack, decode_npy

    return decode_npy(body) if ctype.startswith("application/x-npy") else decode_msgpack(body)


class TaskStatus(enum.Enum):
    """The status of a submitted task, as ``R/status`` reports it (BentoML's ``ResultStatus``)."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


def task_id_of(body: bytes) -> str:
    """The ``task_id`` of a submit (or retry) answer."""
    obj = _json_decode(body)
    task_id = obj.get("task_id") if isinstance(obj, dict) else None
    if not isinstance(task_id, str):
        raise ValueError(f"a task submission answered without a task_id: {body[:200]!r}")
    return task_id


def task_status_of(body: bytes) -> TaskStatus:
    """The status in a ``R/status`` answer."""
    obj = _json_decode(body)
    return TaskStatus(obj.get("status") if isinstance(obj, dict) else None)


def _obj(value: object) -> Mapping[str, object]:
    """``value`` when it is a JSON object, else an empty one (the schema comes from the server)."""
    return value if isinstance(value, dict) else {}


def _is_file_schema(schema: Mapping[str, object]) -> bool:
    if schema.get("type") == "file" or (schema.get("type") == "string" and schema.get("format") == "binary"):
        return True
    if schema.get("type") == "array":
        return _is_file_schema(_obj(schema.get("items")))
    any_of = schema.get("anyOf")
    return isinstance(any_of, list) and any(_is_file_schema(s) for s in any_of if isinstance(s, dict))


class Endpoint:
    """One api as seen from a client: its parameters, request head and output handling."""

    def __init__(
        self, route: Mapping[str, object], host: str, base: str, headers: list[tuple[str, str]]
    ) -> None:
        self.name = str(route["name"])
        self.route = str(route["route"])
        inp = _obj(route.get("input"))
        out = _obj(route.get("output"))
        props = _obj(inp.get("properties"))
        required = inp.get("required")
        self.params = tuple(props)
        self.allowed = frozenset(props)
        self.required = frozenset(str(n) for n in required) if isinstance(required, list) else frozenset()
        self.file_params = frozenset(
            n for n, s in props.items() if isinstance(s, dict) and _is_file_schema(s)
        )
        self.stream = bool(out.get("is_stream"))
        self.media_type = str(out.get("media_type") or "application/json")
        self.file_output = out.get("type") == "file"
        self.text_output = out.get("type") == "string" and out.get("format") != "binary"
        doc = route.get("doc") or route.get("description")
        self.doc = doc if isinstance(doc, str) else None
        target = base.rstrip("/") + self.route
        self.head = encode_head("POST", target, host, headers)
        self.json_prefix = self.head + b"Content-Type: application/json\r\nContent-Length: "
        self.is_task = route.get("is_task") is True
        self.submit_head = encode_head("POST", target + "/submit", host, headers) if self.is_task else b""
        self.submit_prefix = self.submit_head + b"Content-Type: application/json\r\nContent-Length: "
        self.signature = inspect.Signature(
            [
                inspect.Parameter(
                    n,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=inspect.Parameter.empty if n in self.required else _obj(props[n]).get("default"),
                )
                for n in sorted(self.params, key=lambda n: n not in self.required)
            ]
        )

    def __repr__(self) -> str:
        return f"<Endpoint {self.name} POST {self.route}{' (stream)' if self.stream else ''}>"

    def bind(self, args: tuple[object, ...], kwargs: dict[str, object]) -> dict[str, object]:
        """Check the arguments against the api's parameters; ``TypeError`` before anything is sent."""
        if args:
            if len(args) > len(self.params):
                raise TypeError(
                    f"{self.name}() takes {len(self.params)} arguments but {len(args)} were given"
                )
            for name, value in zip(self.signature.parameters, args):
                if name in kwargs:
                    raise TypeError(f"{self.name}() got multiple values for argument {name!r}")
                kwargs[name] = value
        keys = kwargs.keys()
        if not keys <= self.allowed:
            unknown = ", ".join(sorted(keys - self.allowed))
            raise TypeError(f"{self.name}() got unexpected arguments: {unknown}")
        if not self.required <= keys:
            missing = ", ".join(sorted(self.required - keys))
            raise TypeError(f"{self.name}() is missing required arguments: {missing}")
        return kwargs

    def encode(self, values: dict[str, object], submit: bool = False) -> bytes:
        """The whole request: JSON body, or multipart/form-data when a file argument is a path or bytes;
        to ``{route}/submit`` with ``submit``."""
        if self.file_params:
            for name in self.file_params:
                value = values.get(name)
                if isinstance(value, (pathlib.PurePath, bytes, bytearray)) or hasattr(value, "read"):
                    return self._multipart(values, submit)
                if isinstance(value, (list, tuple)) and any(
                    isinstance(v, (pathlib.PurePath, bytes, bytearray)) for v in value
                ):
                    return self._multipart(values, submit)
        if self.msgpack_prefix and not submit:
            body = _msgpack_encode()(values)
            return b"%s%d\r\n\r\n%s" % (self.msgpack_prefix, len(body), body)
        body = _json_encode(values)
        return b"%s%d\r\n\r\n%s" % (self.submit_prefix if submit else self.json_prefix, len(body), body)

    msgpack_prefix = b""  # set by ``use_msgpack``: the head of a msgpack call

    def use_msgpack(self) -> None:
        """Send this api's calls as msgpack and ask for msgpack answers (numpy arrays travel as raw bytes)."""
        self.msgpack_prefix = (
            self.head
            + b"Content-Type: application/msgpack\r\nAccept: application/msgpack\r\nContent-Length: "
        )

    def task_path(self, action: str, task_id: str) -> str:
        """The path of a task request: ``{route}/{action}?task_id=...``."""
        return f"{self.route}/{action}?task_id={urllib.parse.quote(task_id, safe='')}"

    def _multipart(self, values: dict[str, object], submit: bool = False) -> bytes:
        boundary = os.urandom(16).hex().encode()
        parts: list[bytes] = []
        for name, value in values.items():
            items = value if name in self.file_params and isinstance(value, (list, tuple)) else [value]
            for item in items:
                parts.append(_part(name, item, name in self.file_params))
        body = b"".join(b"--%s\r\n%s\r\n" % (boundary, p) for p in parts) + b"--%s--\r\n" % boundary
        return b"%sContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\n\r\n%s" % (
            self.submit_head if submit else self.head,
            boundary,
            len(body),
            body,
        )


def _quote(name: str) -> bytes:
    return name.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A").encode()


def _part(name: str, value: object, is_file: bool) -> bytes:
    disposition = b'Content-Disposition: form-data; name="%s"' % _quote(name)
    if is_file and isinstance(value, pathlib.PurePath):
        path = pathlib.Path(value)
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return b'%s; filename="%s"\r\nContent-Type: %s\r\n\r\n%s' % (
            disposition,
            _quote(path.name),
            ctype.encode(),
            path.read_bytes(),
        )
    if is_file and (isinstance(value, (bytes, bytearray)) or hasattr(value, "read")):
        data = bytes(value) if isinstance(value, (bytes, bytearray)) else value.read()
        fname = pathlib.Path(getattr(value, "name", "upload") or "upload").name
        return b'%s; filename="%s"\r\nContent-Type: application/octet-stream\r\n\r\n%s' % (
            disposition,
            _quote(fname),
            data,
        )
    if is_file and isinstance(value, str):  # a URL for the server to download
        return b"%s\r\n\r\n%s" % (disposition, value.encode())
    return b"%s\r\nContent-Type: application/json\r\n\r\n%s" % (disposition, _json_encode(value))


def raise_for_status(resp: Response, body: bytes) -> None:
    """Raise the typed ``HTTPError`` for an error response, with the server's message."""
    if resp.status < 400:
        return
    message = body.decode("utf-8", "replace") or f"HTTP {resp.status}"
    detail = None
    if resp.headers.get("content-type", "").startswith("application/json"):
        try:
            obj = _json_decode(body)
        except msgspec.DecodeError:
            obj = None
        if isinstance(obj, dict):
            err = obj.get("error", obj.get("detail", message))
            message = err if isinstance(err, str) else msgspec.json.encode(err).decode()
            if isinstance(obj.get("detail"), list):
                detail = obj["detail"]
    raise error_for_status(resp.status, message, detail)


def _charset(ctype: str) -> str:
    _, _, rest = ctype.partition("charset=")
    return rest.split(";")[0].strip().strip('"') or "utf-8"


def disposition_filename(value: str) -> str:
    """The file name of a Content-Disposition header, reduced to its last path component ("" if none).

    The RFC 8187 ``filename*`` form wins over the plain ``filename`` (its ASCII fallback) and is
    percent-decoded in its charset; the server never chooses a folder, only a name.
    """
    params: dict[str, str] = {}
    for key, quoted, token in _DISPOSITION_PARAM.findall(value):
        key = key.lower()
        if key not in params:
            params[key] = re.sub(r"\\(.)", r"\1", quoted) if quoted else token
    name = ""
    ext = _EXT_VALUE.match(params.get("filename*", ""))
    if ext:
        charset = ext.group(1).lower()
        try:
            name = urllib.parse.unquote(ext.group(2), encoding=charset, errors="replace")
        except LookupError:  # a charset Python does not know
            name = ""
    if not name:
        name = params.get("filename", "")
    name = pathlib.PurePosixPath(name.replace("\\", "/").replace("\0", "")).name
    return "" if name in (".", "..") else name


def save_file(headers: dict[str, str], body: bytes | Iterable[bytes], directory: str) -> pathlib.Path:
    """Write a file output into ``directory`` under the name from Content-Disposition; return its path."""
    name = disposition_filename(headers.get("content-disposition", ""))
    if not name:
        ext = mimetypes.guess_extension(headers.get("content-type", "").split(";")[0].strip()) or ""
        name = "output" + ext
    folder = tempfile.mkdtemp(dir=directory)
    path = pathlib.Path(folder) / name
    with path.open("wb") as fh:
        if isinstance(body, bytes):
            fh.write(body)
        else:
            for chunk in body:
                fh.write(chunk)
    return path


def decode_response(ep: Endpoint | None, resp: Response, body: bytes, tmpdir: Callable[[], str]) -> object:
    """The Python value of a successful api response, by its content type (files become a ``Path``)."""
    ctype = resp.headers.get("content-type", "")
    if ctype.startswith("application/json"):
        return _json_decode(body)
    if _is_binary(ctype):
        return _decode_binary(ctype, body)
    if (ep is not None and ep.file_output) or "content-disposition" in resp.headers:
        return save_file(resp.headers, body, tmpdir())
    if ctype.startswith("text/"):
        return body.decode(_charset(ctype))
    if _JSON_NAME.match(ctype):
        return _json_decode(body)
    return body


class StreamDecoder:
    """Turns a streamed body's chunks into items: text as str, NDJSON lines and SSE data as values."""

    def __init__(self, ep: Endpoint, ctype: str) -> None:
        self.kind = "bytes"
        base = ctype.split(";")[0].strip().lower()
        if base == "text/event-stream":
            self.kind = "sse"
        elif base in ("application/x-ndjson", "application/jsonl", "application/json-seq"):
            self.kind = "ndjson"
        elif base.startswith("text/") or (base == "application/json" and ep.text_output):
            self.kind = "text"
        self.text_items = ep.text_output
        self._text = codecs.getincrementaldecoder(_charset(ctype))("replace")
        self._buf = b""
        self._first = True

    def feed(self, chunk: bytes) -> Iterator[object]:
        """The items completed by ``chunk``."""
        kind = self.kind
        if kind == "text":
            text = self._text.decode(chunk)
            if text:
                yield text
        elif kind == "bytes":
            yield chunk
        elif kind == "ndjson":
            self._buf += chunk
            *lines, self._buf = self._buf.split(b"\n")
            for line in lines:
                if line.strip():
                    yield _json_decode(line)
        else:
            first, self._first = self._first, False
            if first and not chunk.startswith(_SSE_FIELDS):
                # BentoML labels plain text streams text/event-stream without SSE framing.
                self.kind = "text" if self.text_items else "bytes"
                yield from self.feed(chunk)
                return
            self._buf += chunk.replace(b"\r\n", b"\n")
            *events, self._buf = self._buf.split(b"\n\n")
            for event in events:
                data = [ln[5:].removeprefix(b" ") for ln in event.split(b"\n") if ln.startswith(b"data:")]
                if data:
                    yield self._sse_value(b"\n".join(data))

    def _sse_value(self, data: bytes) -> object:
        if self.text_items:
            return data.decode()
        try:
            return _json_decode(data)
        except msgspec.DecodeError:
            return data.decode()

    def flush(self) -> Iterator[object]:
        """Items left when the body ended (a last line without newline)."""
        if self.kind == "ndjson" and self._buf.strip():
            yield _json_decode(self._buf)
        elif self.kind == "text":
            tail = self._text.decode(b"", final=True)
            if tail:
                yield tail
        self._buf = b""
