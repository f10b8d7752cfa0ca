"""Options at the TWS face: which the venue lists (``sim.tws.listing``), how a contract names
one (``sim.tws.contracts``), and what qualification and contract details give a client.
Through ib_insync over a real socket at server versions 157 and 176, and the listing rule and
the resolver on their own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import pytest
from ib_insync import Contract, LimitOrder, Option
from ib_insync.decoder import Decoder

from actors.domain import Instrument, PlaceOrder, Side, TimeInForce
from sim.engine import Engine
from sim.options import OptionContract, expiries, monthly_expiries, strike_grid
from sim.tws import messages as m
from sim.tws.contracts import option_mismatch, option_named
from sim.tws.listing import Listing, ListingError, listed_chain, reference_price
from sim.tws.orders import WireContract
from sim.tws.server import TwsServer
from tests.tws_venue import MONDAY, TQQQ, connect, trade, until, venue

pytestmark = pytest.mark.anyio

DEC11 = OptionContract(underlying="TQQQ", expiry=date(2026, 12, 11), strike=50, right="C")
FAR = OptionContract(underlying="TQQQ", expiry=date(2026, 12, 11), strike=100, right="C")
"""Off the grid around 50 (30 to 70)."""


@pytest.mark.parametrize("version", [157, 176])
async def test_qualifying_a_listed_option_fills_its_con_id_local_symbol_and_class(
    version: int, client_errors: Callable[[], list[str]]
) -> None:
    """``qualifyContracts(Option('TQQQ', '20261211', 50, 'C', 'SMART'))`` gives the contract
    its conId, OCC local symbol, trading class and multiplier; its details name the
    underlying, the last trade time and the order types, STP and STP LMT among them."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine, version) as server:
        ib = await connect(server)
        option = Option("TQQQ", "20261211", 50, "C", "SMART")
        [qualified] = await ib.qualifyContractsAsync(option)
        assert qualified.conId == DEC11.con_id
        assert qualified.localSymbol == "TQQQ  261211C00050000"
        assert qualified.tradingClass == "TQQQ"
        assert qualified.multiplier == "100"
        assert qualified.lastTradeDateOrContractMonth == "20261211"
        [details] = await ib.reqContractDetailsAsync(Contract(conId=DEC11.con_id))
        ib.disconnect()
    contract = details.contract
    assert contract is not None
    assert (contract.secType, contract.strike, contract.right) == ("OPT", 50.0, "C")
    assert (contract.exchange, contract.currency, contract.symbol) == ("SMART", "USD", "TQQQ")
    assert details.underConId == TQQQ.con_id
    assert (details.underSymbol, details.underSecType) == ("TQQQ", "STK")
    assert details.realExpirationDate == "20261211"
    assert details.lastTradeTime == "16:00:00"
    assert details.contractMonth == "202612"
    assert details.minTick == 0.01
    assert details.timeZoneId == "US/Eastern"
    assert {"LMT", "MKT", "STP", "STPLMT"} <= set(details.orderTypes.split(","))
    assert details.validExchanges == "SMART"
    assert server.protocol_errors == []
    assert client_errors() == []


