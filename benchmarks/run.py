"""Run the benchmark suite and write benchmarks/results/latest.md, latest.png and the README's section.

    python benchmarks/run.py            # the full run: 3 rounds, wrk -t1 -c64 -d8s per route
    python benchmarks/run.py --quick    # the same systems, shorter (under 3 minutes once venvs exist)
    python benchmarks/run.py --render-only --readme yes   # re-render the report from results/latest.json
    python benchmarks/run.py --baseline REV --routes predict stream --rounds 5   # now against REV, same run

With --baseline, REV is extracted by ``git archive`` into benchmarks/.baseline-<sha>/ and its own server
runs this checkout's benchmark app as one more peer, right after the current one in every round; the report
(results/baseline-<sha7>.md, .json, .png; README untouched) starts with now / before per route: the median,
min and max of the per-round ratios, and both trees' instructions/req (``instructions.py --root``).

Suites: the servers (throughput.py), startup and footprint (startup.py), and any of OPTIONAL_SUITES found in
benchmarks/. A suite module exposes ``run(quick: bool) -> list[Row]`` (Rows or dicts with Row's fields) and,
optionally, ``TARGETS: list[report.Target]``; an exception in a suite becomes a flagged row, not a failed run.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import facts, instructions, report, startup, throughput
from benchmarks import peers as P
from benchmarks.harness import BENCH, ROOT, Row

OPTIONAL_SUITES = ["benchmarks.clients", "benchmarks.tasks", "benchmarks.arrays", "benchmarks.scale"]
RESULTS = BENCH / "results"


def _suite(name: str, quick: bool, targets: list[report.Target]) -> list[Row]:
    if importlib.util.find_spec(name) is None:
        return []
    print(f"suite {name}", flush=True)
    try:
        module = importlib.import_module(name)
        targets += list(getattr(module, "TARGETS", []))
        return [Row.coerce(r) for r in module.run(quick)]
    except Exception as exc:
        traceback.print_exc()
        return [Row(name, "suite failed", None, "", note=f"{type(exc).__name__}: {exc}"[:300], flagged=True)]


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the suites, write the report."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (under 3 minutes)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    ap.add_argument("--duration", type=int, help="seconds per measured run (default 8; quick 2)")
    ap.add_argument("--warmup", type=int, help="seconds of warm-up per route (default 2; quick 1)")
    ap.add_argument("--only", nargs="*", help="run only the server peers whose key contains one of these")
    ap.add_argument(
        "--routes",
        nargs="+",
        choices=sorted(P.ROUTE_NAMES),
        metavar="ROUTE",
        help=f"measure only these routes: {', '.join(P.ROUTE_NAMES)} (default: all)",
    )
    ap.add_argument(
        "--baseline",
        metavar="REV",
        help="also run the own server of git revision REV (extracted to benchmarks/.baseline-<sha>/) and "
        "report now / before per route",
    )
    ap.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["servers", "startup", "optional"],
        help="suites to leave out",
    )
    ap.add_argument(
        "--readme",
        choices=["auto", "yes", "no"],
        default="auto",
        help="rewrite README's benchmark section (auto: on full runs only)",
    )
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: re-render latest.md, latest.png (and README) from results/latest.json",
    )
    args = ap.parse_args(argv)
    if args.render_only:
        return _render_saved(args.readme == "yes")
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk, or `make bench`)", file=sys.stderr)
        return 2

    quick = args.quick
    base: P.Baseline | None = None
    if args.baseline:
        try:
            base = P.extract_baseline(args.baseline)
        except P.BaselineError as exc:
            print(f"--baseline: {exc}", file=sys.stderr)
            return 2
        print(f"baseline {base.rev} = {base.sha} in {base.root.relative_to(ROOT)}", flush=True)
    cfg = throughput.Settings(
        rounds=args.rounds or (1 if quick else 3),
        duration=args.duration or (2 if quick else 8),
        warmup=args.warmup or (1 if quick else 2),
        only=args.only,
        routes=[P.ROUTE_NAMES[r] for r in args.routes] if args.routes else None,
        baseline=P.baseline_peer(base) if base else None,
    )
    args_text = " ".join(sys.argv[1:] if argv is None else argv)
    command = f"python benchmarks/run.py {args_text}".strip()
    command += {"": " (make bench)", "--quick": " (make bench-quick)"}.get(args_text, "")
    t0 = time.monotonic()
    load_at_start = facts.loadavg()
    rows: list[Row] = []
    notes: list[str] = []
    targets = list(report.TARGETS)
    if "servers" not in args.skip:
        print(f"servers: {cfg.rounds} round(s), {cfg.duration}s per route", flush=True)
        server_rows, notes = throughput.run_suite(cfg)
        print("instructions per request (callgrind)", flush=True)
        notes += instructions.annotate(server_rows, quick)
        if base is not None:
            notes += _baseline_instructions(server_rows, base, quick)
        rows += server_rows
    if "startup" not in args.skip:
        print("startup and footprint", flush=True)
        rows += startup.run(quick)
    if "optional" not in args.skip:
        for name in OPTIONAL_SUITES:
            rows += _suite(name, quick, targets)
    elapsed = time.monotonic() - t0
    stem = f"baseline-{base.short}" if base else "latest"

    method = (
        f"One worker per server; wrk -t1 -c{cfg.connections} -d{cfg.duration}s --latency after a {cfg.warmup}s "
        f"warm-up; streams: {cfg.streams} concurrent clients; systems interleaved, {cfg.rounds} round(s), "
        f"medians; server CPU from /proc (process tree) per request.{_baseline_method(base)} Run took "
        f"{elapsed:.0f}s, finished "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC."
    )
    machine = facts.collect(load_at_start)
    RESULTS.mkdir(exist_ok=True)
    saved = {
        "rows": [asdict(r) for r in rows],
        "targets": [asdict(t) for t in targets],
        "facts": machine,
        "method": method,
        "command": command,
        "notes": notes,
        "baseline": base.label if base else "",
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps(saved, indent=1) + "\n")
    partial = quick or args.only or args.routes
    readme = not base and (args.readme == "yes" or (args.readme == "auto" and not partial))
    md = _write(rows, machine, method, command, notes, targets, readme, base.label if base else "", stem)
    print(md)
    print(f"\nwrote {RESULTS / stem}.md, .png and .json in {elapsed:.0f}s")
    return 0


def _baseline_method(base: P.Baseline | None) -> str:
    if base is None:
        return ""
    return (
        f" {base.label}: `git archive {base.sha}`, its package first on PYTHONPATH, serving this "
        "checkout's benchmark app, started right after asgiserve's own server in each round."
    )


# What instructions.annotate counts for asgiserve's own server, counted the same way for the baseline tree.
_BASELINE_INSTR = {P.PREDICT: ("/predict", 1000), P.HELLO: ("/hello", 1000), P.STREAM: ("/stream", 100)}


def _baseline_instructions(rows: list[Row], base: P.Baseline, quick: bool) -> list[str]:
    """The instructions/req column for the baseline's rows: ``instructions.py --root`` on its tree (which
    serves that tree's own benchmark app: the script loads it from the tree it measures)."""
    if shutil.which("valgrind") is None:
        return []
    notes = []
    for row in rows:
        job = _BASELINE_INSTR.get(row.group)
        if row.name != base.label or job is None or row.value is None:
            continue
        path, n = job
        if quick:
            n = max(n // 4, 20)
        try:
            row.extra[report.INSTR] = instructions.per_request(base.root, path, "httptools", n, min(200, n))
        except (SystemExit, OSError, subprocess.SubprocessError) as exc:
            notes.append(f"instructions/req for {row.name} ({path}): {exc}")
    return notes


def _render_saved(readme: bool) -> int:
    """Re-render the report from results/latest.json, measuring nothing."""
    saved = json.loads((RESULTS / "latest.json").read_text())
    rows = [Row(**r) for r in saved["rows"]]
    targets = [report.Target(**t) for t in saved["targets"]]
    baseline = saved.get("baseline", "")
    _write(rows, saved["facts"], saved["method"], saved["command"], saved["notes"], targets, readme, baseline)
    print(f"re-rendered {RESULTS / 'latest.md'} and latest.png from latest.json")
    return 0


def _write(
    rows: list[Row],
    machine: dict[str, str],
    method: str,
    command: str,
    notes: list[str],
    targets: list[report.Target],
    readme: bool,
    baseline: str = "",
    stem: str = "latest",
) -> str:
    """Write ``stem``.md and .png, and README's section when asked; the markdown."""
    md = report.markdown(rows, machine, method, command, notes, targets, baseline)
    (RESULTS / f"{stem}.md").write_text("# Benchmark results\n\n" + md)
    title = f"asgiserve x each peer, measured in the same run\n{machine['CPU']}, Python {machine['Python']}; {command}"
    report.chart(rows, RESULTS / f"{stem}.png", title)
    if readme:
        body = md + "\n![asgiserve x each peer](benchmarks/results/latest.png)\n"
        if not report.update_readme(ROOT / "README.md", body):
            print(f"README.md has no {report.README_START} ... {report.README_END} section", file=sys.stderr)
    return md


if __name__ == "__main__":
    sys.exit(main())
