"""Process recovery: ``actorctl start`` SIGKILLed with 1,000 open lots, and how long its restart
takes to be reconciled with the venue and trading again (SPEC 13: <= 2 s).

**The state** is made through the production path, once per run: ``actorctl start`` on the
embedded venue (ib_insync over loopback to ``sim/tws``, the ledger in LMDB, the venue's books
journalled in the data directory) with a lot map of ``--lots`` + 100 levels of 1 share, a grid
step of 0.1 % and a replay whose every trade is the next level's trigger, at ``--speed 0``
(lockstep) to the end of the fall: every level's conditional buy fills in turn and gets its +1 %
sell, which never fills, leaving exactly ``--lots`` open lots and 3 conditional buys. It is
checked like the chaos campaign checks its end (``app.chaos.invariants.agreement`` between the
ledger and the venue's books), then copied for every trial.

**A trial** starts the service on a copy with a replay that goes on flat after the fall (at
``TRIAL_SPEED``: nothing fills, the symbol actor only handles ticks), waits until it has
reconciled and handles ticks, stops it, and times its restart from ``exec`` to the line

    reconciled with the venue: TQQQ 1000 open lots, 1000 sells and 3 buys working, in
    agreement; trading          (one line)

that ``actorctl start`` prints once the whole tree is up: every symbol actor has reconciled the
ledger with the venue in its ``on_start`` and the market data flows. The restart must find every
lot with its sell and nothing to repair (else it would be measuring healing), and its control
socket must then show the lots and ticks handled; a trial that does not is an error.

    sigkill    the first run is SIGKILLed while it trades
    graceful   the first run is stopped with SIGTERM (exit 0): the baseline
    cold       no first run: a start on an empty data directory (no lots to reconcile)

**Phases** of a restart, from the arrival of its output lines (stderr is unbuffered):
exec -> ``actorctl: starting`` (interpreter, imports, config, lot map, replay CSV, the ledger's
LMDB opened and the venue's journal replayed: everything before the event loop) -> the venue's
TWS API server listening (``... TWS API server listens on``) -> connected (ib_insync's handshake
and start-up requests, then the IB adapter's reading of the books: every working and completed
order and the executions)
-> reconciled and trading. Beside them, measured in this process on the
same copy: a bare interpreter importing the start path's modules, the venue's journal replay
(``sim.journal.open_engine``: the simulator's cost, a real broker keeps its own books) and one
read of the ledger (what the symbol actor loads to reconcile).

    python bench/process_recovery.py [--rounds 5] [--lots 1000] [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
from cattrs import Converter
from common import Row, Target, interleave, render, spread

from actors.domain import round_to_tick
from actors.lot_keeper import ledger_store
from actors.reconcile import Diff
from app.chaos import invariants
from app.chaos.process import _Books, _Service
from app.control import ControlError, Lots, request
from sim.journal import Journal, open_engine

GROUP = "process recovery"
TARGET_MS = 2000.0
SYMBOL = "TQQQ"
STEP = Decimal("0.001")
"""The grid step: 1,000 levels from 500.00 end near 184, far above the 0.01 tick."""
TICK = Decimal("0.01")
OPEN_PRICE = Decimal("500.00")
FIRST_BAR = datetime(2024, 3, 5, 9, 0)
"""04:00 in New York on a Tuesday: the pre-market opens (the orders are outsideRth)."""
LAST_BAR = datetime(2024, 3, 6, 0, 59)
"""19:59 in New York: the after-hours session's last minute."""
TRIAL_SPEED = "300"
"""The trials' replay speed: a flat bar every 0.2 s, so the flat tail (about 5 hours after the
fall of 1,000 levels) lasts about a minute, longer than any trial."""
MARKERS = (
    ("built", "err", "actorctl: starting "),
    ("serving", "err", "TWS API server listens on"),
    ("connected", "err", "actortrade.broker.ib: connected to"),
    ("reconciled", "out", "reconciled with the venue: "),
)
PHASES = (
    ("exec to event loop", None, "built"),
    ("event loop to venue serving", "built", "serving"),
    ("broker connected", "serving", "connected"),
    ("reconciled and trading", "connected", "reconciled"),
)
START_PATH_MODULES = (
    "app.cli, config.load, config.lotmap, sim.replay, sim.journal, actors.lot_keeper, "
    "app.compose, actors.brokers.ib, sim.tws.server, app.control, "
    "runtime.metrics, runtime.telemetry, supervisors.service"
)
VARIANTS = ("sigkill", "graceful", "cold")
NAMES = {
    "sigkill": "SIGKILL to reconciled-and-trading",
    "graceful": "graceful stop, restart to reconciled-and-trading",
    "cold": "cold start to trading (empty data dir)",
}


