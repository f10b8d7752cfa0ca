"""The busy-loop tail group (bench/busy_tail.py): the busy ring, and a quick run's rows (no
timing gate)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import anyio
import anyio.lowlevel
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def busy_tail() -> Iterator[ModuleType]:
    # bench/ is not a package: its scripts import each other by name from their folder.
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("busy_tail")
    finally:
        sys.path.remove(str(BENCH))


def test_the_busy_ring_passes_its_messages_round_until_it_is_left(busy_tail: ModuleType) -> None:
    """Three actors, two messages: the messages go round the ring while the context is open
    (more handlings than actors and messages together), and none after it is left."""
    load = busy_tail.Load()

    async def main() -> tuple[int, int]:
        async with busy_tail.busy_ring(10, load, actors=3, tokens=2)():
            while load.handled[0] < 60:
                await anyio.lowlevel.checkpoint()
        left = load.handled[0]
        for _ in range(50):
            await anyio.lowlevel.checkpoint()
        return left, load.handled[0]

    left, later = anyio.run(main, backend="asyncio")
    assert left >= 60
    assert later == left
    assert load.elapsed_ns > 0
    assert load.rate > 0
    assert 0 < load.share < 1


def test_spin_iterations_grow_with_the_time_asked_for(busy_tail: ModuleType) -> None:
    """The calibration asks for more iterations for more time (ten times the time: more than
    twice the iterations, whatever the machine's speed or noise)."""
    assert busy_tail.iterations_for(600.0) > 2 * busy_tail.iterations_for(60.0) >= 2


def test_a_quick_run_reports_idle_and_busy_decisions_the_p99_target_and_the_load(
    tmp_path: Path,
) -> None:
    """Idle and busy rows in ms, the busy row with its p99 <= 20 ms target evaluated (met or
    missed: a smoke does not gate on timing) and its p99 / idle p50 ratio, and the ring's rate."""
    out = tmp_path / "tail.json"
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "busy_tail.py"),
            "--quick",
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())
    assert {row["group"] for row in rows} == {"decision tail, busy loop"}
    idle, busy, ring = rows
    assert idle["name"].startswith("ours, idle loop")
    assert busy["name"].startswith("ours, busy loop")
    for row in (idle, busy):
        assert row["unit"] == "ms"
        assert 0 < row["p50"] <= row["p99"] <= row["max"]
        assert row["samples"] >= 30
    assert set(busy["ratios"]) == {idle["name"]}
    assert busy["ratios"][idle["name"]] > 0
    (target,) = busy["targets"]
    assert (target["on"], target["op"], target["limit"]) == ("p99", "<=", 20.0)
    assert target["met"] in (True, False)
    assert ring["unit"] == "/s"
    assert ring["value"] > 0
    assert "of the time (median)" in ring["note"]
