"""What a run directory says: its round trips, its figures and its report, read back from the
Parquet ledgers (``artifacts.py``) so that ``actorctl backtest`` and ``actorctl report RUN``
compute them the same way.

**Round trips** pair each sell with the buys it closes, per symbol: first the buy of the same
lot when the two orderRefs name one (the grid's ``grid:SYM:L3:BUY:17:1`` and
``grid:SYM:L3:SELL:17:1``: strategy, symbol, tag and lot alike), then the oldest open buys
(FIFO). A round trip's P&L is net of both sides' commissions, each split over its shares.
Across a split (the run's ``corporate_actions``), the open buys are restated in the new shares
(quantity times the ratio, price and commission per share divided by it), so a lot bought
before a 2-for-1 split and sold after it is one round trip of twice the shares.

**Buy and hold** is measured on total-return closes: the closes before a split divided by its
ratio, and those before a dividend times ``1 - dividend / the close before the ex-date`` (the
dividend reinvested), so that it is comparable with a run that had its dividends paid.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from .metrics import Curve, Metrics, RoundTrip, buy_and_hold, compute

SIDES = ("BUY", "SELL")


class RunError(ValueError):
    """A run directory that is missing a file, or whose files do not read."""


@attrs.define
class _Open:
    key: str | None
    quantity: float
    price: float
    commission_per_share: float
    ts_ns: int


def lot_key(ref: str) -> str | None:
    """``strategy:symbol:tag:lot`` of an orderRef ``strategy:symbol:tag:SIDE:lot:attempt``
    (None for any other shape)."""
    parts = ref.split(":")
    if len(parts) == 6 and parts[3] in SIDES:
        return ":".join((*parts[:3], parts[4]))
    return None


def ex_date_ns(day: str) -> int:
    """The start (New York midnight) of an ISO ex-date, as UTC epoch ns."""
    from datetime import date, datetime, time

    from actors.domain import epoch_ns
    from actors.domain.sessions import NEW_YORK

    return epoch_ns(datetime.combine(date.fromisoformat(day), time(), tzinfo=NEW_YORK))


def splits_of(actions: Iterable[Mapping[str, Any]]) -> dict[str, list[tuple[int, float]]]:
    """Symbol -> its splits (ex-date start ns, ratio), in date order, of a run's
    ``corporate_actions``."""
    found: dict[str, list[tuple[int, float]]] = collections.defaultdict(list)
    for action in actions:
        if action["kind"] == "split":
            found[str(action["symbol"])].append(
                (ex_date_ns(str(action["ex_date"])), float(action["ratio"]))
            )
    for rows in found.values():
        rows.sort()
    return dict(found)


def round_trips(
    fills: Iterable[Mapping[str, Any]],
    splits: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> list[RoundTrip]:
    """The round trips of ``fills`` (in time order; long positions: a sell with no open buy
    left, a short, opens nothing); ``splits`` (``splits_of``) restate the open buys."""
    trips: list[RoundTrip] = []
    open_by_symbol: dict[str, list[_Open]] = collections.defaultdict(list)
    pending = {symbol: list(rows) for symbol, rows in (splits or {}).items()}
    for fill in fills:
        quantity = int(fill["quantity"])
        if quantity <= 0:
            continue
        symbol = str(fill["symbol"])
        due = pending.get(symbol)
        while due and due[0][0] <= int(fill["ts_ns"]):
            _, ratio = due.pop(0)
            for held in open_by_symbol[symbol]:
                held.quantity *= ratio
                held.price /= ratio
                held.commission_per_share /= ratio
        price = float(fill["price"])
        per_share = float(fill["commission"]) / quantity
        ts_ns = int(fill["ts_ns"])
        key = lot_key(str(fill["ref"]))
        lots = open_by_symbol[symbol]
        if fill["side"] == "BUY":
            lots.append(_Open(key, quantity, price, per_share, ts_ns))
            continue
        left: float = quantity
        order = sorted(range(len(lots)), key=lambda i: (key is None or lots[i].key != key, i))
        for i in order:
            if left == 0:
                break
            lot = lots[i]
            taken = min(left, lot.quantity)
            trips.append(
                RoundTrip(
                    symbol=symbol,
                    entry_ns=lot.ts_ns,
                    exit_ns=ts_ns,
                    quantity=taken,
                    entry_price=lot.price,
                    exit_price=price,
                    pnl=taken * (price - lot.price)
                    - taken * (lot.commission_per_share + per_share),
                )
            )
            lot.quantity -= taken
            left -= taken
        open_by_symbol[symbol] = [lot for lot in lots if lot.quantity > 1e-9]
    return trips


@attrs.frozen(kw_only=True)
class RunData:
    """A run directory read back."""

    folder: Path
    summary: dict[str, Any]
    bars: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    fills: list[dict[str, Any]]
    equity: list[dict[str, Any]]


def read_run(folder: Path) -> RunData:
    import pyarrow.parquet as pq

    tables: dict[str, list[dict[str, Any]]] = {}
    for name in ("bars", "orders", "fills", "equity"):
        path = folder / f"{name}.parquet"
        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:
            raise RunError(f"{path}: {exc}") from exc
        # Times as UTC epoch ns (ints), whatever pyarrow would make of them.
        columns = {
            column: (
                table[column].cast("int64").to_pylist()
                if str(table.schema.field(column).type).startswith("timestamp")
                else table[column].to_pylist()
            )
            for column in table.column_names
        }
        count = table.num_rows
        tables[name] = [{c: v[i] for c, v in columns.items()} for i in range(count)]
    path = folder / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: {exc}") from exc
    return RunData(folder=folder, summary=summary, **tables)


@attrs.frozen(kw_only=True)
class Figures:
    equity: Curve
    benchmark: Curve | None
    metrics: Metrics
    benchmark_metrics: Metrics | None
    prices: dict[str, Curve]
    trips: list[RoundTrip]


def bar_ends(bars: Sequence[Mapping[str, Any]], equity_ts: Sequence[int]) -> list[int]:
    """Each bar's end: the equity point of its close (one per distinct bar start, in order)."""
    starts = sorted({int(b["start"]) for b in bars})
    if len(starts) != len(equity_ts):
        raise RunError(
            f"{len(starts)} bar times but {len(equity_ts)} equity points: the run is incomplete"
        )
    return list(equity_ts)


