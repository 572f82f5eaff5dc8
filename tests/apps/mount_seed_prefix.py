# The "Customize the prefix path" example of the "ASGI integration" document, verbatim apart from the
# ruff: noqa  (kept as the document writes it)
# asgiserve import.
from fastapi import FastAPI, Depends
import asgiserve as bentoml

app = FastAPI()


@bentoml.service
@bentoml.mount_asgi_app(app, path="/fastapi")  # Add the prefix here
class MyService:
    name = "MyService"

    @app.get("/hello")  # This endpoint should be requested via "/fastapi/hello"
    def hello(self):
        return f"Hello {self.name}"
