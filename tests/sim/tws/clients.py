"""The clients the sim's TWS server is tested with: ib_insync 0.9.86 and ib_async 1.0.3, its
maintained fork, each at the server versions that matter.

``CLIENTS`` is the matrix: ib_insync at 157 (the lowest either offers) and 176 (its highest),
ib_async at 176 and 178 (its highest, which the server speaks too). A ``Client`` connects the way
that library at that version would: it offers ``v157..<version>`` in the handshake (by lowering
the library's ``MaxClientVersion`` on the one connection), so the server negotiates the version
itself. ``client.api`` holds the library's classes (``Stock``, ``Option``, ``LimitOrder``,
``StopOrder``, ``Order``, ...): a contract or an order of one library is not one of the other's
(ib_async encodes a contract only if it is an instance of its own ``Contract``).

In a test, ask for the ``client`` fixture (tests/sim/tws/conftest.py, parametrized over
``CLIENTS``) and write the flow once::

    async def test_x(client: Client, client_errors: Callable[[], list[str]]) -> None:
        async with venue(Engine()) as server:
            ib = await client.connect(server)
            [contract] = await ib.qualifyContractsAsync(client.api.Stock("TQQQ", "SMART", "USD"))
"""

from __future__ import annotations

import importlib
from typing import Any

import attrs

from sim.tws.orders import HIGHEST_SERVER_VERSION, MAX_SERVER_VERSION, MIN_SERVER_VERSION
from sim.tws.server import TwsServer

LIBRARIES = ("ib_insync", "ib_async")


@attrs.frozen
class Api:
    """One client library's classes, the ones the tests use, by the library's own names."""

    module: Any
    IB: Any
    Contract: Any
    Stock: Any
    Option: Any
    Order: Any
    LimitOrder: Any
    MarketOrder: Any
    StopOrder: Any
    StopLimitOrder: Any
    PriceCondition: Any
    ExecutionFilter: Any
    RequestError: Any


def api(library: str) -> Api:
    """The classes of ``library`` (``"ib_insync"`` or ``"ib_async"``)."""
    if library not in LIBRARIES:
        raise ValueError(f"unknown client library {library!r}: expected one of {LIBRARIES}")
    module = importlib.import_module(library)
    names = [f.name for f in attrs.fields(Api) if f.name != "module"]
    return Api(module, **{name: getattr(module, name) for name in names})


@attrs.frozen
class Client:
    """A client library at the highest server version it will offer."""

    library: str
    version: int

    @property
    def id(self) -> str:
        return f"{self.library}-{self.version}"

    @property
    def api(self) -> Api:
        return api(self.library)

    def ib(self) -> Any:
        """A new, unconnected ``IB`` of this library that offers versions 157..``version``."""
        ib = self.api.IB()
        highest = type(ib.client).MaxClientVersion
        if not MIN_SERVER_VERSION <= self.version <= highest:
            raise ValueError(
                f"{self.library} offers server versions {MIN_SERVER_VERSION}..{highest}, "
                f"not {self.version}"
            )
        ib.client.MaxClientVersion = self.version
        return ib

    async def connect(self, server: TwsServer, client_id: int = 1, *, deadline: float = 5) -> Any:
        """This client connected to ``server`` (listening) as ``client_id``, at ``version``
        (checked: the server must have agreed to it)."""
        assert server.port is not None
        return await self.connect_to(server.port, client_id, deadline=deadline)

    async def connect_to(self, port: int, client_id: int = 1, *, deadline: float = 5) -> Any:
        """As ``connect``, to a server on ``port`` of this machine (one in another process)."""
        ib = self.ib()
        await ib.connectAsync("127.0.0.1", port, clientId=client_id, timeout=deadline)
        agreed = ib.client.serverVersion()
        if agreed != self.version:
            ib.disconnect()
            raise AssertionError(f"{self.id}: the server answered version {agreed}")
        return ib


CLIENTS = (
    Client("ib_insync", MIN_SERVER_VERSION),
    Client("ib_insync", MAX_SERVER_VERSION),
    Client("ib_async", MAX_SERVER_VERSION),
    Client("ib_async", HIGHEST_SERVER_VERSION),
)
"""The matrix: every flow runs with each of these."""
