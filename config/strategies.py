"""The strategy a ``[[symbols]]`` table runs and the parameter tables of the strategies
other than the grid (whose table is ``config.schema.GridConfig``): the bar-close strategies'
``[symbols.ma_cross]`` and ``[symbols.momentum]``, and the options strategies'
``[symbols.scalp]`` and ``[symbols.whale]`` with their sub-tables (``.contract``,
``.liquidity``, ``.entry``, ``.sizing``).

Plain typed values only: this layer imports nothing of ``actors``, so its ranges repeat the
strategies' own (never wider: a value accepted here is one the strategy takes).
``parameters()`` gives a table's settings as the plain values the strategies take
(``bar = "5min"`` as ``bar_seconds = 300``; an options table as the nested mapping
``OptionsParams`` takes); the composition hands them to
``actors.strategies.registry.strategy_kind``. Validators raise ``InvalidSetting`` naming the
key; the loader turns it into ``file: problem @ symbols[i].ma_cross.key`` (or
``symbols[i].scalp.entry.key`` in a sub-table).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import attrs

from .errors import InvalidSetting

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


class StrategyName(enum.StrEnum):
    """What a symbol trades: the seed grid, a bar-close strategy of the research plan, or an
    options strategy of the options bot (SPEC 14)."""

    GRID = "grid"
    MA_CROSS = "ma_cross"
    MOMENTUM = "momentum"
    SCALP = "scalp"
    WHALE = "whale"


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


def _in_range(
    low: Any, high: Any, unit: str = "", *, above: bool = False, under: bool = False
) -> _Validator:
    # As config.schema's: a Decimal NaN raises on comparison, so finiteness comes first.
    # ``above``/``under``: the end itself is refused (the strategy takes only values past it).
    if above or under:
        span = f"{'above' if above else 'at least'} {low} and {'under' if under else 'at most'}"
        span = f"{span} {high}{unit}"
    else:
        span = f"between {low} and {high}{unit}"

    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        finite = value.is_finite() if isinstance(value, Decimal) else value == value
        inside = finite and (low < value if above else low <= value)
        inside = inside and (value < high if under else value <= high)
        if not (inside and abs(value) != float("inf")):
            raise InvalidSetting(attribute.name, f"must be {span}, got {_shown(value)}")

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


# --- the options strategies (actors.strategies.options) -------------------------------------
# Each key's range is the strategy's own (actors.options.signals and .choice,
# actors.strategies.options), bounded above where the strategy is not, as every table here is.


class EntryPrice(enum.StrEnum):
    """The entry's limit: the mid rounded up to the option tick (never above the ask), or the
    ask."""

    MID = "mid"
    ASK = "ask"


class OnTimeout(enum.StrEnum):
    """What an entry not filled within ``entry_timeout`` becomes once cancelled: nothing, or
    a new entry at a fresh quote (up to ``max_replaces`` times)."""

    CANCEL = "cancel"
    REPLACE = "replace"


def _zero_or_in_range(low: Any, high: Any, zero: str) -> _Validator:
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        finite = value.is_finite() if isinstance(value, Decimal) else value == value
        if not (finite and (value == 0 or low <= value <= high)):
            raise InvalidSetting(
                attribute.name,
                f"must be 0 ({zero}) or between {low} and {high}, got {_shown(value)}",
            )

    return validate


# The most contracts a volume or open-interest minimum may ask for.
_COUNT = 1_000_000_000
# An RSI level: strictly inside 0..100, as the scalp rule takes it.
_RSI_LEVEL = _in_range(0, 100, above=True, under=True)


@attrs.frozen(kw_only=True)
class ContractConfig:
    """``[symbols.<scalp|whale>.contract]``: which option a signal buys."""

    # The fewest calendar days from the signal's day to the expiry (0: one expiring today).
    min_dte: int = attrs.field(default=1, validator=_in_range(0, 1000, " days"))
    # Strikes out of the money from the one nearest the price (negative: into the money).
    strikes_out: int = attrs.field(default=0, validator=_in_range(-100, 100))


@attrs.frozen(kw_only=True)
class LiquidityConfig:
    """``[symbols.<scalp|whale>.liquidity]``: how good the option's quote must be."""

    # The widest spread, ask - bid, in percent of the mid (which is at most 200 %).
    max_spread_pct: Decimal = attrs.field(
        default=Decimal(10), validator=_in_range(Decimal(0), Decimal(200), " %", above=True)
    )
    min_volume: int = attrs.field(default=100, validator=_in_range(0, _COUNT))
    min_open_interest: int = attrs.field(default=500, validator=_in_range(0, _COUNT))


