"""``actorctl backtest``: the config's strategies on history, through the trading tree."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Callable, Sequence
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
PRICES = ("raw", "split-adjusted")


@cli.command()
def backtest(
    config: ConfigOption = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            help="History to replay, repeat for more: a 1-minute bar CSV, a Yahoo daily CSV, a "
            "LEAN equity file (daily/SYM.zip, hour/SYM.zip, minute/SYM/), a LEAN root with "
            "--interval, or a .parquet file `actorctl data fetch` wrote (docs/data.md). "
            "Default: generated minute bars (--days, --seed)."
        ),
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(help="The bars' interval, 1min, 1h or 1d [what the --data path holds]."),
    ] = None,
    prices: Annotated[
        str,
        typer.Option(
            help="raw: as traded, with the splits and dividends of LEAN's factor files applied "
            "at their ex-dates (positions, lots and orders rescaled, dividends paid); "
            "split-adjusted: LEAN's prices times its split factors, dividends not paid [raw]."
        ),
    ] = "raw",
    cache: Annotated[
        Path | None,
        typer.Option(help="The Parquet cache of parsed data [$XDG_CACHE_HOME/actortrade/bars]."),
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
    slippage_bps: Annotated[
        float,
        typer.Option(
            help="Slippage of market orders in basis points, 0 to 1000: a buy fills that much "
            "above the trade's price, a sell below (limit orders fill at it) [0]."
        ),
    ] = 0.0,
    volume_cap: Annotated[
        float | None,
        typer.Option(
            help="The percent of each trade's size the strategies' orders may take together, "
            "above 0 and at most 100: bigger orders fill over several trades [no cap]."
        ),
    ] = None,
    symbol: Annotated[
        str | None,
        typer.Option(help="Trade this symbol with the config's (only) strategy [the config's]."),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", help="No progress and no warnings, only the result.")
    ] = False,
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
    logging.getLogger("actortrade").setLevel(
        logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING
    )
    settings = load_config(config)
    if symbol is not None:
        settings = _with_symbol(settings, symbol, config)
    first, last = _day("--from", start), _day("--to", end)
    if first is not None and last is not None and first > last:
        fail(f"--from {first} is after --to {last}")
    if not 1 <= days <= MAX_GENERATED_DAYS:
        fail(f"--days: must be between 1 and {MAX_GENERATED_DAYS}, got {days}")
    if not cash > 0:
        fail(f"--cash: must be positive, got {cash}")
    if not 0 <= slippage_bps <= 1000:
        fail(f"--slippage-bps: must be between 0 and 1000, got {slippage_bps:g}")
    if volume_cap is not None and not 0 < volume_cap <= 100:
        fail(f"--volume-cap: must be above 0 and at most 100 (percent), got {volume_cap:g}")
    try:
        lot_maps = {s.symbol: load_lot_map(s.lots) for s in settings.symbols if s.lots is not None}
    except ConfigError as exc:
        fail(str(exc))
    try:
        kinds = compose.strategy_kinds(settings)
    except compose.CompositionError as exc:
        fail(f"{config or 'the config'}: {exc}")
    if prices not in PRICES:
        fail(f"--prices: {prices!r} is not one of {', '.join(PRICES)}")
    if interval is not None and interval not in ("1min", "1h", "1d"):
        fail(f"--interval: {interval!r} is not one of 1min, 1h, 1d")
    actions: list[Any] = []
    listed = _listed_actions(settings, config)
    if data:
        bars, notes, actions = _history(
            settings,
            data,
            first,
            last,
            interval=interval,
            prices=prices,
            cache=cache,
            listed=listed,
        )
    else:
        bars, notes = _bars(settings, [], first, last, days=days, seed=seed), []
    inputs = [p for p in (config, *(s.lots for s in settings.symbols)) if p is not None]
    costs = {"slippage_bps": slippage_bps, "volume_cap_pct": volume_cap}
    config_hash = _config_hash(inputs, data or [], first, last, days, seed, cash, prices, costs)
    started = time.time()
    from datetime import UTC, datetime

    import attrs

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
    progress = None if quiet else Progress(len(bars))
    try:
        recorded = _run(
            bars,
            lots=lot_maps,
            kinds=kinds,
            params=compose.grid_params(settings),
            risk=risk_and_dry_run(settings)["risk"],
            cash=Decimal(str(cash)),
            progress=progress.update if progress is not None else None,
            actions=actions,
            slippage_bps=Decimal(str(slippage_bps)),
            participation=None if volume_cap is None else Decimal(str(volume_cap)) / 100,
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
                **costs,
            },
            "data": {
                "files": {str(p): _digest_of(p) for p in data or []},
                "generated": None if data else {"days": days, "seed": seed},
                "prices": prices if data else "generated",
                "notes": notes,
                "corporate_actions": [_action_row(a) for a in actions],
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
                "dividends": sum(d.cash for d in recorded.dividends),
                "dividends_paid": [attrs.asdict(d) for d in recorded.dividends],
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
    prices: str,
    costs: dict[str, float | None],
) -> str:
    import hashlib

    from app.backtest import artifacts

    h = hashlib.sha256()
    for path in inputs:
        h.update(artifacts.digest([path]).encode())
    h.update(repr((first, last, cash)).encode())
    for path in data:
        h.update(_digest_of(path).encode())
    h.update(prices.encode())
    h.update(repr(sorted(costs.items())).encode())
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


class Progress:
    """Done of ``total`` (``unit``: bars, backtests), the rate and the time left: a bar in
    place on a terminal, a plain line every 10 % otherwise."""

    def __init__(self, total: int, unit: str = "bars") -> None:
        self.total = total
        self.unit = unit
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
                TextColumn(unit),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.task = self.bar.add_task(unit, total=total, rate="")
            self.bar.start()

    def update(self, done: int) -> None:
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        shown_rate = f"{rate:,.0f}" if rate >= 10 else f"{rate:,.2f}"
        if self.bar is not None:
            self.bar.update(self.task, completed=done, rate=f"{shown_rate} {self.unit}/s")
            return
        tenth = done * 10 // max(self.total, 1)
        if tenth > self.shown:
            self.shown = tenth
            left = (self.total - done) / rate if rate > 0 else 0.0
            print(
                f"  {done:,}/{self.total:,} {self.unit} ({done / max(self.total, 1):.0%}), "
                f"{shown_rate} {self.unit}/s, {left:,.0f} s left",
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


def _digest_of(path: Path) -> str:
    """SHA-256 of a data file, or of a folder's listing of its files' digests (LEAN minutes)."""
    from sim.data import source_digest

    return source_digest(path)


def _interval_of(path: Path) -> str | None:
    """What a data path holds, by its shape (docs/data.md, *Which loader*), or None."""
    by_folder = {"daily": "1d", "hour": "1h", "minute": "1min"}
    if path.parent.name in by_folder and path.suffix == ".zip":
        return by_folder[path.parent.name]
    if path.is_dir() and path.parent.name == "minute":
        return "1min"
    if path.suffix.lower() == ".csv" and path.is_file():
        with path.open("rb") as file:
            head = file.readline(200).decode("utf-8", "replace").strip().lower()
        if head.startswith("datetime,symbol"):
            return "1min"
        if head.startswith("date,"):
            return "1d"
    return None


def _is_yahoo(path: Path) -> bool:
    """A daily CSV of Yahoo's shape (``date,open,...``): split-adjusted prices."""
    return path.suffix.lower() == ".csv" and _interval_of(path) == "1d"


