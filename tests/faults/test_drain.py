"""A drain with ``--workers 2`` under load: a connection made once the drain began is refused at once or
served (200, or 503 for an api call), never accepted by the kernel and then reset."""

from __future__ import annotations

import errno
import signal
import socket
import threading
import time
from collections import Counter

from tests.conftest import start
from tests.test_lifecycle import children, wait_for

PID = b"POST /pid HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
SLOW = b'POST /slow HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{"seconds": 2}'


def one_call(port: int, request: bytes) -> tuple[str, float]:
    """One request on a new connection: its outcome and how long the outcome took."""
    t0 = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except ConnectionRefusedError:
        return "refused", time.monotonic() - t0
    except ConnectionResetError:  # queued as the last listening socket closed: counted with the resets
        return "reset", time.monotonic() - t0
    with sock:
        try:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = [int(line.split(b":")[1]) for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")]
                if length and len(body) >= length[0]:
                    break
        except OSError as exc:
            return ("reset" if exc.errno in (errno.ECONNRESET, errno.EPIPE) else repr(exc)), time.monotonic() - t0
    status = data[9:12].decode() if data.startswith(b"HTTP/1.1 ") else "no answer"
    return status, time.monotonic() - t0


def test_drain_with_two_workers_refuses_new_connections_and_resets_none(tmp_path):
    server = start("asgiserve", "tests.faults.apps:Slow", tmp_path)
    assert wait_for(lambda: len(children(server.proc.pid)) == 2)
    outcomes: Counter[str] = Counter()
    refused_after: list[float] = []
    lock = threading.Lock()
    done = threading.Event()
    slow: list[str] = []
    # A call that keeps one worker draining for 2 s: the window in which new connections used to queue.
    caller = threading.Thread(target=lambda: slow.append(one_call(server.port, SLOW)[0]))
    caller.start()
    time.sleep(0.2)

    def client() -> None:
        while not done.is_set():
            outcome, took = one_call(server.port, PID)
            with lock:
                outcomes[outcome] += 1
                if outcome == "refused":
                    refused_after.append(took)
            if outcome == "refused":
                time.sleep(0.01)

    threads = [threading.Thread(target=client) for _ in range(32)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(15) == 0
    time.sleep(0.2)  # connections after the exit: refused too
    done.set()
    for t in threads:
        t.join(15)
    caller.join(5)
    print(dict(outcomes))
    assert slow == ["200"], slow  # the call in flight finished
    assert outcomes["200"] > 0 and outcomes["refused"] > 0, dict(outcomes)
    # Nothing unanswered. A connection the kernel queues between a worker's last accept() and its close()
    # (a window of microseconds, no await in it) is still reset: at most one such in a run of thousands
    # (before the fix, every connection queued during the drain was: 32-66 per run).
    assert set(outcomes) <= {"200", "503", "refused", "reset"}, dict(outcomes)
    assert outcomes["reset"] <= 1, dict(outcomes)
    # Refused at once, not after a wait (the slowest few allow for a thread the busy machine kept waiting).
    refused_after.sort()
    assert refused_after[len(refused_after) * 95 // 100] < 0.1 and refused_after[-1] < 1, refused_after[-5:]
