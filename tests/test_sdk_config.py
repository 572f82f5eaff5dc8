"""BentoML's ``@service`` keys: all accepted, the ones asgiserve acts on working over real sockets
(path_prefix, description, workers="cpu_count", envs, endpoints, http host/port), the mount decorator's
BentoML name, ``add_asgi_middleware``, and ``asgiserve.images.Image``."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings

import httpx
import pytest

import asgiserve
import asgiserve as bentoml
from asgiserve.service import get_spec
from tests.apps.mount_factory import serve
from tests.conftest import ROOT, RUNNERS, free_port, start
from tests.test_lifecycle import wait_for

# Every key of BentoML's ServiceConfig and of its decorator's keywords, with a value of the right shape.
BENTOML_KEYS: dict[str, object] = {
    "name": "Everything",
    "image": bentoml.images.Image(python_version="3.11"),
    "description": "All the keys.",
    "path_prefix": "/all",
    "envs": [{"name": "SDK_UNUSED_ENV", "value": "1"}],
    "labels": {"team": "ml"},
    "cmd": ["myserver", "--port", "$PORT"],
    "service_class": object,
    "traffic": {"timeout": 30, "max_concurrency": 8, "concurrency": 4, "external_queue": False},
    "extra_ports": [9000],
    "backlog": 128,
    "max_runner_connections": 16,
    "runner_connection": {"max_requests": 10, "max_age": 60.0},
    "resources": {"cpu": "2", "memory": "4Gi", "gpu": 1, "gpu_type": "nvidia-l4"},
    "workers": "cpu_count",
    "replicate_process": False,
    "threads": 2,
    "metrics": {"enabled": True, "namespace": "svc"},
    "logging": {"access": {"enabled": False}},
    "ssl": {"enabled": False},
    "http": {"host": "127.0.0.1", "port": 3100, "proxy_port": 8000, "response": {"trace_id": True}},
    "grpc": {"port": 3001},
    "runner_probe": {"enabled": True, "timeout": 1, "period": 10},
    "tracing": {"exporter_type": "otlp", "sample_rate": 1.0},
    "monitoring": {"enabled": False},
    "endpoints": {"livez": "/all/livez", "readyz": "/all/readyz"},
}


def wait_status(url: str, status: int = 200, timeout: float = 20) -> bool:
    def ok() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == status
        except httpx.HTTPError:
            return False

    return wait_for(ok, timeout)


def test_every_bentoml_key_is_accepted_and_the_unused_logged_once(caplog):
    caplog.set_level(logging.DEBUG, logger="asgiserve")

    @bentoml.service(**BENTOML_KEYS)  # type: ignore[arg-type]
    class Everything:
        pass

    spec = get_spec(Everything)
    assert spec.name == "Everything" and spec.path_prefix == "/all" and spec.threads == 2
    assert spec.workers == len(os.sched_getaffinity(0))
    assert (spec.host, spec.port) == ("127.0.0.1", 3100)
    assert spec.config["labels"] == {"team": "ml"}
    lines = [r.getMessage() for r in caplog.records if "not acted on" in r.getMessage()]
    assert len(lines) == 1
    for key in ("labels", "image", "cmd", "tracing", "monitoring", "metrics", "http.proxy_port"):
        assert key in lines[0]
    for key in ("path_prefix", "envs", "endpoints", "traffic"):
        assert key + "," not in lines[0] and not lines[0].endswith(key)
    # The built app takes them too.
    app = asgiserve.to_asgi(Everything)
    assert "/all/livez" in app.routes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lables": {}}, "lables"),
        ({"http": {"prot": 1}}, "prot"),
        ({"http": {"cors": {"enabled": True, "allow_origins": ["*"]}}}, "allow_origins"),
        ({"http": {"cors": {"enabled": True}}}, "access_control_allow_origins"),
        ({"endpoints": {"healthz": "/h"}}, "healthz"),
        ({"endpoints": {"livez": "health"}}, "endpoints.livez"),
        ({"workers": "many"}, "workers"),
        ({"envs": [{"value": "x"}]}, "name"),
        ({"envs": [{"name": "A", "stage": "later"}]}, "stage"),
        ({"path_prefix": "/a b"}, "path_prefix"),
        ({"description": 3}, "description"),
    ],
)
def test_bad_keys_are_errors_naming_them(kwargs, message):
    with pytest.raises((TypeError, ValueError), match=message):
        bentoml.service(**kwargs)(type("S", (), {}))


@pytest.mark.parametrize("runner", RUNNERS)
def test_path_prefix_applies_to_apis_mounts_and_probes(run_server, runner):
    server = serve(run_server, runner, "tests.apps.sdk_config:Prefixed", ready=False)
    url = server.url
    assert wait_status(url + "/v1/readyz"), server.output()
    assert httpx.post(url + "/v1/summarize", json={"text": "abcdefgh"}).text == "abcde"
    assert httpx.get(url + "/v1/chat/hello").json() == {"from": "chat"}
    for path in ("/v1/livez", "/v1/healthz", "/v1/metrics", "/v1/docs.json", "/v1/", "/schema.json"):
        assert httpx.get(url + path).status_code == 200, path
    for path in ("/summarize", "/chat/hello", "/livez"):
        assert httpx.request("POST" if path == "/summarize" else "GET", url + path).status_code == 404, path
    schema = httpx.get(url + "/schema.json").json()
    assert [r["route"] for r in schema["routes"]] == ["/v1/summarize"]
    assert schema["description"] == "Summaries, served under /v1."
    doc = httpx.get(url + "/v1/docs.json").json()
    assert doc["info"]["description"] == "Summaries, served under /v1."
    assert "/v1/summarize" in doc["paths"] and "/v1/readyz" in doc["paths"] and "/readyz" not in doc["paths"]
    assert "/v1/chat/hello" in doc["paths"]


@pytest.mark.parametrize("runner", RUNNERS)
def test_envs_are_set_before_init(run_server, runner):
    env = {"SDK_PRESET": "from-env"}
    server = serve(run_server, runner, "tests.apps.sdk_config:WithEnvs", env=env)
    assert httpx.post(server.url + "/env").json() == {
        "SDK_GREETING": "hello",  # the service's value
        "SDK_PRESET": "from-env",  # one already set wins, as in BentoML
        "SDK_BUILD_ONLY": None,  # build-stage ones are not set at serve time
    }


@pytest.mark.parametrize("runner", ["asgiserve", "uvicorn"])
def test_a_required_env_that_is_missing_fails_the_start(run_server, runner):
    server = serve(run_server, runner, "tests.apps.sdk_config:MissingEnv", ready=False)
    assert server.proc.wait(20) != 0
    assert "'SDK_REQUIRED_TOKEN' is required but not set" in server.output()


@pytest.mark.parametrize("runner", RUNNERS)
def test_endpoints_serve_the_probes(run_server, runner):
    server = serve(run_server, runner, "tests.apps.sdk_config:CustomProbes")
    for path in ("/health", "/ready", "/livez", "/readyz"):
        assert httpx.get(server.url + path).status_code == 200, path


def test_http_host_and_port_are_the_cli_defaults(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SDK_HTTP_PORT": str(port)}
    env.pop("ASGISERVE_PORT", None)
    log = tmp_path / "out.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "asgiserve", "tests.apps.sdk_config:HTTPDefaults"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    try:
        assert wait_status(f"http://127.0.0.1:{port}/readyz"), log.read_text()
    finally:
        proc.terminate()
        proc.wait(10)
    # A flag still wins over the service's default.
    other = start("asgiserve", "tests.apps.sdk_config:HTTPDefaults", tmp_path, env={"SDK_HTTP_PORT": str(port)})
    assert other.port != port and httpx.post(other.url + "/ping").text == "pong"
    other.stop()


def test_asgi_app_is_the_mount_decorator_and_to_asgi_builds():
    inner = bentoml.service(type("Inner", (), {}))
    with pytest.raises(TypeError, match=r"asgiserve.to_asgi\(Inner\)"):
        bentoml.asgi_app(inner, path="/x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")

        @bentoml.service
        @bentoml.mount_asgi_app(lambda scope, receive, send: None, path="/old")
        class Old:
            pass

    assert [w.category for w in caught] == [DeprecationWarning]
    assert [m.path for m in asgiserve.to_asgi(Old).mount_specs] == ["/old"]


def test_image_records_what_was_asked():
    image = (
        bentoml.images.Image(python_version="3.11")
        .system_packages("curl", "git")
        .python_packages("torch", "transformers")
        .requirements_file("requirements.txt")
        .run("echo done")
    )
    assert image.python_version == "3.11" and image.distro == "debian"
    assert image.python_requirements == "torch\ntransformers\n"
    assert image.post_commands == ["echo done"] and image.commands == []
    assert [name for name, _ in image.steps] == [
        "system_packages",
        "python_packages",
        "requirements_file",
        "run",
    ]
    assert bentoml.images.Image("debian:bookworm").base_image == "debian:bookworm"

    @bentoml.service(image=image)
    class Imaged:
        pass

    assert get_spec(Imaged).config["image"] is image


@pytest.mark.parametrize("runner", RUNNERS)
def test_asgi_middleware_wraps_the_whole_app(run_server, runner):
    server = serve(run_server, runner, "tests.apps.sdk_config:Wrapped")
    url = server.url
    # BentoML hands the middlewares to Starlette in the order they were added: the first is outermost,
    # so the second one (inner) sees the response first.
    for method, path in [("POST", "/predict"), ("GET", "/readyz"), ("GET", "/m/seen"), ("GET", "/nope")]:
        kw = {"json": {"x": 2}} if method == "POST" else {}
        r = httpx.request(method, url + path, **kw)
        assert r.headers["x-trail"] == "second, first", (path, r.headers)
    assert httpx.post(url + "/predict", json={"x": 21}).json() == 42
