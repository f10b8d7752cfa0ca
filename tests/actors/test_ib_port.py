"""The IB broker port (actors/brokers/ib.py) driving the real ib_insync against our TWS API
server over loopback: our orders out, IB's events back as ours, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from actors.brokers.ib import IBPort
from actors.domain import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceCondition,
    Side,
    TimeInForce,
)
from sim.engine import Engine
from sim.tws.server import TwsServer
from tests.tws_venue import client_protocol_errors, trade, until, venue

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync is asyncio-native; real clocks (real sockets)."""
    return "asyncio"


@pytest.fixture
def client_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    return client_protocol_errors(caplog)


def port_for(server: TwsServer, client_id: int = 3) -> IBPort:
    assert server.port is not None
    return IBPort(host="127.0.0.1", port=server.port, client_id=client_id, timeout=5)


def buy(
    ref: str, limit: str | None, *, quantity: int = 94, trigger: str | None = None
) -> PlaceOrder:
    return PlaceOrder(
        ref=ref,
        symbol="TQQQ",
        side=Side.BUY,
        quantity=quantity,
        limit=Decimal(limit) if limit is not None else None,
        tif=TimeInForce.GTC,
        condition=PriceCondition(trigger=Decimal(trigger)) if trigger else None,
    )


async def test_orders_fills_and_cancels_come_back_as_our_events_exactly_once(
    client_errors: Callable[[], list[str]],
) -> None:
    """A conditional buy is accepted, fills when its trigger trades (reported once, even after
    a reconnect replays the executions), and a resting order is cancelled."""
    engine = Engine()
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        events = await port.place(buy("grid:TQQQ:L1:BUY:2:1", "49.50", trigger="49.50"))
        await until(lambda: port._events)
        events += await port.poll()
        assert [(type(e), e.ref) for e in events] == [(OrderAccepted, "grid:TQQQ:L1:BUY:2:1")]
        trade(engine, "49.50", 500, 1)
        await port.wait()
        fills = await port.poll()
        assert [(f.ref, f.quantity, f.price) for f in fills if isinstance(f, OrderFilled)] == [
            ("grid:TQQQ:L1:BUY:2:1", 94, Decimal("49.5"))
        ]
        await port.place(buy("grid:TQQQ:L2:BUY:3:1", "40.00"))
        await port.cancel("grid:TQQQ:L2:BUY:3:1")
        await until(lambda: any(isinstance(e, OrderCancelled) for e in port._events))
        cancelled = [e for e in await port.poll() if isinstance(e, OrderCancelled)]
        assert [e.ref for e in cancelled] == ["grid:TQQQ:L2:BUY:3:1"]
        await port.close()
        await until(lambda: 3 not in server.sessions)  # the server has seen the close
        await port.connect()
        assert [e for e in await port.poll() if isinstance(e, OrderFilled)] == []
        snapshot = await port.snapshot()
        await port.close()
    assert [(e.exec_id, e.quantity, e.commission) for e in snapshot.executions] == [
        (engine.executions[0].exec_id, 94, Decimal("1.0"))
    ]
    by_ref = {o.order.ref: o for o in snapshot.orders}
    assert by_ref["grid:TQQQ:L1:BUY:2:1"].filled == 94
    assert not by_ref["grid:TQQQ:L1:BUY:2:1"].working
    assert by_ref["grid:TQQQ:L1:BUY:2:1"].order.condition == PriceCondition(trigger=Decimal("49.5"))
    assert not by_ref["grid:TQQQ:L2:BUY:3:1"].working
    assert [(p.symbol, p.quantity) for p in snapshot.positions] == [("TQQQ", 94)]
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_rejections_become_order_rejected_once_including_error_110(
    client_errors: Callable[[], list[str]],
) -> None:
    """A venue reject (201) and a price off the tick (110, which ib_insync would leave in
    PendingSubmit forever) are each one OrderRejected, and the 110 order is not working."""
    engine = Engine()
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        engine.reject_next("no margin")
        await port.place(buy("grid:TQQQ:L0:BUY:1:1", "50.10"))
        await port.place(buy("grid:TQQQ:L0:BUY:2:1", "50.105"))
        await until(lambda: len([e for e in port._events if isinstance(e, OrderRejected)]) == 2)
        events = await port.poll()
        snapshot = await port.snapshot()
        await port.close()
    rejected = [(e.ref, e.code) for e in events if isinstance(e, OrderRejected)]
    assert rejected == [("grid:TQQQ:L0:BUY:1:1", 201), ("grid:TQQQ:L0:BUY:2:1", 110)]
    assert not any(isinstance(e, OrderCancelled) for e in events)
    by_ref = {o.order.ref: o for o in snapshot.orders}
    assert not by_ref["grid:TQQQ:L0:BUY:2:1"].working
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_dropped_connection_raises_connection_error_and_connect_recovers(
    client_errors: Callable[[], list[str]],
) -> None:
    """The server drops the client: ``wait`` and the next call raise ConnectionError (the
    broker actor crashes and is restarted); ``connect`` opens a new connection."""
    engine = Engine()
    async with venue(engine) as server:
        port = port_for(server)
        await port.connect()
        server.kick(3)
        with pytest.raises(ConnectionError):
            await port.wait()
        with pytest.raises(ConnectionError):
            await port.place(buy("grid:TQQQ:L0:BUY:1:1", "50.10"))
        await until(lambda: 3 not in server.sessions)
        await port.connect()
        await port.place(buy("grid:TQQQ:L0:BUY:1:1", "50.10"))
        await until(lambda: port._events)
        assert isinstance((await port.poll())[0], OrderAccepted)
        assert port.disconnects == 1
        await port.close()
    assert server.protocol_errors == []
    assert client_errors() == []


