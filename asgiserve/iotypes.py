"""Rich api types beyond what msgspec decodes alone: pydantic models and ``Field`` defaults, PIL images,
pandas DataFrames, torch tensors, and numpy arrays or files with ``validators`` metadata.

Each such parameter gets a ``Rich`` plan, built once per api: the type msgspec decodes the body's value as
(raw JSON for pydantic, any JSON value, or a file ``Path``), and a converter that turns it into what the
api takes, raising ``InputError`` (a 400 naming the field) when it does not fit. Outputs of these types get
an encoder the same way. The libraries are imported only when an api declares one of their types; a
library that is missing is an ``ImportError`` saying which package to install.
"""

from __future__ import annotations

import fnmatch
import inspect
import io
import mimetypes
import pathlib
import sys
import types
import typing
from collections.abc import Callable

import msgspec

from .errors import BadRequest
from .validators import ContentType, DataframeSchema, DType, Shape

__all__ = [
    "InputError",
    "OutputPlan",
    "Rich",
    "Upload",
    "annotate",
    "bad_input",
    "is_bytes_type",
    "is_path_output",
    "is_path_type",
    "need",
    "plan_output",
    "plan_param",
    "schema_stand_in",
    "split_annotated",
]

UNSET = msgspec.UNSET


def _enc_hook(obj: object) -> object:
    # numpy scalars inside DataFrame rows, tensors, pydantic models, timestamps: to builtin types.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


encode_json = msgspec.json.Encoder(enc_hook=_enc_hook).encode


class InputError(ValueError):
    """A value that does not fit its parameter: the message, and where (inside the parameter) it failed."""

    def __init__(
        self, message: str, loc: tuple[str | int, ...] = (), errors: list[dict[str, object]] | None = None
    ):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.errors = errors  # every error, each with its own ``loc`` (pydantic reports them all)


class Rich:
    """How one parameter is decoded: msgspec's field type and default, then ``convert``; its JSON Schema."""

    __slots__ = ("convert", "default", "field_type", "schema")

    def __init__(
        self,
        field_type: object,
        convert: Callable[[object], object],
        schema: dict[str, object],
        default: object = UNSET,
    ) -> None:
        self.field_type = field_type
        self.convert = convert
        self.schema = schema
        self.default = default


class OutputPlan:
    """How an output type is encoded: ``encode(value) -> (body, content type)``, and its JSON Schema."""

    __slots__ = ("content_type", "encode", "kind", "schema")

    def __init__(
        self,
        kind: str,
        content_type: bytes,
        encode: Callable[[object], tuple[bytes, bytes]],
        schema: dict[str, object],
    ) -> None:
        self.kind = kind  # "json" or "binary": how the schema documents it
        self.content_type = content_type
        self.encode = encode
        self.schema = schema