@attrs.frozen(kw_only=True)
class EntryConfig:
    """``[symbols.<scalp|whale>.entry]``: the bracket's prices."""

    entry_price: EntryPrice = EntryPrice.MID
    # The take-profit and the stop, in percent of the entry premium above and below it.
    tp_pct: Decimal = attrs.field(
        default=Decimal(50), validator=_in_range(Decimal(0), Decimal(10_000), " %", above=True)
    )
    sl_pct: Decimal = attrs.field(
        default=Decimal(30),
        validator=_in_range(Decimal(0), Decimal(100), " %", above=True, under=True),
    )


@attrs.frozen(kw_only=True)
class SizingConfig:
    """``[symbols.<scalp|whale>.sizing]``: how many contracts an entry buys."""

    # The most one trade may lose at its stop, in percent of the account's equity.
    max_risk_pct_per_trade: Decimal = attrs.field(
        default=Decimal(1), validator=_in_range(Decimal(0), Decimal(100), " %", above=True)
    )
    max_contracts: int = attrs.field(default=10, validator=_in_range(1, 10_000))
    # The most premium one entry may pay (premium x 100 x contracts); 0: no cap (TOML has no
    # null).
    max_notional: Decimal = attrs.field(
        default=Decimal(0),
        validator=_zero_or_in_range(Decimal(1), Decimal(1_000_000_000), "no cap"),
    )


def _plain(table: Any) -> dict[str, object]:
    values = attrs.asdict(table, recurse=False)
    return {k: v.value if isinstance(v, enum.Enum) else v for k, v in values.items()}


@attrs.frozen(kw_only=True)
class OptionsConfig:
    """What both options strategies' tables have: the option, its liquidity, the bracket's
    prices, the size, and the time rules (``actors.strategies.options``)."""

    RULE: ClassVar[StrategyName]
    """The strategy whose signal rule the table's own keys set."""

    contract: ContractConfig = ContractConfig()
    liquidity: LiquidityConfig = LiquidityConfig()
    entry: EntryConfig = EntryConfig()
    sizing: SizingConfig = SizingConfig()
    # Seconds the entry may work unfilled before it is cancelled.
    entry_timeout: float = attrs.field(
        default=60.0, validator=_in_range(0, 86_400, " seconds", above=True)
    )
    on_timeout: OnTimeout = OnTimeout.CANCEL
    # Entries placed again after time-outs (with on_timeout = "replace").
    max_replaces: int = attrs.field(default=1, validator=_in_range(0, 390))
    # Seconds after an exit before the next entry.
    cooldown: float = attrs.field(
        default=300.0, validator=_in_range(0, 86_400, " seconds", above=True)
    )
    # Minutes before 16:00 on the expiry day when a held option is closed.
    close_before_expiry: int = attrs.field(default=15, validator=_in_range(0, 390, " minutes"))
    # The underlying's price increment (its bars are priced on it); not a parameter of the
    # strategy, whose options have the option tick (0.01 under 3.00, 0.05 from 3.00).
    tick: Decimal = attrs.field(
        default=Decimal("0.01"), validator=_in_range(Decimal("0.0001"), Decimal(100))
    )

    def parameters(self) -> dict[str, object]:
        """The settings as ``OptionsParams`` takes them (plain values): the rule's own keys
        under its name (``{"scalp": {...}}``), a mapping per sub-table, the time rules."""
        values = _plain(self)
        del values["tick"]
        sizing = _plain(self.sizing)
        sizing["max_notional"] = self.sizing.max_notional or None
        nested = {
            "contract": _plain(self.contract),
            "liquidity": _plain(self.liquidity),
            "entry": _plain(self.entry),
            "sizing": sizing,
        }
        rule = {k: v for k, v in values.items() if k not in _OPTIONS_KEYS}
        shared = {k: v for k, v in values.items() if k in _OPTIONS_KEYS}
        return {self.RULE.value: rule, **shared, **nested}


