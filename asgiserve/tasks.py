"""``@task`` apis on BentoML's wire, run from the store that every worker of the server shares.

For a task at route ``R`` (``POST R`` runs it at once, like any api):
``POST R/submit`` stores the request and answers ``{"task_id", "status": "in_progress"}``;
``GET R/status?task_id=`` reports it; ``GET R/get?task_id=`` replays the api's response once it finished;
``POST R/retry?task_id=`` submits the same input again; ``PUT R/cancel?task_id=`` cancels it.

Rules kept here:
- a submitted JSON body is validated at once (400 at submit, not a failed task later); multipart bodies are
  parsed when the task runs, as the api would;
- each worker runs at most ``traffic.max_concurrency`` tasks at a time, and sync ones at most ``threads``
  (more would only queue in the thread pool while reported running); the others stay ``pending`` in the
  store, in submission order, and any worker with room takes the oldest;
- a task cancelled while running is cancelled when it is async; a sync one runs to its end in its thread
  and its response is dropped (the store only records a response for a task still ``in_progress``);
- every store call runs in the runner's own thread: the event loop never waits on SQLite.
Task requests pass the service's ``Gate`` like any call (token, readiness, ``max_concurrency``); the runs
themselves are counted apart, so that polling a task is never refused because tasks are running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import threading
import urllib.parse
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from time import monotonic
from typing import TypeVar

import msgspec

from .codec import JSON_CT
from .errors import PayloadTooLarge
from .files import FileOut, send_file
from .handlers import APIHandler, ClientDisconnected, read_body
from .metrics import Metrics
from .responses import error_body, send_answer
from .routing import Handler
from .service import ServiceSpec
from .taskstore import (
    CANCELED,
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    PENDING,
    Claimed,
    TaskStore,
    owner_token,
    result_ttl,
    store_dir,
)
from .traffic import Gate
from .types import Headers, Receive, Scope, Send

__all__ = ["TaskRunner"]

logger = logging.getLogger("asgiserve")
T = TypeVar("T")

_READERS = 2  # threads answering status and get, each with its own connection
_POLL = 0.1  # how often an idle worker looks for pending tasks and cancellations from other workers
_RECOVER_EVERY = 10  # polls between two checks for tasks whose worker died (and counts of pending ones)
_encode = msgspec.json.encode
_STOPPED = "Task interrupted: the server stopped while it ran"


def _task_id(scope: Scope) -> str | None:
    query = scope.get("query_string") or b""
    for key, value in urllib.parse.parse_qsl(bytes(query).decode("latin-1")):
        if key == "task_id":
            return value
    return None


def _content_type(headers: Headers) -> str | None:
    for name, value in headers:
        if name == b"content-type":
            return bytes(value).decode("latin-1")
    return None


def _error(status: int, message: str) -> tuple[int, bytes, bytes, None]:
    return status, JSON_CT, error_body(message), None


class TaskRunner:
    """The task endpoints of one service, and the runs this worker takes from the store."""

    def __init__(self, handlers: list[APIHandler], gate: Gate, metrics: Metrics, spec: ServiceSpec) -> None:
        self.handlers = {h.spec.name: h for h in handlers if h.spec.is_task}
        self.gate = gate
        self.metrics = metrics
        self.directory = store_dir(spec.name)
        self.ttl = result_ttl(os.environ.get("ASGISERVE_TASK_TTL"))
        self.limit = spec.max_concurrency or 1 << 30
        self.sync_limit = min(self.limit, spec.threads)
        self.async_names = [n for n, h in self.handlers.items() if h.is_async]
        self.sync_names = [n for n, h in self.handlers.items() if not h.is_async]
        self.store: TaskStore | None = None
        self.owner = ""
        self.running: dict[str, tuple[asyncio.Task[None], bool]] = {}
        self.n_sync = 0
        self.stopping = False
        self._io: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_stores: list[TaskStore] = []
        self._pump_task: asyncio.Task[None] | None = None
        self._again = False
        self._tick_task: asyncio.Task[None] | None = None
        metrics.task_names = tuple(self.handlers)

    def routes(self) -> list[tuple[str, tuple[str, ...], Handler]]:
        """``(path, methods, handler)`` of the five task routes of every task api."""
        out: list[tuple[str, tuple[str, ...], Handler]] = []
        for h in self.handlers.values():
            r = h.route
            out += [
                (f"{r}/submit", ("POST",), self._guarded(f"{r}/submit", self._submit, h)),
                (f"{r}/status", ("GET",), self._guarded(f"{r}/status", self._status, h)),
                (f"{r}/get", ("GET",), self._guarded(f"{r}/get", self._get, h)),
                (f"{r}/retry", ("POST",), self._guarded(f"{r}/retry", self._retry, h)),
                (f"{r}/cancel", ("PUT",), self._guarded(f"{r}/cancel", self._cancel, h)),
            ]
        return out

    def _guarded(
        self, endpoint: str, work: Callable[[APIHandler, Scope, Receive, Send], Awaitable[int]], h: APIHandler
    ) -> Handler:
        gate = self.gate

        async def call(scope: Scope, receive: Receive, send: Send) -> None:
            await gate.guard(endpoint, scope["headers"], send, work, h, scope, receive, send)

        return call

    async def _db(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._io, fn, *args)

    async def _read(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(store, *args)`` on a reader thread's own connection: in WAL mode reads go on while the
        writer thread writes, so polling many tasks does not delay the tasks themselves."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._on_reader, fn, args)

    def _on_reader(self, fn: Callable[..., T], args: tuple[object, ...]) -> T:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = TaskStore(self.directory)
            self._reader_stores.append(store)
        return fn(store, *args)

    # -- lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (in this worker), report tasks of dead workers failed, start taking tasks."""
        self.stopping = False
        self._io = ThreadPoolExecutor(1, thread_name_prefix="asgiserve-tasks")
        self._readers = ThreadPoolExecutor(_READERS, thread_name_prefix="asgiserve-task-reads")
        self.owner = owner_token()
        self.store = store = await self._db(TaskStore, self.directory)
        lost = await self._db(store.recover)
        if lost:
            logger.warning("%d task(s) were running when their worker stopped: marked failed", len(lost))
        await self._db(store.sweep, self.ttl)
        self._tick_task = asyncio.get_running_loop().create_task(self._tick())
        self._wake()

    async def stop(self) -> None:
        """Stop taking tasks; running ones are interrupted and reported failed; pending ones stay."""
        self.stopping = True
        store = self.store
        if self._tick_task is not None:
            self._tick_task.cancel()
        if store is None:
            return
        interrupted = list(self.running.items())
        for task_id, (task, is_async) in interrupted:
            await self._db(store.fail, task_id, self.owner, _STOPPED)
            if is_async:
                task.cancel()
        await asyncio.gather(*(t for _, (t, a) in interrupted if a), return_exceptions=True)
        await self._db(store.close)
        assert self._io is not None and self._readers is not None
        self._io.shutdown(wait=False)
        self._readers.shutdown(wait=True)
        for reader in self._reader_stores:
            reader.close()
        self._reader_stores.clear()
        self.store = None

    # -- the endpoints ---------------------------------------------------------------------------------

    async def _submit(self, h: APIHandler, scope: Scope, receive: Receive, send: Send) -> int:
        try:
            body = await read_body(receive, self.gate)
        except ClientDisconnected:
            return 499
        except PayloadTooLarge as exc:
            return await send_answer(send, h.failed(exc))
        headers = scope["headers"]
        try:
            form = h.decode(headers, body) is None  # JSON is checked now; a form when the task runs
        except Exception as exc:
            return await send_answer(send, h.failed(exc))
        return await send_answer(send, await self._new(h.spec.name, _content_type(headers), body, form))

    async def _new(
        self, name: str, ctype: str | None, body: bytes, in_file: bool
    ) -> tuple[int, bytes, bytes, None]:
        store = self.store
        if store is None:
            return _error(503, "Service is not ready")
        task_id = await self._db(store.submit, name, ctype, body, in_file)
        self.metrics.task_submitted(name)
        self._wake()
        return 200, JSON_CT, _encode({"task_id": task_id, "status": IN_PROGRESS}), None

    def _lookup(self, scope: Scope) -> tuple[str | None, tuple[int, bytes, bytes, None] | None]:
        task_id = _task_id(scope)
        if task_id is None:
            return None, _error(400, "task_id is required")
        if self.store is None:
            return None, _error(503, "Service is not ready")
        return task_id, None

    async def _status(self, h: APIHandler, scope: Scope, receive: Receive, send: Send) -> int:
        task_id, refused = self._lookup(scope)
        if refused is not None or task_id is None or self.store is None:
            return await send_answer(send, refused or _error(503, "Service is not ready"))
        row = await self._read(TaskStore.status, task_id)
        if row is None:
            return await send_answer(send, _error(404, "task_id not found"))
        return await send_answer(send, (200, JSON_CT, row.to_json(), None))

    async def _get(self, h: APIHandler, scope: Scope, receive: Receive, send: Send) -> int:
        task_id, refused = self._lookup(scope)
        store = self.store
        if refused is not None or task_id is None or store is None:
            return await send_answer(send, refused or _error(503, "Service is not ready"))
        res = await self._read(TaskStore.result, task_id)
        if res is None:
            return await send_answer(send, _error(404, "task_id not found"))
        status = res.row.status
        if status in (PENDING, IN_PROGRESS):
            return await send_answer(send, _error(400, f"task {task_id} is not completed yet"))
        if status == CANCELED:
            return await send_answer(send, _error(400, f"task {task_id} was canceled"))
        if res.status is None or res.ctype is None:  # failed without a response: its worker stopped
            return await send_answer(send, _error(500, res.row.reason or f"task {task_id} failed"))
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in res.headers] or None
        if res.body is not None:
            return await send_answer(send, (res.status, res.ctype.encode("latin-1"), res.body, extra))
        path = store.out_file(task_id)
        try:
            fh = await asyncio.get_running_loop().run_in_executor(None, path.open, "rb")
        except OSError:
            return await send_answer(send, _error(404, "task_id not found"))  # swept meanwhile
        size = os.fstat(fh.fileno()).st_size
        return await send_file(send, FileOut(fh, size, res.ctype.encode("latin-1"), extra or []))

    async def _retry(self, h: APIHandler, scope: Scope, receive: Receive, send: Send) -> int:
        task_id, refused = self._lookup(scope)
        store = self.store
        if refused is not None or task_id is None or store is None:
            return await send_answer(send, refused or _error(503, "Service is not ready"))
        row = await self._db(store.status, task_id)
        if row is None:
            return await send_answer(send, _error(404, "task_id not found"))
        if row.status in (PENDING, IN_PROGRESS):
            return await send_answer(send, _error(400, f"task {task_id} is not completed yet"))
        new_id = await self._db(store.resubmit, task_id)
        if new_id is None:  # swept between the two reads
            return await send_answer(send, _error(404, "task_id not found"))
        self.metrics.task_submitted(row.name)
        self._wake()
        return await send_answer(
            send, (200, JSON_CT, _encode({"task_id": new_id, "status": IN_PROGRESS}), None)
        )

    async def _cancel(self, h: APIHandler, scope: Scope, receive: Receive, send: Send) -> int:
        task_id, refused = self._lookup(scope)
        store = self.store
        if refused is not None or task_id is None or store is None:
            return await send_answer(send, refused or _error(503, "Service is not ready"))
        row, canceled, owner = await self._db(store.cancel, task_id)
        if row is None:
            return await send_answer(send, _error(404, "task_id not found"))
        if not canceled:
            return await send_answer(send, _error(400, f"task {task_id} is already {row.status}"))
        if owner == self.owner:
            self._cancel_here(task_id)
        return await send_answer(send, (200, JSON_CT, row.to_json(), None))

    # -- running ---------------------------------------------------------------------------------------

    def _cancel_here(self, task_id: str) -> None:
        """A task of this worker was cancelled: stop it if async (a sync one's response will be dropped)."""
        entry = self.running.get(task_id)
        if entry is not None and entry[1]:
            entry[0].cancel()

    def _wake(self) -> None:
        """Take pending tasks while there is room (one pump at a time; a wake during it runs it again)."""
        if self._pump_task is not None:
            self._again = True
        elif not self.stopping:
            self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    def _claimable(self) -> list[str]:
        if len(self.running) >= self.limit:
            return []
        return self.async_names + self.sync_names if self.n_sync < self.sync_limit else self.async_names

    async def _pump(self) -> None:
        try:
            while True:
                self._again = False
                while not self.stopping and self.store is not None:
                    names = self._claimable()
                    if not names:
                        break
                    claimed = await self._db(self.store.claim, names, self.owner)
                    if claimed is None:
                        break
                    self._start_run(claimed)
                if not self._again:
                    return
        except Exception:
            logger.exception("taking pending tasks failed")
        finally:
            self._pump_task = None

    def _start_run(self, claimed: Claimed) -> None:
        h = self.handlers.get(claimed.name)
        is_async = h is not None and h.is_async
        if not is_async:
            self.n_sync += 1
        task = asyncio.get_running_loop().create_task(self._run(claimed, h))
        self.running[claimed.id] = (task, is_async)
        self.metrics.tasks_running[claimed.name] = self.metrics.tasks_running.get(claimed.name, 0) + 1

    async def _run(self, claimed: Claimed, h: APIHandler | None) -> None:
        store = self.store
        assert store is not None
        t0 = monotonic()
        outcome = FAILED
        try:
            if h is None or claimed.body is None:
                why = (
                    "its input is missing from the store" if h is not None else "the service has no such task"
                )
                await self._db(store.fail, claimed.id, self.owner, f"Task cannot run: {why}")
                return
            ctype = claimed.ctype
            headers: Headers = [(b"content-type", ctype.encode("latin-1"))] if ctype else []
            status, out_ct, out, extra = await h.respond(headers, claimed.body)
            body: bytes | None
            if isinstance(out, FileOut):
                await self._db(self._save_file, store, claimed.id, out)
                body = None
            else:
                body = out
            names = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in extra or ()]
            recorded = await self._db(
                store.finish, claimed.id, self.owner, status, out_ct.decode("latin-1"), names, body
            )
            outcome = (COMPLETED if status < 400 else FAILED) if recorded else CANCELED
        except asyncio.CancelledError:
            outcome = FAILED if self.stopping else CANCELED
        except Exception:
            logger.exception("task %s (%s) could not be recorded", claimed.id, claimed.name)
            if not self.stopping:
                await self._db(
                    store.fail, claimed.id, self.owner, "Task failed: its result could not be stored"
                )
        finally:
            del self.running[claimed.id]
            if not (h is not None and h.is_async):
                self.n_sync -= 1
            self.metrics.tasks_running[claimed.name] -= 1
            self.metrics.observe_task(claimed.name, outcome, monotonic() - t0)
            self._wake()

    @staticmethod
    def _save_file(store: TaskStore, task_id: str, out: FileOut) -> None:
        dest = store.out_file(task_id)
        tmp = dest.with_name(dest.name + ".tmp")
        with out.fh as src, tmp.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, dest)

    async def _tick(self) -> None:
        """Every poll: cancellations made on other workers, pending tasks; less often, dead workers'
        tasks and the expiry sweep."""
        store = self.store
        assert store is not None
        sweep_every = min(60.0, max(self.ttl / 4, 0.2))
        next_sweep = monotonic() + sweep_every
        names = list(self.handlers)
        n = 0
        while True:
            await asyncio.sleep(_POLL)
            n += 1
            try:
                if self.running:
                    for task_id in await self._db(store.canceled, list(self.running)):
                        self._cancel_here(task_id)
                if n % _RECOVER_EVERY == 0:
                    await self._db(store.recover)
                    self.metrics.tasks_pending = await self._read(TaskStore.has_pending, names)
                if monotonic() >= next_sweep:
                    await self._db(store.sweep, self.ttl)
                    next_sweep = monotonic() + sweep_every
                self._wake()
            except Exception:
                logger.exception("task store upkeep failed")
