"""The floor: the least Python a JSON api call takes on uvloop + httptools, to set the ceiling against.

The ceiling (``ceiling.py``) answers fixed bytes; a server of apis must also keep the body, decode it,
call the api and encode its answer. This protocol does only that for the benchmark's ``POST /predict``:
a route looked up by path, the body kept as it comes, msgspec's typed decode and encode, the api's
coroutine stepped without a task (it does not suspend), one write. No header is read, nothing is
checked or counted, no error but a bad body is answered: it is no server, only the smallest part of one
that every api call needs, measured by ``instructions.py --http floor`` and, as a row of ``make bench``,
by ``python floor.py PORT`` (any other path answers ``ok``, for the harness's readiness check).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine

import msgspec
import uvloop
from ceiling import FixedProtocol, serve


class Input(msgspec.Struct):
    """The predict input."""

    text: str


class Prediction(msgspec.Struct):
    """The predict output."""

    result: str
    length: int


async def predict(text: str) -> Prediction:
    """Upper-case the text (the benchmark service's predict)."""
    return Prediction(result=text.upper(), length=len(text))


Api = Callable[[str], Coroutine[object, object, Prediction]]
_ROUTES: dict[bytes, Api] = {b"/predict": predict}
_decode = msgspec.json.Decoder(Input).decode
_encode = msgspec.json.Encoder().encode
_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
_BAD = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n"
_OK = b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n"


class FloorProtocol(FixedProtocol):
    """One connection answering ``POST /predict`` with the least work an api call needs (the ceiling's
    parser, transport and error handling; its own url, body and answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.api: Api | None = predict
        self.body: list[bytes] = []

    def on_url(self, url: bytes) -> None:
        """Pick the api by path."""
        self.api = _ROUTES.get(url)

    def on_body(self, body: bytes) -> None:
        """Keep a piece of the body."""
        self.body.append(body)

    def on_message_complete(self) -> None:
        """Decode, call, encode, write."""
        assert self.transport is not None
        body = self.body
        data = body[0] if len(body) == 1 else b"".join(body)
        body.clear()
        if self.api is None:
            self.transport.write(_OK)
            return
        try:
            args = _decode(data)
        except msgspec.DecodeError:  # a ValidationError too
            self.transport.write(_BAD)
        else:
            coro = self.api(args.text)
            try:
                coro.send(None)
            except StopIteration as stop:
                out = _encode(stop.value)
            else:  # the benchmark's api never suspends
                raise RuntimeError("the api suspended")
            self.transport.write(b"%s%d\r\n\r\n%s" % (_HEAD, len(out), out))
        if not self.parser.should_keep_alive():
            self.transport.close()


if __name__ == "__main__":
    uvloop.run(serve(FloorProtocol, int(sys.argv[1])))
