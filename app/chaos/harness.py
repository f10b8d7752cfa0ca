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
import inspect
import logging
import random
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import attrs
import msgspec
import trio
import trio.testing

from actors import ledger
from actors.broker import Poll
from actors.brokers.sim import SimPort
from actors.domain import BrokerEvent, PlaceOrder
from actors.domain.sessions import NEW_YORK
from actors.reconciler import Reconcile
from actors.risk_rules import MarketHours, RiskLimits
from actors.symbol import Describe
from app.compose import SimTrading, sim_trading
from config.lotmap import LotMap, load_lot_map
from runtime import ActorCell, LifecycleState
from runtime.store import Durability, Store, Txn
from sim.engine import Engine, Input, Place
from supervisors import RestartIntensityExceeded, Supervisor

from . import invariants
from .plan import Fault, Kind, Scenario, scenario

SYMBOL = "TQQQ"
LOT_MAP = Path(__file__).resolve().parents[2] / "config" / "lots" / "tqqq.csv"
MAX_PAUSE = 300.0
"""The longest virtual wait between two trades (nights and holidays are clock jumps)."""
SETTLE_ATTEMPTS = 8
SETTLE_WAIT = 65.0
"""Virtual seconds a settle point waits after reconciling: longer than the longest retry
backoff (``GridParams.retry_maximum``, 60 s)."""
TIMER_INTERVAL = 5.0
"""The symbol actor's timer (1 s in production): it drives the 120 s level-0 fill timeout and
the retries, which a 5 s tick still exercises at a fifth of the simulation's cost."""


def risk_limits(seed: int) -> RiskLimits:
    """The risk limits a scenario trades under (``invariants.RiskWatch`` checks them at the
    venue): none, or limits the grid runs into (a lot is about 100 shares of a $50 ETF)."""
    match seed % 5:
        case 1:
            return RiskLimits(max_open_orders=4)
        case 2:
            return RiskLimits(max_notional_per_symbol=Decimal(15_000))
        case 3:
            return RiskLimits(
                max_open_orders=6,
                max_gross_exposure=Decimal(25_000),
                market_hours=MarketHours.REGULAR,
            )
        case 4:
            return RiskLimits(equity=Decimal(100_000), max_daily_loss_pct=Decimal("0.2"))
    return RiskLimits()


class ChaosKill(Exception):
    """How the plan kills an actor from inside (the supervisor sees a crash)."""


class ChaosFailure(AssertionError):
    """A scenario broke an invariant or did not finish; ``repro`` is the command to rerun it."""

    def __init__(self, seed: int, message: str) -> None:
        self.seed = seed
        self.repro = f"python -m app.chaos --seed {seed}"
        super().__init__(f"chaos seed {seed}: {message}\n  reproduce: {self.repro}")


@attrs.define
class Outcome:
    """What one scenario did."""

    seed: int
    steps: int = 0
    faults: Counter[str] = attrs.Factory(Counter)
    """Faults injected, by kind (armed ones count here when armed)."""
    fired: Counter[str] = attrs.Factory(Counter)
    """Armed faults that went off (an actor killed at its message, a transaction aborted...)."""
    checks: int = 0
    settles: int = 0
    processes: int = 0
    """Service starts: 1 + crashes + storms."""
    stops: list[str] = attrs.Factory(list)
    """The errors the service stopped with (restart intensity exceeded)."""
    executions: int = 0
    orders: int = 0
    digest: str = ""
    """A hash of everything the venue was sent and did, and of the ledger's fills."""


@attrs.define
class Arms:
    """Faults armed to fire later: at an actor's n-th next message, the lot-keeper's n-th
    next write, the broker's n-th next order. They outlive restarts, like the plan."""

    messages: dict[str, tuple[int, str, str]] = attrs.Factory(dict)
    """Cell name -> (messages left, flavour, message type or "")."""
    writes: tuple[int, Kind] | None = None
    places: int | None = None
    release_at: int | None = None
    fired: Counter[str] = attrs.Factory(Counter)
    """The armed faults that went off, by kind."""

    def clear(self) -> None:
        self.messages.clear()
        self.writes = None
        self.places = None

    def message(self, cell: str, message: object) -> str | None:
        """Count a message to ``cell``; the flavour if this is the armed one."""
        armed = self.messages.get(cell)
        if armed is None:
            return None
        left, flavour, kind = armed
        if kind and type(message).__name__ != kind:
            return None
        if left > 1:
            self.messages[cell] = (left - 1, flavour, kind)
            return None
        del self.messages[cell]
        self.fired[f"kill-at-message:{cell}:{flavour}"] += 1
        return flavour

    def write(self) -> Kind | None:
        if self.writes is None:
            return None
        left, kind = self.writes
        self.writes = (left - 1, kind) if left > 1 else None
        if left > 1:
            return None
        self.fired[str(kind)] += 1
        return kind

    def place(self) -> bool:
        if self.places is None:
            return False
        self.places -= 1
        if self.places > 0:
            return False
        self.places = None
        self.fired[str(Kind.SUBMIT_CRASH)] += 1
        return True


