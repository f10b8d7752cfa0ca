"""Issue 19's scenarios, as an options trader's client lives them, over a real socket against
our TWS API server: look up the chain, qualify this week's at-the-money call, stream its quote
and greeks; bracket entries (a limit parent, a limit take-profit, a stop-loss, one OCA group)
whose take-profit or stop ends them; a bracket whose last leg never comes; a parent cancelled
before it fills; a disconnect and a server restart with a bracket working; expiry of options
held overnight; a what-if order. Zero protocol errors on either side in each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.journal import open_engine
from sim.options import OptionContract
from sim.tws.pacing import PacingLimits
from sim.tws.server import TwsServer
from tests.sim.tws.clients import Client
from tests.tws_venue import MONDAY, TQQQ, Clock, until, venue

pytestmark = pytest.mark.anyio

EXPIRY = date(2026, 11, 27)
"""The week's expiry on MONDAY (2026-11-23): Friday the 27th (Thursday is Thanksgiving)."""
D = Decimal


@asynccontextmanager
async def trading(
    client: Client, client_errors: Callable[[], list[str]]
) -> AsyncIterator[tuple[Engine, TwsServer, Any]]:
    """A venue after TQQQ's first print of Monday, and ``client`` connected to it; on
    leaving, no protocol error on either side."""
    engine = Engine()
    print_trade(engine, "50.02", minute(0))
    async with venue(engine, client.version) as server:
        ib = await client.connect(server)
        yield engine, server, ib
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


def print_trade(engine: Engine, price: str, at: datetime, size: int = 1000) -> None:
    engine.on_trade("TQQQ", D(price), size, at)


def minute(m: int) -> datetime:
    return MONDAY + timedelta(minutes=m)


async def chain_call(ib: Any, client: Client, engine: Engine) -> Any:
    """This week's at-the-money call, found as a client finds it: the chain, then qualify."""
    chains = await ib.reqSecDefOptParamsAsync("TQQQ", "", "STK", TQQQ.con_id)
    [smart] = [c for c in chains if c.exchange == "SMART"]
    today = f"{MONDAY:%Y%m%d}"
    expiry = min(e for e in smart.expirations if e >= today)
    last = float(engine.last["TQQQ"])
    strike = min(smart.strikes, key=lambda k: abs(k - last))
    [call] = await ib.qualifyContractsAsync(client.api.Option("TQQQ", expiry, strike, "C", "SMART"))
    return call


def quote_of(engine: Engine, call: Any, at: datetime) -> tuple[D, D]:
    contract = OptionContract.from_local_symbol(call.localSymbol)
    quote = engine.option_quote(contract, at)
    assert quote is not None
    return quote.bid, quote.ask


def codes_of(ib: Any) -> Callable[[int], list[int]]:
    """The error codes the client heard, by order id."""
    heard: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, _msg, _contract: heard.append((req_id, code))
    return lambda order_id: [code for i, code in heard if i == order_id]


def bracket(
    ib: Any, quantity: int, entry: float, take_profit: float, stop_loss: float, group: str
) -> list[Any]:
    parent, profit, loss = ib.bracketOrder("BUY", quantity, entry, take_profit, stop_loss)
    for child in (profit, loss):
        child.ocaGroup = group
        child.ocaType = 1
        child.tif = parent.tif = "DAY"
    return [parent, profit, loss]


