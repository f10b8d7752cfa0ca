"""The matching engine's option orders: filled against the option's own quote (re-quoted at
every trade of its underlying), the multiplier, option commissions, regular hours only."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import OrderAccepted, OrderFilled, PriceCondition, Side
from sim.engine import Engine, EngineError, commission_owed, is_option_symbol
from sim.journal import open_engine
from sim.options import OptionContract, OptionQuote
from tests.sim.option_desk import (
    D,
    at,
    fills,
    option,
    order,
    quote_at,
    recording,
    rejects,
)

CALL = option(50, "C")
PUT = option(50, "P")


def test_a_marketable_buy_fills_at_the_ask_at_the_next_trade_of_the_underlying() -> None:
    """Placed before any quote, a market buy of calls works from the next TQQQ trade on and
    fills at that trade's quote's ask, 100 shares a contract, a contract's cost x 100."""
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    e.place(order("b", CALL.local_symbol, qty=3), at("10:00:01"))
    assert fills(events) == []
    e.on_trade("TQQQ", D("50.10"), 100, at("10:00:02"))
    expected = quote_at(CALL, "50.10", at("10:00:02"), opened="50.00")
    assert fills(events) == [("b", 3, expected.ask)]
    execution = e.executions[-1]
    assert (execution.symbol, execution.multiplier) == (CALL.local_symbol, 100)
    position = e.positions[CALL.local_symbol]
    assert position.quantity == 3
    assert position.average_cost == expected.ask * 100
    assert execution.commission == D("1.95")  # 0.65 a contract


