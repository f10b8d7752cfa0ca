"""What trades TQQQ in a scenario of the deterministic simulation (``app.chaos.plan`` draws it
from a stream of its own): the grid, a bar strategy, or the grid beside one; the options bot's
scalp alone or beside the grid (from a stream of its own again); the bar strategy's and the
scalp's parameters; what the faults aimed at them target."""

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
    SCALP = "scalp"
    GRID_SCALP = "grid+scalp"

    @property
    def grid(self) -> bool:
        return self.value.startswith("grid")

    @property
    def second(self) -> str | None:
        """The strategy beside the grid, or alone (``ma_cross``, ``momentum``, ``scalp``);
        None for the grid alone."""
        name = self.value.rpartition("+")[2]
        return None if name == "grid" else name

    @property
    def bar_strategy(self) -> str | None:
        """The bar strategy's name (``ma_cross``, ``momentum``), None for the grid alone and
        the options sets."""
        name = self.second
        return None if name in OPTIONS_STRATEGIES else name

    @property
    def options(self) -> str | None:
        """The options strategy's name (``scalp``), None for the sets of shares alone."""
        name = self.second
        return name if name in OPTIONS_STRATEGIES else None


STRATEGY_WEIGHTS = {
    StrategySet.GRID: 60,
    StrategySet.MA_CROSS: 10,
    StrategySet.MOMENTUM: 10,
    StrategySet.GRID_MA_CROSS: 10,
    StrategySet.GRID_MOMENTUM: 10,
}
"""How often each strategy set is drawn (per 100 scenarios), from a stream of its own, like the
amnesia: a scenario that draws the grid alone is the one it was before the bar strategies."""

OPTIONS_STRATEGIES = ("scalp",)
OPTIONS_WEIGHTS = {StrategySet.SCALP: 5, StrategySet.GRID_SCALP: 5}
"""How often an options set is drawn (per 100 scenarios), from a stream of its own drawn
first: the other 90 draw from ``STRATEGY_WEIGHTS`` exactly as before the options sets."""
OPTION_MESSAGES = BAR_MESSAGES
"""The message types a KILL_AT_MESSAGE fault on the options strategy's symbol actor may wait
for, the bar strategies' own: its bars (a signal: the option found, the bracket committed and
sent), its timer (the entry's time-out), its bracket's events (the entry accepted and filled, an
exit cancelled by its OCA group or the venue), the reconciler's re-sync (exits placed again)."""


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


@attrs.frozen(kw_only=True)
class ScalpStrategy:
    """The options bot's scalp in a scenario (``strategy_kind("scalp", ...)`` takes
    ``parameters()``): RSI and volume thresholds relaxed and short windows, so that it signals
    within a window of a few dozen minutes; the entry at the ask, exits 10-20 % away, at most
    two contracts, a short cooldown, the nearest expiry a day or more away; a quote's liquidity
    filter loose enough for the venue's weeklies."""

    rsi_period: int
    volume_window: int
    oversold: int
    overbought: int
    volume_factor: Decimal
    tp_pct: int
    sl_pct: int
    max_contracts: int
    cooldown: float
    entry_timeout: float
    on_timeout: str
    name: str = "scalp"

    def parameters(self) -> dict[str, object]:
        return {
            "scalp": {
                "rsi_period": self.rsi_period,
                "oversold": float(self.oversold),
                "overbought": float(self.overbought),
                "volume_window": self.volume_window,
                "volume_factor": self.volume_factor,
            },
            "contract": {"min_dte": 1},
            "liquidity": {"max_spread_pct": 25, "min_volume": 10, "min_open_interest": 50},
            "entry": {"entry_price": "ask", "tp_pct": self.tp_pct, "sl_pct": self.sl_pct},
            "sizing": {"max_risk_pct_per_trade": 1, "max_contracts": self.max_contracts},
            "cooldown": self.cooldown,
            "entry_timeout": self.entry_timeout,
            "on_timeout": self.on_timeout,
        }

    def __str__(self) -> str:
        return (
            f"{self.name} rsi {self.rsi_period} {self.oversold}/{self.overbought}, volume "
            f"{self.volume_window} x{self.volume_factor}, tp {self.tp_pct}% sl {self.sl_pct}%, "
            f"max {self.max_contracts} contracts, cooldown {self.cooldown:.0f} s, entry "
            f"time-out {self.entry_timeout:.0f} s ({self.on_timeout})"
        )
