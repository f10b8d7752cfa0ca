"""The options bot hosted by the real symbol actor on the in-process venue: the lot-keeper on
LMDB in a temporary directory, the broker actor on ``SimPort``, the option data from the same
engine (``SimOptionData``), the underlying moved bar by bar. A scalp signal buys a call as a
bracket; the take-profit path, the stop path, the entry's time-out, a missing exit placed
again, a restart while protected, and a skip for liquidity, each checked at the venue, in the
ledger and in the strategy's view."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.alerts import AlertLog
from actors.broker import Poll
from actors.brokers.dry import DryPort
from actors.brokers.ib import IBPort
from actors.brokers.ib_options import IBOptionData
from actors.brokers.port import BrokerPort
from actors.brokers.sim import SimOptionData, SimPort
from actors.domain import Bar, Instrument, OptionSymbol, OrderRef, Side
from actors.domain.bars import bar_trades
from actors.domain.sessions import NEW_YORK, is_trading_day
from actors.history import HistorySource, ReplayHistory
from actors.lot_keeper import LedgerState, LoadLedger, ledger_store
from actors.option_data import OptionData
from actors.risk_rules import RiskLimits
from actors.strategies.options import OptionsKind, OptionsParams, OptionsStrategy, OptionsView
from actors.strategies.protocol import BarClosed
from actors.symbol import Describe, SymbolView
from app.compose import trading_tree
from runtime.telemetry import Telemetry
from sim.engine import Engine
from sim.tws.server import TwsServer
from supervisors import Supervisor
from tests.otlp_receiver import otlp_receiver

from .test_tracing import telemetry_for

pytestmark = pytest.mark.anyio
MONDAY = datetime(2026, 12, 7, 10, 0, tzinfo=NEW_YORK)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _bar(index: int, close: Decimal, volume: int, previous: Decimal) -> Bar:
    high, low = max(close, previous), min(close, previous)
    return Bar(
        symbol="SPY",
        start=MONDAY + timedelta(minutes=index),
        open=previous,
        high=high,
        low=low,
        close=close,
        volume=volume,
    )


def scalp_day(after: list[Decimal]) -> list[Bar]:
    """25 quiet bars, 10 falling ones (RSI deep under 30), one sharp rise on five times the
    volume (the RSI crosses up out of 30: a bullish scalp signal), then ``after``'s closes."""
    closes = [Decimal("600.00") + Decimal("0.10") * (i % 2) for i in range(25)]
    closes += [closes[-1] - Decimal("0.50") * (i + 1) for i in range(10)]
    closes.append(closes[-1] + Decimal("2.00"))
    volumes = [1000] * 35 + [5000]
    closes += after
    volumes += [1000] * len(after)
    bars, previous = [], closes[0]
    for index, (close, volume) in enumerate(zip(closes, volumes, strict=True)):
        bars.append(_bar(index, close, volume, previous))
        previous = close
    return bars


SIGNAL_BAR = 35


def params(**overrides: Any) -> OptionsParams:
    settings: dict[str, Any] = {
        "symbol": "SPY",
        "contract": {"min_dte": 1},
        "entry": {"entry_price": "ask", "tp_pct": 10, "sl_pct": 10},
        "sizing": {"max_risk_pct_per_trade": 1, "max_contracts": 3},
        "entry_timeout": 3600.0,
    }
    settings.update(overrides)
    return OptionsParams(**settings)


class Run:
    """What a run left: the venue, the ledger, the strategy, its view and the alerts."""

    def __init__(
        self,
        engine: Engine,
        ledger: LedgerState,
        strategy: OptionsStrategy,
        view: SymbolView,
        alerts: AlertLog,
        restarts: int,
    ) -> None:
        self.engine = engine
        self.ledger = ledger
        self.strategy = strategy
        self.view = view
        self.alerts = alerts
        self.restarts = restarts

    def kinds(self) -> list[str]:
        return [a.kind for a in self.alerts]

    def orders(self) -> list[Any]:
        return [o for o in self.engine.orders.values() if o.symbol != "SPY"]

    def held(self, symbol: str) -> int:
        position = self.engine.positions.get(symbol)
        return 0 if position is None else position.quantity


