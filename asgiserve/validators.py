"""BentoML's ``validators``: metadata for ``Annotated`` parameters, checked when the input is decoded.

- ``ContentType("image/*")`` on a file parameter (``Path``, ``bytes``, a PIL image): the upload's media type
  must match (shell-style pattern);
- ``Shape((-1, 4))`` and ``DType("float32")`` on numpy arrays and torch tensors: the value is made with that
  dtype and reshaped to that shape (``-1``: any size), as BentoML does; a value that does not fit is a 400;
- ``DataframeSchema(orient="records", columns=[...])`` on pandas DataFrames: how the JSON value is read
  and written (``records``: a list of row objects; ``columns``: an object of column lists).

These are plain value objects: importing this module imports no numpy, pandas, torch or pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ContentType", "DType", "DataframeSchema", "Shape"]


@dataclass(frozen=True)
class ContentType:
    """The media type (a pattern such as ``image/*``) a file parameter accepts, or an output is sent as."""

    content_type: str


@dataclass(frozen=True)
class Shape:
    """The shape of an array or tensor parameter; ``-1`` stands for any size along that dimension."""

    dimensions: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "dimensions", tuple(self.dimensions))


@dataclass(frozen=True)
class DType:
    """The dtype of an array or tensor parameter, by name (``"float32"``, ``"int64"``...)."""

    dtype: str


@dataclass(frozen=True)
class DataframeSchema:
    """How a pandas DataFrame is read from and written to JSON: ``orient`` and the expected ``columns``."""

    orient: str = "records"
    columns: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.orient not in ("records", "columns"):
            raise ValueError(f"DataframeSchema orient must be 'records' or 'columns', got {self.orient!r}")
        object.__setattr__(self, "columns", tuple(self.columns) if self.columns else None)
