"""A backtest: the trading tree of ``actorctl start`` on a replay of history, recorded.

The tree is ``app.compose.sim_trading``'s, the one ``actorctl start --broker inprocess`` runs:
the strategies in their symbol actors, the risk actor, the lot-keeper on a real (throwaway)
LMDB ledger, the broker actor, the in-process venue. It runs on a virtual clock
(``runtime.VirtualClock``) that the replay moves to each trade's time, in lockstep (each trade
waits until everything it caused, and every timer due before it, has been handled), as fast as
the tree goes: the outcome depends on the bars and the config only, never on the machine's
speed (a strategy's fill timeout counts market seconds, not the machine's).

``Recorder`` watches the venue (``sim.engine.Engine``) beside the tree and keeps what a report
needs: every order with the venue time it was accepted and how it ended, every execution, and
the portfolio at every bar's close: cash (the starting cash, minus what was bought, plus what
was sold, minus commissions, plus the dividends paid), the positions' value at the last trade
and their sum, the equity. Executions are kept as traded (a later split restates the venue's
and the ledger's, not the record); orders as they ended (one working across a split, in the
new shares).

**Corporate actions** (``actions``): the replay applies each at the start of its ex-date, to the
venue and then to the symbol actors (``actors.replay_feed``): a split rescales the position,
the ledger's facts and the working orders, a dividend is paid into the cash.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import gc
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs

from actors.domain import (
    MULTIPLIER,
    Bar,
    CorporateAction,
    OrderAccepted,
    OrderCancelled,
    OrderRejected,
    Side,
    epoch_ns,
)
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.replay import STEP

GC_YOUNG = 50_000
"""A backtest's threshold of the garbage collector's youngest generation (``batch_collection``)."""
MAX_PAUSE = 300.0
"""The longest virtual wait between two trades: a night or a weekend is a jump of the venue's
clock, not hours of timers."""
TIMER_INTERVAL = 15.0
"""The symbol actors' timer on virtual time (1 s in production): what drives fill timeouts and
retries between the replay's trades. The venue only moves at a trade (a bar's four are 15 s
apart), so a timer between two trades acts as one just before the second would: 15 s keeps
every timeout within one trade of its time, at a third of the wake-ups of the chaos harness's
5 s."""
RECONCILE_INTERVAL = 7 * 86_400.0
"""Virtual seconds between periodic reconciliations (a virtual day is about a trading day and a
half: nights count ``MAX_PAUSE``). The venue and the ledger never disagree in a backtest, and a
reconciliation reads the symbol's whole ledger (its cost grows with the run): once a virtual
week keeps the path exercised without making a long run quadratic (once a day cost a fifth of
a 60-day minute run)."""
CLOSE_OFFSET = STEP * 3
"""A bar's close is its fourth trade, 45 s after its start (``sim.replay.bar_trades``)."""


@attrs.frozen(kw_only=True)
class OrderRecord:
    """One order the tree placed at the venue, as it ended."""

    ref: str
    order_id: int
    symbol: str
    side: str
    quantity: int
    limit: float | None
    stop: float | None
    trigger: float | None
    """The price condition's trigger (the grid's conditional buys), if any."""
    tif: str
    accepted_ns: int
    """Venue time (UTC epoch ns) of the trade after which the venue accepted it."""
    ended_ns: int | None
    status: str
    """``filled``, ``cancelled``, ``rejected`` or ``working`` (still open at the end)."""
    filled: int
    reason: str


@attrs.frozen(kw_only=True)
class FillRecord:
    exec_id: str
    ref: str
    symbol: str
    side: str
    quantity: int
    price: float
    commission: float
    ts_ns: int


@attrs.frozen(kw_only=True)
class EquityPoint:
    ts_ns: int
    """The bar's end (its start plus its interval), UTC epoch ns."""
    cash: float
    positions: float
    equity: float
    invested: bool
    """Whether any position was held at that close."""


@attrs.frozen(kw_only=True)
class DividendRecord:
    symbol: str
    ex_date: str
    shares: int
    amount_per_share: float
    cash: float


@attrs.frozen(kw_only=True, repr=False)
class Recorded:
    """What a run recorded (its repr is a summary: asyncio reprs a finished task's result)."""

    orders: list[OrderRecord]
    fills: list[FillRecord]
    equity: list[EquityPoint]
    dividends: list[DividendRecord]
    initial_cash: float
    traded_notional: float
    bars: int
    trades: int

    def __repr__(self) -> str:
        return (
            f"Recorded({self.bars} bars, {self.trades} trades, {len(self.orders)} orders, "
            f"{len(self.fills)} fills, {len(self.equity)} equity points)"
        )


def interval_of(bars: Sequence[Bar]) -> timedelta:
    """The bars' interval: the smallest step between two starts of one symbol, a day at most
    (daily bars skip weekends and holidays); a minute when no symbol has two bars."""
    last: dict[str, datetime] = {}
    step = timedelta(days=1)
    seen = False
    for bar in bars:
        before = last.get(bar.symbol)
        if before is not None and bar.start > before:
            step = min(step, bar.start - before)
            seen = True
        last[bar.symbol] = bar.start
    return step if seen else timedelta(minutes=1)