def need(module: str, what: str) -> typing.Any:
    """Import ``module`` for ``what``, or raise an ``ImportError`` naming the package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = {"PIL.Image": "pillow", "PIL": "pillow"}.get(module, module.split(".")[0])
        raise ImportError(f"{what} needs {package}, which is not installed: pip install {package}") from exc


def split_annotated(tp: object) -> tuple[object, tuple[object, ...]]:
    """``Annotated[T, *meta]`` as ``(T, meta)``; any other type as ``(tp, ())``."""
    if typing.get_origin(tp) is typing.Annotated:
        return tp.__origin__, tuple(tp.__metadata__)  # type: ignore[attr-defined]
    return tp, ()


def _named(tp: object, module: str, name: str) -> bool:
    return isinstance(tp, type) and tp.__name__ == name and tp.__module__.split(".")[0] == module


def is_image_type(tp: object) -> bool:
    """A PIL image class (``PIL.Image.Image`` or a subclass), or the ``PIL.Image`` module (BentoML's guides
    annotate with it)."""
    module = sys.modules.get("PIL.Image")
    if module is None:
        return False
    return tp is module or (isinstance(tp, type) and issubclass(tp, module.Image))


def is_dataframe_type(tp: object) -> bool:
    """``pandas.DataFrame``."""
    return _named(tp, "pandas", "DataFrame")


def is_tensor_type(tp: object) -> bool:
    """``torch.Tensor``."""
    return _named(tp, "torch", "Tensor")


def is_numpy_type(tp: object) -> bool:
    """``numpy.ndarray``."""
    return _named(tp, "numpy", "ndarray")


def uses_pydantic(tp: object, default: object = None) -> bool:
    """Whether a parameter needs pydantic: a ``FieldInfo`` default, or a model anywhere in its type.

    Without pydantic imported, nothing can be one of its types: that test costs a dict lookup.
    """
    pydantic = sys.modules.get("pydantic")
    if pydantic is None:
        return False
    from pydantic.fields import FieldInfo

    if isinstance(default, FieldInfo):
        return True
    _, metas = split_annotated(tp)
    if any(isinstance(m, FieldInfo) for m in metas):
        return True
    return _has_model(tp, pydantic.BaseModel)


def _has_model(tp: object, base: type) -> bool:
    if isinstance(tp, type):
        return issubclass(tp, base)
    return any(_has_model(a, base) for a in typing.get_args(tp))


# annotated_types constraints (what pydantic and BentoML's guides use) as msgspec.Meta's keywords, so that
# msgspec, which ignores metadata it does not know, checks them too.
_BOUNDS = {"Gt": ("gt",), "Ge": ("ge",), "Lt": ("lt",), "Le": ("le",), "MultipleOf": ("multiple_of",)}
_LENGTHS = {"MinLen": ("min_length",), "MaxLen": ("max_length",)}


def msgspec_constraints(tp: object) -> object:
    """``tp`` with its ``annotated_types`` metadata (``Ge``, ``MaxLen``, ...) turned into ``msgspec.Meta``."""
    base, metas = split_annotated(tp)
    if not any(type(m).__module__ == "annotated_types" for m in metas):
        return tp
    kept: list[object] = []
    for m in metas:
        kind = type(m).__name__
        if type(m).__module__ != "annotated_types":
            kept.append(m)
        elif kind in _BOUNDS:
            key = _BOUNDS[kind][0]
            kept.append(msgspec.Meta(**{key: getattr(m, key)}))
        elif kind in _LENGTHS:
            key = _LENGTHS[kind][0]
            kept.append(msgspec.Meta(**{key: getattr(m, key)}))
        elif kind == "Len":
            kept.append(msgspec.Meta(min_length=m.min_length, max_length=m.max_length))  # type: ignore[attr-defined]
        elif kind == "Interval":
            bounds = {k: getattr(m, k) for k in ("gt", "ge", "lt", "le") if getattr(m, k) is not None}
            kept.append(msgspec.Meta(**bounds))
        else:
            raise TypeError(f"annotated_types.{kind} is not supported on api parameters")
    return annotate(base, kept) if kept else base


def annotate(base: object, metas: typing.Sequence[object]) -> object:
    """``Annotated[base, *metas]``, built at run time."""
    args = (base, *metas)
    return typing.Annotated.__class_getitem__(args)  # type: ignore[attr-defined]


def _meta(metas: tuple[object, ...], kind: type) -> typing.Any:
    return next((m for m in metas if isinstance(m, kind)), None)


def plan_param(name: str, tp: object, default: object, always: bool = False) -> Rich | None:
    """The plan for a parameter msgspec cannot decode alone, or None (msgspec's own types; pydantic's are
    ``iodesc``'s); ``always``: a plan even for a plain numpy array."""
    base, metas = split_annotated(tp)
    rich: Rich | None = None
    if is_numpy_type(typing.get_origin(base)):  # ndarray[shape, np.dtype[float16]]: its dtype, if given
        dtype_args = typing.get_args(typing.get_args(base)[1]) if len(typing.get_args(base)) == 2 else ()
        if dtype_args and isinstance(dtype_args[0], type) and not _meta(metas, DType):
            metas = (*metas, DType(dtype_args[0].__name__))
        base = typing.get_origin(base)
        if not (_meta(metas, Shape) or _meta(metas, DType)):
            metas = (*metas, DType(""))  # decoded as any array: the rich path all the same
    if always and is_numpy_type(base) and not (_meta(metas, Shape) or _meta(metas, DType)):
        metas = (*metas, DType(""))  # a plain array that needs a plan all the same (a Field default)
    if is_image_type(base):
        rich = Rich(
            pathlib.Path, _image_reader(_meta(metas, ContentType)), {"type": "string", "format": "binary"}
        )
    elif is_dataframe_type(base):
        schema = _meta(metas, DataframeSchema) or DataframeSchema()
        rich = Rich(object, _frame_reader(schema), _frame_schema(schema))
    elif is_tensor_type(base) or (is_numpy_type(base) and (_meta(metas, Shape) or _meta(metas, DType))):
        shape, dtype = _meta(metas, Shape), _meta(metas, DType)
        convert = _tensor_reader(
            "torch" if is_tensor_type(base) else "numpy",
            shape.dimensions if shape else None,
            dtype.dtype if dtype and dtype.dtype else None,
        )
        rich = Rich(object, convert, _tensor_schema(shape.dimensions if shape else None))
    elif _meta(metas, ContentType) and _is_file(base):
        rich = Rich(
            tp,
            _content_checker(_meta(metas, ContentType).content_type),
            {"type": "string", "format": "binary"},
        )
    if rich is not None and default is not inspect.Parameter.empty:
        rich.default = default
    return rich


def _is_file(tp: object) -> bool:
    return isinstance(tp, type) and issubclass(tp, pathlib.PurePath)


def upload_type(value: object) -> str:
    """The media type of an uploaded file: the one its form part declared, else guessed from its name."""
    declared = getattr(value, "content_type", None)
    if declared:
        return str(declared).split(";")[0].strip().lower()
    return mimetypes.guess_type(str(value))[0] or "application/octet-stream"


def _content_checker(pattern: str) -> Callable[[object], object]:
    def check(value: object) -> object:
        if value is None or getattr(value, "url", None):  # no file, or a URL the handler downloads later
            return value
        got = upload_type(value)
        if not fnmatch.fnmatch(got, pattern):
            raise InputError(f"Invalid content type {got}, expected {pattern}")
        return value

    return check


def _image_reader(content_type: ContentType | None) -> Callable[[object], object]:
    check = _content_checker(content_type.content_type) if content_type else None

    def read(value: object) -> object:
        if value is None:
            return None
        if check is not None:
            check(value)
        image_mod = need("PIL.Image", "a PIL image parameter")
        try:
            image = image_mod.open(typing.cast(pathlib.Path, value))
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"Expected an image file: {exc}") from None
        return image

    return read


