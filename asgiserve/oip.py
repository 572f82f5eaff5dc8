"""The Open Inference Protocol (KServe v2 REST, what Triton's clients speak), served under ``/v2``.

Each api is a model named after the api; its parameters are the input tensors, by name, and its result is
the output tensor ``output`` (``output_0``, ``output_1``, ... for a tuple). An inference runs the api through
its own handler, as an in-process ASGI call with a msgpack body (arrays travel as views, not copies), so
admission, the deadline, the thread pool, batching and metrics are the api's own. The JSON tensor format and
the binary tensor data extension (``Inference-Header-Content-Length``, ``binary_data_size``) are both read and
written. Errors are ``{"error": "..."}`` with 400 (bad request or tensor) or 404 (no such model).
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .binarycodec import _is_numpy_array_type
from .responses import error_body, send_body
from .tensors import (
    DATATYPES,
    MSGPACK_CT,
    TensorError,
    decode_msgpack,
    encode_msgpack,
    flatten,
    object_array,
    tensor_from_binary,
    tensor_from_json,
    tensor_out,
)
from .types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .handlers import APIHandler

__all__ = ["OpenInference"]

_JSON_CT = b"application/json"


class _Model:
    """One api as a model: its handler, input and output metadata."""

    def __init__(self, handler: APIHandler) -> None:
        self.handler = handler
        codec = handler.codec
        self.name = codec.name
        self.inputs = [_tensor_meta(n, codec.param_types[n]) for n in codec.param_names]
        ret = typing.get_type_hints(handler.func).get("return", inspect.Signature.empty)
        parts = typing.get_args(ret) if typing.get_origin(ret) is tuple else ()
        self.tuple_out = bool(parts) and Ellipsis not in parts
        if self.tuple_out:
            self.outputs = [_tensor_meta(f"output_{i}", tp) for i, tp in enumerate(parts)]
        else:
            self.outputs = [_tensor_meta("output", ret)]

    def metadata(self) -> dict[str, object]:
        return {
            "name": self.name,
            "versions": ["1"],
            "platform": "asgiserve",
            "inputs": self.inputs,
            "outputs": self.outputs,
        }


def _tensor_meta(name: str, tp: object) -> dict[str, object]:
    """``{name, datatype, shape}`` from a type annotation (-1 for a dimension of any size)."""
    shape: list[int] = []
    tp = _plain(tp)
    while typing.get_origin(tp) in (list, tuple, Sequence) and typing.get_args(tp):
        shape.append(-1)
        tp = _plain(typing.get_args(tp)[0])
    if _is_numpy_array_type(tp):
        return {"name": name, "datatype": "FP32", "shape": [-1]}
    datatype = _SCALAR_TYPES.get(tp, "BYTES") if isinstance(tp, type) else "BYTES"
    return {"name": name, "datatype": datatype, "shape": shape or [1]}


_SCALAR_TYPES: dict[type, str] = {bool: "BOOL", int: "INT64", float: "FP64", str: "BYTES", bytes: "BYTES"}


class _Sink:
    """The ``send`` of an in-process call: keeps the status, headers and body."""

    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.parts: list[bytes] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", ()))
        elif message["type"] == "http.response.body":
            self.parts.append(bytes(message.get("body", b"")))

    def header(self, name: bytes) -> bytes:
        for key, value in self.headers:
            if key.lower() == name:
                return bytes(value)
        return b""


class OpenInference:
    """The ASGI app serving ``/v2`` for a service's apis (mounted by ``ServiceApp`` when enabled)."""

    @staticmethod
    def enabled(config: Mapping[str, object]) -> bool:
        """Whether a service serves the protocol: its ``open_inference=True``, or ``ASGISERVE_OPEN_INFERENCE``."""
        env = os.environ.get("ASGISERVE_OPEN_INFERENCE", "").lower()
        return bool(config.get("open_inference")) or env in ("1", "true", "yes", "on")

    def __init__(self, service_name: str, handlers: Sequence[APIHandler], ready: Any) -> None:
        self.service_name = service_name
        self.models = {h.codec.name: _Model(h) for h in handlers if not h.streams}
        self.ready = ready  # the service's readiness probe, an ASGI handler answering 200 when ready

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route one ``/v2`` request."""
        if scope["type"] != "http":  # a websocket: refused (closing before accepting answers 403)
            await send({"type": "websocket.close", "code": 1000})
            return
        path = scope["path"]
        root = scope.get("root_path")
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        parts = [p for p in path.split("/") if p][1:]  # what follows /v2
        method = scope["method"]
        try:
            if not parts:
                return await self._get(method, send, self._server_metadata())
            if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
                if method not in ("GET", "HEAD"):
                    return await _error(send, 405, f"Method {method} not allowed")
                ok = parts[1] == "live" or await self._is_ready(scope)
                return await send_body(
                    send, 200 if ok else 503, b"" if ok else error_body("not ready"), _JSON_CT
                )
            if parts[0] == "models" and len(parts) >= 2:
                return await self._model_route(scope, receive, send, parts[1:])
        except TensorError as exc:
            return await _error(send, 400, str(exc))
        await _error(send, 404, f"Not found: {path}")

    def _server_metadata(self) -> dict[str, object]:
        return {"name": self.service_name, "version": "2", "extensions": ["binary_tensor_data"]}

    async def _get(self, method: str, send: Send, doc: Mapping[str, object]) -> None:
        if method not in ("GET", "HEAD"):
            return await _error(send, 405, f"Method {method} not allowed")
        await send_body(send, 200, msgspec.json.encode(doc), _JSON_CT)

    async def _is_ready(self, scope: Scope) -> bool:
        sink = _Sink()

        async def no_body() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        await self.ready({**scope, "method": "GET"}, no_body, sink)
        return sink.status == 200

    async def _model_route(self, scope: Scope, receive: Receive, send: Send, parts: list[str]) -> None:
        name, rest = parts[0], parts[1:]
        model = self.models.get(name)
        if model is None:
            return await _error(send, 404, f"Unknown model {name!r}")
        if len(rest) >= 2 and rest[0] == "versions":
            rest = rest[2:]  # every version is the api itself
        method = scope["method"]
        if not rest:
            return await self._get(method, send, model.metadata())
        if rest == ["ready"]:
            if method not in ("GET", "HEAD"):
                return await _error(send, 405, f"Method {method} not allowed")
            ok = await self._is_ready(scope)
            return await send_body(send, 200 if ok else 503, b"" if ok else error_body("not ready"), _JSON_CT)
        if rest == ["infer"]:
            if method != "POST":
                return await _error(send, 405, f"Method {method} not allowed")
            return await self._infer(model, scope, receive, send)
        return await _error(send, 404, f"Not found: {scope['path']}")

    async def _infer(self, model: _Model, scope: Scope, receive: Receive, send: Send) -> None:
        from .handlers import ClientDisconnected, read_body

        handler = model.handler
        try:
            body = await read_body(receive, handler.gate)
        except ClientDisconnected:
            return
        except Exception as exc:  # too large
            status = getattr(exc, "status", 400)
            return await _error(send, status, getattr(exc, "message", str(exc)))
        headers = scope["headers"]
        header_len = _header_int(headers, b"inference-header-content-length")
        request, binary = _split(body, header_len)
        values = _inputs(model, request, binary)
        sink = await _call_api(handler, scope, values)
        out_body = b"".join(sink.parts)
        if sink.status != 200:
            try:
                err = msgspec.json.decode(out_body)
                message = err.get("error", "error") if isinstance(err, dict) else str(err)
            except msgspec.DecodeError:
                message = out_body.decode("utf-8", "replace")
            return await _error(send, sink.status, str(message))
        ctype = sink.header(b"content-type").split(b";")[0]
        if ctype == MSGPACK_CT:
            result: object = decode_msgpack(out_body)
        elif ctype.startswith(b"text/"):
            result = out_body.decode("utf-8")
        else:
            result = out_body
        results = list(result) if model.tuple_out and isinstance(result, (list, tuple)) else [result]
        if len(results) != len(model.outputs):
            results = [result]
        out_names = [o["name"] for o in model.outputs] if len(results) == len(model.outputs) else ["output"]
        wanted, binary_default = _requested(request)
        answer: dict[str, object] = {"model_name": model.name, "model_version": "1", "outputs": []}
        if "id" in request:
            answer["id"] = request["id"]
        tensors: list[bytes] = []
        outputs: list[dict[str, object]] = []
        for out_name, value in zip(out_names, results):
            if wanted is not None and str(out_name) not in wanted:
                continue
            as_binary = wanted.get(str(out_name), binary_default) if wanted is not None else binary_default
            tensor, raw = tensor_out(str(out_name), value, as_binary)
            outputs.append(tensor)
            if raw is not None:
                tensors.append(raw)
        answer["outputs"] = outputs
        head = msgspec.json.encode(answer)
        if not tensors:
            return await send_body(send, 200, head, _JSON_CT)
        extra = [(b"inference-header-content-length", str(len(head)).encode())]
        await send_body(send, 200, b"".join([head, *tensors]), b"application/octet-stream", extra)


async def _error(send: Send, status: int, message: str) -> None:
    await send_body(send, status, msgspec.json.encode({"error": message}), _JSON_CT)


def _header_int(headers: Any, name: bytes) -> int | None:
    for key, value in headers:
        if key == name:
            try:
                return int(value)
            except ValueError:
                raise TensorError(f"{name.decode()} must be an integer, got {bytes(value)!r}") from None
    return None


def _split(body: bytes, header_len: int | None) -> tuple[dict[str, Any], memoryview]:
    """The JSON inference request and the binary data after it."""
    if header_len is not None and not 0 <= header_len <= len(body):
        raise TensorError(
            f"Inference-Header-Content-Length {header_len} exceeds the body ({len(body)} bytes)"
        )
    end = len(body) if header_len is None else header_len
    try:
        request = msgspec.json.decode(body[:end])
    except msgspec.DecodeError as exc:
        raise TensorError(f"invalid inference request JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise TensorError("an inference request is a JSON object with an 'inputs' list")
    return request, memoryview(body)[end:]


def _requested(request: Mapping[str, Any]) -> tuple[dict[str, bool] | None, bool]:
    """The outputs asked for (name -> binary) or None for all, and whether outputs are binary by default."""
    params = request.get("parameters")
    binary_default = bool(params.get("binary_data_output", False)) if isinstance(params, dict) else False
    outputs = request.get("outputs")
    if not isinstance(outputs, list):
        return None, binary_default
    wanted: dict[str, bool] = {}
    for out in outputs:
        if not isinstance(out, dict) or not isinstance(out.get("name"), str):
            raise TensorError("each requested output is an object with a 'name'")
        p = out.get("parameters")
        wanted[out["name"]] = (
            bool(p.get("binary_data", binary_default)) if isinstance(p, dict) else binary_default
        )
    return wanted, binary_default


def _inputs(model: _Model, request: Mapping[str, Any], binary: memoryview) -> dict[str, object]:
    """The api's arguments from the request's input tensors (binary ones taken in order from ``binary``)."""
    codec = model.handler.codec
    values: dict[str, object] = {}
    offset = 0
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict):
            raise TensorError("each input tensor is a JSON object")
        name = tensor.get("name")
        if not isinstance(name, str):
            raise TensorError("an input tensor has no 'name'")
        if name not in codec.param_types:
            known = ", ".join(codec.param_names) or "none"
            raise TensorError(f"model {model.name!r} has no input {name!r} (inputs: {known})")
        datatype, shape = tensor.get("datatype"), tensor.get("shape")
        if datatype not in DATATYPES:
            raise TensorError(f"input {name!r}: unknown datatype {datatype!r}")
        if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise TensorError(f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
        params = tensor.get("parameters")
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise TensorError(f"input {name!r}: binary_data_size {size!r} exceeds the binary data")
            arr = tensor_from_binary(name, datatype, shape, binary[offset : offset + size])
            offset += size
        elif "data" in tensor:
            arr = tensor_from_json(name, datatype, shape, tensor["data"])
        else:
            raise TensorError(f"input {name!r} has neither 'data' nor a binary_data_size")
        values[name] = _as_param(codec.param_types[name], arr, datatype)
    if offset != len(binary):
        raise TensorError(f"{len(binary) - offset} bytes of binary data are not claimed by any input")
    return values


def _as_param(tp: object, arr: Any, datatype: str) -> object:
    """A tensor as the api's parameter type wants it: an array, a list, or one scalar."""
    tp = _plain(tp)
    if _is_numpy_array_type(tp):
        if datatype == "BYTES":
            raise TensorError("a numpy array parameter takes numeric or BOOL tensors, not BYTES")
        return arr
    if datatype == "BYTES":
        # JSON carries BYTES as strings, the binary extension as bytes: give the api what it declares.
        leaf = _leaf(tp)
        items = [
            _as_text(v) if leaf is str else _as_bytes(v) if leaf is bytes else v for v in arr.reshape(-1)
        ]
        value: object = object_array(items, list(arr.shape)).tolist()
    else:
        value = arr.tolist()
    if tp in _SCALAR_TYPES:
        flat = flatten(value)
        if len(flat) != 1:
            raise TensorError(
                f"a {getattr(tp, '__name__', tp)} parameter takes a one-element tensor, not {len(flat)}"
            )
        return flat[0]
    return value


def _as_text(v: object) -> object:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _as_bytes(v: object) -> object:
    return v.encode() if isinstance(v, str) else v


def _plain(tp: object) -> object:
    """``tp`` without ``Annotated`` and ``Optional`` around it."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _leaf(tp: object) -> object:
    """The element type of a (nested) list annotation, or the type itself."""
    tp = _plain(tp)
    while typing.get_origin(tp) in (list, tuple, Sequence) and typing.get_args(tp):
        tp = _plain(typing.get_args(tp)[0])
    return tp


async def _call_api(handler: APIHandler, scope: Scope, values: dict[str, object]) -> _Sink:
    """Run the api as an in-process ASGI call with a msgpack body; its whole response."""
    body = encode_msgpack(values)
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    keep = [(k, v) for k, v in scope["headers"] if k in (b"authorization", b"host")]
    headers = [*keep, (b"content-type", MSGPACK_CT), (b"accept", MSGPACK_CT)]
    inner = {
        **scope,
        "method": "POST",
        "path": handler.route,
        "raw_path": handler.route.encode(),
        "headers": headers,
    }
    sink = _Sink()
    await handler(inner, receive, sink)
    return sink
