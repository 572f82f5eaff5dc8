# The first Quart example of the "ASGI integration" document. The document's snippet leaves out its
# ruff: noqa  (kept as the document writes it)
# imports of bentoml; the asgiserve import below is the only line added.
import asgiserve as bentoml
from quart import Quart

app = Quart(__name__)


@app.get("/hello")
async def hello_world():
    service = bentoml.get_current_service()
    return f"Hello, {service.name}"


@bentoml.service
@bentoml.mount_asgi_app(app, path="/v1")
class MyService:
    name = "MyService"
