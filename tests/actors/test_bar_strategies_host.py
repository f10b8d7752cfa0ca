"""MA-crossover and momentum hosted by the real symbol actor: the lot-keeper on LMDB in a
temporary directory, the broker actor in-process (``SimPort``) or over the wire (``IBPort``,
the real ib_insync, loopback TCP, our TWS API server), the matching engine moved bar by bar.
Each bar's trades reach the venue, then its ``BarClosed`` reaches the symbol actor; the orders
land at the venue, the fills come back through the ledger, and the venue, the ledger and the
strategy agree. With market orders every decision fills on the next bar, so the venue's
orders must be the plain re-implementation's signals, by value."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.broker import Poll
from actors.brokers.ib import IBPort
from actors.brokers.port import BrokerPort
from actors.brokers.sim import SimPort
from actors.domain import Bar, Instrument, OrderRef, Side
from actors.history import ReplayHistory
from actors.lot_keeper import LedgerState, LoadLedger, ledger_store
from actors.strategies._position import PositionStrategy, bar_epoch
from actors.strategies.protocol import BarClosed, StrategyKind
from actors.strategies.registry import strategy_kind
from actors.symbol import Describe, SymbolView
from app.compose import trading_tree
from sim.engine import Engine
from sim.replay import bar_trades, generated_session, load_bars
from sim.tws.server import TwsServer
from supervisors import Supervisor
from tests.tws_venue import TQQQ, client_protocol_errors

from .test_bar_strategies import REAL, plain_ma_cross, plain_momentum

pytestmark = pytest.mark.anyio
QQQ = Instrument(symbol="QQQ", con_id=320227571, long_name="INVESCO QQQ TRUST SERIES 1")
NOTIONAL = Decimal(20_000)


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync is asyncio-native; real clocks (real sockets, the store's thread)."""
    return "asyncio"


async def trade_bars(
    tmp_path: Path,
    kind: StrategyKind,
    bars: list[Bar],
    *,
    wire: bool,
    kill_at: frozenset[int] = frozenset(),
) -> tuple[Engine, LedgerState, PositionStrategy, SymbolView, list[Any]]:
    """Run the tree on ``bars``: each bar's trades move the venue, then the bar closes. The
    symbol actor is killed (and restarted by its supervisor) before the bars of ``kill_at``
    close."""
    symbol = kind.symbol
    engine = Engine()
    server = TwsServer(
        engine,
        instruments=[TQQQ, QQQ],
        clock=lambda: engine.last_trade_at or bars[0].start,
    )
    alerts: list[Any] = []
    strategies: dict[str, Any] = {}
    async with anyio.create_task_group() as venue:
        in_process = SimPort(engine, bars[0].start)
        port: BrokerPort = in_process
        if wire:
            number = await venue.start(server.serve)
            port = IBPort(host="127.0.0.1", port=number, client_id=1, timeout=5, max_requests=0)
        spec, cells = trading_tree(
            store=ledger_store(tmp_path / "ledger"),
            lots={},
            params=None,
            port=port,
            alerts=alerts,
            strategies=strategies,
            reconcile_interval=3600.0,
            feeds=[],
            kinds={symbol: kind},
            timer_interval=3600.0,
            history=ReplayHistory(bars, until=lambda: engine.last_trade_at),
        )
        root = Supervisor("root", spec)
        broker, actor = cells["broker"].ref, cells[symbol].ref
        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await actor.request(Describe(), timeout=30)  # it has reconciled
                for index, bar in enumerate(bars):
                    for trade in bar_trades(bar):
                        in_process.trade(trade)
                        await broker.request(Poll(), timeout=30)
                    if index in kill_at:
                        symbols = root.child("symbols")
                        assert isinstance(symbols, Supervisor)
                        symbols.kill(f"symbol.{symbol}")
                    await actor.request(Describe(), timeout=30)  # the fills are handled
                    await actor.request(BarClosed(bar=bar, seconds=60), timeout=30)
                    await broker.request(Poll(), timeout=30)
                view = await actor.request(Describe(), timeout=30)
                keeper = cells["lot-keeper"].ref
                ledger = await keeper.request(LoadLedger(symbol=symbol), timeout=30)
                root.stop()
        venue.cancel_scope.cancel()
    assert root.restarts == 0
    assert server.protocol_errors == []
    strategy = strategies[f"{kind.name}:{symbol}"]
    assert isinstance(strategy, PositionStrategy)
    assert isinstance(view, SymbolView)
    assert isinstance(ledger, LedgerState)
    return engine, ledger, strategy, view, alerts


