"""The bench venue in a process of its own (bench/venue_process.py): its line protocol, and both
bots' decisions measured against it (no timing gate)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def seed_bot() -> Iterator[ModuleType]:
    # bench/ is not a package: its scripts import each other by name from their folder.
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("seed_bot")
    finally:
        sys.path.remove(str(BENCH))


def test_the_venue_child_prints_its_port_and_answers_each_command_on_a_line() -> None:
    """``port N`` once it listens; ``flat 0`` for a flatten with nothing open; an ``error`` that
    names a bad command, after which it carries on; ``stop`` ends it with exit code 0."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "venue_process.py")],
        input="flatten\nbogus 1\ntrade x\nflatten\nstop\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5, lines
    head, port = lines[0].split()
    assert head == "port"
    assert int(port) > 0
    assert lines[1] == "flat 0"
    assert lines[2].startswith("error unknown command 'bogus 1'")
    assert lines[3].startswith("error unknown command 'trade x'")
    assert lines[4] == "flat 0"


@pytest.mark.parametrize("bot", ["seed_latency", "ours_latency"])
def test_each_bot_decides_against_the_venue_child_and_the_child_is_stopped(
    seed_bot: ModuleType, bot: str, tmp_path: Path
) -> None:
    """Every published trade comes back as one measured decision (ns, read in the child), and
    the child has exited once the run is over."""
    children: list[Any] = []

    class Recorded(seed_bot.VenueProcess):  # type: ignore[name-defined,misc]
        def __init__(self) -> None:
            super().__init__()
            children.append(self)

    samples = anyio.run(getattr(seed_bot, bot), 5, tmp_path, Recorded, backend="asyncio")
    assert len(samples) == 5
    assert all(isinstance(ns, int) and ns > 0 for ns in samples)
    assert len(children) == 1
    assert children[0].process.returncode == 0
    assert children[0].port > 0
