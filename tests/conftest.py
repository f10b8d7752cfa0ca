"""Shared fixtures: every async test runs on asyncio (uvloop, the production default) and on trio
with a virtual clock that jumps ahead whenever all tasks are blocked."""

from __future__ import annotations

from typing import Any

import pytest
import trio.testing


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    if request.param == "asyncio":
        return "asyncio", {"use_uvloop": True}
    return "trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}
