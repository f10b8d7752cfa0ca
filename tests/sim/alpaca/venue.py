"""Shared by the Alpaca face's tests: the server in a task group, a raw stream client that
speaks msgpack or JSON, and alpaca-py's stream run inside the test's event loop."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import anyio
import msgpack
from websockets.asyncio.client import ClientConnection, connect

from actors.domain.sessions import NEW_YORK
from sim.alpaca.server import AlpacaServer

KEY, SECRET = "AKSIMTEST", "sim-secret"
CREDENTIALS = {KEY: SECRET}
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)
"""A regular session's minute (15:00 UTC)."""


@asynccontextmanager
async def serving(server: AlpacaServer) -> AsyncIterator[AlpacaServer]:
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


class Raw:
    """A bare stream client: what it sends is encoded, what it receives decoded."""

    def __init__(self, ws: ClientConnection, *, binary: bool) -> None:
        self.ws = ws
        self.binary = binary
        self.frames = 0

    async def send(self, message: Any) -> None:
        await self.ws.send(msgpack.packb(message) if self.binary else json.dumps(message))

    async def recv(self) -> list[Any]:
        data = await self.ws.recv()
        self.frames += 1
        assert isinstance(data, bytes) is self.binary, f"unexpected frame type: {data!r:.80}"
        decoded = msgpack.unpackb(data) if isinstance(data, bytes) else json.loads(data)
        assert isinstance(decoded, list), f"every server message is an array: {decoded!r}"
        return decoded

    async def ask(self, message: Any) -> dict[str, Any]:
        """Send one action; its one reply."""
        await self.send(message)
        [reply] = await self.recv()
        assert isinstance(reply, dict)
        return reply

    async def points(self, count: int) -> list[Any]:
        """The next ``count`` data points, over as many frames as they come in."""
        points: list[Any] = []
        while len(points) < count:
            points.extend(await self.recv())
        assert len(points) == count, points
        return points


@asynccontextmanager
async def raw(
    server: AlpacaServer, feed: str = "iex", *, binary: bool = True, **kwargs: Any
) -> AsyncIterator[Raw]:
    """A connected client, welcomed (not yet authenticated)."""
    headers = {"Content-Type": "application/msgpack"} if binary else {}
    async with connect(server.url(feed), additional_headers=headers, **kwargs) as ws:
        client = Raw(ws, binary=binary)
        assert await client.recv() == [{"T": "success", "msg": "connected"}]
        yield client


@asynccontextmanager
async def authenticated(
    server: AlpacaServer, feed: str = "iex", *, binary: bool = True, **kwargs: Any
) -> AsyncIterator[Raw]:
    async with raw(server, feed, binary=binary, **kwargs) as client:
        reply = await client.ask({"action": "auth", "key": KEY, "secret": SECRET})
        assert reply == {"T": "success", "msg": "authenticated"}
        yield client


@asynccontextmanager
async def streaming(stream: Any) -> AsyncIterator[None]:
    """alpaca-py's ``StockDataStream`` running in this loop (``run()`` would start its own);
    cancelled at the end, then its socket closed (``stop_ws`` takes up to 5 s)."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(stream._run_forever)
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
    with anyio.CancelScope(shield=True), anyio.move_on_after(5):
        await stream.close()
