"""Tick-to-order through the grid's actors with the write-ahead intent in the path.

    tick -> market-data actor -> symbol actor (grid decides a level-0 buy)
         -> lot-keeper (intent committed to LMDB) -> broker actor
         -> venue port (order handed over: the clock stops here)

One tick in flight. The port accepts each order and cancels it at once, so the grid is flat
again and the next tick is another decision. Variants are the durability policies and a
baseline, ``memory``: the same actors and hops with a lot-keeper that keeps intents in a dict
(no LMDB, no thread hand-off), so the ratio to it is what the durable intent costs. Ratios are
per round (same round, same conditions), medians over interleaved rounds.

    python bench/grid_latency.py [--rounds 5] [--ticks 400] [--json bench/results/grid.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import anyio

from actors.broker import BrokerActor, Poll
from actors.domain import (
    BrokerEvent,
    BrokerSnapshot,
    OrderAccepted,
    OrderCancelled,
    PlaceOrder,
    PriceTick,
)
from actors.lot_keeper import CommitIntent, LedgerState, LoadLedger, LotKeeper, ledger_store
from actors.strategies.grid import GridKind, GridParams
from actors.symbol import SymbolActor, TimerTick
from config.lotmap import LotMap
from runtime import Actor, ActorCell, ActorRef
from runtime.store import Durability
from runtime.telemetry import Telemetry
from supervisors import ChildSpec, Strategy, Supervisor, SupervisorSpec

MEMORY = "memory"


class RecordingPort:
    """A venue port that notes when each order arrives, accepts it and cancels it at once."""

    def __init__(self) -> None:
        self.arrived = anyio.Event()
        self.at_ns = 0

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        self.at_ns = perf_counter_ns()
        self.arrived.set()
        return [OrderAccepted(ref=order.ref), OrderCancelled(ref=order.ref, reason="bench")]

    async def cancel(self, ref: str) -> list[BrokerEvent]:
        return []

    async def poll(self) -> list[BrokerEvent]:
        return []

    async def connect(self) -> None:
        pass

    async def wait(self) -> None:
        await anyio.sleep_forever()

    async def snapshot(self) -> BrokerSnapshot:
        # Every order it was sent was cancelled at once: nothing works, nothing is held.
        return BrokerSnapshot()

    async def close(self) -> None:
        pass


class MemoryKeeper(Actor[Any]):
    """The baseline lot-keeper: intents in a dict, no disk."""

    def __init__(self) -> None:
        self.intents: dict[str, PlaceOrder] = {}

    def handle(self, message: Any) -> object:
        match message:
            case CommitIntent(order=order):
                self.intents[order.ref] = order
                return True
            case LoadLedger():
                return LedgerState(intents=(), fills=(), lots=())
            case _:
                return True


class MarketData(Actor[PriceTick]):
    """The market-data hop: forwards each tick to its symbol actor, as a feed does."""

    def __init__(self, symbol: ActorRef[Any]) -> None:
        self.symbol = symbol

    async def handle(self, message: PriceTick) -> None:
        await self.context.send(self.symbol, message)


def bench_tree(
    port: Any, keeper: ActorCell[Any], telemetry: Telemetry | None = None
) -> tuple[Supervisor, dict[str, ActorCell[Any]]]:
    """market-data -> symbol (a 3-level grid) -> lot-keeper, broker -> ``port``, rest_for_one;
    the cells by name. Shared with bench/wire_latency.py and bench/tracing_overhead.py."""
    broker: ActorCell[Any] = ActorCell(
        "broker", lambda: BrokerActor(port, {"grid:TQQQ": symbol.ref}, telemetry=telemetry)
    )
    symbol: ActorCell[Any] = ActorCell(
        "symbol.TQQQ",
        lambda: SymbolActor(
            GridKind(GridParams(symbol="TQQQ"), LotMap((94, 95, 96))),
            lot_keeper=keeper.ref,
            broker=broker.ref,
            timer_interval=3600,
            telemetry=telemetry,
        ),
    )
    feed: ActorCell[PriceTick] = ActorCell("market-data", lambda: MarketData(symbol.ref))
    cells = [keeper, broker, symbol, feed]
    root = Supervisor(
        "bench",
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            children=[ChildSpec(id=c.name, start=c) for c in cells],
        ),
    )
    return root, {c.name: c for c in cells}


async def measure(
    policy: str, ticks: int, folder: str, telemetry: Telemetry | None = None
) -> list[int]:
    """``ticks`` decisions through the tree, one in flight; each one's tick-to-order in ns.
    With ``telemetry``, its flush runs beside the tree as in the service."""
    port = RecordingPort()
    if policy == MEMORY:
        keeper: ActorCell[Any] = ActorCell("lot-keeper", MemoryKeeper)
    else:
        store = ledger_store(Path(folder) / policy, durability=Durability(policy))
        keeper = ActorCell("lot-keeper", lambda: LotKeeper(store))
    root, cells = bench_tree(port, keeper, telemetry)
    feed, broker, symbol = cells["market-data"], cells["broker"], cells["symbol.TQQQ"]
    samples: list[int] = []
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        flusher = anyio.CancelScope()
        if telemetry is not None:
            tg.start_soon(_flush, telemetry, flusher)
        for i in range(ticks):
            port.arrived = anyio.Event()
            price = Decimal("52.00") + Decimal(i % 50) / 100
            sent = perf_counter_ns()
            feed.ref.tell(PriceTick(symbol="TQQQ", price=price))
            await port.arrived.wait()
            samples.append(port.at_ns - sent)
            # Let the accept and cancel reach the strategy (flat again) before the next tick;
            # a timer tick never places a level-0 buy, so it adds no decision.
            await broker.ref.request(Poll(), timeout=30)
            await symbol.ref.request(TimerTick(), timeout=30)
        root.stop()
        flusher.cancel()
    return samples


async def _flush(telemetry: Telemetry, scope: anyio.CancelScope) -> None:
    with scope:
        await telemetry.run()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=400)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    policies = [MEMORY, *(p.value for p in Durability)]
    rounds: dict[str, list[dict[str, float]]] = {p: [] for p in policies}
    for r in range(args.rounds):
        shift = r % len(policies)
        for policy in policies[shift:] + policies[:shift]:
            with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
                samples = anyio.run(
                    measure,
                    policy,
                    args.ticks,
                    folder,
                    backend="asyncio",
                    backend_options={"use_uvloop": True},
                )
            samples.sort()
            rounds[policy].append(
                {
                    "p50_us": samples[len(samples) // 2] / 1000,
                    "p99_us": samples[int(len(samples) * 0.99)] / 1000,
                    "p999_us": samples[min(len(samples) - 1, int(len(samples) * 0.999))] / 1000,
                }
            )
    table: dict[str, dict[str, float]] = {}
    for policy, rows in rounds.items():
        table[policy] = {
            key: statistics.median(row[key] for row in rows)
            for key in ("p50_us", "p99_us", "p999_us")
        }
        unsafe = rounds[Durability.UNSAFE.value]
        for name, base in (("vs_memory", rounds[MEMORY]), ("vs_unsafe", unsafe)):
            table[policy][name] = statistics.median(
                row["p50_us"] / b["p50_us"] for row, b in zip(rows, base, strict=True)
            )
    print(
        f"grid tick-to-order with the intent commit: {args.rounds} interleaved rounds x "
        f"{args.ticks} decisions, asyncio+uvloop, Python {sys.version.split()[0]}"
    )
    print(
        f"{'policy':8} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9} {'x memory':>9} {'x unsafe':>9}"
    )
    for policy, row in table.items():
        print(
            f"{policy:8} {row['p50_us']:9.1f} {row['p99_us']:9.1f} {row['p999_us']:9.1f} "
            f"{row['vs_memory']:9.2f} {row['vs_unsafe']:9.2f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"bench": "grid_latency", "results": table}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
