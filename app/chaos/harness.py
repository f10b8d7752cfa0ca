"""The deterministic simulation: the whole trading tree (lot-keeper on a real LMDB environment,
broker, symbol actor, reconciler, replay) on the in-process venue, run by trio on a
``MockClock(autojump_threshold=0)`` with the scheduler seeded, under a seeded scenario
(``app.chaos.plan``): the same seed replays exactly the same run, fault for fault.

Time is the market's: the replay is paced on the virtual clock (a night between two sessions is
a pause of ``MAX_PAUSE`` seconds while the venue's clock jumps to the next session), so the
reconciler's period, the level-0 fill timeout, restart backoffs and restart intensity all act as
they would. Waiting costs nothing: trio jumps the clock whenever every task is blocked.

After every replay step the safety invariants are checked; at settle points (every few dozen
steps, and at the end) the harness runs a reconciliation and checks the agreement invariants
(``app.chaos.invariants``). The store commits inline, on the event loop's thread, since a writer
thread's real time would race the virtual clock.

``run(seed)`` returns an ``Outcome`` or raises ``ChaosFailure`` with a one-line command that
reproduces the failure.
"""

from __future__ import annotations

import hashlib
import logging
import random
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import trio
import trio.testing

from actors.brokers.sim import SimPort
from actors.domain import BrokerEvent, OrderCancelled, route
from actors.domain.bars import bar_trades
from actors.domain.sessions import NEW_YORK
from actors.risk_rules import RiskLimits
from actors.strategies.protocol import StrategyKind
from actors.strategies.registry import strategy_kind
from app.compose import SimTrading, sim_trading
from config.lotmap import LotMap, load_lot_map
from runtime import ActorCell
from sim.engine import Engine, Input, Place
from supervisors import RestartIntensityExceeded, Supervisor

from . import checks, faults, invariants, option_invariants
from .faults import Arms, ChaosPort, ChaosStore
from .outcome import TOLD, leaves
from .outcome import ChaosFailure as ChaosFailure
from .outcome import Outcome as Outcome
from .outcome import risk_limits as risk_limits
from .plan import EXIT, Fault, Kind, Scenario, drawn_set, scenario

SYMBOL = "TQQQ"
LOT_MAP = Path(__file__).resolve().parents[2] / "config" / "lots" / "tqqq.csv"
MAX_PAUSE = 300.0
"""The longest virtual wait between two trades (nights and holidays are clock jumps)."""
TIMER_INTERVAL = 5.0
"""The symbol actor's timer (1 s in production): it drives the 120 s level-0 fill timeout and
the retries, which a 5 s tick still exercises at a fifth of the simulation's cost."""