class BenchError(RuntimeError):
    """Raised when a trial did not reach its end state: the restart did not reconcile to
    agreement with the lots it was given, or the service misbehaved."""


@attrs.frozen(kw_only=True)
class Scenario:
    """The files of a run: the lot map, the config naming it, the falling replay that builds
    the state and the same replay going on flat for the trials."""

    config: Path
    fall: Path
    full: Path
    levels: int


@attrs.define(kw_only=True)
class Restart:
    """One timed start: milliseconds from exec to each marker, and what it reconciled."""

    variant: str
    at_ms: dict[str, float]
    line: str
    open_lots: int
    working_sells: int
    in_agreement: bool
    ticks: int

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)


def write_scenario(folder: Path, lots: int) -> Scenario:
    folder.mkdir(parents=True, exist_ok=True)
    levels = lots + 100
    lot_map = folder / "lots.csv"
    lot_map.write_text("level,shares_to_buy\n" + "".join(f"{k},1\n" for k in range(levels)))
    config = folder / "config.toml"
    config.write_text(
        f'[[symbols]]\nsymbol = "{SYMBOL}"\nlots = "{lot_map}"\n[symbols.grid]\nstep = "{STEP}"\n'
    )
    # Level 0 buys at the first trade and fills at the second (OPEN_PRICE, the anchor); then
    # each trade is exactly the next level's trigger, two a bar, so that every conditional buy
    # fills on its own trade and the fall ends at level lots - 1: exactly ``lots`` open lots.
    prices = [OPEN_PRICE, OPEN_PRICE]
    while len(prices) < lots + 1:
        prices.append(round_to_tick(prices[-1] * (1 - STEP), TICK))
    if len(prices) % 2:
        prices.append(prices[-1])
    rows, at = [], FIRST_BAR
    for high, low in zip(prices[::2], prices[1::2], strict=True):
        rows.append(_bar(at, high, high, low, low))
        at += timedelta(minutes=1)
    price = prices[-1]
    header = "Datetime,Symbol,Open,High,Low,Close,Volume\n"
    fall = folder / "fall.csv"
    fall.write_text(header + "".join(rows))
    flat = []
    while at <= LAST_BAR:
        flat.append(_bar(at, price, price, price, price))
        at += timedelta(minutes=1)
    if len(flat) < 60:
        raise ValueError(f"{lots} lots leave {len(flat)} flat bars in the day: too many lots")
    full = folder / "full.csv"
    full.write_text(header + "".join(rows + flat))
    return Scenario(config=config, fall=fall, full=full, levels=levels)


def _bar(at: datetime, open_: Decimal, high: Decimal, low: Decimal, close: Decimal) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S},{SYMBOL},{open_},{high},{low},{close},1000\n"


class _Timed(_Service):
    """The chaos campaign's ``actorctl`` subprocess, with the arrival time of every line."""

    def __init__(self, name: str, args: list[str], *, socket: Path, logs: Path) -> None:
        self.arrived: dict[int, float] = {}
        self.exec_at = time.monotonic()
        super().__init__(name, args, socket=socket, logs=logs)

    def _read(self, stream: Any, lines: list[str], path: Path) -> None:
        super()._read(stream, _Stamping(lines, self.arrived), path)

    def at_ms(self, lines: list[str], text: str, *, timeout: float) -> float:
        line = self.wait_for(lines, text, timeout=timeout)
        index = next(i for i, seen in enumerate(lines) if seen is line)
        return (self.arrived[id(lines[index])] - self.exec_at) * 1e3


class _Stamping:
    # Stands for the reader's list: stamps each line as it is appended.
    def __init__(self, lines: list[str], arrived: dict[int, float]) -> None:
        self.lines = lines
        self.arrived = arrived

    def append(self, line: str) -> None:
        self.arrived[id(line)] = time.monotonic()
        self.lines.append(line)