def _frame_reader(schema: DataframeSchema) -> Callable[[object], object]:
    def read(value: object) -> object:
        pandas = need("pandas", "a pandas DataFrame parameter")
        if schema.orient == "records" and not isinstance(value, list):
            raise InputError("Expected a list of records (objects), as DataframeSchema(orient='records')")
        if schema.orient == "columns" and not isinstance(value, dict):
            raise InputError("Expected an object of columns, as DataframeSchema(orient='columns')")
        try:
            return pandas.DataFrame(value, columns=list(schema.columns) if schema.columns else None)
        except (ValueError, TypeError) as exc:
            raise InputError(f"Expected a DataFrame: {exc}") from None

    return read


def _frame_schema(schema: DataframeSchema) -> dict[str, object]:
    if schema.orient == "records":
        return {"type": "array", "items": {"type": "object"}}
    return {"type": "object", "additionalProperties": {"type": "array"}}


def _tensor_reader(kind: str, shape: tuple[int, ...] | None, dtype: str | None) -> Callable[[object], object]:
    def read(value: object) -> object:
        if value is None:
            return None
        try:
            if kind == "torch":
                torch = need("torch", "a torch.Tensor parameter")
                arr = torch.tensor(value, dtype=getattr(torch, dtype) if dtype else None)
            else:
                numpy = need("numpy", "a numpy array parameter")
                arr = numpy.asarray(value, dtype=dtype)
            return arr.reshape(shape) if shape is not None else arr
        except (ValueError, TypeError, RuntimeError, AttributeError) as exc:
            want = f" of shape {shape}" if shape else ""
            want += f" and dtype {dtype}" if dtype else ""
            raise InputError(f"Expected an array{want}: {exc}") from None

    return read


