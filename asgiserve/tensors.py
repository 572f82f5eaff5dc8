"""numpy arrays on the wire: the msgpack extension type and numpy's ``.npy`` format.

numpy is imported only when an array is actually encoded or decoded, so services without arrays never
load it. The msgpack extension (type code ``NDARRAY_EXT``) carries one array as::

    u8  n            length of the dtype string
    n   dtype        numpy's dtype string, little-endian or byte-order-free ("<f4", "<i8", "|u1", "|b1")
    u8  ndim         number of dimensions (0 for a scalar array)
    ndim x u64 (LE)  the shape
    ...              the elements, row-major (C order), little-endian

On decode the array is a read-only view of the request body (no copy); object, void and structured dtypes
are refused, as is data whose length disagrees with the shape.
"""

from __future__ import annotations

import ast
import struct
import typing
from collections.abc import Iterable
from typing import Any

import msgspec

if typing.TYPE_CHECKING:
    import numpy

__all__ = [
    "DATATYPES",
    "MSGPACK_CT",
    "MSGPACK_TYPES",
    "NDARRAY_EXT",
    "NPY_CT",
    "TensorError",
    "array_ext",
    "binary_accept",
    "decode_msgpack",
    "decode_npy",
    "encode_as",
    "encode_msgpack",
    "encode_npy",
    "ext_hook",
    "flatten",
    "is_array",
    "negotiate",
    "object_array",
    "tensor_from_binary",
    "tensor_from_json",
    "tensor_out",
]

NDARRAY_EXT = 1
_U64 = struct.Struct("<Q")
_NPY_MAGIC = b"\x93NUMPY"


def is_array(value: object) -> bool:
    """True for a numpy ndarray, without importing numpy."""
    kind = type(value)
    return kind.__name__ == "ndarray" and kind.__module__ == "numpy"


def _wire_dtype(arr: numpy.ndarray[typing.Any, typing.Any]) -> numpy.ndarray[typing.Any, typing.Any]:
    """``arr`` in C order and little-endian (a copy only when it is neither)."""
    import numpy

    if arr.dtype.kind not in "biufc" or arr.dtype.fields is not None:
        raise TypeError(f"arrays of dtype {arr.dtype} cannot be sent (numbers and booleans only)")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr if arr.flags.c_contiguous else numpy.array(arr, order="C")  # ascontiguousarray makes 0-d 1-d


def array_ext(arr: numpy.ndarray[typing.Any, typing.Any]) -> msgspec.msgpack.Ext:
    """The msgpack extension value carrying ``arr`` (see the module doc for the layout)."""
    arr = _wire_dtype(arr)
    dtype = arr.dtype.str.encode()
    head = bytes((len(dtype),)) + dtype + bytes((arr.ndim,)) + b"".join(_U64.pack(n) for n in arr.shape)
    buf = bytearray(len(head) + arr.nbytes)
    buf[: len(head)] = head
    if arr.nbytes:  # one copy, straight from the array's buffer (a memoryview cannot cast an empty one)
        buf[len(head) :] = arr.data.cast("B")
    return msgspec.msgpack.Ext(NDARRAY_EXT, buf)


def _dtype(name: str) -> numpy.dtype[typing.Any]:
    import numpy

    try:
        dtype = numpy.dtype(name)
    except TypeError:
        raise ValueError(f"unknown array dtype {name!r}") from None
    if dtype.kind not in "biufc" or dtype.fields is not None or dtype.subdtype is not None:
        raise ValueError(f"array dtype {name!r} is not allowed (numbers and booleans only)")
    return dtype


def _view(
    data: memoryview, offset: int, dtype: numpy.dtype[typing.Any], shape: tuple[int, ...], fortran: bool
) -> numpy.ndarray[typing.Any, typing.Any]:
    import numpy

    count = 1
    for n in shape:
        count *= n
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(
            f"array data is {len(data) - offset} bytes, but shape {list(shape)} of {dtype} needs "
            f"{count * dtype.itemsize}"
        )
    flat = numpy.frombuffer(data, dtype=dtype, count=count, offset=offset)
    return flat.reshape(shape, order="F" if fortran else "C")


def ext_hook(code: int, data: memoryview) -> object:
    """msgspec's ``ext_hook``: the array of an ``NDARRAY_EXT`` value, a view of the message buffer."""
    if code != NDARRAY_EXT:
        raise ValueError(f"unknown msgpack extension type {code}")
    try:
        n = data[0]
        dtype = _dtype(bytes(data[1 : 1 + n]).decode("ascii"))
        ndim = data[1 + n]
        start = 2 + n
        shape = tuple(_U64.unpack_from(data, start + 8 * i)[0] for i in range(ndim))
    except (IndexError, struct.error, UnicodeDecodeError):
        raise ValueError("truncated array extension") from None
    return _view(data, start + 8 * ndim, dtype, shape, False)


