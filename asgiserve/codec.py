"""Signature -> msgspec types, built once per api: the decoder for request bodies and the output encoder.

Every api's parameters become one msgspec Struct (keyword-only fields, unknown keys forbidden), decoded
straight from the JSON body by a typed ``msgspec.json.Decoder``: validation and decoding are one C call.
Outputs are encoded by their declared return type: ``str`` raw text, ``bytes`` raw octets, anything else
JSON (msgspec; orjson for numpy arrays). Undeclared return types are dispatched on the value's type.
"""

from __future__ import annotations

import copy
import inspect
import pathlib
import re
import typing
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
)
from typing import Any

import msgspec
import orjson

from .binarycodec import BinaryBodies, _is_numpy_array_type
from .context import Context
from .errors import BadRequest
from .iotypes import (
    InputError,
    OutputPlan,
    Rich,
    bad_input,
    is_bytes_type,
    is_path_output,
    is_path_type,
    msgspec_constraints,
    plan_output,
    plan_param,
    schema_stand_in,
    split_annotated,
    uses_pydantic,
)
from .validators import ContentType

__all__ = ["APICodec", "FileURL", "Output", "validation_detail"]

JSON_CT = b"application/json"
TEXT_CT = b"text/plain; charset=utf-8"
BYTES_CT = b"application/octet-stream"
NDJSON_CT = b"application/x-ndjson"
SSE_CT = b"text/event-stream"

_LOC_RE = re.compile(r" - at `\$(.*)`$")
_LOC_PART_RE = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_SYNC_STREAMS = (Generator, Iterator)
_ASYNC_STREAMS = (AsyncGenerator, AsyncIterator, AsyncIterable)


class Output:
    """How an api's return value becomes a response: kind is text, bytes, json, file, dynamic or custom
    (``plan`` encodes it: pydantic models, images, DataFrames, tensors)."""

    __slots__ = ("content_type", "kind", "plan", "schema_type")

    def __init__(
        self, kind: str, content_type: bytes, schema_type: object, plan: OutputPlan | None = None
    ) -> None:
        self.kind = kind
        self.content_type = content_type
        self.schema_type = schema_type
        self.plan = plan


class FileURL(type(pathlib.Path())):  # type: ignore[misc]
    """An http(s) URL given for a file input; the handler downloads it and passes a ``Path`` instead.

    A ``Path`` subclass so that it passes msgspec's type check for ``Path`` fields; ``url`` is the URL.
    """

    __slots__ = ("url",)
    url: str

    @classmethod
    def of(cls, url: str) -> FileURL:
        """Wrap an http(s) URL (any other string is not a file input)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError("Expected a file upload (multipart/form-data) or an http(s) URL")
        path = cls(url)
        path.url = url
        return path


def _dec_hook(tp: type, obj: object) -> object:
    if tp is object:
        return obj  # any JSON value (with a dec_hook, msgspec asks it about ``object``)
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        if isinstance(obj, pathlib.PurePath):
            return obj
        if isinstance(obj, str):
            return FileURL.of(obj)
        raise ValueError("Expected a file upload (multipart/form-data) or an http(s) URL")
    if _is_numpy_array_type(tp):
        import numpy

        try:
            return numpy.asarray(obj)
        except ValueError as exc:  # ragged nested lists
            raise ValueError(f"Expected a rectangular array: {exc}") from None
    raise NotImplementedError(f"cannot decode {tp!r}")


def _enc_hook(obj: object) -> object:
    # numpy scalars and arrays nested inside other values, and pydantic models, to builtin types.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if isinstance(obj, pathlib.PurePath):
        return str(obj)
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


def _schema_hook(tp: type) -> dict[str, object]:
    given: dict[str, object] | None = getattr(tp, "__asgiserve_schema__", None)
    if given is not None:  # a stand-in for a rich parameter's type (see ``schema_stand_in``)
        return given
    if tp is object:
        return {"description": "Any JSON value"}  # not {}: msgspec takes an empty schema for no answer
    if _is_numpy_array_type(tp):
        return {"type": "array", "items": {}}
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        return {"type": "string", "format": "binary"}
    raise NotImplementedError(f"no JSON Schema for {tp!r}")


_json_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
# Types encode_json() has sent down msgspec's path (the builtins, then Structs and others as they come).
PLAIN_JSON: set[type] = {dict, list, str, int, float, bool, type(None)}
encode_plain_json = _json_encoder.encode  # encode_json() for a value whose type is in PLAIN_JSON


def encode_json(value: object) -> bytes:
    """JSON bytes for any api output; numpy arrays take orjson's native path."""
    kind = type(value)
    if kind in PLAIN_JSON:
        return _json_encoder.encode(value)
    if kind.__module__ != "numpy":
        out = _json_encoder.encode(value)
        if len(PLAIN_JSON) < 256:
            PLAIN_JSON.add(kind)
        return out
    return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)


