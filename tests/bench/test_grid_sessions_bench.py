"""bench/grid_sessions.py: the canonical outcome of the grid's real sessions is what the plain
grid gives, it is the same on both backends, and the comparison names the first difference."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.domain.sessions import NEW_YORK
from config.lotmap import load_lot_map
from sim.replay import load_bars, trades
from tests.actors import plain_grid

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "grid_sessions.py"
REAL = ROOT.parent / "shared" / "marketdata" / "tqqq_1min" / "TQQQ_60day_1min_data.csv"
SESSIONS = 2

pytestmark = pytest.mark.skipif(
    not REAL.exists(), reason="../shared/marketdata is not on this machine"
)


def script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The first two real sessions, once on each backend."""
    folder = tmp_path_factory.mktemp("grid-sessions")
    paths = {}
    for backend in ("asyncio", "trio"):
        paths[backend] = folder / f"{backend}.json"
        result = script(
            "--sessions", str(SESSIONS), "--backend", backend, "--out", str(paths[backend])
        )
        assert result.returncode == 0, result.stderr
    return paths


def test_the_two_backends_give_equal_outcomes(runs: dict[str, Path]) -> None:
    """The comparison of the asyncio run with the trio run finds every session equal."""
    result = script("--compare", str(runs["asyncio"]), str(runs["trio"]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"equal: all {SESSIONS} sessions have the same orders, fills and P&L" in result.stdout
    data = json.loads(runs["asyncio"].read_text())
    assert [s["day"] for s in data["sessions"]] == ["2025-04-30", "2025-05-01"]
    assert data["fills"] == sum(len(s["fills"]) for s in data["sessions"]) > 20


def test_a_changed_fill_or_order_is_named_and_fails_the_comparison(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """One fill's price or one order's limit changed: exit 1, naming the session and the item."""
    data = json.loads(runs["trio"].read_text())
    data["sessions"][1]["fills"][4]["price"] = "1.00"
    changed = tmp_path / "fill.json"
    changed.write_text(json.dumps(data))
    result = script("--compare", str(runs["asyncio"]), str(changed))
    assert result.returncode == 1
    assert "first difference: session 2025-05-01 fill #5: before L" in result.stdout

    data = json.loads(runs["trio"].read_text())
    data["sessions"][0]["orders"].pop(7)
    changed.write_text(json.dumps(data))
    result = script("--compare", str(runs["asyncio"]), str(changed))
    assert result.returncode == 1
    assert "first difference: session 2025-04-30 order #8: " in result.stdout


def test_runs_on_other_inputs_or_a_file_of_another_kind_are_refused(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    """Other bars: exit 2 before any table; a file that is not an output: exit 2 naming it."""
    data = json.loads(runs["trio"].read_text())
    data["inputs"]["lots_sha256"] = "0" * 64
    changed = tmp_path / "lots.json"
    changed.write_text(json.dumps(data))
    result = script("--compare", str(runs["asyncio"]), str(changed))
    assert result.returncode == 2
    assert "the two runs had different inputs" in result.stdout
    assert "equal" not in result.stdout

    other = tmp_path / "other.json"
    other.write_text('{"results": {}}')
    result = script("--compare", str(other), str(runs["asyncio"]))
    assert result.returncode == 2
    assert f"{other}: not an output of grid_sessions.py" in result.stderr


def test_the_canonical_orders_and_fills_are_the_plain_grids(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every order placed (side, level, quantity, limit, tif, trigger, in order), every fill
    (side, level, quantity, price, time) and the P&L, as the independent plain grid has them."""
    placed: list[Any] = []

    @dataclass
    class Recorded(plain_grid.Working):
        def __post_init__(self) -> None:
            placed.append(self)  # the plain grid places every Working it makes

    monkeypatch.setattr(plain_grid, "Working", Recorded)
    bars = list(first_sessions(load_bars(REAL), SESSIONS))
    shares = list(load_lot_map(ROOT / "config" / "lots" / "tqqq.csv"))
    expected = plain_grid.run(trades(bars), shares)
    data = json.loads(runs["asyncio"].read_text())
    orders = [o for s in data["sessions"] for o in s["orders"]]
    fills = [f for s in data["sessions"] for f in s["fills"]]

    assert [
        (
            o["side"],
            o["level"],
            o["quantity"],
            Decimal(o["limit"]),
            o["tif"],
            None if o["condition"] is None else Decimal(o["condition"]["trigger"]),
        )
        for o in orders
    ] == [
        (w.side, w.level, w.quantity, w.limit, "DAY" if w.day_of else "GTC", w.trigger)
        for w in placed
    ]
    assert (orders[0]["limit"], orders[0]["tif"]) == ("51.75", "DAY")
    assert [
        (f["side"], f["level"], f["quantity"], Decimal(f["price"]), datetime.fromisoformat(f["at"]))
        for f in fills
    ] == expected.executions
    assert Decimal(data["realized"]) == expected.realized
    assert data["position"] == expected.position
    assert sorted((lot[0], lot[2], Decimal(lot[3])) for lot in data["open_lots"]) == sorted(
        (lot.level, lot.bought - lot.sold, lot.cost)
        for lot in expected.lots
        if lot.sold < lot.bought
    )


def first_sessions(bars: list[Any], count: int) -> Iterator[Any]:
    days: list[object] = []
    for bar in bars:
        day = bar.start.astimezone(NEW_YORK).date()
        if day not in days:
            days.append(day)
        if len(days) > count:
            return
        yield bar
