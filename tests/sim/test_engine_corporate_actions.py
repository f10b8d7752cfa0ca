"""The engine's corporate actions: a split restates the position, the working orders and the
executions; a dividend is paid on the shares held."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest

from actors.domain import (
    BrokerEvent,
    Dividend,
    OrderAccepted,
    PlaceOrder,
    PriceCondition,
    Side,
    Split,
    TimeInForce,
)
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine, EngineError, Input

D = Decimal
EX = date(2026, 11, 24)


def at(clock: str, day: str = "2026-11-23") -> datetime:
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=NEW_YORK)


def order(ref: str, side: Side, qty: int, limit: str, **kw: object) -> PlaceOrder:
    return PlaceOrder(
        ref=ref,
        symbol="TQQQ",
        side=side,
        quantity=qty,
        limit=D(limit),
        tif=TimeInForce.GTC,
        **kw,  # type: ignore[arg-type]
    )


def held(engine: Engine) -> tuple[int, Decimal]:
    position = engine.positions["TQQQ"]
    return position.quantity, position.cost


def a_book(recorded: list[Input] | None = None) -> tuple[Engine, list[BrokerEvent]]:
    """30 shares bought at 100.01 (two fills), a sell of 30 at 101.01 working, a conditional
    buy of 10 at 99.01 armed, and a partly filled buy of 20 at 99.50 (5 filled)."""
    engine = Engine(recorder=recorded.append if recorded is not None else None)
    events: list[BrokerEvent] = []
    engine.listeners.append(events.append)
    engine.place(order("b1", Side.BUY, 30, "100.01"), at("10:00"))
    engine.on_trade("TQQQ", D("100.01"), 20, at("10:01"))
    engine.on_trade("TQQQ", D("100.01"), 20, at("10:02"))
    engine.place(order("s1", Side.SELL, 30, "101.01"), at("10:03"))
    engine.place(
        order("b2", Side.BUY, 10, "99.01", condition=PriceCondition(trigger=D("99.01"))),
        at("10:03"),
    )
    engine.place(order("b3", Side.BUY, 20, "99.50"), at("10:03"))
    engine.on_trade("TQQQ", D("99.50"), 5, at("10:04"))
    events.clear()
    return engine, events


def test_a_split_restates_position_working_orders_and_executions() -> None:
    engine, events = a_book()
    quantity, cost = held(engine)
    assert quantity == 35
    engine.corporate_action(Split(symbol="TQQQ", ex_date=EX, ratio=D(2)))
    assert held(engine) == (70, cost)  # twice the shares, the same cost
    assert engine.positions["TQQQ"].average_cost == cost / 70
    sell, conditional, partial = (engine.orders[r] for r in ("s1", "b2", "b3"))
    assert (sell.quantity, sell.limit) == (60, D("50.51"))  # 101.01 / 2 = 50.505, half up
    assert (conditional.quantity, conditional.limit) == (20, D("49.51"))
    assert conditional.condition is not None
    assert conditional.condition.trigger == D("49.51")
    assert (partial.quantity, partial.filled, partial.limit) == (40, 10, D("49.75"))
    assert [(e.quantity, e.price) for e in engine.executions] == [
        (40, D("50.005")),
        (20, D("50.005")),
        (10, D("49.75")),
    ]
    assert [e.quantity for e in engine.executions_of("b1")] == [40, 20]
    assert engine.orders["b1"].quantity == 30  # a finished order is history: as it was
    assert events == [
        OrderAccepted(ref=o.ref, order_id=o.order_id, perm_id=o.perm_id)
        for o in (sell, conditional, partial)
    ]
    # The restated orders work at their new prices: the conditional buy arms at 49.51.
    engine.on_trade("TQQQ", D("49.60"), 100, at("10:00", "2026-11-24"))
    assert engine.orders["b2"].filled == 0
    engine.on_trade("TQQQ", D("49.51"), 100, at("10:01", "2026-11-24"))
    assert engine.orders["b2"].filled == 20
    assert engine.executions[-1].price == D("49.51")


def test_a_split_that_would_leave_a_fraction_of_a_share_changes_nothing() -> None:
    recorded: list[Input] = []
    engine, events = a_book(recorded)
    before = (held(engine), list(engine.executions), engine.orders["s1"].limit, len(recorded))
    with pytest.raises(EngineError, match=r"35 shares split 0\.1:1 make 3\.5"):
        engine.corporate_action(Split(symbol="TQQQ", ex_date=EX, ratio=D("0.1")))
    assert (held(engine), engine.executions, engine.orders["s1"].limit, len(recorded)) == before
    assert events == []


def test_an_action_is_applied_once() -> None:
    engine, _ = a_book()
    split = Split(symbol="TQQQ", ex_date=EX, ratio=D(2))
    engine.corporate_action(split)
    engine.corporate_action(split)
    assert held(engine)[0] == 70
    dividend = Dividend(symbol="TQQQ", ex_date=date(2026, 12, 1), amount_per_share=D("0.25"))
    engine.corporate_action(dividend)
    engine.corporate_action(dividend)
    assert [d.cash for d in engine.dividends] == [D("17.50")]


def test_a_dividend_pays_the_shares_held_and_nothing_when_flat() -> None:
    engine, _ = a_book()
    engine.corporate_action(Dividend(symbol="TQQQ", ex_date=EX, amount_per_share=D("0.1234")))
    engine.corporate_action(Dividend(symbol="QQQ", ex_date=EX, amount_per_share=D("1")))
    [paid] = engine.dividends
    assert (paid.symbol, paid.shares, paid.cash) == ("TQQQ", 35, D("4.3190"))
    assert held(engine)[0] == 35


def test_actions_are_inputs_a_journal_replays() -> None:
    recorded: list[Input] = []
    first, _ = a_book(recorded)
    first.corporate_action(Split(symbol="TQQQ", ex_date=EX, ratio=D(3)))
    first.corporate_action(Dividend(symbol="TQQQ", ex_date=EX, amount_per_share=D("0.5")))
    second = Engine()
    for entry in recorded:
        second.apply(entry)
    assert second.executions == first.executions
    assert second.dividends == first.dividends
    assert held(second) == held(first) == (105, held(first)[1])
    assert second.orders["s1"].limit == first.orders["s1"].limit == D("33.67")


def test_an_option_is_not_split() -> None:
    engine = Engine()
    with pytest.raises(EngineError, match="apply to stocks"):
        engine.corporate_action(Split(symbol="TQQQ  261218C00050000", ex_date=EX, ratio=D(2)))
