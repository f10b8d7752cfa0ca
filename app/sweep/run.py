"""A sweep's backtests as Dask tasks, and what they found.

Each combination is one ``actorctl backtest`` (the same function, so its summary is the one a
run of it alone writes) in ``<sweep>/combos/<id>/``: its config as a file, its run directory,
and ``result.json`` (its parameters, headline metrics and run, or its error). A task runs a
batch of combinations in one worker; the data is read there from its path through the Parquet
cache (a shared path on a multi-machine cluster), never shipped with the task. The sweep's
results are ``results.parquet`` (one row per combination, in the grid's order) and
``sweep.html`` (``app.sweep.page``). A combination whose ``result.json`` holds no error is not
run again by ``--resume``; a failing one is recorded with its error and the others go on.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

METRICS = (
    "total_return",
    "cagr",
    "annual_volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "trades",
    "hit_rate",
    "profit_factor",
    "exposure",
    "turnover",
)
"""The headline metrics kept per combination (``app.backtest.metrics``)."""

TASK_SECONDS = 1.0
"""A task runs enough combinations to last about this long: Dask's own cost per task (some
milliseconds) stays small beside it."""


@attrs.frozen(kw_only=True)
class Options:
    """What every combination's backtest shares (``actorctl backtest``'s options)."""

    data: tuple[str, ...] = ()
    interval: str | None = None
    prices: str = "raw"
    cache: str | None = None
    start: str | None = None
    end: str | None = None
    days: int = 5
    seed: int = 14
    cash: float = 100_000.0
    slippage_bps: float = 0.0
    volume_cap: float | None = None


@attrs.frozen(kw_only=True)
class Item:
    """One combination to run: its id, values (as given) and config file's text."""

    ident: str
    combination: Mapping[str, str]
    config_text: str


def run_batch(folder: str, options: Options, items: Sequence[Item]) -> list[dict[str, Any]]:
    """Run ``items`` one after the other in this process (a Dask task); each row as
    ``result.json`` holds it, with ``seconds`` the run's wall time."""
    return [run_one(Path(folder), options, item) for item in items]


def run_one(folder: Path, options: Options, item: Item) -> dict[str, Any]:
    """One combination's backtest in ``folder/combos/<id>/``; its row (and ``result.json``)."""
    from app.cli.backtest import backtest

    home = folder / "combos" / item.ident
    shutil.rmtree(home, ignore_errors=True)  # a run that did not finish starts again
    home.mkdir(parents=True)
    config = home / "config.toml"
    config.write_text(item.config_text)
    runs = home / "runs"
    said = io.StringIO()
    started = time.perf_counter()
    error: str | None = None
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(said):
            backtest(
                config=config,
                data=[Path(p) for p in options.data] or None,
                interval=options.interval,
                prices=options.prices,
                cache=Path(options.cache) if options.cache else None,
                start=options.start,
                end=options.end,
                out=runs,
                days=options.days,
                seed=options.seed,
                cash=options.cash,
                slippage_bps=options.slippage_bps,
                volume_cap=options.volume_cap,
                symbol=None,
                quiet=True,
                verbose=False,
            )
    except Exception as exc:  # a combination's failure is its row's, not the sweep's
        error = said.getvalue().strip() or f"{type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    row: dict[str, Any] = {"id": item.ident, **dict(item.combination)}
    if error is None:
        (run,) = runs.iterdir()
        summary = json.loads((run / "summary.json").read_text())
        metrics = summary.get("metrics") or {}
        row.update({name: metrics.get(name) for name in METRICS})
        row.update(
            final_equity=summary["result"]["final_equity"],
            orders=summary["result"]["orders"],
            fills=summary["result"]["fills"],
            run=str(run.relative_to(folder)),
            error=None,
        )
    else:
        row.update({name: None for name in METRICS})
        row.update(final_equity=None, orders=None, fills=None, run=None, error=error)
    (home / "result.json").write_text(json.dumps(row, indent=1, sort_keys=True) + "\n")
    return {**row, "seconds": seconds}


def done_row(folder: Path, ident: str) -> dict[str, Any] | None:
    """A combination's recorded row, if it ran without error (``--resume`` keeps it)."""
    path = folder / "combos" / ident / "result.json"
    try:
        row: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return row if row.get("error") is None and row.get("run") else None


def execute(
    client: Any,
    folder: Path,
    options: Options,
    items: Sequence[Item],
    *,
    workers: int,
    on_done: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """Run ``items`` on the Dask ``client``: first one combination per worker, to time one,
    then the rest in batches lasting about ``TASK_SECONDS``; rows in ``items``' order."""
    from distributed import as_completed

    rows: dict[str, dict[str, Any]] = {}
    pending = list(items)
    first, pending = pending[: max(workers, 1)], pending[max(workers, 1) :]
    futures = [client.submit(run_batch, str(folder), options, [item], pure=False) for item in first]
    seconds: list[float] = []
    queue = as_completed(futures)
    for future in queue:
        for row in future.result():
            seconds.append(row.pop("seconds"))
            rows[row["id"]] = row
        if on_done is not None:
            on_done(len(rows))
        if pending:
            each = statistics.median(seconds) if seconds else TASK_SECONDS
            size = max(1, round(TASK_SECONDS / max(each, 1e-3)))
            # Never fewer tasks than workers while there is work for them all.
            size = min(size, max(1, math.ceil(len(pending) / max(workers, 1))))
            for start in range(0, len(pending), size):
                queue.add(
                    client.submit(
                        run_batch,
                        str(folder),
                        options,
                        pending[start : start + size],
                        pure=False,
                    )
                )
            pending = []
    return [rows[item.ident] for item in items]


def write_results(folder: Path, rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Path:
    """``results.parquet``: one row per combination, the parameters as given (text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, list[Any]] = {"id": [r["id"] for r in rows]}
    for key in keys:
        columns[key] = [str(r[key]) for r in rows]
    for name in (*METRICS, "final_equity"):
        columns[name] = [None if r.get(name) is None else float(r[name]) for r in rows]
    for name in ("orders", "fills"):
        columns[name] = [r.get(name) for r in rows]
    columns["run"] = [r.get("run") for r in rows]
    columns["error"] = [r.get("error") for r in rows]
    table = pa.table(
        {
            name: pa.array(
                values,
                type=pa.float64()
                if name in (*METRICS, "final_equity")
                else pa.int64()
                if name in ("orders", "fills")
                else pa.string(),
            )
            for name, values in columns.items()
        }
    )
    path = folder / "results.parquet"
    pq.write_table(table, path)
    return path
