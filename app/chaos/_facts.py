"""What every invariant reads (``app.chaos.invariants``): the ledger of a symbol as one read,
the venue's orders and executions of the strategies that trade it, and the tally of checks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

import attrs

from actors import ledger as ledger_
from actors.domain import Side
from actors.lot_keeper import LedgerState
from runtime.store import Store
from sim.engine import Engine, Execution, SimOrder

OURS = "grid:"
"""The prefix of the refs the grid sends (``actors.domain.OrderRef``)."""
GRID = ("grid",)
"""The strategies of a symbol when only the grid trades it (every check's default)."""

ExecutionKey = tuple[str, str, Side, int, Decimal]
"""An execution's id and facts: (execId, orderRef, side, quantity, price)."""


def keys(executions: Iterable[Execution]) -> set[ExecutionKey]:
    return {(e.exec_id, e.ref, e.side, e.quantity, e.price) for e in executions}


class Violation(AssertionError):
    """An invariant did not hold; the message says which and what differs."""


@attrs.define
class Tally:
    """How many invariant checks ran."""

    checks: int = 0

    def check(self, holds: bool, message: str) -> None:
        self.checks += 1
        if not holds:
            raise Violation(message)


def strategy_of(ref: str) -> str:
    """The strategy an orderRef belongs to (``strategy:symbol:tag:attempt``)."""
    return ref.partition(":")[0]


def ours(ref: str, symbol: str, strategies: Sequence[str]) -> bool:
    """Is ``ref`` an order of one of ``strategies`` trading ``symbol``?"""
    name, _, rest = ref.partition(":")
    return name in strategies and rest.startswith(f"{symbol}:")


def read_ledger(store: Store, symbol: str, strategies: Sequence[str] = GRID) -> LedgerState:
    """The ledger of ``symbol`` (the facts of ``strategies``) as one consistent read."""
    return store.read(
        lambda txn: LedgerState(
            intents=tuple(ledger_.intents(txn, symbol)),
            fills=tuple(f for f in ledger_.fills(txn) if ours(f.ref, symbol, strategies)),
            lots=tuple(ledger_.lots(txn, symbol)),
            retired=ledger_.retired(txn),
            conflicts=tuple(ledger_.conflicts(txn, symbol)),
        )
    )


def ours_of(
    orders: Iterable[SimOrder], symbol: str, strategies: Sequence[str] = GRID
) -> list[SimOrder]:
    return [o for o in orders if ours(o.ref, symbol, strategies)]


def executions_of(engine: Engine, symbol: str, strategies: Sequence[str] = GRID) -> list[Execution]:
    return [e for e in engine.executions if ours(e.ref, symbol, strategies)]


def position(engine: Engine, symbol: str) -> int:
    held = engine.positions.get(symbol)
    return held.quantity if held is not None else 0
