"""The ASGI lifespan protocol (spec 2.0), driven for the app a server serves and for a service's mounted apps.

One rule set for both; uvicorn's ``--lifespan auto`` until the app takes the startup message (calls
``receive``), its ``--lifespan on`` from then on:

- An app that raises or returns before it takes the startup message does not speak lifespan (a framework
  refusing unknown scope types does that): it is served without one and gets no shutdown message. A note
  says so in the log, at the level its caller chose (info for the served app, debug for a mounted one).
- An app that takes the startup message and returns without answering is served without one too.
- An app that answers ``lifespan.startup.failed``, or takes the startup message and raises before it
  answers, failed to start: ``start`` raises ``LifespanFailure`` with its message (or the exception) and
  nothing is served. (uvicorn's default, ``auto``, serves an app that raises there; here the app took the
  message, so the error is its startup's own, as ``--lifespan on`` reads it.)
- After ``lifespan.startup.complete`` the app gets ``lifespan.shutdown`` when the server stops. Answering
  ``lifespan.shutdown.failed``, raising (also while it was being served: that is logged when it happens)
  or not finishing within the timeout is a failed shutdown; answering ``lifespan.shutdown.complete`` or
  returning is a clean one.
- A message out of turn (``startup.complete`` twice, a shutdown answer before the shutdown message) makes
  the app's ``send`` raise ``RuntimeError``, as in uvicorn.

``start``/``stop`` raise; ``startup``/``shutdown`` are the server's steps, which log instead.
"""

from __future__ import annotations

import asyncio
import logging

from ..types import ASGIApp, Message, Scope

__all__ = ["Lifespan", "LifespanFailure"]

logger = logging.getLogger("asgiserve")

_ASGI = {"version": "3.0", "spec_version": "2.0"}
_ENDED: Message = {"type": "asgiserve.lifespan.ended"}  # the app's call returned or raised
# Where the lifespan is: which answers the app may send there.
_NEW, _STARTING, _STARTED, _STOPPING, _DONE = range(5)
_ANSWERS = {
    _STARTING: ("lifespan.startup.complete", "lifespan.startup.failed"),
    _STOPPING: ("lifespan.shutdown.complete", "lifespan.shutdown.failed"),
}


class LifespanFailure(RuntimeError):
    """An app's lifespan startup or shutdown failed; ``reason`` is its message, or the exception it raised."""

    def __init__(self, name: str, step: str, reason: str) -> None:
        super().__init__(f"{name} failed to {step}: {reason}")
        self.reason = reason


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Lifespan:
    """Drives one app's lifespan scope from a task of its own; ``state`` is the scope's ``state`` dict.

    ``name`` says which app in log lines and failures; ``note_level`` is the level of the note that the app
    does not speak lifespan.
    """

    def __init__(
        self,
        app: ASGIApp,
        state: dict[str, object],
        name: str = "Application",
        note_level: int = logging.INFO,
    ) -> None:
        self.app = app
        self.state = state
        self.name = name
        self.note_level = note_level
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.step = _NEW
        self.taken = 0  # messages the app asked for
        self.error: BaseException | None = None  # what the app's call raised
        self.ended = False
        self.reply: asyncio.Future[Message] | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        """Run startup: True once complete, False when the app does not speak lifespan.

        Raises ``LifespanFailure`` when startup failed (see the module docstring for the rules).
        """
        loop = asyncio.get_running_loop()
        self.reply = reply = loop.create_future()
        self.step = _STARTING
        self.inbox.put_nowait({"type": "lifespan.startup"})
        self.task = loop.create_task(self._run(), name=f"lifespan of {self.name}")
        answer = await reply
        kind = answer["type"]
        if kind == "lifespan.startup.complete":
            return True
        if kind == "lifespan.startup.failed":
            raise LifespanFailure(self.name, "start", str(answer.get("message") or "lifespan.startup.failed"))
        self.step = _DONE
        error = self.error
        if error is not None and self.taken:
            raise LifespanFailure(self.name, "start", _describe(error)) from error
        if error is not None:
            why = _describe(error)
        else:
            why = (
                "it returned "
                + ("without answering" if self.taken else "before taking")
                + " lifespan.startup"
            )
        logger.log(
            self.note_level,
            "%s does not support the lifespan protocol (%s); served without it",
            self.name,
            why,
        )
        return False

    async def stop(self, timeout: float | None = None) -> None:
        """Run shutdown (bounded by ``timeout`` seconds when given); nothing to do unless startup completed.

        Raises ``LifespanFailure`` when shutdown failed.
        """
        task = self.task
        if self.step != _STARTED or task is None:
            return
        self.step = _STOPPING
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if not self.ended:
            self.reply = reply = loop.create_future()
            self.inbox.put_nowait({"type": "lifespan.shutdown"})
            done, _ = await asyncio.wait([reply], timeout=timeout)
            if not done:
                task.cancel()
                self.step = _DONE
                raise LifespanFailure(self.name, "shut down", f"not finished within {timeout:g} s")
            answer = reply.result()
            if answer["type"] == "lifespan.shutdown.failed":
                raise LifespanFailure(self.name, "shut down", str(answer.get("message") or answer["type"]))
            if not task.done():
                # Answered: let the app's call return (what follows its answer is its own clean-up).
                left = None if deadline is None else max(deadline - loop.time(), 0.0)
                await asyncio.wait([task], timeout=left)
                if not task.done():
                    task.cancel()
        self.step = _DONE
        error = self.error
        if error is not None and not isinstance(error, asyncio.CancelledError):
            raise LifespanFailure(self.name, "shut down", _describe(error)) from error

    async def startup(self) -> bool:
        """The server's startup step: True to serve (started, or no lifespan), False (logged) when it failed."""
        try:
            await self.start()
        except LifespanFailure as exc:
            debug = logger.isEnabledFor(logging.DEBUG)  # one line; the traceback only when debugging
            logger.error(
                "%s startup failed: %s", self.name, exc.reason, exc_info=exc.__cause__ if debug else None
            )
            return False
        return True

    async def shutdown(self, timeout: float) -> None:
        """The server's shutdown step (bounded by ``timeout`` seconds); a failure is logged."""
        try:
            await self.stop(timeout)
        except LifespanFailure as exc:
            logger.error("%s shutdown failed: %s", self.name, exc.reason, exc_info=exc.__cause__)

    async def _run(self) -> None:
        scope: Scope = {"type": "lifespan", "asgi": _ASGI, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException as exc:  # the app's call is over either way; how it ended decides the verdict
            self.error = exc
            if self.step == _STARTED and not isinstance(exc, asyncio.CancelledError):
                logger.error("%s: the lifespan raised while the app was served", self.name, exc_info=exc)
        finally:
            self.ended = True
            reply = self.reply
            if reply is not None and not reply.done():
                reply.set_result(_ENDED)

    async def _receive(self) -> Message:
        self.taken += 1
        return await self.inbox.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type")
        reply = self.reply
        if kind not in _ANSWERS.get(self.step, ()) or reply is None or reply.done():
            raise RuntimeError(f"{kind!r} is out of turn in the lifespan protocol")
        if kind == "lifespan.startup.complete":
            self.step = _STARTED
        elif kind == "lifespan.startup.failed" or self.step == _STOPPING:
            self.step = _DONE
        reply.set_result(message)
