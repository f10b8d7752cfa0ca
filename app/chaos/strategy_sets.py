"""What trades TQQQ in a scenario of the deterministic simulation (``app.chaos.plan`` draws it
from a stream of its own): the grid, a bar strategy, or the grid beside one; the bar strategy's
parameters; what the faults aimed at a bar strategy target."""

from __future__ import annotations

import enum
from decimal import Decimal

import attrs

BAR_TARGETS = ("market-data",)
"""What the bar-strategy faults' KILL aims at beside the bar strategy's own symbol actor: the
market-data actor, whose fan-out completes and delivers the bars."""
BAR_MESSAGES = (
    "BarClosed",
    "TimerTick",
    "OrderAccepted",
    "OrderFilled",
    "OrderCancelled",
    "OrderRejected",
    "Resync",
    "",
)
"""The message types a KILL_AT_MESSAGE fault on a bar strategy's symbol actor may wait for:
its bars (the market-data actor's fan-out), its timer (time-outs, retries), its orders' events."""


class StrategySet(enum.StrEnum):
    """What trades TQQQ in a scenario: the grid, a bar strategy, or the grid beside one (two
    strategies on one symbol: the grid is the symbol's owner, cell ``symbol.TQQQ``; the bar
    strategy's cell is ``symbol.TQQQ.<strategy>``)."""

    GRID = "grid"
    MA_CROSS = "ma_cross"
    MOMENTUM = "momentum"
    GRID_MA_CROSS = "grid+ma_cross"
    GRID_MOMENTUM = "grid+momentum"

    @property
    def grid(self) -> bool:
        return self.value.startswith("grid")

    @property
    def bar_strategy(self) -> str | None:
        """The bar strategy's name (``ma_cross``, ``momentum``), None for the grid alone."""
        name = self.value.rpartition("+")[2]
        return None if name == "grid" else name


STRATEGY_WEIGHTS = {
    StrategySet.GRID: 60,
    StrategySet.MA_CROSS: 10,
    StrategySet.MOMENTUM: 10,
    StrategySet.GRID_MA_CROSS: 10,
    StrategySet.GRID_MOMENTUM: 10,
}
"""How often each strategy set is drawn (per 100 scenarios), from a stream of its own, like the
amnesia: a scenario that draws the grid alone is the one it was before the bar strategies."""


@attrs.frozen(kw_only=True)
class BarStrategy:
    """A bar strategy's parameters in a scenario (``actors.strategies.registry.strategy_kind``
    takes ``parameters()``): 1-minute bars, short windows and a low threshold, so that it trades
    within a scenario's few hours; a target notional that the scenario's risk limits
    (``harness.risk_limits``) sometimes refuse."""

    name: str
    target_notional: Decimal
    order_type: str
    fast: int = 0
    slow: int = 0
    lookback: int = 0
    threshold: Decimal = Decimal(0)

    def parameters(self) -> dict[str, object]:
        common: dict[str, object] = {
            "bar_seconds": 60,
            "target_notional": self.target_notional,
            "order_type": self.order_type,
            "sessions": "extended",
        }
        if self.name == "ma_cross":
            return {**common, "fast": self.fast, "slow": self.slow}
        return {**common, "lookback": self.lookback, "threshold": self.threshold}

    def __str__(self) -> str:
        shown = {k: v for k, v in self.parameters().items() if k not in ("bar_seconds", "sessions")}
        return f"{self.name} " + ", ".join(f"{k}={v}" for k, v in shown.items())
