"""The options bot's signals (SPEC §14), pure: bars in, signals out, no clock read and no I/O.

Each rule follows one symbol and takes its completed bars one at a time, oldest first, through
``update(bar, live=...)``: first the warm-up history with ``live=False`` (the statistics move,
no signal comes, and the whale's debounce stays where it was), then the live bars. A bar that
starts at or before the previous one (history and live bars may repeat one where they meet) is
ignored and counted in ``repeats``; a bar of another symbol than the first one is a
``SignalError``, as is a bar whose start is naive.

**RSI** (``Rsi``): Wilder's relative strength index over closes. With
``change_i = close_i - close_(i-1)``, ``gain_i = max(change_i, 0)`` and
``loss_i = max(-change_i, 0)``: the first average gain (loss) is the simple mean of the first
``period`` gains (losses); after it each new one is ``avg = (avg * (period - 1) + current) /
period``. ``RSI = 100 - 100 / (1 + avg_gain / avg_loss)``: 100 when ``avg_loss`` is 0, 50 when
both are 0. It has a value from the ``period + 1``-th close on. The changes are exact (Decimal
differences of the closes) and then held as floats: the averages and the RSI are float
arithmetic, the RSI computed as ``100 * avg_gain / (avg_gain + avg_loss)`` (the same number
with one rounding fewer: a gain of 1.5 against a loss of 3.5 is exactly 30.0).

**Scalp** (``ScalpRule``, on 1-minute bars): with ``previous`` the RSI of the bar before and
``rsi`` this bar's, the signal is

* **bullish** when ``previous < oversold <= rsi`` (the RSI crosses up out of the oversold
  zone: a previous RSI of exactly ``oversold`` was not in it),
* **bearish** when ``previous > overbought >= rsi`` (it crosses down out of the overbought
  zone),

each only with **volume confirmation**: this bar's volume is strictly more than
``volume_factor`` times the mean volume of the ``volume_window`` bars before it (this bar not
included), compared exactly (``volume * volume_window > volume_factor * their sum``); while
fewer than ``volume_window`` bars came before it, no signal. So the first bar that can signal
is bar number ``warmup = max(rsi_period + 2, volume_window + 1)`` (its RSI and the previous
bar's need ``rsi_period + 2`` closes).

**Whale** (``WhaleRule``, on 60-minute bars): the **lookback** of a bar is the latest
``lookback_days`` New York dates strictly before the bar's New York date that had bars
(weekends, holidays and days without data are not counted: 20 days is 20 trading dates). A bar
is a **spike** when it has volume and ``volume >= volume_multiple * mean``, ``mean`` the mean
volume of all the bars of its lookback (compared exactly, ``volume * their count >=
volume_multiple * their sum``); while fewer than ``lookback_days`` earlier dates were seen, no
bar is a spike. Every bar counts towards its own date's volume, spikes included. The earliest
date seen may have been joined in the middle (where the history starts): its bars count as
they are, a mean per bar being as good on fewer of them. A spike whose close is above its open
is **bullish**, below **bearish**; a doji (close equal to open) is no signal. **Debounce**: no
whale signal while less than ``debounce_days * 24`` hours of absolute time (UTC: a clock change
does not stretch it) have passed since the start of the bar of the last signal; a spike it
suppresses does not move it. The last signal's time is the host's to keep durably: it comes
back through the constructor (``last_signal``) after a restart, and a live signal moves it
(read ``last_signal`` after each signal). ``warmup_bars`` is ``lookback_days * 7 + 1``: the
regular session has seven 60-minute bars a day (09:30, 10:00, ..., 15:00), so that many bars
run up to and including the first bar that can signal, the lookback's dates being whole
regular sessions; a history of that many bars ending at a close holds ``lookback_days`` whole
dates.
"""

from __future__ import annotations

import collections
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final, Literal

import attrs

from ..domain import Bar
from ..domain.sessions import NEW_YORK

__all__ = [
    "BARS_PER_DAY",
    "SCALP",
    "WHALE",
    "Direction",
    "RuleName",
    "Signal",
    "SignalError",
    "Rsi",
    "ScalpParams",
    "ScalpRule",
    "WhaleParams",
    "WhaleRule",
]