def figures(run: RunData, *, risk_free: float = 0.0) -> Figures:
    """The run's metrics and buy-and-hold's beside them (on the symbols' closes)."""
    if not run.equity:
        raise RunError(f"{run.folder}: no equity point (no bar was replayed)")
    ts = [int(p["ts"]) for p in run.equity]
    equity = Curve(np.array(ts, dtype=np.int64), np.array([p["equity"] for p in run.equity]))
    ends = dict(
        zip(sorted({int(b["start"]) for b in run.bars}), bar_ends(run.bars, ts), strict=True)
    )
    closes: dict[str, tuple[list[int], list[float]]] = {}
    for bar in run.bars:
        times, values = closes.setdefault(str(bar["symbol"]), ([], []))
        times.append(ends[int(bar["start"])])
        values.append(float(bar["close"]))
    prices = {
        symbol: Curve(np.array(t, dtype=np.int64), np.array(v)) for symbol, (t, v) in closes.items()
    }
    actions = run.summary.get("data", {}).get("corporate_actions", [])
    fills = sorted(run.fills, key=lambda f: (int(f["ts"]), str(f["exec_id"])))
    trips = round_trips(({**f, "ts_ns": f["ts"]} for f in fills), splits_of(actions))
    notional = sum(float(f["quantity"]) * float(f["price"]) for f in fills)
    ours = compute(
        equity,
        trips,
        exposure=[bool(p["invested"]) for p in run.equity],
        traded_notional=notional,
        risk_free=risk_free,
    )
    initial = float(run.summary["result"]["initial_cash"])
    benchmark: Curve | None = None
    theirs: Metrics | None = None
    if all(np.all(c.value > 0) for c in prices.values()) and prices:
        benchmark = buy_and_hold(total_return(prices, actions), initial)
        theirs = compute(
            benchmark,
            [],
            exposure=np.ones(len(benchmark), dtype=np.bool_),
            traded_notional=initial,
            risk_free=risk_free,
        )
    return Figures(
        equity=equity,
        benchmark=benchmark,
        metrics=ours,
        benchmark_metrics=theirs,
        prices=prices,
        trips=trips,
    )


def total_return(
    prices: Mapping[str, Curve], actions: Iterable[Mapping[str, Any]]
) -> dict[str, Curve]:
    """The closes of ``prices`` adjusted for the run's splits and dividends (module doc)."""
    values = {symbol: np.array(c.value, dtype=np.float64) for symbol, c in prices.items()}
    for action in actions:
        symbol = str(action["symbol"])
        curve = prices.get(symbol)
        if curve is None:
            continue
        before = curve.ts_ns < ex_date_ns(str(action["ex_date"]))
        if not before.any():
            continue
        if action["kind"] == "split":
            values[symbol][before] /= float(action["ratio"])
        else:
            last_close = float(curve.value[np.flatnonzero(before)[-1]])
            values[symbol][before] *= 1.0 - float(action["amount_per_share"]) / last_close
    return {symbol: Curve(prices[symbol].ts_ns, v) for symbol, v in values.items()}


def report_view(run: RunData, found: Figures, config_text: str) -> Any:
    from .report import ReportView, SymbolPrices, TradeMarker

    markers: dict[str, list[TradeMarker]] = collections.defaultdict(list)
    for fill in run.fills:
        markers[str(fill["symbol"])].append(
            TradeMarker(
                ts_ns=int(fill["ts"]),
                side="BUY" if fill["side"] == "BUY" else "SELL",
                price=float(fill["price"]),
                quantity=float(fill["quantity"]),
            )
        )
    summary = run.summary
    symbols = ", ".join(sorted(found.prices))
    return ReportView(
        title=f"Backtest of {symbols}",
        run_id=str(summary["run"]["id"]),
        metrics=found.metrics,
        benchmark_metrics=found.benchmark_metrics,
        equity=found.equity,
        benchmark=found.benchmark,
        symbols=[
            SymbolPrices(symbol=s, prices=found.prices[s], fills=markers.get(s, []))
            for s in sorted(found.prices)
        ],
        orders=[_shown(o) for o in run.orders],
        fills=[_shown(f) for f in run.fills],
        config_text=config_text,
        provenance={
            "git": summary.get("git"),
            "config": summary.get("config"),
            "data": summary.get("data"),
            "versions": summary.get("versions"),
        },
    )


def _shown(row: Mapping[str, Any]) -> dict[str, object]:
    from datetime import UTC, datetime

    shown: dict[str, object] = {}
    for key, value in row.items():
        if key in ("ts", "accepted", "ended") and isinstance(value, int):
            value = datetime.fromtimestamp(value / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        shown[key] = value
    return shown
