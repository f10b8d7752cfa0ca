"""The crash-safe ledger under a SIGKILL at its two new moments: ``actorctl start`` (the
embedded venue over the TWS API, its books journaled as a broker's) killed right after an
order's intent reached the redo journal and before the order was sent, and right after the
venue took the order while LMDB has not committed the intent. Each time a restart on the same
data directory replays the journal into the ledger, reconciles, and trades to the end of the
replay; the venue must have been sent that order exactly once (or, killed before the send,
never, and its intent retired), and the ledger must agree with the venue's books.

The kills are placed by a wrapper that starts the real CLI after patching, in that process
only, the journal's ``append`` (to find the first intent and, for the first moment, die right
after it), the store's writer thread (for the second moment, it never commits that intent) and
the engine's ``place`` (die once the venue has the order on its books)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.chaos import invariants
from app.chaos.process import _Campaign
from app.chaos.service import _Books, _Service

WRAPPER = r"""
import os, signal, sys, threading
moment = sys.argv.pop(1)
from actors import ledger
from runtime import _journal, store
from sim import engine as sim_engine

armed = {}
append = _journal.RedoJournal.append

def journaled(self, payload):
    seq = append(self, payload)
    if "ref" not in armed:
        intents = store._decode_ops(payload, ("meta", *ledger.DATABASES)).get("intents")
        if intents:
            armed["ref"], armed["seq"] = next(iter(intents)).decode(), seq
            print(f"kill-test: armed {armed['ref']} (record {seq})", file=sys.stderr, flush=True)
            if moment == "journaled":
                os.kill(os.getpid(), signal.SIGKILL)
    return seq

_journal.RedoJournal.append = journaled

if moment == "sent":
    commit = store.Store._commit

    def held(self, batch):
        if "seq" in armed and any(r.seq >= armed["seq"] for r in batch):
            threading.Event().wait()  # never committed: the process dies first
        return commit(self, batch)

    store.Store._commit = held
    place = sim_engine.Engine.place

    def placed(self, order, *args, **kwargs):
        result = place(self, order, *args, **kwargs)
        if order.ref == armed.get("ref"):
            print(f"kill-test: the venue has {order.ref}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    sim_engine.Engine.place = placed

from app.cli import main
main()
"""


class _KillCampaign(_Campaign):
    def start_killed(self, moment: str) -> _Service:
        self.outcome.starts += 1
        return _Service(
            f"start-{self.outcome.starts}",
            ["start", "--data-dir", str(self.data), "--seed", "5", "--days", "1"],
            socket=self.sockets[0],
            logs=self.logs,
            command=(sys.executable, "-c", WRAPPER, moment),
        )


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["journaled", "sent"])
def test_a_kill_between_journal_send_and_commit_leaves_one_order_and_a_ledger_that_agrees(
    tmp_path: Path, moment: str
) -> None:
    campaign = _KillCampaign(tmp_path, f"pytest -k {moment}", print)
    try:
        with campaign.start_killed(moment) as service:
            armed = service.wait_for(service.err, "kill-test: armed", timeout=120)
            ref = armed.split()[2]
            code = service.process.wait(timeout=60)
            assert code == -9, f"the service was to die by SIGKILL:{service.tail()}"
        # The intent reached the journal only: LMDB was never told (the next open replays it).
        journal = campaign.data / "ledger" / "redo.journal"
        assert journal.stat().st_size > 0
        venue = _Books.read(campaign.data)
        assert venue.placed.get(ref, 0) == (1 if moment == "sent" else 0)
        ledger = campaign.ledger()  # opening it replays the journal
        intents = {intent.ref: intent for intent in ledger.intents}
        assert ref in intents, "the journaled intent was lost"
        assert intents[ref].origin.value == "strategy"

        campaign.run_to_the_end("1", resume=venue.last_trade)
        venue = _Books.read(campaign.data)
        ledger = campaign.ledger()
        assert venue.placed.get(ref, 0) == (1 if moment == "sent" else 0)
        twice = sorted(r for r, n in venue.placed.items() if n > 1)
        assert not twice, f"orderRefs sent twice: {twice}"
        if moment == "journaled":
            # Never sent: reconciliation retired its intent, and the strategy placed anew.
            assert ref in ledger.retired
        else:
            assert ref not in ledger.retired
        invariants.safety(venue.engine, ledger, venue.placed, "TQQQ", campaign.tally)
        invariants.agreement(venue.engine, ledger, "TQQQ", campaign.tally)
        assert venue.engine.executions
    finally:
        campaign.close()
