"""Option books through a SIGKILL of the process hosting the engine: a child process trades
options on a journaled engine (an option bracket with an OCA group of type 1 and a double
bid/ask stop, a written put, a working call) and is killed; the journal reopens into exactly
the books of an engine fed the same inputs, which then settle the same at expiry."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sim.engine import Engine
from sim.journal import Journal, open_engine
from tests.sim.killed_child import ROOT, first_line_then_sigkill
from tests.sim.option_drive import CALL, PUT, at, drive

CHILD = """
import importlib.util
import sys
from sim.journal import open_engine

spec = importlib.util.spec_from_file_location("option_drive", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
engine = open_engine(sys.argv[1])
module.drive(engine)
print(len(engine.executions), len(engine.open_orders()), flush=True)
sys.stdin.read()
"""


def test_option_books_survive_a_sigkill_and_settle_the_same(tmp_path: Path) -> None:
    """Killed with no close: the reopened engine has the same orders (parents, groups, types,
    trigger counts), positions and executions as one fed the same inputs in memory, and both
    settle the same when advanced past Friday's close."""
    path = tmp_path / "venue.jsonl"
    reported = first_line_then_sigkill(CHILD, str(path), str(ROOT / "tests/sim/option_drive.py"))
    reopened = open_engine(path)
    fresh = Engine()
    drive(fresh)
    assert reported == [str(len(fresh.executions)), str(len(fresh.open_orders()))]
    assert reopened.orders == fresh.orders
    assert reopened.positions == fresh.positions
    assert reopened.executions == fresh.executions
    assert {o.ref for o in fresh.open_orders()} == {"tp", "sl", "bid"}
    assert fresh.positions[CALL.local_symbol].quantity == 3
    assert fresh.positions[PUT.local_symbol].quantity == -2
    for engine in (reopened, fresh):
        engine.on_trade("TQQQ", Decimal("48.00"), 100, at("15:59", "2026-12-11"))
        engine.advance(at("18:00", "2026-12-11"))
    assert reopened.executions == fresh.executions
    assert reopened.positions == fresh.positions
    assert fresh.positions["TQQQ"].quantity == 200  # the put assigned, the call worthless
    assert fresh.open_orders() == []
    journal = reopened.recorder
    assert isinstance(journal, Journal)
    journal.close()
