"""The grid over the wire: symbol actor -> broker actor -> IBPort -> the real ib_insync ->
loopback TCP -> our TWS API server -> the matching engine, replaying a generated day in
lockstep. The outcome must equal the in-process run's, and the plain model's, by value."""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import anyio
import pytest

from actors.brokers.ib import IBMarketData, IBPort
from actors.domain import Side
from actors.lot_keeper import LedgerState, LoadLedger
from actors.trading import live_trading, sim_trading
from config.lotmap import load_lot_map
from sim.engine import Engine
from sim.replay import generated_session, trades
from sim.tws.server import TwsServer
from supervisors import Supervisor
from tests.tws_venue import TQQQ, client_protocol_errors, until

from .test_trading_loop import cross_check
from .trading_checks import StepChecker, check_agreement

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync is asyncio-native; real clocks (real sockets, the store's thread)."""
    return "asyncio"


async def test_a_generated_day_over_the_wire_equals_the_plain_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every order crosses the socket; the books agree after every step and at the end; the
    result is the plain model's; zero protocol errors on both sides."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    engine = Engine()
    server = TwsServer(
        engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start
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
            source=IBMarketData(host="127.0.0.1", port=number, client_id=2, max_requests=0),
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
