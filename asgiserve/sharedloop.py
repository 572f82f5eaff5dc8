"""An asyncio event loop that a thread of its own runs between calls and each calling thread runs for its
call: what the blocking ``TestClient`` serves its app on (``testing.py``).

Handing each call to the loop's thread and back costs two thread wake-ups (and the GIL's handovers),
more than an in-process call itself. Here a calling thread takes the loop (``SharedLoop.lock``) while
the thread that ran it waits for I/O, takes the call's first step itself, outside any task, and runs
the loop's passes until the call ends; a call that the in-process pipe answers within its first step
(most api calls) takes no task and no pass. The loop still runs when no call does (lifespan tasks,
streams and tasks go on between calls), several threads may call at once (a thread waiting for I/O
lets go of the loop), and a call works from inside another event loop too (it blocks that loop's
thread while it waits, as any blocking call does).

The loop is asyncio's own selector loop, whose passes any thread holding the GIL and the lock can run:
uvloop runs its passes without the GIL, and sets up its signal handling on each run in the main thread,
which alone costs more than a call. Running another thread's loop takes a few of its private parts
(``_run_once``, ``_ready``, ``_scheduled``, ``_thread_id``), which asyncio has kept since 3.4.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import selectors
import sys
import threading
import time
from asyncio import events
from collections.abc import Callable, Coroutine, Generator
from typing import TypeVar

__all__ = ["SharedLoop"]

_T = TypeVar("_T")
Select = Callable[[float | None], list[tuple[selectors.SelectorKey, int]]]
_IDLE = 0.005  # seconds without a call before the loop's own thread waits for I/O again
_SLACK = 0.001  # a timer due this close to a waiting thread's own wake-up is not worth waking it for


def _nothing() -> None:
    pass


def _due(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the loop's first timer is due (read without holding the loop: a pass may pop it)."""
    try:
        return bool(loop._scheduled[0].when() <= loop.time())  # type: ignore[attr-defined]
    except IndexError:
        return False


