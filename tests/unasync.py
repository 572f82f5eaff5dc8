#!/usr/bin/env python3
"""Generate the blocking client from the asyncio one: ``asgiserve/client/_async_client.py`` is the source,
``asgiserve/client/_sync_client.py`` the output.

    python tests/unasync.py           # rewrite the generated file
    python tests/unasync.py --check   # exit 1 when the generated file is not what the source gives

The rewrite goes token by token (Python's own tokenizer), so strings and comments are never mistaken for
code: ``await`` is dropped, ``async`` is dropped before ``def``, ``with`` and ``for``, identifiers are
renamed by ``RENAMES`` (in code, docstrings and comments alike), and the asyncio calls in ``CODE`` get
their blocking counterparts (in code only). Anything async left over (an ``asyncio`` name without a
counterpart, an ``Async...`` name not in the table) stops the rewrite instead of producing a wrong file.
Everything between tokens (spaces, line breaks) is copied as it is, so the output keeps the source's
layout.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "asgiserve" / "client" / "_async_client.py"
TARGET = ROOT / "asgiserve" / "client" / "_sync_client.py"

# Identifiers with a blocking counterpart, renamed wherever they appear.
RENAMES = {
    "AsyncClient": "SyncClient",
    "AsyncHTTPClient": "SyncHTTPClient",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncPool": "Pool",
    "AsyncBody": "Body",
    "AsyncIterator": "Iterator",
    "AsyncTask": "Task",
    "AsyncTaskEndpoint": "TaskEndpoint",
    "aiopool": "pool",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}
# Token sequences of code and what replaces them.
CODE = {
    ("import", "asyncio"): "import threading",
    ("asyncio", ".", "Lock"): "threading.Lock",
    ("asyncio", ".", "sleep"): "time.sleep",
}
DROPPED = {"await"}
ASYNC_BEFORE = {"def", "with", "for"}  # "async" is dropped before these

HEADER = "# Generated from _async_client.py by tests/unasync.py: edit that file and run `python tests/unasync.py`.\n"
_WORD = re.compile(r"\b(" + "|".join(map(re.escape, RENAMES)) + r")\b")
_LEFTOVER = re.compile(r"^(?:asyncio|Async[A-Z]\w*|a(?:iter|next|close)|__a(?:enter|exit|iter|next)__)$")


class UnasyncError(Exception):
    """The source uses an async construct the table has no counterpart for."""


def unasync(source: str, name: str = "<source>") -> str:
    """The blocking version of ``source``."""
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    pos = (1, 0)
    skip_space = False  # after a dropped keyword, the space that followed it goes too
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        gap = _between(lines, pos, tok.start)
        if skip_space and gap.strip(" ") == "":
            gap = ""
        skip_space = False
        out.append(gap)
        kind, text = tok.type, tok.string
        seq = next((k for k in CODE if _matches(tokens, i, k)), None)
        if seq is not None:
            out.append(CODE[seq])
            pos = tokens[i + len(seq) - 1].end
            i += len(seq)
            continue
        if kind == tokenize.NAME:
            following = tokens[i + 1].string if i + 1 < len(tokens) else ""
            if text in DROPPED or (text == "async" and following in ASYNC_BEFORE):
                skip_space = True
                text = ""
            elif _LEFTOVER.match(text) and text not in RENAMES:
                where = f"{name}:{tok.start[0]}"
                raise UnasyncError(f"{where}: no blocking counterpart for {tok.line.strip()!r} ({text})")
            else:
                text = RENAMES.get(text, text)
        elif kind in (tokenize.STRING, tokenize.COMMENT):
            text = _WORD.sub(lambda m: RENAMES[m.group(1)], text)
        out.append(text)
        pos = tok.end
        i += 1
    return HEADER + "".join(out)


def _matches(tokens: list[tokenize.TokenInfo], i: int, seq: tuple[str, ...]) -> bool:
    window = tokens[i : i + len(seq)]
    return len(window) == len(seq) and all(
        t.string == s and t.type in (tokenize.NAME, tokenize.OP) for t, s in zip(window, seq)
    )


def _between(lines: list[str], start: tuple[int, int], end: tuple[int, int]) -> str:
    """The source text from ``start`` to ``end`` (rows from 1, columns from 0, as tokenize gives them)."""
    (r1, c1), (r2, c2) = start, end
    if r1 > len(lines):
        return ""
    if r1 == r2:
        return lines[r1 - 1][c1:c2]
    return lines[r1 - 1][c1:] + "".join(lines[r1 : r2 - 1]) + (lines[r2 - 1][:c2] if r2 <= len(lines) else "")


def main() -> int:
    """Write the generated file, or with ``--check`` say whether it is current."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when the generated file is stale")
    args = parser.parse_args()
    try:
        wanted = unasync(SOURCE.read_text(), str(SOURCE.relative_to(ROOT)))
    except UnasyncError as exc:
        print(f"unasync: {exc}", file=sys.stderr)
        return 2
    current = TARGET.read_text() if TARGET.exists() else None
    target = TARGET.relative_to(ROOT)
    if args.check:
        if current != wanted:
            print(f"unasync: {target} is stale; run `python tests/unasync.py`", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        TARGET.write_text(wanted)
        print(f"unasync: wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