async def trade(
    tmp_path: Path,
    kind: OptionsKind,
    bars: list[Bar],
    *,
    at_bar: dict[int, Any] | None = None,
    timer: float = 3600.0,
    risk: RiskLimits | None = None,
    seconds: int = 60,
    history: HistorySource | None = None,
    dry_run: bool = False,
    telemetry: Telemetry | None = None,
    wire: bool = False,
) -> Run:
    """Run the tree on ``bars``: each bar's trades move the venue (and requote its options),
    then the bar closes. ``at_bar[i](engine, root)`` runs before bar ``i`` closes. ``wire``:
    orders, chains and quotes over the venue's TWS API server with ib_insync."""
    engine = Engine()
    server = TwsServer(
        engine,
        instruments=[Instrument(symbol="SPY", con_id=756733, long_name="SPDR S&P 500 ETF")],
        clock=lambda: engine.last_trade_at or bars[0].start,
    )
    async with anyio.create_task_group() as venue:
        number = await venue.start(server.serve) if wire else 0
        run = await _trade(
            tmp_path,
            kind,
            bars,
            engine,
            number=number,
            at_bar=at_bar,
            timer=timer,
            risk=risk,
            seconds=seconds,
            history=history,
            dry_run=dry_run,
            telemetry=telemetry,
        )
        venue.cancel_scope.cancel()
    assert server.protocol_errors == []
    return run


async def _trade(
    tmp_path: Path,
    kind: OptionsKind,
    bars: list[Bar],
    engine: Engine,
    *,
    number: int,
    at_bar: dict[int, Any] | None,
    timer: float,
    risk: RiskLimits | None,
    seconds: int,
    history: HistorySource | None,
    dry_run: bool,
    telemetry: Telemetry | None,
) -> Run:
    alerts = AlertLog()
    strategies: dict[str, Any] = {}
    in_process = SimPort(engine, bars[0].start)
    port: BrokerPort = in_process
    option_data: OptionData = SimOptionData(engine, clock=lambda: in_process.now)
    if number:
        port = IBPort(host="127.0.0.1", port=number, client_id=1, timeout=5, max_requests=0)
        option_data = IBOptionData(
            host="127.0.0.1",
            port=number,
            client_id=4,
            timeout=5,
            requests_per_second=0,
            clock=lambda: in_process.now,
        )
    if dry_run:
        port = DryPort(port)
    spec, cells = trading_tree(
        store=ledger_store(tmp_path / "ledger"),
        lots={},
        params=None,
        port=port,
        dry_run=dry_run,
        telemetry=telemetry,
        alerts=alerts,
        strategies=strategies,
        reconcile_interval=3600.0,
        feeds=[],
        kinds={"SPY": kind},
        timer_interval=timer,
        history=history or ReplayHistory(bars, until=lambda: engine.last_trade_at),
        option_data=option_data,
        risk=risk,
    )
    root = Supervisor("root", spec)
    broker, actor = cells["broker"].ref, cells["SPY"].ref
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await actor.request(Describe(), timeout=30)
            for index, bar in enumerate(bars):
                for trade_ in bar_trades(bar):
                    in_process.trade(trade_)
                    await broker.request(Poll(), timeout=30)
                await actor.request(Describe(), timeout=30)
                hook = (at_bar or {}).get(index)
                if hook is not None:
                    result = hook(engine, root)
                    if result is not None:
                        await result
                    await broker.request(Poll(), timeout=30)
                    await actor.request(Describe(), timeout=30)
                await actor.request(BarClosed(bar=bar, seconds=seconds), timeout=30)
                await broker.request(Poll(), timeout=30)
            await actor.request(Describe(), timeout=30)
            await broker.request(Poll(), timeout=30)
            view = await actor.request(Describe(), timeout=30)
            ledger = await cells["lot-keeper"].ref.request(LoadLedger(symbol="SPY"), timeout=30)
            root.stop()
    if isinstance(option_data, IBOptionData):
        await option_data.close()
    strategy = strategies[f"{kind.name}:SPY"]
    assert isinstance(strategy, OptionsStrategy)
    assert isinstance(view, SymbolView)
    assert isinstance(ledger, LedgerState)
    return Run(engine, ledger, strategy, view, alerts, root.restarts)


