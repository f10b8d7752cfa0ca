"""Backtest speed: `actorctl backtest`'s engine against backtrader on the same 1-minute bars.

    bars (seeded, sim.replay.generated_days: 04:00-20:00 New York, one symbol)
      -> ours:       app.backtest.run.drive (the trading tree in lockstep on a virtual
                     clock: symbol actor, risk, lot-keeper on LMDB, broker actor, the
                     in-process venue)
      -> backtrader: cerebro.run() over a bt.feeds.PandasData of the same bars

The strategy is ours' ma_cross (actors/strategies/ma_cross.py) on 1-minute bars, fast 10, slow
30, long-only, and the same rules written for backtrader (``SmaCross``): the sums of the last
10 and 30 closes compared exactly (in cents, as ours compares ``sum_fast * slow`` with
``sum_slow * fast``: a tie is a tie), a cross up (fast > slow on this bar, not on the previous
one) buys floor(10,000 / close) shares when flat, a cross down sells every share, market
orders, IBKR fixed commissions ($0.005 a share, at least $1, at most 1 % of the value),
$100,000 of cash. Ours runs config/examples/ma_cross.toml's crossover with two changes, so that
both engines fill every order at the next bar's open: ``order_type = "market"`` (the example's
limit 10 bps through the close misses on a jump, and is then retried) and ``tif = "GTC"``: a
DAY order decided on a day's last bar (19:59) is stamped with that day and expires at the next
day's first trade before it can fill, and its retry waits ``retry_delay`` (market seconds on
``drive``'s virtual clock): the two engines would part there.

The bar closes in ours before the venue matches the next bar's first trade
(actors/replay_feed.py), so ours fills at the next bar's open like backtrader: the cross-check
compares every fill (minute, side, shares, price) and the final equity, which differ by a cent
or so of float rounding (backtrader sums floats, ours Decimals rounded to the cent).

Rates are bars / wall time of ``drive`` (the tree's start and stop included, the bars built
before) and of ``cerebro.run()`` (the DataFrame built before; backtrader's own preload of it is
in). Rows: both rates, ours / backtrader as a same-run ratio (target >= 1.0, stretch 2.0), ours'
absolute rate (SPEC 15: >= 40,000 bars/s per core; LEAN flags runs below it as slow), and the
grid (config/examples/grid.toml) through ``drive`` on the same bars; the cross-check is in the
rows' notes and in a count row (the suite's table prints the notes of count rows only).

    python bench/backtest_speed.py [--rounds 3] [--bars 100000] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from common import Row, Target, interleave, rate_row, render, write_rows

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples"
GROUP = "backtest"
SEED = 14
SYMBOL = "TQQQ"
BARS = 100_000
QUICK_BARS = 5_000
FAST, SLOW = 10, 30
NOTIONAL = 10_000
CASH = 100_000
TARGET_VS_BACKTRADER = 1.0
STRETCH_VS_BACKTRADER = 2.0
TARGET_RATE = 40_000.0
"""SPEC 15: bars/s per core (LEAN flags a run below it as slow)."""

MA_CROSS = f"""
[[symbols]]
symbol = "{SYMBOL}"
strategy = "ma_cross"

[symbols.ma_cross]
bar = "1min"
sessions = "extended"
fast = {FAST}
slow = {SLOW}
target_notional = "{NOTIONAL}"
order_type = "market"
tif = "GTC"
tick = "0.01"
"""
"""config/examples/ma_cross.toml's crossover, market orders and GTC (the module doc says why)."""


Fill = tuple[int, str, int, float]
"""One execution for the cross-check: the minute it filled in (UTC epoch s), side, shares,
price."""


@attrs.frozen(kw_only=True)
class Outcome:
    """What one engine did on the bars: its time, and the cross-check's figures."""

    seconds: float
    bars: int
    round_trips: int
    final_equity: float
    fills: tuple[Fill, ...]

    @property
    def rate(self) -> float:
        return self.bars / self.seconds


