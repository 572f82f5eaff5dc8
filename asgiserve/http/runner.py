"""The runner: the one task a connection's requests run as, stepped by hand.

A task per request costs more than the rest of a small call, so an async api's own coroutine (and an ASGI
request without a body) takes its first step inside the protocol's callback (``HTTPProtocol.start_call``,
``HTTPProtocol.run_cycle``, entering the runner's task as asyncio's own task step does), and most such
calls finish there. One that suspends is handed to the runner (``Runner.hand``), which carries it on
(``_carry``) and then waits for the next. Each request runs in its own copy of the connection's context,
and ``current_task()`` is the runner throughout, which is what the deadline sweep cancels. A runner still
carrying an ASGI app that goes on after its response (background work) is retired, and a new one takes
the connection's next requests, so that no request waits behind another's leftovers.
"""

from __future__ import annotations

import asyncio
import types
from asyncio import CancelledError
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context

from .exchange import Exchange

__all__ = ["UNSTARTED", "Runner"]

UNSTARTED = object()  # a handed-over call whose coroutine has not run yet

# (request, its coroutine, its context, what it awaits or UNSTARTED)
Job = tuple[Exchange, Coroutine[object, object, object], Context, object]
# Called with each request the runner carried to its end: (request, result, error).
Finish = Callable[[Exchange, object, "BaseException | None"], None]


class Runner:
    """The task that carries a connection's suspended calls on, one at a time."""

    __slots__ = ("_finish", "_loop", "carrying", "job", "stopping", "task", "wakeup")

    def __init__(self, loop: asyncio.AbstractEventLoop, finish: Finish) -> None:
        self._loop = loop
        self._finish = finish
        self.task: asyncio.Task[None] | None = None
        self.wakeup: asyncio.Future[None] | None = None
        self.job: Job | None = None
        self.carrying = False  # a handed request is being carried on
        self.stopping = False  # no more calls will come: end once the last one is carried

    @property
    def busy(self) -> bool:
        """A request was handed over and has not ended: the next one cannot run as this runner's task."""
        return self.carrying or self.job is not None

    def start(self) -> asyncio.Task[None]:
        """Start the runner's task (there is none, or the last one ended)."""
        task = self.task = self._loop.create_task(self._run())
        return task

    def hand(
        self, call: Exchange, coro: Coroutine[object, object, object], ctx: Context, waiting: object
    ) -> None:
        """Carry ``call`` on from where it stopped (``waiting``: what it awaits, or ``UNSTARTED``)."""
        self.job = (call, coro, ctx, waiting)
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    def stop(self) -> None:
        """No more calls will come; an idle runner ends now."""
        self.stopping = True
        wakeup = self.wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.cancel()

    def retire(self) -> None:
        """No more calls will come: end once the request handed over is carried to its end."""
        if self.busy:
            self.stopping = True
        else:
            self.stop()

    async def _run(self) -> None:
        loop = self._loop
        while True:
            cancelled = False
            if self.job is None:
                if self.stopping:
                    return
                wakeup = self.wakeup = loop.create_future()
                try:
                    await wakeup
                except CancelledError:
                    # A cancel aimed at the call just handed over (its deadline), or the end of the
                    # connection or of the loop when there is none.
                    if self.job is None:
                        return
                    cancelled = True
                finally:
                    self.wakeup = None
                if self.job is None:
                    if self.stopping:
                        return
                    continue
            call, coro, ctx, waiting = self.job
            self.job = None
            self.carrying = True
            try:
                result = await _carry(call, ctx, coro, waiting, cancelled)
            except (Exception, CancelledError) as exc:
                self.carrying = False
                self._finish(call, None, exc)
            else:
                self.carrying = False
                self._finish(call, result, None)
            if self.job is None and self.stopping:
                return


@types.coroutine
def _carry(
    call: Exchange, ctx: Context, coro: Coroutine[object, object, object], waiting: object, cancelled: bool
) -> Generator[object, object, object]:
    """Step ``coro`` on from where its first step (``HTTPProtocol.start_call``) left it, in its own context, inside the runner task.

    ``waiting`` is what it last yielded (the future it awaits), or ``UNSTARTED``. The runner's task
    sees each future as its own, so wake-ups and cancellation (thrown in here) reach the call unchanged.
    Each return from the loop sets ``call.resumed`` (a stream gives others a turn by it).
    """
    # What to do next: send ``arg`` in, throw ``error`` in, or (neither) wait on ``waiting``.
    send = throw = False
    arg: object = None
    error: BaseException = CancelledError()
    if waiting is UNSTARTED:
        throw, send = cancelled, not cancelled
    elif cancelled and isinstance(waiting, asyncio.Future):
        waiting.cancel()  # as a task cancelled while running would: the awaited future is cancelled
    elif cancelled:
        throw = True
    while True:
        if send or throw:
            try:
                waiting = ctx.run(coro.throw, error) if throw else ctx.run(coro.send, arg)
            except StopIteration as stop:
                return stop.value
        try:
            arg = yield waiting
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            error, throw, send = exc, True, False
        else:
            send, throw = True, False
        call.resumed = True  # a flag, not a counter: a growing int would be allocated each time
