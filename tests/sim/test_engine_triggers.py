"""Stop and stop-limit orders by IB's trigger methods: options on their quotes (0 and 1 double
bid/ask, 2 last, 3 double last, 4 bid/ask, 7 last or bid/ask, 8 midpoint), stocks on their
trades (0 the last, unchanged; the double methods on two consecutive trades)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.domain import Side
from sim.engine import Engine
from tests.sim.option_desk import D, at, fills, option, order, quote_at, recording, rejects

CALL = option(50, "C")


def _stopped_call(method: int, side: Side, stop: Decimal, limit: Decimal | None = None) -> Engine:
    e, _ = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    placed = e.place(
        order("stp", CALL.local_symbol, side, qty=1, stop=stop, limit=limit),
        at("10:00:01"),
        trigger_method=method,
    )
    assert placed is not None
    return e


def _feed(e: Engine, prices: list[str]) -> list[bool]:
    # Whether the stop had triggered after each trade of TQQQ (each re-quotes the call).
    seen = []
    for minute, price in enumerate(prices):
        e.on_trade("TQQQ", D(price), 100, at(f"10:{minute + 1:02d}"))
        seen.append(e.orders["stp"].triggered)
    return seen


def _bid(price: str, minute: int) -> Decimal:
    return quote_at(CALL, price, at(f"10:{minute:02d}"), opened="50.00").bid


@pytest.mark.parametrize("method", [0, 1])
def test_an_option_sell_stop_triggers_on_the_second_consecutive_bid_at_or_below_it(
    method: int,
) -> None:
    """IB's default for options, double bid/ask: one low bid, then a higher one, then two low
    ones: it triggers on the second of the two, and fills at that quote's bid."""
    stop = _bid("49.00", 1) + D("0.01")
    assert _bid("50.00", 2) > stop
    e = _stopped_call(method, Side.SELL, stop)
    assert _feed(e, ["49.00", "50.00", "49.00"]) == [False, False, False]
    assert _feed_more(e, "49.00", 4)
    assert e.executions[-1].price == _bid("49.00", 4)


def _feed_more(e: Engine, price: str, minute: int) -> bool:
    e.on_trade("TQQQ", D(price), 100, at(f"10:{minute:02d}"))
    return e.orders["stp"].triggered


def test_bid_ask_method_triggers_on_one_quote() -> None:
    """Method 4: the first bid at or below the stop triggers."""
    stop = _bid("49.00", 1) + D("0.01")
    e = _stopped_call(4, Side.SELL, stop)
    assert _feed(e, ["49.00"]) == [True]
    assert e.positions[CALL.local_symbol].quantity == -1


def test_a_buy_stop_looks_at_the_ask() -> None:
    """A buy stop (double bid/ask) triggers on two consecutive asks at or above the stop."""
    ask = quote_at(CALL, "51.00", at("10:01"), opened="50.00").ask
    e = _stopped_call(0, Side.BUY, ask - D("0.01"))
    assert _feed(e, ["51.00", "51.00"]) == [False, True]
    assert e.executions[-1].side is Side.BUY


def test_last_method_uses_the_quotes_last() -> None:
    """Method 2: the quote's last (the model price on the tick); a stop between the bid and
    the last triggers with 2 but not with 4 (bid) on the same quote."""
    q = quote_at(CALL, "49.00", at("10:01"), opened="50.00")
    assert q.bid < q.last
    stop = q.last
    by_last = _stopped_call(2, Side.SELL, stop)
    by_bid = _stopped_call(4, Side.SELL, q.bid - D("0.01"))
    assert _feed(by_last, ["49.00"]) == [True]
    assert _feed(by_bid, ["49.00"]) == [False]


def test_double_last_needs_two_consecutive_lasts() -> None:
    """Method 3 on an option: two quotes whose last is at or below the stop."""
    stop = quote_at(CALL, "49.00", at("10:01"), opened="50.00").last
    e = _stopped_call(3, Side.SELL, stop)
    assert _feed(e, ["49.00", "49.00"]) == [False, True]


