"""The array benchmark's requests against real servers: every encoding it times is answered with the array
it sent (a small one here; ``make bench`` sends 1M floats), by asgiserve, FastAPI on uvicorn and the floor."""

from __future__ import annotations

import numpy as np

from benchmarks import arrays


def test_every_encoding_round_trips_the_array_on_each_server():
    rows = arrays.run(True, only=["asgiserve", "fastapi", "raw"], n=1, size=1000)
    by = {r.name: r for r in rows}
    expected = [*arrays.OURS.values(), arrays.FASTAPI, arrays.RAW]
    assert sorted(by) == sorted(expected)
    for name in expected:
        row = by[name]
        assert not row.flagged and row.value is not None and row.value > 0, (name, row.note)


def test_a_wrong_answer_is_flagged(monkeypatch):
    # The check compares with the array sent: a server echoing other numbers must not pass.
    real = arrays._from_npy
    monkeypatch.setattr(arrays, "_from_npy", lambda resp, body: real(resp, body) + np.float32(1))
    rows = arrays.run(True, only=["raw"], n=1, size=10)
    assert rows[0].flagged and "wrong answer" in rows[0].note
