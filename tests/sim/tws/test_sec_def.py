"""reqSecDefOptParams (message 78 in; 75 per exchange, then 76 out) from ib_insync over a real
socket: the chain the venue lists, the 200 for an underlying it does not trade, nothing for one
that has never traded or another exchange."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sim.engine import Engine
from tests.sim.tws.clients import Client
from tests.tws_venue import TQQQ, connect, trade, venue

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("con_id", [TQQQ.con_id, 0])
@pytest.mark.parametrize("exchange", ["", "SMART"])
async def test_the_chain_lists_the_venues_expiries_and_strikes_on_smart(
    client: Client, con_id: int, exchange: str, client_errors: Callable[[], list[str]]
) -> None:
    """One chain, on SMART: the underlying's conId, its symbol as trading class, 100, every
    listed expiry as YYYYMMDD and every strike, as ``TwsServer.option_chain`` has them."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine, client.version) as server:
        ib = await client.connect(server)
        [chain] = await ib.reqSecDefOptParamsAsync("TQQQ", exchange, "STK", con_id)
        ib.disconnect()
    listed = server.option_chain("TQQQ")
    assert listed is not None
    assert chain.exchange == "SMART"
    assert int(chain.underlyingConId) == TQQQ.con_id
    assert chain.tradingClass == "TQQQ"
    assert chain.multiplier == "100"
    assert chain.expirations == [f"{e:%Y%m%d}" for e in listed.expiries]
    assert chain.strikes == [float(s) for s in listed.strikes]
    assert "20261211" in chain.expirations
    assert 50.0 in chain.strikes
    assert server.requests[78] == 1
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize(
    ("symbol", "sec_type", "con_id"),
    [("SPY", "STK", 0), ("TQQQ", "STK", TQQQ.con_id + 1), ("TQQQ", "IND", 0), ("TQQQ", "", 0)],
)
async def test_an_underlying_the_venue_does_not_trade_gets_200(
    symbol: str, sec_type: str, con_id: int, client_errors: Callable[[], list[str]]
) -> None:
    """An unknown symbol, a conId that is not the symbol's, another secType: 200, no chain."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        codes: list[int] = []
        ib.errorEvent += lambda _id, code, _msg, _contract: codes.append(code)
        assert await ib.reqSecDefOptParamsAsync(symbol, "", sec_type, con_id) == []
        ib.disconnect()
    assert codes == [200]
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize(("traded", "exchange"), [(False, ""), (True, "CBOE")])
async def test_no_chain_before_the_first_trade_or_on_another_exchange(
    traded: bool, exchange: str, client_errors: Callable[[], list[str]]
) -> None:
    """Just the end (76): no error, no chain."""
    engine = Engine()
    if traded:
        trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        codes: list[int] = []
        ib.errorEvent += lambda _id, code, _msg, _contract: codes.append(code)
        assert await ib.reqSecDefOptParamsAsync("TQQQ", exchange, "STK", TQQQ.con_id) == []
        ib.disconnect()
    assert codes == []
    assert server.protocol_errors == []
    assert client_errors() == []
