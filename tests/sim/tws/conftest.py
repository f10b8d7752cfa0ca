"""What every test of the TWS API server shares: ib_insync runs on asyncio, and
``client_errors`` collects the protocol errors the client logged (none is the norm)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.tws_venue import client_protocol_errors


@pytest.fixture
def anyio_backend() -> str:
    """ib_insync is asyncio-native; real clocks (real sockets)."""
    return "asyncio"


@pytest.fixture
def client_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    return client_protocol_errors(caplog)
