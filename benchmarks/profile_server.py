"""Profile asgiserve's hot path under load: the server runs under cProfile, pinned, while wrk drives one route.

    python benchmarks/profile_server.py                      # POST /predict on the own server (else uvicorn)
    python benchmarks/profile_server.py --route /hello --seconds 5 --server uvicorn

The profile covers the server's whole life up to the end of the load and is written when the load ends
(apps/profiled.py); the top functions by own time and by cumulative time are printed and the raw profile is
kept in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import io
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import peers as P
from benchmarks import wrk
from benchmarks.apps.workload import PREDICT_BODY
from benchmarks.harness import BENCH, HOST, Server, cpu_sets, free_port


def main() -> int:
    """Run the server under cProfile with wrk load on one route; print the hottest functions."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", choices=["auto", "own", "uvicorn"], default="auto")
    ap.add_argument("--route", default="/predict", help="/predict, /predict_sync or /hello")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    own = args.server == "own" or (args.server == "auto" and P.own_server_available())
    out = BENCH / "results" / f"profile-{'own' if own else 'uvicorn'}{args.route.replace('/', '-')}.prof"
    port = free_port()
    common = ["--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning"]
    if own:
        cmd = [P.PY, "profiled.py", str(out), "asgiserve", "asgiserve_svc:Predict", "--workers", "1", *common]
    else:
        server_args = ["asgiserve_svc:app", "--http", "httptools", "--loop", "uvloop", *common]
        cmd = [P.PY, "profiled.py", str(out), "uvicorn", *server_args]
    server_cpus, load_cpus = cpu_sets()
    out.unlink(missing_ok=True)
    server = Server(cmd, port, server_cpus, BENCH / "results" / "profile-server.log.tmp")
    try:
        server.wait_ready("/readyz", 30)
        lua = wrk.script(
            "GET" if args.route == "/hello" else "POST", None if args.route == "/hello" else PREDICT_BODY
        )
        res = wrk.run(port, args.route, lua, cpus=load_cpus, duration=args.seconds)
        if lua is not None:
            lua.unlink()
        trigger = Path(str(out) + ".dump")
        trigger.touch()
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        trigger.unlink()
    finally:
        server.stop()
    if not out.exists():
        print(f"no profile written: {server.tail()}", file=sys.stderr)
        return 1
    print(f"{res.requests} requests ({res.rps:,.0f}/s under cProfile), errors: {res.errors or 'none'}")
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(str(out), stream=buf).sort_stats(key).print_stats(args.top)
        print(buf.getvalue().split("\n", 4)[-1] if key == "tottime" else buf.getvalue())
    print(f"profile kept in {out} (open with python -m pstats, or snakeviz)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
