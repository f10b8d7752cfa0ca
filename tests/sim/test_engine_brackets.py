"""The matching engine's stop orders, bracket children and OCA groups (ocaType 2)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import (
    BrokerEvent,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    Side,
    TimeInForce,
)
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine, Input, Modify, Place
from sim.journal import Journal, open_engine

D = Decimal
MONDAY = "2026-11-23"


def at(clock: str, day: str = MONDAY) -> datetime:
    return datetime.fromisoformat(f"{day} {clock}").replace(tzinfo=NEW_YORK)


def order(
    ref: str,
    side: Side = Side.SELL,
    qty: int = 100,
    limit: str | None = None,
    stop: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    **kw: Any,
) -> PlaceOrder:
    return PlaceOrder(
        ref=ref,
        symbol="TQQQ",
        side=side,
        quantity=qty,
        limit=D(limit) if limit is not None else None,
        stop=D(stop) if stop is not None else None,
        tif=tif,
        **kw,
    )


def bracket(
    qty: int = 100,
    entry: str = "100.00",
    take: str = "102.00",
    stop: str = "98.00",
    tif: TimeInForce = TimeInForce.GTC,
) -> PlaceBracket:
    return PlaceBracket(
        entry=order("e", Side.BUY, qty, limit=entry, tif=tif),
        take_profit=order("tp", qty=qty, limit=take, parent="e", oca="g"),
        stop_loss=order("sl", qty=qty, stop=stop, parent="e", oca="g"),
    )


def place(engine: Engine, legs: PlaceBracket, when: str = "10:00") -> None:
    for leg in legs.legs:
        engine.place(leg, at(when))


@pytest.fixture
def engine() -> tuple[Engine, list[BrokerEvent]]:
    e = Engine()
    events: list[BrokerEvent] = []
    e.listeners.append(events.append)
    return e, events


def fills(events: list[BrokerEvent]) -> list[tuple[str, int, Decimal]]:
    return [(e.ref, e.quantity, e.price) for e in events if isinstance(e, OrderFilled)]


def cancels(events: list[BrokerEvent]) -> list[str]:
    return [e.ref for e in events if isinstance(e, OrderCancelled)]


# -- brackets -------------------------------------------------------------------------------------


def test_the_children_wait_for_the_entry_and_the_take_profit_cancels_the_stop(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """Accepted at once, inactive before the entry fills; the take-profit's fill cancels the
    stop-loss through the OCA group in the same step; the position is flat."""
    e, events = engine
    place(e, bracket())
    assert [type(x) for x in events] == [OrderAccepted] * 3
    e.on_trade("TQQQ", D("102.50"), 500, at("10:01"))  # reaches the take-profit, not yet working
    e.on_trade("TQQQ", D("97.00"), 500, at("10:02"))  # would trigger the stop; fills the entry
    assert fills(events) == [("e", 100, D("97.00"))]
    assert e.orders["sl"].stopped
    assert not e.orders["sl"].held
    e.on_trade("TQQQ", D("102.00"), 500, at("10:03"))
    assert fills(events)[1:] == [("tp", 100, D("102.00"))]
    assert isinstance(events[-1], OrderCancelled)
    assert events[-1].ref == "sl"
    assert "OCA group g" in events[-1].reason
    assert e.open_orders() == []
    assert e.positions["TQQQ"].quantity == 0


def test_the_stop_loss_triggers_fills_at_market_and_cancels_the_take_profit(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """A trade at or below the stop triggers it; it fills as a market order at that trade."""
    e, events = engine
    place(e, bracket())
    e.on_trade("TQQQ", D("99.90"), 500, at("10:01"))
    e.on_trade("TQQQ", D("98.01"), 500, at("10:02"))
    assert fills(events) == [("e", 100, D("99.90"))]
    e.on_trade("TQQQ", D("97.95"), 60, at("10:03"))  # triggers; fills what the print holds
    e.on_trade("TQQQ", D("98.40"), 500, at("10:04"))  # a market order now: any price fills it
    assert fills(events)[1:] == [("sl", 60, D("97.95")), ("sl", 40, D("98.40"))]
    reductions = [x for x in events if isinstance(x, OrderAccepted) and x.ref == "tp"]
    assert len(reductions) == 2  # its acceptance and the reduction to 40
    assert cancels(events) == ["tp"]
    assert e.orders["tp"].quantity == 0
    assert e.positions["TQQQ"].quantity == 0


def test_a_partial_entry_is_protected_for_its_filled_part_and_never_oversold(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """Entry 40 of 100: the take-profit sells 40 only (not 100), the stop is reduced to 60;
    when the entry fills its other 60, the stop may sell those 60, no more."""
    e, events = engine
    place(e, bracket())
    e.on_trade("TQQQ", D("99.90"), 40, at("10:01"))
    e.on_trade("TQQQ", D("102.10"), 500, at("10:02"))
    assert fills(events) == [("e", 40, D("99.90")), ("tp", 40, D("102.10"))]
    assert e.orders["sl"].quantity == 60
    assert isinstance(events[-1], OrderAccepted)
    assert events[-1].ref == "sl"
    e.on_trade("TQQQ", D("97.00"), 500, at("10:03"))  # the entry first, then the stop
    assert fills(events)[2:] == [("e", 60, D("97.00")), ("sl", 60, D("97.00"))]
    assert e.positions["TQQQ"].quantity == 0
    assert e.open_orders() == []


def test_an_entry_cancelled_unfilled_takes_its_children_along(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """OrderCancelled for each child, its reason naming the parent."""
    e, events = engine
    place(e, bracket())
    e.cancel("e", "changed my mind")
    assert cancels(events) == ["e", "tp", "sl"]
    reasons = [x.reason for x in events if isinstance(x, OrderCancelled)][1:]
    assert all("parent e" in reason and "changed my mind" in reason for reason in reasons)
    assert e.open_orders() == []


def test_an_expired_day_entry_takes_its_children_along_once_each(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """A DAY entry expiring with nothing filled cancels its DAY children once, not twice."""
    e, events = engine
    place(e, bracket(tif=TimeInForce.DAY))
    e.on_trade("TQQQ", D("101.00"), 100, at("10:00", "2026-11-24"))
    assert cancels(events) == ["e", "tp", "sl"]


def test_a_partly_filled_entry_cancelled_leaves_its_children_working(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """After a partial fill the exits stay, for the filled part."""
    e, events = engine
    place(e, bracket())
    e.on_trade("TQQQ", D("99.90"), 30, at("10:01"))
    e.cancel("e")
    assert cancels(events) == ["e"]
    e.on_trade("TQQQ", D("103.00"), 500, at("10:02"))
    assert fills(events)[1:] == [("tp", 30, D("103.00"))]
    assert e.orders["sl"].remaining == 70
    e.on_trade("TQQQ", D("97.00"), 500, at("10:03"))  # triggers the stop: nothing left to sell
    assert e.orders["sl"].triggered
    assert len(fills(events)) == 2
    assert e.positions["TQQQ"].quantity == 0


def test_a_restart_cancels_a_day_entry_and_its_gtc_children(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """The GTC children of an unfilled DAY entry go with it at the nightly restart."""
    e, events = engine
    e.place(order("e", Side.BUY, limit="100.00", tif=TimeInForce.DAY), at("10:00"))
    e.place(order("tp", limit="102.00", parent="e", oca="g"), at("10:00"))
    e.restart()
    assert cancels(events) == ["e", "tp"]


def test_a_child_of_an_unknown_or_finished_parent_is_rejected_naming_it(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """201 naming the parent; a finished parent is no longer working."""
    e, events = engine
    e.place(order("tp", limit="102.00", parent="nope"), at("10:00"))
    e.place(order("x", Side.BUY, limit="100.00"), at("10:00"))
    e.cancel("x")
    e.place(order("tp2", limit="102.00", parent="x"), at("10:00"))
    rejected = [x for x in events if isinstance(x, OrderRejected)]
    assert [(x.ref, x.code) for x in rejected] == [("tp", 201), ("tp2", 201)]
    assert "parent order nope of tp is unknown" in rejected[0].reason
    assert "parent order x of tp2 is no longer working" in rejected[1].reason


def test_a_child_of_a_partly_filled_parent_works_at_once(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """Not held: the parent has executed already; limited to what it filled."""
    e, events = engine
    e.place(order("e", Side.BUY, limit="100.00"), at("10:00"))
    e.on_trade("TQQQ", D("99.00"), 10, at("10:01"))
    e.place(order("tp", limit="101.00", parent="e"), at("10:02"))
    assert not e.orders["tp"].held
    e.on_trade("TQQQ", D("101.00"), 500, at("10:03"))
    assert fills(events) == [("e", 10, D("99.00")), ("tp", 10, D("101.00"))]


def test_one_print_crossing_both_exits_fills_only_the_first(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """A stop-loss raised above the take-profit (to lock a gain): a print at 101.20 reaches
    both; the take-profit, first in time priority, fills and the stop is reduced away before
    it is matched."""
    e, events = engine
    place(e, bracket(take="101.00"))
    e.on_trade("TQQQ", D("99.90"), 500, at("10:01"))
    e.modify("sl", quantity=100, limit=None, stop=D("101.50"))
    e.on_trade("TQQQ", D("101.20"), 1000, at("10:02"))
    assert fills(events)[1:] == [("tp", 100, D("101.20"))]
    assert cancels(events) == ["sl"]
    assert e.positions["TQQQ"].quantity == 0


def test_a_plain_oca_group_never_fills_more_than_one_order(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """Two buys in one group, one print that could fill both: 100 shares, not 200."""
    e, events = engine
    e.place(order("a", Side.BUY, limit="100.00", oca="g"), at("10:00"))
    e.place(order("b", Side.BUY, limit="100.50", oca="g"), at("10:00"))
    e.on_trade("TQQQ", D("99.00"), 1000, at("10:01"))
    assert fills(events) == [("a", 100, D("99.00"))]
    assert cancels(events) == ["b"]
    assert e.positions["TQQQ"].quantity == 100


# -- stop and stop-limit orders -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "stop", "limit", "path", "expected"),
    [
        # STP sell: triggers at or below the stop, fills at that trade.
        (Side.SELL, "98.00", None, ["98.01", "98.00"], [("98.00", 1)]),
        # STP buy: at or above the stop.
        (Side.BUY, "102.00", None, ["101.99", "102.10"], [("102.10", 1)]),
        # STP LMT sell: the trigger print is below the limit; it then rests as a limit sell.
        (Side.SELL, "98.00", "97.80", ["98.50", "97.50", "97.90"], [("97.90", 2)]),
        # STP LMT buy: triggered at 102.50, above its limit; fills at 102.10 later.
        (Side.BUY, "102.00", "102.20", ["101.00", "102.50", "102.10"], [("102.10", 2)]),
        # STP LMT with the limit on the wrong side (IB accepts it): a sell limited above its
        # stop triggers at 98.00 and then waits for a trade at 99.00.
        (Side.SELL, "98.00", "99.00", ["98.00", "98.50", "99.00"], [("99.00", 2)]),
    ],
)
def test_stop_orders_trigger_on_the_last_price_then_work_as_market_or_limit(
    engine: tuple[Engine, list[BrokerEvent]],
    side: Side,
    stop: str,
    limit: str | None,
    path: list[str],
    expected: list[tuple[str, int]],
) -> None:
    """STP and STP LMT, both sides: the fill and the print it came at (by index)."""
    e, events = engine
    e.place(order("s", side, stop=stop, limit=limit), at("10:00"))
    assert e.orders["s"].stopped
    filled_at: list[tuple[str, int]] = []
    for index, price in enumerate(path):
        e.on_trade("TQQQ", D(price), 500, at("10:01") + timedelta(seconds=index))
        filled_at += [(str(f[2]), index) for f in fills(events)[len(filled_at) :]]
    assert filled_at == expected
    assert e.orders["s"].triggered


def test_a_stop_does_not_trigger_outside_the_sessions_it_may_trade_in(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """A regular-hours stop ignores pre-market prints; it triggers in the regular session."""
    e, events = engine
    e.place(order("s", stop="98.00", outside_rth=False), at("08:00"))
    e.on_trade("TQQQ", D("97.00"), 500, at("08:01"))
    assert e.orders["s"].stopped
    e.on_trade("TQQQ", D("97.50"), 500, at("09:31"))
    assert fills(events) == [("s", 100, D("97.50"))]


@pytest.mark.parametrize("stop", ["0", "-1.00"])
def test_a_non_positive_stop_is_rejected_naming_it(
    engine: tuple[Engine, list[BrokerEvent]], stop: str
) -> None:
    """201, the stop named."""
    e, events = engine
    e.place(order("s", stop=stop), at("10:00"))
    assert events == [
        OrderRejected(ref="s", reason=f"stop price must be positive, got {D(stop)}", code=201)
    ]


def test_modify_moves_a_stop_and_keeps_its_type(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """The new stop triggers; removing a stop, adding one, or a non-positive one is refused."""
    e, events = engine
    e.place(order("s", stop="98.00"), at("10:00"))
    e.place(order("l", limit="101.00"), at("10:00"))
    e.modify("s", quantity=100, limit=None, stop=D("99.00"))
    assert events[-1] == OrderAccepted(ref="s", order_id=1, perm_id=1_000_001)
    e.modify("s", quantity=100, limit=None, stop=None)
    e.modify("s", quantity=100, limit=None, stop=D("0"))
    e.modify("l", quantity=100, limit=D("101.00"), stop=D("99.00"))
    refused = [x for x in events if isinstance(x, OrderRejected)]
    assert [(x.ref, x.code) for x in refused] == [("s", 104), ("s", 104), ("l", 104)]
    assert "cannot change the stop of s to None" in refused[0].reason
    assert e.orders["s"].stop == D("99.00")
    e.on_trade("TQQQ", D("98.90"), 500, at("10:01"))
    assert fills(events) == [("s", 100, D("98.90"))]


def test_a_child_cannot_be_modified_above_its_parents_quantity(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """Refused with the parent named; the child unchanged."""
    e, events = engine
    place(e, bracket())
    e.modify("tp", quantity=150, limit=D("102.00"))
    assert isinstance(events[-1], OrderRejected)
    assert "above the 100 of its parent e" in events[-1].reason
    assert e.orders["tp"].quantity == 100


def test_open_orders_report_the_full_order_as_it_stands(
    engine: tuple[Engine, list[BrokerEvent]],
) -> None:
    """stop, parent and oca included, the quantity as reduced by the group."""
    e, _ = engine
    legs = bracket()
    place(e, legs)
    e.on_trade("TQQQ", D("99.90"), 100, at("10:01"))
    e.on_trade("TQQQ", D("102.00"), 30, at("10:02"))
    placed = {o.ref: o.as_placed() for o in e.open_orders()}
    assert placed == {"tp": legs.take_profit, "sl": attrs.evolve(legs.stop_loss, quantity=70)}


# -- journal --------------------------------------------------------------------------------------

_decoder = msgspec.json.Decoder(Input)


def test_a_modify_journalled_before_stops_decodes_with_no_stop() -> None:
    """The old four-field modify decodes with no stop; the new one has a trailing stop."""
    old = b'["modify","a",50,"99.50"]'
    assert _decoder.decode(old) == Modify(ref="a", quantity=50, limit=D("99.50"))
    with_stop = Modify(ref="a", quantity=50, limit=None, stop=D("98.00"))
    assert msgspec.json.encode(with_stop) == b'["modify","a",50,null,"98.00"]'
    assert _decoder.decode(msgspec.json.encode(with_stop)) == with_stop


def test_a_journal_written_before_stops_replays(tmp_path: Path) -> None:
    """A place without stop/parent/oca keys and an old modify, as journalled before."""
    path = tmp_path / "venue.jsonl"
    path.write_text(
        '["begin",1]\n'
        '["place",{"condition":null,"limit":"99.50","outside_rth":true,"quantity":100,'
        '"ref":"a","side":"BUY","symbol":"TQQQ","tif":"GTC"},"2026-11-23T10:00:00-05:00","",[]]\n'
        '["modify","a",50,"99.40"]\n'
    )
    engine = open_engine(path)
    try:
        (working,) = engine.open_orders()
        assert (working.quantity, working.limit, working.stop) == (50, D("99.40"), None)
    finally:
        assert isinstance(engine.recorder, Journal)
        engine.recorder.close()


def state(engine: Engine) -> list[tuple[object, ...]]:
    return [
        (
            o.ref,
            o.order_id,
            o.quantity,
            o.filled,
            o.limit,
            o.stop,
            o.parent,
            o.oca,
            o.armed,
            o.triggered,
            o.held,
            o.active,
            o.done,
        )
        for o in engine.orders.values()
    ]


def test_a_journal_replayed_midway_through_a_bracket_rebuilds_it_exactly(tmp_path: Path) -> None:
    """Partial entry, reduced stop triggered, a second bracket still held: the reopened engine
    has the same state and answers the rest of the session with the same events."""
    path = tmp_path / "venue.jsonl"
    first = open_engine(path)
    place(first, bracket(stop="98.00", take="103.00"))
    second = PlaceBracket(
        entry=order("e2", Side.BUY, 50, limit="90.00"),
        take_profit=order("tp2", qty=50, limit="95.00", parent="e2", oca="g2"),
        stop_loss=order("sl2", qty=50, stop="85.00", limit="84.50", parent="e2", oca="g2"),
    )
    place(first, second)
    first.on_trade("TQQQ", D("99.90"), 40, at("10:01"))
    first.on_trade("TQQQ", D("103.00"), 10, at("10:02"))
    first.cancel("e")  # partly filled: the exits stay, for 40 less the 10 sold
    first.modify("sl", quantity=90, limit=None, stop=D("98.50"))
    first.on_trade("TQQQ", D("98.40"), 5, at("10:03"))
    assert first.orders["sl"].triggered
    assert first.orders["sl"].filled == 5
    assert first.orders["tp2"].held
    assert isinstance(first.recorder, Journal)
    first.recorder.close()

    reopened = open_engine(path)
    assert isinstance(reopened.recorder, Journal)
    reopened.recorder.close()
    assert state(reopened) == state(first)
    assert reopened.positions == first.positions
    rest = [("99.00", 100), ("89.00", 50), ("84.00", 20), ("84.60", 100), ("97.00", 500)]
    heard: list[list[BrokerEvent]] = []
    for engine in (first, reopened):
        engine.recorder = None
        events: list[BrokerEvent] = []
        engine.listeners.append(events.append)
        for index, (price, size) in enumerate(rest):
            engine.on_trade("TQQQ", D(price), size, at("10:10") + timedelta(minutes=index))
        heard.append(events)
    assert heard[0] == heard[1]
    assert fills(heard[0])  # the rest did trade
    assert state(reopened) == state(first)


def test_every_bracket_input_is_a_journal_record(tmp_path: Path) -> None:
    """Places carry stop, parent and oca; the modify its stop."""
    path = tmp_path / "venue.jsonl"
    engine = open_engine(path)
    place(engine, bracket())
    engine.modify("sl", quantity=100, limit=None, stop=D("97.00"))
    assert isinstance(engine.recorder, Journal)
    engine.recorder.close()
    decoded = [_decoder.decode(line) for line in path.read_bytes().splitlines()[1:]]
    assert [x.order for x in decoded if isinstance(x, Place)] == list(bracket().legs)
    assert decoded[-1] == Modify(ref="sl", quantity=100, limit=None, stop=D("97.00"))


# -- the property ---------------------------------------------------------------------------------

_prices = st.integers(9_500, 10_500).map(lambda cents: Decimal(cents).scaleb(-2))
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("trade"), _prices, st.integers(1, 150)),
        st.tuples(st.just("cancel"), st.sampled_from(["e", "tp", "sl", "e2", "x", "y"])),
        st.tuples(st.just("stop"), st.sampled_from(["sl", "sl2"]), _prices),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(
    qty=st.integers(1, 200),
    prices=st.tuples(_prices, _prices, _prices),
    stop_limit=st.one_of(st.none(), _prices),
    steps=_steps,
)
def test_no_oca_group_fills_more_than_one_order_and_no_child_more_than_its_parent(
    qty: int,
    prices: tuple[Decimal, Decimal, Decimal],
    stop_limit: Decimal | None,
    steps: list[tuple[Any, ...]],
) -> None:
    """Random trade paths, cancels and stop moves over two brackets (a buy and a sell entry)
    and a plain OCA pair: per group the filled total stays within its largest order, every
    child within what its parent filled, and the long bracket's exits never sell short; the
    recorded inputs replayed rebuild the same books."""
    entry, take, stop = prices
    inputs: list[Input] = []
    engine = Engine(recorder=inputs.append)
    legs = [
        order("e", Side.BUY, qty, limit=str(entry)),
        PlaceOrder(
            ref="tp", symbol="TQQQ", side=Side.SELL, quantity=qty, limit=take,
            tif=TimeInForce.GTC, parent="e", oca="g",
        ),
        PlaceOrder(
            ref="sl", symbol="TQQQ", side=Side.SELL, quantity=qty, limit=stop_limit, stop=stop,
            tif=TimeInForce.GTC, parent="e", oca="g",
        ),
        order("e2", Side.SELL, qty, limit=str(take)),
        order("tp2", Side.BUY, qty, limit=str(entry), parent="e2", oca="g2"),
        PlaceOrder(
            ref="sl2", symbol="TQQQ", side=Side.BUY, quantity=qty, limit=None, stop=stop,
            tif=TimeInForce.GTC, parent="e2", oca="g2",
        ),
        order("x", Side.BUY, qty, limit=str(entry), oca="pair"),
        order("y", Side.BUY, max(1, qty // 2), limit=str(take), oca="pair"),
    ]  # fmt: skip
    largest = {"g": qty, "g2": qty, "pair": qty}
    for leg in legs:
        engine.place(leg, at("10:00"))
    clock = at("10:00")
    for step in steps:
        match step:
            case ("trade", price, size):
                clock += timedelta(seconds=30)
                engine.on_trade("TQQQ", price, size, clock)
            case ("cancel", ref):
                engine.cancel(ref)
            case ("stop", ref, price):
                sim = engine.orders[ref]
                engine.modify(ref, quantity=sim.quantity, limit=sim.limit, stop=price)
        orders = engine.orders
        for group, most in largest.items():
            total = sum(o.filled for o in orders.values() if o.oca == group)
            assert total <= most, f"group {group} filled {total} > {most}"
        for child in orders.values():
            if child.parent is not None:
                assert child.filled <= orders[child.parent].filled
        sold = orders["tp"].filled + orders["sl"].filled
        assert sold <= orders["e"].filled
        bought = orders["tp2"].filled + orders["sl2"].filled
        assert bought <= orders["e2"].filled
    replayed = Engine()
    for recorded in inputs:
        replayed.apply(recorded)
    assert state(replayed) == state(engine)
    assert replayed.executions == engine.executions