def rising(count: int, start: Decimal, step: Decimal) -> list[Decimal]:
    return [start + step * (i + 1) for i in range(count)]


def _signal_close() -> Decimal:
    return scalp_day([])[SIGNAL_BAR].close


@pytest.mark.parametrize("wire", [False, True], ids=["in-process", "wire"])
async def test_a_scalp_signal_buys_a_call_bracket_that_takes_its_profit(
    tmp_path: Path, wire: bool
) -> None:
    bars = scalp_day(rising(30, _signal_close(), Decimal("0.40")))
    run = await trade(tmp_path, OptionsKind(params()), bars, wire=wire)
    legs = {OrderRef.parse(o.ref).tag.split(":")[1]: o for o in run.orders()}
    assert set(legs) == {"entry", "tp", "sl"}
    entry, tp, sl = legs["entry"], legs["tp"], legs["sl"]
    option = OptionSymbol.parse(entry.symbol)
    assert (option.underlying, option.right, option.expiry.isoformat()) == (
        "SPY",
        "C",
        "2026-12-11",
    )
    # The strike nearest the money when the signal's bar closed.
    assert abs(option.strike - _signal_close()) <= Decimal("2.5")
    assert entry.side is Side.BUY
    assert tp.side is Side.SELL
    assert tp.parent == entry.ref == sl.parent
    assert tp.oca == sl.oca is not None
    assert sl.stop is not None
    assert tp.limit is not None
    assert entry.filled == entry.quantity == tp.filled
    assert sl.filled == 0
    assert sl.done
    assert tp.done
    assert 1 <= entry.quantity <= 3
    # Prices from the fill: +10 % and -10 % of the entry's limit on the option tick.
    assert tp.limit > entry.limit > sl.stop
    fills = {f.ref: f for f in run.ledger.fills}
    assert set(fills) == {entry.ref, tp.ref}
    assert run.held(entry.symbol) == 0
    view = run.view.detail
    assert isinstance(view, OptionsView)
    assert view.state == "flat"
    assert view.legs == ()
    assert run.strategy.realized > 0
    assert "take-profit" in run.kinds()
    assert "entry" in run.kinds()
    assert run.restarts == 0


@pytest.mark.parametrize("wire", [False, True], ids=["in-process", "wire"])
async def test_the_stop_closes_a_falling_position(tmp_path: Path, wire: bool) -> None:
    bars = scalp_day(rising(30, _signal_close(), Decimal("-0.40")))
    run = await trade(tmp_path, OptionsKind(params()), bars, wire=wire)
    legs = {OrderRef.parse(o.ref).tag.split(":")[1]: o for o in run.orders()}
    assert legs["sl"].filled == legs["entry"].filled > 0
    assert legs["tp"].filled == 0
    assert legs["tp"].done
    assert run.strategy.realized < 0
    assert "stop-out" in run.kinds()
    assert run.held(legs["entry"].symbol) == 0


