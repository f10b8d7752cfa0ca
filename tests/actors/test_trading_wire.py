"""The grid over the wire: symbol actor -> broker actor -> IBPort -> the real ib_insync ->
loopback TCP -> our TWS API server -> the matching engine, replaying a generated day in
lockstep. The outcome must equal the in-process run's, and the plain model's, by value."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest
from ib_insync import IB, LimitOrder, MarketOrder, Stock

from actors import ledger, reconcile
from actors.brokers.ib import IBMarketData, IBPort
from actors.domain import Instrument, Side
from actors.lot_keeper import LedgerState, LoadLedger, ledger_store
from actors.strategies.grid import GridKind, GridParams
from app.chaos import invariants
from app.compose import LiveSource, live_trading, sim_trading
from config.lotmap import load_lot_map
from sim.engine import Engine
from sim.journal import open_engine
from sim.replay import generated_session, trades
from sim.tws.server import TwsServer
from supervisors import Supervisor
from tests.tws_venue import TQQQ, client_protocol_errors, until

from .test_trading_loop import cross_check
from .trading_checks import StepChecker, check_agreement

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
ALL_OPEN_ORDERS = 16
"""reqAllOpenOrders' message id: one per reading of the books."""


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync is asyncio-native; real clocks (real sockets, the store's thread)."""
    return "asyncio"


@pytest.mark.parametrize("version", [157, 176])
async def test_a_generated_day_over_the_wire_equals_the_plain_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, version: int
) -> None:
    """Every order crosses the socket, at server version 157 and 176; the books agree after
    every step and at the end; the result is the plain model's; zero protocol errors on both
    sides."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    engine = Engine()
    server = TwsServer(
        engine,
        instruments=[TQQQ],
        clock=lambda: engine.last_trade_at or bars[0].start,
        max_version=version,
    )
    checkers: list[StepChecker] = []
    async with anyio.create_task_group() as venue:
        port_number = await venue.start(server.serve)
        trading = sim_trading(
            data_dir=tmp_path / "ledger",
            bars=bars,
            lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
            engine=engine,
            port=IBPort(host="127.0.0.1", port=port_number, client_id=1, timeout=5, max_requests=0),
            on_step=lambda: checkers[0](),
        )
        checkers.append(StepChecker(trading, "TQQQ"))
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await trading.finished.wait()
                keeper = trading.cells["lot-keeper"].ref
                ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                root.stop()
        venue.cancel_scope.cancel()
    assert root.restarts == 0
    check_agreement(trading, ledger, "TQQQ")
    cross_check(trading, ledger, bars)
    assert checkers[0].checks > 0
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_dropped_connections_and_a_venue_restart_over_the_wire_heal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Over the wire, the server drops the client (also in the middle of a fill) and the venue
    restarts overnight: the broker actor crashes on the lost connection, reconnects with
    backoff, the symbol actor reconciles through ib_insync, and the books agree at the end."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = generated_session(seed=7, day=date(2026, 11, 24)) + generated_session(
        seed=8, day=date(2026, 11, 25)
    )
    engine = Engine()
    server = TwsServer(
        engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start
    )
    faults: list[str] = []

    async def chaos() -> None:
        seen = 0
        while len(faults) < 5 and not trading.finished.is_set():
            await anyio.sleep(0.002)
            session = server.sessions.get(1)
            if session is None or len(engine.executions) <= seen:
                continue
            seen = len(engine.executions) + 2
            kind = ("disconnect_after", "kick", "restart")[len(faults) % 3]
            if kind == "disconnect_after":
                session.link.disconnect_after(1)
            elif kind == "kick":
                server.kick(1)
            else:
                engine.restart()
            faults.append(kind)

    async with anyio.create_task_group() as venue:
        port_number = await venue.start(server.serve)
        trading = sim_trading(
            data_dir=tmp_path / "ledger",
            bars=bars,
            lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
            engine=engine,
            port=IBPort(host="127.0.0.1", port=port_number, client_id=1, timeout=5, max_requests=0),
        )
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(180):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                tg.start_soon(chaos)
                await trading.finished.wait()
                keeper = trading.cells["lot-keeper"].ref
                ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                root.stop()
        venue.cancel_scope.cancel()
    assert len(faults) >= 3, faults
    assert root.restarts > 0
    check_agreement(trading, ledger, "TQQQ")
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_live_trading_on_ib_market_data_over_the_wire(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--broker ib` as against a real TWS: no replay in the bot; the market moves at the
    venue, ticks come back through IB's streaming market data (its own connection), orders go
    out through the broker's; after the market stops and things settle, the books agree."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = generated_session(seed=11, day=date(2026, 11, 23))[:600]
    engine = Engine()
    server = TwsServer(
        engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start
    )
    async with anyio.create_task_group() as venue:
        number = await venue.start(server.serve)
        trading = live_trading(
            data_dir=tmp_path / "ledger",
            lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
            port=IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0),
            feeds=[
                LiveSource(
                    source=IBMarketData(host="127.0.0.1", port=number, client_id=2, max_requests=0),
                    symbols=frozenset({"TQQQ"}),
                )
            ],
        )
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await until(lambda: 2 in server.sessions and server.sessions[2].subscriptions)
                for trade in trades(bars):
                    engine.on_trade(trade.symbol, trade.price, trade.size, trade.at)
                    await anyio.sleep(0.001)
                await anyio.sleep(0.5)  # let the last fills and orders settle
                keeper = trading.cells["lot-keeper"].ref
                ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                root.stop()
        venue.cancel_scope.cancel()
    assert root.restarts == 0
    sides = check_agreement(trading, ledger, "TQQQ", engine)
    assert sides[Side.BUY] >= 2
    assert sides[Side.SELL] >= 1
    assert server.protocol_errors == []
    assert client_errors() == []


async def run_wire(
    tmp_path: Path, engine: Engine, bars: list[Any], *, client_id: int = 1
) -> tuple[Any, LedgerState, TwsServer]:
    """One run of the tree over the wire on ``engine`` until the replay ends, then a stop."""
    server = TwsServer(
        engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start
    )
    async with anyio.create_task_group() as venue:
        number = await venue.start(server.serve)
        trading = sim_trading(
            data_dir=tmp_path / "ledger",
            bars=bars,
            lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
            engine=engine,
            port=IBPort(host="127.0.0.1", port=number, client_id=client_id, max_requests=0),
        )
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await trading.finished.wait()
                keeper = trading.cells["lot-keeper"].ref
                ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                root.stop()
        venue.cancel_scope.cancel()
    return trading, ledger, server


async def test_a_venue_restart_keeps_gtc_sells_and_conditional_buys_and_nothing_needs_fixing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service and the TWS server both stop mid-day; the server restarts on its journal
    with the GTC sells and the conditional buys still working; the service reconnects,
    reconciles (nothing to fix) and finishes the day exactly as the plain model does."""
    client_errors = client_protocol_errors(caplog)
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    journal = tmp_path / "venue.journal"
    cut = len(bars) // 2
    trading, _, first = await run_wire(tmp_path, open_engine(journal), bars[:cut])
    working = [o for o in trading.engine.open_orders() if o.tif.value == "GTC"]
    assert any(o.side is Side.SELL for o in working)
    assert any(o.condition is not None for o in working)
    trading, ledger, second = await run_wire(tmp_path, open_engine(journal), bars)
    assert [a for a in trading.alerts if a.kind == "reconcile"] == []
    check_agreement(trading, ledger, "TQQQ")
    cross_check(trading, ledger, bars)
    assert first.protocol_errors == second.protocol_errors == []
    assert client_errors() == []


