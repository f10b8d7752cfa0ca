"""Tick-to-order latency through actor mailboxes: 1 hop and a 3-hop pipeline.

    feeder -> market data -> symbol -> broker -> client.place()

Unloaded latency: one tick in flight; the feeder waits for the order to reach the client before
sending the next. Latency = t(client.place) - t(tick stamped just before entering the first
mailbox). Every variant runs the same business logic (validate, route, build an order).

Baselines measured in the same run, interleaved (A, B, C, then rotated): direct synchronous calls
and a raw asyncio.Queue pipeline with one task per stage. Ratios are computed within each round,
then medianed across rounds (ref/perf-baselines.md section 1).

    python bench/mailbox_latency.py                 # 5 rounds x 10k ticks, uvloop when installed
    python bench/mailbox_latency.py --rounds 9 --json bench/results/mailbox.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import anyio
import attrs
import sniffio
import trio

# bench/ is not a package: run from a checkout with the project installed (make install-dev).
from common import Row, Target, interleave, latency_row, spread

from runtime import Actor, ActorCell, ActorRef
from supervisors import ChildSpec, Strategy, Supervisor, SupervisorSpec

TARGET_VS_QUEUE = 1.15
TARGET_VS_DIRECT = 15.0


@attrs.frozen(kw_only=True)
class Tick:
    symbol: str
    price: float
    size: int
    ts_ns: int


@attrs.frozen(kw_only=True)
class Order:
    symbol: str
    side: str
    quantity: int
    limit: float
    order_ref: str
    tick_ts_ns: int


# -- the business logic, shared by every variant -----------------------------------------------


def validate(tick: Tick) -> bool:
    return tick.price > 0.0 and tick.size > 0


def decide(tick: Tick, seq: int) -> Order:
    return Order(
        symbol=tick.symbol,
        side="BUY",
        quantity=94,
        limit=round(tick.price * 1.0025, 2),
        order_ref=f"grid:{tick.symbol}:L{seq % 88}:BUY",
        tick_ts_ns=tick.ts_ns,
    )


class Client:
    """Stands in for the broker SDK: records the latency of each order it is handed."""

    def __init__(self, samples: list[int]) -> None:
        self.samples = samples
        self.notify: Callable[[], None] = lambda: None

    def place(self, order: Order) -> None:
        self.samples.append(perf_counter_ns() - order.tick_ts_ns)
        self.notify()


def make_tick(i: int) -> Tick:
    return Tick(symbol="TQQQ", price=50.0 + (i % 100) * 0.01, size=100, ts_ns=perf_counter_ns())


# -- variants ----------------------------------------------------------------------------------


def run_direct(ticks: int, hops: int) -> list[int]:
    samples: list[int] = []
    client = Client(samples)
    seq = 0

    def broker(order: Order) -> None:
        client.place(order)

    def symbol(tick: Tick) -> None:
        nonlocal seq
        seq += 1
        broker(decide(tick, seq))

    def market_data(tick: Tick) -> None:
        if validate(tick):
            symbol(tick)

    entry = market_data if hops == 3 else symbol
    for i in range(ticks):
        entry(make_tick(i))
    return samples


async def run_queue(ticks: int, hops: int) -> list[int]:
    samples: list[int] = []
    client = Client(samples)
    loop = asyncio.get_running_loop()
    waiter: list[asyncio.Future[None]] = []
    client.notify = lambda: waiter[0].set_result(None)
    q_md: asyncio.Queue[Tick] = asyncio.Queue(1024)
    q_sym: asyncio.Queue[Tick] = asyncio.Queue(1024)
    q_brk: asyncio.Queue[Order] = asyncio.Queue(1024)
    seq = 0

    async def market_data() -> None:
        while True:
            tick = await q_md.get()
            if validate(tick):
                q_sym.put_nowait(tick)

    async def symbol() -> None:
        nonlocal seq
        while True:
            tick = await q_sym.get()
            seq += 1
            if hops == 3:
                q_brk.put_nowait(decide(tick, seq))
            else:
                client.place(decide(tick, seq))

    async def broker() -> None:
        while True:
            client.place(await q_brk.get())

    stages = [symbol()] if hops == 1 else [market_data(), symbol(), broker()]
    tasks = [loop.create_task(stage) for stage in stages]
    entry = q_md if hops == 3 else q_sym
    try:
        for i in range(ticks):
            future = loop.create_future()
            waiter[:] = [future]
            entry.put_nowait(make_tick(i))
            await future
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return samples


class MarketData(Actor[Tick]):
    def __init__(self, symbol: ActorRef[Tick]) -> None:
        self.symbol = symbol

    def handle(self, message: Tick) -> None:
        if validate(message):
            self.context.tell(self.symbol, message)


class Symbol(Actor[Tick]):
    def __init__(self, broker: ActorRef[Order] | None, client: Client) -> None:
        self.broker = broker
        self.client = client
        self.seq = 0

    def handle(self, message: Tick) -> None:
        self.seq += 1
        order = decide(message, self.seq)
        if self.broker is None:
            self.client.place(order)
        else:
            self.context.tell(self.broker, order)


class Broker(Actor[Order]):
    def __init__(self, client: Client) -> None:
        self.client = client

    def handle(self, message: Order) -> None:
        self.client.place(message)


class AsyncMarketData(MarketData):
    async def handle(self, message: Tick) -> None:  # type: ignore[override]
        MarketData.handle(self, message)


class AsyncSymbol(Symbol):
    async def handle(self, message: Tick) -> None:  # type: ignore[override]
        Symbol.handle(self, message)


class AsyncBroker(Broker):
    async def handle(self, message: Order) -> None:  # type: ignore[override]
        Broker.handle(self, message)


async def run_actors(ticks: int, hops: int, async_handlers: bool = False) -> list[int]:
    samples: list[int] = []
    client = Client(samples)
    md_cls, symbol_cls, broker_cls = (
        (AsyncMarketData, AsyncSymbol, AsyncBroker)
        if async_handlers
        else (MarketData, Symbol, Broker)
    )
    if hops == 3:
        broker = ActorCell("broker", lambda: broker_cls(client))
        symbol = ActorCell("symbol.TQQQ", lambda: symbol_cls(broker.ref, client))
        md = ActorCell("market-data", lambda: md_cls(symbol.ref))
        cells: list[ActorCell[Any]] = [broker, symbol, md]
        entry: ActorRef[Tick] = md.ref
    else:
        symbol = ActorCell("symbol.TQQQ", lambda: symbol_cls(None, client))
        cells = [symbol]
        entry = symbol.ref
    root = Supervisor(
        "bench",
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            children=[ChildSpec(id=cell.name, start=cell) for cell in cells],
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        if sniffio.current_async_library() == "asyncio":
            # The feeder's wait is the asyncio.Queue baseline's, line for line, so that the
            # ratio compares the pipelines and nothing else.
            loop = asyncio.get_running_loop()
            waiter: list[asyncio.Future[None]] = []
            client.notify = lambda: waiter[0].set_result(None)
            for i in range(ticks):
                future = loop.create_future()
                waiter[:] = [future]
                entry.tell(make_tick(i))
                await future
        else:
            events: list[trio.Event] = []
            client.notify = lambda: events[0].set()
            for i in range(ticks):
                event = trio.Event()
                events[:] = [event]
                entry.tell(make_tick(i))
                await event.wait()
        root.stop()
    return samples


# -- harness -----------------------------------------------------------------------------------


def percentile(sorted_ns: list[int], q: float) -> float:
    index = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[index] / 1000.0


def summarize(samples: list[int], warmup: int) -> dict[str, float]:
    kept = sorted(samples[warmup:])
    return {
        "p50_us": percentile(kept, 0.50),
        "p99_us": percentile(kept, 0.99),
        "p999_us": percentile(kept, 0.999),
        "max_us": kept[-1] / 1000.0,
        "n": float(len(kept)),
    }


def asyncio_options(use_uvloop: bool) -> dict[str, Any]:
    return {"use_uvloop": True} if use_uvloop else {}


def build_variants(
    ticks: int, use_uvloop: bool, with_trio: bool
) -> dict[str, Callable[[], list[int]]]:
    loop_name = "uvloop" if use_uvloop else "asyncio"
    opts = asyncio_options(use_uvloop)

    def on_asyncio(fn: Callable[..., Awaitable[list[int]]], *args: Any) -> Callable[[], list[int]]:
        return lambda: anyio.run(fn, ticks, *args, backend="asyncio", backend_options=opts)

    variants: dict[str, Callable[[], list[int]]] = {
        "direct 1-hop": lambda: run_direct(ticks, 1),
        "direct 3-hop": lambda: run_direct(ticks, 3),
        f"asyncio.Queue 1-hop [{loop_name}]": on_asyncio(run_queue, 1),
        f"asyncio.Queue 3-hop [{loop_name}]": on_asyncio(run_queue, 3),
        f"actors 1-hop [{loop_name}]": on_asyncio(run_actors, 1),
        f"actors 3-hop [{loop_name}]": on_asyncio(run_actors, 3),
        f"actors 3-hop async handlers [{loop_name}]": on_asyncio(run_actors, 3, True),
    }
    if with_trio:
        variants["actors 1-hop [trio]"] = lambda: anyio.run(run_actors, ticks, 1, backend="trio")
        variants["actors 3-hop [trio]"] = lambda: anyio.run(run_actors, ticks, 3, backend="trio")
    return variants


def baseline_of(name: str) -> tuple[str, str]:
    """(direct baseline, queue baseline) for a variant, matched on hop count."""
    hops = "1-hop" if "1-hop" in name else "3-hop"
    loop = name[name.index("[") :] if "[" in name else ""
    queue_loop = loop if loop and "trio" not in loop else ""
    return f"direct {hops}", (f"asyncio.Queue {hops} {queue_loop}" if queue_loop else "")


def run(rounds: int, ticks: int, warmup: int, use_uvloop: bool, with_trio: bool) -> dict[str, Any]:
    variants = build_variants(ticks + warmup, use_uvloop, with_trio)
    names = list(variants)
    per_round: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            per_round[name].append(summarize(variants[name](), warmup))
    table: dict[str, dict[str, float]] = {}
    for name in names:
        rows = per_round[name]
        direct, queue = baseline_of(name)
        entry = {
            "p50_us": statistics.median(row["p50_us"] for row in rows),
            "p99_us": statistics.median(row["p99_us"] for row in rows),
            "p999_us": statistics.median(row["p999_us"] for row in rows),
            "max_us": max(row["max_us"] for row in rows),
            "vs_direct": statistics.median(
                row["p50_us"] / base["p50_us"]
                for row, base in zip(rows, per_round[direct], strict=True)
            ),
        }
        if queue:
            entry["vs_queue"] = statistics.median(
                row["p50_us"] / base["p50_us"]
                for row, base in zip(rows, per_round[queue], strict=True)
            )
        table[name] = entry
    return {
        "bench": "mailbox_latency",
        "rounds": rounds,
        "ticks_per_round": ticks,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "platform": platform.platform(),
        "uvloop": use_uvloop,
        "results": table,
    }


def targets(result: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    loop = "uvloop" if result["uvloop"] else "asyncio"
    row = result["results"][f"actors 3-hop [{loop}]"]
    return [
        (
            f"actors 3-hop [{loop}] p50 / asyncio.Queue 3-hop p50",
            row["vs_queue"],
            TARGET_VS_QUEUE,
            row["vs_queue"] <= TARGET_VS_QUEUE,
        ),
        (
            f"actors 3-hop [{loop}] p50 / direct 3-hop p50",
            row["vs_direct"],
            TARGET_VS_DIRECT,
            row["vs_direct"] <= TARGET_VS_DIRECT,
        ),
    ]


def render(result: dict[str, Any]) -> str:
    lines = [
        f"mailbox latency: {result['rounds']} interleaved rounds x {result['ticks_per_round']} "
        f"ticks, Python {result['python']}, {result['machine']}",
        "",
        f"{'variant':34} {'p50 us':>8} {'p99 us':>8} {'p99.9 us':>9} {'max us':>9} "
        f"{'x direct':>9} {'x queue':>8}",
    ]
    for name, row in result["results"].items():
        vs_queue = f"{row['vs_queue']:.2f}" if "vs_queue" in row else "-"
        lines.append(
            f"{name:34} {row['p50_us']:8.2f} {row['p99_us']:8.2f} {row['p999_us']:9.1f} "
            f"{row['max_us']:9.0f} {row['vs_direct']:9.2f} {vs_queue:>8}"
        )
    lines.append("")
    for label, value, limit, ok in targets(result):
        lines.append(f"target {label}: {value:.2f} (<= {limit:g}) {'PASS' if ok else 'FAIL'}")
    return "\n".join(lines)


GROUP = "tick-to-order, 3 hops"


def suite_rows(*, rounds: int, quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    """The suite's 3-hop rows: every backend in one run, against direct calls and the raw
    asyncio.Queue pipeline on the same loop (trio's has no asyncio.Queue: it is compared with
    plain asyncio's)."""
    ticks, warmup = (1_000, 100) if quick else (10_000, 500)
    n = ticks + warmup

    def on(fn: Callable[..., Awaitable[list[int]]], uvloop: bool) -> Callable[[], list[int]]:
        opts = asyncio_options(uvloop)
        return lambda: anyio.run(fn, n, 3, backend="asyncio", backend_options=opts)

    variants: dict[str, Callable[[], list[int]]] = {
        "direct calls": lambda: run_direct(n, 3),
        "asyncio.Queue [asyncio]": on(run_queue, False),
        "asyncio.Queue [uvloop]": on(run_queue, True),
        "actors [asyncio]": on(run_actors, False),
        "actors [uvloop]": on(run_actors, True),
        "actors [trio]": lambda: anyio.run(run_actors, n, 3, backend="trio"),
    }
    results = interleave(
        {k: (lambda v=v: spread(v()[warmup:], 1000.0)) for k, v in variants.items()},
        rounds,
        on_run=log,
    )
    rows = []
    for name, per_round in results.items():
        loop = name[name.index("[") + 1 : -1] if "[" in name else ""
        queue = f"asyncio.Queue [{'asyncio' if loop == 'trio' else loop}]"
        baselines = {} if name == "direct calls" else {"direct calls": results["direct calls"]}
        targets: list[Target] = []
        if name.startswith("actors"):
            baselines[queue] = results[queue]
            targets = [
                Target(on="ratio", op="<=", limit=TARGET_VS_QUEUE, baseline=queue),
                Target(on="ratio", op="<=", limit=TARGET_VS_DIRECT, baseline="direct calls"),
            ]
            if loop == "trio":
                targets = targets[1:]
        rows.append(latency_row(GROUP, name, per_round, baselines=baselines, targets=targets))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ticks", type=int, default=10_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    parser.add_argument("--no-trio", action="store_true", help="skip the trio variants")
    parser.add_argument("--json", type=Path, help="also write the result as JSON here")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    use_uvloop = not args.no_uvloop
    if use_uvloop:
        try:
            import uvloop  # noqa: F401
        except ImportError:
            print("uvloop is not installed: measuring plain asyncio", file=sys.stderr)
            use_uvloop = False
    result = run(args.rounds, args.ticks, args.warmup, use_uvloop, not args.no_trio)
    print(render(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.check and not all(ok for *_, ok in targets(result)):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