def _lean_root(path: Path) -> Path | None:
    """The LEAN root a LEAN data path lies in (the folder holding daily/, hour/, minute/)."""
    for parent in (path, *path.parents):
        if (parent / "factor_files").is_dir():
            return parent
    return None


def _history(
    settings: Any,
    data: list[Path],
    first: date | None,
    last: date | None,
    *,
    interval: str | None,
    prices: str,
    cache: Path | None,
    listed: Sequence[Any] = (),
) -> tuple[list[Bar], list[str], list[Any]]:
    """The traded symbols' bars from ``data`` through the Parquet cache, what to know about
    them (rows dropped, the prices used), and the corporate actions to apply (on raw prices:
    the splits and dividends of LEAN's factor files and of ``listed``, the config's, in the
    period)."""
    import os
    import warnings

    from actors.domain.sessions import NEW_YORK
    from sim.data import (
        BarCache,
        CacheWarning,
        DataError,
        Dividend,
        Split,
        actions_from_factors,
        as_traded,
        load_factor_file,
    )

    root = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
        "actortrade/bars"
    )
    store = BarCache(root)
    symbols = [s.symbol for s in settings.symbols]
    bars: list[Bar] = []
    notes: list[str] = []
    actions: list[Any] = []
    found: set[str] = set()
    for path in data:
        if not path.exists():
            fail(f"--data {path}: no such file or folder")
        if path.suffix == ".parquet":  # a table `actorctl data fetch` wrote (docs/data.md)
            from app.data.fetch import read_fetched

            try:
                fetched = read_fetched(path)
            except DataError as exc:
                fail(str(exc))
            if interval is not None and fetched.interval != interval:
                fail(f"--data {path}: holds {fetched.interval} bars, not --interval {interval}")
            if fetched.symbol in symbols:
                found.add(fetched.symbol)
                bars += _in_period(fetched, first, last)
            continue
        held = interval or _interval_of(path)
        if held is None:
            fail(f"--data {path}: cannot tell its interval from its shape: give --interval")
        for symbol in symbols:
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", CacheWarning)
                    table = store.load(path, symbol, held)
            except DataError as exc:
                if f"no {symbol!r} bars" in str(exc) or f"no '{symbol}' bars" in str(exc):
                    continue
                fail(str(exc))
            except OSError as exc:
                fail(f"--data {path}: {exc}")
            notes += [str(w.message) for w in caught]
            notes += list(table.dropped)
            lean = _lean_root(path)
            factor_file = lean / "factor_files" / f"{symbol.lower()}.csv" if lean else None
            factors = None
            if factor_file is not None and factor_file.is_file():
                factors = load_factor_file(factor_file, symbol)
            elif prices == "split-adjusted" and not _is_yahoo(path):
                fail(
                    f"--data {path}: --prices split-adjusted needs a LEAN factor file for {symbol}"
                )
            own = [a for a in listed if a.symbol == symbol]
            own_splits = [a for a in own if isinstance(a, Split)]
            if _is_yahoo(path) and prices == "raw" and own_splits:
                # Yahoo's prices are adjusted for every split up to its download: back to as
                # traded with the listed ones (those after the period too).
                table = as_traded(table, own_splits)
                notes.append(f"{symbol}: {path.name} back to as-traded prices by the listed splits")
            period = _in_period(table, first, last)
            events: list[Any] = []
            if period:
                events = actions_from_factors(factors, table) if factors is not None else []
                known = {e.id for e in events}
                events += [a for a in own if a.id not in known]
                # Within the period: after its first bar (whose prices already are the
                # split's) and on or before its last.
                opened = period[0].start.astimezone(NEW_YORK).date()
                closed = period[-1].start.astimezone(NEW_YORK).date()
                events = [e for e in events if opened < e.ex_date <= closed]
            splits = [e for e in events if isinstance(e, Split)]
            dividends = [e for e in events if isinstance(e, Dividend)]
            if prices == "split-adjusted":
                if factors is not None:
                    table = factors.split_adjusted(table)
                    notes.append(f"{symbol}: split-adjusted prices ({factor_file})")
                if dividends:
                    notes.append(
                        f"{symbol}: {len(dividends)} dividends in the period are not paid "
                        "(on split-adjusted prices; run on --prices raw to have them paid)"
                    )
            else:
                actions += events
                if splits or dividends:
                    shown = ", ".join(f"{e.ex_date} {e.ratio}:1" for e in splits)
                    notes.append(
                        f"{symbol}: {len(splits)} splits ({shown or 'none'}) and "
                        f"{len(dividends)} dividends applied at their ex-dates"
                    )
                elif _is_yahoo(path) and not own_splits:
                    notes.append(
                        f"{symbol}: {path.name} is Yahoo's shape, whose prices are split-adjusted "
                        "as of its download: list the splits in [[corporate_actions]] to trade "
                        "them as traded"
                    )
            found.add(symbol)
            bars += _in_period(table, first, last)
    missing = [s for s in symbols if s not in found]
    if missing:
        fail(f"--data: no bars of {', '.join(missing)} in {', '.join(map(str, data))}")
    bars.sort(key=lambda b: (b.start, b.symbol))
    if not bars:
        fail(
            f"{', '.join(map(str, data))}: no bars of {', '.join(symbols)} between --from and --to"
        )
    return bars, notes, actions


