"""Traffic rules: the ``Gate`` every api and mount call passes, and the deadlines it keeps.

Deadlines are swept by one periodic timer per app instead of a timer per request: registering a request
is a dict insert, and the sweep cancels the tasks past their deadline (precision: a tenth of the
timeout, at most 50 ms). A request's handler learns it was cancelled by its deadline, not by its server,
from ``Deadlines.expired``.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from time import monotonic

from .codec import JSON_CT
from .errors import PayloadTooLarge
from .metrics import Metrics
from .responses import error_body, send_answer
from .types import Answer, Headers, Send

__all__ = ["Deadlines", "Gate"]

_UNAUTHORIZED: Answer = (
    401,
    JSON_CT,
    error_body("Missing or invalid API token"),
    [(b"www-authenticate", b'Bearer realm="asgiserve"')],
)
_NOT_READY: Answer = (503, JSON_CT, error_body("Service is not ready"), None)
_TOO_MANY: Answer = (
    429,
    JSON_CT,
    error_body("Too many requests: over max_concurrency"),
    [(b"retry-after", b"1")],
)


class Deadlines:
    """Deadlines (``time.monotonic()`` values) of in-flight requests, keyed by the task serving each."""

    __slots__ = ("_handle", "_loop", "expired", "interval", "pending", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.interval = min(0.05, timeout / 10)
        self.pending: dict[object, float] = {}
        self.expired: set[object] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin sweeping on ``loop``."""
        self._loop = loop
        self._handle = loop.call_later(self.interval, self._sweep)

    def stop(self) -> None:
        """Stop sweeping."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sweep(self) -> None:
        loop = self._loop
        assert loop is not None
        now = monotonic()
        if self.pending:
            # Deadlines are start time + one timeout, so insertion order is deadline order.
            late = []
            for task, deadline in self.pending.items():
                if deadline > now:
                    break
                late.append(task)
            for task in late:
                del self.pending[task]
                assert isinstance(task, asyncio.Task)
                if not task.done():
                    self.expired.add(task)
                    task.cancel()
        self._handle = loop.call_later(self.interval, self._sweep)

    def claim_expiry(self, task: object) -> bool:
        """True (once) if ``task`` was cancelled by its deadline; undoes the cancellation request."""
        if task is None or task not in self.expired:
            return False
        self.expired.discard(task)
        # Python 3.11+ counts cancellation requests; one turned into a 504 must not propagate further.
        uncancel = getattr(task, "uncancel", None)
        if uncancel is not None:
            uncancel()
        return True


class Gate:
    """Every rule of an api or mount call in one place: admission, the slot, the deadline, the 504, metrics.

    Admission (``admit``), in this order: the token (401), readiness and draining (503),
    ``max_concurrency`` (429, at once, with ``Retry-After``). An admitted call takes a slot and a deadline,
    and gives both back when it ends (``leave``), which also records it in the metrics; the body limit
    (413, ``too_large``) and the input's decoding are checked inside the slot, on both paths. A sync call
    still running in its thread after its 504 keeps a slot (``hold_slot_until``).

    ASGI calls run under ``guard``; asgiserve's server runs direct calls with ``admit`` and ``leave``
    around them (``APIHandler.start`` and ``finish``), so both paths follow the same rules.
    """

    __slots__ = (
        "_expired",
        "_pending",
        "_timeout",
        "closed",
        "deadlines",
        "draining",
        "in_flight",
        "max_body",
        "max_concurrency",
        "metrics",
        "progress",
        "ready",
        "timeout_answer",
        "timeout_message",
        "token",
    )

    def __init__(
        self,
        metrics: Metrics,
        *,
        timeout: float,
        max_concurrency: int | None,
        token: str | None,
        max_body: int,
    ) -> None:
        self.metrics = metrics
        self.progress = metrics.in_progress
        self.deadlines = deadlines = Deadlines(timeout)
        self._pending = deadlines.pending
        self._expired = deadlines.expired
        self._timeout = timeout
        self.max_concurrency = max_concurrency or 1 << 62
        self.token = token.encode() if token else None
        self.max_body = max_body
        self.in_flight = 0
        self.ready = False  # the service's __init__ and its mounts' startup are done
        self.draining = False  # the server is stopping
        self.closed = True  # not ready, or draining: what admission checks
        self.timeout_message = f"No response within the {timeout:g} s timeout"
        self.timeout_answer: Answer = (504, JSON_CT, error_body(self.timeout_message), None)

    def refuse(self, headers: Headers) -> Answer | None:
        """The answer refusing a call, or None: ``admit``'s verdict without taking a slot (a websocket)."""
        return self.admit(headers, "", None, 0.0, hold=False)

    def open(self) -> None:
        """The service is ready: calls are admitted from now on (until ``drain``)."""
        self.ready = True
        self.closed = self.draining

    def drain(self) -> None:
        """The server is stopping: no call is admitted from now on."""
        self.draining = self.closed = True

    def too_large(self) -> PayloadTooLarge:
        """The error for a request body over the limit."""
        return PayloadTooLarge(f"Request body over the {self.max_body} byte limit")

    def _authorized(self, headers: Headers) -> bool:
        token = self.token
        assert token is not None
        for name, value in headers:
            if name == b"authorization":
                scheme, _, given = bytes(value).partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token)
        return False

    def admit(
        self, headers: Headers, endpoint: str, task: object, t0: float, *, hold: bool = True
    ) -> Answer | None:
        """Admit a call that began at ``t0`` (a slot, and a deadline for ``task``), or the answer refusing it.

        A refusal is recorded here; an admitted call is recorded by ``leave``, which it must reach. With
        ``hold`` false nothing is taken or recorded: only the verdict is given.
        """
        if self.token is not None and not self._authorized(headers):
            refused = _UNAUTHORIZED
        elif self.closed:
            refused = _NOT_READY
        elif self.in_flight >= self.max_concurrency:
            refused = _TOO_MANY
        elif hold:
            self.in_flight += 1
            progress = self.progress
            try:
                progress[endpoint] += 1
            except KeyError:
                progress[endpoint] = 1
            self._pending[task] = t0 + self._timeout
            return None
        else:
            return None
        if hold:
            self.metrics.observe(endpoint, refused[0], monotonic() - t0)
        return refused

    def leave(self, endpoint: str, task: object, t0: float, status: int) -> None:
        """The call ``admit`` let in has ended with ``status``: give back its slot and deadline, record it."""
        self._pending.pop(task, None)
        expired = self._expired
        if expired and task in expired:
            self.deadlines.claim_expiry(task)  # its expiry was swallowed: forget it
        self.in_flight -= 1
        self.progress[endpoint] -= 1
        self.metrics.observe(endpoint, status, monotonic() - t0)

    def expired(self, task: object) -> bool:
        """True (once) when ``task`` was cancelled by its deadline: the call is answered 504."""
        return self.deadlines.claim_expiry(task)

    def response_started(self, task: object) -> None:
        """The call's response has begun: its deadline ends (a slow reader must not turn it into a 504)."""
        self._pending.pop(task, None)

    def hold_slot_until(self, work: Future[object]) -> None:
        """Keep a slot taken until ``work`` (a thread running past its call's end) finishes."""
        loop = asyncio.get_running_loop()
        self.in_flight += 1

        def release(_: Future[object]) -> None:
            loop.call_soon_threadsafe(self._release)

        work.add_done_callback(release)

    def _release(self) -> None:
        self.in_flight -= 1

    async def guard(
        self, endpoint: str, headers: Headers, send: Send, work: Callable[..., Awaitable[int]], *args: object
    ) -> None:
        """Run an ASGI call, ``await work(*args)`` returning the status it sent, under every rule above."""
        task = asyncio.current_task()
        t0 = monotonic()
        refused = self.admit(headers, endpoint, task, t0)
        if refused is not None:
            await send_answer(send, refused)
            return
        status = 500
        try:
            status = await work(*args)
        except asyncio.CancelledError:
            if not self.expired(task):
                raise
            status = await send_answer(send, self.timeout_answer)
        finally:
            self.leave(endpoint, task, t0, status)
