"""Header fields and cookies for BentoML's ``Context``: ``Metadata`` (case-insensitive, checked when set)
and ``Cookie``."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

__all__ = ["RAW_NAMES", "Cookie", "Metadata", "NewMetadata"]


@dataclass
class Cookie:
    """A cookie to set on the response, with BentoML's fields and defaults."""

    key: str
    value: str
    max_age: int | None = None
    expires: int | None = None
    path: str = "/"
    domain: str | None = None
    secure: bool = False
    httponly: bool = False
    samesite: str = "lax"

    def header(self) -> bytes:
        """The ``Set-Cookie`` value (RFC 6265 section 4.1), as Starlette writes it."""
        parts = [f"{self.key}={self.value}"]
        if self.max_age is not None:
            parts.append(f"Max-Age={self.max_age}")
        if self.expires is not None:
            from email.utils import formatdate

            parts.append(f"expires={formatdate(self.expires, usegmt=True)}")
        if self.path is not None:
            parts.append(f"Path={self.path}")
        if self.domain is not None:
            parts.append(f"Domain={self.domain}")
        if self.secure:
            parts.append("Secure")
        if self.httponly:
            parts.append("HttpOnly")
        if self.samesite:
            if self.samesite.lower() not in ("strict", "lax", "none"):
                raise ValueError(f"samesite must be 'strict', 'lax' or 'none', got {self.samesite!r}")
            parts.append(f"SameSite={self.samesite}")
        return "; ".join(parts).encode("latin-1")


class Metadata(Mapping[str, str]):
    """Header fields, looked up case-insensitively; mutable on the response (``append``, item set).

    Names are kept lowercased (as ASGI gives request headers), so that a lookup lowercases only the key.
    """

    __slots__ = ("_items",)

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        # A list, or (on a response, until a field is set) the empty tuple.
        self._items: list[tuple[str, str]] | tuple[()] = items if items is not None else []

    def __getitem__(self, key: str) -> str:
        low = key.lower()
        for name, value in self._items:
            if name == low:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._items))

    def __len__(self) -> int:
        return len({name for name, _ in self._items})

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        low = key.lower()
        return any(n == low for n, _ in self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in order."""
        low = key.lower()
        return [v for n, v in self._items if n == low]

    def raw(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, in order (names lowercased)."""
        items = self._items
        if type(items) is not list:
            items = self._items = list(items)
        return items

    def __setitem__(self, key: str, value: str) -> None:
        """Set ``key`` to ``value``, dropping its other values."""
        try:
            low = _NAMES[key]
        except KeyError:
            low = _checked(key, value)
        # A printable str holds no CR, LF or NUL: one C call for most values, the full check otherwise.
        if type(value) is not str or not value.isprintable():
            _checked(key, value)
        items = self._items
        if not items:  # a list, or the empty tuple a response's headers begin with
            self._items = [(low, value)]
        else:
            self._items = items = [(n, v) for n, v in items if n != low]
            items.append((low, value))

    def __delitem__(self, key: str) -> None:
        low = key.lower()
        self._items = [(n, v) for n, v in self._items if n != low]

    def append(self, key: str, value: str) -> None:
        """Add a value for ``key``, keeping its others."""
        self.raw().append((_checked(key, value), value))

    def setdefault(self, key: str, value: str) -> str:
        """The value of ``key``, set to ``value`` first when absent."""
        if key not in self:
            self[key] = value
        return self[key]

    def update(self, other: Mapping[str, str]) -> None:
        """Set every key of ``other``."""
        for key, value in other.items():
            self[key] = value

    def __ior__(self, other: Mapping[str, str]) -> Metadata:
        self.update(other)
        return self

    def __or__(self, other: Mapping[str, str]) -> Metadata:
        out = self.mutablecopy()
        out.update(other)
        return out

    def mutablecopy(self) -> Metadata:
        """A copy of these fields."""
        return Metadata(list(self._items))


# A field name is a token (RFC 9110 section 5.1); a value holds no CR, LF or NUL (section 5.5), which would
# let whoever chose it forge response headers.
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z").match
_BAD_VALUE = re.compile(r"[\r\n\0]").search


_NAMES: dict[str, str] = {}  # field names seen valid, lowercased: most apis set the same few
RAW_NAMES: dict[str, bytes] = {}  # those lowercased names, encoded (but Content-Type and Content-Length)


def _checked(key: str, value: str) -> str:
    """``key`` lowercased, once the field is known to be valid."""
    if type(key) is not str or type(value) is not str:
        raise TypeError(f"header names and values must be str, got {key!r}: {value!r}")
    if _NAME(key) is None or _BAD_VALUE(value) is not None:
        raise ValueError(f"invalid header field {key!r}: {value!r}")
    low = key.lower()
    if len(_NAMES) < 256:
        _NAMES[key] = low
        if low != "content-type" and low != "content-length":  # set on the head by the server itself
            RAW_NAMES[low] = low.encode()
    return low


class NewMetadata(Metadata):
    """A ``Metadata`` made without ``__init__``'s call: its maker sets ``_items`` (``Context.response``)."""

    __slots__ = ()
    __init__ = object.__init__
