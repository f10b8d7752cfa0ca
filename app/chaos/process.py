"""Process-level chaos: ``actorctl start`` in its default configuration (the embedded venue
through its TWS API server and ib_insync, on loopback) run as a real subprocess on one data
directory, and hurt from outside:

* ``run_campaign``: SIGKILLed at seeded random moments, again and again, each time started
  again on the same directory; then a last run to the end of the replay and a graceful stop.
  After every kill the safety invariants hold; at the end the agreement invariants too
  (``app.chaos.invariants``), against the ledger (the service's LMDB environment) and the
  venue's own books (its journal in the data directory, ``sim.journal``, which outlives the
  process as a real broker's books would).
* ``run_bad_input``: a truncated or corrupt config, lot map and bar file (refused with an
  error naming the file and line or key, exit non-zero, the data directory byte for byte
  untouched), a full LMDB map (the service stops with an error naming ``ledger.map_size_mib``,
  nothing committed is lost, and a start with a larger map ends in full agreement), and a
  second ``actorctl start`` on a data directory in use (refused naming the holder; the first
  carries on).

Both return a ``ProcessOutcome`` or raise ``ProcessChaosFailure``, whose message ends with the
one-line command that reproduces it. Each subprocess's output is kept in ``workdir/logs``.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import attrs

from actors.lot_keeper import LedgerState, ledger_store
from sim.replay import generated_days, trades

from . import bad_input, invariants
from .service import _Books, _Broken, _expect_resume, _Service, _when

SYMBOL = "TQQQ"
SESSION_SEED = 5
"""The seed of the generated days every start replays (the same days each time: a restart
resumes after the last trade the venue saw)."""
KILL_SPEED = "20000"
"""Replay speed of the runs that are killed: a generated day takes about 3 s."""
KILL_WINDOW = (0.0, 2.5)
"""Seconds after the service says it is trading within which the kill lands (uniform)."""


class ProcessChaosFailure(AssertionError):
    """A process-level campaign broke an invariant, or the service misbehaved (exited when it
    should not have, did not refuse bad input, hung); ``repro`` is the command to rerun it."""

    def __init__(self, repro: str, message: str) -> None:
        self.repro = repro
        super().__init__(f"process chaos: {message}\n  reproduce: {repro}")


@attrs.define
class ProcessOutcome:
    """What a process-level campaign did."""

    repro: str
    kills: int = 0
    starts: int = 0
    """``actorctl start`` subprocesses run (refused ones included)."""
    checks: int = 0
    """Invariant checks that ran (``invariants.Tally``)."""
    faults: Counter[str] = attrs.Factory(Counter)
    """Faults injected, by kind."""
    orders: int = 0
    """Orders the venue was sent, over the whole campaign."""
    executions: int = 0
    progress: list[str] = attrs.Factory(list)
    """The venue's last trade after each kill (ISO 8601; "-" before the first trade)."""
    elapsed: float = 0.0

    def __str__(self) -> str:
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(self.faults.items()))
        return (
            f"{self.kills} kills, {self.starts} starts, {sum(self.faults.values())} faults "
            f"({faults}), {self.checks} invariant checks, {self.orders} orders, "
            f"{self.executions} executions ({self.elapsed:.0f} s)"
        )


# -- the kill campaign ---------------------------------------------------------------------------


def run_campaign(
    *, kills: int, seed: int, workdir: Path, log: Callable[[str], None] = print
) -> ProcessOutcome:
    """SIGKILL ``actorctl start`` ``kills`` times at moments drawn from ``seed``, restarting it
    on the same data directory each time; then run it to the end of the replay, stop it with
    SIGTERM, and check the ledger against the venue's books (see the module doc)."""
    repro = f"python -m app.chaos --seeds 0 --kills {kills} --kill-seed {seed}"
    campaign = _Campaign(workdir, repro, log)
    try:
        campaign.kill_and_restart(kills, seed)
    except (_Broken, invariants.Violation) as exc:
        raise ProcessChaosFailure(repro, f"kills {kills}, kill seed {seed}: {exc}") from exc
    finally:
        campaign.close()
    return campaign.outcome


def run_bad_input(*, workdir: Path, log: Callable[[str], None] = print) -> ProcessOutcome:
    """Bad config and lot maps, a full LMDB map, a second start on a data directory in use
    (see the module doc), on one data directory that a first run has filled."""
    repro = "python -m app.chaos --seeds 0 --bad-input"
    campaign = _Campaign(workdir, repro, log)
    try:
        campaign.bad_input()
    except (_Broken, invariants.Violation) as exc:
        raise ProcessChaosFailure(repro, f"bad input: {exc}") from exc
    finally:
        campaign.close()
    return campaign.outcome


