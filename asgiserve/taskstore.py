"""The task store: one SQLite database in WAL mode, shared by every worker of a server, files beside it.

Blocking and thread-bound by design: each worker owns one ``TaskStore`` and calls it from one thread of its
own (``tasks.TaskRunner``), never from the event loop. Why it does not answer "database is locked":
- WAL mode, so readers never wait for the writer and the writer never waits for readers;
- every write is one statement in autocommit mode (``UPDATE ... RETURNING`` claims a task atomically),
  so no transaction ever has to upgrade a read lock into a write lock, which is the case SQLite answers
  SQLITE_BUSY at once, without waiting, whatever the busy timeout;
- a busy timeout of 30 s for the short moments when two workers write at the same time.

Request bodies of file inputs (multipart) and file outputs are files in ``files/`` beside the database;
other bodies, being small, are kept in their row. Each running task records its owner (a worker's pid and
the start time of that process), so that a restarted server, or any worker of a live one, can tell a task
whose worker is gone (killed, crashed) and report it ``failed`` instead of ``in_progress`` forever.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec

__all__ = [
    "Claimed",
    "Result",
    "StatusRow",
    "TaskStore",
    "owner_alive",
    "owner_token",
    "result_ttl",
    "store_dir",
]

PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELED = (
    "pending",
    "in_progress",
    "completed",
    "failed",
    "canceled",
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    executed_at REAL,
    completed_at REAL,
    owner TEXT,
    reason TEXT,
    in_ctype TEXT,
    in_body BLOB,
    out_status INTEGER,
    out_ctype TEXT,
    out_headers BLOB,
    out_body BLOB
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks (status, seq);
CREATE INDEX IF NOT EXISTS tasks_by_completion ON tasks (completed_at);
"""


@dataclass(frozen=True)
class StatusRow:
    """What ``R/status`` reports of a task."""

    id: str
    name: str
    status: str
    created_at: float
    executed_at: float | None
    reason: str | None

    def to_json(self) -> bytes:
        """The ``R/status`` answer: BentoML's four keys, and ``reason`` for a task that could not finish."""
        out: dict[str, object] = {
            "task_id": self.id,
            "status": self.status,
            "created_at": _iso(self.created_at),
            "executed_at": _iso(self.executed_at),
        }
        if self.reason:
            out["reason"] = self.reason
        return msgspec.json.encode(out)


@dataclass(frozen=True)
class Claimed:
    """A pending task this worker has just taken to run, with its input (``body`` None: its file is lost)."""

    id: str
    name: str
    ctype: str | None
    body: bytes | None


@dataclass(frozen=True)
class Result:
    """A finished task's stored response (``body`` None: the body is the file ``out_file``)."""

    row: StatusRow
    status: int | None
    ctype: str | None
    headers: list[tuple[str, str]]
    body: bytes | None


def store_dir(service: str) -> str:
    """The store directory: ``ASGISERVE_TASK_DIR``, else a folder per service under the user's state dir."""
    given = os.environ.get("ASGISERVE_TASK_DIR")
    if given:
        return given
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, "asgiserve", "tasks", service)


def result_ttl(text: str | None) -> float:
    """Seconds a finished task is kept: ``ASGISERVE_TASK_TTL``, default 24 h."""
    if text is None:
        return 24 * 3600.0
    try:
        ttl = float(text)
    except ValueError:
        ttl = 0.0
    if not ttl > 0:  # also NaN
        raise ValueError(f"ASGISERVE_TASK_TTL must be a positive number of seconds, got {text!r}")
    return ttl


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat()


def owner_token(pid: int | None = None) -> str:
    """``pid:start time`` of a process: unlike a bare pid, it does not match a later process given the
    same pid."""
    pid = os.getpid() if pid is None else pid
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # The command name (field 2) may hold spaces and parentheses: fields are counted after its ")".
            fields = fh.read().rpartition(b")")[2].split()
        # A zombie (killed, not yet reaped by whoever adopted it) has stopped running: it owns nothing.
        start = "zombie" if fields[0] in (b"Z", b"X") else fields[19].decode()
    except (OSError, IndexError):
        start = "?"
    return f"{pid}:{start}"


