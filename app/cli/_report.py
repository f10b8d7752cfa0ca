"""The fill printer: each execution as the venue reports it, the line saying when trading begins,
and the summaries of what each symbol did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from actors.domain import underlying_of
from config.schema import OPTION_STRATEGIES

from ._common import STDOUT, say

if TYPE_CHECKING:
    from actors.strategies.protocol import Strategy
    from app.compose import LiveTrading, SimTrading


class Report:
    """Prints each execution as the venue reports it, and summaries from the strategies; on
    standard output, whose failure stops the printing but never the trading (``Output``)."""

    def __init__(self, routes: Sequence[str], trading: SimTrading | LiveTrading) -> None:
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

    def attach(self, trading: SimTrading) -> None:
        from actors.domain import DomainError, OrderFilled, OrderRef

        self.sim = trading
        engine = trading.engine
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

        while self.pending is None or self.pending:
            await anyio.sleep(0.05)
            if self.pending and not self._unreconciled():
                self.pending = []
                self._trading_line()

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