# Contracts that name the listed Dec 11 50 call, each another way.
NAMES: dict[str, Callable[[], Contract]] = {
    "symbol_expiry_strike_right": lambda: Option("TQQQ", "20261211", 50, "C", "SMART"),
    "right_spelled_out": lambda: Option("TQQQ", "20261211", 50.0, "CALL", "SMART", "100", "USD"),
    "con_id_alone": lambda: Contract(conId=DEC11.con_id),
    "con_id_and_sec_type": lambda: Contract(conId=DEC11.con_id, secType="OPT"),
    "local_symbol": lambda: Contract(
        secType="OPT", localSymbol="TQQQ  261211C00050000", exchange="SMART"
    ),
    "every_field": lambda: Contract(
        conId=DEC11.con_id,
        symbol="TQQQ",
        secType="OPT",
        lastTradeDateOrContractMonth="20261211",
        strike=50.0,
        right="C",
        multiplier="100",
        exchange="SMART",
        primaryExchange="SMART",
        currency="USD",
        localSymbol="TQQQ  261211C00050000",
        tradingClass="TQQQ",
    ),
}
# Contracts that come close to a listed option, each off by one field.
NOT_LISTED: dict[str, Callable[[], Contract]] = {
    "a_strike_off_the_ladder": lambda: Option("TQQQ", "20261211", 50.5, "C", "SMART"),
    "a_strike_beyond_the_grid": lambda: Option("TQQQ", "20261211", 71, "C", "SMART"),
    "a_thursday": lambda: Option("TQQQ", "20261210", 50, "C", "SMART"),
    "an_expiry_past_the_listing": lambda: Option("TQQQ", "20270122", 50, "C", "SMART"),
    "an_expired_friday": lambda: Option("TQQQ", "20261120", 50, "C", "SMART"),
    "a_contract_month": lambda: Option("TQQQ", "202612", 50, "C", "SMART"),
    "no_right": lambda: Option("TQQQ", "20261211", 50, "", "SMART"),
    "no_strike": lambda: Option("TQQQ", "20261211", 0.0, "C", "SMART"),
    "a_bad_right": lambda: Option("TQQQ", "20261211", 50, "X", "SMART"),
    "another_exchange": lambda: Option("TQQQ", "20261211", 50, "C", "CBOE"),
    "another_currency": lambda: Option("TQQQ", "20261211", 50, "C", "SMART", currency="EUR"),
    "another_multiplier": lambda: Option("TQQQ", "20261211", 50, "C", "SMART", "10"),
    "another_trading_class": lambda: Option(
        "TQQQ", "20261211", 50, "C", "SMART", tradingClass="QQQ"
    ),
    "a_local_symbol_of_another_strike": lambda: Option(
        "TQQQ", "20261211", 50, "C", "SMART", localSymbol="TQQQ  261211C00051000"
    ),
    "con_id_with_another_strike": lambda: Contract(conId=DEC11.con_id, strike=51.0),
    "con_id_with_another_symbol": lambda: Contract(conId=DEC11.con_id, symbol="SPY"),
    "con_id_as_a_stock": lambda: Contract(conId=DEC11.con_id, secType="STK"),
    "an_unlisted_con_id": lambda: Contract(conId=FAR.con_id, secType="OPT"),
    "an_underlying_not_traded": lambda: Option("SPY", "20261211", 50, "C", "SMART"),
}


