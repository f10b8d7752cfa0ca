"""The research plan's moving-average crossover, long-only, deciding at bar close.

The indicator: the simple moving averages of the last ``fast`` and ``slow`` closes of its bars.
A **cross up** (on this bar fast > slow, on the previous one fast <= slow) is a BUY signal: buy
``floor(target_notional / close)`` shares when flat. A **cross down** (fast <= slow after
fast > slow) is a SELL signal: sell every share held. The indicator's side needs ``slow`` closes,
and a signal the side on the previous bar too: ``Needs.warmup`` is ``slow`` bars of history,
after which the first live bar can signal. Averages are compared exactly (``sum_fast * slow``
against ``sum_slow * fast``), so a tie is a tie whatever the prices' digits.

Between crosses the indicator's side is fast > slow (long) or not (flat): an entry still
working when it turns flat is cancelled, and shares held while it is flat are sold (orphan
shares adopted then, too). How decisions become orders, time out, are retried and are
rebuilt after a restart is ``actors.strategies._position``'s.
"""

from __future__ import annotations

import collections
from decimal import Decimal
from typing import Literal

import attrs

from ..domain import Side
from ._position import PositionKind, PositionParams, PositionStrategy
from .protocol import Facts

NAME = "ma_cross"


def _window(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number of bars >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class MaCrossParams(PositionParams):
    """The crossover's settings (and ``PositionParams``': sizing, orders, time-outs)."""

    fast: int = attrs.field(default=10, validator=_window)
    slow: int = attrs.field(default=30, validator=_window)
    strategy: str = NAME

    def __attrs_post_init__(self) -> None:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be less than slow ({self.slow})")


class MaCrossStrategy(PositionStrategy):
    """A live crossover of one symbol (see the module doc)."""

    def __init__(self, params: MaCrossParams, strategy: str = NAME) -> None:
        super().__init__(params, strategy)
        self.settings = params
        self.closes: collections.deque[Decimal] = collections.deque(maxlen=params.slow)
        self._sum_fast = self._sum_slow = Decimal(0)
        """The sums of the last ``fast`` and ``slow`` closes (fewer until they are in)."""
        self.above: bool | None = None
        """fast > slow on the latest bar, None until ``slow`` closes are in."""

    def _observe(self, close: Decimal) -> Side | None:
        closes = self.closes
        fast, slow = self.settings.fast, self.settings.slow
        # The two sums kept as the closes come and go (exact: Decimal sums of prices).
        if len(closes) == slow:
            self._sum_slow -= closes[0]
        if len(closes) >= fast:
            self._sum_fast -= closes[-fast]
        closes.append(close)
        self._sum_slow += close
        self._sum_fast += close
        if len(closes) < slow:
            return None
        previous, self.above = self.above, self._sum_fast * slow > self._sum_slow * fast
        if previous is None or self.above == previous:
            return None
        return Side.BUY if self.above else Side.SELL

    def _desire(self) -> Side | None:
        if self.above is None:
            return None
        return Side.BUY if self.above else Side.SELL

    def averages(self) -> tuple[Decimal, Decimal] | None:
        """The fast and slow averages of the latest bar, once ``slow`` closes are in."""
        if len(self.closes) < self.settings.slow:
            return None
        closes = list(self.closes)
        fast, slow = self.settings.fast, self.settings.slow
        return sum(closes[-fast:], Decimal(0)) / fast, sum(closes[-slow:], Decimal(0)) / slow

    def view(self) -> MaCrossView:
        averages = self.averages()
        quantum = self.params.tick / 100
        return MaCrossView(
            fast=None if averages is None else averages[0].quantize(quantum),
            slow=None if averages is None else averages[1].quantize(quantum),
            warm=self._desire() is not None,
            signal=None if self.last_signal is None else self.last_signal.value,
            position=self.shares,
            average_cost=self.average_cost.quantize(quantum),
            decision=None if self.latest is None else self.latest.tag,
        )


@attrs.frozen(kw_only=True)
class MaCrossView:
    """What ``actorctl status`` shows of a crossover beyond what every strategy shows."""

    kind: Literal["ma_cross"] = "ma_cross"
    fast: Decimal | None
    """The fast average of the latest bar (None until warm)."""
    slow: Decimal | None
    warm: bool
    signal: str | None
    """The latest signal: BUY (a cross up) or SELL (a cross down)."""
    position: int
    average_cost: Decimal
    decision: str | None
    """The decision in force (``E.<bar>`` or ``X.<bar>``)."""


@attrs.frozen
class MaCrossKind(PositionKind[MaCrossParams]):
    """The crossover of one symbol with its parameters (a ``StrategyKind``)."""

    @property
    def warmup(self) -> int:
        return self.params.slow

    def restore(self, facts: Facts) -> MaCrossStrategy:
        return MaCrossStrategy.restore(self.params, self.params.strategy, facts)
