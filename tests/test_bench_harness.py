"""The benchmark harness's own logic: reading wrk's report (errors included), ratios, targets, README part.

The measurements themselves need wrk and quiet CPUs, so they live in ``make bench``; these check that what
the harness reads and writes is right, on wrk output captured from real runs, and that a baseline revision
is extracted and served as a peer.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from benchmarks import peers, report, wrk
from benchmarks.apps.workload import PREDICT_BODY, PREDICT_EXPECTED
from benchmarks.harness import ROOT, Row, Server, cpu_sets, free_port, request, tree_cpu_seconds, tree_rss_mb

CLEAN = """Running 2s test @ http://127.0.0.1:41235/predict
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.20ms  712.31us  12.41ms   91.12%
    Req/Sec    27.84k     1.92k   30.15k    80.00%
  Latency Distribution
     50%    2.05ms
     75%    2.31ms
     90%    2.68ms
     99%    4.14ms
  55408 requests in 2.00s, 8.77MB read
Requests/sec:  27704.12
Transfer/sec:      4.38MB
"""

NON_2XX = """Running 1s test @ http://127.0.0.1:8931/nope
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   315.15us  180.72us   3.94ms   83.47%
    Req/Sec    25.94k     4.20k   36.21k    81.82%
  Latency Distribution
     50%  285.00us
     75%  327.00us
     90%  539.00us
     99%  796.00us
  28301 requests in 1.10s, 4.13MB read
  Non-2xx or 3xx responses: 28301
