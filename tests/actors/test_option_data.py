"""OptionData: ``IBOptionData`` through the unmodified ib_insync client over a real socket to
the sim's TWS face (the chain it lists, quotes as ``Engine.option_quote`` makes them, its
NetLiquidation; the day's chain cache, refusals, a dropped connection), ``SimOptionData``
answering the same in-process, IB's answers parsed at the edge, and the ``Pacer``'s spacing."""

from __future__ import annotations

import math
import pickle
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Literal

import anyio
import attrs
import pytest
import trio.testing
from hypothesis import given
from hypothesis import strategies as st
from ib_insync import AccountValue, Stock
from ib_insync import OptionChain as IBChain

from actors.brokers.ib_options import IBOptionData, net_liquidation, parse_chain, parse_quote
from actors.brokers.sim import SimOptionData
from actors.domain import Dividend, OptionChain, OptionQuote, OptionSymbol, Side
from actors.domain.sessions import NEW_YORK
from actors.option_data import ChainCache, OptionData, OptionDataError, Pacer, PacerError
from sim.engine import Engine
from sim.options import OptionContract
from sim.tws.pacing import PacingLimits
from sim.tws.server import TwsServer
from tests.sim.option_desk import order
from tests.tws_venue import TQQQ, Clock, client_protocol_errors, connect, until, venue

pytestmark = pytest.mark.anyio

D = Decimal
GOOD_FRIDAY_WEEK = datetime(2027, 3, 22, 10, 0, tzinfo=NEW_YORK)
"""Monday of the week of Good Friday 2027 (March 26, NYSE closed): the week's options expire
on Thursday the 25th."""
THURSDAY = date(2027, 3, 25)
CALL = OptionSymbol(underlying="TQQQ", expiry=THURSDAY, right="C", strike=D(50)).occ
PUT = OptionSymbol(underlying="TQQQ", expiry=THURSDAY, right="P", strike=D(48)).occ


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # ib_insync is asyncio-native; real sockets, real time


@pytest.fixture
def client_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    return client_protocol_errors(caplog)


def trade(engine: Engine, price: str, at: datetime = GOOD_FRIDAY_WEEK) -> None:
    engine.on_trade("TQQQ", D(price), 100, at)


@asynccontextmanager
async def ib_source(
    server: TwsServer, client_id: int = 7, **options: Any
) -> AsyncIterator[IBOptionData]:
    """``IBOptionData`` on ``server``, its cache dated by the venue's clock."""
    assert server.port is not None
    source = IBOptionData(
        host="127.0.0.1", port=server.port, client_id=client_id, clock=server.clock, **options
    )
    try:
        yield source
    finally:
        await source.close()


def engine_quote(server: TwsServer, symbol: str) -> OptionQuote:
    """``Engine.option_quote`` at the venue's time, as our quote of ``symbol``."""
    quote = server.engine.option_quote(OptionContract.from_local_symbol(symbol), server.clock())
    assert quote is not None
    return OptionQuote(
        symbol=symbol,
        bid=quote.bid,
        ask=quote.ask,
        last=quote.last,
        bid_size=quote.bid_size,
        ask_size=quote.ask_size,
        volume=quote.volume,
        open_interest=quote.open_interest,
        implied_vol=quote.implied_vol,
        delta=quote.delta,
        underlying_price=quote.underlying_price,
    )


# -- IBOptionData over the socket ---------------------------------------------------------------


async def test_the_chain_is_the_venues_listing_with_good_fridays_thursday(
    client_errors: Callable[[], list[str]],
) -> None:
    """In the week of Good Friday 2027 the chain lists Thursday the 25th, not the Friday, and
    every expiry and strike the venue lists on SMART, trading class TQQQ, 100 a contract."""
    engine = Engine()
    trade(engine, "50.00")
    async with venue(engine) as server, ib_source(server) as source:
        chain = await source.chain("TQQQ")
    listed = server.option_chain("TQQQ")
    assert listed is not None
    assert chain == OptionChain(
        underlying="TQQQ",
        exchange="SMART",
        trading_class="TQQQ",
        multiplier=100,
        expirations=listed.expiries,
        strikes=listed.strikes,
    )
    assert THURSDAY in chain.expirations
    assert date(2027, 3, 26) not in chain.expirations
    assert D(50) in chain.strikes
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_the_chain_is_asked_for_once_a_new_york_day(
    client_errors: Callable[[], list[str]],
) -> None:
    """A second call the same day sends no request (one reqContractDetails and one
    reqSecDefOptParams served in all); on the next day the chain is asked for again and is
    that day's, laid around its first trade (the stock's conId is remembered)."""
    engine = Engine()
    trade(engine, "50.00")
    async with venue(engine) as server, ib_source(server) as source:
        first = await source.chain("TQQQ")
        assert await source.chain("TQQQ") == first
        assert (server.requests[9], server.requests[78]) == (1, 1)
        trade(engine, "60.00", GOOD_FRIDAY_WEEK + timedelta(days=1))
        later = await source.chain("TQQQ")
        assert (server.requests[9], server.requests[78]) == (1, 2)
    assert later != first
    assert D(60) in later.strikes
    assert later.strikes == server.option_chain("TQQQ").strikes  # type: ignore[union-attr]
    assert client_errors() == []


