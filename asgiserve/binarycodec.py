"""Binary request bodies (msgpack, .npy) and the media types an api takes and answers in: the part of
``codec.APICodec`` that only a binary request uses; its decoders are built on first use, so JSON-only apis
never pay for them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import msgspec

from .errors import BadRequest, UnsupportedMediaType
from .tensors import MSGPACK_TYPES, NPY_CT

__all__ = ["BinaryBodies"]


class _Output(Protocol):
    """What is read of ``codec.Output``."""

    kind: str
    content_type: bytes
    schema_type: object


def _is_numpy_array_type(tp: object) -> bool:
    return getattr(tp, "__module__", "") == "numpy" and getattr(tp, "__name__", "") == "ndarray"


class BinaryBodies:
    """Mixed into ``codec.APICodec``: msgpack and .npy bodies, and the documented media types."""

    if TYPE_CHECKING:
        name: str
        input_type: type[msgspec.Struct]
        param_names: tuple[str, ...]
        param_types: dict[str, object]
        var_kw: bool
        file_params: object
        stream: str
        output: _Output
        dec_hook: Callable[[type, object], object]
        detail_of: Callable[[str], list[dict[str, object]]]

        def decode(self, body: bytes) -> msgspec.Struct: ...

    def decode_binary(self, ctype: bytes, body: bytes) -> msgspec.Struct | None:
        """The input decoded from a msgpack or .npy body (``ctype`` lower-cased), None for other types."""
        media = ctype.split(b";", 1)[0].strip()
        if media in MSGPACK_TYPES:
            return self._decode_msgpack(body)
        if media == NPY_CT:
            return self._decode_npy(body)
        return None

    def _decode_msgpack(self, body: bytes) -> msgspec.Struct:
        if not body:
            return self.decode(body)  # the same missing-field error (or defaults) as an empty JSON body
        decoder = self.__dict__.get("_msgpack_decoder")
        if decoder is None:
            from .tensors import ext_hook

            decoder = msgspec.msgpack.Decoder(self.input_type, dec_hook=self.dec_hook, ext_hook=ext_hook)
            self.__dict__["_msgpack_decoder"] = decoder
        try:
            decoded: msgspec.Struct = decoder.decode(body)
            return decoded
        except msgspec.ValidationError as exc:
            msg = str(exc)
            raise BadRequest(msg, detail=self.detail_of(msg)) from None
        except (msgspec.DecodeError, ValueError) as exc:
            raise BadRequest(f"Invalid msgpack body: {exc}") from None

    def array_param(self) -> str | None:
        """The name of the api's single parameter when it is a numpy array (the api takes .npy bodies)."""
        names = self.param_names
        if len(names) == 1 and not self.var_kw and _is_numpy_array_type(self.param_types[names[0]]):
            return names[0]
        return None

    def _decode_npy(self, body: bytes) -> msgspec.Struct:
        name = self.array_param()
        if name is None:
            raise UnsupportedMediaType(
                f"api {self.name!r} does not take application/x-npy bodies"
                " (only an api whose single parameter is a numpy array does)"
            )
        from .tensors import decode_npy

        try:
            return self.input_type(**{name: decode_npy(body)})
        except ValueError as exc:
            raise BadRequest(f"Invalid .npy body: {exc}") from None

    def request_media_types(self) -> list[str]:
        """The request body media types the api accepts."""
        out = ["application/json", *(t.decode() for t in MSGPACK_TYPES)]
        if self.file_params:
            out.append("multipart/form-data")
        if self.array_param() is not None:
            out.append(NPY_CT.decode())
        return out

    def response_media_types(self) -> list[str]:
        """The media types the api can answer in (chosen by the request's ``Accept``; JSON by default)."""
        first = self.output.content_type.decode().split(";")[0]
        array_out = _is_numpy_array_type(self.output.schema_type)  # a "custom" output, written as JSON lists
        if self.stream != "none" or (self.output.kind not in ("json", "dynamic") and not array_out):
            return [first]
        out = [first, *(t.decode() for t in MSGPACK_TYPES)]
        if self.output.kind == "dynamic" or array_out:
            out.append(NPY_CT.decode())
        return out
