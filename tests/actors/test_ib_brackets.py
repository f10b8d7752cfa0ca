"""The IB broker port's stops, brackets, OCA groups and options (actors/brokers/ib.py), with the
real ib_insync over loopback against our TWS API server: a bracket goes as IB's (the first two
legs untransmitted, the stop-loss transmitting), its events come back as any order's, the
snapshot reads stops, parents and OCA groups back, and an option is named by its OCC symbol
everywhere, its average cost per share. Zero protocol errors on either side in each test."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import anyio
import pytest
from ib_insync import Contract

from actors.brokers.ib import IBPort, average_cost, ib_contract, symbol_of
from actors.domain import (
    BrokerEvent,
    BrokerSnapshot,
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    Side,
    TimeInForce,
)
from sim.engine import Engine
from sim.options import OptionContract
from sim.tws.server import TwsServer
from tests.tws_venue import MONDAY, client_protocol_errors, trade, until, venue

pytestmark = pytest.mark.anyio
D = Decimal
CALL = "TQQQ  261127C00050000"
"""This week's at-the-money call on MONDAY (TQQQ at 50.02): Friday the 27th's 50 call."""
Errors = Callable[[], list[str]]


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync is asyncio-native; real clocks (real sockets)."""
    return "asyncio"


@pytest.fixture
def client_errors(caplog: pytest.LogCaptureFixture) -> Errors:
    return client_protocol_errors(caplog)


def port_for(server: TwsServer, client_id: int = 3) -> IBPort:
    assert server.port is not None
    return IBPort(host="127.0.0.1", port=server.port, client_id=client_id, timeout=5)


def opened() -> Engine:
    """A venue after TQQQ's first print of Monday (10:00): its options are listed and quote."""
    engine = Engine()
    trade(engine, "50.02", 1000, 0)
    return engine


def quote(engine: Engine, symbol: str = CALL) -> tuple[Decimal, Decimal]:
    """The option's bid and ask now (at the underlying's last print)."""
    at = engine.last_trade_at or MONDAY
    quoted = engine.option_quote(OptionContract.from_local_symbol(symbol), at)
    assert quoted is not None
    return quoted.bid, quoted.ask


def cents(price: Decimal) -> Decimal:
    return price.quantize(D("0.01"))


def order(
    ref: str,
    side: Side,
    quantity: int,
    *,
    limit: Decimal | str | None = None,
    stop: Decimal | str | None = None,
    symbol: str = "TQQQ",
    parent: str | None = None,
    oca: str | None = None,
) -> PlaceOrder:
    return PlaceOrder(
        ref=ref,
        symbol=symbol,
        side=side,
        quantity=quantity,
        limit=D(limit) if limit is not None else None,
        stop=D(stop) if stop is not None else None,
        tif=TimeInForce.DAY,
        parent=parent,
        oca=oca,
    )


def bracket(
    tag: str,
    quantity: int,
    entry: Decimal | str,
    take: Decimal | str,
    stop: Decimal | str,
    *,
    symbol: str = "TQQQ",
) -> PlaceBracket:
    """A long bracket: buy at ``entry``; sell at ``take``, or on a stop at ``stop``."""
    return PlaceBracket(
        entry=order(f"{tag}.entry", Side.BUY, quantity, limit=entry, symbol=symbol),
        take_profit=order(
            f"{tag}.tp",
            Side.SELL,
            quantity,
            limit=take,
            symbol=symbol,
            parent=f"{tag}.entry",
            oca=f"oca.{tag}",
        ),
        stop_loss=order(
            f"{tag}.sl",
            Side.SELL,
            quantity,
            stop=stop,
            symbol=symbol,
            parent=f"{tag}.entry",
            oca=f"oca.{tag}",
        ),
    )


async def hear(
    port: IBPort, events: list[BrokerEvent], done: Callable[[list[BrokerEvent]], bool]
) -> None:
    """Add what the port reports to ``events`` until ``done`` holds."""
    with anyio.fail_after(5):
        while not done(events):
            await port.wait()
            events += await port.poll()


def story(events: list[BrokerEvent], ref: str) -> list[str]:
    return [type(e).__name__ for e in events if e.ref == ref]


def ended(*refs: str) -> Callable[[list[BrokerEvent]], bool]:
    def done(events: list[BrokerEvent]) -> bool:
        over = {
            e.ref for e in events if isinstance(e, OrderFilled | OrderCancelled | OrderRejected)
        }
        return over >= set(refs)

    return done


