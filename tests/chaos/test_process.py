"""Process-level chaos (``app.chaos.process``): ``actorctl start`` in its default over-the-wire
configuration as a real subprocess, SIGKILLed and restarted on one data directory, and fed bad
input; the invariants checked against the LMDB ledger and the venue's own books.

``ACTORTRADE_CRASH_KILLS=N ACTORTRADE_CRASH_SEED=S`` run a longer kill campaign here (default
5 kills, seed 20261122); ``python -m app.chaos --seeds 0 --kills N --kill-seed S`` does the same
from the command line.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest

from actors.lot_keeper import ledger_store
from app.chaos import process

KILLS = int(os.environ.get("ACTORTRADE_CRASH_KILLS", "5"))
SEED = int(os.environ.get("ACTORTRADE_CRASH_SEED", "20261122"))


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_fill_and_sends_no_order_twice(tmp_path: Path) -> None:
    """KILLS SIGKILLs at seeded moments, each followed by a restart on the same data directory
    that resumes where the venue was; the safety invariants hold after every kill, and after a
    last run to the end and a graceful stop the ledger agrees with the venue's books."""
    outcome = process.run_campaign(kills=KILLS, seed=SEED, workdir=tmp_path)
    assert outcome.kills == KILLS
    assert outcome.starts == KILLS + 1
    assert sum(outcome.faults.values()) == KILLS
    assert set(outcome.faults) <= {"sigkill-while-trading", "sigkill-while-starting"}
    assert len(outcome.progress) == KILLS
    assert outcome.executions > 0
    assert outcome.checks > KILLS
    assert outcome.repro == f"python -m app.chaos --seeds 0 --kills {KILLS} --kill-seed {SEED}"


@pytest.mark.slow
def test_bad_input_is_refused_untouched_and_a_full_map_stops_the_service_losing_nothing(
    tmp_path: Path,
) -> None:
    """Truncated and corrupt config, lot maps and bar files: refused naming file and line,
    exit non-zero, the data directory byte for byte as it was; a full LMDB map: exit 1 naming
    ledger.map_size_mib, every committed record kept, and a start with a larger map agrees with
    the venue; a second start on a directory in use: refused naming the holder, which carries
    on and stops cleanly."""
    outcome = process.run_bad_input(workdir=tmp_path)
    assert outcome.faults == Counter(
        {
            "truncated-config": 1,
            "corrupt-config": 3,
            "truncated-lot-map": 1,
            "corrupt-lot-map": 4,
            "corrupt-bar-file": 2,
            "second-start": 2,
            "map-full": 1,
        }
    )
    assert outcome.kills == 0
    assert outcome.starts == 17
    assert outcome.executions > 0
    assert outcome.checks > 0
    assert outcome.repro == "python -m app.chaos --seeds 0 --bad-input"


def test_a_failed_campaign_says_what_failed_and_ends_with_the_command_that_reproduces_it(
    tmp_path: Path,
) -> None:
    """A campaign whose service cannot start (its data directory held by this process) fails
    with the service's own reason and, on the last line, the command to rerun it."""
    with (
        ledger_store(tmp_path / "data" / "ledger"),
        pytest.raises(process.ProcessChaosFailure) as info,
    ):
        process.run_campaign(kills=2, seed=7, workdir=tmp_path)
    message = str(info.value)
    assert f"is in use by another actortrade process (pid {os.getpid()})" in message
    assert message.splitlines()[-1] == (
        "  reproduce: python -m app.chaos --seeds 0 --kills 2 --kill-seed 7"
    )
