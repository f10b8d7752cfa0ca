"""``actorctl sweep``: a grid of a config's strategy parameters, each combination a backtest,
run on a Dask cluster (a local one by default)."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import cli
from ._common import ConfigOption, fail, load_config
from .backtest import DEFAULT_CASH, DEFAULT_DAYS, PRICES, Progress

METRIC_NAMES = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "profit_factor",
    "hit_rate",
)


@cli.command()
def sweep(
    param: Annotated[
        list[str],
        typer.Option(
            help="A parameter and its values, repeat for more: KEY=V1,V2,... or "
            "KEY=START:STOP:STEP (inclusive); KEY is STRATEGY.PARAM (every symbol of that "
            "strategy) or SYMBOL.STRATEGY.PARAM, e.g. ma_cross.fast=5,10 or "
            "grid.step=0.005:0.02:0.005."
        ),
    ],
    config: ConfigOption = None,
    metric: Annotated[
        str, typer.Option(help=f"Ranks the runs and fills the heatmap: {', '.join(METRIC_NAMES)}.")
    ] = "sharpe",
    heatmap: Annotated[
        str | None,
        typer.Option(
            help="The two swept keys of sweep.html's heatmap, COLUMNS,ROWS [the first two]."
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(help="A running Dask scheduler, tcp://HOST:8786 [a local cluster]."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Worker processes of the local cluster [one per core]."),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Where the sweep directory is made (sweeps/<sweep-id>/).")
    ] = Path("sweeps"),
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue the same sweep's directory: skip the combinations done."
        ),
    ] = False,
    data: Annotated[list[Path] | None, typer.Option(help="As `actorctl backtest --data`.")] = None,
    interval: Annotated[str | None, typer.Option(help="As `actorctl backtest`.")] = None,
    prices: Annotated[str, typer.Option(help="As `actorctl backtest`.")] = "raw",
    cache: Annotated[Path | None, typer.Option(help="As `actorctl backtest`.")] = None,
    start: Annotated[str | None, typer.Option("--from", help="As `actorctl backtest`.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="As `actorctl backtest`.")] = None,
    days: Annotated[int, typer.Option(help="As `actorctl backtest`.")] = DEFAULT_DAYS,
    seed: Annotated[int, typer.Option(help="As `actorctl backtest`.")] = 14,
    cash: Annotated[float, typer.Option(help="As `actorctl backtest`.")] = DEFAULT_CASH,
    slippage_bps: Annotated[float, typer.Option(help="As `actorctl backtest`.")] = 0.0,
    volume_cap: Annotated[float | None, typer.Option(help="As `actorctl backtest`.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress, only the result.")] = False,
) -> None:
    """Run a backtest for every combination of the --param values (their cartesian product)
    on a Dask cluster, and write sweeps/<sweep-id>/ with results.parquet and sweep.html. The
    same config, parameters and data give the same sweep directory and results; --resume runs
    only what is missing there."""
    from app.sweep import grid, page, run

    settings = load_config(config)
    if metric not in METRIC_NAMES:
        fail(f"--metric: {metric!r} is not one of {', '.join(METRIC_NAMES)}")
    if workers is not None and not 1 <= workers <= 256:
        fail(f"--workers: must be between 1 and 256, got {workers}")
    if workers is not None and scheduler is not None:
        fail("--workers sizes the local cluster: not with --scheduler")
    if prices not in PRICES:
        fail(f"--prices: {prices!r} is not one of {', '.join(PRICES)}")
    for path in data or []:
        if not path.exists():
            fail(f"--data {path}: no such file or directory")
    try:
        params = [grid.parse_param(p) for p in param]
        combinations = grid.combinations(params)
        grid.check(settings, params)
    except grid.SweepError as exc:
        fail(str(exc))
    keys = [p.key for p in params]
    axes = keys[:2]
    if heatmap is not None:
        axes = [k.strip() for k in heatmap.split(",")]
        unknown = [k for k in axes if k not in keys]
        if len(axes) != 2 or unknown:
            fail(f"--heatmap {heatmap}: two of the swept keys ({', '.join(keys)}), comma-separated")
    items: list[run.Item] = []
    problems: dict[str, str] = {}
    for combination in combinations:
        ident = grid.combination_id(combination)
        try:
            text = grid.rendered(grid.apply(settings, combination))
        except grid.SweepError as exc:
            problems[ident] = str(exc)
            text = ""
        items.append(run.Item(ident=ident, combination=combination, config_text=text))
    if len(problems) == len(items):
        fail(next(iter(problems.values())))
    options = run.Options(
        data=tuple(str(p.resolve()) for p in data or []),
        interval=interval,
        prices=prices,
        cache=str(cache.resolve()) if cache is not None else None,
        start=start,
        end=end,
        days=days,
        seed=seed,
        cash=cash,
        slippage_bps=slippage_bps,
        volume_cap=volume_cap,
    )
    ident = _sweep_id(config, keys, combinations, options, settings)
    folder = out / ident
    if folder.exists() and not resume:
        fail(f"{folder} exists: --resume to continue it, or remove it")
    client, cluster = _client(scheduler, workers)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        rows: dict[str, dict[str, Any]] = {}
        for item in items:
            if item.ident in problems:
                rows[item.ident] = _failed(item, problems[item.ident])
            elif resume and (kept := run.done_row(folder, item.ident)) is not None:
                rows[item.ident] = kept
        todo = [i for i in items if i.ident not in rows]
        size = len(client.scheduler_info().get("workers", {})) or 1
        if not quiet:
            print(
                f"sweep {folder}: {len(items)} combinations of {grid.describe(params)}, "
                f"{len(items) - len(todo)} done already, {size} worker(s) at "
                f"{client.scheduler.address}",
                file=sys.stderr,
            )
        bar = None if quiet or not todo else Progress(len(todo), "backtests")
        try:
            for row in run.execute(
                client,
                folder,
                options,
                todo,
                workers=size,
                on_done=bar.update if bar is not None else None,
            ):
                rows[row["id"]] = row
        finally:
            if bar is not None:
                bar.close()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    ordered = [rows[item.ident] for item in items]
    run.write_results(folder, ordered, keys)
    page.write(
        folder, ordered, keys=keys, axes=axes, metric=metric, config=str(config or "the config")
    )
    failed = [r for r in ordered if r.get("error")]
    ran = [r for r in ordered if r.get(metric) is not None]
    best = max(ran, key=lambda r: float(r[metric]), default=None)
    line = f"{folder}: {len(ordered)} combinations, {len(failed)} failed"
    if best is not None:
        shown = ", ".join(f"{k}={best[k]}" for k in keys)
        line += f"; best {metric} {float(best[metric]):.4g} at {shown}"
    print(line)
    for row in failed:
        print(f"  failed {row['id']} ({', '.join(f'{k}={row[k]}' for k in keys)}): {row['error']}")


def _failed(item: Any, error: str) -> dict[str, Any]:
    return {"id": item.ident, **dict(item.combination), "run": None, "error": error}


def _sweep_id(
    config: Path | None, keys: list[str], combos: list[dict[str, str]], options: Any, settings: Any
) -> str:
    import attrs

    from config.load import render_config

    text = json.dumps(
        {
            "config": render_config(settings),
            "keys": keys,
            "combinations": combos,
            "options": attrs.asdict(options),
        },
        sort_keys=True,
    )
    name = (config.stem if config is not None else "default").replace(" ", "_")
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _client(scheduler: str | None, workers: int | None) -> tuple[Any, Any]:
    import logging
    import os

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler is not None:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            fail(f"--scheduler {scheduler}: cannot reach it ({exc})")
    cluster = LocalCluster(
        n_workers=workers or os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    return Client(cluster), cluster
