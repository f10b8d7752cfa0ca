"""The deterministic simulation's checks of a running tree (``app.chaos.harness`` calls them):
the safety invariants and the risk watch after every replay step, the options' protection
between steps once the tree has settled after the last fault, the settle points (a
reconciliation with the connection up, then the agreement invariants), and the final settle
once the replay has ended (``app.chaos.invariants`` says what each invariant checks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio

from actors import ledger
from actors.broker import Poll
from actors.brokers.sim import SimPort
from actors.reconciler import Reconcile
from actors.symbol import Describe
from app.compose import SimTrading
from runtime import ActorCell, LifecycleState, all_idle

from . import invariants, option_invariants

if TYPE_CHECKING:
    from .harness import Harness

SYMBOL = "TQQQ"
SETTLE_ATTEMPTS = 8
SETTLE_WAIT = 65.0
"""Virtual seconds a settle point waits after reconciling: longer than the longest retry
backoff (``GridParams.retry_maximum``, 60 s)."""


def safety(harness: Harness) -> None:
    """The invariants that hold between any two steps, and the risk watch's findings."""
    store = harness.store
    if store is None or not store.is_open:
        return
    invariants.safety(
        harness.engine,
        invariants.read_ledger(store, SYMBOL, harness.strategies),
        harness.placed,
        SYMBOL,
        harness.tally,
        forgotten=harness.forgotten if harness.amnesiac else None,
        strategies=harness.strategies,
        options=harness.option_limits,
    )
    # A venue back from an older state has its clock set back too: the risk actor's
    # sessions run ahead of it, so the trip's timing is not compared then.
    now = None if harness.amnesiac else harness.engine.last_trade_at
    harness.risk.check(harness.tally, store.read(ledger.load_risk), now)


async def settle(harness: Harness, trading: SimTrading, *, strict: bool) -> None:
    """Reconcile with the connection up, then check that everything agrees. Not strict:
    a fault that fires meanwhile abandons the attempt (the next settle point checks)."""
    broker = trading.cells["broker"].ref
    reconciler = trading.cells["reconciler"].ref
    # The symbol's owner under the symbol, any other strategy of it under its route.
    symbols = [trading.cells[SYMBOL].ref]
    symbols += [trading.cells[route].ref for route in harness.kinds if route in trading.cells]
    for _ in range(SETTLE_ATTEMPTS if strict else 1):
        try:
            await broker.request(Poll(), timeout=30)
            # After an amnesia the operator has looked at the execution conflicts it
            # caused: acknowledging them lets the symbol trade again (unless shares are
            # missing), so what comes after is checked too.
            await reconciler.request(Reconcile(acknowledge=harness.amnesiac), timeout=120)
            # Retries of rejected orders run (their backoff is at most a minute); then the
            # repairs reach the venue, and its answers the symbol actor.
            await anyio.sleep(SETTLE_WAIT)
            await broker.request(Poll(), timeout=30)
            for symbol in symbols:
                await symbol.request(Describe(), timeout=30)
        except Exception:
            if not strict:
                return
            await anyio.sleep(5.0)  # let the tree restart what failed
            continue
        store = harness.store
        assert store is not None
        strategy = trading.strategies.get(f"grid:{SYMBOL}")
        bars = {
            name: trading.strategies.get(f"{name}:{SYMBOL}")
            for name in harness.strategies
            if name != "grid"
        }
        state = invariants.read_ledger(store, SYMBOL, harness.strategies)
        forgotten = harness.forgotten if harness.amnesiac else None
        invariants.safety(
            harness.engine,
            state,
            harness.placed,
            SYMBOL,
            harness.tally,
            forgotten=forgotten,
            strategies=harness.strategies,
            options=harness.option_limits,
        )
        invariants.agreement(
            harness.engine,
            state,
            SYMBOL,
            harness.tally,
            strategy=strategy,
            forgotten=forgotten,
            strategies=harness.strategies,
            bars=bars,
            now=anyio.current_time(),
            options=harness.option_limits,
        )
        harness.outcome.settles += 1
        harness.settled_at = harness.outcome.steps
        return
    if strict:
        raise invariants.Violation(
            f"the tree did not settle in {SETTLE_ATTEMPTS} attempts at the end"
        )


async def final(harness: Harness, trading: SimTrading) -> None:
    """The replay has ended: every fault disarmed, the connection healed, one last settle,
    and every actor must be running."""
    harness.arms.clear()
    harness.arms.release_at = None
    port = trading.port
    assert isinstance(port, SimPort)
    port.link.release()
    await settle(harness, trading, strict=True)
    assert harness.store is not None
    harness.recorded = sorted(
        f.exec_id for f in invariants.read_ledger(harness.store, SYMBOL, harness.strategies).fills
    )
    down = [f"{c.name} ({c.state.value})" for c in trading.cells.values() if not running(c)]
    harness.tally.check(not down, f"actors down at the end: {down}")


def protected(harness: Harness, trading: SimTrading) -> None:
    """Every option the options strategy holds is protected (``option_invariants.unprotected``)
    between two steps, when the tree has settled since the last fault: a settle point has
    completed after the last fault injected or fired (so the bot has reconciled and seen what
    the fault did), the connection is up with nothing delivered and not yet read, and every
    actor is idle (no event of the venue's, no command of the bot's in flight). Only the venue's
    state is read then: the bot's own books are compared at the settle points."""
    name = harness.watch.name
    if name is None or harness.settled_at <= harness.quiet_since:
        return
    port = trading.port
    if not isinstance(port, SimPort) or not port.link.quiet:
        return
    if not all_idle(cell.ref for cell in trading.cells.values()):
        return
    bare = option_invariants.unprotected(harness.engine, SYMBOL, name)
    if bare and harness.amnesiac and harness.store is not None and harness.store.is_open:
        # Only what the ledger holds is owed protection (the rest: orphans, left alone).
        ledger_ = invariants.read_ledger(harness.store, SYMBOL, harness.strategies)
        bare = option_invariants.unprotected(harness.engine, SYMBOL, name, ledger_)
    halted = getattr(trading.strategies.get(f"{name}:{SYMBOL}"), "halted", None)
    since = harness.outcome.steps - harness.settled_at
    harness.tally.check(
        not bare or (halted is not None and "the close" in halted),
        f"{name}:{SYMBOL} holds options unprotected {since} steps after a settle point, with "
        f"no fault since: {bare}" + (f" (halted: {halted})" if halted else ""),
    )


def running(cell: ActorCell[Any]) -> bool:
    return cell.state is LifecycleState.RUNNING
