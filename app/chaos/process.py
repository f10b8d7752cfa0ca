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

import functools
import hashlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

import anyio
import attrs
import msgspec

from actors import ledger as ledger_
from actors.lot_keeper import LedgerState, ledger_store
from runtime.store import Durability, StoreFull, Txn
from sim.engine import Engine
from sim.journal import Journal, open_engine
from sim.replay import generated_days, trades

from . import invariants

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))
SYMBOL = "TQQQ"
SESSION_SEED = 5
"""The seed of the generated days every start replays (the same days each time: a restart
resumes after the last trade the venue saw)."""
CONFIG = Path(__file__).resolve().parents[2] / "config"
KILL_SPEED = "20000"
"""Replay speed of the runs that are killed: a generated day takes about 3 s."""
KILL_WINDOW = (0.0, 2.5)
"""Seconds after the service says it is trading within which the kill lands (uniform)."""
MAP_FULL_ROOM = 8 * 1024
"""Bytes left free in the 1 MiB map before the map-full run: room for some commits of the
replay, far from enough for the rest of it."""


class ProcessChaosFailure(AssertionError):
    """A process-level campaign broke an invariant, or the service misbehaved (exited when it
    should not have, did not refuse bad input, hung); ``repro`` is the command to rerun it."""

    def __init__(self, repro: str, message: str) -> None:
        self.repro = repro
        super().__init__(f"process chaos: {message}\n  reproduce: {repro}")