def days_for(kills: int) -> int:
    """Generated days to replay: enough that the kills land mid-replay (a start replays about
    0.4 of a day before its kill, at most 0.9) with some left for the last run."""
    return max(4, 2 * kills // 3 + 2)


class _Campaign:
    def __init__(self, workdir: Path, repro: str, log: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.data = workdir / "data"
        self.logs = workdir / "logs"
        self.log = log
        self.outcome = ProcessOutcome(repro=repro)
        self.tally = invariants.Tally()
        self.started = time.monotonic()
        # Unix socket paths are short (108 bytes): not under a test's tmp_path.
        self.sockets = [Path(f"/tmp/actortrade-chaos-{os.getpid()}-{n}.sock") for n in range(2)]

    def close(self) -> None:
        self.outcome.checks = self.tally.checks
        self.outcome.elapsed = time.monotonic() - self.started
        for path in self.sockets:
            path.unlink(missing_ok=True)

    def start(self, *args: str, socket: int = 0) -> _Service:
        self.outcome.starts += 1
        return _Service(
            f"start-{self.outcome.starts}",
            ["start", "--data-dir", str(self.data), "--seed", str(SESSION_SEED), *args],
            socket=self.sockets[socket],
            logs=self.logs,
        )

    # -- kills ---------------------------------------------------------------------------------

    def kill_and_restart(self, kills: int, seed: int) -> None:
        rng = random.Random(seed)
        days = str(days_for(kills))
        venue = _Books.read(self.data)
        for n in range(1, kills + 1):
            with self.start("--days", days, "--speed", KILL_SPEED) as service:
                service.wait_for(service.err, "actorctl: starting", timeout=90)
                _expect_resume(service, venue.last_trade)
                delay = rng.uniform(*KILL_WINDOW)
                time.sleep(delay)
                code = service.kill()
                if code != -signal.SIGKILL:
                    raise _Broken(
                        f"{service.name} exited with {code} before its kill {n}:{service.tail()}"
                    )
            before = venue.last_trade
            venue = _Books.read(self.data)
            ledger = self.ledger()
            invariants.safety(venue.engine, ledger, venue.placed, SYMBOL, self.tally)
            if before is not None and (venue.last_trade is None or venue.last_trade < before):
                raise _Broken(
                    f"after kill {n} the venue's last trade is {venue.last_trade}, before it "
                    f"{before}: the venue's books went back"
                )
            moved = venue.last_trade != before
            self.outcome.faults["sigkill-while-trading" if moved else "sigkill-while-starting"] += 1
            self.outcome.kills += 1
            self.outcome.progress.append(_when(venue.last_trade))
            self.log(
                f"kill {n}/{kills}: {delay:.2f} s after it began trading; the venue at "
                f"{_when(venue.last_trade)}, {len(venue.engine.executions)} executions"
            )
        after_kills = venue.last_trade
        self.run_to_the_end(days, resume=after_kills)
        venue = _Books.read(self.data)
        if kills and (after_kills is None or venue.last_trade == after_kills):
            raise _Broken(
                f"the last run replayed nothing after the kills (the venue at "
                f"{_when(after_kills)}): the kills did not land mid-replay (days_for({kills}) "
                "is too few days for this machine)"
            )
        self.final_checks(venue, days)

    def run_to_the_end(
        self, days: str, *, resume: datetime | None = None, config: Sequence[str] = ()
    ) -> None:
        """A start that replays to the end and is stopped with SIGTERM: exit 0."""
        with self.start(*config, "--days", days, "--speed", "0") as service:
            service.wait_for(service.err, "actorctl: starting", timeout=90)
            _expect_resume(service, resume)
            service.wait_for(service.out, "replay finished", timeout=60 + 60 * int(days))
            code = service.terminate()
        if code != 0:
            raise _Broken(f"{service.name} exited with {code} after SIGTERM:{service.tail()}")

    def final_checks(self, venue: _Books, days: str) -> None:
        ledger = self.ledger()
        twice = sorted(ref for ref, n in venue.placed.items() if n > 1)
        self.tally.check(not twice, f"orderRefs the venue was sent more than once: {twice}")
        invariants.safety(venue.engine, ledger, venue.placed, SYMBOL, self.tally)
        invariants.agreement(venue.engine, ledger, SYMBOL, self.tally)
        last = [t.at for t in trades(generated_days(seed=SESSION_SEED, days=int(days)))][-1]
        self.tally.check(
            venue.last_trade == last,
            f"the venue's last trade is {_when(venue.last_trade)}, the replay's {last}",
        )
        self.tally.check(bool(venue.engine.executions), "nothing traded: the checks saw nothing")
        self.outcome.orders = len(venue.placed)
        self.outcome.executions = len(venue.engine.executions)
        self.log(
            f"checked: {len(venue.placed)} orders, {len(venue.engine.executions)} executions, "
            f"{sum(lot.open_shares for lot in ledger.lots)} shares open, "
            f"{self.tally.checks} invariant checks"
        )

    def ledger(self) -> LedgerState:
        if not (self.data / "ledger" / "data.mdb").exists():
            return LedgerState(intents=(), fills=(), lots=())
        # A map larger than the service's: reading needs no room, opening writes the schema.
        with ledger_store(self.data / "ledger", map_size=1 << 30) as store:
            return invariants.read_ledger(store, SYMBOL)

    # -- bad input -----------------------------------------------------------------------------

    def bad_input(self) -> None:
        bad_input.run(self)