def check_agreement(engine: Engine, ledger: LedgerState, strategy: PositionStrategy) -> None:
    """The venue's executions are the ledger's fills; its position is the strategy's; the
    strategy's realized P&L is the average-cost P&L of the venue's executions."""
    symbol = strategy.params.symbol
    executed = sorted((e.exec_id, e.ref, e.quantity, e.price) for e in engine.executions)
    recorded = sorted((f.exec_id, f.ref, f.quantity, f.price) for f in ledger.fills)
    assert executed == recorded
    assert sorted(engine.orders) == sorted(i.ref for i in ledger.intents)
    position = engine.positions[symbol].quantity if symbol in engine.positions else 0
    assert position == strategy.shares
    held, cost, realized = 0, Decimal(0), Decimal(0)
    for execution in engine.executions:
        if execution.side is Side.BUY:
            held += execution.quantity
            cost += execution.quantity * execution.price
        else:
            basis = cost * execution.quantity / held
            realized += execution.quantity * execution.price - basis
            held -= execution.quantity
            cost = cost - basis if held else Decimal(0)
    assert held == strategy.shares
    assert abs(realized - strategy.realized) < Decimal("1e-18")
    assert all(order.quantity >= order.filled for order in engine.orders.values())


def signals_at_the_venue(engine: Engine, bars: list[Bar]) -> list[tuple[int, Side, int]]:
    index = {bar_epoch(bar.start): i for i, bar in enumerate(bars)}
    signals = []
    for ref, order in engine.orders.items():
        tag = OrderRef.parse(ref).tag
        signals.append((index[int(tag.split(".")[1])], order.side, order.quantity))
    return signals


def market(name: str, symbol: str, **settings: Any) -> StrategyKind:
    return strategy_kind(
        name,
        symbol,
        {
            "order_type": "market",
            "sessions": "extended",
            "target_notional": NOTIONAL,
            **settings,
        },
    )