class Bench:
    def __init__(self, workdir: Path, lots: int, log: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.lots = lots
        self.log = log
        self.scenario = write_scenario(workdir / "scenario", lots)
        self.logs = workdir / "logs"
        self.socket = Path(f"/tmp/actortrade-prbench-{os.getpid()}.sock")
        self.state = workdir / "state"
        self.built = 0
        self.trials = 0
        self.restarts: list[Restart] = []
        self.side: dict[str, list[float]] = {"imports": [], "journal": [], "ledger": []}

    def close(self) -> None:
        self.socket.unlink(missing_ok=True)

    def start(self, data: Path, replay: Path, speed: str) -> _Timed:
        self.trials += 1
        args = ["start", "--config", str(self.scenario.config), "--replay", str(replay)]
        args += ["--speed", speed, "--data-dir", str(data)]
        return _Timed(f"start-{self.trials}", args, socket=self.socket, logs=self.logs)

    # -- the state ------------------------------------------------------------------------------

    def build(self) -> None:
        began = time.monotonic()
        with self.start(self.state, self.scenario.fall, "0") as service:
            service.wait_for(service.out, "replay finished", timeout=120 + self.lots)
            if service.terminate() != 0:
                raise BenchError(f"the build run did not stop cleanly:{service.tail()}")
        venue = _Books.read(self.state)
        with ledger_store(self.state / "ledger", map_size=1 << 30) as store:
            ledger = invariants.read_ledger(store, SYMBOL)
        invariants.agreement(venue.engine, ledger, SYMBOL, invariants.Tally())
        self.built = sum(1 for lot in ledger.lots if lot.open_shares)
        if self.built != self.lots:
            raise BenchError(f"the build left {self.built} open lots, not {self.lots}")
        self.log(
            f"  state: {self.built} open lots, {len(venue.engine.executions)} executions, "
            f"{len(venue.placed)} orders in {time.monotonic() - began:.0f} s"
        )

    def copy(self) -> Path:
        data = self.workdir / f"trial-{self.trials}"
        shutil.rmtree(data, ignore_errors=True)
        shutil.copytree(self.state, data)
        return data

    # -- trials -----------------------------------------------------------------------------

    def trial(self, variant: str) -> Restart:
        if variant == "cold":
            data = self.workdir / f"trial-{self.trials}"
            restart = self.timed(variant, data, lots=0)
        else:
            data = self.copy()
            with self.start(data, self.scenario.full, TRIAL_SPEED) as first:
                first.wait_for(first.out, "reconciled with the venue: ", timeout=120)
                self.trading(first)
                code = first.kill() if variant == "sigkill" else first.terminate()
            expected = -signal.SIGKILL if variant == "sigkill" else 0
            if code != expected:
                raise BenchError(f"the first run exited with {code}, not {expected}")
            self.measure_side(data)
            restart = self.timed(variant, data, lots=self.built)
        shutil.rmtree(data, ignore_errors=True)
        self.restarts.append(restart)
        return restart

    def timed(self, variant: str, data: Path, *, lots: int) -> Restart:
        with self.start(data, self.scenario.full, TRIAL_SPEED) as service:
            at_ms = {
                name: service.at_ms(getattr(service, stream), text, timeout=120)
                for name, stream, text in MARKERS
            }
            line = service.wait_for(service.out, MARKERS[-1][2], timeout=1).strip()
            view = self.trading(service)
            if service.terminate() != 0:
                raise BenchError(f"{service.name} did not stop cleanly:{service.tail()}")
        restart = Restart(
            variant=variant,
            at_ms=at_ms,
            line=line,
            open_lots=len(view["lots"]),
            working_sells=view["live_sells"],
            in_agreement=f"{SYMBOL} {lots} open lots, {lots} sells" in line
            and "in agreement" in line
            and _clean(view.get("last_diff")),
            ticks=view["ticks_accepted"],
        )
        if variant != "cold" and not (restart.in_agreement and restart.open_lots == lots):
            raise BenchError(
                f"{variant}: the restart did not reconcile to agreement with the {lots} lots "
                f"it was given: {line!r}, {restart.open_lots} lots shown, last diff "
                f"{view.get('last_diff')}:{service.tail()}"
            )
        return restart

    def trading(self, service: _Timed) -> dict[str, Any]:
        """The symbol's view once it has handled a tick (over the control socket, which comes
        up just after the tree); a check, not a timing."""
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = request(self.socket, Lots(), timeout=30)
            except ControlError:
                reply = None
            if reply is not None:
                view: dict[str, Any] = reply.symbols[0]
                if view["ticks_accepted"] > 0:
                    return view
            if time.monotonic() > deadline or service.process.poll() is not None:
                raise BenchError(f"{service.name} handles no ticks:{service.tail()}")
            time.sleep(0.02)

    def measure_side(self, data: Path) -> None:
        began = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", f"import {START_PATH_MODULES}"], check=True, cwd=self.workdir
        )
        self.side["imports"].append((time.perf_counter() - began) * 1e3)
        began = time.perf_counter()
        engine = open_engine(data / "venue.journal")
        self.side["journal"].append((time.perf_counter() - began) * 1e3)
        if isinstance(engine.recorder, Journal):
            engine.recorder.close()
        with ledger_store(data / "ledger", map_size=1 << 30) as store:
            began = time.perf_counter()
            invariants.read_ledger(store, SYMBOL)
            self.side["ledger"].append((time.perf_counter() - began) * 1e3)


