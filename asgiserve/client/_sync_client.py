# Generated from _async_client.py by tests/unasync.py: edit that file and run `python tests/unasync.py`.
"""A client's calls over its connection pool, written once: readiness, plain requests, api calls, streams.

``_async_client.py`` is the source; ``_sync_client.py`` is generated from it by ``tests/unasync.py``,
token by token (``await`` and ``async`` dropped, asyncio names swapped for blocking ones), so the two
clients cannot drift. A call is: check arguments, one pre-encoded head plus body, one write, parse the
response in place; everything else was prepared when the schema was read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

from ..errors import ServiceUnavailable, TLSError, TransportError
from ._base import ApiMethod, ClientBase, ClientResponse, Verify
from .endpoints import (
    Endpoint,
    StreamDecoder,
    TaskStatus,
    decode_response,
    raise_for_status,
    task_id_of,
    task_status_of,
)
from .wire import Headers, Response

if TYPE_CHECKING:
    from .transport import Pool

__all__ = ["SyncClient", "Task", "TaskEndpoint"]

_Client = TypeVar("_Client", bound="SyncClient")


class SyncClient(ClientBase):
    """Everything ``SyncHTTPClient`` does over its pool, which the subclass opens."""

    pool: Pool

    def __init__(
        self,
        url: str,
        token: str | None,
        timeout: float,
        server_ready_timeout: float | None,
        verify: Verify = True,
        codec: str = "json",
    ) -> None:
        super().__init__(url, token, timeout, server_ready_timeout, verify)
        if codec not in ("json", "msgpack"):
            raise ValueError(f"codec must be 'json' or 'msgpack', got {codec!r}")
        self.codec = codec
        self._ready = False
        self._unready = ""  # why the last readiness check failed, for the error that ends the wait
        self._setup_lock = threading.Lock()

    def __enter__(self: _Client) -> _Client:
        self._setup()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _setup(self) -> None:
        """Wait for the server and read its schema, once."""
        if self._ready:
            return
        with self._setup_lock:
            if self._ready:
                return
            if self.server_ready_timeout > 0:
                self.wait_until_ready(self.server_ready_timeout)
            r = self.request("GET", "/schema.json")
            r.raise_for_status()
            self._set_schema(r.json(), self._method)
            if self.codec == "msgpack":
                for ep in self.endpoints.values():
                    ep.use_msgpack()
            self._ready = True

    def close(self) -> None:
        """Close the connections and remove downloaded file outputs."""
        self.pool.close()
        self._cleanup_files()

    def wait_until_ready(self, timeout: float) -> None:
        """Poll ``/readyz`` with backoff until it answers 200; ``ServiceUnavailable`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            if self.is_ready():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServiceUnavailable(f"{self.url} is not ready after {timeout:g} s ({self._unready})")
            time.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    def is_ready(self) -> bool:
        """True when ``/readyz`` answers 200; ``TLSError`` when the server's certificate is not accepted."""
        try:
            r = self.request("GET", "/readyz")
        except TLSError:
            raise  # waiting longer would only hide it
        except TransportError as exc:
            self._unready = f"{type(exc).__name__}: {exc}"
            return False
        self._unready = f"/readyz answered {r.status}"
        return r.status == 200

    def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        content: bytes | str | None = None,
        headers: Headers | None = None,
    ) -> ClientResponse:
        """Send any request (e.g. to a mounted app's route) and return the whole response."""
        data = self._encode_plain(method, path, json, content, headers)
        resp, _ = self.pool.request(data, head=method.upper() == "HEAD")
        return ClientResponse(resp.status, resp.headers, resp.take_body())

    def call(self, name: str, /, *args: object, **kwargs: object) -> object:
        """Call the api ``name`` with its arguments; a streaming api gives an iterator of its items."""
        self._setup()
        ep = self._endpoint(name)
        if ep.stream:
            return self._stream(ep, ep.encode(ep.bind(args, kwargs)))
        return self._call(ep, args, kwargs)

    def _method(self, ep: Endpoint) -> ApiMethod:
        """The method attached for ``ep``: a call, or a function returning the stream of its items."""
        if ep.is_task:
            return TaskEndpoint(self, ep)
        if ep.stream:
            stream = self._stream

            def stream_method(*args: object, **kwargs: object) -> Iterator[object]:
                return stream(ep, ep.encode(ep.bind(args, kwargs)))

            return stream_method
        call = self._call

        def method(*args: object, **kwargs: object) -> object:
            return call(ep, args, kwargs)

        return method

    def _call(self, ep: Endpoint, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
        resp, _ = self.pool.request(ep.encode(ep.bind(args, kwargs)))
        body = resp.take_body()
        if resp.status >= 400:
            raise_for_status(resp, body)
        return decode_response(ep, resp, body, self._tmpdir)

    def _stream(self, ep: Endpoint, data: bytes) -> Iterator[object]:
        resp, stream = self.pool.stream(data)
        try:
            if resp.status >= 400:
                raise_for_status(resp, b"".join([chunk for chunk in stream]))
            decoder = StreamDecoder(ep, resp.headers.get("content-type", ""))
            for chunk in stream:
                for item in decoder.feed(chunk):
                    yield item
            for item in decoder.flush():
                yield item
        finally:
            stream.close()

    # -- tasks -----------------------------------------------------------------------------------------

    def _submit(self, ep: Endpoint, args: tuple[object, ...], kwargs: dict[str, object]) -> Task:
        resp, _ = self.pool.request(ep.encode(ep.bind(args, kwargs), submit=True))
        body = resp.take_body()
        if resp.status >= 400:
            raise_for_status(resp, body)
        return Task(task_id_of(body), ep, self)

    def _task_request(self, verb: str, ep: Endpoint, action: str, tid: str) -> tuple[Response, bytes]:
        data = self._encode_plain(verb, ep.task_path(action, tid), None, None, None)
        resp, _ = self.pool.request(data)
        body = resp.take_body()
        if resp.status >= 400:
            raise_for_status(resp, body)
        return resp, body

    def _task_status(self, ep: Endpoint, task_id: str) -> TaskStatus:
        _, body = self._task_request("GET", ep, "status", task_id)
        return task_status_of(body)

    def _task_result(self, ep: Endpoint, task_id: str) -> object:
        resp, body = self._task_request("GET", ep, "get", task_id)
        return decode_response(ep, resp, body, self._tmpdir)

    def _task_cancel(self, ep: Endpoint, task_id: str) -> None:
        self._task_request("PUT", ep, "cancel", task_id)

    def _task_retry(self, ep: Endpoint, task_id: str) -> Task:
        _, body = self._task_request("POST", ep, "retry", task_id)
        return Task(task_id_of(body), ep, self)


class Task:
    """A submitted task: its ``id``, and calls that follow it on the server."""

    __slots__ = ("client", "endpoint", "id")

    def __init__(self, task_id: str, endpoint: Endpoint, client: SyncClient) -> None:
        self.id = task_id
        self.endpoint = endpoint
        self.client = client

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, endpoint={self.endpoint.name!r})"

    def get_status(self) -> TaskStatus:
        """The task's status now."""
        return self.client._task_status(self.endpoint, self.id)

    def get(self) -> object:
        """The task's result (as a call would return it); ``InvalidArgument`` while it is not completed."""
        return self.client._task_result(self.endpoint, self.id)

    def cancel(self) -> None:
        """Cancel the task (pending or running)."""
        self.client._task_cancel(self.endpoint, self.id)

    def retry(self) -> Task:
        """Submit the task's input again: the new task."""
        return self.client._task_retry(self.endpoint, self.id)


class TaskEndpoint:
    """``client.<task>``: call it to run the task now, ``.submit(...)`` to have it run in the background."""

    def __init__(self, client: SyncClient, endpoint: Endpoint) -> None:
        self._client = client
        self._endpoint = endpoint

    def __repr__(self) -> str:
        return f"<TaskEndpoint {self._endpoint.name}>"

    def __call__(self, *args: object, **kwargs: object) -> object:
        return self._client._call(self._endpoint, args, kwargs)

    def submit(self, *args: object, **kwargs: object) -> Task:
        """Submit a run with these arguments (checked before anything is sent): its ``Task``."""
        return self._client._submit(self._endpoint, args, kwargs)

    def get_status(self, task_id: str) -> TaskStatus:
        """The status of task ``task_id``."""
        return self._client._task_status(self._endpoint, task_id)

    def get(self, task_id: str) -> object:
        """The result of task ``task_id``."""
        return self._client._task_result(self._endpoint, task_id)

    def cancel(self, task_id: str) -> None:
        """Cancel task ``task_id``."""
        self._client._task_cancel(self._endpoint, task_id)

    def retry(self, task_id: str) -> Task:
        """Submit task ``task_id``'s input again: the new task."""
        return self._client._task_retry(self._endpoint, task_id)