_OPTIONS_KEYS = frozenset(field.name for field in attrs.fields(OptionsConfig))


@attrs.frozen(kw_only=True)
class ScalpConfig(OptionsConfig):
    """``[symbols.scalp]``: buy an option when the RSI of 1-minute bars crosses out of
    oversold (a call) or overbought (a put) on a bar of more than ``volume_factor`` times the
    ``volume_window`` bars' mean volume."""

    RULE: ClassVar[StrategyName] = StrategyName.SCALP

    rsi_period: int = attrs.field(default=14, validator=_in_range(1, 10_000, " bars"))
    oversold: float = attrs.field(default=30.0, validator=_RSI_LEVEL)
    overbought: float = attrs.field(default=70.0, validator=_RSI_LEVEL)
    volume_window: int = attrs.field(default=20, validator=_in_range(1, 10_000, " bars"))
    volume_factor: Decimal = attrs.field(
        default=Decimal("1.0"), validator=_in_range(Decimal(0), Decimal(1000), above=True)
    )

    def __attrs_post_init__(self) -> None:
        if self.oversold >= self.overbought:
            raise InvalidSetting(
                "oversold",
                f"must be less than overbought ({self.overbought:g}), got {self.oversold:g}",
            )


@attrs.frozen(kw_only=True)
class WhaleConfig(OptionsConfig):
    """``[symbols.whale]``: buy an option on a 60-minute bar of at least ``volume_multiple``
    times the mean volume of the bars of the last ``lookback_days`` trading dates (a call when
    it closes up, a put when down), then no other signal for ``debounce_days``."""

    RULE: ClassVar[StrategyName] = StrategyName.WHALE

    volume_multiple: Decimal = attrs.field(
        default=Decimal("3"), validator=_in_range(Decimal(0), Decimal(1000), above=True)
    )
    lookback_days: int = attrs.field(default=20, validator=_in_range(1, 1000, " days"))
    debounce_days: int = attrs.field(default=3, validator=_in_range(1, 365, " days"))


STRATEGY_TABLES: dict[StrategyName, type[BarOrdersConfig | OptionsConfig]] = {
    StrategyName.MA_CROSS: MaCrossConfig,
    StrategyName.MOMENTUM: MomentumConfig,
    StrategyName.SCALP: ScalpConfig,
    StrategyName.WHALE: WhaleConfig,
}
"""Each strategy with a parameter table (all but the grid): its ``[symbols.<name>]`` table's
class; the table is the ``SymbolConfig`` field of the strategy's name."""


def strategy_problem(
    strategy: StrategyName,
    *,
    has_lots: bool,
    ma_cross: MaCrossConfig | None,
    momentum: MomentumConfig | None,
    scalp: ScalpConfig | None,
    whale: WhaleConfig | None,
) -> InvalidSetting | None:
    """What is wrong with a ``[[symbols]]`` table's strategy and the tables beside it, naming
    the key, or None."""
    if strategy is StrategyName.GRID and not has_lots:
        return InvalidSetting("lots", "required field missing (the grid trades a lot map)")
    if strategy is not StrategyName.GRID and has_lots:
        return InvalidSetting(
            "lots", f'only the grid trades a lot map, not strategy = "{strategy}"'
        )
    tables = {
        StrategyName.MA_CROSS: ma_cross,
        StrategyName.MOMENTUM: momentum,
        StrategyName.SCALP: scalp,
        StrategyName.WHALE: whale,
    }
    for name, table in tables.items():
        if table is not None and strategy is not name:
            return InvalidSetting(
                name.value, f'a [symbols.{name}] table, but the symbol\'s strategy is "{strategy}"'
            )
    return None
