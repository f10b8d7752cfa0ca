"""The strategy a ``[[symbols]]`` table runs and the parameter tables of the bar-close
strategies: ``[symbols.ma_cross]`` and ``[symbols.momentum]`` (the grid's is
``config.schema.GridConfig``).

Plain typed values only: this layer imports nothing of ``actors``. ``parameters()`` gives a
table's settings as the plain values the strategies take (``bar = "5min"`` as
``bar_seconds = 300``); the composition hands them to
``actors.strategies.registry.strategy_kind``. Validators raise ``InvalidSetting`` naming the
key; the loader turns it into ``file: problem @ symbols[i].ma_cross.key``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from .errors import InvalidSetting

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


class StrategyName(enum.StrEnum):
    """What a symbol trades: the seed grid, or a bar-close strategy of the research plan."""

    GRID = "grid"
    MA_CROSS = "ma_cross"
    MOMENTUM = "momentum"


class OrderType(enum.StrEnum):
    """A marketable limit (the close, ``slippage_bps`` through it) or a market order."""

    LIMIT = "limit"
    MARKET = "market"


class TimeInForceSetting(enum.StrEnum):
    DAY = "DAY"
    GTC = "GTC"


class SessionsSetting(enum.StrEnum):
    """Which trades make the bars a strategy decides on; ``extended`` orders are outsideRth."""

    REGULAR = "regular"
    EXTENDED = "extended"


_BAR = re.compile(r"(?P<count>[1-9][0-9]{0,3})(?P<unit>min|h|d)")
_UNIT_SECONDS = {"min": 60, "h": 3600, "d": 86_400}


def bar_seconds(text: str) -> int:
    """``"1min"``, ``"5min"``, ``"1h"``, ``"1d"`` in seconds; ``ValueError`` otherwise."""
    match = _BAR.fullmatch(text)
    if match is None:
        raise ValueError(f"not a bar size: {text!r}")
    return int(match["count"]) * _UNIT_SECONDS[match["unit"]]


def _bar(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        seconds = bar_seconds(value)
    except ValueError:
        seconds = 0
    # Bars divide the day (actors.domain.bars cuts them from midnight, New York): up to 8 hours
    # of minutes, or one day.
    if not ((60 <= seconds <= 8 * 3600 and 86_400 % seconds == 0) or seconds == 86_400):
        raise InvalidSetting(
            attribute.name,
            'must be a bar size like "1min", "5min", "1h" (1 minute to 8 hours, dividing the day) '
            f'or "1d", got {_shown(value)}',
        )


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _in_range(low: Any, high: Any, unit: str = "") -> _Validator:
    # As config.schema's: a Decimal NaN raises on comparison, so finiteness comes first.
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        finite = value.is_finite() if isinstance(value, Decimal) else value == value
        if not (finite and low <= value <= high and abs(value) != float("inf")):
            raise InvalidSetting(
                attribute.name, f"must be between {low} and {high}{unit}, got {_shown(value)}"
            )

    return validate


@attrs.frozen(kw_only=True)
class BarOrdersConfig:
    """What every bar-close strategy's table has: its bars, sizing and orders."""

    # The bar size it decides on at each close.
    bar: str = attrs.field(default="1min", validator=_bar)
    # Each entry buys floor(target_notional / close) shares; skipped (with an alert) when one
    # share costs more.
    target_notional: Decimal = attrs.field(
        default=Decimal(10_000), validator=_in_range(Decimal(1), Decimal(1_000_000_000))
    )
    order_type: OrderType = OrderType.LIMIT
    # A limit is priced this many basis points through the close (BUY above, SELL below).
    slippage_bps: Decimal = attrs.field(
        default=Decimal(10), validator=_in_range(Decimal(0), Decimal(1000))
    )
    tif: TimeInForceSetting = TimeInForceSetting.DAY
    sessions: SessionsSetting = SessionsSetting.REGULAR
    # Seconds an order may work unfilled before it is cancelled and retried.
    fill_timeout: float = attrs.field(default=60.0, validator=_in_range(1, 86_400, " seconds"))
    # Orders one decision may place (the first and its retries) before it gives up.
    max_attempts: int = attrs.field(default=3, validator=_in_range(1, 100))
    # Seconds at least between two attempts of one decision.
    retry_delay: float = attrs.field(default=5.0, validator=_in_range(0, 3600, " seconds"))
    tick: Decimal = attrs.field(
        default=Decimal("0.01"), validator=_in_range(Decimal("0.0001"), Decimal(100))
    )

    def parameters(self) -> dict[str, object]:
        """The settings as the strategy's parameters (plain values)."""
        values = attrs.asdict(self, recurse=False)
        values["bar_seconds"] = bar_seconds(values.pop("bar"))
        return {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}


@attrs.frozen(kw_only=True)
class MaCrossConfig(BarOrdersConfig):
    """``[symbols.ma_cross]``: enter on a cross up of the fast SMA over the slow, exit on a
    cross down."""

    fast: int = attrs.field(default=10, validator=_in_range(1, 10_000))
    slow: int = attrs.field(default=30, validator=_in_range(2, 10_000))

    def __attrs_post_init__(self) -> None:
        if self.fast >= self.slow:
            raise InvalidSetting("fast", f"must be less than slow ({self.slow}), got {self.fast}")


@attrs.frozen(kw_only=True)
class MomentumConfig(BarOrdersConfig):
    """``[symbols.momentum]``: hold while the ``lookback``-bar rate of change is above
    ``threshold``, be flat otherwise."""

    lookback: int = attrs.field(default=20, validator=_in_range(1, 10_000))
    threshold: Decimal = attrs.field(
        default=Decimal(0), validator=_in_range(Decimal("-0.99"), Decimal(10))
    )


def strategy_problem(
    strategy: StrategyName,
    *,
    has_lots: bool,
    ma_cross: MaCrossConfig | None,
    momentum: MomentumConfig | None,
) -> InvalidSetting | None:
    """What is wrong with a ``[[symbols]]`` table's strategy and the tables beside it, naming
    the key, or None."""
    if strategy is StrategyName.GRID and not has_lots:
        return InvalidSetting("lots", "required field missing (the grid trades a lot map)")
    if strategy is not StrategyName.GRID and has_lots:
        return InvalidSetting(
            "lots", f'only the grid trades a lot map, not strategy = "{strategy}"'
        )
    for name, table in ((StrategyName.MA_CROSS, ma_cross), (StrategyName.MOMENTUM, momentum)):
        if table is not None and strategy is not name:
            return InvalidSetting(
                name.value, f'a [symbols.{name}] table, but the symbol\'s strategy is "{strategy}"'
            )
    return None
