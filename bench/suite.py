"""The bench suite: every benchmark of bench/ in one run, one table and one JSON file.

    make bench                       # the full suite (also: actorctl bench)
    make bench ARGS="--quick"        # a short smoke of every group (what CI runs)
    make bench-check                 # the full suite, then compare with the committed result
    python bench/suite.py --only throughput,recovery --rounds 5

Each group runs its variants interleaved in rounds and reports every figure with its ratio to
a baseline measured in the same run (bench/common.py). The JSON (default
``bench/results/suite.json``; ``--quick`` writes ``suite-quick.json``) is stamped with the git
SHA, Python and package versions, the backends and the machine.

``--check`` compares the ratios with the last committed result (``git show
HEAD:bench/results/suite.json``): a ratio that worsens by more than its tolerance (TOLERANCE,
LOOSE for the groups that include fsync or another process) fails the check (exit 1). Targets
(SPEC 13) are printed as met or missed; ``--strict`` also fails on a missed target.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import Row, figure, render

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
COMMITTED = "bench/results/suite.json"

# (key, module, what it measures); each module has suite_rows(rounds=, quick=, log=).
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("hops", "mailbox_latency", "tick-to-order through 3 actor hops, per backend"),
    ("grid", "tracing_overhead", "the grid's tick-to-order per backend x durability x tracing"),
    ("wire", "wire_latency", "wire-to-wire through ib_insync and sim/tws"),
    ("alpaca", "alpaca_feed", "Alpaca websocket ingest and its tick-to-order"),
    ("throughput", "throughput", "ticks/s with 1, 10, 100 and 1000 symbol actors"),
    ("fills", "fills", "durable fills/s through the lot-keeper"),
    ("recovery", "recovery", "a killed symbol actor, a killed broker: back in service"),
    ("process", "process_recovery", "SIGKILL of actorctl start with 1,000 lots: back trading"),
    ("seed", "seed_bot", "the seed-style single-loop asyncio + SQLite bot, same replay"),
    ("tail", "busy_tail", "our decisions while other actors keep the loop busy, venue process"),
    ("backtest", "backtest_speed", "an SMA-cross backtest vs backtrader, and the grid"),
    ("sweep", "sweep_speed", "a parameter sweep on a local Dask cluster vs a serial loop"),
)
DEFAULT_ROUNDS = {
    "hops": 5,
    "grid": 3,
    "throughput": 3,
    "fills": 3,
    "recovery": 3,
    "backtest": 1,
    "sweep": 3,
}
TOLERANCE = 0.25
"""How much a ratio may worsen against the committed result (a fraction of it)."""
LOOSE = 0.60
"""The same for groups whose figures include fsync, another process or the kernel's scheduling
of a restart: measured spreads of 30-50 % between runs on this machine."""
LOOSE_GROUPS = ("grid", "fills", "recovery", "process", "seed", "tail", "wire", "alpaca", "sweep")
PACKAGES = (
    "anyio",
    "trio",
    "uvloop",
    "ib_insync",
    "alpaca-py",
    "websockets",
    "lmdb",
    "opentelemetry-sdk",
    "attrs",
    "cattrs",
    "msgspec",
)


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_gib"] = round(int(line.split()[1]) / (1 << 20), 1)
                break
    except OSError:
        pass
    return info


def git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def stamp(quick: bool, groups: Sequence[str]) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    sha = (git("rev-parse", "HEAD") or "").strip() or None
    dirty = bool((git("status", "--porcelain", "--untracked-files=no") or "").strip())
    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_sha": sha,
        "git_dirty": dirty,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "packages": versions,
        "backends": ["asyncio", "asyncio+uvloop", "trio"],
        "default_backend": "asyncio+uvloop",
        "machine": machine(),
        "quick": quick,
        "groups": list(groups),
    }


def run(
    groups: Sequence[str], rounds: int | None, quick: bool, log: Callable[[str], None]
) -> tuple[list[Row], dict[str, float]]:
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    # Import every group first: ib_insync's eventkit takes the event loop at import time, and
    # after a group's anyio.run has closed its loop there is none to take.
    modules = {key: importlib.import_module(name) for key, name, _ in GROUPS if key in groups}
    for key, _, what in GROUPS:
        if key not in groups:
            continue
        module = modules[key]
        n = rounds if rounds is not None else (1 if quick else DEFAULT_ROUNDS.get(key, 3))
        log(f"{key}: {what} ({n} round{'s' if n > 1 else ''})")
        started = time.monotonic()
        rows.extend(module.suite_rows(rounds=n, quick=quick, log=log))
        seconds[key] = round(time.monotonic() - started, 1)
    return rows, seconds


def markdown(rows: Sequence[Row]) -> str:
    """The table as docs/performance.md shows it: one section per group."""
    lines: list[str] = []
    group = None
    for row in rows:
        if row.group != group:
            group = row.group
            lines += [
                "",
                f"**{group}**",
                "",
                "| figure | p50 | p99 | p99.9 | value | x baseline (same run) | target |",
                "|---|---|---|---|---|---|---|",
            ]
        unit = "" if row.unit in ("/s", "count") else f" {row.unit}"
        cells = [
            figure(v, row.unit) + (unit if v is not None else "")
            for v in (row.p50, row.p99, row.p999)
        ]
        per = "/s" if row.unit == "/s" else ""
        rate = "-" if row.value is None else f"{row.value:,.0f}{per}"
        ratios = "<br>".join(f"{v:.2f}x {k}" for k, v in row.ratios.items()) or "-"
        verdicts = "<br>".join(
            f"{t.text()}: {'met' if t.met(row) else '**missed**'}"
            for t in row.targets
            if t.met(row) is not None
        )
        lines.append(
            f"| {row.name} | {' | '.join(cells)} | {rate} | {ratios} | {verdicts or '-'} |"
        )
    return "\n".join(lines)


def summary(rows: Sequence[Row]) -> tuple[list[str], list[str]]:
    met, missed = [], []
    for row in rows:
        for target in row.targets:
            verdict = target.met(row)
            if verdict is None:
                continue
            figure = target.figure(row)
            line = f"{row.key}: {target.text()} (measured {figure:,.2f})"
            (met if verdict else missed).append(line)
    return met, missed


def compare(
    rows: Sequence[Row], base: Sequence[Row], tolerance: float = TOLERANCE, loose: float = LOOSE
) -> list[str]:
    """Ratios that worsened beyond tolerance: higher for latencies and durations, lower for
    rates. Rows or baselines missing on either side are not compared."""
    before = {row.key: row for row in base}
    worse = []
    for row in rows:
        old = before.get(row.key)
        if old is None:
            continue
        allowed = loose if _group_key(row.group) in LOOSE_GROUPS else tolerance
        for name, ratio in row.ratios.items():
            was = old.ratios.get(name)
            if was is None or was <= 0:
                continue
            change = ratio / was
            # Rates: higher is better; latencies and durations: lower is better.
            if (change < 1 / (1 + allowed)) if row.unit == "/s" else (change > 1 + allowed):
                worse.append(
                    f"{row.key}: x {name} went from {was:.2f} to {ratio:.2f} "
                    f"(tolerance {allowed:.0%})"
                )
    return worse


def _group_key(group: str) -> str:
    return {
        "tick-to-order, 3 hops": "hops",
        "tick-to-order, grid": "grid",
        "tick-to-order, wire": "wire",
        "alpaca feed": "alpaca",
        "throughput": "throughput",
        "durable fills": "fills",
        "recovery": "recovery",
        "process recovery": "process",
        "seed-style baseline": "seed",
        "decision tail, busy loop": "tail",
    }.get(group, group)


def committed() -> list[Row] | None:
    text = git("show", f"HEAD:{COMMITTED}")
    if text is None:
        path = ROOT / COMMITTED
        if not path.exists():
            return None
        text = path.read_text()
    return [Row.from_json(r) for r in json.loads(text)["rows"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/suite.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke of every group")
    parser.add_argument("--rounds", type=int, help="rounds per group (default: per group)")
    parser.add_argument(
        "--only", help=f"comma-separated groups: {', '.join(k for k, *_ in GROUPS)}"
    )
    parser.add_argument("--json", type=Path, help="where to write the result")
    parser.add_argument("--check", action="store_true", help="compare with the committed result")
    parser.add_argument("--strict", action="store_true", help="fail on a missed target too")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.add_argument(
        "--show", type=Path, metavar="JSON", help="print a written result again, run nothing"
    )
    parser.add_argument("--markdown", action="store_true", help="with --show: as Markdown")
    args = parser.parse_args(argv)
    if args.show is not None:
        shown = [Row.from_json(r) for r in json.loads(args.show.read_text())["rows"]]
        print(markdown(shown) if args.markdown else render(shown))
        return 0
    keys = [k for k, *_ in GROUPS]
    groups = keys if not args.only else [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(keys))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; known: {', '.join(keys)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    meta = stamp(args.quick, groups)

    def log(line: str) -> None:
        if not args.quiet:
            print(line, file=sys.stderr, flush=True)

    rows, seconds = run(groups, args.rounds, args.quick, log)
    meta["seconds"] = seconds
    meta["load_average_after"] = list(os.getloadavg())
    out = args.json or RESULTS / ("suite-quick.json" if args.quick else "suite.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": [r.to_json() for r in rows]}, indent=1) + "\n")
    sha = (meta["git_sha"] or "unknown")[:12] + (" (dirty)" if meta["git_dirty"] else "")
    print(
        f"actortrade bench suite{' (quick)' if args.quick else ''}: {sha}, Python "
        f"{meta['python']}, {meta['machine'].get('cpus')} CPUs "
        f"({meta['machine'].get('cpu', meta['machine']['machine'])}), load "
        f"{meta['machine']['load_average'][0]:.2f} before and "
        f"{meta['load_average_after'][0]:.2f} after; {sum(seconds.values()):.0f} s"
    )
    print(render(rows))
    met, missed = summary(rows)
    print(f"\ntargets (SPEC 13): {len(met)} met, {len(missed)} missed")
    for line in missed:
        print(f"  MISSED {line}")
    print(f"written to {out}")
    code = 0
    if args.check:
        base = committed()
        if base is None:
            print(f"bench-check: no committed {COMMITTED} to compare with")
            return 1
        worse = compare(rows, base)
        compared = sum(1 for r in rows for _ in r.ratios)
        print(f"bench-check against the committed result: {compared} ratios, {len(worse)} worse")
        for line in worse:
            print(f"  WORSE {line}")
        code = 1 if worse else 0
    if args.strict and missed:
        code = 1
    return code


if __name__ == "__main__":
    sys.exit(main())
