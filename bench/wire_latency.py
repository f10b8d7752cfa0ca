"""Wire-to-wire tick-to-order: from a tick entering the market-data actor to the placeOrder
frame decoded by our TWS API server, through ib_insync over loopback; with the in-process
figure (the same actors, the order handed to an in-process port) in the same run.

    tick -> market-data actor -> symbol actor (grid decides a level-0 buy)
         -> lot-keeper (in memory: the durable intent is bench/grid_latency.py's business)
         -> broker actor -> IBPort -> ib_insync -> TCP -> sim/tws decodes placeOrder

One tick in flight; after each decision the venue cancels the order so the grid is flat again.
Rounds are interleaved (wire, in-process, wire, ...); the ratio is per round, medians reported.

    python bench/wire_latency.py [--rounds 5] [--ticks 300] [--json bench/results/wire-latency.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import anyio
import anyio.lowlevel
from common import Row, interleave, latency_row, spread
from grid_latency import MemoryKeeper, RecordingPort, bench_tree

from actors.broker import Poll
from actors.brokers.ib import IBPort
from actors.domain import Instrument, PriceTick
from actors.domain.sessions import NEW_YORK
from actors.symbol import TimerTick
from runtime import ActorCell
from sim.engine import Engine
from sim.tws.server import TwsServer

MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)


async def measure(wire: bool, ticks: int) -> list[int]:
    engine = Engine()
    engine.on_trade("TQQQ", Decimal("52.00"), 100, MONDAY)
    server = TwsServer(
        engine, instruments=[Instrument(symbol="TQQQ", con_id=900001)], clock=lambda: MONDAY
    )
    arrived = anyio.Event()
    at_ns = 0

    def decoded(ref: str) -> None:
        nonlocal at_ns
        at_ns = perf_counter_ns()
        arrived.set()

    server.placed_listeners.append(decoded)
    samples: list[int] = []
    async with anyio.create_task_group() as venue:
        number = await venue.start(server.serve)
        recording = RecordingPort()
        port: Any = (
            IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0)
            if wire
            else recording
        )
        root, cells = bench_tree(port, ActorCell("lot-keeper", MemoryKeeper))
        feed, broker, symbol = cells["market-data"], cells["broker"], cells["symbol.TQQQ"]
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            for i in range(ticks):
                arrived = anyio.Event()
                recording.arrived = arrived
                price = Decimal("52.00") + Decimal(i % 50) / 100
                sent = perf_counter_ns()
                feed.ref.tell(PriceTick(symbol="TQQQ", price=price))
                await arrived.wait()
                samples.append((at_ns if wire else recording.at_ns) - sent)
                if wire:
                    # Flat again: the venue cancels the order, and the cancel reaches the grid.
                    while not engine.open_orders():
                        await anyio.lowlevel.checkpoint()
                    for order in engine.open_orders():
                        engine.cancel(order.ref, "bench")
                await broker.ref.request(Poll(), timeout=30)
                await symbol.ref.request(TimerTick(), timeout=30)
            root.stop()
        venue.cancel_scope.cancel()
    return samples


def summary(samples: list[int]) -> dict[str, float]:
    samples = sorted(samples)
    return {
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "p999_us": samples[min(len(samples) - 1, int(len(samples) * 0.999))] / 1000,
    }


GROUP = "tick-to-order, wire"


def suite_rows(*, rounds: int, quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    """Wire-to-wire (ib_insync to sim/tws over loopback) against the same actors handing the
    order to an in-process port, interleaved."""
    ticks = 40 if quick else 300

    def path(wire: bool) -> Callable[[], dict[str, float]]:
        # ib_insync takes its loop from the policy: plain asyncio, no uvloop, for both.
        return lambda: spread(
            anyio.run(measure, wire, ticks, backend="asyncio")[ticks // 20 :], 1000.0
        )

    results = interleave({"in-process": path(False), "wire": path(True)}, rounds, on_run=log)
    base = "tick -> order handed to the in-process port"
    return [
        latency_row(GROUP, base, results["in-process"]),
        latency_row(
            GROUP,
            "tick -> placeOrder decoded by sim/tws (ib_insync, loopback)",
            results["wire"],
            baselines={base: results["in-process"]},
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rounds: dict[str, list[dict[str, float]]] = {"wire": [], "in-process": []}
    for r in range(args.rounds):
        order = [True, False] if r % 2 == 0 else [False, True]
        for wire in order:
            # ib_insync takes its loop from the policy: plain asyncio, no uvloop, for both.
            samples = anyio.run(measure, wire, args.ticks, backend="asyncio")
            rounds["wire" if wire else "in-process"].append(summary(samples[10:]))
    table = {
        name: {
            k: statistics.median(row[k] for row in rows) for k in ("p50_us", "p99_us", "p999_us")
        }
        for name, rows in rounds.items()
    }
    table["wire"]["vs_in_process"] = statistics.median(
        w["p50_us"] / i["p50_us"] for w, i in zip(rounds["wire"], rounds["in-process"], strict=True)
    )
    table["in-process"]["vs_in_process"] = 1.0
    print(
        f"wire-to-wire tick-to-order: {args.rounds} interleaved rounds x {args.ticks} decisions, "
        f"asyncio, Python {sys.version.split()[0]}"
    )
    print(f"{'path':11} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} {'x in-proc':>9}")
    for name, row in table.items():
        print(
            f"{name:11} {row['p50_us']:9.1f} {row['p99_us']:9.1f} {row['p999_us']:9.1f} "
            f"{row['vs_in_process']:9.2f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"bench": "wire_latency", "results": table}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