async def test_chain_lookup_qualify_the_atm_call_and_stream_its_quote_and_greeks(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    async with trading(client, client_errors) as (engine, _server, ib):
        call = await chain_call(ib, client, engine)
        assert (call.lastTradeDateOrContractMonth, call.strike, call.right) == (
            f"{EXPIRY:%Y%m%d}",
            50.0,
            "C",
        )
        assert call.localSymbol == "TQQQ  261127C00050000"
        assert (call.multiplier, call.tradingClass) == ("100", "TQQQ")
        assert call.conId == OptionContract.from_local_symbol(call.localSymbol).con_id
        ticker: Any = ib.reqMktData(call, "100,101")
        print_trade(engine, "50.40", minute(1))
        await until(lambda: ticker.modelGreeks is not None and ticker.modelGreeks.undPrice == 50.4)
        quote = engine.option_quote(OptionContract.from_local_symbol(call.localSymbol), minute(1))
        assert quote is not None
        await until(lambda: ticker.bid == float(quote.bid) and ticker.ask == float(quote.ask))
        greeks = ticker.modelGreeks
        assert greeks.impliedVol == pytest.approx(quote.implied_vol)
        assert greeks.delta == pytest.approx(quote.delta)
        assert greeks.gamma == pytest.approx(quote.gamma)
        assert greeks.vega == pytest.approx(quote.vega)
        assert greeks.theta == pytest.approx(quote.theta)
        await until(lambda: ticker.callOpenInterest == quote.open_interest)


async def _enter(ib: Any, client: Client, engine: Engine, group: str) -> tuple[Any, list[Any]]:
    call = await chain_call(ib, client, engine)
    bid, ask = quote_of(engine, call, minute(0))
    legs = bracket(ib, 2, float(ask), round(float(ask) * 1.2, 2), round(float(bid) * 0.8, 2), group)
    trades = [ib.placeOrder(call, leg) for leg in legs]
    await until(lambda: trades[0].orderStatus.status == "Submitted")
    await until(lambda: all(t.orderStatus.status == "PreSubmitted" for t in trades[1:]))
    # the next quote fills the parent at the ask, from the one after it works its exits
    print_trade(engine, "50.02", minute(1))
    await until(lambda: trades[0].orderStatus.status == "Filled")
    # the take-profit works; the stop waits for its trigger, PreSubmitted as at IB
    await until(lambda: [t.orderStatus.status for t in trades[1:]] == ["Submitted", "PreSubmitted"])
    return call, trades


async def test_a_bracket_whose_take_profit_fills_cancels_its_stop_by_oca(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    async with trading(client, client_errors) as (engine, _server, ib):
        codes = codes_of(ib)
        _, (_parent, profit, loss) = await _enter(ib, client, engine, "tp-wins")
        print_trade(engine, "51.20", minute(2))
        await until(lambda: profit.orderStatus.status == "Filled")
        await until(lambda: loss.orderStatus.status == "Cancelled")
        assert profit.orderStatus.filled == 2
        assert loss.orderStatus.filled == 0
        # the 202 and the flat position come in messages after the stop's status
        await until(lambda: codes(loss.order.orderId) == [202])
        await until(lambda: not [p for p in ib.positions() if p.position])


async def test_a_bracket_whose_stop_triggers_cancels_its_take_profit_by_oca(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    async with trading(client, client_errors) as (engine, _server, ib):
        _, (_parent, profit, loss) = await _enter(ib, client, engine, "stop-wins")
        # a double bid/ask trigger: two quotes with the bid at or below the stop
        print_trade(engine, "48.90", minute(2))
        assert loss.orderStatus.status == "PreSubmitted"
        print_trade(engine, "48.85", minute(3))
        await until(lambda: loss.orderStatus.status == "Filled")
        await until(lambda: profit.orderStatus.status == "Cancelled")
        assert loss.orderStatus.filled == 2


async def test_a_bracket_whose_last_leg_never_arrives_never_works(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    async with trading(client, client_errors) as (engine, _server, ib):
        call = await chain_call(ib, client, engine)
        bid, ask = quote_of(engine, call, minute(0))
        parent, profit, _ = bracket(
            ib, 1, float(ask), round(float(ask) + 1, 2), round(float(bid) - 0.5, 2), "g"
        )
        held = [ib.placeOrder(call, parent), ib.placeOrder(call, profit)]
        await until(lambda: all(t.orderStatus.status == "Inactive" for t in held))
        print_trade(engine, "50.02", minute(1))
        print_trade(engine, "52.00", minute(2))
        assert engine.orders == {}
        assert engine.executions == []
        assert all(t.orderStatus.filled == 0 for t in held)


async def test_a_parent_cancelled_before_it_fills_takes_its_children(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    async with trading(client, client_errors) as (engine, _server, ib):
        call = await chain_call(ib, client, engine)
        bid, _ = quote_of(engine, call, minute(0))
        low = round(float(bid) - 0.5, 2)  # below the market: rests
        legs = bracket(ib, 1, low, round(low + 1, 2), round(low - 0.3, 2), "g2")
        trades = [ib.placeOrder(call, leg) for leg in legs]
        await until(lambda: trades[0].orderStatus.status == "Submitted")
        ib.cancelOrder(trades[0].order)
        await until(lambda: all(t.orderStatus.status == "Cancelled" for t in trades))
        assert engine.executions == []


async def test_a_working_bracket_survives_a_disconnect_and_a_server_restart(
    tmp_path: Path, client: Client, client_errors: Callable[[], list[str]]
) -> None:
    journal = tmp_path / "venue.journal"
    engine = open_engine(journal)
    print_trade(engine, "50.02", minute(0))
    async with venue(engine) as server:
        ib = await client.connect(server)
        _call, (parent, profit, loss) = await _enter(ib, client, engine, "kept")
        ib.disconnect()
        await until(lambda: 1 not in server.sessions)
        ib = await client.connect(server)
        legs = {t.order.orderId: t.order for t in ib.openTrades()}
        assert set(legs) == {profit.order.orderId, loss.order.orderId}
        assert all(o.parentId == parent.order.orderId for o in legs.values())
        assert all(o.ocaGroup == "kept" for o in legs.values())
        ib.disconnect()
    reopened = open_engine(journal)
    async with venue(reopened) as server:
        ib = await client.connect(server)
        legs = {t.order.orderId: t.order for t in ib.openTrades()}
        assert set(legs) == {profit.order.orderId, loss.order.orderId}
        assert all(o.parentId == parent.order.orderId for o in legs.values())
        assert all((o.ocaGroup, o.ocaType) == ("kept", 1) for o in legs.values())
        [position] = [p for p in ib.positions() if p.contract.secType == "OPT"]
        assert position.position == 2
        # and the market goes on: the take-profit fills, the stop goes by OCA
        working = {t.order.orderId: t for t in ib.openTrades()}
        print_trade(reopened, "51.30", minute(5))
        await until(lambda: not ib.openTrades())
        assert working[profit.order.orderId].orderStatus.status == "Filled"
        assert working[loss.order.orderId].orderStatus.status == "Cancelled"
        await until(lambda: not [p for p in ib.positions() if p.position])
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_options_held_overnight_into_expiry_are_exercised_or_expire(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    async with trading(client, client_errors) as (engine, server, ib):
        [itm, otm] = await ib.qualifyContractsAsync(
            client.api.Option("TQQQ", f"{EXPIRY:%Y%m%d}", 48, "C", "SMART"),
            client.api.Option("TQQQ", f"{EXPIRY:%Y%m%d}", 45, "P", "SMART"),
        )
        orders = [
            ib.placeOrder(c, client.api.LimitOrder("BUY", 1, 20.0, tif="DAY")) for c in (itm, otm)
        ]
        await until(lambda: all(t.orderStatus.status == "Submitted" for t in orders))
        print_trade(engine, "50.02", minute(1))
        await until(lambda: all(t.orderStatus.status == "Filled" for t in orders))
        friday = datetime(2026, 11, 27, 12, 0, tzinfo=NEW_YORK)
        print_trade(engine, "49.50", friday)
        engine.advance(datetime(2026, 11, 28, 9, 0, tzinfo=NEW_YORK))
        ib.disconnect()
        ib = await client.connect(server)
        positions = {
            p.contract.localSymbol or p.contract.symbol: p.position for p in ib.positions()
        }
        assert positions.get("TQQQ") == 100  # the call exercised into 100 shares
        assert not any(p.contract.secType == "OPT" and p.position for p in ib.positions())
        fills = await ib.reqExecutionsAsync()
        legs = sorted(
            (f.contract.secType, f.contract.localSymbol, f.execution.side, f.execution.price)
            for f in fills
            if f.execution.orderId == 0
        )
        assert legs == [
            ("OPT", itm.localSymbol, "SLD", 0.0),  # the call exercised
            ("OPT", otm.localSymbol, "SLD", 0.0),  # the put expired worthless
            ("STK", "TQQQ", "BOT", 48.0),  # the shares at the strike
        ]
        ib.disconnect()
    settled = [e for e in engine.executions if e.order_id == 0]
    assert sorted(e.ref.partition(":")[0] for e in settled) == ["exercise", "exercise", "expiry"]


async def test_a_what_if_order_on_an_option_is_priced_and_never_placed(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    async with trading(client, client_errors) as (engine, _server, ib):
        call = await chain_call(ib, client, engine)
        _, ask = quote_of(engine, call, minute(0))
        state = await ib.whatIfOrderAsync(call, client.api.LimitOrder("BUY", 3, float(ask)))
        assert float(state.initMarginChange) == pytest.approx(float(ask) * 300)
        assert state.commission == pytest.approx(1.95)
        assert engine.orders == {}
        assert engine.executions == []


async def test_a_client_that_floods_meets_ibs_pacing_errors(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    """With IB's pacing on (``PacingLimits``, two market data lines here): a third line is
    101, and a burst past 50 messages in a second (the client's own throttle off) is 100 for
    each one over, while a client that keeps under them is served."""
    engine = Engine()
    print_trade(engine, "50.02", minute(0))
    seconds = [1000.0]
    server = TwsServer(
        engine,
        instruments=[TQQQ],
        clock=Clock(engine),
        max_version=client.version,
        pacing=PacingLimits(market_data_lines=2),
        pacing_clock=lambda: seconds[0],
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        ib = await client.connect(server)
        heard: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, _msg, _contract: heard.append((req_id, code))
        seconds[0] += 1.0
        call = await chain_call(ib, client, engine)
        tickers = [
            ib.reqMktData(client.api.Option("TQQQ", call.lastTradeDateOrContractMonth, k, "C"))
            for k in (49, 50, 51)
        ]
        await until(lambda: heard)
        assert [code for _, code in heard] == [101]
        seconds[0] += 1.0
        ib.client.MaxRequests = 0
        for _ in range(60):
            ib.client.reqCurrentTime()
        await until(lambda: sum(1 for _, code in heard if code == 100) >= 10)
        seconds[0] += 1.0
        assert await ib.reqCurrentTimeAsync() is not None
        assert all(t.bid == t.bid for t in tickers[:2])
        assert tickers[2].bid != tickers[2].bid
        ib.disconnect()
        tg.cancel_scope.cancel()
    assert server.protocol_errors == []
    assert client_errors() == []