async def test_orders_of_another_client_are_foreign_to_reconciliation(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another API client (clientId 9) buys 50 shares and rests a sell for them: reconciling
    through ib_insync reports its order as not ours, leaves it alone, and makes no lot of its
    shares (they are spoken for by its own sell)."""
    client_errors = client_protocol_errors(caplog)
    bars = generated_session(seed=11, day=date(2026, 11, 23))[:200]
    engine = Engine()
    trading, _, _ = await run_wire(tmp_path, engine, bars)
    server = TwsServer(engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at)
    async with anyio.create_task_group() as venue:
        number = await venue.start(server.serve)
        other = IB()
        await other.connectAsync("127.0.0.1", number, clientId=9, timeout=5)
        [contract] = await other.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        buy = other.placeOrder(contract, MarketOrder("BUY", 50, outsideRth=True))
        await until(lambda: (9, buy.order.orderId) in server.by_client_order)
        last = list(trades(bars))[-1]
        engine.on_trade("TQQQ", last.price, 1000, last.at)
        await until(lambda: buy.orderStatus.status == "Filled")
        sell = other.placeOrder(contract, LimitOrder("SELL", 50, 99.0, tif="GTC", outsideRth=True))
        await until(lambda: sell.orderStatus.status == "Submitted")
        port = IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0)
        await port.connect()
        snapshot = (await port.snapshot()).for_symbol("TQQQ")
        await port.close()
        other.disconnect()
        venue.cancel_scope.cancel()
    keeper_state = trading.strategies["grid:TQQQ"]
    foreign = [o for o in snapshot.orders if o.order.ref.startswith("ib:")]
    assert [(o.order.side, o.working) for o in foreign if o.working] == [(Side.SELL, True)]
    ledger_shares = sum(lot.open_shares for lot in keeper_state.open_lots())
    diff, repairs = reconcile.plan(
        symbol="TQQQ",
        strategy="grid",
        ledger=await _ledger(tmp_path),
        broker=snapshot,
        now_ns=0,
        adopt=GridKind(
            GridParams(symbol="TQQQ"), load_lot_map(ROOT / "config/lots/tqqq.csv")
        ).adopt,
    )
    assert snapshot.position("TQQQ").quantity == ledger_shares + 50
    assert diff.orphan_shares == 0
    assert diff.missing_shares == 0
    assert len(diff.foreign_orders) == 1
    assert repairs.intents == ()
    assert server.protocol_errors == []
    assert client_errors() == []


async def _ledger(tmp_path: Path) -> LedgerState:
    store = ledger_store(tmp_path / "ledger")
    with store:
        return store.read(
            lambda txn: LedgerState(
                intents=tuple(ledger.intents(txn, "TQQQ")),
                fills=tuple(ledger.fills(txn)),
                lots=tuple(ledger.lots(txn, "TQQQ")),
                retired=ledger.retired(txn),
            )
        )


async def test_symbol_actors_reconciling_together_share_one_reading_of_the_books(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three symbols over the wire: the broker's connect reads every order once, and that one
    reading answers the three symbol actors' reconciliations at start (no download per
    symbol); the day then trades to agreement for each."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    symbols = {"TQQQ": TQQQ}
    symbols["QQQ"] = Instrument(symbol="QQQ", con_id=900002, long_name="INVESCO QQQ TRUST")
    symbols["SQQQ"] = Instrument(symbol="SQQQ", con_id=900003, long_name="PROSHARES ULTRAPRO SHORT")
    bars = sorted(
        (
            bar
            for seed, symbol in enumerate(symbols, start=21)
            for bar in generated_session(seed=seed, day=date(2026, 11, 23), symbol=symbol)
        ),
        key=lambda bar: (bar.start, bar.symbol),
    )
    lot_map = load_lot_map(ROOT / "config/lots/tqqq.csv")
    engine = Engine()
    server = TwsServer(
        engine,
        instruments=list(symbols.values()),
        clock=lambda: engine.last_trade_at or bars[0].start,
    )
    async with anyio.create_task_group() as venue:
        port_number = await venue.start(server.serve)
        trading = sim_trading(
            data_dir=tmp_path / "ledger",
            bars=bars,
            lots={symbol: lot_map for symbol in symbols},
            engine=engine,
            port=IBPort(host="127.0.0.1", port=port_number, client_id=1, timeout=5, max_requests=0),
        )
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)  # returns once every symbol actor has reconciled
                readings_at_start = server.requests[ALL_OPEN_ORDERS]
                await trading.finished.wait()
                keeper = trading.cells["lot-keeper"].ref
                ledgers = {
                    symbol: await keeper.request(LoadLedger(symbol=symbol), timeout=30)
                    for symbol in symbols
                }
                root.stop()
        venue.cancel_scope.cancel()
    assert readings_at_start == 1
    assert root.restarts == 0
    for symbol, state in ledgers.items():
        tally = invariants.Tally()
        invariants.agreement(engine, state, symbol, tally)
        assert tally.checks > 0
    assert {e.symbol for e in engine.executions} == set(symbols)
    assert server.protocol_errors == []
    assert client_errors() == []
