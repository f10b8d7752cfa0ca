"""Sweep speed: the same backtests as a Dask sweep and as a serial loop, and Dask's cost per task.

    combinations of config/examples/ma_cross.toml (fast x slow), each one backtest of the same
    generated days (app.sweep.run.run_one: what a sweep's worker runs)
      -> serial: one after the other in this process
      -> sweep:  app.sweep.run.execute on a distributed.LocalCluster (one worker process per
                 core, started before the clock: a cluster outlives its sweeps)

Rows: both rates (combinations per second), the sweep over the serial loop as a same-run ratio
(target >= 1.7 on 2 cores), and the cost of one task on the cluster (an empty task submitted
and its result gathered, per task, over a few hundred) beside the mean combination's time.

    python bench/sweep_speed.py [--rounds 3] [--days 3] [--workers N] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import Row, Target, interleave, rate_row, render, write_rows

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "examples" / "ma_cross.toml"
GROUP = "sweep"
FAST = ("5", "10")
SLOW = ("20", "30", "40", "50", "60", "70")
TARGET = 1.7
EMPTY_TASKS = 300


def _items() -> list[Any]:
    from app.sweep import grid, run
    from config.load import load_config

    settings = load_config(CONFIG)
    params = [
        grid.Param(key="ma_cross.fast", values=FAST),
        grid.Param(key="ma_cross.slow", values=SLOW),
    ]
    return [
        run.Item(
            ident=grid.combination_id(c),
            combination=c,
            config_text=grid.rendered(grid.apply(settings, c)),
        )
        for c in grid.combinations(params)
    ]


def serial(items: list[Any], options: Any) -> float:
    from app.sweep import run

    with tempfile.TemporaryDirectory(prefix="actortrade-bench-sweep-") as folder:
        started = time.perf_counter()
        rows = [run.run_one(Path(folder), options, item) for item in items]
        seconds = time.perf_counter() - started
    assert all(r["error"] is None for r in rows), rows
    return len(items) / seconds


def swept(client: Any, workers: int, items: list[Any], options: Any) -> float:
    from app.sweep import run

    with tempfile.TemporaryDirectory(prefix="actortrade-bench-sweep-") as folder:
        started = time.perf_counter()
        rows = run.execute(client, Path(folder), options, items, workers=workers)
        seconds = time.perf_counter() - started
    assert all(r["error"] is None for r in rows), rows
    return len(items) / seconds


def _nothing(n: int) -> int:
    return n


def task_cost(client: Any) -> float:
    """Seconds per empty task, submitted and gathered."""
    started = time.perf_counter()
    futures = [client.submit(_nothing, n, pure=False) for n in range(EMPTY_TASKS)]
    client.gather(futures)
    return (time.perf_counter() - started) / EMPTY_TASKS


def suite_rows(
    *,
    rounds: int,
    quick: bool,
    log: Callable[[str], None] = print,
    days: int | None = None,
    workers: int | None = None,
) -> list[Row]:
    import logging

    from distributed import Client, LocalCluster

    from app.sweep import run

    days = days if days is not None else (1 if quick else 3)
    workers = workers or os.cpu_count() or 1
    items = _items()
    options = run.Options(days=days)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_nothing, 0)  # workers up and imported
        results = interleave(
            {
                "serial": lambda: serial(items, options),
                "sweep": lambda: swept(client, workers, items, options),
                "tasks": lambda: task_cost(client),
            },
            rounds,
            on_run=log,
        )
    combos = f"{len(items)} backtests of {days} generated day(s)"
    serial_name = f"serial loop, {combos}"
    per_combination = sorted(1 / r for r in results["serial"])[len(results["serial"]) // 2]
    cost = sorted(results["tasks"])[len(results["tasks"]) // 2]
    return [
        rate_row(GROUP, serial_name, results["serial"], note="combinations/s, one process"),
        rate_row(
            GROUP,
            f"sweep on a LocalCluster of {workers} worker process(es), {combos}",
            results["sweep"],
            baselines={serial_name: results["serial"]},
            targets=[Target(on="ratio", op=">=", limit=TARGET, baseline=serial_name)],
            note=f"combinations/s of app.sweep.run.execute (target >= {TARGET:g}x on 2 cores)",
        ),
        Row(
            group=GROUP,
            name="Dask's cost per task (an empty task, submitted and gathered)",
            unit="ms",
            p50=cost * 1000,
            rounds=rounds,
            samples=EMPTY_TASKS * rounds,
            note=(
                f"{cost * 1000:.2f} ms a task against {per_combination:.2f} s a combination "
                f"({cost / per_combination:.2%})"
            ),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one generated day a backtest")
    parser.add_argument("--days", type=int, help="generated days a backtest [3; --quick 1]")
    parser.add_argument("--workers", type=int, help="local worker processes [one per core]")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rows = suite_rows(
        rounds=args.rounds,
        quick=args.quick,
        log=lambda _line: None,
        days=args.days,
        workers=args.workers,
    )
    print(render(rows))
    for row in rows:
        print(f"{row.name}: {row.note}")
    if args.json:
        write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