ALL_OPEN_ORDERS, OPEN_ORDERS, COMPLETED_ORDERS, EXECUTIONS, CANCEL_ORDER = 16, 5, 99, 7, 4
"""Request ids (ref/ib-wire.md 1.3)."""


def sell(ref: str, limit: str, *, quantity: int = 94) -> PlaceOrder:
    return PlaceOrder(
        ref=ref,
        symbol="TQQQ",
        side=Side.SELL,
        quantity=quantity,
        limit=Decimal(limit),
        tif=TimeInForce.GTC,
    )


def reads(server: TwsServer) -> tuple[int, int, int, int]:
    counts = server.requests
    return (
        counts[ALL_OPEN_ORDERS],
        counts[OPEN_ORDERS],
        counts[COMPLETED_ORDERS],
        counts[EXECUTIONS],
    )


async def test_connect_reads_the_books_once_binds_our_orders_and_answers_the_next_snapshots(
    client_errors: Callable[[], list[str]],
) -> None:
    """A restart's connect makes one reading of the books (every client's working orders, the
    completed ones, the executions) instead of ib_insync's start-up download and then the
    reconciliation's own: the snapshots right after it are that reading, until something
    happens (a cancel here, a fill below), then they read again. The reading binds our
    working orders from the last session, so one can be cancelled before any snapshot."""
    engine = Engine()
    async with venue(engine) as server:
        first = port_for(server)
        await first.connect()
        await first.place(buy("grid:TQQQ:L1:BUY:2:1", "49.50"))
        await until(lambda: "grid:TQQQ:L1:BUY:2:1" in engine.orders)
        trade(engine, "49.50", 500, 1)
        await until(lambda: any(isinstance(e, OrderFilled) for e in first._events))
        await first.place(sell("grid:TQQQ:L1:SELL:2:1", "50.00"))
        await first.place(sell("grid:TQQQ:L1:SELL:9:1", "60.00", quantity=1))
        await until(lambda: len(engine.open_orders()) == 2)
        await first.close()
        await until(lambda: 3 not in server.sessions)

        port = port_for(server)
        before = reads(server)
        await port.connect()
        # ib_insync's start-up executions request, then ours: no open-orders download.
        assert reads(server) == (before[0] + 1, before[1], before[2] + 1, before[3] + 2)
        read_on_connect = reads(server)
        snapshot = await port.snapshot()
        assert await port.snapshot() is snapshot  # the symbols reconciling at start: one reading
        assert reads(server) == read_on_connect
        by_ref = {o.order.ref: o for o in snapshot.orders}
        assert by_ref["grid:TQQQ:L1:BUY:2:1"].filled == 94
        assert not by_ref["grid:TQQQ:L1:BUY:2:1"].working
        assert by_ref["grid:TQQQ:L1:SELL:2:1"].working
        assert [(e.ref, e.quantity) for e in snapshot.executions] == [("grid:TQQQ:L1:BUY:2:1", 94)]

        await port.cancel("grid:TQQQ:L1:SELL:9:1")
        await until(lambda: any(isinstance(e, OrderCancelled) for e in port._events))
        assert [e.ref for e in await port.poll() if isinstance(e, OrderCancelled)] == [
            "grid:TQQQ:L1:SELL:9:1"
        ]
        again = await port.snapshot()
        assert reads(server)[0] == read_on_connect[0] + 1
        working = {o.order.ref for o in again.orders if o.working}
        assert working == {"grid:TQQQ:L1:SELL:2:1"}
        await port.close()
        await until(lambda: 3 not in server.sessions)

        # Something happens between connect and the first snapshot: it reads again.
        late = port_for(server)
        await late.connect()
        trade(engine, "50.00", 500, 2)
        await until(lambda: any(isinstance(e, OrderFilled) for e in late._events))
        on_connect = reads(server)
        fresh = await late.snapshot()
        await late.close()
    assert reads(server)[0] == on_connect[0] + 1
    assert not {o.order.ref: o for o in fresh.orders}["grid:TQQQ:L1:SELL:2:1"].working
    assert not any(p.quantity for p in fresh.positions)  # ib_insync drops a flat position
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_another_clients_working_order_is_read_but_never_bound_as_ours(
    client_errors: Callable[[], list[str]],
) -> None:
    """Another client's sell is in every reading (working while it works, then filled with
    its execution) but is not ours to cancel: its status is known only through a reading."""
    engine = Engine()
    async with venue(engine) as server:
        other = port_for(server, client_id=7)
        await other.connect()
        await other.place(buy("manual-buy", "49.50", quantity=10))
        await until(lambda: "manual-buy" in engine.orders)
        trade(engine, "49.50", 500, 1)
        await other.place(sell("manual-sell", "50.00", quantity=10))
        await until(lambda: len(engine.open_orders()) == 1)

        # Another client's fill is no event to us: only a new reading shows it, so every
        # snapshot reads here (by default a reading answers again for a second).
        assert server.port is not None
        port = IBPort(host="127.0.0.1", port=server.port, client_id=3, timeout=5, reuse_within=0)
        await port.connect()
        snapshot = await port.snapshot()
        assert {o.order.ref for o in snapshot.orders if o.working} == {"manual-sell"}
        cancels = server.requests[CANCEL_ORDER]
        await port.cancel("manual-sell")
        await port.poll()
        assert server.requests[CANCEL_ORDER] == cancels  # nothing sent
        assert not engine.orders["manual-sell"].done

        trade(engine, "50.00", 500, 2)
        await until(lambda: engine.orders["manual-sell"].done)
        after = await port.snapshot()
        await port.close()
        await other.close()
    by_ref = {o.order.ref: o for o in after.orders}
    assert not by_ref["manual-sell"].working
    assert by_ref["manual-sell"].filled == 10
    assert {e.ref for e in after.executions} == {"manual-buy", "manual-sell"}
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_reading_answers_again_only_within_reuse_within(
    client_errors: Callable[[], list[str]],
) -> None:
    """With ``reuse_within=0`` every snapshot reads the books but the first after connect,
    which connect's reading answers however long the tree took to start: the reuse is bounded
    in time, not only by the events seen."""
    engine = Engine()
    async with venue(engine) as server:
        assert server.port is not None
        port = IBPort(host="127.0.0.1", port=server.port, client_id=3, timeout=5, reuse_within=0)
        await port.connect()
        first = reads(server)
        await port.snapshot()  # connect's reading: it answers the first one, whatever its age
        assert reads(server) == first
        await port.snapshot()
        await port.snapshot()
        await port.close()
    assert reads(server)[0] == first[0] + 2
    assert server.protocol_errors == []
    assert client_errors() == []
