"""What a scenario of the deterministic simulation trades under (``risk_limits``), what it did
(``Outcome``), and how it fails (``ChaosFailure``, with the command that reproduces it)."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import attrs

from actors.risk_rules import MarketHours, RiskLimits


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


class ChaosFailure(AssertionError):
    """A scenario broke an invariant or did not finish; ``repro`` is the command to rerun it
    (with the strategy set it ran, ``strategies``, when that is not the one its seed draws)."""

    def __init__(self, seed: int, message: str, strategies: str | None = None) -> None:
        self.seed = seed
        self.repro = f"python -m app.chaos --seed {seed}" + (
            f" --strategies {strategies}" if strategies is not None else ""
        )
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
    strategies: str = "grid"
    """The scenario's strategy set (``plan.StrategySet``)."""
    by_strategy: Counter[str] = attrs.Factory(Counter)
    """Orders the venue was sent and its executions, by strategy (``orders:grid``...)."""
    options: Counter[str] = attrs.Factory(Counter)
    """What the options strategy's brackets did at the venue (``OptionWatch.brackets``)."""
    digest: str = ""
    """A hash of everything the venue was sent and did, and of the ledger's fills."""


TOLD = frozenset(
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


def leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    """The errors of ``group`` and of the groups in it."""
    found: list[BaseException] = []
    for error in group.exceptions:
        found.extend(leaves(error) if isinstance(error, BaseExceptionGroup) else [error])
    return found