def test_last_or_bid_ask_triggers_on_either() -> None:
    """Method 7: a bid at or below the stop triggers even when the last is above it."""
    q = quote_at(CALL, "49.00", at("10:01"), opened="50.00")
    e = _stopped_call(7, Side.SELL, q.bid)
    assert q.last > q.bid
    assert _feed(e, ["49.00"]) == [True]


def test_midpoint_method() -> None:
    """Method 8: the midpoint of bid and ask against the stop; just under it does not."""
    q = quote_at(CALL, "49.00", at("10:01"), opened="50.00")
    mid = (q.bid + q.ask) / 2
    hit = _stopped_call(8, Side.SELL, mid)
    miss = _stopped_call(8, Side.SELL, mid - D("0.01"))
    assert _feed(hit, ["49.00"]) == [True]
    assert _feed(miss, ["49.00"]) == [False]


def test_an_option_stop_limit_works_as_a_limit_once_triggered() -> None:
    """Triggered (method 4) with a limit above the bid: it rests, and fills once a bid
    reaches the limit, at that bid."""
    low = quote_at(CALL, "49.00", at("10:01"), opened="50.00")
    high = quote_at(CALL, "49.60", at("10:02"), opened="50.00")
    limit = high.bid
    assert limit > low.bid
    e = _stopped_call(4, Side.SELL, low.bid, limit=limit)
    assert _feed(e, ["49.00"]) == [True]
    assert e.executions == []
    e.on_trade("TQQQ", D("49.60"), 100, at("10:02"))
    assert [x.price for x in e.executions] == [high.bid]


def _stock_stop(method: int) -> tuple[Engine, list[tuple[str, int, Decimal]]]:
    e, events = recording()
    e.place(
        order("stp", "TQQQ", Side.SELL, qty=10, stop="49.00"), at("10:00"), trigger_method=method
    )
    for minute, price in enumerate(("48.90", "49.50", "48.95", "48.80")):
        e.on_trade("TQQQ", D(price), 100, at(f"10:{minute + 1:02d}"))
    return e, fills(events)


@pytest.mark.parametrize("method", [0, 2, 4, 7, 8])
def test_a_stock_stop_triggers_on_the_first_trade_reaching_it(method: int) -> None:
    """The default (0) and the single methods trigger on the last trade, filling at it."""
    _, filled = _stock_stop(method)
    assert filled == [("stp", 10, D("48.90"))]


@pytest.mark.parametrize("method", [1, 3])
def test_a_stock_stop_with_a_double_method_needs_two_consecutive_trades(method: int) -> None:
    """48.90 then 49.50 (back above: the count starts again), then 48.95 and 48.80: it
    triggers on 48.80 and fills at it."""
    _, filled = _stock_stop(method)
    assert filled == [("stp", 10, D("48.80"))]


@pytest.mark.parametrize("method", [5, 6, 9, -1])
def test_a_trigger_method_ib_does_not_offer_is_rejected(method: int) -> None:
    """Rejected, naming the method."""
    e, events = recording()
    assert (
        e.place(order("stp", "TQQQ", Side.SELL, stop="49"), at("10:00"), trigger_method=method)
        is None
    )
    assert f"triggerMethod {method}" in rejects(events)[0][1]


def test_a_new_stop_starts_the_double_count_again() -> None:
    """Double last on a stock: one trade reaching the stop, then the stop is moved: the next
    trade reaching the new stop is the first of two again."""
    e, events = recording()
    e.place(order("stp", "TQQQ", Side.SELL, qty=10, stop="49.00"), at("10:00"), trigger_method=3)
    e.on_trade("TQQQ", D("48.90"), 100, at("10:01"))
    e.modify("stp", quantity=10, limit=None, stop=D("48.00"))
    e.on_trade("TQQQ", D("47.90"), 100, at("10:02"))
    assert fills(events) == []
    e.on_trade("TQQQ", D("47.80"), 100, at("10:03"))
    assert fills(events) == [("stp", 10, D("47.80"))]