def _tensor_schema(shape: tuple[int, ...] | None) -> dict[str, object]:
    child: dict[str, object] = {"type": "number"}
    for _ in range(len(shape) if shape else 1):
        child = {"type": "array", "items": child}
    return child


def plan_output(tp: object) -> OutputPlan | None:
    """The encoder for an output type msgspec does not encode as JSON alone, or None."""
    base, metas = split_annotated(tp)
    if is_image_type(base):
        return OutputPlan("binary", b"image/png", _encode_image, {"type": "string", "format": "binary"})
    if is_dataframe_type(base):
        schema = _meta(metas, DataframeSchema) or DataframeSchema()
        return OutputPlan("json", b"application/json", _frame_writer(schema), _frame_schema(schema))
    if is_tensor_type(base) or is_numpy_type(base):
        shape = _meta(metas, Shape)
        return OutputPlan(
            "json", b"application/json", _encode_tensor, _tensor_schema(shape.dimensions if shape else None)
        )
    return None


def _encode_image(value: object) -> tuple[bytes, bytes]:
    buffer = io.BytesIO()
    fmt = getattr(value, "format", None) or "PNG"
    value.save(buffer, format=fmt)  # type: ignore[attr-defined]
    return buffer.getvalue(), f"image/{fmt.lower()}".encode()


def _frame_writer(schema: DataframeSchema) -> Callable[[object], tuple[bytes, bytes]]:
    orient = "records" if schema.orient == "records" else "list"

    def write(value: object) -> tuple[bytes, bytes]:
        return encode_json(value.to_dict(orient=orient)), b"application/json"  # type: ignore[attr-defined]

    return write


def _encode_tensor(value: object) -> tuple[bytes, bytes]:
    if is_tensor_type(type(value)):
        value = value.detach().cpu().tolist()  # type: ignore[attr-defined]
    return encode_json(value), b"application/json"


def schema_stand_in(name: str, schema: dict[str, object]) -> type:
    """A type that msgspec's schema hook documents as ``schema`` (the JSON Schema of a rich parameter)."""
    return type(name, (), {"__asgiserve_schema__": schema})


def is_path_output(tp: object) -> bool:
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        return True
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    is_union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    return (
        is_union and bool(args) and all(isinstance(a, type) and issubclass(a, pathlib.PurePath) for a in args)
    )


def is_path_type(tp: object) -> bool:
    if isinstance(tp, type) and issubclass(tp, pathlib.PurePath):
        return True
    return any(is_path_type(a) for a in typing.get_args(tp) if a is not type(None))


def is_bytes_type(tp: object) -> bool:
    if tp in (bytes, bytearray):
        return True
    return any(is_bytes_type(a) for a in typing.get_args(tp) if a is not type(None))


def bad_input(name: str, exc: InputError) -> BadRequest:
    """A rich parameter's ``InputError`` as msgspec words its errors: the message, then where."""
    loc: list[str | int] = [name] if name else []
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in [*loc, *exc.loc])
    errors = exc.errors or [{"loc": list(exc.loc), "msg": exc.message, "type": "value_error"}]
    detail: list[object] = [
        {**e, "loc": ["body", *loc, *typing.cast(list[object], e["loc"])]} for e in errors
    ]
    return BadRequest(f"{exc.message} - at `${where}`", detail=detail)


class Upload(type(pathlib.Path())):  # type: ignore[misc]
    """An uploaded file saved for a ``Path`` parameter; ``content_type`` is what its form part declared."""

    __slots__ = ("content_type",)
    content_type: str | None

    @classmethod
    def of(cls, path: pathlib.Path, content_type: str | None) -> Upload:
        """``path``, carrying the part's media type."""
        up = cls(path)
        up.content_type = content_type
        return up