class Harness:
    """Runs one scenario (see the module doc)."""

    def __init__(
        self,
        plan: Scenario,
        workdir: Path,
        limits: RiskLimits | None = None,
        bar_kind: StrategyKind | None = None,
        options_kind: StrategyKind | None = None,
    ) -> None:
        self.plan = plan
        self.workdir = workdir
        self.outcome = Outcome(seed=plan.seed)
        self.tally = invariants.Tally()
        self.arms = Arms()
        self.placed: Counter[str] = Counter()
        self.digest = hashlib.sha256()
        self.engine = Engine(recorder=self._record)
        self.limits = limits if limits is not None else risk_limits(plan.seed)
        bar, options = plan.bar, plan.options
        self.strategies: tuple[str, ...] = (
            *(("grid",) if plan.strategies.grid else ()),
            *((bar.name,) if bar is not None else ()),
            *((options.name,) if options is not None else ()),
        )
        """What trades the symbol, its owner (the first) first."""
        if bar is not None and bar_kind is None:
            bar_kind = strategy_kind(bar.name, SYMBOL, bar.parameters())
        if options is not None and options_kind is None:
            options_kind = strategy_kind(options.name, SYMBOL, options.parameters())
        self.kinds: dict[str, StrategyKind] = {}
        """The bar and options strategies' kinds by route (``bar_kind``, ``options_kind`` if
        given: a test's)."""
        if bar is not None and bar_kind is not None:
            self.kinds[route(bar.name, SYMBOL)] = bar_kind
        if options is not None and options_kind is not None:
            self.kinds[route(options.name, SYMBOL)] = options_kind
        self.option_limits: dict[str, int] = (
            {} if options is None else {options.name: options.max_contracts}
        )
        """The options strategies' ``max_contracts``, by name."""
        self.watch = option_invariants.OptionWatch(
            SYMBOL, options.name if options is not None else None
        )
        """The options strategy's brackets, as the venue sees them."""
        self.risk = invariants.RiskWatch(self.limits, SYMBOL, self.strategies)
        self.inputs: list[Input] = []
        """The current venue's inputs, in order: what an amnesia cuts short."""
        self.forgotten: set[invariants.ExecutionKey] = set()
        """Executions of the venue's earlier lives (before an amnesia), whatever became of
        them: the invariants' history once the venue has forgotten some."""
        self.amnesia: int | None = None
        """Inputs the venue loses when the process it crashed with comes back."""
        self.amnesiac = False
        self.lots: dict[str, LotMap] = (
            {SYMBOL: load_lot_map(LOT_MAP)} if plan.strategies.grid else {}
        )
        self.pending = list(plan.faults)
        self.recorded: list[str] = []
        """The execIds in the ledger at the end (for the digest)."""
        self.day = plan.bars[0].start.astimezone(NEW_YORK).date()
        # Set per service start:
        self.trading: SimTrading | None = None
        self.root: Supervisor | None = None
        self.store: ChaosStore | None = None
        self.scope: anyio.CancelScope | None = None
        self.task_group: anyio.abc.TaskGroup | None = None
        self.crashing = False
        self.storming = False
        self.outage = 0
        """Bars the venue trades on alone before the next service starts (``OUTAGE``)."""
        self.violation: invariants.Violation | None = None
        self.quiet_since = 0
        """The step of the last fault injected or fired: the options' protection is checked
        between steps only once a settle point has passed after it."""
        self.settled_at = -1
        """The step of the last settle point that completed."""
        self.fired = 0
        """The armed faults fired so far (a change is a fault)."""

    def _record(self, entry: Input) -> None:
        if isinstance(entry, Place):
            self.placed[entry.order.ref] += 1
        self.risk(self.engine, entry)
        self.inputs.append(entry)
        self.digest.update(msgspec.json.encode(entry))

    def _forget(self, lost: int) -> None:
        """The venue comes back from its inputs but the last ``lost`` (``VENUE_AMNESIA``)."""
        self.forgotten |= invariants.keys(self.engine.executions)
        kept = self.inputs[: max(len(self.inputs) - lost, 1)]
        engine = Engine()  # no recorder while it replays: those inputs were counted once
        for entry in kept:
            engine.apply(entry)
        engine.recorder = self._record
        self.engine, self.inputs = engine, list(kept)
        self.amnesiac = True
        self.digest.update(f"amnesia {lost} -> {len(kept)}".encode())

    # -- the run ------------------------------------------------------------------------------

    async def main(self) -> Outcome:
        while True:
            self.outcome.processes += 1
            finished = await self._serve()
            if finished:
                break
            if self.amnesia is not None:
                self._forget(self.amnesia)
                self.amnesia = None
            if self.outage:
                self._trade_alone(self.outage)
                self.outage = 0
        self.digest.update(msgspec.json.encode(self.recorded))
        self.outcome.digest = self.digest.hexdigest()[:16]
        self.outcome.checks = self.tally.checks
        self.outcome.fired = self.arms.fired
        self.outcome.executions = len(self.engine.executions)
        self.outcome.orders = len(self.placed)
        self.outcome.strategies = str(self.plan.strategies)
        for ref in self.placed:
            self.outcome.by_strategy[f"orders:{invariants.strategy_of(ref)}"] += 1
        for execution in self.engine.executions:
            if not execution.settles:  # (an expiry's legs: no order of anyone's)
                self.outcome.by_strategy[f"executions:{invariants.strategy_of(execution.ref)}"] += 1
        self.outcome.options = self.watch.brackets(self.engine)
        return self.outcome

    def _trade_alone(self, bars: int) -> None:
        """The venue trades on for ``bars`` bars with no service of ours running (``OUTAGE``):
        the next ones of the replay, as it would have traded them (the next service's replay
        resumes after them), with the nightly restart between two sessions."""
        port = SimPort(self.engine, self.plan.bars[0].start)
        port.link.close()
        seen = self.engine.last_trade_at
        ahead = [b for b in self.plan.bars if seen is None or b.start > seen][:bars]
        for bar in ahead:
            day = bar.start.astimezone(NEW_YORK).date()
            if day != self.day:
                self.day = day
                self.engine.restart("nightly restart")
                self.outcome.faults["venue-restart:nightly"] += 1
            for trade in bar_trades(bar):
                port.trade(trade)
                self.outcome.steps += 1
        self.digest.update(f"outage {len(ahead)}".encode())

    async def _serve(self) -> bool:
        """One service, from start to the end of the replay (True), a crash or a stop."""
        plan = self.plan
        self.crashing = self.storming = False
        self.store = ChaosStore(self.workdir / "ledger", self.arms)
        port = ChaosPort(self.engine, plan, self.arms)
        trading = sim_trading(
            data_dir=self.workdir / "ledger",
            bars=plan.bars,
            lots=self.lots,
            kinds=self.kinds,
            engine=self.engine,
            store=self.store,
            port=port,
            speed=1.0,
            lockstep=True,
            max_pause=MAX_PAUSE,
            on_step=self._on_step,
            reconcile_interval=plan.reconcile_interval,
            timer_interval=TIMER_INTERVAL,
            risk=self.limits,
        )
        for cell in trading.cells.values():
            faults.wrap(cell, self.arms, self._die)
        # Before the link: it may lose the cancel of an options exit (``DISCONNECT_MID_FILL``
        # aimed at one).
        self.engine.listeners.insert(0, self._exit_cancel)
        root = Supervisor(
            "root", trading.spec, rng=random.Random(plan.seed * 1009 + self.outcome.processes)
        )
        self.trading, self.root = trading, root
        finished = False
        try:
            async with anyio.create_task_group() as tg:
                self.scope, self.task_group = tg.cancel_scope, tg
                await tg.start(root.run)
                await trading.finished.wait()
                await checks.final(self, trading)
                finished = True
                root.stop()
        except* RestartIntensityExceeded as group:
            self._stopped(group, trading)
        finally:
            for alert in trading.alerts:
                if alert.kind in TOLD:
                    self.arms.fired[f"told:{alert.kind}"] += 1
            port.link.close()
            if self._exit_cancel in self.engine.listeners:
                self.engine.listeners.remove(self._exit_cancel)
            if self.store.is_open:
                self.store.close()  # what the kernel does for a killed process
        if self.violation is not None:
            raise self.violation
        if not finished and not self.crashing and not self.storming:
            raise invariants.Violation("the service stopped without a fault that explains it")
        return finished

    def _exit_cancel(self, event: BrokerEvent) -> None:
        # The venue is about to tell of an options exit's cancel: lost with the connection
        # when armed (the link loses its next event and drops).
        if not self.arms.exit_cancel or not isinstance(event, OrderCancelled):
            return
        if not self.watch.is_exit(event.ref):
            return
        port = self.trading.port if self.trading is not None else None
        if not isinstance(port, SimPort) or not port.link.connected:
            return
        self.arms.exit_cancel = False
        why = "oca" if event.reason.startswith("OCA group") else "other"
        self.arms.fired[f"disconnect-mid-fill:exit-cancel:{why}"] += 1
        port.link.disconnect_after(1)

    def _stopped(self, group: BaseExceptionGroup[RestartIntensityExceeded], trading: Any) -> None:
        message = "; ".join(str(error) for error in leaves(group))
        checks.safety(self)  # a broken invariant explains a crash loop better than the loop does
        if not self.storming:
            raise invariants.Violation(f"restart intensity exceeded without a storm: {message}")
        if "gave up: more than" not in message:
            raise invariants.Violation(f"the service stopped with an unclear error: {message}")
        running = [c.name for c in trading.cells.values() if checks.running(c)]
        self.tally.check(not running, f"the root gave up but actors still run: {running}")
        self.outcome.stops.append(message)

    # -- steps and faults ---------------------------------------------------------------------

    async def _on_step(self) -> None:
        # Runs in the replay actor: a broken invariant must end the run, not crash the actor
        # (its supervisor would restart it and carry on).
        try:
            await self._step()
        except invariants.Violation as exc:
            self.violation = exc
            assert self.scope is not None
            self.scope.cancel()
            await anyio.lowlevel.checkpoint()

    async def _step(self) -> None:
        trading = self.trading
        assert trading is not None
        self.outcome.steps += 1
        step = self.outcome.steps
        fired = sum(self.arms.fired.values())
        if fired != self.fired:
            self.fired, self.quiet_since = fired, step
        checks.safety(self)
        checks.protected(self, trading)
        port = trading.port
        assert isinstance(port, SimPort)
        if self.arms.release_at is not None and step >= self.arms.release_at:
            self.arms.release_at = None
            port.link.release()
        day = port.now.astimezone(NEW_YORK).date()
        if day != self.day:
            # The venue's nightly restart, between two sessions.
            self.day = day
            self.quiet_since = step
            self.engine.restart("nightly restart")
            self.outcome.faults["venue-restart:nightly"] += 1
        while self.pending and self.pending[0].step <= step:
            self.quiet_since = step
            await self._inject(self.pending.pop(0))
        if self.arms.exit_operator is not None:
            exits = self.watch.working_exits(self.engine)
            if exits:
                ref = exits[self.arms.exit_operator % len(exits)]
                self.arms.exit_operator = None
                self.arms.fired["operator-cancel:option-exit"] += 1
                self.quiet_since = step
                self.engine.cancel(ref, "cancelled in TWS")
        if step % self.plan.settle_every == 0 and self.arms.release_at is None:
            # (Not while a delay holds the venue's notifications back: the tree cannot settle
            # before they are delivered, a rejection among them, say.)
            await checks.settle(self, trading, strict=False)

    async def _inject(self, fault: Fault) -> None:
        trading, root = self.trading, self.root
        assert trading is not None
        assert root is not None
        port = trading.port
        assert isinstance(port, SimPort)
        link = port.link
        aimed = fault.target == EXIT
        self.outcome.faults[f"{fault.kind}:{fault.target}" if aimed else str(fault.kind)] += 1
        match fault.kind:
            case Kind.KILL:
                self._kill(root, fault.target)
            case Kind.KILL_AT_MESSAGE:
                self.arms.messages[faults.cell_name(fault.target)] = (
                    fault.n,
                    fault.flavour,
                    fault.message,
                )
            case Kind.STORE_ABORT | Kind.STORE_AFTER_COMMIT:
                self.arms.writes = (fault.n, fault.kind)
            case Kind.SUBMIT_CRASH:
                self.arms.places = fault.n
            case Kind.DISCONNECT:
                link.disconnect()
            case Kind.DISCONNECT_MID_FILL if aimed:
                self.arms.exit_cancel = True
            case Kind.DISCONNECT_MID_FILL:
                link.disconnect_after(fault.n)
            case Kind.KILL_AFTER_COMMIT:
                self.arms.after_commit = (fault.n, fault.target)
            case Kind.DISCONNECT_MID_BRACKET:
                self.arms.brackets = fault.n
            case Kind.VENUE_RESTART:
                self.engine.restart()
            case Kind.DUPLICATE_EVENT:
                link.duplicate_next()
            case Kind.REORDER_EVENTS:
                link.reorder_next()
            case Kind.DUPLICATE_FILL:
                self.engine.duplicate_next_fill()
            case Kind.DELAY:
                link.hold()
                self.arms.release_at = self.outcome.steps + fault.n
            case Kind.REJECT:
                self.engine.reject_next()
            case Kind.OPERATOR_CANCEL if aimed:
                self.arms.exit_operator = fault.n
            case Kind.OPERATOR_CANCEL:
                working = sorted(
                    o.ref
                    for o in self.engine.open_orders()
                    if invariants.ours(o.ref, SYMBOL, self.strategies)
                )
                if working:
                    self.engine.cancel(working[fault.n % len(working)], "cancelled in TWS")
            case Kind.CRASH | Kind.VENUE_AMNESIA | Kind.OUTAGE:
                if fault.kind is Kind.VENUE_AMNESIA:
                    self.amnesia = fault.n
                if fault.kind is Kind.OUTAGE:
                    self.outage = fault.n
                self.crashing = True
                assert self.scope is not None
                self.scope.cancel()
                await anyio.lowlevel.checkpoint()
            case Kind.STORM:
                assert self.task_group is not None
                self.storming = True
                self.task_group.start_soon(self._storm, root)

    def _die(self, target: str) -> None:
        assert self.root is not None
        self._kill(self.root, target)

    def _kill(self, root: Supervisor, target: str) -> None:
        supervisor, _, name = target.rpartition("/")
        try:
            parent = root.child(supervisor) if supervisor else root
            assert isinstance(parent, Supervisor)
            parent.kill(name)
        except KeyError:
            pass  # restarting right now: nothing to kill

    async def _storm(self, root: Supervisor) -> None:
        """Kill the broker as soon as it is back, until the root gives up."""
        broker = root.child("broker")
        assert isinstance(broker, ActorCell)
        for _ in range(100):
            while not checks.running(broker):  # noqa: ASYNC110 - polls a state no event signals
                await anyio.sleep(0.01)
            root.kill("broker")
            await anyio.sleep(0.01)
        raise invariants.Violation("100 broker kills and the root never gave up")


