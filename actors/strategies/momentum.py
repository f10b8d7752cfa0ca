"""The research plan's momentum strategy, long-only, deciding at bar close.

The indicator: the ``lookback``-bar rate of change of its bars' closes,
``roc = close / close[lookback] - 1`` (``close[lookback]`` the close ``lookback`` bars before).
Above ``threshold``: hold (a BUY signal: buy ``floor(target_notional / close)`` shares when
flat); at or below it: be flat (a SELL signal: sell every share held). Every bar signals, so a
position follows the indicator bar by bar. The indicator's side needs ``lookback + 1``
closes: ``Needs.warmup`` is that many bars of history, after which it is the uninterrupted
strategy's (``warm``). The comparison is
exact (``close > close[lookback] * (1 + threshold)``).

How decisions become orders, time out, are retried and are rebuilt after a restart is
``actors.strategies._position``'s.
"""

from __future__ import annotations

import collections
from decimal import Decimal
from typing import Literal

import attrs

from ..domain import Side
from ._position import PositionKind, PositionParams, PositionStrategy, _decimal
from .protocol import Facts

NAME = "momentum"


def _lookback(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or value < 1:
        raise ValueError(f"{attribute.name} must be a whole number of bars >= 1, got {value!r}")


def _above_minus_one(
    _instance: object, attribute: attrs.Attribute[Decimal], value: Decimal
) -> None:
    if value <= -1:
        raise ValueError(f"{attribute.name} must be more than -1 (a rate of change), got {value}")


@attrs.frozen(kw_only=True)
class MomentumParams(PositionParams):
    """The momentum rule's settings (and ``PositionParams``': sizing, orders, time-outs)."""

    lookback: int = attrs.field(default=20, validator=_lookback)
    threshold: Decimal = attrs.field(
        default=Decimal(0), converter=_decimal, validator=_above_minus_one
    )
    strategy: str = NAME


class MomentumStrategy(PositionStrategy):
    """A live momentum rule of one symbol (see the module doc)."""

    def __init__(self, params: MomentumParams, strategy: str = NAME) -> None:
        super().__init__(params, strategy)
        self.settings = params
        self.closes: collections.deque[Decimal] = collections.deque(maxlen=params.lookback + 1)
        self.rising: bool | None = None
        """The rate of change is above the threshold on the latest bar; None until warm."""

    def _observe(self, close: Decimal) -> Side | None:
        self.closes.append(close)
        if len(self.closes) <= self.settings.lookback:
            return None
        self.rising = close > self.closes[0] * (1 + self.settings.threshold)
        return Side.BUY if self.rising else Side.SELL

    def _desire(self) -> Side | None:
        if self.rising is None:
            return None
        return Side.BUY if self.rising else Side.SELL

    def rate_of_change(self) -> Decimal | None:
        """``close / close[lookback] - 1`` of the latest bar, once warm."""
        if len(self.closes) <= self.settings.lookback:
            return None
        return self.closes[-1] / self.closes[0] - 1

    def view(self) -> MomentumView:
        roc = self.rate_of_change()
        quantum = self.params.tick / 100
        return MomentumView(
            roc=None if roc is None else roc.quantize(Decimal("0.000001")),
            threshold=self.settings.threshold,
            warm=self.rising is not None,
            signal=None if self.last_signal is None else self.last_signal.value,
            position=self.shares,
            average_cost=self.average_cost.quantize(quantum),
            decision=None if self.latest is None else self.latest.tag,
        )


@attrs.frozen(kw_only=True)
class MomentumView:
    """What ``actorctl status`` shows of a momentum rule beyond what every strategy shows."""

    kind: Literal["momentum"] = "momentum"
    roc: Decimal | None
    """The latest bar's rate of change (None until warm)."""
    threshold: Decimal
    warm: bool
    signal: str | None
    """The latest signal: BUY (above the threshold: hold) or SELL (flat)."""
    position: int
    average_cost: Decimal
    decision: str | None
    """The decision in force (``E.<bar>`` or ``X.<bar>``)."""


@attrs.frozen
class MomentumKind(PositionKind[MomentumParams]):
    """The momentum rule of one symbol with its parameters (a ``StrategyKind``)."""

    @property
    def warmup(self) -> int:
        return self.params.lookback + 1

    def restore(self, facts: Facts) -> MomentumStrategy:
        return MomentumStrategy.restore(self.params, self.params.strategy, facts)
