"""Turning rows into the report: markdown tables with ratios, the target checks, the chart, the README part.

A ratio is always "how many times better asgiserve's row is": subject/peer for throughput, peer/subject for
times and memory. So 2.0 reads "asgiserve does twice as well"; the ceiling's ratio below 1 reads as the
fraction of the ceiling reached.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from . import peers as P
from .harness import CLIENTS_ASYNC, CLIENTS_SYNC, Row
from .startup import IMPORT, READY
from .throughput import RSS

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def ratio(row: Row, subject: Row | None) -> float | None:
    """How many times better ``subject`` is than ``row`` (None when either has no value)."""
    if subject is None or row.value is None or subject.value is None or row.value <= 0 or subject.value <= 0:
        return None
    return subject.value / row.value if row.higher_is_better else row.value / subject.value


def groups(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Rows by group, in first-seen order."""
    out: dict[str, list[Row]] = {}
    for r in rows:
        out.setdefault(r.group, []).append(r)
    return out


def subject_of(rows: list[Row]) -> Row | None:
    """The group's asgiserve row."""
    return next((r for r in rows if r.subject), None)


def _fmt(x: float | str | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(group: str, rows: list[Row]) -> str:
    """One group as a markdown table."""
    subj = subject_of(rows)
    extras: list[str] = []
    for r in rows:
        extras += [k for k in r.extra if k not in extras]
    unit = rows[0].unit
    head = ["System", unit, "asgiserve x", *extras, "Notes"]
    lines = [f"**{group}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rt = ratio(r, subj)
        rtext = "1 (reference)" if r is subj else ("-" if rt is None else f"{rt:.2f}")
        name = f"**{r.name}**" if r is subj else r.name
        if r.flagged:
            name += " ⚠"
        cells = [name, _fmt(r.value), rtext, *(_fmt(r.extra.get(k)) for k in extras), _cell(r.note)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@dataclass
class Target:
    """One target: ``kind`` is "ratio" (asgiserve x peer >= bound), "max" (value <= bound), "p99", or
    "instructions" (the row's instructions per request at most ``bound`` times the peer's); ``subject``
    names the row compared when it is not the group's bold one."""

    text: str
    group: str
    kind: str
    peer: str = ""
    bound: float = 0.0
    subject: str = ""


INSTR = "instructions/req"  # the extra column set by benchmarks/instructions.py (``annotate``)


CEILING = "ceiling: uvloop + httptools, fixed bytes"
TARGETS = [
    Target(
        "POST /predict >= 2.0x raw ASGI on uvicorn", P.PREDICT, "ratio", "raw ASGI + msgspec on uvicorn", 2.0
    ),
    Target("POST /predict >= 8x FastAPI", P.PREDICT, "ratio", "FastAPI + pydantic on uvicorn", 8.0),
    Target("POST /predict >= 40x BentoML", P.PREDICT, "ratio", "BentoML (bentoml serve)", 40.0),
    Target("POST /predict >= 0.65 of the ceiling", P.PREDICT, "ratio", CEILING, 0.65),
    Target("POST /predict instructions/req <= 1.5x the ceiling's", P.PREDICT, "instructions", CEILING, 1.5),
    Target(
        "POST /predict own server >= 1.5x the same app on uvicorn",
        P.PREDICT,
        "ratio",
        "asgiserve app on uvicorn",
        1.5,
    ),
    Target("POST /predict p99 lower than every peer (ceiling and floor aside)", P.PREDICT, "p99"),
    Target(
        "POST /predict with the access log on >= 0.95x with it off",
        P.PREDICT,
        "ratio",
        P.OWN,
        0.95,
        P.ACCESS_LOG,
    ),
    Target(
        "POST /predict_ctx (Context api) >= 0.90x POST /predict", P.PREDICT, "ratio", P.OWN, 0.90, P.CONTEXT
    ),
    Target("GET /hello >= 1.0x raw ASGI on granian", P.HELLO, "ratio", "raw ASGI + msgspec on granian", 1.0),
    Target("GET /hello >= 1.0x raw ASGI on uvicorn", P.HELLO, "ratio", "raw ASGI + msgspec on uvicorn", 1.0),
    Target("GET /hello p99 lower than every peer (ceiling aside)", P.HELLO, "p99"),
    Target("Streaming >= 1.5x the same app on uvicorn", P.STREAM, "ratio", "asgiserve app on uvicorn", 1.5),
    Target(
        "Mounted FastAPI GET >= 1.3x the app on uvicorn",
        P.MOUNT_GET,
        "ratio",
        "FastAPI + pydantic on uvicorn",
        1.3,
    ),
    Target(
        "Mounted FastAPI POST >= 1.3x the app on uvicorn",
        P.MOUNT_POST,
        "ratio",
        "FastAPI + pydantic on uvicorn",
        1.3,
    ),
    Target(
        "h11 fallback >= 1.3x uvicorn --http h11 (POST /predict)",
        P.PREDICT,
        "ratio",
        "asgiserve app on uvicorn (h11)",
        1.3,
        subject="asgiserve (own server, h11)",
    ),
    Target("SyncHTTPClient >= 3x httpx.Client", CLIENTS_SYNC, "ratio", "httpx.Client", 3.0),
    Target("SyncHTTPClient >= 2x urllib3", CLIENTS_SYNC, "ratio", "urllib3", 2.0),
    Target("AsyncHTTPClient >= 1.2x aiohttp", CLIENTS_ASYNC, "ratio", "aiohttp", 1.2),
    Target("AsyncHTTPClient >= 2x httpx.AsyncClient", CLIENTS_ASYNC, "ratio", "httpx.AsyncClient", 2.0),
    Target("import asgiserve <= 80 ms wall", IMPORT, "max", "asgiserve", 80.0),
    Target("example service ready (first 200 from /readyz) <= 0.3 s", READY, "max", "", 0.3),
    Target("idle worker RSS < 40 MiB", RSS, "max", "", 40.0),
]


def check(target: Target, by_group: dict[str, list[Row]]) -> tuple[str, str]:
    """(measured, verdict) for one target."""
    rows = by_group.get(target.group, [])
    subj = next((r for r in rows if r.name == target.subject), None) if target.subject else subject_of(rows)
    if subj is None or subj.value is None:
        return "not measured", "-"
    if target.kind == "instructions":
        peer_row = next((r for r in rows if r.name == target.peer), None)
        mine, theirs = subj.extra.get(INSTR), peer_row.extra.get(INSTR) if peer_row else None
        if not isinstance(mine, float) or not isinstance(theirs, float) or not theirs:
            return "not measured", "-"
        return (
            f"{mine / theirs:.2f}x ({mine:,.0f} vs {theirs:,.0f})",
            "met" if mine / theirs <= target.bound else "MISSED",
        )
    if target.kind == "max":
        row = next((r for r in rows if r.name == target.peer), subj) if target.peer else subj
        if row.value is None:
            return "not measured", "-"
        return f"{_fmt(row.value)} {row.unit}", "met" if row.value <= target.bound else "MISSED"
    if target.kind == "p99":
        mine = subj.extra.get("p99 ms")
        others: list[tuple[str, float]] = []
        for r in rows:
            v = r.extra.get("p99 ms")
            if (
                r is not subj
                and not r.name.startswith(("ceiling", "floor"))  # yardsticks, not servers
                and r.name not in P.VARIANTS
                and isinstance(v, float)
            ):
                others.append((r.name, v))
        if not isinstance(mine, float) or not others:
            return "not measured", "-"
        best = min(others, key=lambda o: o[1])
        verdict = "met" if mine < best[1] else "MISSED"
        return f"{mine:.2f} ms vs best peer {best[1]:.2f} ms ({best[0]})", verdict
    peer = next((r for r in rows if r.name == target.peer), None)
    rt = ratio(peer, subj) if peer is not None else None
    if rt is None or peer is None or peer is subj:
        return "not measured", "-"
    flag = " (peer flagged)" if peer.flagged or subj.flagged else ""
    return f"{rt:.2f}x{flag}", "met" if rt >= target.bound else "MISSED"


def targets_table(targets: list[Target], by_group: dict[str, list[Row]]) -> str:
    """The targets as a markdown table."""
    lines = ["| Target | Measured | |", "|---|---|---|"]
    for t in targets:
        measured, verdict = check(t, by_group)
        lines.append(f"| {t.text} | {measured} | {verdict} |")
    return "\n".join(lines)


def round_ratios(now: Row, before: Row) -> list[float]:
    """How many times better ``now`` did than ``before`` in each round both were measured in."""
    out = []
    for a, b in zip(now.per_round, before.per_round):
        if a and b and a > 0 and b > 0:
            out.append(a / b if now.higher_is_better else b / a)
    return out


def baseline_table(rows: list[Row], now: str, before: str) -> str:
    """Row ``now`` against row ``before`` per route: the per-round ratios' median, min and max (rounds are
    interleaved, so a ratio within a round cancels what drifts between rounds), and instructions/req."""
    at = before.rpartition(" ")[2]
    head = ["Route", "now", at, "now / before: median of rounds", "min", "max", "rounds"]
    head += [f"{INSTR} now", f"{INSTR} {at}", "now / before"]
    lines = [f"**{now} now vs {before}**", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group, group_rows in groups(rows).items():
        a = next((r for r in group_rows if r.name == now), None)
        b = next((r for r in group_rows if r.name == before), None)
        if a is None or b is None or a.unit not in ("req/s", "tokens/s"):
            continue
        rts = round_ratios(a, b)
        spread = [f"{statistics.median(rts):.3f}", f"{min(rts):.3f}", f"{max(rts):.3f}"] if rts else ["-"] * 3
        ia, ib = a.extra.get(INSTR), b.extra.get(INSTR)
        instr = f"{ia / ib:.3f}" if isinstance(ia, float) and isinstance(ib, float) and ib else "-"
        flag = " ⚠" if a.flagged or b.flagged else ""
        cells = [group + flag, f"{_fmt(a.value)} {a.unit}", _fmt(b.value), *spread]
        cells += [f"{len(rts)}/{max(len(a.per_round), len(b.per_round))}", _fmt(ia), _fmt(ib), instr]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "now / before above 1 reads as faster now; the instructions ratio (now / before) below 1 as fewer "
        "instructions now. ⚠: a row with errors in some round (see its group's table).",
    ]
    return "\n".join(lines)


def markdown(
    rows: list[Row],
    facts: dict[str, str],
    method: str,
    command: str,
    notes: list[str],
    targets: list[Target],
    baseline: str = "",
) -> str:
    """The whole report; with ``baseline`` (a row name), asgiserve's own server against it first."""
    by_group = groups(rows)
    parts = [f"Produced by `{command}`. {method}", ""]
    parts += [f"- {k}: {v}" for k, v in facts.items()]
    parts += [
        "",
        '"asgiserve x" is how many times better asgiserve\'s row (in bold) does than each row: higher '
        "throughput, or lower time and memory. ⚠ marks a row with errors (non-2xx answers, socket errors, "
        "failed start or check); its figures are not to be trusted.",
        "",
    ]
    if baseline:
        parts += [baseline_table(rows, P.OWN, baseline), ""]
    # The targets compare asgiserve with its peers: an older asgiserve is none of them.
    peer_rows = groups(r for r in rows if r.name != baseline)
    parts += ["**Targets**", "", targets_table(targets, peer_rows), ""]
    for group, group_rows in by_group.items():
        parts += [table(group, group_rows), ""]
    if notes:
        parts += ["Notes:", *[f"- {n}" for n in notes], ""]
    return "\n".join(parts)


def chart(rows: list[Row], path: Path, title: str) -> None:
    """A bar chart of the ratios, one panel per group (log scale; the line at 1 is parity)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    panels = []
    for group, group_rows in groups(rows).items():
        subj = subject_of(group_rows)
        bars: list[tuple[str, float]] = []
        for r in group_rows:
            rt = ratio(r, subj) if r is not subj and not r.context else None
            if rt is not None:
                bars.append((r.name + (" ⚠" if r.flagged else ""), rt))
        if subj is not None and bars:
            panels.append((group, subj.name, bars))
    if not panels:
        fig = plt.figure(figsize=(6, 1.2))
        fig.text(0.5, 0.5, "no ratios: no asgiserve row was measured in this run", ha="center", va="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    heights = [0.8 + 0.32 * len(b) for _, _, b in panels]
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(10, sum(heights) + 0.8),
        gridspec_kw={"height_ratios": heights},
        squeeze=False,
        layout="constrained",
    )
    for ax, (group, subj_name, bars) in zip(axes[:, 0], panels):
        names = [n for n, _ in bars][::-1]
        values = [v for _, v in bars][::-1]
        colors = ["#2a9d8f" if v >= 1 else "#e76f51" for v in values]
        # Bars grow from parity (1x): right of the line asgiserve does better, left of it worse.
        ax.barh(names, [v - 1 for v in values], left=1.0, color=colors)
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.8)
        sep = "  " if len(group) + len(subj_name) < 80 else "\n"
        ax.set_title(f"{group}{sep}[reference: {subj_name}]", fontsize=9, loc="left")
        ax.tick_params(axis="y", labelsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        lo, hi = min([*values, 1.0]), max([*values, 1.0])
        ax.set_xlim(lo / 1.8, hi * 2.2)
        for y, v in enumerate(values):
            ax.text(
                v * 1.06 if v >= 1 else v / 1.06,
                y,
                f"{v:.2f}x",
                va="center",
                fontsize=7,
                ha="left" if v >= 1 else "right",
            )
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def update_readme(readme: Path, body: str) -> bool:
    """Replace the text between the bench markers; False when the markers are missing."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda _: f"{README_START}\n{body}\n{README_END}", text))
    return True
