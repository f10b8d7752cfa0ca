"""The order codec against ib_async, ib_insync's fork, at server versions 176 to 178: what its
placeOrder sends parses into the order ib_insync's does at 176 (without faProfile from 177,
which ib_async no longer sends), and our openOrder, completedOrder and execDetails decode in its
decoder into what ib_insync's reads at 176, with every field we send read (the last one dropped,
the decoder fails)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
import ib_async
import ib_async.client
import ib_async.decoder
import ib_insync
import ib_insync.client
import ib_insync.decoder
import pytest

from sim.tws import messages as m
from sim.tws.orders import (
    HIGHEST_SERVER_VERSION,
    MAX_SERVER_VERSION,
    Since,
    WireOrder,
    WireOrderState,
    completed_order_fields,
    open_order_fields,
    parse_place_order,
)
from sim.tws.wire import encode_field
from tests.sim.tws.test_orders import ORDERS
from tests.tws_venue import MONDAY, TQQQ

ASYNC_VERSIONS = list(range(MAX_SERVER_VERSION, HIGHEST_SERVER_VERSION + 1))
DECODABLE = [case for case in ORDERS if case != "what_if"]
SUBMITTED = WireOrderState(status="Submitted")
FILLED = WireOrderState(
    status="Filled", completed_time="20261123 15:59:59 America/New_York", completed_status="Filled"
)
PERM_ID = 1873000001


def in_ib_async(value: Any) -> Any:
    """The same contract, order or condition built of ib_async's classes (the two libraries'
    dataclasses have the same fields; a Contract or Order subclass, whose constructor sets
    some of them, becomes the plain Contract or Order it is)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        base = {ib_insync.Contract: ib_async.Contract, ib_insync.Order: ib_async.Order}
        cls = next(
            (ours for theirs, ours in base.items() if isinstance(value, theirs)),
            getattr(ib_async, type(value).__name__),
        )
        return cls(
            **{
                f.name: in_ib_async(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.init
            }
        )
    if isinstance(value, list):
        return [in_ib_async(v) for v in value]
    return value


def sent(library: Any, version: int, request: Callable[[Any], None]) -> list[str]:
    """The fields of the one message ``library``'s client sends for ``request`` at ``version``."""
    client = library.client.Client(library.wrapper.Wrapper(None))
    client._serverVersion = version
    client.connState = client.CONNECTED
    messages: list[str] = []
    client.sendMsg = messages.append
    try:
        request(client)
    finally:
        client.connState = client.DISCONNECTED
    [message] = messages
    return message.split("\0")[:-1]


def parsed(case: str, library: Any, version: int) -> WireOrder:
    contract, order = ORDERS[case]()
    if library is ib_async:
        contract, order = in_ib_async(contract), in_ib_async(order)
    fields = sent(library, version, lambda c: c.placeOrder(21, contract, order))
    return parse_place_order(fields, version)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def logged_errors(library: Any) -> Iterator[list[logging.LogRecord]]:
    handler = Collect()
    logger = logging.getLogger(library.__name__)
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def decode(library: Any, ib: Any, version: int, fields: Sequence[object]) -> list[str]:
    """Feed one message of ours to ``library``'s decoder; what it logged at ERROR."""
    decoder = library.decoder.Decoder(ib.wrapper, version)
    with logged_errors(library) as errors:
        decoder.interpret([encode_field(field) for field in fields])
    return [r.getMessage() for r in errors]


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # the wrappers' startReq makes an asyncio.Future: give it a loop of this test's own
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def as_read(order: Any, version: int) -> dict[str, Any]:
    # nested values (conditions, tag values) as plain data: the libraries' classes differ
    fields = dataclasses.asdict(order)
    return {k: v for k, v in fields.items() if k != "faProfile" or version < Since.NO_FA_PROFILE}


@pytest.mark.parametrize("version", ASYNC_VERSIONS)
@pytest.mark.parametrize("case", list(ORDERS))
def test_ib_async_place_order_parses_into_what_ib_insync_sends(case: str, version: int) -> None:
    """ib_async's placeOrder at 176..178 is ib_insync's at 176, less faProfile from 177."""
    expected = parsed(case, ib_insync, MAX_SERVER_VERSION)
    if version >= Since.NO_FA_PROFILE:
        expected = attrs.evolve(expected, fa_profile="")
    assert parsed(case, ib_async, version) == expected


def test_the_exotic_order_carries_a_fa_profile_only_up_to_176() -> None:
    """The comparison above is not vacuous: the exotic order does set faProfile."""
    assert parsed("exotic", ib_insync, MAX_SERVER_VERSION).fa_profile == "p"
    assert parsed("exotic", ib_async, MAX_SERVER_VERSION).fa_profile == "p"
    assert parsed("exotic", ib_async, HIGHEST_SERVER_VERSION).fa_profile == ""


@pytest.mark.parametrize("version", ASYNC_VERSIONS)
@pytest.mark.parametrize("case", DECODABLE)
def test_open_order_decodes_in_ib_async_as_in_ib_insync(case: str, version: int) -> None:
    """Our openOrder at 176..178 gives ib_async the order ib_insync reads at 176."""
    wire = parsed(case, ib_insync, MAX_SERVER_VERSION)
    orders = {}
    for library, at in [(ib_insync, MAX_SERVER_VERSION), (ib_async, version)]:
        ib = library.IB()
        fields = open_order_fields(wire, SUBMITTED, client_id=3, perm_id=PERM_ID, server_version=at)
        assert decode(library, ib, at, fields) == []
        assert decode(library, library.IB(), at, fields[:-1]) != []
        trade = ib.wrapper.trades[(3, 21)]
        assert trade.orderStatus.status == "Submitted"
        orders[library.__name__] = as_read(trade.order, version)
    assert orders["ib_async"] == orders["ib_insync"]


@pytest.mark.parametrize("version", ASYNC_VERSIONS)
@pytest.mark.parametrize("case", DECODABLE)
def test_completed_order_decodes_in_ib_async_as_in_ib_insync(
    case: str, version: int, loop: asyncio.AbstractEventLoop
) -> None:
    """Our completedOrder at 176..178 gives ib_async the order ib_insync reads at 176."""
    wire = parsed(case, ib_insync, MAX_SERVER_VERSION)
    orders = {}
    for library, at in [(ib_insync, MAX_SERVER_VERSION), (ib_async, version)]:
        fields = completed_order_fields(
            wire, FILLED, perm_id=PERM_ID, filled=wire.total_quantity, server_version=at
        )
        short = library.IB()
        short.wrapper.startReq("completedOrders")
        assert decode(library, short, at, fields[:-1]) != []
        ib = library.IB()
        ib.wrapper.startReq("completedOrders")
        assert decode(library, ib, at, fields) == []
        (trade,) = ib.wrapper._results["completedOrders"]
        assert trade.orderStatus.status == "Filled"
        orders[library.__name__] = as_read(trade.order, version)
    assert orders["ib_async"] == orders["ib_insync"]


@pytest.mark.parametrize("version", ASYNC_VERSIONS)
def test_exec_details_decode_in_ib_async_with_every_field_read(
    version: int, loop: asyncio.AbstractEventLoop
) -> None:
    """execDetails at 176..178 (pendingPriceRevision from 178): ib_async reads the execution
    ib_insync reads at 176, and fails on our message less its last field."""

    def fields(at: int) -> list[object]:
        return m.exec_details(
            req_id=-1,
            order_id=21,
            instrument=TQQQ,
            exec_id="0001f4e8.6565.01.01",
            at=MONDAY,
            account="DU1234567",
            side="BUY",
            shares=Decimal(60),
            price=Decimal("50.05"),
            perm_id=PERM_ID,
            client_id=3,
            cumulative=Decimal(60),
            average_price=Decimal("50.05"),
            order_ref="grid:TQQQ:L0:BUY:1:1",
            server_version=at,
        )

    executions = {}
    for library, at in [(ib_insync, MAX_SERVER_VERSION), (ib_async, version)]:
        ib = library.IB()
        ib.wrapper.startReq(-1)
        seen: list[Any] = []
        ib.wrapper.execDetails = lambda _req, _contract, execution, seen=seen: seen.append(
            execution
        )
        assert decode(library, ib, at, fields(at)) == []
        assert decode(library, ib, at, fields(at)[:-1]) != []
        [execution] = seen
        executions[library.__name__] = {
            k: v for k, v in dataclasses.asdict(execution).items() if k != "pendingPriceRevision"
        }
        if library is ib_async:
            assert execution.pendingPriceRevision is False
    assert executions["ib_async"] == executions["ib_insync"]
    assert isinstance(executions["ib_async"]["time"], datetime)
