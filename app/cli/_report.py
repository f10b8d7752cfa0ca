"""The fill printer: the story of a run. The broker connected, the line saying when trading
begins, each execution as the venue reports it, the replay's progress (redrawn in place on a
terminal, a line per session elsewhere), and the summaries of what each symbol did."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from actors.domain import underlying_of
from config.schema import OPTION_STRATEGIES

from ._common import STDOUT, say

if TYPE_CHECKING:
    from actors.strategies.protocol import Strategy
    from app.compose import LiveTrading, SimTrading
    from sim.engine import Engine

_POLL_S = 0.05
"""How often the watch companion looks at the tree and the venue."""
_REDRAW_S = 0.25
"""How often, at most, the progress line is redrawn on a terminal."""


@runtime_checkable
class _Wire(Protocol):
    # A broker port over a socket (``IBPort``), without importing ib_insync to ask.
    host: str
    port: int
    client_id: int

    @property
    def connected(self) -> bool: ...


class Report:
    """Prints the run's story on standard output, whose failure stops the printing but never
    the trading (``Output``): each execution as the venue reports it, the replay's progress
    (``sessions``: the replay's New York dates; on a terminal, when ``live``, one line redrawn
    in place, and otherwise, as there, a line at the end of each session) and summaries from
    the strategies."""

    def __init__(
        self,
        routes: Sequence[str],
        trading: SimTrading | LiveTrading,
        *,
        sessions: Sequence[date] = (),
        live: bool | None = None,
    ) -> None:
        self.routes = list(routes)
        """Each traded route (``strategy:symbol``), in the config's order: its strategy is
        published so. A symbol may have several."""
        self.symbols = list(dict.fromkeys(r.split(":", 1)[1] for r in self.routes))
        self.trading = trading
        self.sim: SimTrading | None = None
        """The tree on the embedded venue whose executions are printed (``attach``)."""
        self.pending: list[str] | None = None
        """Routes not reconciled yet when the tree started (None: it has not started)."""
        self.traded = False
        self.sessions = list(sessions)
        self.live = sys.stdout.isatty() if live is None else live
        self._start_at: datetime | None = None
        """The venue's time when the replay began (a resumed venue's last trade)."""
        self._frame: tuple[datetime, str] | None = None
        """The progress line as last made, and the venue's time it shows."""
        self._ended = False
        self._drawn = (-1.0, "")
        self._orders = (-1, 0)
        """The venue's orders looked at, and how many of them are of our symbols."""
        self._executions = (0, 0)

    def attach(self, trading: SimTrading) -> None:
        from actors.domain import DomainError, OrderFilled, OrderRef

        self.sim = trading
        engine = trading.engine
        self._start_at = engine.last_trade_at
        ours = set(self.routes)

        def on_event(event: object) -> None:
            if not isinstance(event, OrderFilled):
                return
            try:
                ref = OrderRef.parse(event.ref)
            except DomainError:
                return  # not an order of ours
            if ref.route not in ours:
                return
            execution = engine.executions[-1]
            # The first execution of a session comes after the line of the session before.
            self._progress()
            when = execution.time.strftime("%Y-%m-%d %H:%M:%S")
            side = execution.side.value
            # The grid's tag is L<level>:<side>:<lot>: its level says it all.
            label = ref.tag.split(":")[0] if ref.strategy == "grid" else ref.tag
            position = engine.positions[execution.symbol].quantity
            STDOUT.line(
                f"{when} {side:4} {event.quantity:>4} {execution.symbol} @ {event.price} "
                f"({label}) position {position}"
            )

        engine.listeners.append(on_event)

    def reconciled(self, _root: object = None) -> None:
        # Called once the tree has started, which is not proof of trading: a symbol actor whose
        # on_start (its reconciliation) failed is restarting. "trading" is printed only once
        # every symbol actor is running, so reconciled; until then the watch companion waits.
        # The broker actor has started before them: it is connected.
        self._connected_line()
        self.pending = self._unreconciled()
        if self.pending:
            print(
                f"started, not trading yet: {', '.join(self.pending)} not reconciled with the "
                "venue (restarting); trading begins once they are",
                flush=True,
            )
            return
        self._trading_line()

    async def watch(self, _root: object, _stop: object) -> None:
        import anyio

        try:
            while self.sim is not None or self.pending is None or self.pending:
                await anyio.sleep(_POLL_S)
                if self.pending and not self._unreconciled():
                    self.pending = []
                    self._trading_line()
                self._progress()
        finally:
            # Stopped (cancelled) before the replay's end: the session so far is a line.
            self._end_progress()

    def finished(self) -> None:
        """The replay has ended: its last session's line, then the summary."""
        self._end_progress()
        self.summary("replay finished")

    def _connected_line(self) -> None:
        from actors.brokers.dry import DryPort

        port = self.trading.port
        inner = port.port if isinstance(port, DryPort) else port
        if isinstance(inner, _Wire):
            if inner.connected:
                say(
                    f"the broker is connected to {inner.host}:{inner.port} with ib_insync as "
                    f"clientId {inner.client_id}"
                )
        elif self.sim is not None:
            say("the broker is connected to the venue in-process")

    def _progress(self) -> None:
        # The progress line, made afresh; the previous session's last one printed as a line
        # when the venue's date has moved on. On a terminal, drawn in place now and then.
        if self.sim is None or self._ended:
            return
        frame = self._make_frame(self.sim.engine)
        if frame is None:
            return
        last = self._frame
        if last is not None and last[0].date() != frame[0].date():
            self._commit(last)
        self._frame = frame
        if self.live and self.traded:
            now = time.monotonic()
            if frame[1] != self._drawn[1] and now - self._drawn[0] >= _REDRAW_S:
                self._drawn = (now, frame[1])
                STDOUT.show(frame[1])

    def _end_progress(self) -> None:
        if self.sim is None or self._ended:
            return
        last, frame = self._frame, self._make_frame(self.sim.engine)
        if last is not None and (frame is None or last[0].date() != frame[0].date()):
            self._commit(last)  # a session whose end came between two looks
        if frame is not None:
            self._commit(frame)
        self._ended = True
        if self.live and self._drawn[1]:
            STDOUT.show(None)

    def _commit(self, frame: tuple[datetime, str]) -> None:
        # A session the replay moved through in this run (not where a resumed venue was).
        if self._start_at is None or frame[0] > self._start_at:
            STDOUT.line(frame[1])

    def _make_frame(self, engine: Engine) -> tuple[datetime, str] | None:
        at = engine.last_trade_at
        if at is None:
            return None
        symbols = set(self.symbols)
        seen, count = self._orders
        if len(engine.orders) != seen:
            count = sum(1 for o in engine.orders.values() if underlying_of(o.symbol) in symbols)
            self._orders = (len(engine.orders), count)
        looked, executions = self._executions
        fresh = engine.executions[looked:]
        executions += sum(1 for e in fresh if underlying_of(e.symbol) in symbols)
        self._executions = (looked + len(fresh), executions)
        realized = sum(
            (s.realized for r in self.routes if (s := self.trading.strategies.get(r))),
            Decimal(0),
        )
        day = at.date()
        session = (
            f"session {self.sessions.index(day) + 1}/{len(self.sessions)}"
            if day in self.sessions
            else "session"
        )
        held = ", ".join(_position(engine, symbol) for symbol in self.symbols)
        return at, (
            f"{session} {at:%Y-%m-%d %H:%M:%S}: realized P&L {realized:.2f}, position "
            f"{held}, {count} orders, {executions} executions"
        )

    def never_traded(self) -> None:
        if not self.traded:
            say(f"it never traded: {', '.join(self.symbols)} never reconciled with the venue")

    def _unreconciled(self) -> list[str]:
        from runtime import LifecycleState

        cells = self.trading.cells
        return [
            self._label(route)
            for route in self.routes
            if route not in self.trading.strategies
            # A symbol's first strategy's cell is under the symbol, any other's under its route.
            or cells.get(route, cells[_symbol(route)]).state is not LifecycleState.RUNNING
        ]

    def _label(self, route: str) -> str:
        # The symbol, and its strategy when the symbol has several.
        symbol = _symbol(route)
        shared = sum(1 for r in self.routes if _symbol(r) == symbol) > 1
        return f"{symbol} ({route.split(':', 1)[0]})" if shared else symbol

    def _trading_line(self) -> None:
        self.traded = True
        parts = []
        for route in self.routes:
            label = self._label(route)
            strategy = self.trading.strategies.get(route)
            if strategy is None:
                parts.append(f"{label} not reconciled")
                continue
            live = strategy.live_orders()
            sells = sum(1 for order in live if order.side.value == "SELL")
            diffs = sum(
                1
                for a in self.trading.alerts
                if a.symbol == _symbol(route) and a.kind == "reconcile"
            )
            found = f"{diffs} differences repaired" if diffs else "in agreement"
            halted = f", HALTED: {strategy.halted}" if strategy.halted else ""
            parts.append(
                f"{label} {self._held(route, strategy, shares=False)}, {sells} sells and "
                f"{len(live) - sells} buys working, {found}{halted}"
            )
        STDOUT.line(f"reconciled with the venue: {'; '.join(parts)}; trading")

    def summary(self, when: str) -> None:
        if self.sim is None:
            raise RuntimeError("the fill printer summarizes a tree on the embedded venue only")
        engine = self.sim.engine
        for route in self.routes:
            label = self._label(route)
            strategy = self.trading.strategies.get(route)
            if strategy is None:
                STDOUT.line(f"{when}: {label} has not started")
                continue
            # The symbol's executions and orders; of a symbol several strategies trade, those
            # of this strategy's orderRefs (strategy:symbol:...).
            symbol, prefix = _symbol(route), f"{route}:"
            shared = label != symbol
            # An option on the symbol (an options strategy's) counts as the symbol's.
            executions = [
                e
                for e in engine.executions
                if (e.ref.startswith(prefix) if shared else underlying_of(e.symbol) == symbol)
            ]
            sells = sum(1 for e in executions if e.side.value == "SELL")
            orders = sum(
                1
                for o in engine.orders.values()
                if (o.ref.startswith(prefix) if shared else underlying_of(o.symbol) == symbol)
            )
            halted = f"; HALTED: {strategy.halted}" if strategy.halted else ""
            STDOUT.line(
                f"{when}: {label} {orders} orders, {len(executions) - sells} buy and "
                f"{sells} sell executions, {self._held(route, strategy, shares=True)}, "
                f"realized P&L {strategy.realized:.2f}{halted}"
            )
        if len(self.routes) > 1:
            self._total(when, engine)

    def _total(self, when: str, engine: Engine) -> None:
        symbols = set(self.symbols)
        started = [s for r in self.routes if (s := self.trading.strategies.get(r)) is not None]
        orders = sum(1 for o in engine.orders.values() if underlying_of(o.symbol) in symbols)
        executions = sum(1 for e in engine.executions if underlying_of(e.symbol) in symbols)
        lots = sum(len(s.positions()) for s in started)
        held = "open lots" if all(r.startswith("grid:") for r in self.routes) else "open positions"
        realized = sum((s.realized for s in started), Decimal(0))
        # Not "<when>: ...": a reader counts those lines, one per strategy.
        STDOUT.line(
            f"in all ({when}): {orders} orders, {executions} executions, {lots} {held}, "
            f"realized P&L {realized:.2f}"
        )

    def _held(self, route: str, strategy: Strategy, *, shares: bool) -> str:
        # What a strategy holds (``Strategy.positions``): the grid's open lots, or the one
        # position of a strategy that holds one.
        lines = strategy.positions()
        held = sum(line.shares for line in lines)
        if route.split(":", 1)[0] in OPTION_STRATEGIES:
            return f"position {held} contracts"
        if not route.startswith("grid:"):
            return f"position {held} shares"
        return f"{len(lines)} open lots" + (f" ({held} shares)" if shares else "")


def _symbol(route: str) -> str:
    return route.split(":", 1)[1]


def _position(engine: Engine, symbol: str) -> str:
    # The venue's position in the stock, and in its options when there are any.
    shares, contracts = 0, 0
    for held, position in engine.positions.items():
        if held == symbol:
            shares = position.quantity
        elif underlying_of(held) == symbol:
            contracts += position.quantity
    return f"{symbol} {shares}" + (f" + {contracts} contracts" if contracts else "")