class Recorder:
    """Keeps the venue's orders, executions and the portfolio at every bar's close."""

    def __init__(self, engine: Engine, bars: Sequence[Bar], initial_cash: Decimal) -> None:
        self.engine = engine
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.notional = Decimal(0)
        interval = interval_of(bars)
        daily = interval >= timedelta(days=1)
        closes: dict[datetime, int] = {}
        for bar in bars:
            # A daily bar closes at the regular session's end, not 24 h after its start.
            end = (
                bar.start.astimezone(NEW_YORK).replace(hour=16, minute=0)
                if daily
                else bar.start + interval
            )
            closes[bar.start + CLOSE_OFFSET] = epoch_ns(end)
        self._closes = closes
        self._close_times = sorted(closes)
        self._seen_executions = 0
        self._seen_dividends = 0
        self.fills: list[FillRecord] = []
        self._accepted: dict[str, int] = {}
        self._ended: dict[str, tuple[int, str, str]] = {}
        self.points: dict[int, tuple[Decimal, Decimal, bool]] = {}
        """Cash, positions and whether any is held at each bar's close (its end, epoch ns)."""
        engine.listeners.append(self._on_event)

    def _now_ns(self) -> int:
        at = self.engine.last_trade_at
        return epoch_ns(at) if at is not None else 0

    def _on_event(self, event: Any) -> None:
        match event:
            case OrderAccepted(ref=ref):
                self._accepted.setdefault(ref, self._now_ns())
            case OrderCancelled(ref=ref, reason=reason):
                self._ended[ref] = (self._now_ns(), "cancelled", reason)
            case OrderRejected(ref=ref, reason=reason):
                self._ended[ref] = (self._now_ns(), "rejected", reason)

    def on_step(self) -> None:
        """After each step of the replay (a trade, or a bar's trades at once), everything it
        caused handled: book the new executions and, at a bar's close, the portfolio."""
        engine = self.engine
        if len(engine.executions) != self._seen_executions:
            self._book(engine.executions)
        dividends = engine.dividends
        if len(dividends) != self._seen_dividends:
            for paid in dividends[self._seen_dividends :]:
                self.cash += paid.cash
            self._seen_dividends = len(dividends)
        at = engine.last_trade_given
        if at is None:
            return
        label = self._closes.get(at)
        if label is None:
            return
        positions = Decimal(0)
        invested = False
        last = engine.last
        for symbol, position in engine.positions.items():
            if position.quantity:
                invested = True
                positions += position.quantity * self._mark(symbol, last, at)
        self.points[label] = (self.cash, positions, invested)

    def _mark(self, symbol: str, last: Mapping[str, Decimal], at: datetime) -> Decimal:
        """What one unit of ``symbol`` is worth now: a stock's last trade; an option's
        quoted last (the venue's model price on its tick) times its 100 shares (an option has
        no trades of its own to mark it by)."""
        contract = self.engine.option_of(symbol)
        if contract is None:
            return last.get(symbol, Decimal(0))
        quote = self.engine.option_quote(contract, at)
        return Decimal(0) if quote is None else quote.last * MULTIPLIER

    def _book(self, executions: Sequence[Any]) -> None:
        for execution in executions[self._seen_executions :]:
            value = execution.value
            self.notional += value
            self.cash += -value if execution.side is Side.BUY else value
            self.cash -= execution.commission
            self.fills.append(
                FillRecord(
                    exec_id=execution.exec_id,
                    ref=execution.ref,
                    symbol=execution.symbol,
                    side=execution.side.value,
                    quantity=execution.quantity,
                    price=float(execution.price),
                    commission=float(execution.commission),
                    ts_ns=epoch_ns(execution.time),
                )
            )
        self._seen_executions = len(executions)

    def recorded(self, bar_count: int, trades: int) -> Recorded:
        engine = self.engine
        orders = []
        for ref, order in engine.orders.items():
            ended = self._ended.get(ref)
            if order.filled == order.quantity:
                status, ended_ns, reason = "filled", None, ""
                executions = engine.executions_of(ref)
                if executions:
                    ended_ns = epoch_ns(executions[-1].time)
            elif ended is not None:
                ended_ns, status, reason = ended
            else:
                status, ended_ns, reason = "working", None, ""
            condition = order.condition
            orders.append(
                OrderRecord(
                    ref=ref,
                    order_id=order.order_id,
                    symbol=order.symbol,
                    side=order.side.value,
                    quantity=order.quantity,
                    limit=float(order.limit) if order.limit is not None else None,
                    stop=float(order.stop) if order.stop is not None else None,
                    trigger=float(condition.trigger) if condition is not None else None,
                    tif=order.tif.value,
                    accepted_ns=self._accepted.get(ref, 0),
                    ended_ns=ended_ns,
                    status=status,
                    filled=order.filled,
                    reason=reason,
                )
            )
        orders.sort(key=lambda o: (o.accepted_ns, o.order_id))
        return Recorded(
            orders=orders,
            fills=list(self.fills),
            dividends=[
                DividendRecord(
                    symbol=d.symbol,
                    ex_date=d.ex_date.isoformat(),
                    shares=d.shares,
                    amount_per_share=float(d.amount_per_share),
                    cash=float(d.cash),
                )
                for d in engine.dividends
            ],
            equity=[
                EquityPoint(
                    ts_ns=label,
                    cash=float(cash),
                    positions=float(positions),
                    equity=float(cash + positions),
                    invested=invested,
                )
                for label, (cash, positions, invested) in sorted(self.points.items())
            ],
            initial_cash=float(self.initial_cash),
            traded_notional=float(self.notional),
            bars=bar_count,
            trades=trades,
        )