def _listed_actions(settings: Any, config: Path | None) -> list[Any]:
    """The config's ``[[corporate_actions]]`` as splits and dividends."""
    from sim.data import DataError
    from sim.data.actions import actions_from_list

    rows = [
        {k: v for k, v in attrs_dict.items() if v is not None}
        for attrs_dict in (
            {"symbol": a.symbol, "date": a.date, "split": a.split, "dividend": a.dividend}
            for a in settings.corporate_actions
        )
    ]
    try:
        return actions_from_list(rows, source=str(config), where="corporate_actions")
    except DataError as exc:
        fail(str(exc))


def _action_row(action: Any) -> dict[str, Any]:
    from actors.domain import Split

    row: dict[str, Any] = {
        "symbol": action.symbol,
        "ex_date": action.ex_date.isoformat(),
        "kind": "split" if isinstance(action, Split) else "dividend",
    }
    if isinstance(action, Split):
        row["ratio"] = str(action.ratio)
    else:
        row["amount_per_share"] = str(action.amount_per_share)
    return row


def _in_period(table: Any, first: date | None, last: date | None) -> list[Bar]:
    from actors.domain.sessions import NEW_YORK

    return [
        b
        for b in table.to_bars()
        if (first is None or b.start.astimezone(NEW_YORK).date() >= first)
        and (last is None or b.start.astimezone(NEW_YORK).date() <= last)
    ]


def _with_symbol(settings: Any, symbol: str, config: Path | None) -> Any:
    """The config with its one symbol table trading ``symbol`` instead (as `start --symbol`)."""
    import attrs

    from config.errors import ConfigError
    from config.options import override

    if len(settings.symbols) != 1:
        fail(
            f"--symbol: {config or 'the config'} trades {len(settings.symbols)} symbols; "
            "--symbol replaces the symbol of a config that trades one"
        )
    try:
        table = override(settings.symbols[0], {"symbol": ("--symbol", symbol)})
    except ConfigError as exc:
        fail(str(exc))
    return attrs.evolve(settings, symbols=(table,))
