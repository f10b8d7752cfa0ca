"""``actorctl backtest``: the config's strategies on history, through the trading tree."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import cli
from ._common import ConfigOption, configure_logging, fail, load_config

if TYPE_CHECKING:
    from actors.domain import Bar

DEFAULT_DAYS = 5
DEFAULT_CASH = 100_000


@cli.command()
def backtest(
    config: ConfigOption = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            help="A bar file to replay (1-minute bar CSV); repeat for more. Default: generated "
            "minute bars for every traded symbol (--days, --seed)."
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First day replayed, YYYY-MM-DD (New York) [the data's]."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Last day replayed, YYYY-MM-DD (New York) [the data's]."),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Where the run directory is made (runs/<run-id>/).")
    ] = Path("runs"),
    days: Annotated[
        int, typer.Option(help=f"Days generated without --data, 1 to 1000 [{DEFAULT_DAYS}].")
    ] = DEFAULT_DAYS,
    seed: Annotated[int, typer.Option(help="Seed of the generated days.")] = 14,
    cash: Annotated[
        float, typer.Option(help=f"Starting cash of the portfolio [{DEFAULT_CASH:,}].")
    ] = DEFAULT_CASH,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress, only the result.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="The tree's log too (every lot, every order).")
    ] = False,
) -> None:
    """Run the config's strategies over history on the same actor tree as `actorctl start`
    (strategies, risk, the lot-keeper, the broker actor) against the in-process venue, as fast
    as it goes; write runs/<run-id>/ with the bars, orders, fills and equity as Parquet and a
    summary.json. The same data and config give the same files."""
    from decimal import Decimal

    from app import compose
    from app.backtest import artifacts
    from app.compose._service import risk_and_dry_run
    from config.errors import ConfigError
    from config.lotmap import load_lot_map
    from sim.replay import MAX_GENERATED_DAYS

    configure_logging()
    # A backtest's story is its artifacts: the tree's log (a line per lot) only on request.
    logging.getLogger("actortrade").setLevel(logging.INFO if verbose else logging.WARNING)
    settings = load_config(config)
    first, last = _day("--from", start), _day("--to", end)
    if first is not None and last is not None and first > last:
        fail(f"--from {first} is after --to {last}")
    if not 1 <= days <= MAX_GENERATED_DAYS:
        fail(f"--days: must be between 1 and {MAX_GENERATED_DAYS}, got {days}")
    if not cash > 0:
        fail(f"--cash: must be positive, got {cash}")
    try:
        lot_maps = {s.symbol: load_lot_map(s.lots) for s in settings.symbols if s.lots is not None}
    except ConfigError as exc:
        fail(str(exc))
    try:
        kinds = compose.strategy_kinds(settings)
    except compose.CompositionError as exc:
        fail(f"{config or 'the config'}: {exc}")
    bars = _bars(settings, data or [], first, last, days=days, seed=seed)
    inputs = [p for p in (config, *(s.lots for s in settings.symbols)) if p is not None]
    config_hash = _config_hash(inputs, data or [], first, last, days, seed, cash)
    started = time.time()
    from datetime import UTC, datetime

    ident = artifacts.run_id(datetime.fromtimestamp(started, UTC), config_hash)
    try:
        folder = artifacts.new_run_dir(out, ident)
    except (OSError, artifacts.RunDirectoryError) as exc:
        fail(f"--out {out}: {exc}")
    symbols = sorted({b.symbol for b in bars})
    if not quiet:
        print(
            f"backtest {folder.name}: {', '.join(symbols)}, {len(bars):,} bars "
            f"{bars[0].start:%Y-%m-%d} .. {bars[-1].start:%Y-%m-%d}",
            file=sys.stderr,
        )
    progress = None if quiet else _Progress(len(bars))
    try:
        recorded = _run(
            bars,
            lots=lot_maps,
            kinds=kinds,
            params=compose.grid_params(settings),
            risk=risk_and_dry_run(settings)["risk"],
            cash=Decimal(str(cash)),
            progress=progress.update if progress is not None else None,
        )
        if progress is not None:
            progress.close()
            progress = None
        wall = time.time() - started
        artifacts.write_tables(folder, bars, recorded)
        final = recorded.equity[-1].equity if recorded.equity else cash
        summary: dict[str, Any] = {
            "run": {
                "id": folder.name,
                "started": datetime.fromtimestamp(started, UTC).isoformat(),
                "wall_seconds": round(wall, 3),
                "bars_per_second": round(len(bars) / wall, 1) if wall > 0 else None,
            },
            "config": {
                "hash": config_hash,
                "files": {str(p): artifacts.digest([p]) for p in inputs},
                "cash": cash,
            },
            "data": {
                "files": {str(p): artifacts.digest([p]) for p in data or []},
                "generated": None if data else {"days": days, "seed": seed},
                "symbols": symbols,
                "bars": len(bars),
                "first": bars[0].start.isoformat(),
                "last": bars[-1].start.isoformat(),
            },
            "git": artifacts.git_state(Path(__file__).resolve().parents[2]),
            "versions": artifacts.versions(),
            "result": {
                "initial_cash": recorded.initial_cash,
                "final_equity": final,
                "total_return": final / recorded.initial_cash - 1,
                "orders": len(recorded.orders),
                "fills": len(recorded.fills),
                "traded_notional": recorded.traded_notional,
            },
        }
        artifacts.write_summary(folder, summary)
        config_text = _config_text(config)
        (folder / "config.toml").write_text(config_text)
        _figures_and_report(folder, config_text)
    except BaseException:
        # A run that did not finish (or could not be written) leaves no directory that looks
        # like a run.
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        if progress is not None:
            progress.close()
    print(_headline(folder, wall))


def _day(option: str, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option}: not a date (YYYY-MM-DD): {text!r}")


def _bars(
    settings: Any, data: list[Path], first: date | None, last: date | None, *, days: int, seed: int
) -> list[Bar]:
    from actors.domain.sessions import NEW_YORK
    from config.errors import ConfigError
    from sim.replay import ReplayError, generated_days, load_bars

    ticks = {s.symbol: s.tick for s in settings.symbols}
    try:
        if data:
            bars = sorted(
                (b for path in data for b in load_bars(path, ticks=ticks)),
                key=lambda b: (b.start, b.symbol),
            )
        else:
            bars = sorted(
                (
                    b
                    for s in settings.symbols
                    for b in generated_days(seed=seed, days=days, symbol=s.symbol)
                ),
                key=lambda b: (b.start, b.symbol),
            )
    except (ConfigError, ReplayError, OSError) as exc:
        fail(str(exc))
    kept = [
        b
        for b in bars
        if (first is None or b.start.astimezone(NEW_YORK).date() >= first)
        and (last is None or b.start.astimezone(NEW_YORK).date() <= last)
    ]
    if not kept:
        where = ", ".join(map(str, data)) if data else "the generated days"
        fail(f"{where}: no bars of {', '.join(sorted(ticks))} between --from and --to")
    return kept


def _config_hash(
    inputs: list[Path],
    data: list[Path],
    first: date | None,
    last: date | None,
    days: int,
    seed: int,
    cash: float,
) -> str:
    import hashlib

    from app.backtest import artifacts

    h = hashlib.sha256()
    for path in inputs:
        h.update(artifacts.digest([path]).encode())
    h.update(repr((first, last, cash)).encode())
    if not data:
        h.update(repr((days, seed)).encode())
    return h.hexdigest()


def _run(bars: list[Bar], *, cash: Any, progress: Callable[[int], None] | None, **tree: Any) -> Any:
    import tempfile

    from app.backtest.run import BacktestError, run

    with tempfile.TemporaryDirectory(prefix="actortrade-backtest-") as ledger:
        try:
            return run(
                bars=bars,
                ledger=Path(ledger),
                initial_cash=cash,
                progress=progress,
                **tree,
            )
        except BacktestError as exc:
            fail(str(exc))


class _Progress:
    """Bars done, bars/s and the time left: a bar in place on a terminal, a plain line every
    10 % otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.started = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.shown = -1
        self.bar: Any = None
        if self.tty:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(
                TextColumn("bars"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.task = self.bar.add_task("bars", total=total, rate="")
            self.bar.start()

    def update(self, done: int) -> None:
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=f"{rate:,.0f} bars/s")
            return
        tenth = done * 10 // max(self.total, 1)
        if tenth > self.shown:
            self.shown = tenth
            left = (self.total - done) / rate if rate > 0 else 0.0
            print(
                f"  {done:,}/{self.total:,} bars ({done / self.total:.0%}), {rate:,.0f} bars/s, "
                f"{left:,.0f} s left",
                file=sys.stderr,
                flush=True,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _config_text(config: Path | None) -> str:
    from config.load import DEFAULT_CONFIG

    return (config or DEFAULT_CONFIG).read_text()


def _figures_and_report(folder: Path, config_text: str) -> None:
    """The run's figures into summary.json (``metrics``, ``benchmark``) and report.html, both
    from the Parquet ledgers just written (as ``actorctl report`` reads them)."""
    import json

    import attrs

    from app.backtest import artifacts, report, results

    run = results.read_run(folder)
    found = results.figures(run)
    summary = dict(run.summary)
    summary["metrics"] = found.metrics.to_dict()
    summary["benchmark"] = (
        found.benchmark_metrics.to_dict() if found.benchmark_metrics is not None else None
    )
    artifacts.write_summary(folder, summary)
    run = attrs.evolve(run, summary=json.loads((folder / "summary.json").read_text()))
    report.write(results.report_view(run, found, config_text), folder / "report.html")


def _shown(value: object, how: str) -> str:
    if how == "int" and isinstance(value, int):
        return str(value)
    if not isinstance(value, float):
        return "n/a"
    return f"{value:+.2%}" if how == "pct" else f"{value:.2f}"


def _headline(folder: Path, wall: float | None = None) -> str:
    import json

    summary = json.loads((folder / "summary.json").read_text())
    m = summary.get("metrics") or {}
    result = summary["result"]

    def pct(key: str) -> str:
        value = m.get(key)
        return f"{value:+.2%}" if isinstance(value, float) else "n/a"

    def num(key: str) -> str:
        value = m.get(key)
        return f"{value:.2f}" if isinstance(value, float) else "n/a"

    took = f", {wall:.1f} s" if wall is not None else ""
    return (
        f"{folder}: equity {result['final_equity']:,.2f} (total {pct('total_return')}, CAGR "
        f"{pct('cagr')}, Sharpe {num('sharpe')}, max drawdown {pct('max_drawdown')}), "
        f"{result['orders']} orders, {result['fills']} fills, {m.get('trades', 0)} round trips"
        f"{took}"
    )


@cli.command()
def runs(
    out: Annotated[Path, typer.Option(help="Where the run directories are.")] = Path("runs"),
) -> None:
    """List the backtest runs in --out with their headline figures, oldest first."""
    import json

    if not out.is_dir():
        fail(f"--out {out}: no such directory (no backtest has written there)")
    found = 0
    for folder in sorted(p for p in out.iterdir() if (p / "summary.json").is_file()):
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except ValueError as exc:
            print(f"{folder.name}: unreadable summary.json ({exc})")
            continue
        data = summary.get("data", {})
        m = summary.get("metrics") or {}
        period = f"{str(data.get('first', ''))[:10]}..{str(data.get('last', ''))[:10]}"
        figures = "  ".join(
            f"{label} {_shown(m.get(key), how)}"
            for label, key, how in (
                ("return", "total_return", "pct"),
                ("CAGR", "cagr", "pct"),
                ("sharpe", "sharpe", "num"),
                ("maxdd", "max_drawdown", "pct"),
                ("trades", "trades", "int"),
            )
        )
        print(f"{folder.name}  {','.join(data.get('symbols', []))}  {period}  {figures}")
        found += 1
    if not found:
        print(f"no runs in {out}")


@cli.command()
def report(
    run: Annotated[str, typer.Argument(help="A run directory, or a run id under --out.")],
    out: Annotated[Path, typer.Option(help="Where the run directories are.")] = Path("runs"),
) -> None:
    """Render a run's report.html again from its Parquet ledgers and summary.json."""
    from app.backtest import results
    from app.backtest.metrics import CurveError

    folder = Path(run) if Path(run).is_dir() else out / run
    if not (folder / "summary.json").is_file():
        fail(f"{run}: not a run directory (no summary.json in {folder})")
    config = folder / "config.toml"
    try:
        data = results.read_run(folder)
        found = results.figures(data)
        text = config.read_text() if config.is_file() else ""
        from app.backtest import report as report_

        path = report_.write(results.report_view(data, found, text), folder / "report.html")
    except (results.RunError, CurveError, OSError) as exc:
        fail(f"{folder}: {exc}")
    print(path)