Requests/sec:  25739.32
Transfer/sec:      3.76MB
"""


def test_wrk_clean_report():
    r = wrk.parse(CLEAN)
    assert r.rps == pytest.approx(27704.12)
    assert r.requests == 55408
    assert r.p50_ms == pytest.approx(2.05)
    assert r.p99_ms == pytest.approx(4.14)
    assert r.errors == {}


def test_wrk_non_2xx_and_socket_errors_are_reported():
    r = wrk.parse(NON_2XX)
    assert r.errors == {"non-2xx": 28301}
    assert r.p50_ms == pytest.approx(0.285)
    with_socket = CLEAN.replace(
        "Requests/sec", "  Socket errors: connect 0, read 12, write 0, timeout 3\nRequests/sec"
    )
    assert wrk.parse(with_socket).errors == {"read": 12, "timeout": 3}


def test_wrk_unreadable_output_raises():
    with pytest.raises(RuntimeError, match="unreadable"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused")


def test_wrk_script_escapes_body():
    lua = wrk.script("POST", b'{"text":"it\'s"}')
    assert lua is not None
    try:
        text = lua.read_text()
    finally:
        lua.unlink()
    assert 'wrk.method = "POST"' in text
    assert 'wrk.body = \'{"text":"it\\\'s"}\'' in text
    assert wrk.script("GET", None) is None


def _rows() -> list[Row]:
    g = "POST /predict (async api)"
    return [
        Row(g, "asgiserve (own server, httptools)", 40_000, "req/s", subject=True, extra={"p99 ms": 2.0}),
        Row(g, "raw ASGI + msgspec on uvicorn", 20_000, "req/s", extra={"p99 ms": 4.0}),
        Row(
            g,
            "FastAPI + pydantic on uvicorn",
            5_000,
            "req/s",
            extra={"p99 ms": 1.5},
            flagged=True,
            note="ERRORS: non-2xx 3",
        ),
        Row(g, "ceiling: uvloop + httptools, fixed bytes", 100_000, "req/s", extra={"p99 ms": 0.5}),
        Row("Import", "asgiserve", 50.0, "ms", higher_is_better=False, subject=True),
        Row("Import", "fastapi", 300.0, "ms", higher_is_better=False),
    ]


def test_ratio_direction_for_throughput_and_time():
    by = report.groups(_rows())
    predict = by["POST /predict (async api)"]
    assert report.ratio(predict[1], predict[0]) == pytest.approx(2.0)
    assert report.ratio(predict[3], predict[0]) == pytest.approx(0.4)
    assert report.ratio(by["Import"][1], by["Import"][0]) == pytest.approx(6.0)
    assert report.ratio(Row("x", "none", None, "req/s"), predict[0]) is None


def test_targets_and_flags_in_the_report():
    by = report.groups(_rows())
    t = report.Target("x", "POST /predict (async api)", "ratio", "FastAPI + pydantic on uvicorn", 8.0)
    assert report.check(t, by) == ("8.00x (peer flagged)", "met")
    # p99: FastAPI's 1.5 ms beats asgiserve's 2.0 ms; the ceiling is left out of the comparison.
    p99 = report.Target("p99", "POST /predict (async api)", "p99")
    assert report.check(p99, by)[1] == "MISSED"
    assert report.check(report.Target("m", "Import", "max", "asgiserve", 80.0), by) == ("50.0 ms", "met")
    assert report.check(report.Target("n", "missing group", "ratio", "a", 1.0), by)[0] == "not measured"
    md = report.markdown(_rows(), {"CPU": "test"}, "method", "cmd", ["a note"], report.TARGETS)
    assert "FastAPI + pydantic on uvicorn ⚠ | 5,000 | 8.00 |" in md
    assert "**asgiserve (own server, httptools)** | 40,000 | 1 (reference) |" in md


def test_readme_section_is_replaced_between_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{report.README_START}\nold\n{report.README_END}\n\n## after\n")
    assert report.update_readme(readme, "new table")
    assert readme.read_text() == f"# x\n\n{report.README_START}\nnew table\n{report.README_END}\n\n## after\n"
    bare = tmp_path / "bare.md"
    bare.write_text("# no markers\n")
    assert not report.update_readme(bare, "t")


def test_row_coerce_accepts_dicts():
    row = Row.coerce({"group": "clients", "name": "httpx.Client", "value": 1.0, "unit": "calls/s"})
    assert row == Row("clients", "httpx.Client", 1.0, "calls/s")


def test_cpu_sets_are_disjoint_and_process_tree_is_read():
    server, load = cpu_sets()
    assert server and load
    if len(server + load) > 1:
        assert not set(server) & set(load)
    assert tree_cpu_seconds(os.getpid()) > 0
    assert tree_rss_mb(os.getpid()) > 1


def _git(*args: str) -> bytes:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=True).stdout


def test_baseline_is_extracted_and_its_own_server_answers(tmp_path):
    head = _git("rev-parse", "HEAD").decode().strip()
    base = peers.extract_baseline("HEAD", tmp_path)
    assert (base.sha, base.root) == (head, (tmp_path / f".baseline-{head}").resolve())
    assert (base.root / "asgiserve" / "http" / "connection.py").read_bytes() == _git(
        "show", "HEAD:asgiserve/http/connection.py"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".baseline-{head}"]  # no partial copy left
    marker = base.root / ".extracted"
    stamp = marker.stat().st_mtime_ns
    assert peers.extract_baseline(head[:9], tmp_path).root == base.root
    assert marker.stat().st_mtime_ns == stamp  # the same revision is extracted once
    with pytest.raises(peers.BaselineError, match="not a commit"):
        peers.extract_baseline("no-such-revision-here", tmp_path)

    peer = peers.baseline_peer(base)
    assert peer.label == f"asgiserve @{head[:7]}"
    chosen, _ = peers.selected(["ceiling"], [peers.PREDICT, peers.STREAM], peer)
    assert [p.key for p in chosen] == ["own-httptools", peer.key, "ceiling"]
    assert chosen[1].routes == {peers.PREDICT: "/predict", peers.STREAM: "/stream"}
    assert chosen[2].routes == {peers.PREDICT: "/predict"}

    port = free_port()
    server = Server(peer.cmd(port), port, cpu_sets()[0], tmp_path / "baseline.log", env=peer.env)
    try:
        server.wait_ready(peer.ready_path, 30)
        status, body = request(port, "POST", "/predict", PREDICT_BODY)
        assert (status, json.loads(body)) == (200, PREDICT_EXPECTED)
        # The package answering is the extracted one, not this checkout's editable install.
        log = server.log.read_text()
        assert f"baseline: asgiserve from {base.root / 'asgiserve' / '__init__.py'}" in log
    finally:
        server.stop()


def test_baseline_ratios_are_taken_per_round():
    g = "POST /predict (async api)"
    now = Row(g, peers.OWN, 30_000, "req/s", subject=True, per_round=[40_000, 20_000, 30_000, 50_000])
    before = Row(g, "asgiserve @abc1234", 30_000, "req/s", per_round=[20_000, 20_000, None, 40_000])
    now.extra[report.INSTR], before.extra[report.INSTR] = 72_000.0, 80_000.0
    assert report.round_ratios(now, before) == [2.0, 1.0, 1.25]  # the round the baseline failed is left out
    slower = Row("t", "a", 2.0, "s", higher_is_better=False, per_round=[2.0])
    assert report.round_ratios(slower, Row("t", "b", 4.0, "s", higher_is_better=False, per_round=[4.0])) == [2.0]
    table = report.baseline_table([now, before], peers.OWN, before.name)
    assert f"| {g} | 30,000 req/s | 30,000 | 1.250 | 1.000 | 2.000 | 3/4 | 72,000 | 80,000 | 0.900 |" in table
    now.extra["p99 ms"], before.extra["p99 ms"] = 2.0, 1.0
    p99 = report.Target("p99 lowest", g, "p99")
    md = report.markdown([now, before], {"CPU": "t"}, "m", "c", [], [p99], baseline=before.name)
    assert f"**{peers.OWN} now vs asgiserve @abc1234**" in md
    assert "| p99 lowest | not measured | - |" in md  # the baseline is no peer for the targets