def _clean(diff: Any) -> bool:
    # The symbol actor's last reconciliation, as the control socket shows it.
    if not isinstance(diff, dict):
        return False
    found = Converter().structure(diff, Diff)
    return found.clean and found.broker_position == found.ledger_shares


def suite_rows(
    *, rounds: int, quick: bool, log: Callable[[str], None] = print, lots: int | None = None
) -> list[Row]:
    rows, _ = run(rounds=1 if quick else rounds, lots=lots or (50 if quick else 1000), log=log)
    return rows


PACKAGES = ("actors", "app", "config", "runtime", "sim", "supervisors")
"""Compiled before the trials (``compile_start_path``)."""


def compile_start_path() -> None:
    """Write the bytecode cache of our packages, as ``make install`` does and as a user's first
    start does on its own: a restart is timed on a machine that has started before, not one
    compiling every module (about 0.3 s; this sandbox sets PYTHONDONTWRITEBYTECODE, and a
    systemd unit's read-only source tree has the same effect)."""
    root = Path(__file__).resolve().parent.parent
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *PACKAGES], check=True, cwd=root
    )


def run(*, rounds: int, lots: int, log: Callable[[str], None]) -> tuple[list[Row], Bench]:
    compile_start_path()
    with tempfile.TemporaryDirectory(prefix="actortrade-prbench-") as scratch:
        bench = Bench(Path(scratch), lots, log)
        try:
            bench.build()
            results = interleave(
                {v: lambda v=v: bench.trial(v) for v in VARIANTS}, rounds, on_run=log
            )
        finally:
            bench.close()
    return rows_of(results, bench), bench


def rows_of(results: dict[str, list[Restart]], bench: Bench) -> list[Row]:
    def total(r: Restart) -> float:
        return r.at_ms["reconciled"]

    graceful = [total(r) for r in results["graceful"]]
    baseline = f"{NAMES['graceful']}, {bench.built:,} lots"
    rows = []
    for variant in VARIANTS:
        samples = [total(r) for r in results[variant]]
        lots = bench.built if variant != "cold" else 0
        ratios = {}
        if variant != "graceful":
            ratios[baseline] = statistics.median(
                s / g for s, g in zip(samples, graceful, strict=True)
            )
        rows.append(
            _row(
                f"{NAMES[variant]}, {lots:,} lots",
                samples,
                ratios=ratios,
                targets=[Target(on="p50", op="<=", limit=TARGET_MS)]
                if variant == "sigkill"
                else [],
                note="exec of the restart to the reconciled-and-trading line"
                if variant != "cold"
                else "exec to the reconciled-and-trading line, nothing to reconcile",
            )
        )
    for phase, since, until in PHASES:
        samples = [r.at_ms[until] - (r.at_ms[since] if since else 0.0) for r in results["sigkill"]]
        rows.append(_row(f"SIGKILL restart phase: {phase}", samples, note=_PHASE_NOTES[phase]))
    for key, name, note in (
        (
            "imports",
            "beside: interpreter + start-path imports",
            "python -c 'import ...', exec to exit",
        ),
        (
            "journal",
            "beside: sim venue journal replay",
            "open_engine on the trial's copy (sim only)",
        ),
        ("ledger", "beside: one ledger read", f"read_ledger, {bench.built:,} lots"),
    ):
        rows.append(_row(name, bench.side[key], note=note))
    return rows


_PHASE_NOTES = {
    "exec to event loop": "interpreter, imports, config, replay CSV, LMDB open, journal replay",
    "event loop to venue serving": "anyio loop up, the embedded TWS API server listening",
    "broker connected": "ib_insync connect, then the adapter's reading of the books",
    "reconciled and trading": "snapshot, ledger load, plan, grid restore, the rest of the tree",
}


def _row(
    name: str,
    samples: Iterable[float],
    *,
    ratios: dict[str, float] | None = None,
    targets: Iterable[Target] = (),
    note: str = "",
) -> Row:
    ordered = list(samples)
    figures = spread(ordered)
    return Row(
        group=GROUP,
        name=name,
        unit="ms",
        p50=figures["p50"],
        p99=figures["p99"],
        p999=figures["p999"],
        max=figures["max"],
        ratios=ratios or {},
        targets=tuple(targets),
        rounds=len(ordered),
        samples=len(ordered),
        note=note,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lots", type=int, default=None, help="open lots [1000; quick: 50]")
    parser.add_argument("--quick", action="store_true", help="50 lots, 1 round")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    lots = args.lots or (50 if args.quick else 1000)
    rows, bench = run(rounds=1 if args.quick else args.rounds, lots=lots, log=print)
    print(render(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "lots": bench.built,
            "rows": [row.to_json() for row in rows],
            "restarts": [r.to_json() for r in bench.restarts],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
