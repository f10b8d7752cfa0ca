"""Option market data from ib_insync over a real socket: the quote and its greeks
(tickOptionComputation) as ``Engine.option_quote`` makes them, live and delayed, moving with the
underlying's trades; generic ticks 100 and 101; snapshots; what IB refuses."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from ib_insync import Option, Stock, Ticker

from sim.engine import Engine
from sim.options import OptionContract, OptionQuote
from sim.options.pricing import bsm_price, years_to_expiry
from sim.tws.server import TwsServer
from tests.sim.tws.clients import Client
from tests.tws_venue import connect, trade, until, venue

pytestmark = pytest.mark.anyio

CALL = OptionContract(underlying="TQQQ", expiry=date(2026, 12, 11), strike=50, right="C")
PUT = OptionContract(underlying="TQQQ", expiry=date(2026, 12, 11), strike=48, right="P")


def contract_of(option: OptionContract, client: Client | None = None) -> Option:
    """``option`` as ib_insync's ``Option`` (or as the ``client``'s library's)."""
    kind = client.api.Option if client is not None else Option
    return kind("TQQQ", option.last_trade_date, float(option.strike), option.right.value, "SMART")


def quote_now(server: TwsServer, option: OptionContract) -> OptionQuote:
    quote = server.engine.option_quote(option, server.clock())
    assert quote is not None
    return quote


def shows(ticker: Ticker, quote: OptionQuote) -> bool:
    """Whether the ticker holds the quote: prices, sizes, volume and the model's greeks."""
    model = ticker.modelGreeks
    return (
        model is not None
        and model.undPrice == float(quote.underlying_price)
        and (ticker.bid, ticker.ask, ticker.last)
        == (float(quote.bid), float(quote.ask), float(quote.last))
        and (ticker.bidSize, ticker.askSize, ticker.volume)
        == (quote.bid_size, quote.ask_size, quote.volume)
        and (model.impliedVol, model.delta, model.optPrice, model.pvDividend)
        == (quote.implied_vol, quote.delta, quote.model_price, quote.pv_dividend)
        and (model.gamma, model.vega, model.theta) == (quote.gamma, quote.vega, quote.theta)
    )