class _Yield:
    """Hands what a coroutine yielded (a future it waits for, or None for a bare turn) to the task."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __await__(self) -> Generator[object, None, None]:
        yield self.value


async def _carry(coro: Coroutine[object, object, _T], waiting: object, caller: int) -> _T:
    """Carry on, as a task, ``coro`` whose first step ran outside any task and yielded ``waiting``."""
    try:
        while True:
            error: BaseException | None = None
            try:
                await _Yield(waiting)
            except BaseException as exc:  # thrown in by the task (a cancellation): the coroutine gets it
                error = exc
            try:
                waiting = coro.send(None) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
    finally:
        if threading.get_ident() != caller:  # ended by another thread's pass: wake the caller's select
            asyncio.get_running_loop().call_soon_threadsafe(_nothing)


class _Selector(selectors.DefaultSelector):
    """The loop's selector: a thread that waits for I/O or a timer gives the loop up meanwhile."""

    def __init__(self, shared: SharedLoop) -> None:
        super().__init__()
        self.shared = shared

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Wait for I/O, letting go of the loop meanwhile.

        Several threads may wait at once: the loop's file descriptors are level-triggered, so an event
        wakes each of them; each then takes the loop in turn, and one that finds the event taken already
        reads nothing (asyncio's readers take ``EAGAIN`` in their stride)."""
        if timeout == 0:
            return super().select(0)
        shared = self.shared
        me = threading.get_ident()
        shared.give_up()
        try:
            if me == shared.owner:
                return shared.idle(super().select, timeout)
            waiting = shared.waiting
            waiting[me] = math.inf if timeout is None else time.monotonic() + timeout
            try:
                return super().select(timeout)
            finally:
                del waiting[me]  # awake: its next pass sees whatever another thread left
        finally:
            shared.take(me)


class SharedLoop:
    """The loop and its thread: ``run(coro)`` from any thread, ``stop()`` once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()  # held by whichever thread runs a pass of the loop
        self.holder: int | None = None  # that thread; None while all wait for I/O
        self.waiting: dict[int, float] = {}  # threads waiting for I/O: when each wakes up by itself
        self.calls = 0  # calls running the loop now
        self.last = 0.0  # when the last one ended
        self.nudge = threading.Event()  # ends the loop thread's standby at once (set to stop)
        self.loop = asyncio.SelectorEventLoop(_Selector(self))
        self.owner: int | None = None  # the loop's own thread
        running = threading.Event()
        self.thread = threading.Thread(
            target=self._serve, args=(running,), name="asgiserve TestClient", daemon=True
        )
        self.thread.start()
        running.wait()  # a call taking the loop before it runs would make it look running already

    def _serve(self, running: threading.Event) -> None:
        with self.lock:
            self.owner = self.holder = threading.get_ident()
            self.loop.call_soon(running.set)
            try:
                self.loop.run_forever()
            finally:
                self.holder = None

    def take(self, me: int) -> None:
        """Take the loop (for a pass) in thread ``me``."""
        self.lock.acquire()
        self.holder = me
        self.loop._thread_id = me  # type: ignore[attr-defined]

    def give_up(self) -> None:
        """Let go of the loop (to wait for I/O, or at a call's end)."""
        self.holder = None
        self.lock.release()

    def holds(self) -> bool:
        """Whether this thread runs a pass of the loop now."""
        return self.holder == threading.get_ident()

    def idle(self, select: Select, timeout: float | None) -> list[tuple[selectors.SelectorKey, int]]:
        """What the loop's own thread does between its passes, not holding the loop: wait for I/O while
        no call runs the loop, else stand by (waiting for I/O too, it would be woken by every event of
        theirs), coming back for a pass when calls have left timers due or callbacks to run."""
        loop = self.loop
        me = self.owner
        assert me is not None
        waiting = self.waiting
        stood_by = False
        while not self.nudge.is_set():
            if self.calls or time.monotonic() - self.last < _IDLE:
                stood_by = True
                self.nudge.wait(_IDLE)
                if not self.calls and (loop._ready or _due(loop)):  # type: ignore[attr-defined]
                    return []  # a pass, which then waits as long as its next timer says
                continue
            if stood_by:
                # The calls meanwhile may have left timers that ``timeout`` (from before them) knows
                # nothing of: an empty pass works out the wait afresh.
                return []
            waiting[me] = math.inf if timeout is None else time.monotonic() + timeout
            try:
                got = select(timeout)
            finally:
                del waiting[me]
            if not self.calls:
                return got
            # A call took the loop meanwhile: it takes these events too (level-triggered, they stay).
        return []

    def run(self, aw: Coroutine[object, object, _T]) -> _T:
        """Run ``aw`` to its end on the loop, from this thread, and return its result."""
        loop = self.loop
        me = threading.get_ident()
        if self.holder == me:
            aw.close()
            raise RuntimeError("a blocking call from inside the loop it would run")
        task: asyncio.Task[_T] | None = None
        self.take(me)  # while the thread running the loop waits for I/O (or when its pass ends)
        self.calls += 1
        running = events._get_running_loop()
        hooks = sys.get_asyncgen_hooks()
        # This thread runs the loop for now: what a running loop's thread has.
        events._set_running_loop(loop)
        sys.set_asyncgen_hooks(
            firstiter=loop._asyncgen_firstiter_hook,  # type: ignore[attr-defined]
            finalizer=loop._asyncgen_finalizer_hook,  # type: ignore[attr-defined]
        )
        ready = loop._ready  # type: ignore[attr-defined]
        try:
            # The first step outside any task, as a task's first step would run (in a copy of this
            # context): most calls end within it, which spares the task and the loop pass.
            context = contextvars.copy_context()
            try:
                waiting = context.run(aw.send, None)
            except StopIteration as stop:
                result: _T = stop.value
            else:
                task = context.run(loop.create_task, _carry(aw, waiting, me))
                run_once = loop._run_once  # type: ignore[attr-defined]
                while not task.done():
                    run_once()
        finally:
            scheduled = loop._scheduled  # type: ignore[attr-defined]
            if scheduled and scheduled[0].when() <= loop.time():
                loop._run_once()  # type: ignore[attr-defined]  # timers due: the loop's thread stands by
            elif ready:
                # What the call left for the end of its pass (the server's held writes); I/O is for the
                # next pass, whichever thread runs it.
                for _ in range(len(ready)):
                    handle = ready.popleft()
                    if not handle._cancelled:
                        handle._run()
            sys.set_asyncgen_hooks(*hooks)
            events._set_running_loop(running)
            loop._thread_id = self.owner  # type: ignore[attr-defined]
            self.calls -= 1
            self.last = time.monotonic()
            # The others sleep until their next timer or I/O: wake them for what this call left.
            waiters = self.waiting
            if waiters and (ready or (scheduled and scheduled[0].when() < min(waiters.values()) - _SLACK)):
                loop.call_soon_threadsafe(_nothing)
            self.give_up()
        return result if task is None else task.result()

    def stop(self) -> None:
        """Stop the loop, end its thread and close the loop (after the last call)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.nudge.set()
        self.thread.join()
        self.loop.close()