def filled(ref: str) -> Callable[[list[BrokerEvent]], bool]:
    return lambda events: any(isinstance(e, OrderFilled) and e.ref == ref for e in events)


def accepted(*refs: str) -> Callable[[list[BrokerEvent]], bool]:
    return lambda events: {e.ref for e in events if isinstance(e, OrderAccepted)} >= set(refs)


def where(events: list[BrokerEvent], kind: type, ref: str) -> int:
    return next(i for i, e in enumerate(events) if isinstance(e, kind) and e.ref == ref)


def fills_of(events: list[BrokerEvent]) -> list[tuple[str, int, Decimal]]:
    return [(e.ref, e.quantity, e.price) for e in events if isinstance(e, OrderFilled)]


def venue_fills(engine: Engine) -> list[tuple[str, int, Decimal]]:
    return [(e.ref, e.quantity, e.price) for e in engine.executions]


def by_ref(snapshot: BrokerSnapshot) -> dict[str, PlaceOrder]:
    return {o.order.ref: o.order for o in snapshot.orders}


async def test_an_option_bracket_fills_its_entry_then_its_take_profit_and_oca_cancels_the_stop(
    client_errors: Errors,
) -> None:
    """A bracket on an OCC symbol: the entry fills at the next quote's ask, the take-profit
    works and fills once the call is up, and its OCA group cancels the stop-loss; each leg's
    events in order, zero protocol errors."""
    engine = opened()
    bid, ask = quote(engine)
    legs = bracket("c1", 2, ask, cents(ask * D("1.2")), cents(bid * D("0.8")), symbol=CALL)
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        events = await port.place_bracket(legs)
        await hear(port, events, accepted("c1.entry", "c1.tp", "c1.sl"))
        trade(engine, "50.02", 1000, 1)
        await hear(port, events, filled("c1.entry"))
        trade(engine, "51.20", 1000, 2)
        await hear(port, events, ended("c1.tp", "c1.sl"))
        await port.close()
    assert story(events, "c1.entry") == ["OrderAccepted", "OrderFilled"]
    # Accepted when it arrives (PreSubmitted), again when it works (its parent filled).
    assert story(events, "c1.tp") == ["OrderAccepted", "OrderAccepted", "OrderFilled"]
    assert story(events, "c1.sl") == ["OrderAccepted", "OrderCancelled"]
    assert (
        where(events, OrderFilled, "c1.entry")
        < where(events, OrderFilled, "c1.tp")
        < where(events, OrderCancelled, "c1.sl")
    )
    assert fills_of(events) == venue_fills(engine)
    assert [(e.ref, e.symbol, e.quantity) for e in engine.executions] == [
        ("c1.entry", CALL, 2),
        ("c1.tp", CALL, 2),
    ]
    assert engine.executions[0].price == ask
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_an_option_bracket_whose_stop_triggers_sells_on_the_stop_and_cancels_the_take_profit(
    client_errors: Errors,
) -> None:
    """After the entry's fill the call falls: two bids at or under the stop (IB's default
    trigger for options, double bid/ask) trigger the stop-loss, which fills; the take-profit
    is cancelled by the OCA group."""
    engine = opened()
    bid, ask = quote(engine)
    legs = bracket("c2", 2, ask, cents(ask * D("1.2")), cents(bid * D("0.8")), symbol=CALL)
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        events = await port.place_bracket(legs)
        await hear(port, events, accepted("c2.entry", "c2.tp", "c2.sl"))
        trade(engine, "50.02", 1000, 1)
        await hear(port, events, filled("c2.entry"))
        trade(engine, "48.90", 1000, 2)
        trade(engine, "48.85", 1000, 3)
        await hear(port, events, ended("c2.tp", "c2.sl"))
        await port.close()
    assert story(events, "c2.entry") == ["OrderAccepted", "OrderFilled"]
    # PreSubmitted until its trigger, then filled by the quote that triggered it.
    assert story(events, "c2.sl") == ["OrderAccepted", "OrderFilled"]
    assert story(events, "c2.tp") == ["OrderAccepted", "OrderAccepted", "OrderCancelled"]
    assert where(events, OrderFilled, "c2.sl") < where(events, OrderCancelled, "c2.tp")
    assert fills_of(events) == venue_fills(engine)
    assert [e.ref for e in engine.executions] == ["c2.entry", "c2.sl"]
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize("heard", [True, False], ids=["once-working", "at-once"])
async def test_an_entry_cancelled_before_it_fills_takes_its_exits_along(
    heard: bool, client_errors: Errors
) -> None:
    """The option bracket's entry rests under the market; cancelling it, once the legs work
    or as soon as they are sent, cancels the two exits with it (at the venue), each leg
    accepted then cancelled, once; nothing fills."""
    engine = opened()
    bid, _ = quote(engine)
    low = bid - D("0.50")
    legs = bracket("c3", 1, low, low + 1, low - D("0.30"), symbol=CALL)
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        events = await port.place_bracket(legs)
        if heard:
            await hear(port, events, accepted("c3.entry", "c3.tp", "c3.sl"))
        events += await port.cancel("c3.entry")
        await hear(port, events, ended("c3.entry", "c3.tp", "c3.sl"))
        trade(engine, "50.02", 1000, 1)
        events += await port.poll()
        await port.close()
    for leg in ("c3.entry", "c3.tp", "c3.sl"):
        assert story(events, leg) == ["OrderAccepted", "OrderCancelled"]
    assert engine.executions == []
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_stock_bracket_with_its_entry_modified_fills_then_stops_out(
    client_errors: Errors,
) -> None:
    """A TQQQ bracket resting under the market: its entry's limit is raised (the modify is
    transmitted, though the entry was sent untransmitted), a print fills it, a print at the
    stop fills the stop-loss at that print and the take-profit is cancelled."""
    engine = Engine()
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        events = await port.place_bracket(bracket("s1", 10, "40.00", "55.00", "35.00"))
        await hear(port, events, accepted("s1.entry", "s1.tp", "s1.sl"))
        events += await port.modify(ModifyOrder(ref="s1.entry", quantity=10, limit=D("50.00")))
        events += await port.modify(ModifyOrder(ref="s1.sl", quantity=10, limit=None, stop=D("45")))
        events += await port.poll()
        assert (engine.orders["s1.entry"].limit, engine.orders["s1.sl"].stop) == (D(50), D(45))
        trade(engine, "49.90", 100, 1)
        await hear(port, events, filled("s1.entry"))
        trade(engine, "45.01", 100, 2)
        trade(engine, "44.95", 100, 3)
        await hear(port, events, ended("s1.tp", "s1.sl"))
        await port.close()
    assert fills_of(events) == [("s1.entry", 10, D("49.9")), ("s1.sl", 10, D("44.95"))]
    # The entry's modify is acknowledged; the stop's is not (it is still PreSubmitted, and
    # ib_insync reports a modify only of a Submitted order).
    assert story(events, "s1.entry") == ["OrderAccepted", "OrderAccepted", "OrderFilled"]
    assert story(events, "s1.tp") == ["OrderAccepted", "OrderAccepted", "OrderCancelled"]
    assert story(events, "s1.sl") == ["OrderAccepted", "OrderFilled"]
    assert where(events, OrderFilled, "s1.sl") < where(events, OrderCancelled, "s1.tp")
    assert not any(isinstance(e, OrderRejected) for e in events)
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_stop_and_stop_limit_orders_are_read_back_by_the_snapshot_and_trigger(
    client_errors: Errors,
) -> None:
    """A buy STP and a buy STP LMT over the market: the snapshot reads their stops (and the
    STP LMT's limit) back, also from the wire after a restart; the STP's stop moved by a
    modify; a print at the stop fills it."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        await port.place(order("stp", Side.BUY, 5, stop="52.00"))
        await port.place(order("stp-lmt", Side.BUY, 5, stop="53.00", limit="53.10"))
        await until(lambda: {"stp", "stp-lmt"} <= engine.orders.keys())
        ours = by_ref(await port.snapshot())
        await port.modify(ModifyOrder(ref="stp", quantity=5, limit=None, stop=D("51.50")))
        await until(lambda: engine.orders["stp"].stop == D("51.50"))
        await port.close()
        await until(lambda: 3 not in server.sessions)
        restarted = port_for(server)
        await restarted.connect()
        read = by_ref(await restarted.snapshot())
        trade(engine, "51.50", 100, 1)
        events: list[BrokerEvent] = []
        await hear(restarted, events, filled("stp"))
        await restarted.close()
    assert [(o.order_type, o.stop, o.limit) for o in (ours["stp"], ours["stp-lmt"])] == [
        ("STP", D("52.0"), None),
        ("STP LMT", D("53.0"), D("53.1")),
    ]
    assert [(o.order_type, o.stop, o.limit) for o in (read["stp"], read["stp-lmt"])] == [
        ("STP", D("51.5"), None),
        ("STP LMT", D("53.0"), D("53.1")),
    ]
    assert fills_of(events) == [("stp", 5, D("51.5"))]
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_snapshot_of_a_working_bracket_names_the_exits_parent_and_oca_group(
    client_errors: Errors,
) -> None:
    """Another client's reading of a resting bracket, then a restart's once the entry has
    filled (its order completed, known by its executions): both give the exits their entry's
    ref as parent and their OCA group; the entry and a plain order have neither."""
    engine = Engine()
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        events = await port.place_bracket(bracket("s2", 10, "50.00", "55.00", "45.00"))
        events += await port.place(order("plain", Side.BUY, 1, limit="40.00"))
        await hear(port, events, accepted("s2.entry", "s2.tp", "s2.sl", "plain"))
        other = port_for(server, client_id=7)
        await other.connect()
        resting = by_ref(await other.snapshot())
        await other.close()
        trade(engine, "49.90", 100, 1)
        await hear(port, events, filled("s2.entry"))
        await port.close()
        await until(lambda: 3 not in server.sessions)
        restarted = port_for(server)
        await restarted.connect()
        snapshot = await restarted.snapshot()
        await restarted.close()
    after = by_ref(snapshot)
    for orders in (resting, after):
        assert (orders["s2.tp"].parent, orders["s2.tp"].oca) == ("s2.entry", "oca.s2")
        assert (orders["s2.sl"].parent, orders["s2.sl"].oca) == ("s2.entry", "oca.s2")
        assert (orders["s2.entry"].parent, orders["s2.entry"].oca) == (None, None)
        assert (orders["plain"].parent, orders["plain"].oca) == (None, None)
    assert after["s2.sl"].stop == D("45.0")
    working = {o.order.ref for o in snapshot.orders if o.working}
    assert working == {"s2.tp", "s2.sl", "plain"}
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_option_positions_and_executions_are_named_by_occ_symbol_at_a_cost_per_share(
    client_errors: Errors,
) -> None:
    """Three calls bought: the snapshot's order, execution and position name the call by
    its OCC symbol (never as TQQQ shares), and the position's average cost is per share, the
    fill's price (IB's avgCost is per contract), also from the wire after a restart."""
    engine = opened()
    _, ask = quote(engine)
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        events = await port.place(order("call", Side.BUY, 3, limit=ask, symbol=CALL))
        await hear(port, events, accepted("call"))
        trade(engine, "50.02", 1000, 1)
        await hear(port, events, filled("call"))
        ib = port.ib
        assert ib is not None
        await until(lambda: [p.position for p in ib.positions()] == [3])
        [ib_position] = ib.positions()
        snapshot = await port.snapshot()
        await port.close()
        await until(lambda: 3 not in server.sessions)
        restarted = port_for(server)
        await restarted.connect()
        again = await restarted.snapshot()
        await restarted.close()
    [price] = [e.price for e in engine.executions]
    assert ib_position.avgCost == pytest.approx(float(price) * 100)
    for read in (snapshot, again):
        assert [(o.order.symbol, o.filled) for o in read.orders] == [(CALL, 3)]
        assert [(e.symbol, e.quantity, e.price) for e in read.executions] == [(CALL, 3, price)]
        assert [(p.symbol, p.quantity, p.average_cost) for p in read.positions] == [
            (CALL, 3, price)
        ]
        assert read.position("TQQQ").quantity == 0
    assert fills_of(events) == [("call", 3, price)]
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_child_placed_alone_is_sent_only_under_a_parent_working_on_this_connection(
    client_errors: Errors,
) -> None:
    """A sell naming a parent the port does not know is refused, nothing sent; under a
    parent it placed and that works, the child goes with IB's parentId and waits for it."""
    engine = Engine()
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        orphan = order("orphan", Side.SELL, 5, limit="55.00", parent="nobody")
        events = await port.place(orphan)
        await port.place(order("mother", Side.BUY, 5, limit="50.00"))
        events += await port.place(order("child", Side.SELL, 5, limit="55.00", parent="mother"))
        await hear(port, events, accepted("mother", "child"))
        trade(engine, "49.90", 100, 1)
        trade(engine, "55.00", 100, 2)
        await hear(port, events, filled("child"))
        await port.close()
    [refused] = [e for e in events if isinstance(e, OrderRejected)]
    assert refused.ref == "orphan"
    assert "nobody" in refused.reason
    assert "orphan" not in engine.orders
    assert engine.orders["child"].parent == "mother"
    assert [e.ref for e in engine.executions] == ["mother", "child"]
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize(
    ("off_tick", "rejected", "cancelled"),
    [
        ("entry", [("s3.entry", 110), ("s3.tp", 201), ("s3.sl", 201)], set()),
        ("tp", [("s3.tp", 110)], {"s3.entry", "s3.sl"}),
        ("sl", [("s3.sl", 110)], {"s3.entry", "s3.tp"}),
    ],
)
async def test_a_bracket_leg_rejected_cancels_the_unfilled_entry_and_nothing_works(
    off_tick: str,
    rejected: list[tuple[str, int]],
    cancelled: set[str],
    client_errors: Errors,
) -> None:
    """A leg's price off the tick (110): that leg is rejected; an entry rejected takes its
    exits (TWS refuses children of no order, 201), an exit rejected has its entry cancelled
    with the other exit; no print fills anything."""
    prices = {"entry": "50.00", "tp": "55.00", "sl": "45.00"}
    prices[off_tick] = prices[off_tick][:-1] + "05"
    engine = Engine()
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        legs = bracket("s3", 10, prices["entry"], prices["tp"], prices["sl"])
        events = await port.place_bracket(legs)
        await hear(port, events, ended("s3.entry", "s3.tp", "s3.sl"))
        trade(engine, "49.90", 100, 1)
        trade(engine, "44.90", 100, 2)
        events += await port.poll()
        await port.close()
    assert [(e.ref, e.code) for e in events if isinstance(e, OrderRejected)] == rejected
    assert {e.ref for e in events if isinstance(e, OrderCancelled)} == cancelled
    assert engine.executions == []
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_an_option_the_venue_does_not_list_is_refused_with_200_and_nothing_is_sent(
    client_errors: Errors,
) -> None:
    """A strike off the ladder (50.50) qualifies as nothing: the order and every leg of a
    bracket on it are rejected with IB's 200, nothing reaches the venue."""
    engine = opened()
    unlisted = "TQQQ  261127C00050500"
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        events = await port.place(order("lone", Side.BUY, 1, limit="1.00", symbol=unlisted))
        events += await port.place_bracket(bracket("u", 1, "1.00", "2.00", "0.50", symbol=unlisted))
        await port.close()
    assert [(e.ref, e.code) for e in events if isinstance(e, OrderRejected)] == [
        ("lone", 200),
        ("u.entry", 200),
        ("u.tp", 200),
        ("u.sl", 200),
    ]
    assert engine.orders == {}
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_bracket_on_a_lost_connection_raises_connection_error_and_sends_nothing(
    client_errors: Errors,
) -> None:
    """The venue drops the client: the bracket raises ConnectionError before any leg goes
    (TWS would discard untransmitted legs), nothing is held or works at the venue."""
    engine = Engine()
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        server.kick(3)
        with pytest.raises(ConnectionError):
            await port.wait()
        with pytest.raises(ConnectionError):
            await port.place_bracket(bracket("s4", 10, "50.00", "55.00", "45.00"))
        await port.close()
    assert not any(ref.startswith("s4.") for ref in engine.orders)
    assert not any(h.wire.order_ref.startswith("s4.") for h in server.held.of())
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_an_occ_symbol_is_qualified_as_an_option_of_its_underlying() -> None:
    """``ib_contract`` builds IB's Option from an OCC symbol (multiplier 100) and a Stock
    from any other symbol; ``symbol_of`` names an option by its OCC symbol, read from its
    local symbol or built from its fields."""
    option = ib_contract("SPY   261211C00600000")
    assert (option.secType, option.symbol, option.lastTradeDateOrContractMonth) == (
        "OPT",
        "SPY",
        "20261211",
    )
    assert (option.strike, option.right, option.multiplier) == (600.0, "C", "100")
    assert ib_contract("SPY").secType == "STK"
    fields = Contract(
        secType="OPT",
        symbol="SPY",
        lastTradeDateOrContractMonth="20261211",
        strike=600.0,
        right="P",
        multiplier="100",
    )
    assert symbol_of(fields) == "SPY   261211P00600000"
    assert symbol_of(
        Contract(secType="OPT", symbol="SPY", localSymbol="SPY   261211C00600000")
    ) == ("SPY   261211C00600000")
    assert symbol_of(Contract(secType="STK", symbol="SPY", localSymbol="SPY")) == "SPY"
    assert average_cost(fields, 123.0) == D("1.23")
    assert average_cost(Contract(secType="STK", symbol="SPY"), 50.25) == D("50.25")