@pytest.mark.parametrize("delayed", [False, True], ids=["live", "delayed"])
@pytest.mark.parametrize("symbol", [CALL, PUT], ids=["call", "put"])
async def test_a_quote_is_the_engines_with_volume_and_open_interest(
    symbol: str, delayed: bool, client_errors: Callable[[], list[str]]
) -> None:
    """Bid, ask, last, sizes, the option's volume and open interest (generic ticks 100, 101),
    the model's volatility, delta and underlying price: as ``Engine.option_quote`` has them
    at the venue's time, live or delayed (reqMarketDataType 3); after a trade of the
    underlying the next quote is the new one, not the last subscription's values; every
    subscription is cancelled."""
    engine = Engine()
    trade(engine, "50.00")
    async with (
        venue(engine) as server,
        ib_source(server, market_data_type=3 if delayed else None) as source,
    ):
        quote = await source.quote(symbol)
        assert quote == engine_quote(server, symbol)
        assert quote.volume is not None
        assert quote.open_interest is not None
        trade(engine, "51.20", GOOD_FRIDAY_WEEK + timedelta(minutes=5))
        moved = await source.quote(symbol)
        assert moved == engine_quote(server, symbol)
        assert moved.underlying_price == D("51.20")
        # Both subscriptions are cancelled (reqMktData 1, cancelMktData 2). The second quote
        # may be complete before the venue has even read its request: the first
        # subscription's ticks still in flight after its cancel (the trade's new values, as
        # the venue streams them) reach the same ticker, and they are the venue's current
        # quote, which is all a quote promises.
        await until(
            lambda: (
                server.requests[1] == server.requests[2] == 2
                and all(not s.subscriptions for s in server.sessions.values())
            )
        )
        assert source.ib is not None
        # no listener of ours left behind (ib_insync keeps one of its own on errorEvent)
        assert (len(source.ib.errorEvent), len(source.ib.disconnectedEvent)) == (1, 0)
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize(
    "symbol",
    [
        OptionSymbol(underlying="TQQQ", expiry=THURSDAY, right="C", strike=D(500)).occ,
        OptionSymbol(underlying="TQQQ", expiry=date(2027, 12, 17), right="P", strike=D(50)).occ,
        OptionSymbol(underlying="SQQQ", expiry=THURSDAY, right="C", strike=D(50)).occ,
    ],
    ids=["strike", "expiry", "underlying"],
)
async def test_a_quote_of_an_option_the_venue_does_not_list_is_refused_by_name(
    symbol: str,
) -> None:
    """A strike, an expiry or an underlying the venue does not list: IB's 200, as an
    OptionDataError naming the symbol, from both sources; no market data is asked for."""
    engine = Engine()
    trade(engine, "50.00")
    async with venue(engine) as server, ib_source(server) as source:
        with pytest.raises(OptionDataError, match=rf"^ib: a quote of '{symbol}': error 200: ") as e:
            await source.quote(symbol)
        assert server.requests[1] == 0  # reqMktData
    assert e.value.code == 200
    in_process = SimOptionData(engine, server.clock)
    with pytest.raises(OptionDataError, match=rf"^sim: a quote of '{symbol}': "):
        await in_process.quote(symbol)


async def test_a_quote_without_ticks_has_none_fields_after_the_quote_timeout() -> None:
    """Thursday 16:30: the day's expiry is still listed but has expired, so the venue sends no
    ticks; after ``quote_timeout`` the quote is all None (the caller's filter skips it), as
    the in-process source's, and the subscription is cancelled."""
    engine = Engine()
    trade(engine, "50.00", datetime(2027, 3, 25, 16, 30, tzinfo=NEW_YORK))
    async with venue(engine) as server, ib_source(server, quote_timeout=0.2) as source:
        quote = await source.quote(CALL)
        assert quote == OptionQuote(symbol=CALL, bid=None, ask=None)
        assert await SimOptionData(engine, server.clock).quote(CALL) == quote
        await until(lambda: server.requests[2] == 1)  # cancelMktData