@pytest.mark.parametrize("wire", [False, True], ids=["in-process", "ib_insync"])
@pytest.mark.parametrize(
    ("name", "settings"),
    [("ma_cross", {"fast": 5, "slow": 20}), ("momentum", {"lookback": 10, "threshold": "0.001"})],
)
async def test_a_generated_day_trades_the_plain_models_signals_through_the_host(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, wire: bool, name: str, settings: Any
) -> None:
    """Market orders on a generated day: the orders at the venue are the plain model's
    signals (bar, side, shares), each filled (but one the last bar placed); venue, ledger and
    strategy agree."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = generated_session(seed=23, day=date(2026, 11, 24))[:480]
    kind = market(name, "TQQQ", **settings)
    engine, ledger, strategy, view, alerts = await trade_bars(tmp_path, kind, bars, wire=wire)
    closes = [bar.close for bar in bars]
    if name == "ma_cross":
        expected = plain_ma_cross(closes, 5, 20, NOTIONAL)
    else:
        expected = plain_momentum(closes, 10, Decimal("0.001"), NOTIONAL)
    assert len(expected) >= 6
    assert signals_at_the_venue(engine, bars) == expected
    last = f"E.{bar_epoch(bars[-1].start)}", f"X.{bar_epoch(bars[-1].start)}"
    unfilled = [ref for ref, o in engine.orders.items() if o.filled < o.quantity]
    assert [OrderRef.parse(ref).tag in last for ref in unfilled] in ([], [True])
    check_agreement(engine, ledger, strategy)
    assert view.strategy == name
    assert getattr(view.detail, "kind", None) == name
    assert view.realized == strategy.realized
    assert [a for a in alerts if a.kind != "reconcile"] == []
    assert client_errors() == []


@pytest.mark.parametrize("name", ["ma_cross", "momentum"])
async def test_marketable_limits_on_a_generated_day_fill_and_agree(
    tmp_path: Path, name: str
) -> None:
    """Limits 20 bps through the close: orders land, fill (or stay working) at the venue, and
    the venue, the ledger and the strategy agree on every share and on the P&L."""
    bars = generated_session(seed=31, day=date(2026, 11, 25))[:420]
    settings = {"fast": 4, "slow": 16} if name == "ma_cross" else {"lookback": 8}
    kind = strategy_kind(
        name,
        "TQQQ",
        {"slippage_bps": Decimal(20), "sessions": "extended", "tif": "GTC", **settings},
    )
    engine, ledger, strategy, _, _ = await trade_bars(tmp_path, kind, bars, wire=False)
    sides = Counter(e.side for e in engine.executions)
    assert sides[Side.BUY] >= 3
    assert sides[Side.SELL] >= 2
    check_agreement(engine, ledger, strategy)
    assert {order.limit is not None for order in engine.orders.values()} == {True}


@pytest.mark.skipif(not REAL[0].exists(), reason="../shared/marketdata is not on this machine")
@pytest.mark.parametrize(
    ("path", "name", "settings"),
    [
        (REAL[0], "ma_cross", {"fast": 10, "slow": 30}),
        (REAL[1], "momentum", {"lookback": 20, "threshold": "0.001"}),
    ],
    ids=["TQQQ-ma_cross", "QQQ-momentum"],
)
async def test_real_minute_bars_over_the_wire_trade_the_plain_models_signals(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: Path, name: str, settings: Any
) -> None:
    """Ten real sessions (extended hours) of TQQQ and of QQQ minutes through ib_insync, market
    orders: the venue's orders are the plain model's signals, by value."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = load_bars(path)[:9000]
    symbol = bars[0].symbol
    kind = market(name, symbol, **settings)
    engine, ledger, strategy, _, _ = await trade_bars(tmp_path, kind, bars, wire=True)
    closes = [bar.close for bar in bars]
    if name == "ma_cross":
        expected = plain_ma_cross(closes, 10, 30, NOTIONAL)
    else:
        expected = plain_momentum(closes, 20, Decimal("0.001"), NOTIONAL)
    assert len(expected) >= 20
    assert signals_at_the_venue(engine, bars) == expected
    check_agreement(engine, ledger, strategy)
    assert client_errors() == []


@pytest.mark.parametrize("name", ["ma_cross", "momentum"])
async def test_a_killed_symbol_actor_rebuilds_its_strategy_from_the_ledger_and_the_broker(
    tmp_path: Path, name: str
) -> None:
    """The symbol actor is killed three times mid-day (as many as the restart intensity
    allows); each incarnation restores the position, the decisions and the working orders from
    LMDB and the venue, re-warms its indicator from the venue's history (the replay's bars it
    has printed) and trades on as if nothing happened: nothing placed twice, the venue's orders
    are the uninterrupted plain model's, and the venue, the ledger and the strategy agree."""
    bars = generated_session(seed=41, day=date(2026, 11, 27))[:480]
    settings = {"fast": 3, "slow": 12} if name == "ma_cross" else {"lookback": 6}
    kind = market(name, "TQQQ", **settings)
    kills = frozenset({100, 220, 340})
    engine, ledger, strategy, _, _ = await trade_bars(
        tmp_path, kind, bars, wire=False, kill_at=kills
    )
    check_agreement(engine, ledger, strategy)
    assert not strategy.halted
    decided = [index for index, *_ in signals_at_the_venue(engine, bars)]
    assert len(decided) == len(set(decided)), "one order per decision: nothing placed twice"
    closes = [bar.close for bar in bars]
    if name == "ma_cross":
        expected = plain_ma_cross(closes, 3, 12, NOTIONAL)
    else:
        expected = plain_momentum(closes, 6, Decimal(0), NOTIONAL)
    assert signals_at_the_venue(engine, bars) == expected
    warmup = kind.needs.warmup
    assert max(decided) > max(kills) + warmup