SCALP: Final = "scalp"
WHALE: Final = "whale"
BARS_PER_DAY = 7
"""The regular session's 60-minute bars a day (09:30-10:00, 10:00-11:00, ..., 15:00-16:00)."""

Direction = Literal["bullish", "bearish"]
RuleName = Literal["scalp", "whale"]


class SignalError(ValueError):
    """Raised by the rules' parameters for a value they cannot take (the message names the
    field and the value), and by a rule given a bar it cannot take (another symbol's, or a
    naive start) or a naive ``last_signal``."""


@attrs.frozen(kw_only=True)
class Signal:
    """A rule's signal on the completed bar of ``symbol`` that started ``at``."""

    rule: RuleName
    symbol: str
    side: Direction
    at: datetime
    """The start of the bar that signalled."""
    reason: str
    """What fired, with its numbers, for people (alerts, the journal)."""
    volume: int
    """The bar's volume."""
    mean_volume: float
    """The mean volume it was compared with: the scalp's window, the whale's lookback."""
    rsi: float | None = None
    """The scalp's RSI on the bar (None for a whale)."""
    previous_rsi: float | None = None
    """The scalp's RSI on the bar before (None for a whale)."""

    @property
    def volume_ratio(self) -> float:
        """``volume / mean_volume``: how far the volume is above its mean (infinite over a mean
        of 0)."""
        if self.mean_volume == 0:
            return math.inf
        return self.volume / self.mean_volume


def _whole(name: str, value: object) -> int:
    # bool is an int to Python, never a count to a person.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SignalError(f"{name} must be a whole number >= 1, got {value!r}")
    return value