class ChaosStore(Store):
    """The ledger's store, committing inline, where the lot-keeper dies mid-transaction."""

    def __init__(self, path: Path, arms: Arms) -> None:
        super().__init__(
            path,
            databases=ledger.DATABASES,
            schema_version=ledger.SCHEMA_VERSION,
            migrations=ledger.MIGRATIONS,
            durability=Durability.NOSYNC,
            map_size=64 << 20,
            inline=True,
        )
        self.arms = arms

    async def write(self, fn: Callable[[Txn], Any]) -> Any:
        fault = self.arms.write()
        if fault is Kind.STORE_ABORT:

            def doomed(txn: Txn) -> Any:
                fn(txn)
                raise ChaosKill("lot-keeper killed in the middle of a transaction")

            return await super().write(doomed)
        result = await super().write(fn)
        if fault is Kind.STORE_AFTER_COMMIT:
            raise ChaosKill("lot-keeper killed after its commit, before replying")
        return result


class ChaosPort(SimPort):
    """The in-process venue port, where the broker actor dies between submit and ack."""

    def __init__(self, engine: Engine, scenario: Scenario, arms: Arms) -> None:
        super().__init__(engine, scenario.bars[0].start)
        self.arms = arms

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        events = await super().place(order)
        if self.arms.place():
            raise ChaosKill(f"broker killed after {order.ref} reached the venue, before its ack")
        return events


