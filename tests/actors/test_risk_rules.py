"""The risk actor's pure rules (``actors.risk_rules``): each limit by value, the order the rules
apply in, and properties over generated books."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain import OrderFilled, PlaceOrder, Side, TimeInForce
from actors.risk_rules import (
    ALL,
    Book,
    MarketHours,
    RiskLimits,
    Rule,
    Working,
    check,
    loss_trips,
    protective,
)

OPEN = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 10:00 in New York, a Monday
PRE = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # 07:00
NIGHT = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 22:00 the day before
THANKSGIVING = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


def buy(quantity: int = 100, limit: str | None = "50.00", symbol: str = "TQQQ") -> PlaceOrder:
    return PlaceOrder(
        ref=f"grid:{symbol}:L1:BUY:1:1",
        symbol=symbol,
        side=Side.BUY,
        quantity=quantity,
        limit=None if limit is None else Decimal(limit),
        tif=TimeInForce.GTC,
    )


def refusal(order: PlaceOrder, limits: RiskLimits, book: Book | None = None, **given: object):
    arguments: dict[str, object] = {
        "limits": limits,
        "book": book if book is not None else Book(),
        "route": f"grid:{order.symbol}",
        "price": Decimal("50.00"),
        "at": OPEN,
        "start_equity": limits.equity,
        "tripped": None,
        "halts": (),
    }
    arguments.update(given)
    return check(order, **arguments)  # type: ignore[arg-type]


def held(symbol: str, shares: int, price: str) -> Book:
    book = Book()
    book.fill(
        symbol,
        Side.BUY,
        OrderFilled(ref="x", exec_id=f"{symbol}-1", quantity=shares, price=Decimal(price)),
    )
    return book


def test_no_limits_allow_every_order() -> None:
    assert refusal(buy(10_000), RiskLimits()) is None


def test_a_sell_within_the_position_is_protective_and_a_bigger_one_is_not() -> None:
    sell = PlaceOrder(
        ref="grid:TQQQ:L1:SELL:1:1",
        symbol="TQQQ",
        side=Side.SELL,
        quantity=100,
        limit=Decimal("51"),
        tif=TimeInForce.GTC,
    )
    assert protective(sell, 100)
    assert not protective(sell, 99)
    assert not protective(buy(), 1_000)


def test_the_operators_halt_and_the_trip_come_first() -> None:
    limits = RiskLimits(max_open_orders=1)
    assert refusal(buy(), limits, halts=("TQQQ",)).rule is Rule.HALT
    assert refusal(buy(), limits, halts=(ALL,)).rule is Rule.HALT
    assert refusal(buy(symbol="SPY"), limits, halts=("TQQQ",)) is None
    found = refusal(buy(), limits, tripped="lost 60.00")
    assert found.rule is Rule.DAILY_LOSS
    assert "lost 60.00" in found.reason


@pytest.mark.parametrize(
    ("hours", "at", "allowed"),
    [
        (MarketHours.REGULAR, OPEN, True),
        (MarketHours.REGULAR, PRE, False),
        (MarketHours.EXTENDED, PRE, True),
        (MarketHours.EXTENDED, NIGHT, False),
        (MarketHours.EXTENDED, THANKSGIVING, False),
        (MarketHours.ANY, NIGHT, True),
    ],
)
def test_the_market_hours_gate_reads_the_new_york_session_of_the_event(
    hours: MarketHours, at: datetime, allowed: bool
) -> None:
    found = refusal(buy(), RiskLimits(market_hours=hours), at=at)
    assert (found is None) is allowed
    if found is not None:
        assert found.rule is Rule.MARKET_HOURS


def test_the_gate_refuses_when_no_event_time_is_known() -> None:
    found = refusal(buy(), RiskLimits(market_hours=MarketHours.EXTENDED), at=None)
    assert found.rule is Rule.MARKET_HOURS
    assert refusal(buy(), RiskLimits(), at=None) is None


def test_open_orders_count_every_strategy_and_the_new_one() -> None:
    book = Book()
    book.working["grid:TQQQ"] = Working(symbol="TQQQ", orders=2)
    book.working["ma_cross:SPY"] = Working(symbol="SPY", orders=1)
    assert refusal(buy(), RiskLimits(max_open_orders=4), book) is None
    found = refusal(buy(), RiskLimits(max_open_orders=3), book)
    assert found.rule is Rule.OPEN_ORDERS
    assert "3 orders working, at most 3" in found.reason


def test_trade_sizing_compares_the_notional_with_the_share_of_equity() -> None:
    limits = RiskLimits(equity=Decimal(100_000), max_risk_pct_per_trade=Decimal(5))
    assert refusal(buy(100, "50.00"), limits) is None  # 5,000.00 is 5%
    found = refusal(buy(100, "50.01"), limits)
    assert found.rule is Rule.TRADE_RISK
    assert "5001.00 exceeds 5% of equity 100000.00 (5000.00)" in found.reason
    # A market order is valued at the last price.
    assert refusal(buy(101, None), limits).rule is Rule.TRADE_RISK


def test_the_symbol_cap_counts_its_position_at_the_last_price_and_its_working_buys() -> None:
    book = held("TQQQ", 100, "48.00")
    book.mark("TQQQ", Decimal("50.00"))
    book.working["grid:TQQQ"] = Working(symbol="TQQQ", orders=1, buy_notional=Decimal(4_000))
    book.working["grid:SPY"] = Working(symbol="SPY", orders=1, buy_notional=Decimal(99_000))
    # 100 x 50 + 4,000 + 100 x 50 = 14,000: SPY's buys are not TQQQ's.
    assert refusal(buy(), RiskLimits(max_notional_per_symbol=Decimal(14_000)), book) is None
    found = refusal(buy(), RiskLimits(max_notional_per_symbol=Decimal("13999.99")), book)
    assert found.rule is Rule.SYMBOL_NOTIONAL
    # Gross counts every symbol.
    found = refusal(buy(), RiskLimits(max_gross_exposure=Decimal(100_000)), book)
    assert found.rule is Rule.GROSS_EXPOSURE
    assert "113000.00" in found.reason


def test_a_market_order_with_no_price_is_refused_by_the_rule_that_needs_one() -> None:
    found = refusal(buy(limit=None), RiskLimits(max_gross_exposure=Decimal(1)), price=None)
    assert found.rule is Rule.GROSS_EXPOSURE
    assert "no price known" in found.reason
    assert refusal(buy(limit=None), RiskLimits(max_open_orders=5), price=None) is None


def test_the_caps_wait_for_a_current_price_to_value_the_position() -> None:
    """A symbol actor that has seen no tick yet (restarted) gives no price: the book's mark may
    be stale, so the caps refuse until a tick comes; the other rules need none for a limit."""
    book = held("TQQQ", 100, "48.00")
    found = refusal(buy(), RiskLimits(max_notional_per_symbol=Decimal(10**9)), book, price=None)
    assert found.rule is Rule.SYMBOL_NOTIONAL
    assert "no current price for TQQQ" in found.reason
    found = refusal(buy(), RiskLimits(max_gross_exposure=Decimal(10**9)), book, price=None)
    assert found.rule is Rule.GROSS_EXPOSURE
    limits = RiskLimits(max_open_orders=5, equity=Decimal(10**6), max_risk_pct_per_trade=Decimal(1))
    assert refusal(buy(), limits, book, price=None) is None


def test_the_book_applies_each_execution_once_and_counts_commissions() -> None:
    book = Book()
    fill = OrderFilled(
        ref="a", exec_id="e1", quantity=10, price=Decimal("50"), commission=Decimal(1)
    )
    assert book.fill("TQQQ", Side.BUY, fill)
    assert not book.fill("TQQQ", Side.BUY, fill)
    sold = OrderFilled(ref="b", exec_id="e2", quantity=4, price=Decimal("55"))
    assert book.fill("TQQQ", Side.SELL, sold)
    book.mark("TQQQ", Decimal("45"))
    # cash: -500 - 1 + 220; held 6 x 45 = 270.
    assert book.equity(Decimal(1_000)) == Decimal(1_000) - 501 + 220 + 270
    assert book.positions == {"TQQQ": 6}


def test_the_daily_loss_trips_beyond_its_percentage_only() -> None:
    limits = RiskLimits(equity=Decimal(100_000), max_daily_loss_pct=Decimal(1))
    assert loss_trips(limits, Decimal(100_000), Decimal(99_000)) is None
    reason = loss_trips(limits, Decimal(100_000), Decimal("98999.99"))
    assert reason is not None
    assert "lost 1000.01" in reason
    assert loss_trips(RiskLimits(), Decimal(100_000), Decimal(1)) is None
    assert loss_trips(limits, None, Decimal(1)) is None


def test_percentages_need_an_equity() -> None:
    with pytest.raises(ValueError, match="max_daily_loss_pct needs a positive equity"):
        RiskLimits(max_daily_loss_pct=Decimal(1))


money = st.decimals(min_value=1, max_value=10_000, places=2)


@given(
    quantity=st.integers(1, 1_000),
    price=money,
    shares=st.integers(0, 1_000),
    working=st.integers(0, 20),
    buying=st.decimals(min_value=0, max_value=100_000, places=2),
    cap=st.decimals(min_value=1, max_value=10_000_000, places=2),
)
def test_an_allowed_buy_never_takes_the_exposure_beyond_a_cap(
    quantity: int, price: Decimal, shares: int, working: int, buying: Decimal, cap: Decimal
) -> None:
    """Whatever the book, an order the caps allow keeps the symbol's and the gross exposure at
    most the cap, and a bigger order of the same price is refused whenever a smaller one is."""
    book = held("TQQQ", shares, "10.00") if shares else Book()
    book.mark("TQQQ", price)
    book.working["grid:TQQQ"] = Working(symbol="TQQQ", orders=working, buy_notional=buying)
    limits = RiskLimits(max_notional_per_symbol=cap, max_gross_exposure=cap)
    order = buy(quantity, str(price))
    found = refusal(order, limits, book, price=price)
    if found is None:
        assert shares * price + buying + quantity * price <= cap
        return
    assert found.rule in (Rule.SYMBOL_NOTIONAL, Rule.GROSS_EXPOSURE)
    assert refusal(buy(quantity + 1, str(price)), limits, book, price=price) is not None


OPTION = "TQQQ  261127C00052000"


def test_an_option_is_valued_at_100_shares_a_contract_and_checked_as_its_underlying() -> None:
    """Two contracts at 1.50 are $300 of notional, not $3: a $299 cap refuses, $300 allows;
    the underlying's halt stops its options; the cap counts the shares and the options of one
    underlying together."""
    order = buy(quantity=2, limit="1.50", symbol=OPTION)
    cap = refusal(order, RiskLimits(max_notional_per_symbol=Decimal(299)))
    assert cap is not None
    assert cap.rule is Rule.SYMBOL_NOTIONAL
    assert refusal(order, RiskLimits(max_notional_per_symbol=Decimal(300))) is None
    halted = refusal(order, RiskLimits(), halts=("TQQQ",))
    assert halted is not None
    assert halted.rule is Rule.HALT
    book = held("TQQQ", 10, "50.00")  # $500 of shares
    both = refusal(order, RiskLimits(max_notional_per_symbol=Decimal(799)), book=book)
    assert both is not None
    assert both.rule is Rule.SYMBOL_NOTIONAL
    # An option's fill moves cash by 100 shares a contract.
    options = held(OPTION, 2, "1.50")
    assert options.cash == Decimal("-300.00")
    options.mark(OPTION, Decimal("2.00"))
    assert options.equity(Decimal(0)) == Decimal("100.00")


def test_max_positions_refuses_a_new_instrument_only() -> None:
    limits = RiskLimits(max_positions=1)
    book = held("TQQQ", 10, "50.00")
    assert refusal(buy(symbol="TQQQ"), limits, book=book) is None  # adds to what is held
    new = refusal(buy(quantity=1, limit="1.50", symbol=OPTION), limits, book=book)
    assert new is not None
    assert new.rule is Rule.POSITIONS
    assert "1 positions open (TQQQ), at most 1" in new.reason
    assert refusal(buy(symbol="QQQ"), RiskLimits(max_positions=2), book=book) is None
