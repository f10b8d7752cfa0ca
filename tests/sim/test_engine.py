"""The simulated matching engine."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import (
    BrokerEvent,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceCondition,
    Side,
    TimeInForce,
)
from actors.domain.sessions import NEW_YORK
from sim.engine import (
    Cancel,
    DuplicateNextFill,
    Engine,
    EngineError,
    Input,
    OnTrade,
    Place,
    RejectNext,
    Restart,
)

D = Decimal
MONDAY = "2026-11-23"


def at(clock: str, day: str = MONDAY) -> datetime:
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=NEW_YORK)


def order(
    ref: str,
    side: Side = Side.BUY,
    qty: int = 100,
    limit: str | None = "100.00",
    tif: TimeInForce = TimeInForce.GTC,
    **kw: object,
) -> PlaceOrder:
    return PlaceOrder(
        ref=ref,
        symbol="TQQQ",
        side=side,
        quantity=qty,
        limit=D(limit) if limit is not None else None,
        tif=tif,
        **kw,  # type: ignore[arg-type]  # outside_rth and condition, as each test needs
    )


@pytest.fixture
def engine() -> tuple[Engine, list[BrokerEvent]]:
    e = Engine()
    events: list[BrokerEvent] = []
    e.listeners.append(events.append)
    return e, events


def fills(events: list[BrokerEvent]) -> list[tuple[str, int, Decimal]]:
    return [(e.ref, e.quantity, e.price) for e in events if isinstance(e, OrderFilled)]


def test_a_limit_buy_fills_at_the_trade_price_once_a_trade_reaches_it(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """Accepted at once; no fill above the limit; filled at the (better) trade price."""
    e, events = engine
    e.place(order("b1", limit="100.25"), at("10:00"))
    assert isinstance(events[0], OrderAccepted)
    e.on_trade("TQQQ", D("100.30"), 500, at("10:00:01"))
    assert fills(events) == []
    e.on_trade("TQQQ", D("100.10"), 500, at("10:00:02"))
    assert fills(events) == [("b1", 100, D("100.10"))]


def test_a_limit_sell_fills_at_or_above_its_limit(engine: tuple[Engine, list[BrokerEvent]]) -> None:
    """Sells need trades at or above the limit."""
    e, events = engine
    e.place(order("s1", side=Side.SELL, limit="101.00"), at("10:00"))
    e.on_trade("TQQQ", D("100.99"), 500, at("10:01"))
    e.on_trade("TQQQ", D("101.00"), 500, at("10:02"))
    assert fills(events) == [("s1", 100, D("101.00"))]


def test_a_price_condition_holds_the_order_until_the_last_price_reaches_the_trigger(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """The grid's conditional buy: last <= trigger activates it; it then fills as a limit."""
    e, events = engine
    e.place(order("c1", limit="99.00", condition=PriceCondition(trigger=D("99.00"))), at("10:00"))
    e.on_trade("TQQQ", D("99.01"), 500, at("10:01"))
    assert fills(events) == []
    e.on_trade("TQQQ", D("98.90"), 500, at("10:02"))
    assert fills(events) == [("c1", 100, D("98.90"))]