class Harness:
    """Runs one scenario (see the module doc)."""

    def __init__(self, plan: Scenario, workdir: Path, limits: RiskLimits | None = None) -> None:
        self.plan = plan
        self.workdir = workdir
        self.outcome = Outcome(seed=plan.seed)
        self.tally = invariants.Tally()
        self.arms = Arms()
        self.placed: Counter[str] = Counter()
        self.digest = hashlib.sha256()
        self.engine = Engine(recorder=self._record)
        self.limits = limits if limits is not None else risk_limits(plan.seed)
        self.risk = invariants.RiskWatch(self.limits, SYMBOL)
        self.inputs: list[Input] = []
        """The current venue's inputs, in order: what an amnesia cuts short."""
        self.forgotten: set[invariants.ExecutionKey] = set()
        """Executions of the venue's earlier lives (before an amnesia), whatever became of
        them: the invariants' history once the venue has forgotten some."""
        self.amnesia: int | None = None
        """Inputs the venue loses when the process it crashed with comes back."""
        self.amnesiac = False
        self.lots: dict[str, LotMap] = {SYMBOL: load_lot_map(LOT_MAP)}
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
        self.violation: invariants.Violation | None = None

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
        self.digest.update(msgspec.json.encode(self.recorded))
        self.outcome.digest = self.digest.hexdigest()[:16]
        self.outcome.checks = self.tally.checks
        self.outcome.fired = self.arms.fired
        self.outcome.executions = len(self.engine.executions)
        self.outcome.orders = len(self.placed)
        return self.outcome

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
            self._wrap(cell)
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
                await self._final(trading, root)
                finished = True
                root.stop()
        except* RestartIntensityExceeded as group:
            self._stopped(group, trading)
        finally:
            for alert in trading.alerts:
                if alert.kind in _TOLD:
                    self.arms.fired[f"told:{alert.kind}"] += 1
            port.link.close()
            if self.store.is_open:
                self.store.close()  # what the kernel does for a killed process
        if self.violation is not None:
            raise self.violation
        if not finished and not self.crashing and not self.storming:
            raise invariants.Violation("the service stopped without a fault that explains it")
        return finished

    def _stopped(self, group: BaseExceptionGroup[RestartIntensityExceeded], trading: Any) -> None:
        message = "; ".join(str(error) for error in _leaves(group))
        self._safety()  # a broken invariant explains a crash loop better than the loop does
        if not self.storming:
            raise invariants.Violation(f"restart intensity exceeded without a storm: {message}")
        if "gave up: more than" not in message:
            raise invariants.Violation(f"the service stopped with an unclear error: {message}")
        running = [c.name for c in trading.cells.values() if _running(c)]
        self.tally.check(not running, f"the root gave up but actors still run: {running}")
        self.outcome.stops.append(message)

    async def _final(self, trading: SimTrading, root: Supervisor) -> None:
        """The replay has ended: every fault disarmed, the connection healed, one last
        settle, and every actor must be running."""
        self.arms.clear()
        self.arms.release_at = None
        port = trading.port
        assert isinstance(port, SimPort)
        port.link.release()
        await self._settle(trading, strict=True)
        assert self.store is not None
        self.recorded = sorted(f.exec_id for f in invariants.read_ledger(self.store, SYMBOL).fills)
        down = [f"{c.name} ({c.state.value})" for c in trading.cells.values() if not _running(c)]
        self.tally.check(not down, f"actors down at the end: {down}")

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
        self._safety()
        port = trading.port
        assert isinstance(port, SimPort)
        if self.arms.release_at is not None and step >= self.arms.release_at:
            self.arms.release_at = None
            port.link.release()
        day = port.now.astimezone(NEW_YORK).date()
        if day != self.day:
            # The venue's nightly restart, between two sessions.
            self.day = day
            self.engine.restart("nightly restart")
            self.outcome.faults["venue-restart:nightly"] += 1
        while self.pending and self.pending[0].step <= step:
            await self._inject(self.pending.pop(0))
        if step % self.plan.settle_every == 0:
            await self._settle(trading, strict=False)

    async def _inject(self, fault: Fault) -> None:
        trading, root = self.trading, self.root
        assert trading is not None
        assert root is not None
        port = trading.port
        assert isinstance(port, SimPort)
        link = port.link
        self.outcome.faults[str(fault.kind)] += 1
        match fault.kind:
            case Kind.KILL:
                self._kill(root, fault.target)
            case Kind.KILL_AT_MESSAGE:
                self.arms.messages[_cell_name(fault.target)] = (
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
            case Kind.DISCONNECT_MID_FILL:
                link.disconnect_after(fault.n)
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
            case Kind.OPERATOR_CANCEL:
                working = sorted(
                    o.ref for o in self.engine.open_orders() if o.ref.startswith("grid:")
                )
                if working:
                    self.engine.cancel(working[fault.n % len(working)], "cancelled in TWS")
            case Kind.CRASH | Kind.VENUE_AMNESIA:
                if fault.kind is Kind.VENUE_AMNESIA:
                    self.amnesia = fault.n
                self.crashing = True
                assert self.scope is not None
                self.scope.cancel()
                await anyio.lowlevel.checkpoint()
            case Kind.STORM:
                assert self.task_group is not None
                self.storming = True
                self.task_group.start_soon(self._storm, root)

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
            while not _running(broker):  # noqa: ASYNC110 - polls a state no event signals
                await anyio.sleep(0.01)
            root.kill("broker")
            await anyio.sleep(0.01)
        raise invariants.Violation("100 broker kills and the root never gave up")

    def _wrap(self, cell: ActorCell[Any]) -> None:
        """Make ``cell``'s actors die where the plan says (KILL_AT_MESSAGE)."""
        make = cell.factory
        arms, name = self.arms, cell.name

        def factory() -> Any:
            actor = make()
            handle = actor.handle
            if not inspect.iscoroutinefunction(handle):

                def plain(message: Any) -> Any:
                    flavour = arms.message(name, message)
                    if flavour == "before":
                        raise ChaosKill(f"{name} killed before handling {message!r}")
                    result = handle(message)
                    if flavour is not None:  # during or after: a plain handler has no await
                        raise ChaosKill(f"{name} killed after handling {message!r}")
                    return result

                actor.handle = plain  # type: ignore[method-assign]
                return actor

            async def chaotic(message: Any) -> Any:
                flavour = arms.message(name, message)
                if flavour == "before":
                    raise ChaosKill(f"{name} killed before handling {message!r}")
                if flavour == "during":
                    assert self.root is not None
                    self._kill(self.root, _target_of(name))  # lands at the first await
                result = await handle(message)
                if flavour == "after":
                    raise ChaosKill(f"{name} killed after handling {message!r}")
                return result

            actor.handle = chaotic  # type: ignore[method-assign]
            return actor

        cell.factory = factory

    # -- checks -------------------------------------------------------------------------------

    def _safety(self) -> None:
        store = self.store
        if store is None or not store.is_open:
            return
        invariants.safety(
            self.engine,
            invariants.read_ledger(store, SYMBOL),
            self.placed,
            SYMBOL,
            self.tally,
            forgotten=self.forgotten if self.amnesiac else None,
        )
        # A venue back from an older state has its clock set back too: the risk actor's
        # sessions run ahead of it, so the trip's timing is not compared then.
        now = None if self.amnesiac else self.engine.last_trade_at
        self.risk.check(self.tally, store.read(ledger.load_risk), now)

    async def _settle(self, trading: SimTrading, *, strict: bool) -> None:
        """Reconcile with the connection up, then check that everything agrees. Not strict:
        a fault that fires meanwhile abandons the attempt (the next settle point checks)."""
        broker = trading.cells["broker"].ref
        reconciler = trading.cells["reconciler"].ref
        symbol = trading.cells[SYMBOL].ref
        for _ in range(SETTLE_ATTEMPTS if strict else 1):
            try:
                await broker.request(Poll(), timeout=30)
                # After an amnesia the operator has looked at the execution conflicts it
                # caused: acknowledging them lets the symbol trade again (unless shares are
                # missing), so what comes after is checked too.
                await reconciler.request(Reconcile(acknowledge=self.amnesiac), timeout=120)
                # Retries of rejected orders run (their backoff is at most a minute); then the
                # repairs reach the venue, and its answers the symbol actor.
                await anyio.sleep(SETTLE_WAIT)
                await broker.request(Poll(), timeout=30)
                await symbol.request(Describe(), timeout=30)
            except Exception:
                if not strict:
                    return
                await anyio.sleep(5.0)  # let the tree restart what failed
                continue
            store = self.store
            assert store is not None
            strategy = trading.strategies.get(f"grid:{SYMBOL}")
            ledger = invariants.read_ledger(store, SYMBOL)
            forgotten = self.forgotten if self.amnesiac else None
            invariants.safety(
                self.engine, ledger, self.placed, SYMBOL, self.tally, forgotten=forgotten
            )
            invariants.agreement(
                self.engine, ledger, SYMBOL, self.tally, strategy=strategy, forgotten=forgotten
            )
            self.outcome.settles += 1
            return
        if strict:
            raise invariants.Violation(
                f"the tree did not settle in {SETTLE_ATTEMPTS} attempts at the end"
            )


_TOLD = frozenset(
    {
        "stale-order",
        "oversold",
        "sell-refused",
        "execution-conflict",
        "halted",
        "order-refused",
        "risk-tripped",
    }
)
"""Alerts of the safeguards a lost venue state (or a risk limit) calls on, counted in the
outcome."""


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for error in group.exceptions:
        leaves.extend(_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return leaves


def _running(cell: ActorCell[Any]) -> bool:
    return cell.state is LifecycleState.RUNNING


def _cell_name(target: str) -> str:
    return target.rpartition("/")[2]


def _target_of(cell: str) -> str:
    return f"symbols/{cell}" if cell.startswith("symbol.") else cell


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
) -> Outcome:
    """Run the scenario of ``seed`` (or ``plan``) under ``limits`` (``risk_limits(seed)`` by
    default); raise ``ChaosFailure`` if it fails."""
    plan = plan if plan is not None else scenario(seed)
    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix=f"chaos-{seed}-")) if own else workdir
    assert folder is not None
    harness = Harness(plan, folder, limits)
    deterministic_scheduling(seed)
    # The tree logs every crash the plan causes; the outcome and a failure say what matters.
    logging.disable(logging.CRITICAL)
    try:
        return trio.run(harness.main, clock=trio.testing.MockClock(autojump_threshold=0))
    except invariants.Violation as exc:
        raise ChaosFailure(seed, f"after step {harness.outcome.steps}: {exc}") from exc
    except Exception as exc:
        raise ChaosFailure(
            seed, f"after step {harness.outcome.steps}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        logging.disable(logging.NOTSET)
        if own:
            shutil.rmtree(folder, ignore_errors=True)
