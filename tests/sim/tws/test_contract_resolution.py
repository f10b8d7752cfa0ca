"""A contract resolves by every field it gives, for every request that names one: contract
details, market data, historical bars and placeOrder. A contract the venue does not know (an
option on a stock it trades, a stock in another currency, a conId that disagrees with its
symbol) gets error 200 and nothing else: no ticks, no order. Through ib_insync over a real
socket, and the resolver itself field by field."""

from __future__ import annotations

from collections.abc import Callable

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_insync import Contract, Future, LimitOrder, Option, Stock

from actors.brokers.ib import IBPort
from actors.domain import OrderRejected
from sim.engine import Engine
from sim.tws.contracts import mismatch, resolve
from sim.tws.orders import WireComboLeg, WireContract
from tests.tws_venue import TQQQ, connect, trade, until, venue

pytestmark = pytest.mark.anyio

# Contracts naming something the venue does not trade, each by one field that does not agree.
UNKNOWN: dict[str, Callable[[], Contract]] = {
    # The venue lists options on TQQQ now (sim.tws.listing), 1 apart at 50 and expiring on
    # Fridays: a strike off the grid, an expiry that is not a listed day.
    "option_strike_not_listed": lambda: Option("TQQQ", "20261204", 50.5, "C", "SMART"),
    "option_expiry_not_listed": lambda: Option("TQQQ", "20261203", 50, "C", "SMART"),
    "option_without_a_strike": lambda: Contract(
        symbol="TQQQ", secType="OPT", exchange="SMART", currency="USD"
    ),
    "future": lambda: Future("TQQQ", "202612", "CME"),
    "another_currency": lambda: Stock("TQQQ", "SMART", "EUR"),
    "another_exchange": lambda: Stock("TQQQ", "ARCA", "USD"),
    "another_primary_exchange": lambda: Stock("TQQQ", "SMART", "USD", primaryExchange="ARCA"),
    "con_id_of_another_symbol": lambda: Contract(conId=TQQQ.con_id, symbol="SPY"),
    "con_id_with_another_sec_type": lambda: Contract(conId=TQQQ.con_id, secType="OPT"),
    "unknown_con_id": lambda: Contract(conId=TQQQ.con_id + 1, exchange="SMART"),
    "a_stock_with_a_multiplier": lambda: Contract(
        symbol="TQQQ", secType="STK", exchange="SMART", currency="USD", multiplier="100"
    ),
    "an_option_local_symbol": lambda: Stock(
        "TQQQ", "SMART", "USD", localSymbol="TQQQ  261204C00050000"
    ),
    "another_trading_class": lambda: Stock("TQQQ", "SMART", "USD", tradingClass="TQQQ"),
    "unknown_symbol": lambda: Stock("NOPE", "SMART", "USD"),
}
KNOWN: dict[str, Callable[[], Contract]] = {
    "stock_on_smart": lambda: Stock("TQQQ", "SMART", "USD"),
    "stock_on_its_primary_exchange": lambda: Stock("TQQQ", "NASDAQ", "USD"),
    "con_id_alone": lambda: Contract(conId=TQQQ.con_id),
    "every_field": lambda: Contract(
        conId=TQQQ.con_id,
        symbol="TQQQ",
        secType="STK",
        exchange="SMART",
        primaryExchange="NASDAQ",
        currency="USD",
        localSymbol="TQQQ",
        tradingClass="NMS",
    ),
}


@pytest.mark.parametrize("version", [157, 176])
@pytest.mark.parametrize("name", sorted(UNKNOWN))
async def test_a_contract_the_venue_does_not_know_gets_200_for_every_request(
    name: str, version: int, client_errors: Callable[[], list[str]]
) -> None:
    """Contract details, market data, historical bars and an order for it each get 200 for
    their own id; no ticks stream and no order rests, not even as the stock's."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine, version) as server:
        ib = await connect(server)
        codes: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, _msg, _contract: codes.append((req_id, code))
        contract = UNKNOWN[name]()
        assert await ib.qualifyContractsAsync(contract) == []
        ticker = ib.reqMktData(contract)
        bars = await ib.reqHistoricalDataAsync(contract, "", "1 D", "1 min", "TRADES", True)
        assert list(bars) == []
        placed = ib.placeOrder(contract, LimitOrder("BUY", 10, 50.50, orderRef="unknown:1"))
        await until(lambda: placed.orderStatus.status == "Cancelled")
        assert placed.log[-1].errorCode == 200
        assert (placed.order.orderId, 200) in codes
        assert [code for _, code in codes].count(200) == 4
        # A trade through the limit, then a request answered after it on the same socket: the
        # option's ticker would have its ticks by then.
        trade(engine, "50.02", 100, 1)
        [stock] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        await ib.reqTickersAsync(stock)
        assert ticker.last != ticker.last  # nan: never a tick
        assert all(not session.subscriptions for session in server.sessions.values())
        assert engine.orders == {}
        assert server.orders == {}
        assert engine.executions == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize("name", sorted(KNOWN))
async def test_a_contract_that_agrees_in_every_field_it_gives_resolves(
    name: str, client_errors: Callable[[], list[str]]
) -> None:
    """A stock named by its conId alone, its primary exchange, or every field: details, ticks,
    and an order that fills."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        ib = await connect(server)
        contract = KNOWN[name]()
        [details] = await ib.reqContractDetailsAsync(contract)
        assert details.contract is not None
        assert details.contract.conId == TQQQ.con_id
        ticker = ib.reqMktData(contract)
        await until(lambda: ticker.last == 50.0)
        placed = ib.placeOrder(contract, LimitOrder("BUY", 10, 50.05, orderRef="known:1"))
        await until(lambda: placed.orderStatus.status == "Submitted")
        trade(engine, "50.04", 100, 1)
        await until(lambda: placed.orderStatus.status == "Filled")
        assert engine.orders["known:1"].symbol == "TQQQ"
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_the_ib_port_reports_an_order_for_an_unknown_contract_as_rejected(
    client_errors: Callable[[], list[str]],
) -> None:
    """ib_insync cancels the trade locally on the 200, with the code in its log: the IB port
    turns that into one OrderRejected with code 200."""
    engine = Engine()
    async with venue(engine) as server:
        assert server.port is not None
        port = IBPort(host="127.0.0.1", port=server.port, client_id=3, timeout=5)
        await port.connect()
        assert port.ib is not None
        option = Option("TQQQ", "20261204", 50, "C", "SMART")
        port.ib.placeOrder(option, LimitOrder("BUY", 1, 2.50, orderRef="opt:TQQQ:1"))
        await until(lambda: any(isinstance(e, OrderRejected) for e in port._events))
        events = await port.poll()
        await port.close()
    rejected = [(e.ref, e.code) for e in events if isinstance(e, OrderRejected)]
    assert rejected == [("opt:TQQQ:1", 200)]
    assert engine.orders == {}
    assert server.protocol_errors == []
    assert client_errors() == []


