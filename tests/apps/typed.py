"""A service whose apis cover every supported input and output type."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Literal, Optional, TypedDict

import msgspec
import numpy as np

import asgiserve


class Item(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


@asgiserve.service
class Typed:
    """Echo services for every input type."""

    @asgiserve.api
    def scalars(self, s: str, i: int, f: float, b: bool) -> dict[str, Any]:
        return {"s": s, "i": i, "f": f, "b": b}

    @asgiserve.api
    def containers(self, xs: list[int], d: dict[str, float], t: tuple[int, str] = (1, "a")) -> dict[str, Any]:
        return {"xs": xs, "d": d, "t": list(t)}

    @asgiserve.api
    def optional(self, maybe: Optional[int] = None, either: int | str = 0) -> dict[str, Any]:
        return {"maybe": maybe, "either": either}

    @asgiserve.api
    def literal(self, mode: Literal["fast", "slow"] = "fast") -> str:
        return mode

    @asgiserve.api
    def constrained(
        self,
        n: Annotated[int, msgspec.Meta(ge=1, le=10)],
        name: Annotated[str, msgspec.Meta(max_length=5)] = "x",
    ) -> int:
        return n * 2

    @asgiserve.api
    def struct(self, item: Item) -> Item:
        return item

    @asgiserve.api
    def sort_items(self, items: list[Item]) -> list[Item]:
        return sorted(items, key=lambda it: (it.price, it.name))

    @asgiserve.api
    def dataclass_in(self, p: Point) -> Point:
        return Point(p.y, p.x)

    @asgiserve.api
    def typeddict_in(self, m: Movie) -> Movie:
        return m

    @asgiserve.api
    def array(self, a: np.ndarray) -> np.ndarray:
        return a * 2

    @asgiserve.api
    def raw(self, n: int = 3) -> bytes:
        return bytes(range(n))

    @asgiserve.api
    async def untyped(self, value: Any = None):
        return value

    @asgiserve.api
    async def anything(self, value: object = None) -> dict[str, object]:
        return {"value": value}

    @asgiserve.api(route="/v2/custom", name="renamed")
    async def custom_route(self, x: int = 1) -> dict[str, int]:
        return {"x": x}

    @asgiserve.api
    def fails(self) -> str:
        raise RuntimeError("secret internal detail")

    @asgiserve.api
    def refuses(self, n: int = 0) -> str:
        raise asgiserve.InvalidArgument(f"n must be even, got {n}")


app = asgiserve.to_asgi(Typed)
