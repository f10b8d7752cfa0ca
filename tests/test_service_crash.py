"""The whole service SIGKILLed at random moments, again and again, on one data directory: after
each restart it reconciles and carries on, and at the end no execution the venue reported is
missing from the ledger, no orderRef was ever sent twice, and the books agree.

The venue's books live in the data directory's journal (``sim.journal``), so they survive the
kill as a real broker's would; the ledger is the service's own LMDB environment.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import msgspec

from actors import ledger
from actors.domain import OrderRef, Side, round_to_tick
from actors.lot_keeper import ledger_store
from sim.journal import open_engine

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))
KILLS = int(os.environ.get("ACTORTRADE_CRASH_KILLS", "8"))
DAYS = int(os.environ.get("ACTORTRADE_CRASH_DAYS", str(max(6, KILLS // 2))))
"""Generated trading days: enough that the kills land mid-replay (a day takes ~3 s at 20000x)."""


def start(data_dir: Path, socket: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACTORTRADE_SOCKET": str(socket)}
    return subprocess.Popen(
        [
            ACTORCTL,
            "start",
            "--data-dir",
            str(data_dir),
            "--seed",
            "5",
            "--days",
            str(DAYS),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def wait_for(process: subprocess.Popen[str], text: str, timeout: float = 60) -> str:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if text in line:
            return line
        if not line and process.poll() is not None:
            raise AssertionError(f"actorctl exited {process.returncode} before {text!r}")
    raise AssertionError(f"no {text!r} within {timeout} s")


def test_sigkill_at_random_moments_loses_no_fill_and_sends_no_order_twice(tmp_path: Path) -> None:
    """KILLS SIGKILLs mid-replay, each followed by a restart on the same data directory; then
    a last run to the end of the day and a graceful stop; then the ledger and the venue's books
    are compared."""
    rng = random.Random(int(os.environ.get("ACTORTRADE_CRASH_SEED", "20261122")))
    data_dir = tmp_path / "data"
    socket = Path(f"/tmp/actortrade-crash-{os.getpid()}.sock")
    resumed = 0
    progress: list[int] = []  # journal entries after each kill: the kills hit mid-replay
    for _ in range(KILLS):
        process = start(data_dir, socket, "--speed", "20000")
        try:
            line = wait_for(process, "actorctl: trading")
            time.sleep(rng.uniform(0.2, 2.5))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == -signal.SIGKILL, line
        resumed += 1
        progress.append(len((data_dir / "venue.journal").read_bytes().splitlines()))
    process = start(data_dir, socket, "--speed", "0")
    try:
        wait_for(process, "resuming")
        assert process.stdout is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "replay finished" not in process.stdout.readline():
            pass
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert resumed == KILLS
    journal_entries = len((data_dir / "venue.journal").read_bytes().splitlines())
    assert len(set(progress)) > 1, progress
    assert progress[-1] < journal_entries, (progress, journal_entries)
    print(f"journal entries after each kill: {progress}; at the end: {journal_entries}")

    # The venue: every order it was ever sent, and its executions and position.
    sent = Counter()
    for raw in (data_dir / "venue.journal").read_bytes().splitlines():
        entry = msgspec.json.decode(raw)
        if entry[0] == "place":
            sent[entry[1]["ref"]] += 1
    twice = [ref for ref, n in sent.items() if n > 1]
    assert twice == [], f"orderRefs sent more than once: {twice}"
    engine = open_engine(data_dir / "venue.journal")
    assert engine.executions, "the day should have traded"

    store = ledger_store(data_dir / "ledger")
    with store:
        intents = store.read(lambda txn: ledger.intents(txn))
        fills = store.read(ledger.fills)
        lots = store.read(lambda txn: ledger.lots(txn, "TQQQ"))
    # No acknowledged fill missing, none recorded twice.
    recorded = [f.exec_id for f in fills]
    assert len(recorded) == len(set(recorded))
    assert sorted(recorded) == sorted(e.exec_id for e in engine.executions)
    # Every order the venue saw had a committed intent.
    assert set(sent) <= {i.ref for i in intents}
    # The ledger's open shares are the venue's position; each open lot has one right sell.
    position = engine.positions["TQQQ"].quantity
    open_lots = [lot for lot in lots if lot.open_shares]
    assert sum(lot.open_shares for lot in open_lots) == position
    working = engine.open_orders()
    for lot in open_lots:
        sells = [o for o in working if o.side is Side.SELL and OrderRef.parse(o.ref).lot == lot.lot]
        assert len(sells) == 1, f"lot {lot.lot}: {len(sells)} working sells"
        assert sells[0].remaining == lot.open_shares
        expected = round_to_tick(lot.cost / lot.bought * Decimal("1.01"), Decimal("0.01"))
        assert sells[0].limit == expected
    buys = Counter(OrderRef.parse(o.ref).level for o in working if o.side is Side.BUY)
    assert all(n == 1 for n in buys.values()), buys
