"""Durable writes through ``runtime.store`` per durability policy, as the lot-keeper does them.

Two shapes, interleaved across rounds: one write in flight (the latency an order intent waits
before it may be sent), and 64 writers at once (a burst of fills). Each write stores one ~256-byte
record. Ratios are against SYNC (one fsync per write) in the same round.

    python bench/store_commit.py [--rounds 5] [--writes 400] [--json bench/results/store.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import anyio

from runtime.store import Durability, Store, Txn

RECORD = b"x" * 256


def _put(key: int) -> Any:
    def write(txn: Txn) -> None:
        txn.put("intents", key.to_bytes(8, "big"), RECORD)

    return write


async def one_in_flight(store: Store, writes: int) -> list[int]:
    samples = []
    for i in range(writes):
        start = perf_counter_ns()
        await store.write(_put(i))
        samples.append(perf_counter_ns() - start)
    return samples


async def burst(store: Store, writes: int, writers: int = 64) -> float:
    start = perf_counter_ns()
    async with anyio.create_task_group() as tg:
        for w in range(writers):
            tg.start_soon(_writer, store, w, writes // writers)
    return writes / ((perf_counter_ns() - start) / 1e9)


async def _writer(store: Store, w: int, count: int) -> None:
    for i in range(count):
        await store.write(_put(1_000_000 + w * 100_000 + i))


def measure(durability: Durability, writes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        store = Store(folder, databases=("intents",), schema_version=1, durability=durability)
        with store:
            latency = anyio.run(one_in_flight, store, writes, backend="asyncio")
            rate = anyio.run(burst, store, writes * 4, backend="asyncio")
    latency.sort()
    return {
        "p50_us": latency[len(latency) // 2] / 1000,
        "p99_us": latency[int(len(latency) * 0.99)] / 1000,
        "writes_per_s": rate,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    policies = list(Durability)
    rounds: dict[str, list[dict[str, float]]] = {p.value: [] for p in policies}
    for r in range(args.rounds):
        order = policies[r % len(policies) :] + policies[: r % len(policies)]
        for policy in order:
            rounds[policy.value].append(measure(policy, args.writes))
    table = {}
    for policy, rows in rounds.items():
        base = rounds[Durability.POWER_SAFE_EACH.value]
        table[policy] = {
            "p50_us": statistics.median(row["p50_us"] for row in rows),
            "p99_us": statistics.median(row["p99_us"] for row in rows),
            "writes_per_s": statistics.median(row["writes_per_s"] for row in rows),
            "burst_vs_sync": statistics.median(
                row["writes_per_s"] / b["writes_per_s"] for row, b in zip(rows, base, strict=True)
            ),
        }
    print(
        f"store commits: {args.rounds} interleaved rounds, {args.writes} sequential writes, "
        f"{args.writes * 4} in a 64-writer burst; Python {sys.version.split()[0]}"
    )
    print(f"{'policy':8} {'1 in flight p50 us':>19} {'p99 us':>9} {'burst/s':>15} {'x sync':>7}")
    for policy, row in table.items():
        print(
            f"{policy:8} {row['p50_us']:19.1f} {row['p99_us']:9.1f} {row['writes_per_s']:15,.0f} "
            f"{row['burst_vs_sync']:7.2f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"bench": "store_commit", "results": table}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
