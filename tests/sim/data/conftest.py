"""Where the shared real market data is, for the tests that read it (skipped without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def marketdata_root() -> Path:
    """``$ACTORTRADE_MARKETDATA``, else ``../shared/marketdata`` beside the repository."""
    if configured := os.environ.get("ACTORTRADE_MARKETDATA"):
        return Path(configured)
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "marketdata").resolve()


@pytest.fixture
def marketdata() -> Path:
    root = marketdata_root()
    if not (root / "PROVENANCE.md").is_file():
        pytest.skip(f"no shared market data at {root} (set ACTORTRADE_MARKETDATA)")
    return root
