"""The Alpaca feed: sustained ingest from the websocket into actors, and the tick-to-order
latency the Alpaca path adds to the replay's, each against a baseline in the same run.

Ingest (trades/s): the sim venue's Alpaca server, in a process of its own, publishes
``--trades`` trades over ``--symbols`` symbols as fast as it can to each client that
subscribes; we time from the first trade to the last counted, for

    raw       a bare websockets client decoding msgpack (the ceiling on this machine);
    actors    alpaca-py (raw_data) -> AlpacaStream's handler -> the market-data actor
              (LiveFeed) -> one actor per symbol (a counting sink in place of the symbol actor).

Latency (tick to order): one tick in flight at a time, as bench/wire_latency.py; the grid
decides a level-0 buy, the order reaches an in-process port, which cancels it at once.

    replay    the tick handed to the market-data actor (what the replay does)
    alpaca    the trade published by the Alpaca server -> websocket -> alpaca-py -> LiveFeed

Parsing (µs per trade): our ``parse_trade`` on the raw points (what the adapter does, with
``raw_data=True``) against alpaca-py's own model (``Trade``), as the SDK builds it without
``raw_data``.

Rounds are interleaved; ratios are per round, medians reported.

    python bench/alpaca_feed.py [--rounds 5] [--trades 50000] [--symbols 10] [--ticks 300]
                                [--json bench/results/alpaca-feed.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import anyio
import anyio.lowlevel
import msgpack
from common import Row, interleave, latency_row, rate_row, spread
from grid_latency import MemoryKeeper, RecordingPort, bench_tree
from websockets.asyncio.client import connect
from wire_latency import summary

from actors.broker import Poll
from actors.domain import PriceTick
from actors.feeds.alpaca import AlpacaStream
from actors.market_data import LiveFeed, Subscriber, WaitSubscribed
from actors.symbol import TimerTick
from runtime import Actor, ActorCell
from sim.alpaca.server import AlpacaServer

KEY, SECRET = "PKBENCH", "bench-secret"
AT = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def venue() -> AlpacaServer:
    return AlpacaServer(credentials={KEY: SECRET}, max_backlog=10_000_000, symbol_limit=10_000)


# -- ingest -------------------------------------------------------------------------------------


class Sink(Actor[PriceTick]):
    def __init__(self, counts: list[int]) -> None:
        self.counts = counts

    def handle(self, message: PriceTick) -> None:
        self.counts[0] += 1


async def publish_all(server: AlpacaServer, trades: int, symbols: list[str]) -> None:
    for n in range(trades):
        server.publish_trade(symbols[n % len(symbols)], Decimal("50.00"), 100, AT)
        if n % 500 == 499:
            await anyio.lowlevel.checkpoint()  # let the server's senders write


async def blaster(trades: int, symbols: list[str]) -> None:
    """The server process: prints its port, then blasts ``trades`` at each new subscriber."""
    server = venue()
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        print(port, flush=True)
        served = 0
        while True:
            await anyio.sleep(0.005)
            if len(server.events_of("subscribe")) > served:
                served += 1
                await publish_all(server, trades, symbols)


async def ingest_raw(url: str, trades: int, symbols: list[str]) -> float:
    async with connect(url, additional_headers={"Content-Type": "application/msgpack"}) as ws:
        await ws.recv()
        await ws.send(msgpack.packb({"action": "auth", "key": KEY, "secret": SECRET}))
        await ws.recv()
        await ws.send(msgpack.packb({"action": "subscribe", "trades": symbols}))
        await ws.recv()
        count = 0
        started = 0.0
        while count < trades:
            frame = await ws.recv()
            started = started or time.perf_counter()
            count += sum(1 for p in msgpack.unpackb(frame) if p.get("T") == "t")
        elapsed = time.perf_counter() - started
    return trades / elapsed


async def ingest_actors(url: str, trades: int, symbols: list[str]) -> float:
    counts = [0]
    async with anyio.create_task_group() as tg:
        stream = AlpacaStream(key=KEY, secret=SECRET, url=url, backlog=10_000_000)
        sinks = {s: ActorCell(f"symbol.{s}", lambda: Sink(counts)) for s in symbols}
        feed: ActorCell[Any] = ActorCell(
            "market-data.alpaca",
            lambda: LiveFeed(stream, {s: [Subscriber(ref=c.ref)] for s, c in sinks.items()}),
        )
        for cell in [*sinks.values(), feed]:
            await tg.start(cell.run)
        while not counts[0]:  # noqa: ASYNC110 - the sinks' count is the only signal
            await anyio.sleep(0.0005)
        started = time.perf_counter()
        while counts[0] < trades:  # noqa: ASYNC110
            await anyio.sleep(0.001)
        elapsed = time.perf_counter() - started
        if stream.statistics.coalesced or stream.statistics.malformed:
            raise RuntimeError(f"the bench lost trades: {stream.statistics}")
        tg.cancel_scope.cancel()
    return (trades - 1) / elapsed


# -- parsing ------------------------------------------------------------------------------------


def parse_costs(points: int) -> dict[str, float]:
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
        from alpaca.data.models import Trade

    from actors.feeds.alpaca import parse_trade

    raw = [
        {
            "T": "t",
            "S": "TQQQ",
            "i": i,
            "x": "V",
            "p": 50.0 + i / 10_000,
            "s": 100,
            "c": ["@"],
            "z": "C",
            "t": msgpack.Timestamp.from_unix_nano(1_795_000_000_000_000_000 + i),
        }
        for i in range(points)
    ]
    started = time.perf_counter()
    for point in raw:
        parse_trade(point)
    ours = time.perf_counter() - started
    started = time.perf_counter()
    for point in raw:
        model = dict(point)
        model["t"] = model["t"].to_datetime()  # what the SDK's _cast does first
        Trade("TQQQ", model)
    sdk = time.perf_counter() - started
    return {"ours_us": ours / points * 1e6, "sdk_model_us": sdk / points * 1e6}


# -- latency ------------------------------------------------------------------------------------


async def latency(alpaca: bool, ticks: int) -> list[int]:
    server = venue()
    recording = RecordingPort()
    samples: list[int] = []
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        root, cells = bench_tree(recording, ActorCell("lot-keeper", MemoryKeeper))
        replay, broker, symbol = cells["market-data"], cells["broker"], cells["symbol.TQQQ"]
        await tg.start(root.run)
        stream = AlpacaStream(key=KEY, secret=SECRET, url=server.url())
        feed: ActorCell[Any] = ActorCell(
            "market-data.alpaca", lambda: LiveFeed(stream, {"TQQQ": [Subscriber(ref=symbol.ref)]})
        )
        await tg.start(feed.run)
        await feed.ref.request(WaitSubscribed(), timeout=30)
        for i in range(ticks):
            recording.arrived = anyio.Event()
            price = Decimal("52.00") + Decimal(i % 50) / 100
            at = AT + timedelta(seconds=i)
            sent = perf_counter_ns()
            if alpaca:
                server.publish_trade("TQQQ", price, 100, at)
            else:
                replay.ref.tell(PriceTick(symbol="TQQQ", price=price, size=100))
            await recording.arrived.wait()
            samples.append(recording.at_ns - sent)
            await broker.ref.request(Poll(), timeout=30)
            await symbol.ref.request(TimerTick(), timeout=30)
        root.stop()
        tg.cancel_scope.cancel()
    return samples


GROUP = "alpaca feed"


def suite_rows(*, rounds: int, quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    """Ingest (trades/s) through alpaca-py into actors against a bare websockets client, and
    tick-to-order through the Alpaca path against the replay's, interleaved."""
    trades, ticks, count = (5_000, 40, 10) if quick else (50_000, 300, 10)
    symbols = [f"S{i:03d}" for i in range(count)]
    server = subprocess.Popen(
        [sys.executable, __file__, "--blaster", "--trades", str(trades), "--symbols", str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"ws://127.0.0.1:{int(server.stdout.readline())}/v2/iex"

        def ingest(run: Callable[..., Any]) -> Callable[[], float]:
            return lambda: float(anyio.run(run, url, trades, symbols, backend="asyncio"))

        def path(alpaca: bool) -> Callable[[], dict[str, float]]:
            return lambda: spread(
                anyio.run(latency, alpaca, ticks, backend="asyncio")[ticks // 20 :], 1000.0
            )

        rates = interleave(
            {"raw": ingest(ingest_raw), "actors": ingest(ingest_actors)}, rounds, on_run=log
        )
        paths = interleave({"replay": path(False), "alpaca": path(True)}, rounds, on_run=log)
    finally:
        server.kill()
        server.wait()
    return [
        rate_row(
            GROUP,
            f"ingest: websockets + msgpack, bare ({count} symbols)",
            rates["raw"],
            note="trades/s",
        ),
        rate_row(
            GROUP,
            f"ingest: alpaca-py -> market-data actor -> symbol actors ({count} symbols)",
            rates["actors"],
            baselines={f"ingest: websockets + msgpack, bare ({count} symbols)": rates["raw"]},
            note="trades/s",
        ),
        latency_row(GROUP, "tick-to-order from the replay", paths["replay"]),
        latency_row(
            GROUP,
            "tick-to-order from the Alpaca server (websocket, alpaca-py)",
            paths["alpaca"],
            baselines={"tick-to-order from the replay": paths["replay"]},
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--trades", type=int, default=50_000)
    parser.add_argument("--symbols", type=int, default=10)
    parser.add_argument("--ticks", type=int, default=300)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--blaster", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    if args.blaster:
        anyio.run(blaster, args.trades, symbols, backend="asyncio")
        return 0
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--blaster",
            "--trades",
            str(args.trades),
            "--symbols",
            str(args.symbols),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = f"ws://127.0.0.1:{int(server.stdout.readline())}/v2/iex"
        return report(args, url, symbols)
    finally:
        server.kill()
        server.wait()


def report(args: argparse.Namespace, url: str, symbols: list[str]) -> int:
    ingest: dict[str, list[float]] = {"raw": [], "actors": []}
    lat: dict[str, list[dict[str, float]]] = {"replay": [], "alpaca": []}
    parsing: list[dict[str, float]] = []
    for r in range(args.rounds):
        parsing.append(parse_costs(20_000))
        for name in ["raw", "actors"] if r % 2 == 0 else ["actors", "raw"]:
            run = ingest_raw if name == "raw" else ingest_actors
            ingest[name].append(anyio.run(run, url, args.trades, symbols, backend="asyncio"))
        for alpaca in [True, False] if r % 2 == 0 else [False, True]:
            samples = anyio.run(latency, alpaca, args.ticks, backend="asyncio")
            lat["alpaca" if alpaca else "replay"].append(summary(samples[10:]))
    results: dict[str, Any] = {
        "ingest_trades_per_s": {name: statistics.median(values) for name, values in ingest.items()},
        "ingest_actors_vs_raw": statistics.median(
            a / b for a, b in zip(ingest["actors"], ingest["raw"], strict=True)
        ),
        "latency": {
            name: {
                k: statistics.median(row[k] for row in rows)
                for k in ("p50_us", "p99_us", "p999_us")
            }
            for name, rows in lat.items()
        },
        "latency_alpaca_vs_replay": statistics.median(
            a["p50_us"] / b["p50_us"] for a, b in zip(lat["alpaca"], lat["replay"], strict=True)
        ),
    }
    results["parse_us_per_trade"] = {
        k: statistics.median(row[k] for row in parsing) for k in ("ours_us", "sdk_model_us")
    }
    results["parse_ours_vs_sdk_model"] = statistics.median(
        row["ours_us"] / row["sdk_model_us"] for row in parsing
    )
    results["latency_added_us"] = (
        results["latency"]["alpaca"]["p50_us"] - results["latency"]["replay"]["p50_us"]
    )
    print(
        f"Alpaca feed: {args.rounds} interleaved rounds; ingest {args.trades} trades over "
        f"{args.symbols} symbols; latency {args.ticks} decisions; asyncio, Python "
        f"{sys.version.split()[0]}"
    )
    rates = results["ingest_trades_per_s"]
    print(
        f"ingest trades/s: raw websocket {rates['raw']:,.0f}, alpaca-py -> actors "
        f"{rates['actors']:,.0f} ({results['ingest_actors_vs_raw']:.2f}x raw)"
    )
    costs = results["parse_us_per_trade"]
    print(
        f"parsing a trade: ours (raw_data) {costs['ours_us']:.2f} us, alpaca-py's model "
        f"{costs['sdk_model_us']:.2f} us ({results['parse_ours_vs_sdk_model']:.2f}x)"
    )
    print(f"{'tick-to-order':14} {'p50 us':>9} {'p99 us':>9} {'p99.9 us':>9}")
    for name, row in results["latency"].items():
        print(f"{name:14} {row['p50_us']:9.1f} {row['p99_us']:9.1f} {row['p999_us']:9.1f}")
    print(
        f"the Alpaca path: {results['latency_alpaca_vs_replay']:.2f}x the replay's p50, "
        f"+{results['latency_added_us']:.0f} us"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"bench": "alpaca_feed", "results": results}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
