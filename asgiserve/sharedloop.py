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

A sync api's function would cost two more handovers, to a pool thread and back; ``inline(pool)`` has the
calling thread run what its own call hands to the pool, between its passes and not holding the loop (so
the loop runs on meanwhile, and the function sees no running loop, as in a pool thread). Work that serves
another thread's call goes to the pool as before: a call never waits for a function it did not ask for.

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
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

__all__ = ["SharedLoop"]

# Work a call's thread runs outside the loop: the loop's future for it and the function whose result it gets.
Work = tuple["asyncio.Future[object]", Callable[..., object], tuple[object, ...], dict[str, object]]

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


class _Caller:
    """A thread running a call (``SharedLoop.run``): the work the call handed to the thread pool, for this
    thread to run, and whether it still takes more (not once the call ended: the loop it leaves behind
    may hand work over, which nobody here would run)."""

    __slots__ = ("open", "work")

    def __init__(self) -> None:
        self.open = True
        self.work: list[Work] = []


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
        self.callers: dict[int, _Caller] = {}  # threads running a call now
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
        callers = self.callers
        outer = callers.get(me)  # a call made by work this thread runs for another call
        caller = callers[me] = _Caller()
        work = caller.work
        running, hooks = self._enter(me)
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
                while work or not task.done():
                    if work:
                        self._outside(me, work, running, hooks)
                    else:
                        run_once()
        finally:
            caller.open = False
            try:
                for fut, *_ in work:  # left by a call that failed in this thread (KeyboardInterrupt)
                    fut.cancel()
                work.clear()
                self._leave(running, hooks)
            finally:
                if outer is None:
                    del callers[me]
                else:
                    callers[me] = outer
        return result if task is None else task.result()

    def inline(self, pool: ThreadPoolExecutor, mine: Callable[[int], bool]) -> None:
        """Have what a call hands to ``pool`` (a sync api's function) run by the call's own thread, outside
        the loop, instead of by a pool thread: two thread handovers less per call. ``mine(thread)`` says
        whether the work handed over now serves a call of ``thread``; other work (another thread's call,
        run in this thread's pass) goes to the pool, so that no call waits for another's function."""
        submit = pool.submit
        callers = self.callers
        loop = self.loop

        def submit_here(
            fn: Callable[..., object], /, *args: object, **kwargs: object
        ) -> Future[object] | asyncio.Future[object]:
            me = threading.get_ident()
            caller = callers.get(me)
            if caller is None or not caller.open or self.holder != me or not mine(me):
                return submit(fn, *args, **kwargs)
            # The loop's own kind of future, which ``asyncio.wrap_future`` (what takes a pool's futures
            # here) passes through: its result wakes the call without a wake-up of the loop's selector.
            fut: asyncio.Future[object] = loop.create_future()
            caller.work.append((fut, fn, args, kwargs))
            return fut

        pool.submit = submit_here  # type: ignore[method-assign, assignment]

    def _outside(
        self,
        me: int,
        work: list[Work],
        running: asyncio.AbstractEventLoop | None,
        hooks: sys._asyncgen_hooks,
    ) -> None:
        """Run the call's handed-over ``work`` in this thread, not holding the loop (others run it
        meanwhile, and the work may call the loop as a pool thread would), then take the loop again."""
        self._leave(running, hooks)
        # No running loop, as in a pool thread, even when this thread's own loop (blocked in this call)
        # runs: the work may start one of its own (``asyncio.run``).
        events._set_running_loop(None)
        done: list[tuple[asyncio.Future[object], object, BaseException | None]] = []
        try:
            while work:
                fut, fn, args, kwargs = work.pop(0)
                if fut.cancelled():
                    continue
                try:
                    done.append((fut, fn(*args, **kwargs), None))
                except BaseException as exc:  # as a pool thread keeps it: the call gets it
                    done.append((fut, None, exc))
                    if not isinstance(exc, Exception):
                        raise
        finally:
            events._set_running_loop(running)
            self._enter(me)
            # Set while holding the loop: the call's next step then runs in this thread's next pass,
            # not in a pass of the loop's own thread woken by the result.
            for fut, result, error in done:
                if fut.cancelled():
                    continue
                if error is None:
                    fut.set_result(result)
                else:
                    fut.set_exception(error)

    def _enter(self, me: int) -> tuple[asyncio.AbstractEventLoop | None, sys._asyncgen_hooks]:
        """Take the loop for a call in thread ``me``: what this thread had as running loop and asyncgen
        hooks before, for ``_leave``."""
        loop = self.loop
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
        return running, hooks

    def _leave(self, running: asyncio.AbstractEventLoop | None, hooks: sys._asyncgen_hooks) -> None:
        """Let go of the loop a call took, once what the call's pass left is run."""
        loop = self.loop
        ready = loop._ready  # type: ignore[attr-defined]
        scheduled = loop._scheduled  # type: ignore[attr-defined]
        try:
            if scheduled and scheduled[0].when() <= loop.time():
                loop._run_once()  # type: ignore[attr-defined]  # timers due: the loop's thread stands by
            elif ready:
                # What the call left for the end of its pass (the server's held writes); I/O is for the
                # next pass, whichever thread runs it.
                for _ in range(len(ready)):
                    handle = ready.popleft()
                    if not handle._cancelled:
                        handle._run()
        finally:
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

    def stop(self) -> None:
        """Stop the loop, end its thread and close the loop (after the last call)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.nudge.set()
        self.thread.join()
        self.loop.close()
