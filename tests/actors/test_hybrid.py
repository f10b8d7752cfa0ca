"""The seed bot's hybrid configuration, end to end on loopback: prices from the sim venue's
Alpaca server through the real alpaca-py -> the market-data actor -> the symbol actor -> the
broker actor -> the real ib_insync -> the sim venue's TWS API server -> the matching engine that
the same replay moves. In lockstep the outcome must equal the plain model's, by value."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.brokers.ib import IBPort
from actors.domain import OrderFilled, PriceTick
from actors.feeds.alpaca import AlpacaStream
from actors.lot_keeper import LedgerState, LoadLedger
from app.compose import LiveSource, sim_trading
from config.lotmap import load_lot_map
from sim.alpaca.server import AlpacaServer
from sim.engine import Engine
from sim.replay import generated_session, load_bars, trades
from sim.tws.server import TwsServer
from supervisors import Supervisor
from tests.tws_venue import TQQQ, client_protocol_errors

from .test_trading_loop import REAL, cross_check
from .trading_checks import StepChecker, check_agreement

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET = "PKHYBRID", "hybrid-secret-0123456789"


@pytest.fixture
def anyio_backend() -> str:
    """Both SDKs are asyncio-native; real sockets need real clocks."""
    return "asyncio"


async def run_hybrid(tmp_path: Path, bars: list[Any]) -> tuple[Any, LedgerState, dict[str, Any]]:
    engine = Engine()
    tws = TwsServer(engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start)
    alpaca = AlpacaServer(credentials={KEY: SECRET})
    checkers: list[StepChecker] = []
    async with anyio.create_task_group() as venue:
        tws_port = await venue.start(tws.serve)
        await venue.start(alpaca.serve)
        stream = AlpacaStream(key=KEY, secret=SECRET, url=alpaca.url("iex"))
        trading = sim_trading(
            data_dir=tmp_path / "ledger",
            bars=bars,
            lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
            engine=engine,
            port=IBPort(host="127.0.0.1", port=tws_port, client_id=1, timeout=5, max_requests=0),
            on_step=lambda: checkers[0](),
            live=[
                LiveSource(
                    source=stream,
                    symbols=frozenset({"TQQQ"}),
                    publish=lambda t: alpaca.publish_trade(t.symbol, t.price, t.size, t.at),
                )
            ],
        )
        checkers.append(StepChecker(trading, "TQQQ"))
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(300):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await trading.finished.wait()
                keeper = trading.cells["lot-keeper"].ref
                ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                root.stop()
        venue.cancel_scope.cancel()
    assert root.restarts == 0
    assert checkers[0].checks > 0
    return (
        trading,
        ledger,
        {"stream": stream, "alpaca": alpaca, "tws": tws, "steps": checkers[0].checks},
    )


async def test_a_generated_day_through_alpaca_py_and_ib_insync_equals_the_plain_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every price crosses the Alpaca socket and every order the TWS one: the books agree after
    every step, the outcome is the plain model's, and neither side saw a protocol error."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    trading, ledger, faces = await run_hybrid(tmp_path, bars)
    check_agreement(trading, ledger, "TQQQ")
    cross_check(trading, ledger, bars)
    stream = faces["stream"]
    assert stream.statistics.received == len(list(trades(bars)))
    assert (stream.statistics.malformed, stream.statistics.coalesced) == (0, 0)
    assert stream.statistics.connects == 1
    assert faces["alpaca"].events_of("error") == []
    assert faces["tws"].protocol_errors == []
    assert client_errors() == []


@pytest.mark.skipif(not REAL.exists(), reason="../shared/marketdata is not on this machine")
async def test_real_tqqq_minutes_through_alpaca_py_and_ib_insync_equal_the_plain_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first two real sessions of TQQQ 1-minute bars, the hybrid way: the plain model's
    outcome, by value."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    everything = load_bars(REAL)
    days = sorted({b.start.date() for b in everything})[:2]
    bars = [b for b in everything if b.start.date() in days]
    trading, ledger, faces = await run_hybrid(tmp_path, bars)
    sides = check_agreement(trading, ledger, "TQQQ")
    cross_check(trading, ledger, bars)
    print(
        f"\nhybrid, {len(bars)} real bars ({days[0]}, {days[1]}): {faces['steps']} lockstep "
        f"steps, {faces['stream'].statistics.received} trades through alpaca-py, "
        f"{len(trading.engine.orders)} orders through ib_insync, {dict(sides)}"
    )
    assert faces["stream"].statistics.received == len(list(trades(bars)))
    assert faces["tws"].protocol_errors == []
    assert client_errors() == []


async def test_a_symbol_actors_mailbox_coalesces_price_ticks_but_never_fills(
    tmp_path: Path,
) -> None:
    """Under pressure (the actor not yet taking messages) a newer tick replaces the queued one;
    fills queue in full."""
    trading = sim_trading(
        data_dir=tmp_path / "ledger",
        bars=generated_session(seed=11, day=date(2026, 11, 23))[:10],
        lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
    )
    ref = trading.cells["TQQQ"].ref
    for price in ("50.00", "50.01", "50.02"):
        ref.tell(PriceTick(symbol="TQQQ", price=Decimal(price)))
    for n in range(3):
        ref.tell(
            OrderFilled(
                ref=f"x{n}",
                exec_id=f"e{n}",
                quantity=1,
                price=Decimal("50"),
                commission=Decimal("1"),
            )
        )
    stats = ref.statistics()
    assert (stats.depth, stats.coalesced, stats.dropped) == (4, 2, 0)
