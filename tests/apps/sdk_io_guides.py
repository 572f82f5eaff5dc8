"""BentoML's guide examples for IO types and the inference context ("Define input and output types",
"Services: inference context"), as the guides write them with ``import asgiserve as bentoml`` (and
``asgiserve.validators`` for ``bentoml.validators``); the guides' ``...`` bodies are filled in."""

from __future__ import annotations

import typing as t
from collections.abc import Generator
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import pandas as pd
import torch
from annotated_types import Ge, Gt, Lt, MaxLen, MultipleOf
from PIL import Image as PILImage
from PIL import Image as im
from PIL.Image import Image
from pydantic import BaseModel, Field

import asgiserve as bentoml
from asgiserve.app import ServiceApp  # the ASGI app for uvicorn
from asgiserve.validators import ContentType, DataframeSchema, DType, Shape


@bentoml.service
class LanguageModel:
    @bentoml.api
    def generate(
        self,
        prompt: str = Field(description="The prompt text"),
        temperature: float = Field(default=0.0, description="A sampling temperature between 0 and 2"),
        max_tokens: int = Field(default=1000, description="max tokens to use"),
    ) -> Generator[str, None, None]:
        for word in prompt.split()[:max_tokens]:
            yield f"{word}@{temperature} "


@bentoml.service
class IrisExample:
    @bentoml.api
    def classify(self, input: np.ndarray = Field(examples=[[0.1, 0.4, 0.2, 1.0]])) -> np.ndarray:
        return input * 2


@bentoml.service
class NullableLanguageModel:
    @bentoml.api
    def generate(
        self,
        prompt: int = Field(description="The prompt text"),
        temperature: Optional[float] = Field(
            default=None, description="A sampling temperature between 0 and 2"
        ),
        max_tokens: Optional[float] = Field(default=None, description="max tokens to use"),
    ) -> Generator[str, None, None]:
        yield f"{prompt} {temperature} {max_tokens}"


class AdsGenerationParams(BaseModel):
    prompt: str = Field(description="The prompt text")
    industry: str = Field(description="The industry the company belongs to")
    target_audience: str = Field(description="Target audience for the advertisement")
    temperature: float = Field(default=0.0, description="A sampling temperature between 0 and 2")


@bentoml.service
class AdsWriter:
    @bentoml.api
    def generate(self, params: AdsGenerationParams) -> str:
        return f"{params.prompt} for {params.target_audience} in {params.industry} at {params.temperature}"


@bentoml.service
class AdsWriterTopLevel:
    @bentoml.api(input_spec=AdsGenerationParams)
    def generate(self, **params: t.Any) -> str:
        prompt = params["prompt"]
        industry = params["industry"]
        target_audience = params["target_audience"]
        temperature = params["temperature"]
        return f"{prompt} for {target_audience} in {industry} at {temperature}"


class MyInputParams(bentoml.IODescriptor):
    data: np.ndarray[tuple[int], np.dtype[np.float16]]


@bentoml.service
class DescriptorService:
    @bentoml.api
    def mean(self, params: MyInputParams) -> float:
        return float(params.data.mean())


@bentoml.service
class WhisperX:
    @bentoml.api
    def to_text(self, audio: Annotated[Path, ContentType("audio/mp3")]) -> str:
        return f"{audio.stat().st_size} bytes of audio"


@bentoml.service
class Vits:
    @bentoml.api
    def to_speech(self, text: str, context: bentoml.Context) -> Path:
        audio_bytes = text.encode() * 2
        with open(Path(context.temp_dir) / "output.mp3", "wb") as f:
            f.write(audio_bytes)
        return Path(context.temp_dir) / "output.mp3"


@bentoml.service
class AppendStringToFile:
    @bentoml.api()
    def append_string_to_eof(
        self,
        context: bentoml.Context,
        txt_file: Annotated[Path, ContentType("text/plain")],
        input_string: str,
    ) -> Annotated[Path, ContentType("text/plain")]:
        with open(txt_file, "a") as file:
            file.write(input_string)
        return txt_file


@bentoml.service
class IrisTensor:
    @bentoml.api
    def classify(
        self,
        input: Annotated[torch.Tensor, Shape((1, 4)), DType("float32")] = Field(
            description="A 1x4 tensor with float32 dtype"
        ),
    ) -> np.ndarray:
        return input.numpy().argmax(axis=1)


@bentoml.service
class IrisTabular:
    @bentoml.api
    def classify(
        self,
        input: Annotated[
            pd.DataFrame, DataframeSchema(orient="records", columns=["petal_length", "petal_width"])
        ],
    ) -> int:
        return int((input["petal_length"] > input["petal_width"]).sum())


@bentoml.service
class ImageResize:
    @bentoml.api
    def generate(self, image: Image, height: int = 64, width: int = 64) -> Image:
        size = height, width
        return image.resize(size, im.LANCZOS)


@bentoml.service
class MnistPredictor:
    @bentoml.api
    def infer(self, input: Annotated[Path, ContentType("image/jpeg")]) -> int:
        return im.open(input).size[0]


class ImageMetadata(BaseModel):
    description: str = Field(description="Description of the image")
    timestamp: str = Field(description="Timestamp of when the image was captured")


@bentoml.service
class ImageProcessingService:
    @bentoml.api
    def process_image(self, image: PILImage, metadata: ImageMetadata) -> dict:
        return {"size": list(image.size), "description": metadata.description, "at": metadata.timestamp}


@bentoml.service
class LLMPredictor:
    @bentoml.api
    def predict(
        self,
        prompt: Annotated[str, MaxLen(1000)],
        temperature: Annotated[float, Ge(0), Lt(2)],
        max_tokens: Annotated[int, Gt(0), MultipleOf(100)],
    ) -> int:
        return len(prompt) + max_tokens


@bentoml.service
class Summarization:
    def pipeline(self, text: str) -> list[dict[str, str]]:
        return [{"summary_text": text[:10]}]

    @bentoml.api
    def summarize(self, text: str, ctx: bentoml.Context) -> str:
        # Get request headers
        request_headers = ctx.request.headers

        result = self.pipeline(text + request_headers.get("x-suffix", ""))

        # Set response headers, cookies, and status code
        ctx.response.status_code = 202
        ctx.response.cookies = [
            bentoml.Cookie(
                key="key",
                value="value",
                max_age=None,
                expires=None,
                path="/summarize",
                domain=None,
                secure=True,
                httponly=True,
                samesite="None",
            )
        ]

        # Add a custom header to the response
        ctx.response.headers.append("X-Custom-Header", "value")

        return result[0]["summary_text"]


summarization_app = ServiceApp(Summarization)