async def test_market_data_the_venue_refuses_raises_with_ibs_code() -> None:
    """A venue allowing one market data line, held by another subscription of the same
    connection: the quote is refused with IB's 101, named, at once (not after the timeout)."""
    engine = Engine()
    trade(engine, "50.00")
    server = TwsServer(
        engine, instruments=[TQQQ], clock=Clock(engine), pacing=PacingLimits(market_data_lines=1)
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        async with ib_source(server, quote_timeout=30) as source:
            await source.equity()  # connected
            assert source.ib is not None
            source.ib.reqMktData(Stock("TQQQ", "SMART", "USD"))
            with anyio.fail_after(5), pytest.raises(OptionDataError) as refused:
                await source.quote(PUT)
        tg.cancel_scope.cancel()
    assert refused.value.code == 101
    assert str(refused.value) == (
        f"ib: a quote of '{PUT}': error 101: Max number of tickers has been reached"
    )


async def test_equity_is_the_venues_net_liquidation(client_errors: Callable[[], list[str]]) -> None:
    """With 100 TQQQ and 2 calls bought and the stock moved since: equity is the
    NetLiquidation another client of the venue reads in its account values, and the summary
    subscription is cancelled (a second and third call are not refused)."""
    engine = Engine()
    trade(engine, "50.00")
    placed = GOOD_FRIDAY_WEEK + timedelta(seconds=1)
    for ref, symbol, quantity in (("stock", "TQQQ", 100), ("calls", CALL, 2)):
        engine.place(order(ref, symbol, Side.BUY, quantity), placed)
    trade(engine, "50.40", GOOD_FRIDAY_WEEK + timedelta(minutes=1))
    trade(engine, "50.80", GOOD_FRIDAY_WEEK + timedelta(minutes=2))
    assert {p.quantity for p in engine.positions.values()} == {100, 2}
    async with venue(engine) as server, ib_source(server, account="DU1234567") as source:
        reader = await connect(server, client_id=2)
        values = {v.tag: v.value for v in reader.accountValues()}
        reader.disconnect()  # type: ignore[no-untyped-call]  # unannotated in ib_insync
        for _ in range(3):
            assert await source.equity() == D(values["NetLiquidation"])
        assert source.ib is not None
        assert len(source.ib.accountSummaryEvent) == 0  # no listener left behind
        await until(lambda: server.requests[63] == 3)  # cancelAccountSummary
    assert D(values["NetLiquidation"]) != D(1_000_000)
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_dropped_connection_is_opened_again_at_the_next_call() -> None:
    """The venue drops the connection: the next call connects again and answers."""
    engine = Engine()
    trade(engine, "50.00")
    async with venue(engine) as server, ib_source(server) as source:
        await source.equity()
        server.kick(7)
        await until(lambda: source.ib is not None and not source.ib.isConnected())
        assert await source.quote(CALL) == engine_quote(server, CALL)
    assert source.connects == 2


async def test_an_unreachable_venue_is_named() -> None:
    """No TWS at the port: OptionDataError naming what was asked and where."""
    source = IBOptionData(host="127.0.0.1", port=9, client_id=7, timeout=2)
    with pytest.raises(OptionDataError, match=r"^ib: the option chain of TQQQ: .*127\.0\.0\.1:9"):
        await source.chain("TQQQ")


async def test_no_chain_before_the_underlying_has_traded() -> None:
    """The venue lists nothing on an underlying that has never traded: OptionDataError, not
    an empty chain, and nothing cached."""
    engine = Engine()
    async with venue(engine) as server, ib_source(server) as source:
        with pytest.raises(OptionDataError, match=r"no options of it on SMART"):
            await source.chain("TQQQ")
        trade(engine, "50.00")
        assert THURSDAY in (await source.chain("TQQQ")).expirations
    with pytest.raises(OptionDataError, match=r"TQQQ has never traded"):
        await SimOptionData(Engine(), server.clock).chain("TQQQ")


async def test_every_request_goes_through_the_pacer() -> None:
    """A chain and a quote: four requests paced (the stock and the option qualified, the
    chain, the market data); a second quote of the same option, one (its market data)."""
    engine = Engine()
    trade(engine, "50.00")
    pacer = Pacer(1000)
    async with venue(engine) as server, ib_source(server, pacer=pacer) as source:
        await source.chain("TQQQ")
        await source.quote(CALL)
        assert pacer.granted == 4
        await source.quote(CALL)
        assert pacer.granted == 5


# -- SimOptionData against IBOptionData on one engine -----------------------------------------


async def test_the_in_process_source_answers_as_ib_does_on_the_same_engine() -> None:
    """On one engine, after a few trades and an option bought: the same chain, the same
    quotes and the same equity from SimOptionData as from IBOptionData through the face."""
    engine = Engine()
    trade(engine, "50.00")
    engine.place(order("calls", CALL, Side.BUY, 3), GOOD_FRIDAY_WEEK + timedelta(seconds=1))
    trade(engine, "49.10", GOOD_FRIDAY_WEEK + timedelta(minutes=3))
    async with venue(engine) as server, ib_source(server) as source:
        in_process: OptionData = SimOptionData(engine, server.clock)
        assert await in_process.chain("TQQQ") == await source.chain("TQQQ")
        chain = await source.chain("TQQQ")
        picks: list[tuple[date, Decimal, Literal["C", "P"]]] = [
            (chain.expirations[0], D(49), "C"),
            (chain.expirations[-1], chain.strikes[0], "P"),
            (chain.expirations[3], chain.strikes[-1], "C"),
        ]
        for expiry, strike, right in picks:
            occ = OptionSymbol(underlying="TQQQ", expiry=expiry, right=right, strike=strike).occ
            assert await in_process.quote(occ) == await source.quote(occ)
        assert await in_process.equity() == await source.equity()
    assert in_process.name == "sim"
    assert source.name == "ib"


async def test_the_in_process_equity_counts_the_dividends_the_engine_paid() -> None:
    """100 shares held over an ex-date paying $0.25: equity is $25 more than the cash and
    positions of the executions alone (the TWS face's NetLiquidation leaves dividends out)."""
    engine = Engine()
    trade(engine, "50.00")
    engine.place(order("stock", "TQQQ", Side.BUY, 100), GOOD_FRIDAY_WEEK + timedelta(seconds=1))
    trade(engine, "50.00", GOOD_FRIDAY_WEEK + timedelta(minutes=1))
    source = SimOptionData(engine, Clock(engine))
    before = await source.equity()
    engine.corporate_action(
        Dividend(symbol="TQQQ", ex_date=date(2027, 3, 23), amount_per_share=D("0.25"))
    )
    assert await source.equity() == before + 25
    [bought] = engine.executions
    assert before == 1_000_000 - bought.commission


# -- parsing IB's answers -----------------------------------------------------------------------

prices = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.just(-1.0), st.just(0.0), st.just(1.25)
)


