"""The link: one client's connection to the engine, and its delivery faults."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain import (
    BrokerEvent,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    Side,
    TimeInForce,
)
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.link import Link, VenueDisconnected

D = Decimal
TEN = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)


def order(ref: str, qty: int = 100, tif: TimeInForce = TimeInForce.GTC) -> PlaceOrder:
    return PlaceOrder(ref=ref, symbol="TQQQ", side=Side.BUY, quantity=qty, limit=None, tif=tif)


def accepted(events: list[BrokerEvent]) -> list[str]:
    return [e.ref for e in events if isinstance(e, OrderAccepted)]


@pytest.fixture
def engine() -> Engine:
    return Engine()


@pytest.fixture
def link(engine: Engine) -> Link:
    return Link(engine, name="sim-test")


def test_events_are_delivered_in_emission_order_and_taken_once(engine: Engine, link: Link) -> None:
    """take() hands over what the engine emitted since the last take, in order."""
    for ref in "abc":
        engine.place(order(ref), TEN)
    assert accepted(link.take()) == ["a", "b", "c"]
    assert link.take() == []
    engine.place(order("d"), TEN)
    assert accepted(link.take()) == ["d"]


def test_a_disconnected_link_refuses_calls_and_loses_what_is_emitted_meanwhile(
    engine: Engine, link: Link
) -> None:
    """require() and take() raise naming the venue; the books keep what the link lost."""
    engine.place(order("a", qty=50), TEN)
    link.take()
    link.disconnect()
    assert not link.connected
    with pytest.raises(VenueDisconnected, match="sim-test venue is disconnected") as raised:
        link.require()
    assert raised.value.venue == "sim-test"
    engine.on_trade("TQQQ", D("99.00"), 50, TEN)
    with pytest.raises(VenueDisconnected):
        link.take()
    link.connect()
    link.require()
    assert link.take() == []
    assert [x.ref for x in engine.executions] == ["a"]
    engine.place(order("b"), TEN)
    assert accepted(link.take()) == ["b"]


def test_what_was_delivered_before_a_drop_is_read_first_and_then_the_drop_is_reported(
    engine: Engine, link: Link
) -> None:
    """Like a socket's receive buffer: events delivered before the drop, then the error."""
    engine.place(order("a"), TEN)
    link.disconnect()
    assert accepted(link.take()) == ["a"]
    with pytest.raises(VenueDisconnected):
        link.take()


def test_reconnecting_discards_what_the_old_connection_delivered_but_was_never_read(
    engine: Engine, link: Link
) -> None:
    """A fresh connection starts with nothing to read."""
    engine.place(order("a"), TEN)
    link.disconnect()
    link.connect()
    assert link.take() == []


def test_a_restart_cancels_day_orders_keeps_gtc_and_disconnects_every_link(
    engine: Engine, link: Link
) -> None:
    """The nightly restart: working DAY orders cancelled; GTC orders, executions, positions kept."""
    other = Link(engine, name="other")
    engine.place(order("day-filled", tif=TimeInForce.DAY), TEN)
    engine.place(order("gtc"), TEN)
    engine.place(order("day-working", tif=TimeInForce.DAY), TEN)
    engine.on_trade("TQQQ", D("99.00"), 150, TEN)
    link.take()
    engine.restart()
    assert (link.connected, other.connected) == (False, False)
    assert [o.ref for o in engine.open_orders()] == ["gtc"]
    assert engine.orders["gtc"].filled == 50
    assert [(x.ref, x.quantity) for x in engine.executions] == [("day-filled", 100), ("gtc", 50)]
    assert engine.positions["TQQQ"].quantity == 150
    assert link.take() == [OrderCancelled(ref="day-working", reason="venue restarted")]


def test_a_restart_delivers_the_day_cancellations_only_to_links_not_holding(
    engine: Engine, link: Link
) -> None:
    """The cancels are emitted before the drop: a held link loses them with the connection."""
    held = Link(engine, name="held")
    engine.place(order("day", tif=TimeInForce.DAY), TEN)
    engine.place(order("gtc"), TEN)
    link.take()
    held.take()
    held.hold()
    engine.restart("nightly")
    assert link.take() == [OrderCancelled(ref="day", reason="nightly")]
    with pytest.raises(VenueDisconnected):
        link.take()
    held.release()
    with pytest.raises(VenueDisconnected):
        held.take()


def test_held_events_wait_until_release_and_then_come_in_order(engine: Engine, link: Link) -> None:
    """hold() delays delivery; release() lets everything through in emission order."""
    engine.place(order("before"), TEN)
    link.hold()
    engine.place(order("a"), TEN)
    engine.place(order("b"), TEN)
    assert accepted(link.take()) == ["before"]
    assert link.take() == []
    link.release()
    engine.place(order("c"), TEN)
    assert accepted(link.take()) == ["a", "b", "c"]


