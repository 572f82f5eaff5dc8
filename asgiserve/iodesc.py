"""The pydantic side of api IO, imported only when a service uses pydantic: ``BaseModel`` parameters and
outputs, ``Field(...)`` defaults, ``@api(input_spec=..., output_spec=...)`` and ``IODescriptor``.

A pydantic parameter is decoded by msgspec as any JSON value and validated by a ``TypeAdapter``,
built once per api; its errors become ``InputError``s located inside the parameter. ``IODescriptor`` is
a ``BaseModel`` whose fields may also be numpy arrays, pandas DataFrames, torch tensors or PIL images
(with ``validators`` metadata), read from and written to JSON as api parameters of those types are.
"""

from __future__ import annotations

import typing
from collections.abc import Callable

import msgspec
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined, core_schema

from .iotypes import (
    UNSET,
    InputError,
    OutputPlan,
    Rich,
    annotate,
    is_dataframe_type,
    is_image_type,
    is_numpy_type,
    is_tensor_type,
    plan_output,
    plan_param,
    split_annotated,
)

__all__ = [
    "Field",
    "IODescriptor",
    "SpecInput",
    "input_error",
    "model_output",
    "pydantic_param",
    "spec_output",
]

_REQUIRED = object()


def input_error(exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> InputError:
    """A pydantic ``ValidationError`` as an ``InputError``: its first error in the message, all in ``errors``."""
    errors: list[dict[str, object]] = [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = errors[0]
    return InputError(str(first["msg"]), tuple(typing.cast(list[str | int], first["loc"])), errors)


def _default_of(info: FieldInfo) -> Callable[[], object] | None:
    """How a ``Field``'s default is made, or None when the field is required."""
    if info.default is not PydanticUndefined and info.default is not Ellipsis:
        value = info.default
        return lambda: value
    factory = info.default_factory
    if factory is not None:
        return factory  # type: ignore[return-value]
    return None


def inline_refs(schema: dict[str, object]) -> dict[str, object]:
    """A pydantic JSON Schema with its ``$defs`` inlined, so that it fits in any document (recursion stops)."""
    defs = typing.cast(dict[str, dict[str, object]], schema.pop("$defs", {}))

    def walk(node: object, seen: tuple[str, ...]) -> object:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                name = ref[len("#/$defs/") :]
                if name in seen or name not in defs:
                    return {"type": "object", "title": name}
                return walk(defs[name], (*seen, name))
            return {k: walk(v, seen) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        return node

    return typing.cast(dict[str, object], walk(schema, ()))


def pydantic_param(tp: object, default: object) -> Rich:
    """The plan for a parameter typed with a pydantic model, or given a ``Field(...)`` default.

    Its value is decoded by msgspec as any JSON value and validated by pydantic in Python mode, so that a
    form field (multipart bodies) takes the same path as a JSON body."""
    make_default: Callable[[], object] | None = None
    annotation = tp
    extra: dict[str, object] = {}
    if isinstance(default, FieldInfo) and _is_rich(tp):  # Field(...) on an array, tensor, frame or image
        made = _default_of(default)
        rich = plan_param("field", tp, made() if made is not None else _empty(), always=True)
        if rich is not None:
            rich.schema = {**rich.schema, **_field_extra(default)}
            return rich
    if isinstance(default, FieldInfo):
        make_default = _default_of(default)
        if default.metadata:  # the constraints (ge, max_length, ...): Field in Annotated keeps only those
            annotation = annotate(tp, default.metadata)
        extra.update(_field_extra(default))
    elif default is not _empty():
        value = default
        make_default = lambda: value  # noqa: E731
    adapter: TypeAdapter[object] = TypeAdapter(typing.cast(typing.Any, annotation))

    def convert(raw: object) -> object:
        if raw is UNSET:
            if make_default is None:
                raise InputError(
                    "Field required", (), [{"loc": [], "msg": "Field required", "type": "missing"}]
                )
            return make_default()
        try:
            return adapter.validate_python(raw)
        except ValidationError as exc:
            raise input_error(exc) from None

    schema = inline_refs(adapter.json_schema())
    schema.update(extra)
    if make_default is not None:
        try:
            schema["default"] = adapter.dump_python(make_default(), mode="json")
        except Exception:  # a default that does not serialize is left out of the schema, not fatal
            pass
    # Decoded by msgspec as any JSON value (from a JSON body or a form field alike), then validated.
    return Rich(object, convert, schema, UNSET if make_default is not None else _empty())


def _field_extra(info: FieldInfo) -> dict[str, object]:
    """What a ``Field`` adds to a parameter's JSON Schema."""
    extra: dict[str, object] = {}
    if info.description:
        extra["description"] = info.description
    if info.title:
        extra["title"] = info.title
    if info.examples:
        extra["examples"] = info.examples
    return extra


def _empty() -> object:
    import inspect

    return inspect.Parameter.empty


def model_output(tp: object) -> OutputPlan:
    """The encoder for an output typed with a pydantic model (or containing one)."""
    adapter: TypeAdapter[object] = TypeAdapter(typing.cast(typing.Any, tp))

    def encode(value: object) -> tuple[bytes, bytes]:
        if isinstance(value, BaseModel):
            return value.__pydantic_serializer__.to_json(value), b"application/json"
        return adapter.dump_json(value), b"application/json"

    return OutputPlan(
        "json", b"application/json", encode, inline_refs(adapter.json_schema(mode="serialization"))
    )


class SpecInput:
    """``@api(input_spec=Model)``: the model's fields are the body's top-level keys, validated together."""

    def __init__(self, model: type[BaseModel]) -> None:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"input_spec must be a pydantic model class, got {model!r}")
        self.model = model
        self.names = tuple(model.model_fields)
        self.keys = {name: msgspec.json.encode(name) for name in self.names}
        self.forbid = model.model_config.get("extra") == "forbid"
        self.schema = inline_refs(model.model_json_schema())

    def fields(self) -> list[tuple[str, object, object]]:
        """msgspec fields: every one raw JSON, left unset when absent (the model says what is required)."""
        return [(name, msgspec.Raw, UNSET) for name in self.names]

    def validate(self, values: dict[str, object]) -> dict[str, object]:
        """The model's field values from the decoded fields, as keyword arguments."""
        parts = [
            self.keys[k] + b":" + bytes(typing.cast(msgspec.Raw, v))
            for k, v in values.items()
            if v is not UNSET
        ]
        try:
            model = self.model.model_validate_json(b"{" + b",".join(parts) + b"}")
        except ValidationError as exc:
            raise input_error(exc) from None
        return {name: getattr(model, name) for name in self.names}


def spec_output(model: type[BaseModel]) -> OutputPlan:
    """``@api(output_spec=Model)``: the result is validated as the model, then written as JSON."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"output_spec must be a pydantic model class, got {model!r}")

    def encode(value: object) -> tuple[bytes, bytes]:
        obj = value if isinstance(value, model) else model.model_validate(value)
        return obj.model_dump_json().encode(), b"application/json"

    return OutputPlan(
        "json", b"application/json", encode, inline_refs(model.model_json_schema(mode="serialization"))
    )


# -- IODescriptor ---------------------------------------------------------------------------------------


class _Rich:
    """``Annotated`` metadata giving pydantic a field of a rich type (array, tensor, frame, image)."""

    def __init__(self, tp: object) -> None:
        self.plan = plan_param("field", tp, _empty())
        self.out = plan_output(tp)

    def __get_pydantic_core_schema__(self, source: object, handler: Callable[[object], object]) -> object:
        plan, out = self.plan, self.out

        def validate(value: object) -> object:
            if plan is None or not isinstance(value, (list, dict, int, float, str)):
                return value  # already the rich object (built in Python, not from JSON)
            try:
                return plan.convert(value)
            except InputError as exc:
                raise ValueError(exc.message) from None

        def serialize(value: object, info: core_schema.SerializationInfo) -> object:
            if not info.mode_is_json() or out is None:
                return value
            return msgspec.json.decode(out.encode(value)[0])

        return core_schema.no_info_plain_validator_function(
            validate,
            serialization=core_schema.plain_serializer_function_ser_schema(serialize, info_arg=True),
            json_schema_input_schema=core_schema.any_schema(),
        )

    def __get_pydantic_json_schema__(
        self, schema: object, handler: Callable[[object], object]
    ) -> dict[str, object]:
        return dict(self.plan.schema) if self.plan is not None else {}


def _is_rich(tp: object) -> bool:
    base, _ = split_annotated(tp)
    base = typing.get_origin(base) or base  # ndarray[shape, dtype]
    return is_numpy_type(base) or is_tensor_type(base) or is_dataframe_type(base) or is_image_type(base)


class IODescriptor(BaseModel):
    """A pydantic model whose fields may also be numpy arrays, pandas DataFrames, torch tensors or PIL images.

    Such a field is read from JSON (nested lists, records) and written back as an api parameter of that type
    is, with ``validators`` metadata (``Shape``, ``DType``, ``DataframeSchema``) honoured.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init_subclass__(cls, **kwargs: object) -> None:
        # Runs before pydantic collects the fields: a rich field's annotation gains the metadata that
        # tells pydantic how to read and write it.
        try:
            hints = typing.get_type_hints(cls, include_extras=True)
        except Exception:  # unresolved forward references: pydantic reports them itself
            hints = {}
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063 (the dict itself: it is changed)
        for name in own:
            tp = hints.get(name)
            if tp is not None and _is_rich(tp):
                own[name] = typing.Annotated[tp, _Rich(tp)]
        super().__init_subclass__(**kwargs)  # type: ignore[arg-type]