def validation_detail(message: str) -> list[dict[str, object]]:
    """Turn a msgspec validation message into a ``detail`` list with the field location."""
    loc: list[str | int] = ["body"]
    m = _LOC_RE.search(message)
    if m:
        for name, index in _LOC_PART_RE.findall(m.group(1)):
            loc.append(name if name else int(index))
    missing = re.match(r"Object missing required field `([^`]+)`", message)
    if missing:
        loc.append(missing.group(1))
    unknown = re.match(r"Object contains unknown field `([^`]+)`", message)
    if unknown:
        loc.append(unknown.group(1))
    return [{"loc": loc, "msg": message, "type": "value_error"}]


def _default_field(default: object) -> object:
    if isinstance(default, (list, dict, set, bytearray)) and default:
        return msgspec.field(default_factory=lambda: copy.deepcopy(default))
    return default


def _output_for(tp: object, media_type: str | None, output_spec: object = None) -> Output:
    plan: OutputPlan | None = None
    base, metas = split_annotated(tp)
    declared = next((m.content_type for m in metas if isinstance(m, ContentType)), None)
    media_type = media_type or declared
    if output_spec is not None:
        from .iodesc import spec_output

        plan = spec_output(output_spec)  # type: ignore[arg-type]
    elif tp is not inspect.Signature.empty and tp is not Any:
        plan = plan_output(tp)
        if plan is None and uses_pydantic(tp):
            from .iodesc import model_output

            plan = model_output(tp)
    if plan is not None:
        return Output("custom", media_type.encode() if media_type else plan.content_type, tp, plan)
    if (metas and base in (str, bytes, bytearray, memoryview)) or is_path_output(base):
        tp = base  # Annotated[Path, ContentType(...)] and the like: the type, with its media type
    if tp is inspect.Signature.empty or tp is Any:
        return Output("dynamic", JSON_CT, Any)
    if tp is str:
        return Output("text", media_type.encode() if media_type else TEXT_CT, str)
    if tp in (bytes, bytearray, memoryview):
        return Output("bytes", media_type.encode() if media_type else BYTES_CT, bytes)
    if is_path_output(tp):  # Path, or Optional[Path]: a file either way, never its server-side name
        return Output("file", media_type.encode() if media_type else BYTES_CT, pathlib.Path)
    return Output("json", JSON_CT, tp)