async def test_a_missing_exit_is_placed_again_and_a_restart_keeps_the_bracket(
    tmp_path: Path,
) -> None:
    """The take-profit is cancelled at the venue behind the bot's back while contracts are
    held: it is placed again alone, in the same OCA group; then the symbol actor is killed,
    and its successor, rebuilt from the ledger and the broker, keeps both exits working."""

    def cancel_tp(engine: Engine, root: Supervisor) -> None:
        for ref, order in engine.orders.items():
            if ":tp:" in ref and not order.done:
                engine.cancel(ref, "cancelled by hand")

    def kill(engine: Engine, root: Supervisor) -> None:
        symbols = root.child("symbols")
        assert isinstance(symbols, Supervisor)
        symbols.kill("symbol.SPY")

    flat = [_signal_close()] * 6
    bars = scalp_day(flat)
    run = await trade(
        tmp_path,
        OptionsKind(params()),
        bars,
        at_bar={SIGNAL_BAR + 2: cancel_tp, SIGNAL_BAR + 4: kill},
    )
    refs = sorted(o.ref for o in run.orders())
    tps = [r for r in refs if ":tp:" in r]
    assert len(tps) == 2, refs
    again = run.engine.orders[tps[-1]]
    assert not again.done
    assert again.parent is None
    sl = next(o for o in run.orders() if ":sl:" in o.ref)
    assert again.oca == sl.oca
    assert not sl.done
    entry = next(o for o in run.orders() if ":entry:" in o.ref)
    assert again.quantity == entry.filled
    assert "exit-replaced" in run.kinds()
    view = run.view.detail
    assert isinstance(view, OptionsView)
    assert view.state == "protected"
    assert set(view.legs) == {again.ref, sl.ref}
    # The second incarnation reconciled to the same bracket, and cancelled nothing.
    started = [a.message for a in run.alerts if a.kind == "trading"]
    assert any("(start 2)" in m and "1 open positions, 2 orders working" in m for m in started)
    assert sum(1 for o in run.orders() if o.done and o.filled == 0) == 1  # the hand-cancelled tp


async def test_an_entry_that_does_not_fill_in_time_is_cancelled(tmp_path: Path) -> None:
    kind = OptionsKind(params(entry={"entry_price": "mid"}, entry_timeout=0.2))

    async def wait(engine: Engine, root: Supervisor) -> None:
        await anyio.sleep(0.6)  # past the time-out, on the host's real clock

    flat = [_signal_close()] * 4
    run = await trade(tmp_path, kind, scalp_day(flat), at_bar={SIGNAL_BAR + 2: wait}, timer=0.05)
    entry = next(o for o in run.orders() if ":entry:" in o.ref)
    assert entry.filled == 0
    assert entry.done
    assert all(o.done for o in run.orders())
    assert "entry-ended" in run.kinds()
    assert run.ledger.fills == ()


async def test_an_illiquid_option_is_skipped_with_its_reason(tmp_path: Path) -> None:
    kind = OptionsKind(params(liquidity={"max_spread_pct": "0.01"}))
    run = await trade(tmp_path, kind, scalp_day([_signal_close()] * 2))
    assert run.orders() == []
    view = run.view.detail
    assert isinstance(view, OptionsView)
    assert view.skips == 1
    assert view.last_skip is not None
    assert view.last_skip.startswith("spread:")
    assert "skip" in run.kinds()


async def test_the_risk_actor_values_an_option_entry_at_100_shares_a_contract(
    tmp_path: Path,
) -> None:
    """A per-symbol cap the premium alone would pass (3 contracts at about $15 is $45) but the
    contracts' value does not ($4,500): the entry is refused, nothing is committed or sent,
    and the strategy is flat again."""
    kind = OptionsKind(params())
    run = await trade(
        tmp_path,
        kind,
        scalp_day([_signal_close()] * 2),
        risk=RiskLimits(max_notional_per_symbol=Decimal(1000)),
    )
    assert run.orders() == []
    assert run.ledger.intents == ()
    refused = [a.message for a in run.alerts if a.kind == "entry-ended"]
    assert len(refused) == 1
    assert "refused (symbol_notional)" in refused[0]
    assert "SPY exposure would be" in refused[0]
    view = run.view.detail
    assert isinstance(view, OptionsView)
    assert view.state == "flat"


class Hours:
    """Warm-up history of given hourly bars (the lookback a whale needs, which the replay of
    the test's own day does not hold)."""

    name = "fixture"

    def __init__(self, bars: list[Bar]) -> None:
        self.bars = bars

    async def recent(self, symbol: str, *, seconds: int, count: int, sessions: str) -> list[Bar]:
        assert (symbol, seconds, sessions) == ("SPY", 3600, "regular")
        return self.bars[-count:]


def hourly(day: datetime, hour: int, close: Decimal, volume: int, previous: Decimal) -> Bar:
    return Bar(
        symbol="SPY",
        start=day.replace(hour=hour, minute=0) if hour > 9 else day.replace(hour=9, minute=30),
        open=previous,
        high=max(close, previous),
        low=min(close, previous),
        close=close,
        volume=volume,
    )