def _count(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    _whole(attribute.name, value)


def _positive(_instance: object, attribute: attrs.Attribute[Decimal], value: object) -> None:
    if not isinstance(value, Decimal) or not value.is_finite() or value <= 0:
        raise SignalError(f"{attribute.name} must be a Decimal > 0, got {value!r}")


def _level(_instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    # NaN fails the comparison, so it is refused too.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 100:
        raise SignalError(
            f"{attribute.name} must be an RSI level strictly between 0 and 100, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class ScalpParams:
    """The scalp's settings (see the module doc)."""

    rsi_period: int = attrs.field(default=14, validator=_count)
    """The RSI's period, in bars."""
    oversold: float = attrs.field(default=30.0, validator=_level)
    overbought: float = attrs.field(default=70.0, validator=_level)
    volume_window: int = attrs.field(default=20, validator=_count)
    """The bars before this one whose mean volume confirms a signal."""
    volume_factor: Decimal = attrs.field(default=Decimal("1.0"), validator=_positive)
    """A signal's bar needs more than this many times the window's mean volume."""

    def __attrs_post_init__(self) -> None:
        if self.oversold >= self.overbought:
            raise SignalError(
                f"oversold ({self.oversold:g}) must be less than overbought ({self.overbought:g})"
            )


@attrs.frozen(kw_only=True)
class WhaleParams:
    """The whale's settings (see the module doc)."""

    volume_multiple: Decimal = attrs.field(default=Decimal("3"), validator=_positive)
    """A spike has at least this many times the lookback's mean volume."""
    lookback_days: int = attrs.field(default=20, validator=_count)
    """The trading dates (dates with bars) before a bar's date whose bars make the mean."""
    debounce_days: int = attrs.field(default=3, validator=_count)
    """Days of 24 hours after a whale signal in which no other comes."""


class Rsi:
    """Wilder's RSI of ``period`` over closes given one at a time (see the module doc for the
    exact definition and the float arithmetic)."""

    def __init__(self, period: int = 14) -> None:
        self.period = _whole("period", period)
        self._close: Decimal | None = None
        self._changes = 0
        # The sums of the first gains and losses until ``period`` are in, then the averages.
        self._gain = 0.0
        self._loss = 0.0
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The RSI at the latest close: None until ``period + 1`` closes were given."""
        return self._value

    def update(self, close: Decimal) -> float | None:
        """Take the next close; the RSI at it (``value``)."""
        previous, self._close = self._close, close
        if previous is None:
            return None
        change = float(close - previous)
        gain = change if change > 0 else 0.0
        loss = -change if change < 0 else 0.0
        period = self.period
        self._changes += 1
        if self._changes < period:
            self._gain += gain
            self._loss += loss
            return None
        if self._changes == period:
            self._gain = (self._gain + gain) / period
            self._loss = (self._loss + loss) / period
        else:
            self._gain = (self._gain * (period - 1) + gain) / period
            self._loss = (self._loss * (period - 1) + loss) / period
        total = self._gain + self._loss
        self._value = 50.0 if total == 0 else 100.0 * self._gain / total
        return self._value


@attrs.define
class _Stream:
    # One symbol's bars in time order: the first bar names the symbol; a bar not after the
    # last one taken is a repeat.
    rule: str
    symbol: str | None = None
    last: datetime | None = None
    """The last bar's start, in UTC (aware datetimes of one zone compare by the wall clock)."""
    repeats: int = 0

    def take(self, bar: Bar) -> bool:
        if bar.start.utcoffset() is None:
            raise SignalError(
                f"{self.rule} rule: the bar of {bar.symbol} at {bar.start.isoformat()} has a "
                f"naive start (bars start at aware times)"
            )
        if self.symbol is None:
            self.symbol = bar.symbol
        elif bar.symbol != self.symbol:
            raise SignalError(
                f"{self.rule} rule of {self.symbol}: given a bar of {bar.symbol} at "
                f"{bar.start.isoformat()} (a rule follows one symbol)"
            )
        start = bar.start.astimezone(UTC)
        if self.last is not None and start <= self.last:
            self.repeats += 1
            return False
        self.last = start
        return True


class ScalpRule:
    """The scalp of one symbol on its 1-minute bars (see the module doc)."""

    def __init__(self, params: ScalpParams) -> None:
        self.params = params
        self._rsi = Rsi(params.rsi_period)
        self._volumes: collections.deque[int] = collections.deque(maxlen=params.volume_window)
        self._volume_sum = 0
        """The sum of ``_volumes``: the volumes of the last ``volume_window`` bars."""
        self._stream = _Stream(rule=SCALP)

    @property
    def warmup(self) -> int:
        """The bars up to and including the first that can signal:
        ``max(rsi_period + 2, volume_window + 1)``."""
        return max(self.params.rsi_period + 2, self.params.volume_window + 1)

    @property
    def rsi(self) -> float | None:
        """The RSI at the latest bar (None for its first ``rsi_period`` bars)."""
        return self._rsi.value

    @property
    def symbol(self) -> str | None:
        """The symbol followed (None before the first bar)."""
        return self._stream.symbol

    @property
    def repeats(self) -> int:
        """Bars ignored because they did not start after the previous one."""
        return self._stream.repeats

    def update(self, bar: Bar, *, live: bool = True) -> Signal | None:
        """Take the next completed bar; its signal, if any (never with ``live=False``)."""
        if not self._stream.take(bar):
            return None
        previous = self._rsi.value
        rsi = self._rsi.update(bar.close)
        volumes, window = self._volumes, self.params.volume_window
        earlier = len(volumes)
        before = self._volume_sum
        if earlier == window:
            self._volume_sum -= volumes[0]
        volumes.append(bar.volume)
        self._volume_sum += bar.volume
        if not live or previous is None or rsi is None or earlier < window:
            return None
        params = self.params
        side: Direction
        if previous < params.oversold <= rsi:
            side, crossed = "bullish", f"crossed up out of {params.oversold:g}"
        elif previous > params.overbought >= rsi:
            side, crossed = "bearish", f"crossed down out of {params.overbought:g}"
        else:
            return None
        if Decimal(bar.volume * window) <= params.volume_factor * before:
            return None
        mean = before / window
        return Signal(
            rule=SCALP,
            symbol=bar.symbol,
            side=side,
            at=bar.start,
            reason=(
                f"RSI {previous:.2f} -> {rsi:.2f} {crossed}, volume {bar.volume:,} > "
                f"{params.volume_factor} x {window}-bar mean {mean:,.1f}"
            ),
            volume=bar.volume,
            mean_volume=mean,
            rsi=rsi,
            previous_rsi=previous,
        )


@attrs.frozen
class _Date:
    # One New York date's bars: their number and total volume.
    day: date
    bars: int
    volume: int


class WhaleRule:
    """The whale of one symbol on its 60-minute bars (see the module doc). ``last_signal``:
    the start of the bar of its last signal, as the host kept it (None: none yet)."""

    def __init__(self, params: WhaleParams, last_signal: datetime | None = None) -> None:
        if last_signal is not None and last_signal.utcoffset() is None:
            raise SignalError(
                f"last_signal must be an aware datetime, got naive {last_signal.isoformat()}"
            )
        self.params = params
        self._last_signal = last_signal
        self._debounce = timedelta(days=params.debounce_days)
        self._dates: collections.deque[_Date] = collections.deque(maxlen=params.lookback_days)
        """The latest ``lookback_days`` dates before the current one."""
        self._bars = 0
        self._volume = 0
        """The bars and the volume of ``_dates``."""
        self._today: _Date | None = None
        """The date of the latest bar, so far."""
        self._stream = _Stream(rule=WHALE)

    @property
    def last_signal(self) -> datetime | None:
        """The start of the bar of the last whale signal (given, or of a live signal since)."""
        return self._last_signal

    @property
    def warmup_bars(self) -> int:
        """``lookback_days * 7 + 1``: the bars up to and including the first that can signal
        when each date has the regular session's seven (see the module doc)."""
        return self.params.lookback_days * BARS_PER_DAY + 1

    @property
    def symbol(self) -> str | None:
        """The symbol followed (None before the first bar)."""
        return self._stream.symbol

    @property
    def repeats(self) -> int:
        """Bars ignored because they did not start after the previous one."""
        return self._stream.repeats

    def update(self, bar: Bar, *, live: bool = True) -> Signal | None:
        """Take the next completed bar; its signal, if any. With ``live=False`` (history) the
        bar only counts towards the means: no signal, and the debounce does not move."""
        if not self._stream.take(bar):
            return None
        day = bar.start.astimezone(NEW_YORK).date()
        today = self._today
        if today is not None and today.day != day:
            # Bars come in time order: the latest date is over.
            if len(self._dates) == self._dates.maxlen:
                oldest = self._dates[0]
                self._bars -= oldest.bars
                self._volume -= oldest.volume
            self._dates.append(today)
            self._bars += today.bars
            self._volume += today.volume
            today = None
        signal = self._judge(bar) if live else None
        self._today = (
            _Date(day=day, bars=1, volume=bar.volume)
            if today is None
            else _Date(day=day, bars=today.bars + 1, volume=today.volume + bar.volume)
        )
        return signal

    def _judge(self, bar: Bar) -> Signal | None:
        params = self.params
        if len(self._dates) < params.lookback_days or bar.volume <= 0:
            return None
        bars, total = self._bars, self._volume
        if Decimal(bar.volume * bars) < params.volume_multiple * total:
            return None
        side: Direction
        if bar.close > bar.open:
            side, move = "bullish", ">"
        elif bar.close < bar.open:
            side, move = "bearish", "<"
        else:
            return None
        last = self._last_signal
        if last is not None and bar.start.astimezone(UTC) - last.astimezone(UTC) < self._debounce:
            return None
        self._last_signal = bar.start
        mean = total / bars
        first = self._dates[0].day
        return Signal(
            rule=WHALE,
            symbol=bar.symbol,
            side=side,
            at=bar.start,
            reason=(
                f"volume {bar.volume:,} >= {params.volume_multiple} x mean {mean:,.1f} of the "
                f"{bars} 60-minute bars of {params.lookback_days} trading dates from "
                f"{first.isoformat()}, close {bar.close} {move} open {bar.open}"
            ),
            volume=bar.volume,
            mean_volume=mean,
        )
