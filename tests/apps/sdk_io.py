"""Rich api IO: pydantic models (nested), Field defaults, input_spec/output_spec, validators, PIL images,
pandas DataFrames, numpy arrays and torch tensors; ``app`` for uvicorn."""

from __future__ import annotations

import pathlib
from typing import Annotated, Any, Optional

import numpy as np
import pandas as pd
import torch
from annotated_types import Ge, Lt, MaxLen
from PIL import Image as PILImage
from PIL.Image import Image
from pydantic import BaseModel, Field

import asgiserve as bentoml
from asgiserve.app import ServiceApp  # the ASGI app for uvicorn
from asgiserve.validators import ContentType, DataframeSchema, DType, Shape


class Address(BaseModel):
    city: str
    zip: str = Field(pattern=r"^\d{5}$")


class Person(BaseModel):
    name: str
    age: int = Field(ge=0)
    address: Address


class Team(BaseModel):
    lead: Person
    members: list[Person] = []


class Summary(BaseModel):
    name: str
    city: str


class Features(bentoml.IODescriptor):
    x: Annotated[np.ndarray, Shape((-1, 2)), DType("float32")]
    label: str = "none"


class Half(bentoml.IODescriptor):
    data: np.ndarray[tuple[int], np.dtype[np.float16]]


@bentoml.service
class IOSvc:
    @bentoml.api
    def team_info(self, team: Team, note: str = "") -> dict[str, Any]:
        return {"lead_city": team.lead.address.city, "members": len(team.members), "note": note}

    @bentoml.api
    def greet(
        self,
        name: str = bentoml.Field(default="world", description="Who to greet"),
        times: int = Field(default=1, ge=1, le=3),
        tags: list[str] = Field(default_factory=list),
    ) -> str:
        return " ".join([f"hello {name}"] * times) + ("" if not tags else " " + ",".join(tags))

    @bentoml.api
    def make_person(self, name: str, city: str) -> Person:
        return Person(name=name, age=30, address=Address(city=city, zip="12345"))

    @bentoml.api
    def people(self, n: int) -> list[Person]:
        return [Person(name=f"p{i}", age=i, address=Address(city="c", zip="00000")) for i in range(n)]

    @bentoml.api(input_spec=Person, output_spec=Summary)
    def summarize(self, name: str, age: int, address: Address) -> dict[str, str]:
        return {"name": name.upper(), "city": address.city}

    @bentoml.api(input_spec=Person)
    def spec_kwargs(self, **params: Any) -> dict[str, Any]:
        return {"keys": sorted(params), "city": params["address"].city}

    @bentoml.api(output_spec=Summary)
    def bad_output(self) -> dict[str, str]:
        return {"name": "only a name"}

    @bentoml.api
    def limits(
        self, prompt: Annotated[str, MaxLen(5)], temperature: Annotated[float, Ge(0), Lt(2)] = 1.0
    ) -> str:
        return f"{prompt}@{temperature}"

    @bentoml.api
    def nullable(self, temperature: Optional[float] = Field(default=None, description="t")) -> str:
        return repr(temperature)

    @bentoml.api
    def image_info(self, image: Annotated[Image, ContentType("image/*")], scale: int = 1) -> dict[str, Any]:
        return {"size": list(image.size), "mode": image.mode, "format": image.format, "scale": scale}

    @bentoml.api
    def image_resize(self, image: Image, height: int = 4, width: int = 4) -> Image:
        return image.resize((width, height), PILImage.LANCZOS)

    @bentoml.api
    def image_jpeg(self, width: int) -> Image:
        img = PILImage.new("RGB", (width, 3), "red")
        out = pathlib.Path(bentoml.get_current_service().tmp) / "x.jpg"
        img.save(out, format="JPEG")
        return PILImage.open(out)

    @bentoml.api
    def text_upload(self, doc: Annotated[pathlib.Path, ContentType("text/*")]) -> str:
        return doc.read_text()

    @bentoml.api
    def frame_sum(
        self, df: Annotated[pd.DataFrame, DataframeSchema(orient="records", columns=["a", "b"])]
    ) -> pd.DataFrame:
        return df.assign(total=df["a"] + df["b"])

    @bentoml.api
    def frame_columns(
        self, df: Annotated[pd.DataFrame, DataframeSchema(orient="columns")]
    ) -> Annotated[pd.DataFrame, DataframeSchema(orient="columns")]:
        return df * 2

    @bentoml.api
    def array_info(self, x: Annotated[np.ndarray, Shape((-1, 4)), DType("float32")]) -> dict[str, Any]:
        return {"shape": list(x.shape), "dtype": str(x.dtype), "sum": float(x.sum())}

    @bentoml.api
    def tensor_double(
        self,
        t: Annotated[torch.Tensor, Shape((2, 2)), DType("float32")] = Field(
            description="A 2x2 float32 tensor"
        ),
    ) -> torch.Tensor:
        assert t.dtype == torch.float32
        return t * 2

    @bentoml.api
    def features(self, f: Features) -> Features:
        return Features(x=f.x * 10, label=f.label.upper())

    @bentoml.api(input_spec=Features)
    def features_spec(self, x: np.ndarray, label: str) -> dict[str, Any]:
        return {"shape": list(x.shape), "dtype": str(x.dtype), "label": label}

    @bentoml.api
    def half(self, h: Half) -> str:
        return str(h.data.dtype)

    def __init__(self) -> None:
        import tempfile

        self.tmp = tempfile.mkdtemp(prefix="sdk-io-")


app = ServiceApp(IOSvc)
