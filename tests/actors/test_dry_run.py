"""Dry-run over the wire: the real ib_insync to our TWS API server (``sim/tws``), as against a
real TWS. Decisions, risk checks and intents (marked dry) all happen; the venue is sent no
order at all; the strategy shows its orders working; reconciliation neither retires, adopts nor
cancels anything because an order was dry; and a later real run retires the dry intents and
trades."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import ledger
from actors.brokers.dry import DryPort
from actors.brokers.ib import IBMarketData, IBPort
from actors.domain import Side
from actors.lot_keeper import LedgerState, LoadLedger
from actors.risk_rules import RiskLimits
from actors.symbol import Resync
from app.compose import LiveSource, live_trading, sim_trading
from app.control.operations import Operations
from config.lotmap import load_lot_map
from sim.engine import Engine
from sim.replay import generated_session, trades
from sim.tws.server import TwsServer
from supervisors import Supervisor
from tests.tws_venue import TQQQ, client_protocol_errors, until

from .trading_checks import check_agreement

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
LOTS = load_lot_map(ROOT / "config/lots/tqqq.csv")


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync is asyncio-native; real clocks (real sockets, the store's thread)."""
    return "asyncio"


async def test_a_dry_run_with_broker_ib_sends_the_venue_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`--broker ib --dry-run` against a TWS: prices from IB's market data, the grid decides,
    the risk actor allows, intents are committed dry, zero orders reach the TWS; status lists
    what would have been sent; a reconciliation finds nothing to do."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = generated_session(seed=11, day=date(2026, 11, 23))[:300]
    engine = Engine()
    server = TwsServer(
        engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start
    )
    async with anyio.create_task_group() as venue:
        number = await venue.start(server.serve)
        trading = live_trading(
            data_dir=tmp_path / "ledger",
            lots={"TQQQ": LOTS},
            port=IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0),
            feeds=[
                LiveSource(
                    source=IBMarketData(host="127.0.0.1", port=number, client_id=2, max_requests=0),
                    symbols=frozenset({"TQQQ"}),
                )
            ],
            risk=RiskLimits(max_open_orders=50),
            dry_run=True,
        )
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await until(lambda: 2 in server.sessions and server.sessions[2].subscriptions)
                for trade in trades(bars):
                    engine.on_trade(trade.symbol, trade.price, trade.size, trade.at)
                    await anyio.sleep(0.001)
                await anyio.sleep(0.5)
                symbol = trading.cells["TQQQ"].ref
                diff = await symbol.request(Resync(), timeout=30)
                keeper = trading.cells["lot-keeper"].ref
                state: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                status = await Operations(trading, root, lambda _: None, mode="dry-run").status()
                root.stop()
        venue.cancel_scope.cancel()
    assert root.restarts == 0
    port = trading.port
    assert isinstance(port, DryPort)
    assert engine.orders == {}
    assert engine.executions == []
    assert state.intents
    assert all(intent.dry for intent in state.intents)
    assert not state.fills
    assert port.sent == len(state.intents)
    grid = trading.strategies["grid:TQQQ"]
    working = {o.ref for o in grid.live_orders()}
    assert working == set(port.orders)
    assert any(o.side is Side.BUY for o in grid.live_orders())
    assert (diff.adopted_orders, diff.retired_intents, diff.cancelled, diff.placed) == (
        (),
        (),
        (),
        (),
    )
    assert status.mode == "dry-run"
    assert status.dry_run is not None
    assert status.dry_run["sent"] == port.sent
    assert {o["ref"] for o in status.dry_run["working"]} == working
    assert status.risk is not None
    assert status.risk["allowed"] == port.sent
    assert server.protocol_errors == []
    assert client_errors() == []


async def run(tmp_path: Path, engine: Engine, bars: list[Any], *, dry_run: bool) -> Any:
    """One run over the wire (embedded TWS API server) on ``engine`` until the replay ends."""
    server = TwsServer(
        engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start
    )
    async with anyio.create_task_group() as venue:
        number = await venue.start(server.serve)
        trading = sim_trading(
            data_dir=tmp_path / "ledger",
            bars=bars,
            lots={"TQQQ": LOTS},
            engine=engine,
            port=IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0),
            dry_run=dry_run,
        )
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await trading.finished.wait()
                keeper = trading.cells["lot-keeper"].ref
                state: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                root.stop()
        venue.cancel_scope.cancel()
    assert root.restarts == 0
    assert server.protocol_errors == []
    return trading, state


async def test_a_real_run_after_a_dry_one_retires_the_dry_intents_and_trades(
    tmp_path: Path,
) -> None:
    """A dry run on the embedded venue sends nothing; its dry intents never reached a broker,
    so the real run on the same ledger retires them (adopting nothing) and trades, and the
    ledger, the venue and the grid agree."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    engine = Engine()
    _, dry = await run(tmp_path, engine, bars[:200], dry_run=True)
    assert engine.orders == {}
    dry_refs = {i.ref for i in dry.intents}
    assert dry_refs
    assert all(i.dry for i in dry.intents)
    trading, state = await run(tmp_path, engine, bars[:400], dry_run=False)
    assert dry_refs <= state.retired
    assert not dry_refs & set(engine.orders)
    assert all(i.origin is ledger.Origin.STRATEGY for i in state.intents)
    assert any(not i.dry for i in state.intents)
    assert engine.executions
    check_agreement(trading, state, "TQQQ")