@given(
    bid=prices,
    ask=prices,
    last=prices,
    sizes=st.tuples(prices, prices, prices, prices, prices, prices, prices),
)
def test_parse_quote_turns_nan_infinities_and_negatives_into_none(
    bid: float, ask: float, last: float, sizes: tuple[float, ...]
) -> None:
    """Whatever IB sent, the quote parses: a price is there exactly when it is a finite
    number >= 0 (a zero bid is a bid), as its shortest repr; counts are whole numbers."""
    ticker = SimpleNamespace(
        bid=bid,
        ask=ask,
        last=last,
        bidSize=sizes[0],
        askSize=sizes[1],
        volume=sizes[2],
        callVolume=sizes[3],
        putVolume=sizes[4],
        callOpenInterest=sizes[5],
        putOpenInterest=sizes[6],
        modelGreeks=None,
    )
    option = OptionSymbol.parse(CALL)
    quote = parse_quote(CALL, option, ticker)

    def expected(value: float) -> Decimal | None:
        return D(repr(value)) if math.isfinite(value) and value >= 0 else None

    assert (quote.bid, quote.ask, quote.last) == (expected(bid), expected(ask), expected(last))
    for count in (quote.bid_size, quote.ask_size, quote.volume, quote.open_interest):
        assert count is None or count >= 0
    assert quote.open_interest == (int(sizes[5]) if expected(sizes[5]) is not None else None)
    assert (quote.implied_vol, quote.delta, quote.underlying_price) == (None, None, None)


def test_parse_chain_prefers_the_smart_standard_class() -> None:
    """SMART with the underlying as trading class over an adjusted class and another exchange;
    the first SMART entry without it; None without SMART. Bad dates and strikes are left out."""
    cboe = IBChain("CBOE", 1, "TQQQ", "100", ["20270325"], [50.0])
    adjusted = IBChain("SMART", 1, "2TQQQ", "150", ["20270326"], [33.33])
    standard = IBChain(
        "SMART",
        1,
        "TQQQ",
        "100",
        ["20270325", "2027-03-26", "20270231"],
        [49.5, 0.0, -1.0, 50.0001, 50.0],
    )
    chain = parse_chain("TQQQ", [cboe, adjusted, standard])
    assert chain == OptionChain(
        underlying="TQQQ",
        exchange="SMART",
        trading_class="TQQQ",
        multiplier=100,
        expirations=(THURSDAY,),
        strikes=(D("49.5"), D(50)),
    )
    fallback = parse_chain("TQQQ", [cboe, adjusted])
    assert fallback is not None
    assert (fallback.trading_class, fallback.multiplier) == ("2TQQQ", 150)
    assert parse_chain("TQQQ", [cboe]) is None


