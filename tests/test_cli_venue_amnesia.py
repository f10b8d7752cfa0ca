"""actorctl start on a venue that lost the tail of its journal (a power loss before it was on
disk, or a hand that cut it), driven as the reporter did: the real CLI in a subprocess, orders
over the wire through ib_insync, then the books read back from the journal and the ledger."""

from __future__ import annotations

import json
import signal
from datetime import UTC, date, datetime
from pathlib import Path

import msgspec
import pytest

from actors import ledger
from actors.domain import Bar, Side
from actors.lot_keeper import ledger_store
from sim.engine import Engine, Input
from sim.replay import generated_session
from tests.test_cli import _line_with, _reap, _spawn, _stop, run

pytestmark = pytest.mark.slow


def _entries(journal: Path) -> list[bytes]:
    return journal.read_bytes().split(b"\n")[1:-1]


def _cut_before_a_sold_lot(journal: Path) -> int:
    """Cut the journal back to before the trade that filled its last sell followed by a buy:
    the venue forgets that a lot was sold and that the next one was bought, so its position
    still matches the ledger's open shares while it works the sold lot's sell again. Returns
    the number of executions forgotten."""
    lines = journal.read_bytes().split(b"\n")[:-1]
    engine = Engine()
    made_by: list[int] = []  # the journal line that made each execution
    for number, line in enumerate(lines[1:], start=1):
        engine.apply(msgspec.json.decode(line, type=Input))
        made_by += [number] * (len(engine.executions) - len(made_by))
    sides = [e.side for e in engine.executions]
    last_sell = max(
        i for i, side in enumerate(sides) if side is Side.SELL and Side.BUY in sides[i + 1 :]
    )
    journal.write_bytes(b"\n".join(lines[: made_by[last_sell]]) + b"\n")
    return len(sides) - last_sell


def _worst(journal: Path) -> tuple[int, int]:
    """The lowest position, and the most the working sells offered beyond the position, at
    any moment of the venue's life the journal describes."""
    engine = Engine()
    lowest, beyond = 0, 0
    for line in _entries(journal):
        engine.apply(msgspec.json.decode(line, type=Input))
        held = engine.positions["TQQQ"].quantity if "TQQQ" in engine.positions else 0
        offered = sum(o.remaining for o in engine.open_orders() if o.side is Side.SELL)
        lowest, beyond = min(lowest, held), max(beyond, offered - held)
    return lowest, beyond


def _bar_file(path: Path, bars: list[Bar]) -> Path:
    path.write_text(
        "Datetime,Symbol,Open,High,Low,Close,Volume\n"
        + "".join(
            f"{b.start.astimezone(UTC):%Y-%m-%d %H:%M:%S},{b.symbol},{b.open},{b.high},{b.low},"
            f"{b.close},{b.volume}\n"
            for b in bars
        )
    )
    return path


def test_a_venue_that_forgot_a_sold_lot_is_never_sold_short_over_the_wire(
    tmp_path: Path,
) -> None:
    """The morning of the generated day, a stop, the journal cut back to before the last sold
    lot and the next lot's buy (the reporter's shape: the position still matches the ledger),
    a start on the whole day: the sold lot's sell, which the venue works again, is cancelled
    before the other lot's sell is placed, so the position never goes below zero and the sells
    never offer more than it; every execution the venue then reports is the ledger's or an
    execution conflict on record (the venue reissues its ids), never a silent duplicate. The
    conflict halts the symbol, `actorctl status` and `reconcile` say why, and `actorctl
    reconcile --acknowledge-conflicts` lifts the halt; the service stops cleanly."""
    day = generated_session(seed=14, day=date(2026, 11, 23))
    morning = [b for b in day if b.start < datetime(2026, 11, 23, 15, 30, tzinfo=UTC)]
    data = tmp_path / "data"
    socket = tmp_path / "s.sock"
    args = ("start", "--data-dir", str(data), "--speed", "0", "--no-tracing", "--replay")
    first = _spawn(*args, str(_bar_file(tmp_path / "morning.csv", morning)), socket=socket)
    try:
        _line_with(first, "replay finished")
        _stop(first, signal.SIGTERM)
    finally:
        _reap(first)
    assert first.returncode == 0
    journal = data / "venue.journal"
    assert _worst(journal) == (0, 0)
    assert _cut_before_a_sold_lot(journal) == 2
    again = _spawn(*args, str(_bar_file(tmp_path / "day.csv", day)), socket=socket)
    try:
        _line_with(again, "replay finished")
        # The venue reissued an execution id the ledger holds: the symbol is halted and says
        # why, until an operator acknowledges it.
        status = json.loads(run("status", "--json", socket=socket).stdout)
        (view,) = status["symbols"]
        assert view["halted"].startswith("execution conflict: execution sim.")
        shown = run("reconcile", socket=socket)
        assert shown.returncode == 0
        assert "TQQQ: EXECUTION CONFLICT: execution sim." in shown.stdout
        refused = run("reconcile", "--dry-run", "--acknowledge-conflicts", socket=socket)
        assert refused.returncode == 2
        acknowledged = run("reconcile", "--acknowledge-conflicts", socket=socket)
        assert acknowledged.returncode == 0, acknowledged.stderr
        assert "EXECUTION CONFLICT" not in acknowledged.stdout
        status = json.loads(run("status", "--json", socket=socket).stdout)
        (view,) = status["symbols"]
        assert view["halted"] is None
        _, stdout, stderr = _stop(again, signal.SIGTERM)
    finally:
        _reap(again)
    assert again.returncode == 0, stderr
    assert "Traceback" not in stderr
    lowest, beyond = _worst(journal)
    assert lowest >= 0, f"the position went down to {lowest}"
    assert beyond <= 0, f"the working sells offered {beyond} shares beyond the position"
    assert "position -" not in stdout
    with ledger_store(data / "ledger") as store:
        fills = {f.exec_id: (f.ref, f.quantity, f.price) for f in store.read(ledger.fills)}
        conflicts = store.read(ledger.conflicts)
    reported = {
        (c.exec_id, c.reported.ref, c.reported.quantity, c.reported.price) for c in conflicts
    }
    assert conflicts
    assert all(c.acknowledged_ns is not None for c in conflicts)
    engine = Engine()
    for line in _entries(journal):
        engine.apply(msgspec.json.decode(line, type=Input))
    for execution in engine.executions:
        facts = (execution.ref, execution.quantity, execution.price)
        assert fills.get(execution.exec_id) == facts or (execution.exec_id, *facts) in reported, (
            execution
        )