STOCK = WireContract(symbol="TQQQ", sec_type="STK", exchange="SMART", currency="USD")


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("symbol", "SPY", "symbol"),
        ("sec_type", "OPT", "secType"),
        ("last_trade_date", "20261204", "lastTradeDateOrContractMonth"),
        ("strike", 50.0, "strike"),
        ("right", "C", "right"),
        ("multiplier", "100", "multiplier"),
        ("exchange", "ARCA", "exchange"),
        ("primary_exchange", "ARCA", "primaryExchange"),
        ("currency", "EUR", "currency"),
        ("local_symbol", "TQQQ  261204C00050000", "localSymbol"),
        ("trading_class", "TQQQ", "tradingClass"),
        ("sec_id_type", "ISIN", "secIdType"),
        ("sec_id", "US74347X8314", "secId"),
        ("combo_legs", (WireComboLeg(con_id=TQQQ.con_id, ratio=1, action="BUY"),), "comboLegs"),
    ],
)
def test_one_field_that_does_not_agree_is_enough_to_find_nothing(
    field: str, value: object, named: str
) -> None:
    """Each field, alone, keeps a contract from resolving (by symbol or by conId), and
    ``mismatch`` names it."""
    by_symbol, by_con_id = {"TQQQ": TQQQ}, {TQQQ.con_id: TQQQ}
    with_con_id = attrs.evolve(STOCK, con_id=TQQQ.con_id)
    assert resolve(STOCK, by_symbol, by_con_id) is TQQQ
    assert resolve(with_con_id, by_symbol, by_con_id) is TQQQ
    for contract in (STOCK, with_con_id):
        changed = attrs.evolve(contract, **{field: value})
        assert resolve(changed, by_symbol, by_con_id) is None
        assert mismatch(changed, TQQQ) == f"{named}={value!r}"


def test_a_con_id_names_the_instrument_whatever_the_symbol_would() -> None:
    """An unknown conId finds nothing even with a known symbol."""
    unknown = attrs.evolve(STOCK, con_id=TQQQ.con_id + 1)
    assert resolve(unknown, {"TQQQ": TQQQ}, {TQQQ.con_id: TQQQ}) is None


@given(
    con_id=st.sampled_from([0, TQQQ.con_id]),
    symbol=st.sampled_from(["", "TQQQ"]),
    sec_type=st.sampled_from(["", "STK"]),
    exchange=st.sampled_from(["", "SMART", TQQQ.primary_exchange]),
    primary_exchange=st.sampled_from(["", TQQQ.primary_exchange]),
    currency=st.sampled_from(["", "USD"]),
    local_symbol=st.sampled_from(["", "TQQQ"]),
    trading_class=st.sampled_from(["", TQQQ.trading_class]),
)
def test_any_mix_of_fields_that_agree_resolves(
    con_id: int,
    symbol: str,
    sec_type: str,
    exchange: str,
    primary_exchange: str,
    currency: str,
    local_symbol: str,
    trading_class: str,
) -> None:
    """Leaving out any field a contract need not give, or giving it as the instrument has it,
    still finds the instrument (by conId, else by symbol)."""
    contract = WireContract(
        con_id=con_id,
        symbol=symbol,
        sec_type=sec_type,
        exchange=exchange,
        primary_exchange=primary_exchange,
        currency=currency,
        local_symbol=local_symbol,
        trading_class=trading_class,
    )
    found = resolve(contract, {"TQQQ": TQQQ}, {TQQQ.con_id: TQQQ})
    assert found is (TQQQ if con_id or symbol else None)
