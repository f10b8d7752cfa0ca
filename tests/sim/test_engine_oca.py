"""OCA groups by IB's ocaType: 1 cancels the others (with block), 2 reduces them (with block),
3 reduces them after the step (without block: an overfill); fills and cancels in input order;
option brackets whose exits are one group."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import BrokerEvent, OrderAccepted, OrderCancelled, OrderFilled, Side
from sim.engine import Engine
from sim.journal import open_engine
from tests.sim.option_desk import (
    D,
    at,
    cancels,
    fills,
    option,
    order,
    quote_at,
    recording,
    rejects,
)


def _two_sells(oca_type: int) -> tuple[Engine, list[BrokerEvent]]:
    # Two sells of 100 in group g, both reached by a trade at 101 (of 150 shares).
    e, events = recording()
    e.place(
        order("a", "TQQQ", Side.SELL, 100, limit="100.00", oca="g"), at("10:00"), oca_type=oca_type
    )
    e.place(
        order("b", "TQQQ", Side.SELL, 100, limit="100.50", oca="g"), at("10:00"), oca_type=oca_type
    )
    events.clear()
    return e, events


def test_type_1_cancels_the_others_at_the_first_execution_even_a_partial_one() -> None:
    """60 shares of a fill ``a``; ``b`` is cancelled in the same step (nothing of the 90 left
    of the trade reaches it) and ``a`` works on for the rest."""
    e, events = _two_sells(1)
    e.on_trade("TQQQ", D("101.00"), 60, at("10:01"))
    assert fills(events) == [("a", 60, D("101.00"))]
    assert [type(x) for x in events] == [OrderFilled, OrderCancelled]
    assert cancels(events)[0][0] == "b"
    assert "OCA group g" in cancels(events)[0][1]
    e.on_trade("TQQQ", D("101.00"), 100, at("10:02"))
    assert fills(events)[1:] == [("a", 40, D("101.00"))]


def test_type_2_reduces_the_others_with_block() -> None:
    """A trade of 150 reaching both: ``a`` fills 100, ``b`` is reduced to nothing at once
    and cancelled; nothing of the group overfills."""
    e, events = _two_sells(2)
    e.on_trade("TQQQ", D("101.00"), 150, at("10:01"))
    assert fills(events) == [("a", 100, D("101.00"))]
    assert [r for r, _ in cancels(events)] == ["b"]


def test_type_2_partial_fill_reduces_and_reacknowledges() -> None:
    """60 of ``a`` filled: ``b`` is left 40, re-acknowledged."""
    e, events = _two_sells(2)
    e.on_trade("TQQQ", D("101.00"), 60, at("10:01"))
    assert [type(x) for x in events] == [OrderFilled, OrderAccepted]
    assert e.orders["b"].quantity == 40


def test_type_3_reduces_after_the_step_so_one_trade_overfills() -> None:
    """A trade of 150 reaching both: ``a`` fills 100 and ``b`` 50 in the same step (IB's
    overfill without block); after it, ``b`` is reduced by 100 to its 50 filled and ends.
    Events: both fills first, then the reduction."""
    e, events = _two_sells(3)
    e.on_trade("TQQQ", D("101.00"), 150, at("10:01"))
    assert fills(events) == [("a", 100, D("101.00")), ("b", 50, D("101.00"))]
    assert [type(x) for x in events] == [OrderFilled, OrderFilled, OrderCancelled]
    assert e.orders["b"].done
    assert e.positions["TQQQ"].quantity == -150
    assert e.open_orders() == []


def test_type_3_partial_fill_leaves_the_sibling_reduced_for_later_trades() -> None:
    """60 of ``a`` filled, ``b`` not reached (its limit above the trade): after the step ``b``
    is 40."""
    e, events = _two_sells(3)
    e.on_trade("TQQQ", D("100.20"), 60, at("10:01"))
    assert fills(events) == [("a", 60, D("100.20"))]
    assert e.orders["b"].quantity == 40
    assert [type(x) for x in events] == [OrderFilled, OrderAccepted]


@pytest.mark.parametrize("oca_type", [0, 4, -1])
def test_an_oca_type_ib_does_not_offer_is_rejected(oca_type: int) -> None:
    """Rejected for an order of a group, naming the type."""
    e, events = recording()
    placed = e.place(order("a", "TQQQ", oca="g"), at("10:00"), oca_type=oca_type)
    assert placed is None
    assert f"ocaType {oca_type}" in rejects(events)[0][1]


def test_an_order_outside_any_group_ignores_the_oca_type() -> None:
    """ocaType matters only with a group: no group, any type is accepted."""
    e, events = recording()
    assert e.place(order("a", "TQQQ"), at("10:00"), oca_type=0) is not None
    assert rejects(events) == []


@pytest.mark.parametrize("oca_type", [1, 2, 3])
def test_a_cancel_before_the_trade_leaves_the_sibling_to_fill_whole(oca_type: int) -> None:
    """``b`` cancelled, then a trade reaching both: ``a`` fills its 100, nothing reduces."""
    e, events = _two_sells(oca_type)
    e.cancel("b", "cancelled by the client")
    e.on_trade("TQQQ", D("101.00"), 150, at("10:01"))
    assert fills(events) == [("a", 100, D("101.00"))]
    assert cancels(events) == [("b", "cancelled by the client")]


@pytest.mark.parametrize("oca_type", [1, 2])
def test_a_cancel_after_the_fill_finds_the_sibling_already_done(oca_type: int) -> None:
    """The trade first: ``a`` fills and ``b`` goes through the group; the client's cancel of
    ``b`` that arrives after that is too late and changes nothing (no second event)."""
    e, events = _two_sells(oca_type)
    e.on_trade("TQQQ", D("101.00"), 150, at("10:01"))
    before = list(events)
    e.cancel("b", "cancelled by the client")
    assert events == before
    assert [r for r, _ in cancels(events)] == ["b"]
    assert "OCA group g" in cancels(events)[0][1]


# -- an option bracket ----------------------------------------------------------------------

CALL = option(50, "C")


def _option_bracket(oca_type: int) -> tuple[Engine, list[BrokerEvent], str, str]:
    # Buy 2 calls at a limit above the ask; take profit 0.30 above, stop 0.30 below the bid.
    e, events = recording()
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    q = quote_at(CALL, "50.00", at("10:01"))
    take, stop = str(q.ask + D("0.30")), str(q.bid - D("0.30"))
    symbol = CALL.local_symbol
    e.place(order("entry", symbol, qty=2, limit=str(q.ask)), at("10:00:10"))
    e.place(
        order("tp", symbol, Side.SELL, 2, limit=take, parent="entry", oca="x"),
        at("10:00:11"),
        oca_type=oca_type,
    )
    e.place(
        order("sl", symbol, Side.SELL, 2, stop=stop, parent="entry", oca="x"),
        at("10:00:12"),
        oca_type=oca_type,
        trigger_method=4,
    )
    e.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    assert [r for r, _, _ in fills(events)] == ["entry"]
    return e, events, take, stop


@pytest.mark.parametrize("oca_type", [1, 2, 3])
def test_an_option_brackets_take_profit_fills_and_the_stop_is_cancelled(oca_type: int) -> None:
    """TQQQ rises until the call's bid reaches the take-profit: it fills at that bid, the
    stop is cancelled by the group, the position is flat."""
    e, events, take, _ = _option_bracket(oca_type)
    for minute, price in enumerate(("50.20", "50.40", "50.60", "50.80", "51.00"), start=2):
        e.on_trade("TQQQ", D(price), 100, at(f"10:{minute:02d}"))
    [(ref, qty, price)] = fills(events)[1:]
    assert (ref, qty) == ("tp", 2)
    assert price >= D(take)
    assert [r for r, _ in cancels(events)] == ["sl"]
    assert e.positions[CALL.local_symbol].quantity == 0


@pytest.mark.parametrize("oca_type", [1, 2, 3])
def test_an_option_brackets_stop_fills_and_the_take_profit_is_cancelled(oca_type: int) -> None:
    """TQQQ falls until the call's bid is at or under the stop: the stop triggers and sells
    at that bid, the take-profit is cancelled by the group."""
    e, events, _, stop = _option_bracket(oca_type)
    for minute, price in enumerate(("49.80", "49.60", "49.40", "49.20"), start=2):
        e.on_trade("TQQQ", D(price), 100, at(f"10:{minute:02d}"))
    [(ref, qty, price)] = fills(events)[1:]
    assert (ref, qty) == ("sl", 2)
    assert price <= D(stop)
    assert [r for r, _ in cancels(events)] == ["tp"]
    assert e.positions[CALL.local_symbol].quantity == 0


def test_a_working_option_bracket_survives_a_reopened_journal(tmp_path: Path) -> None:
    """Reopened after the entry filled: the legs with their parent, group, type and trigger
    method as they were, and the group still cancels the take-profit when the stop fills."""
    path = tmp_path / "journal"
    e = open_engine(path)
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    q = quote_at(CALL, "50.00", at("10:01"))
    symbol = CALL.local_symbol
    e.place(order("entry", symbol, qty=2, limit=str(q.ask)), at("10:00:10"))
    e.place(
        order("tp", symbol, Side.SELL, 2, limit="9.00", parent="entry", oca="x"),
        at("10:00:11"),
        oca_type=1,
    )
    e.place(
        order("sl", symbol, Side.SELL, 2, stop=str(q.bid - D("0.30")), parent="entry", oca="x"),
        at("10:00:12"),
        oca_type=1,
        trigger_method=4,
    )
    e.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    again = open_engine(path)
    assert again.orders == e.orders
    assert again.positions == e.positions
    assert (again.orders["sl"].oca_type, again.orders["sl"].trigger_method) == (1, 4)
    events: list[BrokerEvent] = []
    again.listeners.append(events.append)
    for minute, price in enumerate(("49.60", "49.20"), start=2):
        again.on_trade("TQQQ", D(price), 100, at(f"10:{minute:02d}"))
    assert [r for r, _, _ in fills(events)] == ["sl"]
    assert [r for r, _ in cancels(events)] == ["tp"]


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([Side.BUY, Side.SELL]),
            st.integers(min_value=1, max_value=200),
            st.decimals(min_value=D(98), max_value=D(102), places=2),
        ),
        min_size=2,
        max_size=5,
    ),
    st.lists(
        st.tuples(
            st.decimals(min_value=D(97), max_value=D(103), places=2),
            st.integers(min_value=1, max_value=300),
        ),
        min_size=1,
        max_size=8,
    ),
    st.sampled_from([1, 2, 3]),
)
def test_what_a_group_fills_by_its_type(
    legs: list[tuple[Side, int, Decimal]], trades: list[tuple[Decimal, int]], oca_type: int
) -> None:
    """Any orders of one group, any trades: with type 1 only one order ever executes; with
    type 2 the group fills at most its largest order; with type 3 each trade may overfill
    but after it every working order is reduced by everything the group filled."""
    e, _ = recording()
    for number, (side, qty, limit) in enumerate(legs):
        e.place(
            order(f"o{number}", "TQQQ", side, qty, limit=limit, oca="g"),
            at("10:00"),
            oca_type=oca_type,
        )
    for minute, (price, size) in enumerate(trades, start=1):
        e.on_trade("TQQQ", price, size, at(f"10:{minute:02d}"))
        total = sum(o.filled for o in e.orders.values())
        for o in e.open_orders():
            assert o.quantity - o.filled <= max(0, max(q for _, q, _ in legs) - total)
    executed = [o for o in e.orders.values() if o.filled]
    if oca_type == 1:
        assert len(executed) <= 1
    if oca_type == 2:
        assert sum(o.filled for o in executed) <= max(q for _, q, _ in legs)
