"""The grid's orderRef tags, ``L<level>:<side>:<lot>`` (apart from the grid so that the ledger,
which derives the grid's lots from its fills, can read them without importing the strategy)."""

from __future__ import annotations

import attrs

from ..domain import DomainError, OrderRef, Side


@attrs.frozen(kw_only=True)
class GridRef:
    """A grid order's ref, parsed: its tag is ``L<level>:<side>:<lot>``."""

    strategy: str
    symbol: str
    level: int
    side: Side
    lot: int
    attempt: int = 1

    def __str__(self) -> str:
        return str(
            OrderRef(
                strategy=self.strategy,
                symbol=self.symbol,
                tag=f"L{self.level}:{self.side.value}:{self.lot}",
                attempt=self.attempt,
            )
        )

    @classmethod
    def parse(cls, text: str) -> GridRef:
        """Parse a grid order's ref; ``DomainError`` when it is not one."""
        ref = OrderRef.parse(text)
        level, side, lot = [*ref.tag.split(":"), "", "", ""][:3]
        if (
            ref.tag.count(":") != 2
            or not level.startswith("L")
            or not level[1:].isdigit()
            or side not in ("BUY", "SELL")
            or not lot.isdigit()
        ):
            raise DomainError(f"not a grid orderRef (tag L<level>:<side>:<lot>): {text!r}")
        return cls(
            strategy=ref.strategy,
            symbol=ref.symbol,
            level=int(level[1:]),
            side=Side(side),
            lot=int(lot),
            attempt=ref.attempt,
        )
