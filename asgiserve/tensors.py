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

import msgspec

if typing.TYPE_CHECKING:
    import numpy

__all__ = [
    "NDARRAY_EXT",
    "array_ext",
    "decode_msgpack",
    "decode_npy",
    "encode_msgpack",
    "encode_npy",
    "ext_hook",
    "is_array",
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