async def test_an_options_quote_and_greeks_stream_as_the_engine_prices_them(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    """Bid, ask, last, sizes, volume and the model's greeks equal ``Engine.option_quote`` at
    the venue's time, and move with each trade of the underlying; the bid's, ask's and last's
    computations carry the volatility their price implies."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine, client.version) as server:
        ib = await client.connect(server)
        [contract] = await ib.qualifyContractsAsync(contract_of(CALL, client))
        ticker = ib.reqMktData(contract)
        await until(lambda: shows(ticker, quote_now(server, CALL)))
        first = quote_now(server, CALL)
        trade(engine, "51.20", 100, 7)
        await until(lambda: shows(ticker, quote_now(server, CALL)))
        moved = quote_now(server, CALL)
        assert moved.model_price > first.model_price
        for greeks, price in (
            (ticker.bidGreeks, moved.bid),
            (ticker.askGreeks, moved.ask),
            (ticker.lastGreeks, moved.last),
        ):
            assert greeks is not None
            assert greeks.optPrice == float(price)
            assert greeks.undPrice == 51.2
            assert greeks.impliedVol is not None
            at_vol = bsm_price(
                "C",
                spot=51.2,
                strike=50.0,
                years=years_to_expiry(moved.at, CALL.expiry),
                vol=greeks.impliedVol,
                rate=engine.options.rate,
            )
            assert math.isclose(at_vol, float(price), abs_tol=1e-6)
        assert ticker.bidGreeks is not None
        assert ticker.askGreeks is not None
        assert ticker.bidGreeks.impliedVol < moved.implied_vol < ticker.askGreeks.impliedVol
        ib.cancelMktData(contract)
        await ib.reqCurrentTimeAsync()
        assert all(not s.subscriptions for s in server.sessions.values())
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_delayed_data_comes_with_the_delayed_tick_types(
    client: Client, client_errors: Callable[[], list[str]]
) -> None:
    """After reqMarketDataType(3): bid, ask, last 66/67/68, sizes 69/70/71, volume 74 and the
    computations 80 to 83, none of the live ones."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine, client.version) as server:
        ib = await client.connect(server)
        ib.reqMarketDataType(3)
        computed: list[int] = []
        # the clients keep no tick list of the computations: see them as its wrapper is told
        on_computation = ib.wrapper.tickOptionComputation

        def seen(req_id: int, tick_type: int, *rest: Any) -> None:
            computed.append(tick_type)
            on_computation(req_id, tick_type, *rest)

        ib.wrapper.tickOptionComputation = seen  # type: ignore[method-assign]
        ticker = ib.reqMktData(contract_of(PUT, client))
        types: set[int] = set()
        ticker.updateEvent += lambda t: types.update(tick.tickType for tick in t.ticks)
        await until(lambda: shows(ticker, quote_now(server, PUT)))
        ib.disconnect()
    assert computed[:4] == [80, 81, 82, 83]
    assert set(computed) == {80, 81, 82, 83}
    # (69 and 70 come too, but ib_insync records a size tick only when it changes the size
    # its tickPrice already set)
    assert {66, 67, 68, 71, 74} <= types
    assert types.isdisjoint({0, 1, 2, 3, 4, 5, 8})
    assert ticker.bidGreeks is not None
    assert ticker.lastGreeks is not None
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize("option", [CALL, PUT], ids=["call", "put"])
async def test_generic_ticks_100_and_101_give_an_options_volume_and_open_interest(
    option: OptionContract, client_errors: Callable[[], list[str]]
) -> None:
    """A call's as call volume and open interest (29, 27), a put's as put (30, 28)."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        ticker = ib.reqMktData(contract_of(option), "100,101")
        quote = quote_now(server, option)
        if option is CALL:
            await until(lambda: ticker.callOpenInterest == quote.open_interest)
            assert ticker.callVolume == quote.volume
            assert ticker.putVolume != ticker.putVolume  # nan
        else:
            await until(lambda: ticker.putOpenInterest == quote.open_interest)
            assert ticker.putVolume == quote.volume
            assert ticker.callVolume != ticker.callVolume
        ib.disconnect()
    assert quote.open_interest > 0
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_generic_ticks_on_the_stock_total_its_listed_chain(
    client_errors: Callable[[], list[str]],
) -> None:
    """Call and put volume and open interest of the underlying: the sums over its chain."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        ticker = ib.reqMktData(Stock("TQQQ", "SMART", "USD"), "100,101")
        chain = server.option_chain("TQQQ")
        assert chain is not None
        quotes = [quote_now(server, c) for c in chain.contracts()]
        calls = [q for q in quotes if q.contract.right.value == "C"]
        puts = [q for q in quotes if q.contract.right.value == "P"]
        await until(lambda: ticker.putOpenInterest == sum(q.open_interest for q in puts))
        assert ticker.callOpenInterest == sum(q.open_interest for q in calls)
        assert ticker.callVolume == sum(q.volume for q in calls)
        assert ticker.putVolume == sum(q.volume for q in puts)
        assert ticker.last == 50.0
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_snapshot_sends_it_all_once_then_ends(
    client_errors: Callable[[], list[str]],
) -> None:
    """reqTickers: the quote and the greeks, tickSnapshotEnd, no subscription left."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        [ticker] = await ib.reqTickersAsync(contract_of(CALL))
        assert shows(ticker, quote_now(server, CALL))
        assert ticker.bidGreeks is not None
        assert ticker.askGreeks is not None
        assert all(not s.subscriptions for s in server.sessions.values())
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize(
    ("generic", "snapshot", "cause"),
    [
        ("233", False, "Incorrect generic tick list of 233.  Legal ones for (OPT) are: 100"),
        ("100,abc", False, "Incorrect generic tick list of abc"),
        ("101", True, "Snapshot market data subscription is not applicable to generic ticks"),
    ],
)
async def test_generic_ticks_the_venue_does_not_serve_are_refused_with_321(
    generic: str, snapshot: bool, cause: str, client_errors: Callable[[], list[str]]
) -> None:
    """An unknown generic tick, or generic ticks with a snapshot: 321, no ticks, no line."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        errors: list[tuple[int, str]] = []
        ib.errorEvent += lambda _id, code, msg, _contract: errors.append((code, msg))
        ticker = ib.reqMktData(contract_of(CALL), generic, snapshot=snapshot)
        await until(lambda: errors)
        await ib.reqCurrentTimeAsync()
        assert all(not s.subscriptions for s in server.sessions.values())
        ib.disconnect()
    [(code, message)] = errors
    assert code == 321
    assert message.startswith("Error validating request.-'bW' : cause - ")
    assert cause in message
    assert ticker.bid != ticker.bid  # nan: never a tick
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_no_quote_streams_once_the_option_has_expired(
    client_errors: Callable[[], list[str]],
) -> None:
    """Friday after the close a Friday option is still listed (until the day ends) but has
    no quote: the subscription is answered and stays silent."""
    engine = Engine()
    friday = OptionContract(underlying="TQQQ", expiry=date(2026, 11, 27), strike=50, right="C")
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        ticker = ib.reqMktData(contract_of(friday))
        await until(lambda: shows(ticker, quote_now(server, friday)))
        updates: list[Ticker] = []
        ticker.updateEvent += updates.append
        after_close = server.clock().replace(day=27, hour=16, minute=30)
        engine.on_trade("TQQQ", engine.last["TQQQ"], 100, after_close)
        assert engine.option_quote(friday, server.clock()) is None
        late = ib.reqMktData(contract_of(friday))
        await ib.reqCurrentTimeAsync()
        ib.disconnect()
    assert late.bid != late.bid
    assert updates == []
    assert server.protocol_errors == []
    assert client_errors() == []