@pytest.mark.parametrize("name", sorted(NAMES))
async def test_a_listed_option_resolves_by_any_name_that_agrees(
    name: str, client_errors: Callable[[], list[str]]
) -> None:
    """By symbol, expiry, strike and right, by conId, by OCC local symbol, by all of them."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        [details] = await ib.reqContractDetailsAsync(NAMES[name]())
        ib.disconnect()
    assert details.contract is not None
    assert details.contract.conId == DEC11.con_id
    assert details.contract.localSymbol == DEC11.local_symbol
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize("name", sorted(NOT_LISTED))
async def test_an_option_not_listed_gets_200_for_details_market_data_history_and_orders(
    name: str, client_errors: Callable[[], list[str]]
) -> None:
    """Each request naming it gets 200 for its own id: no details, no ticks, no bars, no
    order reaches the engine (not as the stock's either)."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        codes: list[int] = []
        ib.errorEvent += lambda _id, code, _msg, _contract: codes.append(code)
        contract = NOT_LISTED[name]()
        assert await ib.reqContractDetailsAsync(contract) == []
        ticker = ib.reqMktData(contract)
        bars = await ib.reqHistoricalDataAsync(contract, "", "1 D", "1 min", "MIDPOINT", True)
        assert list(bars) == []
        placed = ib.placeOrder(contract, LimitOrder("BUY", 1, 1.50, orderRef="opt:1"))
        await until(lambda: placed.orderStatus.status == "Cancelled")
        assert codes == [200, 200, 200, 200]
        trade(engine, "50.10", 100, 1)
        await ib.reqCurrentTimeAsync()  # answered after any tick of that trade
        ib.disconnect()
    assert ticker.bid != ticker.bid  # nan: never a tick
    assert engine.orders == {}
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_nothing_is_listed_on_an_underlying_that_has_never_traded() -> None:
    """No reference price, no strikes: 200."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        assert await ib.reqContractDetailsAsync(dec11_call()) == []
        ib.disconnect()
    assert server.resolve(_wire(DEC11)) is None


def dec11_call() -> Contract:
    return Option("TQQQ", "20261211", 50, "C", "SMART")


def _wire(option: OptionContract) -> WireContract:
    return WireContract(
        symbol=option.underlying,
        sec_type="OPT",
        last_trade_date=option.last_trade_date,
        strike=float(option.strike),
        right=option.right.value,
        exchange="SMART",
    )


async def test_the_strikes_hold_through_the_day_and_move_with_the_next_days_first_trade(
    client_errors: Callable[[], list[str]],
) -> None:
    """Monday's grid is laid around Monday's first trade however far the price runs; on
    Tuesday, before its first trade, around Monday's last; then around Tuesday's first. An
    option with a working order stays listed until it expires, though the grid moved away."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    server_listing = Listing(weeks=2, months=0, each_side=2)
    low = OptionContract(underlying="TQQQ", expiry=date(2026, 12, 4), strike=48, right="P")
    other = OptionContract(underlying="TQQQ", expiry=date(2026, 12, 4), strike=49, right="P")
    async with venue(engine) as server:
        server.listing = server_listing
        chain = server.option_chain("TQQQ")
        assert chain is not None
        assert chain.strikes == tuple(Decimal(s) for s in (48, 49, 50, 51, 52))
        assert chain.expiries == (date(2026, 11, 27), date(2026, 12, 4))
        trade(engine, "60.00", 100, 5)  # Monday, still: the grid holds
        assert server.option_chain("TQQQ") == chain
        engine.place(
            PlaceOrder(
                ref="held", symbol=low.local_symbol, side=Side.BUY, quantity=1,
                limit=Decimal("0.05"), tif=TimeInForce.GTC,
            ),
            MONDAY.replace(minute=6),
        )  # fmt: skip
        tuesday = MONDAY + timedelta(days=1)
        engine.on_trade("SPY", Decimal(400), 1, tuesday)  # the venue's clock is Tuesday's
        moved = server.option_chain("TQQQ")
        assert moved is not None
        assert moved.strikes == tuple(Decimal(s) for s in (58, 59, 60, 61, 62))
        engine.on_trade("TQQQ", Decimal("55.00"), 100, tuesday.replace(minute=1))
        today = server.option_chain("TQQQ")
        assert today is not None
        assert today.strikes == tuple(Decimal(s) for s in (53, 54, 55, 56, 57))
        held = server.resolve(_wire(low))
        assert held is not None
        assert (held.symbol, held.con_id) == (low.local_symbol, low.con_id)
        assert server.resolve(_wire(other)) is None
        ib = await connect(server)
        [details] = await ib.reqContractDetailsAsync(Contract(conId=low.con_id))
        assert details.contract is not None
        assert details.contract.localSymbol == low.local_symbol
        ib.disconnect()
    assert client_errors() == []


async def test_an_order_on_a_qualified_option_reaches_the_engine_by_its_occ_symbol(
    client_errors: Callable[[], list[str]],
) -> None:
    """The order path is the stock's: the resolved instrument's symbol is the OCC symbol."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        [option] = await ib.qualifyContractsAsync(dec11_call())
        placed = ib.placeOrder(option, LimitOrder("BUY", 2, 0.05, orderRef="occ:1"))
        await until(lambda: "occ:1" in engine.orders)
        ib.disconnect()
    assert engine.orders["occ:1"].symbol == DEC11.local_symbol
    assert placed.order.orderId > 0
    instrument = server.resolve(_wire(DEC11))
    assert instrument is not None
    assert server.option_of(instrument) == DEC11
    assert server.option_of(TQQQ) is None
    assert server.protocol_errors == []
    assert client_errors() == []


def test_the_listing_is_the_weeklies_and_monthlies_around_the_reference() -> None:
    """Weeks of weeklies, months of monthlies (deduplicated, ascending), the strike grid."""
    monday = date(2026, 11, 23)
    chain = listed_chain("TQQQ", Decimal("50.00"), monday, Listing())
    assert set(chain.expiries) == set(expiries(monday, weeks=8)) | set(
        monthly_expiries(monday, months=3)
    )
    assert list(chain.expiries) == sorted(chain.expiries)
    assert date(2027, 2, 19) in chain.expiries  # a monthly past the eight weeks
    assert date(2026, 12, 24) in chain.expiries  # Christmas Friday moves to Thursday
    assert chain.strikes == strike_grid(Decimal("50.00"), each_side=20)


def test_the_reference_is_the_first_trade_of_the_day_else_the_last_before() -> None:
    opens = {"TQQQ": (date(2026, 11, 23), Decimal(50))}
    last = {"TQQQ": Decimal(60)}
    assert reference_price(date(2026, 11, 23), opens, last, "TQQQ") == Decimal(50)
    assert reference_price(date(2026, 11, 24), opens, last, "TQQQ") == Decimal(60)
    assert reference_price(date(2026, 11, 24), {}, {}, "TQQQ") is None


@pytest.mark.parametrize(
    ("field", "value"), [("weeks", 0), ("months", -1), ("each_side", -1), ("weeks", True)]
)
def test_a_listing_refuses_counts_out_of_range(field: str, value: object) -> None:
    with pytest.raises(ListingError, match=f"listing.{field}"):
        Listing(**{field: value})  # type: ignore[arg-type]


def test_the_resolver_names_the_field_that_disagrees() -> None:
    """``option_mismatch`` names the first field off; ``option_named`` why none is named."""
    wire = _wire(DEC11)
    assert option_named(wire) == DEC11
    assert option_mismatch(wire, DEC11) is None
    other = WireContract(symbol="TQQQ", sec_type="OPT", exchange="CBOE")
    assert option_mismatch(other, DEC11) == "exchange='CBOE'"
    partial = WireContract(symbol="TQQQ", sec_type="OPT", last_trade_date="20261211")
    assert option_named(partial) == "strike: not given"
    assert "YYYYMMDD" in str(option_named(WireContract(symbol="TQQQ", sec_type="OPT")))


def test_an_engine_symbol_is_a_stock_or_an_option_at_the_face() -> None:
    """``instrument_of``: the stock, an option by its OCC symbol (listed or not), or None."""
    server = TwsServer(Engine(), instruments=[TQQQ], clock=lambda: MONDAY)
    assert server.instrument_of("TQQQ") is TQQQ
    option = server.instrument_of(FAR.local_symbol)
    assert option == server.option_instrument(FAR)
    assert option is not None
    assert (option.symbol, option.con_id, option.trading_class) == (
        FAR.local_symbol,
        FAR.con_id,
        "TQQQ",
    )
    assert server.instrument_of("SPY   261211C00050000") is None
    assert server.instrument_of("SPY") is None


def test_an_options_contract_fields_decode_as_ib_insync_reads_a_position() -> None:
    """The option layout of a position message (61) is what ib_insync's decoder makes a
    contract of: conId, OPT, expiry, strike, right, multiplier, OCC symbol, trading class."""
    decoded: list[tuple[str, Contract, float, float]] = []

    class Wrapper:
        def position(self, account: str, contract: Contract, pos: float, cost: float) -> None:
            decoded.append((account, contract, pos, cost))

    decoder = Decoder(Wrapper(), 176)  # type: ignore[no-untyped-call]
    fields = [61, 3, "DU1", *m.option_contract_fields(DEC11, primary=False), 2.0, 250.0]
    decoder.interpret([str(f) for f in fields])  # type: ignore[no-untyped-call]
    [(account, contract, position, cost)] = decoded
    assert (account, position, cost) == ("DU1", 2.0, 250.0)
    assert (contract.conId, contract.secType, contract.symbol) == (DEC11.con_id, "OPT", "TQQQ")
    assert (contract.lastTradeDateOrContractMonth, contract.strike, contract.right) == (
        "20261211",
        50.0,
        "C",
    )
    assert (contract.multiplier, contract.localSymbol, contract.tradingClass) == (
        "100",
        DEC11.local_symbol,
        "TQQQ",
    )
    assert len(m.option_contract_fields(DEC11)) == len(m.contract_fields(TQQQ))


async def test_a_con_id_two_underlyings_options_share_names_neither(
    client_errors: Callable[[], list[str]],
) -> None:
    """Option conIds are hashed per underlying, so two underlyings may list options with one
    conId (DV's 905 put of one week and UI's 30 call of the week before do). That conId then
    resolves to neither (200, never the wrong contract), and each still resolves by its
    symbol, expiry, strike and right."""
    dv = Instrument(symbol="DV", con_id=900101)
    ui = Instrument(symbol="UI", con_id=900102)
    week = expiries(MONDAY.date(), weeks=2)
    put = OptionContract(underlying="DV", expiry=week[1], strike=905, right="P")
    call = OptionContract(underlying="UI", expiry=week[0], strike=30, right="C")
    assert put.con_id == call.con_id  # the collision this test is about
    engine = Engine()
    engine.on_trade("DV", Decimal("905.00"), 100, MONDAY)
    engine.on_trade("UI", Decimal("30.00"), 100, MONDAY)
    server = TwsServer(engine, instruments=[dv, ui], clock=lambda: MONDAY)
    assert server.resolve(WireContract(con_id=put.con_id)) is None
    for option in (put, call):
        named = WireContract(
            symbol=option.underlying,
            sec_type="OPT",
            last_trade_date=option.last_trade_date,
            strike=float(option.strike),
            right=option.right.value,
            exchange="SMART",
        )
        instrument = server.resolve(named)
        assert instrument is not None
        assert server.option_of(instrument) == option
    assert client_errors() == []
