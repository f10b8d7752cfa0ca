"""Tracing on vs off: tick-to-order through the grid's actors, with every tick a decision (the
worst case: a trace per tick), tracing exporting to a real OTLP/HTTP receiver in another
process, and the flush running beside the actors as in the service.

    tick -> market-data actor -> symbol actor (grid decides a level-0 buy)
         -> lot-keeper (intent committed) -> broker actor -> venue port (the clock stops)

Variants: the in-memory lot-keeper (so that LMDB's fsync does not drown the difference) and
the default ``group`` durability, each with tracing off and on. The ratio on/off is per round
(same round, same conditions); medians over interleaved rounds. SPEC 13: p50 ratio <= 1.3.

    python bench/tracing_overhead.py [--rounds 5] [--ticks 400] [--json bench/results/tracing.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import anyio
from common import Row, Target, interleave, latency_row, spread
from grid_latency import MEMORY, measure

from runtime.metrics import Metrics
from runtime.store import Durability
from runtime.telemetry import Telemetry, Tracer

ROOT = Path(__file__).resolve().parents[1]
POLICIES = (MEMORY, Durability.CRASH_SAFE.value)
TARGET = 1.3


def run_variant(policy: str, traced: bool, ticks: int, endpoint: str) -> tuple[list[int], int]:
    """One run: its tick-to-order samples (ns) and the spans it exported."""
    telemetry = (
        Telemetry(Tracer(service_name="actortrade-bench", endpoint=endpoint), Metrics())
        if traced
        else None
    )
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        samples = anyio.run(
            measure,
            policy,
            ticks,
            folder,
            telemetry,
            backend="asyncio",
            backend_options={"use_uvloop": True},
        )
    spans = 0
    if telemetry is not None:
        telemetry.shutdown()
        spans = telemetry.tracer.flushed
    return sorted(samples), spans


GROUP = "tick-to-order, grid"
BACKENDS = {
    "asyncio": ("asyncio", {}),
    "uvloop": ("asyncio", {"use_uvloop": True}),
    "trio": ("trio", {}),
}


def _decisions(
    backend: str, policy: str, endpoint: str | None, ticks: int
) -> Callable[[], dict[str, float]]:
    name, options = BACKENDS[backend]

    def run() -> dict[str, float]:
        telemetry = (
            Telemetry(Tracer(service_name="actortrade-bench", endpoint=endpoint), Metrics())
            if endpoint is not None
            else None
        )
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
            samples = anyio.run(
                measure, policy, ticks, folder, telemetry, backend=name, backend_options=options
            )
        if telemetry is not None:
            telemetry.shutdown()
        return spread(samples[max(1, ticks // 20) :], 1000.0)

    return run


def suite_rows(*, rounds: int, quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    """Tick-to-order through the grid's actors (market data -> symbol -> lot-keeper -> broker ->
    port), every tick a decision, for every backend x durability policy x tracing off/on.
    Ratios: to the same backend's in-memory lot-keeper with tracing off (what the durable intent
    costs) and, for tracing on, to the same variant with tracing off (SPEC 13: <= 1.3)."""
    ticks = 60 if quick else 400
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "otlp_receiver.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    endpoint = f"http://127.0.0.1:{receiver.stdout.readline().strip()}"
    policies = [MEMORY, *(p.value for p in Durability)]
    variants = {
        f"{policy}, tracing {'on' if traced else 'off'} [{backend}]": _decisions(
            backend, policy, endpoint if traced else None, ticks
        )
        for backend in BACKENDS
        for policy in policies
        for traced in (False, True)
    }
    try:
        results = interleave(variants, rounds, on_run=log)
    finally:
        receiver.terminate()
        receiver.communicate(timeout=30)
    rows = []
    for name, per_round in results.items():
        rest = name.split(", ", 1)[1]
        backend = rest[rest.index("[") + 1 : -1]
        memory = f"{MEMORY}, tracing off [{backend}]"
        baselines = {} if name == memory else {memory: results[memory]}
        targets = []
        if "tracing on" in name:
            off = name.replace("tracing on", "tracing off")
            baselines[off] = results[off]
            targets.append(Target(on="ratio", op="<=", limit=TARGET, baseline=off))
        rows.append(latency_row(GROUP, name, per_round, baselines=baselines, targets=targets))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    receiver = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "otlp_receiver.py")],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdout is not None
    endpoint = f"http://127.0.0.1:{receiver.stdout.readline().strip()}"
    variants = [(policy, traced) for policy in POLICIES for traced in (False, True)]
    rounds: dict[tuple[str, bool], list[dict[str, float]]] = {v: [] for v in variants}
    recorded = 0
    try:
        for r in range(args.rounds):
            shift = r % len(variants)
            for policy, traced in variants[shift:] + variants[:shift]:
                samples, spans = run_variant(policy, traced, args.ticks, endpoint)
                recorded += spans
                rounds[(policy, traced)].append(
                    {
                        "p50_us": samples[len(samples) // 2] / 1000,
                        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
                        "p999_us": samples[min(len(samples) - 1, int(len(samples) * 0.999))] / 1000,
                    }
                )
    finally:
        receiver.terminate()
        received_line, _ = receiver.communicate(timeout=30)
    received = int(received_line.split()[0]) if received_line.strip() else 0
    table: dict[str, dict[str, float]] = {}
    for (policy, traced), rows in rounds.items():
        row = {k: statistics.median(r[k] for r in rows) for k in ("p50_us", "p99_us", "p999_us")}
        off = rounds[(policy, False)]
        row["on_vs_off"] = statistics.median(
            a["p50_us"] / b["p50_us"] for a, b in zip(rows, off, strict=True)
        )
        table[f"{policy} tracing {'on' if traced else 'off'}"] = row
    print(
        f"tracing overhead, tick-to-order with every tick a decision: {args.rounds} interleaved "
        f"rounds x {args.ticks} decisions, asyncio+uvloop, Python {sys.version.split()[0]}"
    )
    print(f"{'variant':22} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} {'p50 on/off':>11}")
    for name, row in table.items():
        print(
            f"{name:22} {row['p50_us']:9.1f} {row['p99_us']:9.1f} {row['p999_us']:9.1f} "
            f"{row['on_vs_off']:11.2f}"
        )
    print(f"spans exported {recorded}, received by the OTLP receiver {received}")
    worst = max(row["on_vs_off"] for row in table.values())
    verdict = "meets" if worst <= TARGET else "MISSES"
    print(f"worst p50 on/off ratio {worst:.2f}: {verdict} the target <= {TARGET}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "bench": "tracing_overhead",
                    "rounds": args.rounds,
                    "ticks": args.ticks,
                    "results": table,
                    "spans_exported": recorded,
                    "spans_received": received,
                    "target_p50_ratio": TARGET,
                },
                indent=2,
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
