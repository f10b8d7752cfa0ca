"""What every test of the TWS API server shares: the clients run on asyncio, ``client_errors``
collects the protocol errors the client logged (none is the norm), and ``client`` runs a test
once with each client of the matrix (tests/sim/tws/clients.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.sim.tws.clients import CLIENTS, Client
from tests.tws_venue import client_protocol_errors


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync and ib_async are asyncio-native; real clocks (real sockets)."""
    return "asyncio"


@pytest.fixture
def client_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    return client_protocol_errors(caplog)


@pytest.fixture(params=CLIENTS, ids=lambda c: c.id)
def client(request: pytest.FixtureRequest) -> Client:
    """ib_insync at 157 and 176, ib_async at 176 and 178, one run each."""
    kind: Client = request.param
    return kind
