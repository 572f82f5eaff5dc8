"""Services from BentoML's guides (services, lifecycle hooks), as the guides write them; only the import
differs. Where a guide leaves a body out (``# Endpoint implementation logic``) or calls a helper it does not
show (``setup_database``), the smallest stand-in is given."""

from __future__ import annotations

from fastapi import FastAPI

import asgiserve as bentoml


class _Connection:
    def query(self, text: str) -> str:
        return f"db:{text}"

    def is_connected(self) -> bool:
        return True

    def is_available(self) -> bool:
        return True


def setup_database() -> _Connection:
    return _Connection()


async def _setup_cache_async() -> _Connection:
    return _Connection()


def setup_cache() -> _Connection:
    return _Connection()


# -- lifecycle-hooks.rst: deployment hooks -----------------------------------------------------------------


@bentoml.service(workers=4)
class HookService:
    # Deployment hook does not receive `self` argument. It acts similarly to a static method.
    @bentoml.on_deployment
    def prepare():
        print("Do some preparation work, running only once.")

    # Multiple deployment hooks can be defined
    @bentoml.on_deployment
    def additional_setup():
        print("Do more preparation work if needed, also running only once.")

    def __init__(self) -> None:
        # Startup logic and initialization code
        print("This runs on Service startup, once for each worker, so it runs 4 times.")

    @bentoml.api
    def predict(self, text) -> str:
        # Endpoint implementation logic
        return text


# -- lifecycle-hooks.rst: startup hooks ----------------------------------------------------------------------


@bentoml.service(workers=4)
class StartupHookService:
    @bentoml.on_deployment
    def prepare():
        print("Global preparation, runs once before workers start.")

    @bentoml.on_startup
    def init_resources(self):
        # This runs once per worker
        print("Initializing resources for worker.")
        self.db_connection = setup_database()

    @bentoml.on_startup
    async def init_async_resources(self):
        # For async initialization tasks
        print("Async resource initialization for worker.")
        self.cache = await _setup_cache_async()

    @bentoml.api
    def predict(self, text) -> str:
        # Use initialized resources in API endpoints
        return self.db_connection.query(text)


# -- lifecycle-hooks.rst: shutdown hooks ---------------------------------------------------------------------


@bentoml.service(workers=4)
class ShutdownHookService:
    @bentoml.on_deployment
    def prepare():
        print("Do some preparation work, running only once.")

    def __init__(self) -> None:
        # Startup logic and initialization code
        print("This runs on Service startup, once for each worker, so it runs 4 times.")

    @bentoml.api
    def predict(self, text) -> str:
        # Endpoint implementation logic
        return text

    @bentoml.on_shutdown
    def shutdown(self):
        # Logic on shutdown
        print("Cleanup actions on Service shutdown.")

    @bentoml.on_shutdown
    async def async_shutdown(self):
        print("Async cleanup actions on Service shutdown.")


# -- lifecycle-hooks.rst: health check hooks -----------------------------------------------------------------


@bentoml.service(workers=4)
class HealthHookService:
    def __init__(self) -> None:
        self.db_connection = None
        self.cache = None

    @bentoml.on_startup
    def init_resources(self):
        self.db_connection = setup_database()
        self.cache = setup_cache()

    def __is_ready__(self) -> bool:
        # Check if required resources are available
        if self.db_connection is None or self.cache is None:
            return False
        return self.db_connection.is_connected() and self.cache.is_available()


# -- services.rst: configuration, custom route, path prefix with a mounted app, envs ------------------------


@bentoml.service(
    resources={"memory": "500MiB"},
    traffic={"timeout": 10},
)
class Summarization:
    @bentoml.api(route="/custom/url/name")
    def summarize(self, text: str) -> str:
        return text.split(".")[0]


chat_app = FastAPI()


@chat_app.get("/hello")
def hello() -> str:
    return "chat says hello"


@bentoml.service(path_prefix="/v1")
@bentoml.asgi_app(chat_app, path="/chat")
class MyService:
    @bentoml.api
    def summarize(self, text: str) -> str:
        return text.upper()


@bentoml.service(workers=1, resources={"gpu": "1"}, envs=[{"name": "HF_TOKEN"}])
class VLLMService:
    def __init__(self) -> None:
        import os

        self.token_seen = os.environ["HF_TOKEN"]
        self.request_id = 0

    @bentoml.api
    def generate(self, prompt: str = "Explain superconductors like I'm five years old") -> str:
        self.request_id += 1
        return f"{prompt} ({self.request_id})"
