"""The IB broker port (actors/brokers/ib.py) driving the real ib_insync against our TWS API
server over loopback: our orders out, IB's events back as ours, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from actors.brokers.ib import IBPort
from actors.domain import Side, TimeInForce
from actors.messages import (
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceCondition,
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