def test_a_sell_fills_at_the_bid_and_the_minimum_commission_is_a_dollar() -> None:
    """Selling one put to open: at the bid; a short position with the premium as its average
    cost; $1.00, the per-order minimum, above 0.65 a contract."""
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    e.place(order("s", PUT.local_symbol, Side.SELL, qty=1), at("10:00:01"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00:02"))
    expected = quote_at(PUT, "50.00", at("10:00:02"))
    assert fills(events) == [("s", 1, expected.bid)]
    assert e.executions[-1].commission == D("1.00")
    position = e.positions[PUT.local_symbol]
    assert (position.quantity, position.average_cost) == (-1, expected.bid * 100)


def test_a_sell_never_fills_at_a_zero_bid() -> None:
    """A far out-of-the-money call bid at 0: a market sell waits; a buy fills at its ask."""
    far = option(80, "C")
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    assert quote_at(far, "50.00", at("10:00:02")).bid == 0
    e.place(order("s", far.local_symbol, Side.SELL, qty=1), at("10:00:01"))
    e.place(order("b", far.local_symbol, Side.BUY, qty=1), at("10:00:01"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00:02"))
    assert [ref for ref, _, _ in fills(events)] == ["b"]
    assert not e.orders["s"].done


def test_a_resting_limit_fills_when_a_later_quote_crosses_it_at_the_quotes_price() -> None:
    """A buy limit under the ask rests; when TQQQ falls, the call's ask drops through the
    limit and the order fills at that ask (better than its limit), not at the limit."""
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    now = quote_at(CALL, "50.00", at("10:01"))
    later = quote_at(CALL, "49.50", at("10:02"), opened="50.00")
    limit = later.ask + D("0.03")
    assert limit < now.ask
    e.place(order("b", CALL.local_symbol, qty=1, limit=limit), at("10:00:30"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    assert fills(events) == []
    e.on_trade("TQQQ", D("49.50"), 100, at("10:02"))
    assert fills(events) == [("b", 1, later.ask)]


def test_a_sell_limit_fills_when_the_bid_reaches_it() -> None:
    """A sell limit above the bid waits for a quote whose bid is at or above it."""
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    later = quote_at(CALL, "50.60", at("10:02"), opened="50.00")
    limit = later.bid - D("0.02")
    assert limit > quote_at(CALL, "50.00", at("10:01")).bid
    e.place(order("s", CALL.local_symbol, Side.SELL, qty=1, limit=limit), at("10:00:30"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    assert fills(events) == []
    e.on_trade("TQQQ", D("50.60"), 100, at("10:02"))
    assert fills(events) == [("s", 1, later.bid)]


def test_the_displayed_size_is_shared_first_come_first_served() -> None:
    """Two market buys each as large as the ask size: the first takes all of it, the second
    nothing at that quote; the next quote fills the second; the first order is filled whole
    across quotes when larger than the size."""
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    size = quote_at(CALL, "50.00", at("10:01")).ask_size
    e.place(order("a", CALL.local_symbol, qty=size + 2), at("10:00:10"))
    e.place(order("b", CALL.local_symbol, qty=size), at("10:00:20"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    assert [(ref, qty) for ref, qty, _ in fills(events)] == [("a", size)]
    e.on_trade("TQQQ", D("50.00"), 100, at("10:02"))
    assert [(ref, qty) for ref, qty, _ in fills(events)][1:] == [("a", 2), ("b", size - 2)]
    assert e.positions[CALL.local_symbol].quantity == 2 * size


def test_options_trade_in_the_regular_session_only_whatever_outside_rth_says() -> None:
    """An outside_rth option order placed before the open fills at the first quote at or
    after 09:30, none of the pre-market trades of its underlying reaching it."""
    e, events = recording()
    e.place(order("b", CALL.local_symbol, qty=1, outside_rth=True), at("08:00"))
    e.on_trade("TQQQ", D("50.00"), 100, at("08:30"))
    e.on_trade("TQQQ", D("50.00"), 100, at("09:29:59"))
    assert fills(events) == []
    e.on_trade("TQQQ", D("50.00"), 100, at("09:30"))
    assert len(fills(events)) == 1
    e.place(order("s", CALL.local_symbol, Side.SELL, qty=1, outside_rth=True), at("15:59"))
    e.on_trade("TQQQ", D("50.00"), 100, at("16:30"))
    assert len(fills(events)) == 1


def test_the_options_own_orders_are_served_after_the_underlyings() -> None:
    """A stock order and an option order at the same trade: the stock's fill comes first."""
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    e.place(order("opt", CALL.local_symbol, qty=1), at("10:00:01"))
    e.place(order("stk", "TQQQ", qty=10), at("10:00:02"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    assert [ref for ref, _, _ in fills(events)] == ["stk", "opt"]


def test_only_options_with_working_orders_are_requoted() -> None:
    """An engine counting its quotes: none while no option order works, one per trade of the
    underlying while one does, none once it has filled (a position alone is not re-quoted)."""
    asked: list[str] = []

    class Counting(Engine):
        def option_quote(self, contract: OptionContract, at: datetime) -> OptionQuote | None:
            asked.append(contract.local_symbol)
            return super().option_quote(contract, at)

    e = Counting()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    e.on_trade("QQQ", D("400.00"), 100, at("10:00"))
    assert asked == []
    e.place(order("b", CALL.local_symbol, qty=1, limit="0.50"), at("10:00:01"))
    e.on_trade("QQQ", D("400.00"), 100, at("10:01"))
    assert asked == []
    e.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:02"))
    assert asked == [CALL.local_symbol] * 2
    e.modify("b", quantity=1, limit=D("5.00"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:03"))
    assert e.positions[CALL.local_symbol].quantity == 1
    e.on_trade("TQQQ", D("50.00"), 100, at("10:04"))
    assert asked == [CALL.local_symbol] * 3


@pytest.mark.parametrize(
    ("symbol", "why"),
    [
        ("TQQQ  261211C00050250", "strike"),  # 50.25 is off the ladder
        ("TQQQ  261210C00050000", "expiry"),  # a Thursday
        ("TQQQ  261211X00050000", "OCC symbol"),
        ("TQQQ  261311C00050000", "no date"),
    ],
)
def test_an_option_order_the_venue_does_not_list_is_rejected_naming_why(
    symbol: str, why: str
) -> None:
    """An OCC-shaped symbol that names no listed contract: rejected, the reason naming it."""
    assert is_option_symbol(symbol)
    e, events = recording()
    assert e.place(order("b", symbol), at("10:00")) is None
    [(ref, reason)] = rejects(events)
    assert ref == "b"
    assert symbol in reason
    assert why in reason


def test_an_expired_option_is_rejected() -> None:
    """At or after 16:00 New York on its expiry day the option no longer trades."""
    e, events = recording()
    assert e.place(order("b", CALL.local_symbol), at("15:59:59", "2026-12-11")) is not None
    assert e.place(order("c", CALL.local_symbol), at("16:00", "2026-12-11")) is None
    assert "expired" in rejects(events)[0][1]


def test_a_price_condition_on_an_option_order_is_rejected() -> None:
    """Conditions are on the last price of the order's own symbol, which an option lacks."""
    e, events = recording()
    condition = PriceCondition(trigger=D("49"))
    assert e.place(order("b", CALL.local_symbol, condition=condition), at("10:00")) is None
    assert "price conditions" in rejects(events)[0][1]


def test_stock_symbols_are_never_read_as_options() -> None:
    """Symbols of 1 to 6 characters are stocks; an OCC symbol is 21."""
    assert not any(is_option_symbol(s) for s in ("TQQQ", "BRK.B", "A", "ABCDEF"))
    assert is_option_symbol(CALL.local_symbol)


def test_the_same_inputs_give_the_same_quotes_and_fills(tmp_path: Path) -> None:
    """Two engines fed one day's trades and option orders agree on every execution; the
    journal reopened restores the option position, the working orders and the executions."""

    def day(e: Engine) -> None:
        e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
        e.place(order("b", CALL.local_symbol, qty=60), at("10:00:01"))
        e.place(order("s", PUT.local_symbol, Side.SELL, qty=2, limit="1.10"), at("10:00:02"))
        e.place(order("r", CALL.local_symbol, Side.SELL, qty=1, limit="9.00"), at("10:00:03"))
        for minute, price in enumerate(("50.05", "49.80", "50.40", "50.70", "49.20")):
            e.on_trade("TQQQ", D(price), 100, at(f"10:{minute + 1:02d}"))

    first, second = Engine(), Engine()
    day(first)
    day(second)
    assert first.executions == second.executions
    assert len(first.executions) >= 3
    journaled = open_engine(tmp_path / "j")
    day(journaled)
    reopened = open_engine(tmp_path / "j")
    assert reopened.executions == first.executions
    assert reopened.positions == first.positions
    assert reopened.orders == first.orders
    assert [o.ref for o in reopened.open_orders()] == ["r"]


def test_the_acknowledgement_of_an_option_order_is_immediate() -> None:
    """OrderAccepted at the place, as for a stock."""
    e, events = recording()
    e.place(order("b", CALL.local_symbol), at("10:00"))
    assert [type(x) for x in events] == [OrderAccepted]
    assert not any(isinstance(x, OrderFilled) for x in events)


_orders = st.lists(
    st.tuples(
        st.sampled_from([CALL, PUT, option(52, "C"), option(47, "P")]),
        st.sampled_from([Side.BUY, Side.SELL]),
        st.integers(min_value=1, max_value=80),
        st.one_of(st.none(), st.decimals(min_value=D("0.05"), max_value=D(4), places=2)),
    ),
    min_size=1,
    max_size=8,
)
_prices = st.lists(st.decimals(min_value=D(46), max_value=D(54), places=2), min_size=1, max_size=6)


@settings(max_examples=60, deadline=None)
@given(_orders, _prices)
def test_every_option_fill_is_at_the_quote_within_its_size_and_limit(
    placed: list[tuple[OptionContract, Side, int, Decimal | None]], prices: list[Decimal]
) -> None:
    """Any option orders and any trades of the underlying: at each trade, each option's buys
    fill at its ask and sells at its (non-zero) bid, within the displayed sizes together and
    within each order's limit; nothing fills more than its quantity."""
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    for number, (contract, side, qty, limit) in enumerate(placed):
        e.place(order(f"o{number}", contract.local_symbol, side, qty, limit), at("10:00:01"))
    for minute, price in enumerate(prices, start=1):
        when = at(f"10:{minute:02d}")
        quotes = {c.local_symbol: quote_at(c, str(price), when, opened="50.00") for c, *_ in placed}
        before = len(e.executions)
        e.on_trade("TQQQ", price, 100, when)
        for symbol, quote in quotes.items():
            step = [x for x in e.executions[before:] if x.symbol == symbol]
            buys = [x for x in step if x.side is Side.BUY]
            sells = [x for x in step if x.side is Side.SELL]
            assert all(x.price == quote.ask for x in buys)
            assert all(x.price == quote.bid > 0 for x in sells)
            assert sum(x.quantity for x in buys) <= quote.ask_size
            assert sum(x.quantity for x in sells) <= quote.bid_size
    for sim in e.orders.values():
        assert sim.filled <= sim.quantity
        for x in e.executions_of(sim.ref):
            assert sim.limit is None or (
                x.price <= sim.limit if sim.side is Side.BUY else x.price >= sim.limit
            )
    assert len(fills(events)) == len(e.executions)


def test_a_position_through_zero_takes_the_new_sides_price() -> None:
    """Long 100 at 99, sold 150 at 101: short 50 with the sale's price as its average cost
    (IB's), and back to flat with no cost left."""
    e, _ = recording()
    e.place(order("b", "TQQQ", Side.BUY, 100, limit="99.00"), at("10:00"))
    e.on_trade("TQQQ", D("99.00"), 100, at("10:01"))
    e.place(order("s", "TQQQ", Side.SELL, 150, limit="101.00"), at("10:02"))
    e.on_trade("TQQQ", D("101.00"), 150, at("10:03"))
    assert (e.positions["TQQQ"].quantity, e.positions["TQQQ"].average_cost) == (-50, D(101))
    e.place(order("c", "TQQQ", Side.BUY, 50, limit="100.00"), at("10:04"))
    e.on_trade("TQQQ", D("100.00"), 50, at("10:05"))
    assert (e.positions["TQQQ"].quantity, e.positions["TQQQ"].cost) == (0, 0)


def test_a_print_of_an_option_is_refused() -> None:
    """Options fill against the quotes their underlying's trades make: a trade of an OCC
    symbol is an EngineError, not recorded."""
    recorded: list[object] = []
    e = Engine(recorder=recorded.append)
    with pytest.raises(EngineError, match="options trade against their quotes"):
        e.on_trade(CALL.local_symbol, D("1.00"), 1, at("10:00"))
    assert recorded == []


@pytest.mark.parametrize(
    ("option", "quantity", "value", "owed"),
    [
        (True, 1, D("0.50"), D("1.00")),
        (True, 2, D("2.00"), D("1.30")),
        (True, 10, D("0.10"), D("6.50")),
        (False, 100, D("5000"), D("1.00")),
        (False, 1000, D("50000"), D("5.000")),
        (False, 300, D("30"), D("0.30")),
    ],
)
def test_commissions_are_ibkr_fixed(
    option: bool, quantity: int, value: Decimal, owed: Decimal
) -> None:
    """Options $0.65 a contract, $1.00 minimum; stocks $0.005 a share, $1.00 minimum, 1% cap."""
    assert commission_owed(option=option, quantity=quantity, value=value) == owed