class APICodec(BinaryBodies):
    """Decoder, encoder and schemas for one api, built from its signature once."""

    output: Output
    # For ``BinaryBodies``, which cannot import this module.
    dec_hook = staticmethod(_dec_hook)
    detail_of = staticmethod(validation_detail)

    def __init__(
        self,
        func: Callable[..., object],
        api_name: str,
        media_type: str | None = None,
        input_spec: object = None,
        output_spec: object = None,
    ) -> None:
        self.name = api_name
        sig = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception as exc:
            raise TypeError(f"cannot resolve the type hints of api {api_name!r}: {exc}") from exc
        params = list(sig.parameters.values())[1:]
        # BentoML's rule: ``ctx`` (else ``context``), unannotated or annotated ``Context``, is injected.
        self.ctx_param: str | None = None
        for p in params:
            if p.name in ("ctx", "context"):
                if p.annotation is p.empty or hints.get(p.name) is Context:
                    self.ctx_param = p.name
                break
        params = [p for p in params if p.name != self.ctx_param]
        fields: list[tuple[str, object] | tuple[str, object, object]] = []
        schema_fields: list[tuple[str, object] | tuple[str, object, object]] = []
        # Parameters msgspec decodes as a stand-in type (raw JSON, any value, a file) and ``converters``
        # turn into what the api takes; only apis with rich types have any.
        converters: list[tuple[str, Callable[[object], object]]] = []
        self.spec_input = None
        if input_spec is not None:
            from .iodesc import SpecInput

            self.spec_input = SpecInput(input_spec)  # type: ignore[arg-type]
            fields.extend(self.spec_input.fields())
            schema_fields.append(("_", schema_stand_in("Spec", self.spec_input.schema), msgspec.UNSET))
            params = [p for p in params if p.kind is p.VAR_KEYWORD]  # the model's fields replace them
        # Parameters taking a file: Path types (uploaded, or downloaded from a URL) and bytes.
        self.file_params: dict[str, object] = {}
        self.path_params: tuple[str, ...] = ()
        self.param_types: dict[str, object] = {}
        self.var_kw = False
        for p in params:
            if p.kind is p.VAR_KEYWORD:
                self.var_kw = True
                continue
            tp = hints.get(p.name, Any)
            rich: Rich | None
            if uses_pydantic(tp, p.default):
                from .iodesc import pydantic_param

                rich = pydantic_param(tp, p.default)
            else:
                rich = plan_param(p.name, tp, p.default)
            if rich is not None:
                converters.append((p.name, rich.convert))
                stand_in = schema_stand_in(p.name, rich.schema)
                tp = rich.field_type
                if rich.default is p.empty:
                    fields.append((p.name, tp))
                    schema_fields.append((p.name, stand_in))
                else:
                    fields.append((p.name, tp, rich.default))
                    schema_fields.append((p.name, stand_in, msgspec.UNSET))  # the schema gives the default
                self.param_types[p.name] = tp
                if is_path_type(tp):
                    self.file_params[p.name] = tp
                    self.path_params += (p.name,)
                continue
            tp = msgspec_constraints(tp)
            self.param_types[p.name] = tp
            if is_path_type(tp):
                self.file_params[p.name] = tp
                self.path_params += (p.name,)
            elif is_bytes_type(tp):
                self.file_params[p.name] = tp
            if p.default is p.empty:
                fields.append((p.name, tp))
                schema_fields.append((p.name, tp))
            else:
                fields.append((p.name, tp, _default_field(p.default)))
                schema_fields.append((p.name, tp, _default_field(p.default)))
        struct_name = "".join(part[:1].upper() + part[1:] for part in api_name.split("_")) + "Input"
        forbid = not self.var_kw and (self.spec_input is None or self.spec_input.forbid)
        self.input_type: type[msgspec.Struct] = msgspec.defstruct(
            struct_name, fields, kw_only=True, forbid_unknown_fields=forbid
        )
        # What the documents describe: the input type itself, unless rich parameters stand in for theirs.
        self.schema_type: type[msgspec.Struct] = self.input_type
        if converters or self.spec_input is not None:
            self.schema_type = msgspec.defstruct(struct_name, schema_fields, kw_only=True)
        self.converters = tuple(converters)
        self.param_names: tuple[str, ...] = tuple(f[0] for f in fields)
        # Positional calls are a little cheaper than keyword calls on the hot path.
        self.positional = all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        # The api is called with the fields in order (else by name): decided once, read per call.
        self.spread = (
            self.positional
            and not self.var_kw
            and not converters
            and not self.ctx_param
            and not self.spec_input
        )
        # The same for an api whose context parameter comes last: called with the fields, then the context.
        all_params = list(sig.parameters.values())[1:]
        self.ctx_last = (
            self.ctx_param is not None
            and all_params[-1].name == self.ctx_param
            and all(p.kind is p.POSITIONAL_OR_KEYWORD for p in all_params)
            and not converters
            and self.spec_input is None
        )
        self.decoder = msgspec.json.Decoder(self.input_type, dec_hook=_dec_hook)
        self._empty = None if any(len(f) == 2 for f in fields) else b"{}"

        ret = hints.get("return", sig.return_annotation)
        origin = typing.get_origin(ret)
        # A stream is a generator function, or a function annotated to return an iterator (which it
        # builds itself: ``iterator_factory`` tells the handler to call it before iterating).
        self.stream = "none"
        self.iterator_factory = False
        if inspect.isasyncgenfunction(func):
            self.stream = "async"
        elif inspect.isgeneratorfunction(func):
            self.stream = "sync"
        elif origin in _ASYNC_STREAMS:
            self.stream, self.iterator_factory = "async", True
        elif origin in _SYNC_STREAMS:
            self.stream, self.iterator_factory = "sync", True
        item = ret
        if self.stream != "none" or origin in _SYNC_STREAMS or origin in _ASYNC_STREAMS:
            args = typing.get_args(ret)
            item = args[0] if args else Any
        self.output = _output_for(item, media_type, output_spec)
        self.sse = media_type == "text/event-stream"
        if self.stream != "none":
            if self.sse:
                self.output.content_type = SSE_CT
            elif self.output.kind in ("json", "dynamic"):
                self.output.content_type = NDJSON_CT

    def decode(self, body: bytes) -> msgspec.Struct:
        """Decode a JSON object body into the api's input Struct; raise ``BadRequest`` when invalid."""
        if not body:
            if self._empty is None:
                required = [n for n, f in zip(self.param_names, _required_flags(self.input_type)) if f]
                raise BadRequest(
                    f"Object missing required field `{required[0]}`",
                    detail=[
                        {"loc": ["body", n], "msg": "Field required", "type": "missing"} for n in required
                    ],
                )
            body = self._empty
        try:
            return self.decoder.decode(body)
        except msgspec.ValidationError as exc:
            msg = str(exc)
            raise BadRequest(msg, detail=validation_detail(msg)) from None
        except msgspec.DecodeError as exc:
            raise BadRequest(f"Invalid JSON body: {exc}") from None

    def call_args(
        self, obj: msgspec.Struct, ctx: Context | None = None
    ) -> tuple[tuple[object, ...], dict[str, object]]:
        """The positional and keyword arguments for the api function from a decoded input (and its context);
        a rich parameter that does not fit is a ``BadRequest``."""
        if self.spread:
            return msgspec.structs.astuple(obj), {}
        kwargs = msgspec.structs.asdict(obj)
        if self.converters or self.spec_input is not None:
            self._convert(kwargs)
        if self.ctx_param is not None:
            kwargs[self.ctx_param] = ctx
        return (), kwargs

    def _convert(self, kwargs: dict[str, object]) -> None:
        name = ""
        try:
            if self.spec_input is not None:
                spec_values = {n: kwargs.pop(n) for n in self.spec_input.names}
                kwargs.update(self.spec_input.validate(spec_values))
            for name, convert in self.converters:
                kwargs[name] = convert(kwargs[name])
        except InputError as exc:
            raise bad_input(name, exc) from None

    def input_schema(self) -> dict[str, object]:
        """The JSON Schema of the api's input object (nested definitions under ``$defs``)."""
        (schema,), components = msgspec.json.schema_components(
            [self.schema_type], schema_hook=_schema_hook, ref_template="#/$defs/{name}"
        )
        name = self.schema_type.__name__
        out = dict(components.pop(name))
        if self.spec_input is not None:  # the model's own schema is the input's
            props = typing.cast(dict[str, dict[str, object]], out.get("properties", {}))
            out = {**props.get("_", {})}
        out["title"] = name
        out.setdefault("properties", {})
        out.setdefault("required", [])
        if components:
            out["$defs"] = components
        del schema
        return out

    def output_schema(self) -> dict[str, object]:
        """The JSON Schema of the output, plus BentoML's ``is_stream`` and ``media_type`` keys."""
        kind = self.output.kind
        out: dict[str, object]
        if kind == "text":
            out = {"type": "string"}
        elif kind in ("bytes", "file"):
            out = {"type": "string", "format": "binary"}
        elif kind == "dynamic":
            out = {}
        elif kind == "custom" and self.output.plan is not None:
            out = dict(self.output.plan.schema)
        else:
            try:
                out = msgspec.json.schema(self.output.schema_type, schema_hook=_schema_hook)
            except (TypeError, NotImplementedError):
                out = {}
        out["is_stream"] = self.stream != "none"
        out["media_type"] = self.output.content_type.decode().split(";")[0]
        return out


def _required_flags(struct_type: type[msgspec.Struct]) -> list[bool]:
    return [f.required for f in msgspec.structs.fields(struct_type)]