def test_net_liquidation_needs_one_account_in_usd() -> None:
    """The account named, or the only one; several without a name, none, or not USD: refused,
    the accounts masked."""

    def value(account: str, amount: str, currency: str = "USD") -> AccountValue:
        return AccountValue(account, "NetLiquidation", amount, currency, "")

    two = [value("DU1111111", "10.5"), value("DU2222222", "20")]
    assert net_liquidation(two, "DU2222222", source="ib") == D(20)
    assert net_liquidation(two[:1], "", source="ib") == D("10.5")
    with pytest.raises(OptionDataError, match=r"several accounts report one \(\*+111, \*+222\)"):
        net_liquidation(two, "", source="ib")
    with pytest.raises(OptionDataError, match=r"IB reported none for \*+333$"):
        net_liquidation(two, "DU3333333", source="ib")
    with pytest.raises(OptionDataError, match=r"in EUR, not USD"):
        net_liquidation([value("DU1111111", "1", "EUR")], "", source="ib")


# -- the shared helpers ---------------------------------------------------------------------------


def test_the_error_names_source_request_and_reason_and_survives_pickling() -> None:
    """Its fields make its message; a copy through pickle keeps them."""
    error = OptionDataError("ib", "a quote of 'X'", "error 200: no", code=200)
    assert str(error) == "ib: a quote of 'X': error 200: no"
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.code, copy.source) == (str(error), 200, "ib")


def test_the_chain_cache_keeps_a_chain_for_its_new_york_day() -> None:
    """Kept until New York midnight (05:00 UTC in March, after the DST switch 04:00); a
    chain of another day is never answered and is dropped at the next put."""
    now = [datetime(2027, 3, 23, 3, 59, tzinfo=UTC)]  # 23:59 on the 22nd in New York
    cache = ChainCache(lambda: now[0])
    chain = OptionChain(
        underlying="TQQQ",
        exchange="SMART",
        trading_class="TQQQ",
        multiplier=100,
        expirations=(THURSDAY,),
        strikes=(D(50),),
    )
    cache.put(chain)
    assert cache.get("TQQQ") == chain
    now[0] += timedelta(minutes=1)
    assert cache.today() == date(2027, 3, 23)
    assert cache.get("TQQQ") is None
    assert repr(cache) == "ChainCache(['TQQQ'])"
    cache.put(attrs.evolve(chain, underlying="QQQ"))
    assert repr(cache) == "ChainCache(['QQQ'])"


def test_the_pacer_lets_rate_requests_through_in_any_period() -> None:
    """At 3 per second: three at once, then each a second after the third before it (the
    fourth and fifth at 11, the sixth, asked at 10.5, at 11 too: half a second's wait); after
    a quiet spell, three at once again. Rate 0: never a wait."""
    pacer = Pacer(3, per=1.0)
    assert [pacer.reserve(10.0) for _ in range(5)] == [0.0, 0.0, 0.0, 1.0, 1.0]
    assert pacer.reserve(10.5) == 0.5
    assert [pacer.reserve(20.0) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
    assert pacer.granted == 10
    unlimited = Pacer(0)
    assert {unlimited.reserve(1.0) for _ in range(1000)} == {0.0}


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}), id="trio")],
)
async def test_concurrent_callers_are_spaced_among_themselves() -> None:
    """Ten tasks asking at once of a pacer of 4 a second go at 0, 0, 0, 0, 1, 1, 1, 1, 2, 2
    (virtual) seconds."""
    pacer = Pacer(4)
    start = anyio.current_time()
    went: list[float] = []

    async def ask() -> None:
        await pacer.wait()
        went.append(anyio.current_time() - start)

    async with anyio.create_task_group() as tg:
        for _ in range(10):
            tg.start_soon(ask)
    assert sorted(round(t, 6) for t in went) == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]


@pytest.mark.parametrize(("rate", "per"), [(-1, 1.0), (3, 0.0), (3, math.nan)])
def test_a_pacer_refuses_a_bad_rate_or_period(rate: int, per: float) -> None:
    """A negative rate or a period that is not positive: PacerError naming it."""
    with pytest.raises(PacerError, match=r"^(rate|per): "):
        Pacer(rate, per=per)