def owner_alive(owner: str) -> bool:
    """Whether the process that recorded ``owner`` still runs."""
    pid_text, _, _ = owner.partition(":")
    try:
        pid = int(pid_text)
        os.kill(pid, 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process: alive
        return True
    return owner_token(pid) == owner


class TaskStore:
    """The tasks of one service: rows in ``tasks.db`` and files in ``files/``, under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = pathlib.Path(directory)
        self.files = self.directory / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / "tasks.db"
        self.db = db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(
            "PRAGMA synchronous = NORMAL"
        )  # WAL stays consistent; a power cut may lose the last commits
        db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def in_file(self, task_id: str) -> pathlib.Path:
        """Where a task's input body lives when it is not in its row."""
        return self.files / f"{task_id}.in"

    def out_file(self, task_id: str) -> pathlib.Path:
        """Where a task's output body lives when it is not in its row."""
        return self.files / f"{task_id}.out"

    def _write(self, path: pathlib.Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # a reader never sees half a file

    # -- submission ------------------------------------------------------------------------------------

    def submit(self, name: str, ctype: str | None, body: bytes, in_file: bool) -> str:
        """Store a new pending task and return its id; ``in_file`` keeps the body beside the database."""
        task_id = uuid.uuid4().hex
        if in_file:
            self._write(self.in_file(task_id), body)
        self.db.execute(
            "INSERT INTO tasks (id, name, status, created_at, in_ctype, in_body) VALUES (?, ?, ?, ?, ?, ?)",
            (task_id, name, PENDING, time.time(), ctype, None if in_file else body),
        )
        return task_id

    def resubmit(self, task_id: str) -> str | None:
        """A new pending task with the input of ``task_id``; None when that task is unknown."""
        row = self.db.execute("SELECT name, in_ctype, in_body FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            return None
        name, ctype, body = row
        if body is not None:
            return self.submit(name, ctype, body, False)
        return self.submit(name, ctype, self.in_file(task_id).read_bytes(), True)

    def claim(self, names: Iterable[str], owner: str) -> Claimed | None:
        """Take the oldest pending task among ``names`` to run (one statement: two workers never take
        the same one); None when there is none."""
        names = list(names)
        if not names:
            return None
        marks = ",".join("?" * len(names))
        # A read first: in WAL mode it takes no lock, so idle workers looking for work never queue writers.
        if not self.db.execute(
            f"SELECT 1 FROM tasks WHERE status = ? AND name IN ({marks}) LIMIT 1", (PENDING, *names)
        ).fetchone():
            return None
        row = self.db.execute(
            "UPDATE tasks SET status = ?, owner = ?, executed_at = ? WHERE seq = "
            f"(SELECT seq FROM tasks WHERE status = ? AND name IN ({marks}) ORDER BY seq LIMIT 1) "
            "RETURNING id, name, in_ctype, in_body",
            (IN_PROGRESS, owner, time.time(), PENDING, *names),
        ).fetchone()
        if row is None:
            return None
        task_id, name, ctype, body = row
        if body is None:
            try:
                body = self.in_file(task_id).read_bytes()
            except OSError:
                body = None  # the runner reports it failed
        return Claimed(task_id, name, ctype, body)

    def has_pending(self, names: Iterable[str]) -> int:
        """How many tasks among ``names`` wait to run."""
        names = list(names)
        marks = ",".join("?" * len(names))
        row = self.db.execute(
            f"SELECT count(*) FROM tasks WHERE status = ? AND name IN ({marks})", (PENDING, *names)
        ).fetchone()
        return int(row[0])

    # -- results ---------------------------------------------------------------------------------------

    def finish(
        self,
        task_id: str,
        owner: str,
        status: int,
        ctype: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> bool:
        """Record a run's response (``body`` None: already written to ``out_file``); False when the task
        was cancelled meanwhile (its response is dropped)."""
        done = COMPLETED if status < 400 else FAILED
        cur = self.db.execute(
            "UPDATE tasks SET status = ?, completed_at = ?, out_status = ?, out_ctype = ?, out_headers = ?,"
            " out_body = ? WHERE id = ? AND status = ? AND owner = ?",
            (
                done,
                time.time(),
                status,
                ctype,
                msgspec.json.encode(headers),
                body,
                task_id,
                IN_PROGRESS,
                owner,
            ),
        )
        if cur.rowcount:
            return True
        self.out_file(task_id).unlink(missing_ok=True)
        return False

    def fail(self, task_id: str, owner: str, reason: str) -> bool:
        """Mark a task this worker runs ``failed`` with ``reason`` (no response to replay)."""
        cur = self.db.execute(
            "UPDATE tasks SET status = ?, completed_at = ?, reason = ? WHERE id = ? AND status = ? AND owner = ?",
            (FAILED, time.time(), reason, task_id, IN_PROGRESS, owner),
        )
        return cur.rowcount > 0

    def status(self, task_id: str) -> StatusRow | None:
        """The task's status row, or None for an unknown (or expired) task."""
        row = self.db.execute(
            "SELECT id, name, status, created_at, executed_at, reason FROM tasks WHERE id = ?", (task_id,)
        ).fetchone()
        return None if row is None else StatusRow(*row)

    def result(self, task_id: str) -> Result | None:
        """The task's status and stored response, or None for an unknown task."""
        row = self.db.execute(
            "SELECT id, name, status, created_at, executed_at, reason, out_status, out_ctype, out_headers,"
            " out_body FROM tasks WHERE id = ?",
            (task_id,),
        ).fetchone()
        if row is None:
            return None
        headers = msgspec.json.decode(row[8], type=list[tuple[str, str]]) if row[8] else []
        return Result(StatusRow(*row[:6]), row[6], row[7], headers, row[9])

    def cancel(self, task_id: str) -> tuple[StatusRow | None, bool, str | None]:
        """Cancel a pending or running task: ``(its row now, whether this cancelled it, the owner that ran
        it)``; a finished task's row is returned unchanged."""
        row = self.db.execute(
            "UPDATE tasks SET status = ?, completed_at = ? WHERE id = ? AND status IN (?, ?) RETURNING owner",
            (CANCELED, time.time(), task_id, PENDING, IN_PROGRESS),
        ).fetchone()
        return self.status(task_id), row is not None, (row[0] if row else None)

    def canceled(self, task_ids: Iterable[str]) -> list[str]:
        """Which of ``task_ids`` (tasks running here) were cancelled, by any worker."""
        ids = list(task_ids)
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT id FROM tasks WHERE status = ? AND id IN ({marks})", (CANCELED, *ids)
        ).fetchall()
        return [r[0] for r in rows]

    # -- upkeep ----------------------------------------------------------------------------------------

    def recover(self, alive: Callable[[str], bool] = owner_alive) -> list[str]:
        """Mark ``failed`` every running task whose worker is gone; returns their ids."""
        rows = self.db.execute("SELECT id, owner FROM tasks WHERE status = ?", (IN_PROGRESS,)).fetchall()
        lost = []
        seen: dict[str, bool] = {}
        for task_id, owner in rows:
            owner = owner or ""
            if owner not in seen:
                seen[owner] = alive(owner)
            if seen[owner]:
                continue
            pid = owner.partition(":")[0] or "?"
            reason = f"Task interrupted: the worker running it (pid {pid}) stopped before it finished"
            cur = self.db.execute(
                "UPDATE tasks SET status = ?, completed_at = ?, reason = ? WHERE id = ? AND status = ? AND owner IS ?",
                (FAILED, time.time(), reason, task_id, IN_PROGRESS, owner or None),
            )
            if cur.rowcount:
                lost.append(task_id)
        return lost

    def sweep(self, ttl: float) -> int:
        """Delete tasks finished more than ``ttl`` seconds ago, with their files; returns how many."""
        rows = self.db.execute(
            "DELETE FROM tasks WHERE completed_at IS NOT NULL AND completed_at < ? RETURNING id",
            (time.time() - ttl,),
        ).fetchall()
        for (task_id,) in rows:
            self.in_file(task_id).unlink(missing_ok=True)
            self.out_file(task_id).unlink(missing_ok=True)
        return len(rows)