class _Broken(Exception):
    """Something the campaign checks did not hold (turned into ``ProcessChaosFailure``)."""


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
        self.run_to_the_end("1")
        self.log("a first day replayed; now the bad input")
        for fault in _bad_files(self.workdir / "bad", random.Random(20261122)):
            self.refused_file(fault)
        self.second_start()
        self.map_full()

    def refused_file(self, fault: _BadFile) -> None:
        before = _digest(self.data)
        with self.start(fault.option, str(fault.path), "--days", "2", "--speed", "0") as service:
            code = service.finish(timeout=60)
        message = service.said()
        if code == 0 or code is None:
            raise _Broken(f"{fault.kind} ({fault.what}) was not refused:{service.tail()}")
        if "Traceback" in "".join(service.err) or fault.where not in message:
            raise _Broken(
                f"{fault.kind} ({fault.what}): exit {code}, but the error does not name "
                f"{fault.where!r}:{service.tail()}"
            )
        if len(message) > 400:
            raise _Broken(f"{fault.kind} ({fault.what}): a {len(message)}-character error")
        after = _digest(self.data)
        changed = sorted(
            name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
        )
        self.tally.check(not changed, f"{fault.kind} ({fault.what}) changed {changed}")
        self.outcome.faults[fault.kind] += 1
        self.log(f"{fault.kind} ({fault.what}): exit {code}: {message}")

    def second_start(self) -> None:
        """While one service runs on the data directory, two more starts: on another control
        socket (the directory's lock refuses it) and on the same one (the user's default)."""
        with self.start("--days", "2", "--speed", "0") as first:
            first.wait_for(first.err, "actorctl: starting", timeout=90)
            holder = f"(pid {first.process.pid})"
            for socket, reasons in (
                (1, ("is in use by another actortrade process",)),
                (0, ("is in use by another actortrade process", "is already serving on")),
            ):
                with self.start("--days", "2", "--speed", "0", socket=socket) as second:
                    code = second.finish(timeout=60)
                said = second.said()
                if code == 0 or holder not in said or not any(r in said for r in reasons):
                    raise _Broken(
                        f"a second start on {self.data} (control socket "
                        f"{self.sockets[socket]}) was not refused naming {holder}: exit "
                        f"{code}:{second.tail()}"
                    )
                if first.process.poll() is not None:
                    raise _Broken(f"the first service died of a second start:{first.tail()}")
                self.outcome.faults["second-start"] += 1
                self.log(f"second start (control socket {socket}): exit {code}: {said}")
            self.answers(first)
            first.wait_for(first.out, "replay finished", timeout=120)
            code = first.terminate()
        if code != 0:
            raise _Broken(f"the first service exited with {code} after SIGTERM:{first.tail()}")
        venue = _Books.read(self.data)
        ledger = self.ledger()
        invariants.safety(venue.engine, ledger, venue.placed, SYMBOL, self.tally)
        invariants.agreement(venue.engine, ledger, SYMBOL, self.tally)

    def answers(self, service: _Service) -> None:
        """``actorctl status`` gets an answer from ``service`` (its control socket may take a
        moment to come up after it starts trading)."""
        deadline = time.monotonic() + 30
        while True:
            status = subprocess.run(
                [ACTORCTL, "status", "--socket", str(self.sockets[0])],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            if status.returncode == 0 and f"actortrade pid {service.process.pid}" in status.stdout:
                return
            if time.monotonic() > deadline or service.process.poll() is not None:
                raise _Broken(
                    f"{service.name} does not answer on its control socket: "
                    f"{status.stderr.strip()}{service.tail()}"
                )
            time.sleep(0.2)

    def map_full(self) -> None:
        """The ledger filled to 1 MiB but for ``MAP_FULL_ROOM`` bytes, then a start with
        ``map_size_mib = 1`` and days of replay left: it must stop with a clear error and lose
        nothing; a start with a larger map then ends in full agreement."""
        ledger_dir = self.data / "ledger"
        pieces = anyio.run(functools.partial(_fill, ledger_dir, 1 << 20, MAP_FULL_ROOM))
        before = self.ledger()
        small = self.workdir / "map-full.toml"
        small.write_text("[ledger]\nmap_size_mib = 1\n")
        days = "5"
        with self.start("--config", str(small), "--days", days, "--speed", "0") as service:
            code = service.finish(timeout=90, unless=(service.out, "replay finished"))
        said = service.said()
        if code is None:
            raise _Broken(
                f"with {MAP_FULL_ROOM} bytes free in its 1 MiB map the service replayed "
                f"{days} days without filling it (or hung):{service.tail()}"
            )
        expected = (str(ledger_dir), "the ledger is full", "raise ledger.map_size_mib")
        if code == 0 or not all(text in said for text in expected):
            raise _Broken(
                f"a full map: exit {code}, not an error naming the ledger and "
                f"ledger.map_size_mib:{service.tail()}"
            )
        self.outcome.faults["map-full"] += 1
        self.log(f"map full ({pieces} ballast records): exit {code}: {said}")
        during = self.ledger()
        self.kept(before, during, "the map-full run")
        big = self.workdir / "map-larger.toml"
        big.write_text("[ledger]\nmap_size_mib = 64\n")
        venue = _Books.read(self.data)
        self.run_to_the_end(days, resume=venue.last_trade, config=("--config", str(big)))
        self.kept(during, self.ledger(), "the start with a larger map")
        self.final_checks(_Books.read(self.data), days)

    def kept(self, before: LedgerState, after: LedgerState, what: str) -> None:
        intents = {i.ref: i for i in after.intents}
        fills = {f.exec_id: f for f in after.fills}
        lost = [i.ref for i in before.intents if intents.get(i.ref) != i]
        lost += [f.exec_id for f in before.fills if fills.get(f.exec_id) != f]
        self.tally.check(not lost, f"{what} lost or changed committed records: {lost}")
        self.log(
            f"{what}: all {len(before.intents)} intents and {len(before.fills)} fills kept; "
            f"{len(after.intents) - len(before.intents)} intents and "
            f"{len(after.fills) - len(before.fills)} fills committed since"
        )


def _expect_resume(service: _Service, venue_at: datetime | None) -> None:
    # A start on a directory whose venue has traded says where it resumes: where it was.
    if venue_at is None:
        return
    line = service.wait_for(service.err, "actorctl: resuming", timeout=10)
    expected = f"the venue has seen trades up to {_when(venue_at)}"
    if expected not in line:
        raise _Broken(f"{service.name} did not resume where the venue was ({expected}): {line}")


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.isoformat()


# -- the venue's books and the ledger -----------------------------------------------------------


@attrs.frozen
class _Books:
    """The venue's books as its journal has them, and every orderRef it was sent."""

    engine: Engine
    placed: Mapping[str, int]

    @property
    def last_trade(self) -> datetime | None:
        return self.engine.last_trade_at

    @classmethod
    def read(cls, data: Path) -> _Books:
        path = data / "venue.journal"
        if not path.exists():
            return cls(Engine(), {})
        raw = path.read_bytes()
        placed: Counter[str] = Counter()
        # Up to the last newline: a kill mid-write leaves a torn line that never took effect.
        for line in raw[: raw.rfind(b"\n") + 1].splitlines():
            entry = msgspec.json.decode(line)
            if entry[0] == "place":
                placed[entry[1]["ref"]] += 1
        engine = open_engine(path)
        if isinstance(engine.recorder, Journal):
            engine.recorder.close()
        engine.recorder = None
        return cls(engine, placed)


async def _fill(path: Path, map_size: int, room: int) -> int:
    """Fill the ledger's map with ballast (snapshots of no actor) until a write no longer fits,
    then delete some of it to leave about ``room`` bytes; return how many records remain."""
    # No fsync: the ballast only has to be there for the next process, not after a power loss.
    store = ledger_store(path, durability=Durability.NOSYNC, map_size=map_size)
    names: list[tuple[str, int]] = []
    with store:
        size = map_size // 2
        while size >= 64:
            name = f"chaos.ballast.{len(names)}"
            try:
                await store.write(
                    functools.partial(ledger_.save_snapshot, actor=name, data=bytes(size))
                )
            except StoreFull:
                size //= 2
            else:
                names.append((name, size))
        freed = 0
        # The largest pieces first: a small record shares its page, deleting it frees none.
        for name, size in sorted(names, key=lambda item: -item[1]):
            if freed + size > room:
                continue
            await store.write(functools.partial(_drop, key=name.encode()))
            freed += size
            names.remove((name, size))
    return len(names)


def _drop(txn: Txn, key: bytes) -> None:
    txn.delete("snapshots", key)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# -- bad files ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _BadFile:
    kind: str
    what: str
    path: Path
    option: str
    where: str
    """What the error must name: the file and, where there is one, the line."""


def _bad_files(folder: Path, rng: random.Random) -> list[_BadFile]:
    folder.mkdir(parents=True, exist_ok=True)
    faults: list[_BadFile] = []

    def bad(kind: str, what: str, name: str, data: bytes, option: str, where: str) -> None:
        path = folder / name
        path.write_bytes(data)
        faults.append(
            _BadFile(kind=kind, what=what, path=path, option=option, where=where.format(path))
        )

    config = (CONFIG / "actortrade.toml").read_bytes()
    # Cut inside the lot map's path string: an unterminated string, whatever comes after.
    cut = config.index(b'lots = "lots/') + len(b'lots = "lots/') + rng.randrange(1, 8)
    line = config[:cut].count(b"\n") + 1
    bad(
        "truncated-config",
        f"cut at byte {cut}",
        "cut.toml",
        config[:cut],
        "--config",
        f"{{}}: invalid TOML at line {line}",
    )
    bad(
        "corrupt-config",
        "NUL bytes",
        "nul.toml",
        bytes(4096),
        "--config",
        "{}: invalid TOML at line 1",
    )
    garbage = b"\xff" + rng.randbytes(2047)
    bad(
        "corrupt-config",
        "binary garbage",
        "garbage.toml",
        garbage,
        "--config",
        "{}: not UTF-8 text",
    )
    # tomllib parses nested arrays recursively: this was a RecursionError traceback.
    bad(
        "corrupt-config",
        "100k nested arrays",
        "deep.toml",
        b"a = " + b"[" * 100_000,
        "--config",
        "{}: invalid TOML: too deeply nested",
    )

    lots = (CONFIG / "lots" / "tqqq.csv").read_bytes()
    rows = lots.splitlines(keepends=True)
    level = rng.randrange(1, len(rows) - 1)
    cut_lots = b"".join(rows[: level + 1]) + f"{level},".encode()
    bad(
        "truncated-lot-map",
        f"cut in level {level}'s row",
        "cut.csv",
        cut_lots,
        "--lots",
        f"{{}}:{level + 2}:",
    )
    bad("corrupt-lot-map", "NUL bytes", "nul.csv", bytes(4096), "--lots", "{}:1:")
    bad(
        "corrupt-lot-map",
        "binary garbage",
        "garbage.csv",
        b"\xff" + rng.randbytes(2047),
        "--lots",
        "{}:1:",
    )
    # Text garbage in a row: a stray character where a count belongs ("²" is a digit to
    # str.isdigit(), not to int()).
    stray = rng.choice(["²", "\x00", "\ufffd", "٣"])
    row = rows[level].decode().rstrip("\r\n")
    spoiled = b"".join(rows[:level]) + f"{row}{stray}\n".encode() + b"".join(rows[level + 1 :])
    bad(
        "corrupt-lot-map",
        f"{stray!r} in level {level - 1}'s row",
        "stray.csv",
        spoiled,
        "--lots",
        f"{{}}:{level + 1}:",
    )
    # int() refuses 4,300 digits and more: this was a ValueError traceback.
    huge = b"".join(rows[: level + 1]) + f"{level},".encode() + b"9" * 5000 + b"\n"
    bad(
        "corrupt-lot-map",
        f"a 5,000-digit count in level {level}'s row",
        "huge.csv",
        huge,
        "--lots",
        f"{{}}:{level + 2}:",
    )

    header = b"Datetime,Symbol,Open,High,Low,Close,Volume\n"
    bad(
        "corrupt-bar-file",
        "binary garbage",
        "garbage-bars.csv",
        b"\xff" + rng.randbytes(2047),
        "--replay",
        "{}:1:",
    )
    # Interleaved symbols: the venue's clock would have run back from 14:05 to 14:00.
    bar = "2025-05-01 14:0{},{},50.00,50.10,49.90,50.05,1000\n"
    interleaved = (
        bar.format("5:00", SYMBOL) + bar.format("0:00", "SPY") + bar.format("0:00", SYMBOL)
    )
    bad(
        "corrupt-bar-file",
        "symbols interleaved out of time order",
        "interleaved.csv",
        header + interleaved.encode(),
        "--replay",
        "{}:3: bars out of order",
    )
    return faults


# -- one actorctl subprocess --------------------------------------------------------------------


class _Service:
    """``actorctl`` as a subprocess; threads read its output into lists and ``logs``."""

    def __init__(self, name: str, args: list[str], *, socket: Path, logs: Path) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = logs / f"{name}.stderr"
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._open = 2
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACTORTRADE_SOCKET": str(socket)}
        self.process = subprocess.Popen(
            [ACTORCTL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
        )
        stdout, stderr = self.process.stdout, self.process.stderr
        if stdout is None or stderr is None:
            raise RuntimeError(f"{name}: no pipes to read its output from")
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines, logs / f"{name}.{tag}"))
            for stream, lines, tag in (
                (stdout, self.out, "stdout"),
                (stderr, self.err, "stderr"),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str], path: Path) -> None:
        with path.open("w") as copy:
            for line in stream:
                copy.write(line)
                with self._changed:
                    lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def __enter__(self) -> _Service:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for reader in self._readers:
            reader.join()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def wait_for(self, lines: list[str], text: str, *, timeout: float) -> str:
        """The first line of ``lines`` (``out`` or ``err``) with ``text``, once printed."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if self._open == 0 or left <= 0:
                    break
                self._changed.wait(left)
        code = self.process.poll()
        why = f"exited with {code}" if code is not None else f"still running after {timeout} s"
        raise _Broken(f"{self.name} {why} without printing {text!r}:{self.tail()}")

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=30)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise _Broken(
                f"{self.name} did not stop within 30 s of SIGTERM:{self.tail()}"
            ) from None

    def finish(self, *, timeout: float, unless: tuple[list[str], str] | None = None) -> int | None:
        """Its exit status once it exits by itself; None if it is still running after
        ``timeout`` s, or prints ``unless`` (lines, text) first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._open and time.monotonic() < deadline:
                if unless is not None and any(unless[1] in line for line in unless[0]):
                    return None
                self._changed.wait(deadline - time.monotonic())
        try:
            return self.process.wait(timeout=max(0.0, deadline - time.monotonic()) + 5)
        except subprocess.TimeoutExpired:
            return None

    def said(self) -> str:
        """Its last ``actorctl:`` line on stderr: what it told the operator last."""
        told = [line.strip() for line in self.err if line.startswith("actorctl: ")]
        return told[-1] if told else ""

    def tail(self, lines: int = 12) -> str:
        shown = [line.rstrip("\n") for line in self.err if "IB notice" not in line][-lines:]
        return "".join(f"\n    {line}" for line in shown) + f"\n  (whole log: {self.log})"