def make_bars(count: int, seed: int = SEED) -> list[Any]:
    """``count`` generated 1-minute bars (whole days of 960 bars, the last one cut)."""
    from sim.replay import generated_days

    days = -(-count // 960)
    return generated_days(seed=seed, days=days, symbol=SYMBOL)[:count]


# -- ours ---------------------------------------------------------------------------------------


def tree_of(settings: Any) -> dict[str, Any]:
    """What ``actorctl backtest`` hands ``drive`` from a config (app/cli/backtest.py)."""
    from app import compose
    from app.compose._service import risk_and_dry_run
    from config.lotmap import load_lot_map

    return {
        "lots": {s.symbol: load_lot_map(s.lots) for s in settings.symbols if s.lots is not None},
        "kinds": compose.strategy_kinds(settings),
        "params": compose.grid_params(settings),
        "risk": risk_and_dry_run(settings)["risk"],
    }


def ma_cross_tree() -> dict[str, Any]:
    from config.load import parse_config

    return tree_of(parse_config(MA_CROSS, source="<bench ma_cross>", base_dir=EXAMPLES))


def grid_tree() -> dict[str, Any]:
    from config.load import load_config

    return tree_of(load_config(EXAMPLES / "grid.toml"))


def run_ours(bars: Sequence[Any], tree: dict[str, Any]) -> Outcome:
    import anyio

    from app.backtest.run import drive

    with tempfile.TemporaryDirectory(prefix="actortrade-bench-backtest-") as ledger:
        started = time.perf_counter()
        recorded = anyio.run(
            lambda: drive(bars=bars, ledger=Path(ledger), initial_cash=Decimal(CASH), **tree),
            backend="asyncio",
            backend_options={"use_uvloop": True},
        )
        seconds = time.perf_counter() - started
    fills = tuple(
        (f.ts_ns // 60_000_000_000 * 60, f.side, f.quantity, f.price) for f in recorded.fills
    )
    final = recorded.equity[-1].equity if recorded.equity else float(CASH)
    return Outcome(
        seconds=seconds,
        bars=len(bars),
        round_trips=round_trips(fills),
        final_equity=final,
        fills=fills,
    )


def round_trips(fills: Sequence[Fill]) -> int:
    """Times the position went from long back to flat."""
    held, trips = 0, 0
    for _, side, quantity, _ in fills:
        before = held
        held += quantity if side == "BUY" else -quantity
        trips += before > 0 and held == 0
    return trips


# -- backtrader ---------------------------------------------------------------------------------


def frame(bars: Sequence[Any]) -> Any:
    """The bars as the DataFrame ``bt.feeds.PandasData`` reads (naive UTC index, floats)."""
    import pandas as pd

    return pd.DataFrame(
        {
            "open": [float(b.open) for b in bars],
            "high": [float(b.high) for b in bars],
            "low": [float(b.low) for b in bars],
            "close": [float(b.close) for b in bars],
            "volume": [float(b.volume) for b in bars],
        },
        index=pd.DatetimeIndex([b.start.replace(tzinfo=None) for b in bars], name="datetime"),
    )


def run_backtrader(data: Any) -> Outcome:
    import backtrader as bt

    class IBFixed(bt.CommInfoBase):
        # sim.engine.commission_owed: $0.005 a share, at least $1.00, at most 1 % of the value.
        params = (("stocklike", True), ("commtype", bt.CommInfoBase.COMM_FIXED))

        def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
            shares = abs(size)
            return min(max(0.005 * shares, 1.0), 0.01 * shares * price)

    class SmaCross(bt.Strategy):
        # ma_cross's rules (the module doc): the sums of closes compared exactly, in cents.
        def __init__(self) -> None:
            self.fast = bt.ind.SMA(self.data.close, period=FAST)
            self.slow = bt.ind.SMA(self.data.close, period=SLOW)
            self.above: bool | None = None
            self.fills: list[Fill] = []

        def next(self) -> None:
            sum_fast = round(self.fast[0] * FAST * 100)
            sum_slow = round(self.slow[0] * SLOW * 100)
            previous, self.above = self.above, sum_fast * SLOW > sum_slow * FAST
            if previous is None or previous == self.above:
                return
            if self.above:
                if not self.position:
                    size = int(NOTIONAL // self.data.close[0])
                    if size >= 1:
                        self.buy(size=size)
            elif self.position:
                self.close()

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                done = order.executed
                at = bt.num2date(done.dt).replace(tzinfo=UTC)
                side = "BUY" if order.isbuy() else "SELL"
                self.fills.append((int(at.timestamp()), side, abs(done.size), done.price))

    cerebro = bt.Cerebro(stdstats=False)  # preload and runonce: its fastest way
    cerebro.adddata(bt.feeds.PandasData(dataname=data))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(CASH)
    cerebro.broker.addcommissioninfo(IBFixed())
    started = time.perf_counter()
    (strategy,) = cerebro.run()
    seconds = time.perf_counter() - started
    fills = tuple(strategy.fills)
    return Outcome(
        seconds=seconds,
        bars=len(data),
        round_trips=round_trips(fills),
        final_equity=cerebro.broker.getvalue(),
        fills=fills,
    )


def agreement(ours: Sequence[Fill], theirs: Sequence[Fill]) -> str:
    """How far the two engines' executions agree: all of them, or the first that differs."""
    same = 0
    for mine, other in zip(ours, theirs, strict=False):
        if mine[:3] != other[:3] or abs(mine[3] - other[3]) > 1e-6:
            break
        same += 1
    if same == len(ours) == len(theirs):
        return f"all {same} fills identical (minute, side, shares, price)"
    at = min(len(ours), len(theirs))
    where = (
        f"then ours {ours[same] if same < len(ours) else '-'} vs backtrader "
        f"{theirs[same] if same < len(theirs) else '-'}"
        if same < at or len(ours) != len(theirs)
        else ""
    )
    return f"first {same} fills identical of {len(ours)} / {len(theirs)}, {where}"


# -- the group ----------------------------------------------------------------------------------


def suite_rows(
    *, rounds: int, quick: bool, log: Callable[[str], None] = print, bars: int | None = None
) -> list[Row]:
    count = bars if bars is not None else (QUICK_BARS if quick else BARS)
    series = make_bars(count)
    data = frame(series)
    ma_cross, grid = ma_cross_tree(), grid_tree()
    results = interleave(
        {
            "backtrader": lambda: run_backtrader(data),
            "ours": lambda: run_ours(series, ma_cross),
            "grid": lambda: run_ours(series, grid),
        },
        rounds,
        on_run=log,
    )
    rates = {name: [o.rate for o in outcomes] for name, outcomes in results.items()}
    theirs, ours, grid_run = (results[k][-1] for k in ("backtrader", "ours", "grid"))
    bars_of = f"{count:,} 1-min bars"
    gap = round(ours.final_equity - theirs.final_equity, 2) or 0.0  # no -0.00
    # A ratio is named after its baseline row, as in every group of the suite.
    backtrader = f"backtrader 1.9.78 SMA-cross 10/30, {bars_of}"
    ours_name = f"ours ma_cross 10/30 (drive), {bars_of}"
    return [
        rate_row(
            GROUP,
            backtrader,
            rates["backtrader"],
            note=(
                f"bars/s of cerebro.run() (PandasData, preload, runonce); "
                f"{theirs.round_trips} round trips, final equity {theirs.final_equity:,.2f}"
            ),
        ),
        rate_row(
            GROUP,
            ours_name,
            rates["ours"],
            baselines={backtrader: rates["backtrader"]},
            targets=[
                Target(on="ratio", op=">=", limit=TARGET_VS_BACKTRADER, baseline=backtrader),
                Target(on="value", op=">=", limit=TARGET_RATE),
            ],
            note=(
                f"bars/s of drive (stretch {STRETCH_VS_BACKTRADER:g}x backtrader); "
                f"{ours.round_trips} round trips, final equity {ours.final_equity:,.2f} "
                f"({gap:+,.2f} vs backtrader); {agreement(ours.fills, theirs.fills)}"
            ),
        ),
        rate_row(
            GROUP,
            f"ours grid, config/examples/grid.toml (drive), {bars_of}",
            rates["grid"],
            baselines={ours_name: rates["ours"]},
            note=(
                f"bars/s of drive; {grid_run.round_trips} round trips, "
                f"{len(grid_run.fills)} fills, final equity {grid_run.final_equity:,.2f}"
            ),
        ),
        # The suite's table prints the notes of count rows only: the cross-check shows there.
        Row(
            group=GROUP,
            name="cross-check: ma_cross round trips, ours (same bars)",
            unit="count",
            value=float(ours.round_trips),
            rounds=1,
            samples=1,
            note=(
                f"backtrader {theirs.round_trips}; final equity ours {ours.final_equity:,.2f}, "
                f"backtrader {theirs.final_equity:,.2f} ({gap:+,.2f}); "
                f"{agreement(ours.fills, theirs.fills)}"
            ),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BARS:,} bars")
    parser.add_argument(
        "--bars", type=int, help=f"bars replayed [{BARS:,}; with --quick {QUICK_BARS:,}]"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.bars is not None and not 100 <= args.bars <= 960 * 1000:
        parser.error("--bars must be between 100 and 960,000 (1,000 generated days)")
    rows = suite_rows(rounds=args.rounds, quick=args.quick, log=lambda _line: None, bars=args.bars)
    print(render(rows))
    for row in rows:
        if row.unit == "/s":  # render prints the other rows' notes
            print(f"{row.name}: {row.note}")
    if args.json:
        write_rows(args.json, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