def close_index(times: Sequence[datetime], at: datetime) -> int:
    """How many of the sorted ``times`` are at or before ``at`` (the bars done, for progress)."""
    return bisect.bisect_right(times, at)


async def drive(
    *,
    bars: Sequence[Bar],
    ledger: Path,
    lots: Mapping[str, Any],
    kinds: Mapping[str, Any],
    params: Mapping[str, Any],
    risk: Any,
    initial_cash: Decimal,
    progress: Callable[[int], None] | None = None,
    step_timeout: float = 120.0,
    actions: Sequence[CorporateAction] = (),
    lazy_timer: bool = True,
    shortcuts: bool = True,
    slippage_bps: Decimal = Decimal(0),
    participation: Decimal | None = None,
) -> Recorded:
    """Run the tree on ``bars`` in lockstep, ledger in ``ledger`` (unsafe durability: a
    backtest's ledger is thrown away); ``progress`` is told the bars done after each close.
    ``slippage_bps`` and ``participation`` are the venue's costs (``sim.engine.Engine``)."""
    from actors.lot_keeper import ledger_store
    from app.compose import sim_trading
    from runtime import VirtualClock
    from runtime.store import Durability
    from supervisors import Supervisor

    engine = Engine(slippage_bps=slippage_bps, participation=participation)
    recorder = Recorder(engine, bars, initial_cash)
    closes = recorder._close_times

    def stepped() -> None:
        recorder.on_step()
        if progress is not None and engine.last_trade_given is not None:
            at = engine.last_trade_given
            if at in recorder._closes:
                progress(close_index(closes, at))

    trading = sim_trading(
        data_dir=ledger,
        # Committed on the loop's thread: a writer thread's real time would race the virtual
        # clock. Thrown away after the run: nothing to fsync.
        store=ledger_store(ledger, durability=Durability.UNSAFE, inline=True),
        bars=bars,
        lots=lots,
        params=params,
        kinds=kinds,
        engine=engine,
        # Lockstep on virtual time: the replay moves the tree's clock to each trade's time
        # (nights count MAX_PAUSE), so every timer of the tree (fill timeouts, retries) acts
        # when it would, and nothing depends on how fast the machine is.
        clock=VirtualClock(start=0.0, epoch_ns=epoch_ns(bars[0].start)),
        max_pause=MAX_PAUSE,
        timer_interval=TIMER_INTERVAL,
        reconcile_interval=RECONCILE_INTERVAL,
        on_step=stepped,
        step_timeout=step_timeout,
        risk=risk,
        actions=actions,
        lazy_timer=lazy_timer,
        shortcuts=shortcuts,
    )
    root = Supervisor("backtest", trading.spec)
    with batch_collection():
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await trading.finished.wait()
            root.stop()
    if root.restarts:
        raise BacktestError(
            f"the tree restarted {root.restarts} time(s) during the backtest: its outcome is not "
            "the strategy's alone (see the log)"
        )
    return recorder.recorded(len(bars), sum(feed.trades for feed in trading.feed))


@contextlib.contextmanager
def batch_collection(young: int = GC_YOUNG) -> Iterator[None]:
    """While a backtest runs: the objects made before it (its bars, the modules) frozen out
    of the cyclic garbage collector's passes, and its youngest generation collected after
    ``young`` allocations instead of 700. Everything a run allocates and drops is freed by its
    reference count as ever; only the search for cycles runs less often (some 7 to 13 %
    faster here, bench/backtest_speed.py). Restored on the way out."""
    thresholds = gc.get_threshold()
    frozen = gc.get_freeze_count()
    gc.freeze()
    gc.set_threshold(young, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        if not frozen:  # a freeze of the caller's own stays
            gc.unfreeze()


def run(**drive_args: Any) -> Recorded:
    """``drive`` on asyncio (uvloop)."""
    result: Recorded = anyio.run(
        functools.partial(drive, **drive_args),
        backend="asyncio",
        backend_options={"use_uvloop": True},
    )
    return result


class BacktestError(RuntimeError):
    """A backtest that could not run to its end, or whose outcome cannot be trusted."""
