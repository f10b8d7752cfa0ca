"""The running service's health, read from the tree itself: is it alive, is it ready (every
strategy reconciled and trading, the broker connected, nothing halted, the risk guard not
tripped; and if not, why), is the tree healthy (no actor stuck), and one line that sums it up.

``Health.run`` is a companion of the service (``supervisors.service``): it takes a ``Reading``
every ``interval`` seconds on the event loop and hands it to its listeners (systemd's notify
protocol, ``app.ops.notify``). Its readings are immutable and replaced whole, so a thread (the
HTTP endpoints, ``app.ops.http``) may read ``Health.latest`` at any time; a reading older than a
few intervals means the event loop has stopped turning, which ``alive`` then reports.

An actor is *stuck* when it is running, has messages waiting and has handled none of them for
``stall_after`` seconds (a handler blocked forever, a deadlock): restarts and reconnects are
the supervisors' business and never count as stuck, so systemd's watchdog only restarts a
process that cannot heal itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from runtime import ActorRuntimeError, LifecycleState

if TYPE_CHECKING:
    from app.compose import LiveTrading, SimTrading
    from supervisors import Supervisor

log = logging.getLogger("actortrade.health")


@attrs.frozen(kw_only=True)
class Reading:
    """The service at one moment."""

    taken: float
    """``time.monotonic()`` when it was taken."""
    alive: bool
    """The root supervisor runs (it has not given up, and is not stopping)."""
    tree_healthy: bool
    """Alive, and no actor stuck (see the module doc)."""
    ready: bool
    """Reconciled and trading: ``reasons`` is empty."""
    reasons: tuple[str, ...]
    """Why it is not ready, one short phrase each (``TQQQ halted: ...``, ``broker
    disconnected``, ``risk tripped: ...``)."""
    summary: str
    """One line: what it trades and how it stands (systemd's ``STATUS=``)."""
    stopping: bool = False

    def age(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.taken


class Health:
    """Takes the readings of one running tree; see the module doc."""

    def __init__(
        self,
        trading: SimTrading | LiveTrading,
        routes: Sequence[str],
        *,
        interval: float = 1.0,
        stall_after: float = 60.0,
        ask_timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.trading = trading
        self.routes = list(routes)
        """Each traded route (``strategy:symbol``), in the config's order."""
        self.interval = interval
        self.stall_after = stall_after
        self.ask_timeout = ask_timeout
        self.clock = clock
        self.latest: Reading | None = None
        """The last reading (None: none yet)."""
        self.listeners: list[Callable[[Reading], None]] = []
        """Called on the event loop with each reading, in order; one that raises is logged."""
        self.root: Supervisor | None = None
        self._stopping = False
        self._progress: dict[str, tuple[int, float]] = {}
        """Per actor: its handled count and when that count last changed."""

    # -- the companion ---------------------------------------------------------------------

    async def run(self, root: Supervisor, _stop: Callable[[str], None]) -> None:
        """Take a reading every ``interval`` seconds until cancelled."""
        self.root = root
        while True:
            self._publish(await self.read())
            await anyio.sleep(self.interval)

    def stopping(self, _by: str = "") -> None:
        """The service is stopping (a signal, ``actorctl stop``): said at once, not at the
        next reading."""
        if self._stopping:
            return
        self._stopping = True
        last = self.latest
        self._publish(
            attrs.evolve(
                last or self._reading(alive=False, stuck=(), reasons=("starting",)),
                taken=self.clock(),
                alive=False,
                tree_healthy=False,
                ready=False,
                reasons=("stopping",),
                summary="stopping",
                stopping=True,
            )
        )

    def fresh(self, within: float) -> bool:
        """Whether the last reading is at most ``within`` seconds old (the loop turns)."""
        latest = self.latest
        return latest is not None and self.clock() - latest.taken <= within

    # -- one reading -----------------------------------------------------------------------

    async def read(self) -> Reading:
        """The service now: asks the risk actor for its guard, reads the rest from the tree."""
        if self._stopping:
            assert self.latest is not None
            return attrs.evolve(self.latest, taken=self.clock())
        root = self.root
        alive = root is not None and root.running
        if root is None:  # the tree has not started: nothing else to say yet
            return self._reading(alive=False, stuck=(), reasons=("starting",))
        reasons: list[str] = []
        if not alive:
            reasons.append("the root supervisor has stopped")
        reasons.extend(self._strategy_reasons())
        reasons.extend(self._connection_reasons())
        reasons.extend(await self._risk_reasons())
        return self._reading(alive=alive, stuck=self._stuck(), reasons=tuple(reasons))

    def _reading(self, *, alive: bool, stuck: Iterable[str], reasons: tuple[str, ...]) -> Reading:
        stuck = tuple(stuck)
        all_reasons = (*reasons, *(f"{name} stuck" for name in stuck))
        ready = not all_reasons
        return Reading(
            taken=self.clock(),
            alive=alive,
            tree_healthy=alive and not stuck,
            ready=ready,
            reasons=all_reasons,
            summary=self._summary(ready, all_reasons),
        )

    def _publish(self, reading: Reading) -> None:
        self.latest = reading
        for listener in list(self.listeners):
            try:
                listener(reading)
            except Exception:
                log.exception("a health listener failed: it keeps being called")

    def _strategy_reasons(self) -> list[str]:
        reasons = []
        cells = self.trading.cells
        for route in self.routes:
            label = self._label(route)
            symbol = route.split(":", 1)[1]
            # A symbol's first strategy's cell is under the symbol, any other's under its route.
            cell = cells.get(route) or cells.get(symbol)
            strategy = self.trading.strategies.get(route)
            if strategy is None or cell is None or cell.state is not LifecycleState.RUNNING:
                reasons.append(f"{label} not reconciled")
            elif strategy.halted:
                reasons.append(f"{label} halted: {strategy.halted}")
        return reasons

    def _connection_reasons(self) -> list[str]:
        reasons = []
        for name, cell in self.trading.cells.items():
            connection = name == "broker" or name.startswith("market-data")
            if connection and cell.state is not LifecycleState.RUNNING:
                what = "broker" if name == "broker" else f"market data ({name})"
                reasons.append(f"{what} disconnected ({cell.state.value})")
        # A port that knows its connection (IB's): down while its actor still runs.
        broker = self.trading.cells.get("broker")
        running = broker is not None and broker.state is LifecycleState.RUNNING
        if running and getattr(self.trading.port, "connected", None) is False:
            reasons.append("broker disconnected")
        return reasons

    async def _risk_reasons(self) -> list[str]:
        from actors.risk import DescribeRisk

        cell = self.trading.cells.get("risk")
        if cell is None:
            return []
        if cell.state is not LifecycleState.RUNNING:
            return [f"risk actor {cell.state.value}"]
        try:
            view = await cell.ref.request(DescribeRisk(), timeout=self.ask_timeout)
        except (ActorRuntimeError, TimeoutError) as exc:
            return [f"risk actor not answering ({type(exc).__name__})"]
        reasons = []
        if view.tripped:
            reasons.append(f"risk tripped: {view.tripped}")
        if view.halts:
            reasons.append(f"halted by the operator: {', '.join(view.halts)}")
        return reasons

    def _stuck(self) -> list[str]:
        """The actors running with messages waiting that have handled none for
        ``stall_after`` seconds."""
        now = self.clock()
        stuck = []
        for name, cell in self.trading.cells.items():
            statistics = cell.mailbox.statistics()
            handled = statistics.processed
            seen = self._progress.get(name)
            if seen is None or seen[0] != handled or statistics.depth == 0:
                self._progress[name] = (handled, now)
                continue
            if cell.state is LifecycleState.RUNNING and now - seen[1] >= self.stall_after:
                stuck.append(name)
        return stuck

    def _label(self, route: str) -> str:
        symbol = route.split(":", 1)[1]
        shared = sum(1 for r in self.routes if r.split(":", 1)[1] == symbol) > 1
        return f"{symbol} ({route.split(':', 1)[0]})" if shared else symbol

    def _summary(self, ready: bool, reasons: Sequence[str]) -> str:
        parts = []
        for route in self.routes:
            strategy = self.trading.strategies.get(route)
            if strategy is None:
                continue
            held = sum(line.shares for line in strategy.positions())
            parts.append(f"{self._label(route)} {held} held, P&L {strategy.realized:.2f}")
        standing = "; ".join(parts) or "nothing traded yet"
        if ready:
            return f"trading: {standing}"
        return f"not ready ({'; '.join(reasons)}): {standing}"


def as_json(reading: Reading | None, now: float | None = None) -> Mapping[str, Any]:
    """A reading as the HTTP endpoints and ``actorctl status`` show it."""
    if reading is None:
        return {"alive": False, "ready": False, "reasons": ["starting"], "summary": "starting"}
    return {
        "alive": reading.alive,
        "ready": reading.ready,
        "tree_healthy": reading.tree_healthy,
        "reasons": list(reading.reasons),
        "summary": reading.summary,
        "stopping": reading.stopping,
        "age_s": round(reading.age(now), 3),
    }