@given(refs=st.lists(st.text("abcdef", min_size=1, max_size=3), unique=True, max_size=30))
def test_a_held_then_released_sequence_arrives_exactly_as_emitted(refs: list[str]) -> None:
    """Whatever the engine emits while held (accepts, rejects) is delivered unchanged."""
    engine = Engine()
    emitted: list[BrokerEvent] = []
    engine.listeners.append(emitted.append)
    link = Link(engine)
    link.hold()
    for ref in refs:
        engine.place(order(ref, qty=len(ref) - 1), TEN)
    assert link.take() == []
    link.release()
    assert link.take() == emitted


def test_a_disconnect_while_held_loses_the_held_events(engine: Engine, link: Link) -> None:
    """Held events are in flight: the drop takes them; the hold lasts until release."""
    link.hold()
    engine.place(order("lost"), TEN)
    link.disconnect()
    link.connect()
    engine.place(order("kept"), TEN)
    assert link.take() == []
    link.release()
    assert accepted(link.take()) == ["kept"]


def test_reorder_next_swaps_the_next_two_events(engine: Engine, link: Link) -> None:
    """The first waits in flight for the second; then both arrive, swapped."""
    link.reorder_next()
    engine.place(order("a"), TEN)
    assert link.take() == []
    engine.place(order("b"), TEN)
    engine.place(order("c"), TEN)
    assert accepted(link.take()) == ["b", "a", "c"]


def test_a_reordered_event_is_lost_if_the_link_drops_before_its_partner(
    engine: Engine, link: Link
) -> None:
    """The waiting event is in flight; the reorder is spent on it."""
    link.reorder_next()
    engine.place(order("a"), TEN)
    link.disconnect()
    link.connect()
    engine.place(order("b"), TEN)
    engine.place(order("c"), TEN)
    assert accepted(link.take()) == ["b", "c"]


def test_duplicate_next_delivers_the_next_event_twice(engine: Engine, link: Link) -> None:
    """One emission, two deliveries; only the next one."""
    engine.place(order("a", qty=10), TEN)
    link.duplicate_next()
    engine.on_trade("TQQQ", D("99.00"), 10, TEN)
    engine.place(order("b"), TEN)
    events = link.take()
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(fills) == 2
    assert fills[0] == fills[1]
    assert accepted(events) == ["a", "b"]
    assert len(engine.executions) == 1


def test_armed_faults_survive_a_disconnect_and_apply_after_reconnecting(
    engine: Engine, link: Link
) -> None:
    """Faults count events emitted while connected, not those lost while down."""
    link.duplicate_next()
    link.disconnect()
    engine.place(order("lost"), TEN)
    link.connect()
    engine.place(order("twice"), TEN)
    assert accepted(link.take()) == ["twice", "twice"]


def test_disconnect_after_mid_partial_fill_loses_exactly_the_named_fill_and_what_follows(
    engine: Engine, link: Link
) -> None:
    """One trade fills a whole and b in part: a's fill arrives, b's is lost with the drop,
    and so is b's later fill; the engine's executions keep all three."""
    engine.place(order("a"), TEN)
    engine.place(order("b"), TEN)
    link.take()
    link.disconnect_after(2)
    engine.on_trade("TQQQ", D("99.00"), 150, TEN)
    engine.on_trade("TQQQ", D("98.00"), 50, TEN)
    delivered = link.take()
    assert [(e.ref, e.quantity) for e in delivered if isinstance(e, OrderFilled)] == [("a", 100)]
    assert len(delivered) == 1
    with pytest.raises(VenueDisconnected):
        link.take()
    assert [(x.ref, x.quantity) for x in engine.executions] == [("a", 100), ("b", 50), ("b", 50)]
    link.connect()
    assert link.take() == []
    assert engine.open_orders() == []


def test_disconnect_after_needs_a_positive_count(link: Link) -> None:
    """n counts events from the next one on: 0 would name none."""
    with pytest.raises(ValueError, match="n >= 1, got 0"):
        link.disconnect_after(0)


def test_a_closed_link_stops_listening_to_the_engine(engine: Engine, link: Link) -> None:
    """close() unsubscribes from events and restarts."""
    link.close()
    assert engine.listeners == []
    assert engine.on_restart == []
    engine.reject_next("nope")
    engine.place(order("r"), TEN)
    with pytest.raises(VenueDisconnected):
        link.take()


def test_the_engine_s_own_faults_reach_every_link(engine: Engine, link: Link) -> None:
    """reject_next is the venue's fault, not the connection's."""
    other = Link(engine)
    engine.reject_next("margin")
    engine.place(order("r"), TEN)
    assert link.take() == other.take() == [OrderRejected(ref="r", reason="margin", code=201)]