def deterministic_scheduling(seed: int) -> None:
    """Make trio's scheduler a function of ``seed``: trio shuffles each batch of runnable tasks
    with its module's ``random.Random``; with deterministic scheduling on (what its Hypothesis
    plugin does) the batch is sorted by task creation order first, and the shuffle is seeded."""
    import trio._core._run as trio_run

    trio_run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    trio_run._r.seed(seed)


def run(
    seed: int,
    *,
    workdir: Path | None = None,
    plan: Scenario | None = None,
    limits: RiskLimits | None = None,
    bar_kind: StrategyKind | None = None,
    options_kind: StrategyKind | None = None,
) -> Outcome:
    """Run the scenario of ``seed`` (or ``plan``) under ``limits`` (``risk_limits(seed)`` by
    default); raise ``ChaosFailure`` if it fails. ``bar_kind`` (``options_kind``) replaces the
    kind the plan's bar (options) strategy is made of (it must have the same name and symbol:
    a test's planted bug)."""
    plan = plan if plan is not None else scenario(seed)
    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-")) if own else workdir
    assert folder is not None
    harness = Harness(plan, folder, limits, bar_kind, options_kind)
    forced = None if plan.strategies is drawn_set(seed) else str(plan.strategies)
    deterministic_scheduling(seed)
    # The tree logs every crash the plan causes; the outcome and a failure say what matters.
    logging.disable(logging.CRITICAL)
    try:
        return trio.run(harness.main, clock=trio.testing.MockClock(autojump_threshold=0))
    except invariants.Violation as exc:
        raise ChaosFailure(seed, f"after step {harness.outcome.steps}: {exc}", forced) from exc
    except ExceptionGroup as group:
        # A broken invariant found by the final settle comes out of the tree's task group.
        found = [e for e in leaves(group) if isinstance(e, invariants.Violation)]
        if not found:
            raise ChaosFailure(
                seed,
                f"after step {harness.outcome.steps}: {type(group).__name__}: {group}",
                forced,
            ) from group
        raise ChaosFailure(
            seed, f"after step {harness.outcome.steps}: {found[0]}", forced
        ) from group
    except Exception as exc:
        raise ChaosFailure(
            seed, f"after step {harness.outcome.steps}: {type(exc).__name__}: {exc}", forced
        ) from exc
    finally:
        logging.disable(logging.NOTSET)
        if own:
            shutil.rmtree(folder, ignore_errors=True)