def test_trade_size_limits_fills_first_come_first_served(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """A 150-share trade fills the first order whole and the second in part."""
    e, events = engine
    e.place(order("first", qty=100), at("10:00"))
    e.place(order("second", qty=100), at("10:00"))
    e.on_trade("TQQQ", D("99.00"), 150, at("10:01"))
    e.on_trade("TQQQ", D("99.50"), 30, at("10:02"))
    assert fills(events) == [
        ("first", 100, D("99.00")),
        ("second", 50, D("99.00")),
        ("second", 30, D("99.50")),
    ]


def test_outside_regular_hours_only_outside_rth_orders_fill(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """Pre-market: outsideRth orders fill, others wait for 09:30."""
    e, events = engine
    e.place(order("rth-only", outside_rth=False), at("05:00"))
    e.place(order("anytime", outside_rth=True), at("05:00"))
    e.on_trade("TQQQ", D("99.00"), 1000, at("05:01"))
    assert [ref for ref, *_ in fills(events)] == ["anytime"]
    e.on_trade("TQQQ", D("99.00"), 1000, at("09:30"))
    assert [ref for ref, *_ in fills(events)] == ["anytime", "rth-only"]


@pytest.mark.parametrize(
    "when", [at("21:00"), at("03:00"), at("12:00", "2026-11-26"), at("12:00", "2026-11-28")]
)
def test_nothing_fills_while_the_market_is_closed(
    engine: tuple[Engine, list[BrokerEvent]], when: datetime
) -> None:
    """Night, Thanksgiving and Saturday trades fill nothing."""
    e, events = engine
    e.place(order("b", outside_rth=True), at("10:00"))
    e.on_trade("TQQQ", D("50.00"), 1000, when)
    assert fills(events) == []


def test_a_day_order_expires_on_the_next_trading_day_and_gtc_stays(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """DAY: cancelled as expired at the first trade of a later day; GTC keeps working."""
    e, events = engine
    e.place(order("day", tif=TimeInForce.DAY, limit="10.00"), at("10:00"))
    e.place(order("gtc", limit="10.00"), at("10:00"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00", "2026-11-24"))
    cancelled = [ev.ref for ev in events if isinstance(ev, OrderCancelled)]
    assert cancelled == ["day"]
    assert [o.ref for o in e.open_orders()] == ["gtc"]


@pytest.mark.parametrize(
    ("executions", "expected"),
    [
        ([(100, "50.00")], [D("1.00")]),
        ([(1000, "50.00")], [D("5.00")]),
        ([(300, "0.40")], [D("1.20")]),
        ([(40, "100.00"), (54, "100.00")], [D("1.00"), D("0.00")]),
        ([(200, "100.00"), (200, "100.00")], [D("1.00"), D("1.00")]),
    ],
)
def test_ibkr_fixed_commissions_per_order(
    engine: tuple[Engine, list[BrokerEvent]],
    executions: list[tuple[int, str]],
    expected: list[Decimal],
) -> None:
    """$0.005 a share, at least $1.00 and at most 1% of value per order, charged as it fills."""
    e, events = engine
    total = sum(q for q, _ in executions)
    e.place(order("b", qty=total, limit=None), at("10:00"))
    for quantity, price in executions:
        e.on_trade("TQQQ", D(price), quantity, at("10:01"))
    assert [ev.commission for ev in events if isinstance(ev, OrderFilled)] == expected


def test_positions_keep_an_average_cost(engine: tuple[Engine, list[BrokerEvent]]) -> None:
    """Buys average in; sells reduce the position at its average cost."""
    e, _ = engine
    e.place(order("b1", qty=100, limit=None), at("10:00"))
    e.on_trade("TQQQ", D("100.00"), 100, at("10:01"))
    e.place(order("b2", qty=100, limit=None), at("10:02"))
    e.on_trade("TQQQ", D("98.00"), 100, at("10:03"))
    assert (e.positions["TQQQ"].quantity, e.positions["TQQQ"].average_cost) == (200, D("99.00"))
    e.place(order("s1", side=Side.SELL, qty=50, limit=None), at("10:04"))
    e.on_trade("TQQQ", D("101.00"), 100, at("10:05"))
    assert (e.positions["TQQQ"].quantity, e.positions["TQQQ"].average_cost) == (150, D("99.00"))


def test_exec_ids_are_unique_and_faults_duplicate_or_reject(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """duplicate_next_fill repeats one execution event; reject_next refuses one order."""
    e, events = engine
    e.reject_next("margin")
    assert e.place(order("r"), at("10:00")) is None
    assert isinstance(events[-1], OrderRejected)
    assert events[-1].reason == "margin"
    e.place(order("a", qty=10), at("10:00"))
    e.place(order("b", qty=10), at("10:00"))
    e.duplicate_next_fill()
    e.on_trade("TQQQ", D("99.00"), 100, at("10:01"))
    executions = [ev.exec_id for ev in events if isinstance(ev, OrderFilled)]
    assert len(executions) == 3
    assert len(set(executions)) == 2
    assert len({x.exec_id for x in e.executions}) == len(e.executions) == 2


def test_bad_orders_and_calls_are_refused_with_the_reason(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """Zero quantity, a working duplicate ref, an unknown cancel, a naive time."""
    e, events = engine
    e.place(order("z", qty=0), at("10:00"))
    e.place(order("dup"), at("10:00"))
    e.place(order("dup"), at("10:00"))
    reasons = [ev.reason for ev in events if isinstance(ev, OrderRejected)]
    assert reasons == [
        "quantity must be positive, got 0",
        "duplicate orderRef dup is still working",
    ]
    with pytest.raises(EngineError, match="no order 'nope'"):
        e.cancel("nope")
    with pytest.raises(EngineError, match="timezone-aware"):
        e.on_trade("TQQQ", D(1), 1, datetime(2026, 11, 23, 10, 0))
    e.cancel("dup", "operator")
    assert isinstance(events[-1], OrderCancelled)
    assert e.open_orders() == []


def test_a_restart_cancels_working_day_orders_and_then_calls_the_restart_callbacks(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """DAY orders (armed ones too) are cancelled before the callbacks run; GTC orders stay."""
    e, events = engine
    e.place(order("day", tif=TimeInForce.DAY), at("10:00"))
    e.place(
        order("armed", tif=TimeInForce.DAY, condition=PriceCondition(trigger=D("1"))),
        at("10:00"),
    )
    e.place(order("gtc"), at("10:00"))
    seen_at_callback: list[int] = []
    e.on_restart.append(lambda: seen_at_callback.append(len(events)))
    e.restart("nightly")
    cancelled = [(ev.ref, ev.reason) for ev in events if isinstance(ev, OrderCancelled)]
    assert cancelled == [("day", "nightly"), ("armed", "nightly")]
    assert seen_at_callback == [len(events)]
    assert [o.ref for o in e.open_orders()] == ["gtc"]


def test_every_input_is_recorded_before_it_takes_effect() -> None:
    """The recorder sees each call, as data, while the engine has not yet acted on it."""
    emitted: list[BrokerEvent] = []
    recorded: list[tuple[Input, int]] = []
    e = Engine(recorder=lambda entry: recorded.append((entry, len(emitted))))
    e.listeners.append(emitted.append)
    buy = order("b", qty=10, limit=None)
    e.reject_next("margin")
    e.place(buy, at("10:00"))
    e.place(buy, at("10:00"))
    e.duplicate_next_fill()
    e.on_trade("TQQQ", D("99.00"), 5, at("10:01"))
    e.cancel("b", "operator")
    e.restart()
    ny = at("10:00").tzinfo
    assert recorded == [
        (RejectNext(reason="margin"), 0),
        (Place(order=buy, at=at("10:00")), 0),
        (Place(order=buy, at=at("10:00")), 1),
        (DuplicateNextFill(), 2),
        (OnTrade(symbol="TQQQ", price=D("99.00"), size=5, at=at("10:01")), 2),
        (Cancel(ref="b", reason="operator"), 4),
        (Restart(reason="venue restarted"), 5),
    ]
    assert all(entry.at.tzinfo is ny for entry, _ in recorded if isinstance(entry, Place))


def test_an_input_whose_recording_fails_is_not_applied() -> None:
    """Write-ahead: a recorder that raises stops the call before it changes anything."""

    def full(entry: Input) -> None:
        raise OSError("disk full")

    e = Engine(recorder=full)
    with pytest.raises(OSError, match="disk full"):
        e.place(order("b"), at("10:00"))
    assert (e.orders, e.next_order_id) == ({}, 1)


def test_calls_the_engine_refuses_are_not_recorded() -> None:
    """An unknown cancel or a naive time raises before the recorder hears of it."""
    recorded: list[Input] = []
    e = Engine(recorder=recorded.append)
    with pytest.raises(EngineError):
        e.cancel("nope")
    with pytest.raises(EngineError):
        e.on_trade("TQQQ", D(1), 1, datetime(2026, 11, 23, 10, 0))
    with pytest.raises(EngineError):
        e.place(order("b"), datetime(2026, 11, 23, 10, 0))
    assert recorded == []


def test_apply_makes_the_call_an_input_records() -> None:
    """Applying the recorded inputs to a fresh engine gives the same events and books."""
    recorded: list[Input] = []
    first = Engine(recorder=recorded.append)
    first_events: list[BrokerEvent] = []
    first.listeners.append(first_events.append)
    first.place(order("b", qty=100, tif=TimeInForce.DAY), at("10:00"))
    first.duplicate_next_fill()
    first.on_trade("TQQQ", D("99.00"), 40, at("10:01"))
    first.restart()
    second = Engine()
    second_events: list[BrokerEvent] = []
    second.listeners.append(second_events.append)
    for entry in recorded:
        second.apply(entry)
    assert second_events == first_events
    assert second.executions == first.executions
    assert (second.next_order_id, second.next_perm_id, second.next_exec_seq) == (2, 1_000_002, 2)


def test_the_engine_remembers_when_it_saw_the_last_trade(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """last_trade_at: None before any trade, then the last trade's time in New York."""
    e, _ = engine
    before = e.last_trade_at
    e.on_trade("TQQQ", D("99.00"), 1, at("03:00"))
    e.on_trade("TQQQ", D("99.00"), 1, datetime.fromisoformat("2026-11-23T15:01:00+00:00"))
    assert before is None
    assert e.last_trade_at == at("10:01")
    assert e.last_trade_at is not None
    assert e.last_trade_at.tzinfo is NEW_YORK


def test_modify_changes_a_working_order_and_refuses_a_finished_one() -> None:
    """Modify re-prices and resizes a working order (re-acknowledged); a partly filled order
    cannot go below its fills; a finished order cannot be modified (code 104)."""
    engine = Engine()
    events: list[BrokerEvent] = []
    engine.listeners.append(events.append)
    engine.place(order("a", qty=100, limit="99.00"), at("10:00"))
    engine.modify("a", quantity=150, limit=D("99.50"))
    assert engine.orders["a"].quantity == 150
    assert engine.orders["a"].limit == D("99.50")
    engine.on_trade("TQQQ", D("99.50"), 40, at("10:01"))
    engine.modify("a", quantity=30, limit=D("99.50"))
    engine.modify("a", quantity=40, limit=D("99.50"))
    assert engine.orders["a"].done
    engine.modify("a", quantity=50, limit=D("99.50"))
    assert [type(e).__name__ for e in events] == [
        "OrderAccepted",
        "OrderAccepted",
        "OrderFilled",
        "OrderRejected",
        "OrderAccepted",
        "OrderRejected",
    ]
    assert [e.code for e in events if isinstance(e, OrderRejected)] == [104, 104]


def test_trade_listeners_hear_every_matched_trade_and_tags_stay_with_orders() -> None:
    """Market data for the faces: each trade after matching; a face's tag is kept."""
    engine = Engine()
    heard: list[tuple[str, Decimal, int]] = []
    engine.trade_listeners.append(lambda s, p, n, _at: heard.append((s, p, n)))
    engine.place(order("a"), at("10:00"), tag="tws:1:7")
    engine.on_trade("TQQQ", D("101.00"), 10, at("10:01"))
    assert heard == [("TQQQ", D("101.00"), 10)]
    assert engine.orders["a"].tag == "tws:1:7"
    replayed = Engine()
    replayed.apply(Place(order=order("a"), at=at("10:00"), tag="tws:1:7"))
    assert replayed.orders["a"].tag == "tws:1:7"


# -- the book: what a trade reaches, found without scanning every order ---------------------------

_prices = st.integers(min_value=9_500, max_value=10_500).map(lambda cents: D(cents) / 100)
_places = st.tuples(
    st.just("place"),
    st.sampled_from(["a", "b", "c", "d", "e", "f"]),
    st.sampled_from(["TQQQ", "QQQ"]),
    st.sampled_from(Side),
    st.one_of(st.none(), _prices),
    st.sampled_from(TimeInForce),
    st.one_of(st.none(), st.tuples(_prices, st.booleans())),
    st.integers(min_value=1, max_value=300),
)
_trades = st.tuples(
    st.just("trade"),
    st.sampled_from(["TQQQ", "QQQ"]),
    _prices,
    st.integers(min_value=1, max_value=300),
    st.integers(min_value=0, max_value=600),
)
_others = st.tuples(
    st.sampled_from(["cancel", "modify", "restart"]),
    st.sampled_from(["a", "b", "c", "d", "e", "f"]),
    st.one_of(st.none(), _prices),
    st.integers(min_value=1, max_value=300),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_places, _trades, _others), max_size=60))
def test_a_trade_reaches_exactly_the_armed_and_marketable_working_orders_in_placing_order(
    steps: list[tuple[object, ...]],
) -> None:
    """The engine's book (Engine.reached) against the rule it stands for, after any mix of
    places (re-placed refs, conditions, DAY and GTC, market orders), fills, modifies, cancels,
    expiries across days and restarts: a trade reaches every working order of its symbol that is
    armed or marketable at its price, in the order the orders were first placed."""
    engine = Engine()
    clock = at("09:30")
    for step in steps:
        match step:
            case ("place", ref, symbol, side, limit, tif, condition, qty):
                placed = PlaceOrder(
                    ref=str(ref),
                    symbol=str(symbol),
                    side=side,
                    quantity=int(qty),
                    limit=limit,
                    tif=tif,
                    outside_rth=True,
                    condition=PriceCondition(trigger=condition[0], is_more=condition[1])
                    if condition is not None
                    else None,
                )
                engine.place(placed, clock)
            case ("trade", symbol, price, size, minutes):
                clock += timedelta(minutes=int(minutes))
                for name in ("TQQQ", "QQQ"):
                    for probe in (D("95.00"), price, D("105.00")):
                        expected = [
                            o
                            for o in engine.orders.values()
                            if o.symbol == name
                            and not o.done
                            and (
                                o.armed
                                or o.limit is None
                                or (probe <= o.limit if o.side is Side.BUY else probe >= o.limit)
                            )
                        ]
                        assert engine.reached(name, probe) == expected
                engine.on_trade(str(symbol), price, int(size), clock)
            case ("cancel", ref, _, _) if ref in engine.orders:
                engine.cancel(str(ref))
            case ("modify", ref, limit, qty) if ref in engine.orders:
                kept = engine.orders[str(ref)].limit
                engine.modify(
                    str(ref), quantity=int(qty), limit=limit if kept is not None else None
                )
            case ("restart", _, _, _):
                engine.restart()
