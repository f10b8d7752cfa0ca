"""Shared by the tests that talk to our TWS API server: the venue in a task group, a clock
on the engine's time, and a polling wait with a deadline."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import anyio
import pytest
from ib_insync import IB

from actors.domain import Instrument
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.tws.orders import HIGHEST_SERVER_VERSION
from sim.tws.server import TwsServer

TQQQ = Instrument(symbol="TQQQ", con_id=900001, long_name="PROSHARES ULTRAPRO QQQ")
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)
PROTOCOL_TROUBLE = (
    "Error handling fields",
    "Error for ",
    "No order found",
    "Unknown reqId",
    "malformed value",
    "request timed out",
)
CLIENT_LIBRARIES = ("ib_insync", "ib_async")


class Clock:
    """The venue's time: its last trade's, or Monday 10:00 before any."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self) -> datetime:
        return self.engine.last_trade_at or MONDAY


@asynccontextmanager
async def venue(engine: Engine, version: int = HIGHEST_SERVER_VERSION) -> AsyncIterator[TwsServer]:
    server = TwsServer(engine, instruments=[TQQQ], clock=Clock(engine), max_version=version)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


async def until(predicate: Callable[[], Any], deadline: float = 5.0) -> None:
    """Wait for ``predicate`` to hold: the client's state changes in its own callbacks, on
    messages from another task, so there is no event to wait on but its effect."""
    with anyio.fail_after(deadline):
        while not predicate():  # noqa: ASYNC110 - see the docstring
            await anyio.sleep(0.005)


def trade(engine: Engine, price: str, size: int, minute: int) -> None:
    engine.on_trade("TQQQ", Decimal(price), size, MONDAY.replace(minute=minute))


def client_protocol_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """The client side's protocol errors: ib_insync and ib_async log (instead of raising) every
    message they cannot decode, every malformed tick value, every message they cannot match to a
    request or an order, and a startup request the server never answered. (Order errors such
    as 201 are logged at ERROR too; those are expected behaviour, not protocol errors.)"""
    for library in CLIENT_LIBRARIES:
        caplog.set_level(logging.INFO, logger=library)

    def errors() -> list[str]:
        return [
            f"{r.name}: {r.getMessage()}"
            for r in caplog.records
            if r.name.split(".")[0] in CLIENT_LIBRARIES
            and (r.name.endswith(".Decoder") or _troubled(r.getMessage()))
        ]

    return errors


def _troubled(message: str) -> bool:
    # "Unknown reqId" and "malformed value" follow the handler's name ("tickSize: ...")
    return any(trouble in message for trouble in PROTOCOL_TROUBLE)


async def connect(server: TwsServer, client_id: int = 1) -> IB:
    """ib_insync connected to ``server`` (listening) as ``client_id``."""
    ib = IB()
    assert server.port is not None
    await ib.connectAsync("127.0.0.1", server.port, clientId=client_id, timeout=5)
    return ib