def encode_npy(arr: numpy.ndarray[typing.Any, typing.Any]) -> bytes:
    """``arr`` in numpy's .npy format (version 1.0; object arrays refused)."""
    import numpy.lib.format as fmt

    arr = _wire_dtype(arr)
    descr = fmt.dtype_to_descr(arr.dtype)
    return _npy_head(descr, arr.shape) + arr.tobytes()


def _npy_head(descr: object, shape: tuple[int, ...]) -> bytes:
    text = "{'descr': %r, 'fortran_order': False, 'shape': %r, }" % (descr, shape)  # noqa: UP031
    # Magic, version, header length, then the header padded with spaces and a newline to 64 bytes.
    pad = 64 - (10 + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin-1")
    return _NPY_MAGIC + b"\x01\x00" + struct.pack("<H", len(body)) + body


def decode_npy(body: bytes) -> numpy.ndarray[typing.Any, typing.Any]:
    """The array in a .npy body, a read-only view of ``body``; ``ValueError`` when it is not a valid one."""
    if not body.startswith(_NPY_MAGIC) or len(body) < 10:
        raise ValueError("not a .npy body (it must start with the \\x93NUMPY magic)")
    major = body[6]
    if major == 1:
        (hlen,), start = struct.unpack_from("<H", body, 8), 10
    elif major in (2, 3):
        (hlen,), start = struct.unpack_from("<I", body, 8), 12
    else:
        raise ValueError(f"unsupported .npy version {major}")
    try:
        header = ast.literal_eval(body[start : start + hlen].decode("latin-1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError, MemoryError):
        raise ValueError("invalid .npy header") from None
    if not isinstance(descr, str) or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise ValueError("invalid .npy header")
    return _view(memoryview(body), start + hlen, _dtype(descr), shape, bool(fortran))


def _enc_hook(obj: object) -> object:
    # Arrays as the extension; numpy scalars, pydantic models and paths as builtin values.
    if is_array(obj):
        return array_ext(obj)  # type: ignore[arg-type]
    if hasattr(obj, "item") and type(obj).__module__ == "numpy":
        return obj.item()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "__fspath__"):
        return str(obj)
    raise NotImplementedError(f"cannot encode objects of type {type(obj).__name__}")


_msgpack_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
encode_msgpack = _msgpack_encoder.encode
"""msgpack bytes for any value an api may return or a client may send, numpy arrays included."""

_msgpack_decoder = msgspec.msgpack.Decoder(ext_hook=ext_hook)
decode_msgpack = _msgpack_decoder.decode
"""The Python value of a msgpack body (arrays as read-only numpy views of it)."""


# -- binary media types and content negotiation ----------------------------------------------------------

MSGPACK_CT = b"application/msgpack"
MSGPACK_TYPES = (MSGPACK_CT, b"application/vnd.msgpack", b"application/x-msgpack")
NPY_CT = b"application/x-npy"
_JSON_ANSWERS = (b"application/json", b"*/*", b"application/*")


def binary_accept(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The Accept header when it names a binary media type (msgpack, .npy), else None: JSON answers."""
    for name, value in headers:
        if name == b"accept":
            low = value.lower()
            return bytes(low) if b"msgpack" in low or b"npy" in low else None
    return None


def negotiate(accept: bytes, array: bool) -> bytes | None:
    """The binary media type ``accept`` prefers for a result (.npy only for an ``array``), None for JSON.

    The highest q-value wins, the first listed among equals; ``*/*`` and ``application/*`` count as JSON,
    and types the api cannot produce are ignored (JSON then, never a 406).
    """
    best: bytes | None = None
    best_q = 0.0
    for part in accept.lower().split(b","):
        media, _, params = part.partition(b";")
        media = media.strip()
        if media in MSGPACK_TYPES or (array and media == NPY_CT):
            choice: bytes | None = media
        elif media in _JSON_ANSWERS:
            choice = None
        else:
            continue
        q = 1.0
        for param in params.split(b";"):
            key, _, value = param.partition(b"=")
            if key.strip() == b"q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:
            best, best_q = choice, q
    return best


def encode_as(media: bytes, value: object) -> bytes:
    """``value`` in the binary media type ``media`` that ``negotiate`` chose."""
    if media == NPY_CT:
        return encode_npy(value)  # type: ignore[arg-type]
    return encode_msgpack(value)


# -- Open Inference Protocol tensors (oip.py): JSON and binary tensor data to arrays and back ----------------

# Protocol datatype -> numpy dtype string (little-endian); BYTES is a list of byte strings.
DATATYPES = {
    "BOOL": "|b1",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": "",
}
_BY_KIND = {(kind, size): name for name, s in DATATYPES.items() if s for kind, size in [(s[1], int(s[2]))]}


class TensorError(ValueError):
    """A tensor that does not hold together (shape and data disagree, unknown datatype, ...): a 400."""


def _elements(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def flatten(data: object) -> list[object]:
    if not isinstance(data, list):
        return [data]
    out: list[object] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def tensor_from_json(name: str, datatype: str, shape: list[int], data: object) -> object:
    import numpy

    flat = flatten(data)
    if len(flat) != _elements(shape):
        raise TensorError(
            f"input {name!r}: shape {shape} holds {_elements(shape)} elements, data has {len(flat)}"
        )
    if datatype == "BYTES":
        if not all(isinstance(v, (str, bytes)) for v in flat):
            raise TensorError(f"input {name!r}: BYTES data must be strings")
        return object_array(flat, shape)
    if datatype == "BOOL":
        if not all(isinstance(v, bool) for v in flat):
            raise TensorError(f"input {name!r}: BOOL data must be true or false")
    elif not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise TensorError(f"input {name!r}: {datatype} data must be numbers")
    try:
        return numpy.array(flat, dtype=DATATYPES[datatype]).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise TensorError(f"input {name!r}: {exc}") from None


def object_array(items: list[object], shape: list[int]) -> Any:
    import numpy

    arr = numpy.empty(len(items), dtype=object)
    arr[:] = items
    return arr.reshape(shape)


def tensor_from_binary(name: str, datatype: str, shape: list[int], raw: memoryview) -> object:
    import numpy

    count = _elements(shape)
    if datatype == "BYTES":
        items: list[object] = []
        pos = 0
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise TensorError(f"input {name!r}: truncated BYTES element length")
            n = int.from_bytes(raw[pos : pos + 4], "little")
            if pos + 4 + n > len(raw):
                raise TensorError(f"input {name!r}: a BYTES element runs past its binary data")
            items.append(bytes(raw[pos + 4 : pos + 4 + n]))
            pos += 4 + n
        if len(items) != count:
            raise TensorError(f"input {name!r}: shape {shape} holds {count} elements, data has {len(items)}")
        return object_array(items, shape)
    dtype = numpy.dtype(DATATYPES[datatype])
    if len(raw) != count * dtype.itemsize:
        raise TensorError(
            f"input {name!r}: shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"binary data has {len(raw)}"
        )
    return numpy.frombuffer(raw, dtype=dtype, count=count).reshape(shape)  # a view, no copy


def tensor_out(name: str, value: object, binary: bool) -> tuple[dict[str, object], bytes | None]:
    """An output tensor (and its binary data when ``binary``) from an api's result."""
    import numpy

    if isinstance(value, (str, bytes)):
        arr: Any = object_array([value], [1])
    elif is_array(value):
        arr = value
    else:
        try:
            arr = numpy.asarray(value)
        except ValueError as exc:
            raise TensorError(f"output {name!r} is not a rectangular tensor: {exc}") from None
        if arr.ndim == 0:
            arr = arr.reshape(1)
    shape = list(arr.shape)
    if arr.dtype.kind in "OSU":
        datatype = "BYTES"
        items = [v if isinstance(v, bytes) else str(v).encode() for v in arr.reshape(-1)]
        if binary:
            raw = b"".join(len(v).to_bytes(4, "little") + v for v in items)
            return {
                "name": name,
                "datatype": datatype,
                "shape": shape,
                "parameters": {"binary_data_size": len(raw)},
            }, raw
        data: list[object] = [v.decode("utf-8", "replace") for v in items]
        return {"name": name, "datatype": datatype, "shape": shape, "data": data}, None
    datatype = _BY_KIND.get((arr.dtype.kind, arr.dtype.itemsize), "")
    if not datatype:
        raise TensorError(f"output {name!r} has dtype {arr.dtype}, which no tensor datatype holds")
    if binary:
        raw = numpy.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
        return {
            "name": name,
            "datatype": datatype,
            "shape": shape,
            "parameters": {"binary_data_size": len(raw)},
        }, raw
    return {"name": name, "datatype": datatype, "shape": shape, "data": arr.reshape(-1).tolist()}, None