async def test_the_whale_debounce_survives_a_restart(tmp_path: Path) -> None:
    """Twenty trading days of quiet hours, then a spike hour (four times the mean volume,
    closing up): a whale signal, whose time is committed before the option is looked for.
    The symbol actor is killed; its successor reads the debounce back from the ledger, and a
    second spike two hours later signals nothing."""
    price = Decimal("600.00")
    days: list[datetime] = []
    day = MONDAY - timedelta(days=40)
    while len(days) < 20:
        day += timedelta(days=1)
        if is_trading_day(day.date()):
            days.append(day)
    history = [
        hourly(d, hour, price, 1000, price) for d in days for hour in (9, 10, 11, 12, 13, 14, 15)
    ]
    spike = hourly(MONDAY, 11, price + Decimal(3), 4000, price)
    quiet = hourly(MONDAY, 12, price + Decimal(3), 1000, price + Decimal(3))
    again = hourly(MONDAY, 13, price + Decimal(6), 4000, price + Decimal(3))

    def kill(engine: Engine, root: Supervisor) -> None:
        symbols = root.child("symbols")
        assert isinstance(symbols, Supervisor)
        symbols.kill("symbol.SPY")

    kind = OptionsKind(params(entry={"entry_price": "mid"}), name="whale")
    run = await trade(
        tmp_path,
        kind,
        [spike, quiet, again],
        seconds=3600,
        history=Hours(history),
        at_bar={1: kill},
    )
    signals = [a.message for a in run.alerts if a.kind == "signal"]
    assert len(signals) == 1
    assert signals[0].startswith("whale bullish")
    # Not even ignored (an entry still works): the rule itself is debounced.
    assert [a for a in run.alerts if a.kind == "signal-ignored"] == []
    view = run.view.detail
    assert isinstance(view, OptionsView)
    assert view.debounce_until == (spike.start + timedelta(days=3)).isoformat()
    started = [a.message for a in run.alerts if a.kind == "trading"]
    assert any("(start 2)" in m for m in started)
    assert len([o for o in run.orders() if ":entry:" in o.ref]) == 1


async def test_a_dry_run_decides_and_sends_nothing(tmp_path: Path) -> None:
    """Everything but the send: the signal, the contract, the quote and the size are decided
    against the venue, the bracket's three intents are committed marked dry, and the venue
    never sees an order."""
    bars = scalp_day(rising(10, _signal_close(), Decimal("0.40")))
    run = await trade(tmp_path, OptionsKind(params()), bars, dry_run=True)
    assert run.orders() == []
    assert run.engine.orders == {}
    intents = run.ledger.intents
    assert sorted(i.ref.split(":")[3] for i in intents) == ["entry", "sl", "tp"]
    assert all(i.dry for i in intents)
    assert run.ledger.fills == ()
    assert "entry" in run.kinds()


async def test_an_entry_and_its_exit_are_one_trace(tmp_path: Path) -> None:
    """The decision's trace, exported over OTLP/HTTP to a receiver that decodes it: the bar,
    the option found, the bracket's intent and submission, the entry's fill and, joining the
    same trace hours later, the take-profit's fill."""
    bars = scalp_day(rising(30, _signal_close(), Decimal("0.40")))
    with otlp_receiver() as receiver:
        telemetry = telemetry_for(receiver)
        run = await trade(tmp_path, OptionsKind(params()), bars, telemetry=telemetry)
        telemetry.shutdown()
        spans = receiver.spans
    legs = {OrderRef.parse(o.ref).tag.split(":")[1]: o for o in run.orders()}
    (found,) = [s for s in spans if s["name"] == "option.find"]
    assert found["attributes"]["trading.option"] == legs["entry"].symbol
    trace = [s for s in spans if s["trace_id"] == found["trace_id"]]
    names = {s["name"] for s in trace}
    assert {"bar", "option.find", "intent.commit", "order.submit", "broker.place_bracket"} <= names
    filled = {s["attributes"].get("trading.orderRef") for s in trace if s["name"] == "order.filled"}
    assert {legs["entry"].ref, legs["tp"].ref} <= filled
