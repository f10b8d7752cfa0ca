"""Bars: which bar a moment belongs to, and bars completed from trades, one trade at a time.

One definition for every layer that makes bars (the market-data actors, the venues' history
endpoints, the history adapters), so that a bar built live equals the bar history serves:

* A bar size is in seconds: an **intraday** size divides a day (60, 300, 900, 3600, 14400...);
  ``DAY`` (86400) is the **daily** bar.
* Bars are made of one kind of session (``SessionKind``, ``actors.domain.sessions``):
  ``"regular"`` is 09:30-16:00 New York time, ``"extended"`` 04:00-20:00 (pre-market, regular
  and after-hours), on trading days only. A trade outside them (at night, at a weekend, on a
  holiday, or before 09:30 for regular bars) is in no bar.
* An intraday bar covers ``[k * size, (k + 1) * size)`` of the New York wall clock from
  midnight, cut to its session: the regular session's first hourly bar is 09:30-10:00 and
  starts (is dated) at 09:30, its last 15:00-16:00. The session's end always ends a bar, so
  the regular session's last bar closes at 16:00 and the extended session's at 20:00.
* A daily bar is the whole session of one trading day: 09:30-16:00 (regular) or 04:00-20:00
  (extended); it starts at the session's open.
* **No empty bars**: an interval without a trade has no bar (it is not filled in with the
  previous close); a strategy counts bars, not clock intervals.

``BarBuilder`` completes bars of several sizes of one symbol as trades arrive: a bar is
complete when a trade at or after its end arrives (of the next interval, or the first after a
gap), or when the clock passes its end (``close_due``, driven by a timer). A trade older than
the bar it would belong to once that bar has closed (a late print) is dropped and counted.

**A bar's trades** (``bar_trades``), where a bar stands for the trades that made it (a replay,
the venues' history): four trades, ``TRADE_STEP`` (15 s) apart from its start: the open, then
whichever extreme is nearer the open, then the other extreme, then the close (O, H, L, C when
the high is nearer the open, else O, L, H, C; ties go to the high), each with a quarter of the
bar's volume (the remainder on the close). So every bar's high and low are visited, which is
what triggers limit and conditional orders in the bar, in a plausible order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Literal

import attrs

from ._market import Bar, Trade
from ._values import epoch_ns
from .sessions import AFTER_CLOSE, NEW_YORK, PRE_OPEN, REGULAR_CLOSE, REGULAR_OPEN, is_trading_day

__all__ = [
    "DAY",
    "TRADE_STEP",
    "BarBuilder",
    "BarError",
    "ClosedBar",
    "SessionKind",
    "Window",
    "bar_path",
    "bar_trades",
    "check_sessions",
    "check_size",
    "compose",
    "window",
]

DAY = 86_400
TRADE_STEP = timedelta(seconds=15)
"""The time between a bar's trades (``bar_trades``)."""
_TRADE_STEP_NS = 15_000_000_000
SessionKind = Literal["regular", "extended"]
_NS = 1_000_000_000


class BarError(ValueError):
    """Raised for a bar size or session kind no bar can have; names the value."""


@attrs.frozen
class Window:
    """The span of one bar: ``[start_ns, end_ns)`` in Unix nanoseconds."""

    start_ns: int
    end_ns: int

    @property
    def start(self) -> datetime:
        return datetime.fromtimestamp(self.start_ns // _NS, UTC)


@attrs.frozen
class ClosedBar:
    """A completed bar, its size in seconds, and when it ended (Unix ns)."""

    seconds: int
    bar: Bar
    end_ns: int


def check_size(seconds: int) -> int:
    """``seconds`` if it is a bar size (see the module doc), else ``BarError``."""
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise BarError(f"a bar size is a whole number of seconds, got {seconds!r}")
    if seconds == DAY or (0 < seconds < DAY and DAY % seconds == 0):
        return seconds
    raise BarError(
        f"bar size {seconds} s: an intraday size must divide a day (60, 300, 3600, ...), "
        f"or be {DAY} (daily)"
    )


def check_sessions(sessions: str) -> SessionKind:
    if sessions == "regular":
        return "regular"
    if sessions == "extended":
        return "extended"
    raise BarError(f"sessions must be 'regular' or 'extended', got {sessions!r}")


@attrs.frozen
class _Session:
    open_ns: int
    close_ns: int
    open_wall_ns: int
    """The open's time of day (New York wall clock), in ns since midnight."""


@lru_cache(maxsize=4096)
def _session(day: date, sessions: SessionKind) -> _Session | None:
    if not is_trading_day(day):
        return None
    opening, closing = (
        (REGULAR_OPEN, REGULAR_CLOSE) if sessions == "regular" else (PRE_OPEN, AFTER_CLOSE)
    )
    return _Session(
        open_ns=epoch_ns(datetime.combine(day, opening, tzinfo=NEW_YORK)),
        close_ns=epoch_ns(datetime.combine(day, closing, tzinfo=NEW_YORK)),
        open_wall_ns=_wall_ns(opening),
    )


def _wall_ns(clock: time) -> int:
    return (clock.hour * 3600 + clock.minute * 60 + clock.second) * _NS


_day_span: tuple[int, int, date] = (0, 0, date(1970, 1, 1))
"""The last New York day ``_day_of`` found, and the Unix ns its midnights bound."""


def _day_of(ts_ns: int) -> date:
    """The New York date at ``ts_ns`` (Unix ns); the day's bounds are kept for the next call:
    trades come in time order, and a time zone conversion costs more than the rest of a
    ``window``."""
    global _day_span
    low, high, day = _day_span
    if low <= ts_ns < high:
        return day
    day = datetime.fromtimestamp(ts_ns // _NS, NEW_YORK).date()
    low = epoch_ns(datetime.combine(day, time(0), tzinfo=NEW_YORK))
    high = epoch_ns(datetime.combine(day + timedelta(days=1), time(0), tzinfo=NEW_YORK))
    _day_span = (low, high, day)
    return day


def window(ts_ns: int, seconds: int, sessions: SessionKind) -> Window | None:
    """The bar of ``seconds`` of ``sessions`` that a trade at ``ts_ns`` belongs to, or None
    when it is outside those sessions (see the module doc)."""
    found = _window(ts_ns, seconds, sessions)
    return None if found is None else found[0]


def _window(ts_ns: int, seconds: int, sessions: SessionKind) -> tuple[Window, int] | None:
    # ``window``, and the end of its session (Unix ns).
    session = _session(_day_of(ts_ns), sessions)
    if session is None or not session.open_ns <= ts_ns < session.close_ns:
        return None
    if seconds == DAY:
        return Window(session.open_ns, session.close_ns), session.close_ns
    # The wall clock runs at the same pace as Unix time within a session (the clocks change at
    # 02:00), so the session's open anchors the wall clock for the whole of it.
    size = seconds * _NS
    wall = session.open_wall_ns + (ts_ns - session.open_ns)
    start = max(wall // size * size, session.open_wall_ns)
    end = wall // size * size + size
    return (
        Window(
            session.open_ns + (start - session.open_wall_ns),
            min(session.open_ns + (end - session.open_wall_ns), session.close_ns),
        ),
        session.close_ns,
    )


@attrs.define
class _Open:
    window: Window
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    source: Bar | None = None
    """A bar given whole (``take``) that is exactly this one, so far: what it closes as."""


@attrs.define
class _Size:
    seconds: int
    open: _Open | None = None
    horizon_ns: int = 0
    """The end of the last bar closed: an older trade is late."""
    last: Window | None = None
    close_ns: int = 0
    """The last window opened, and the end of its session: the next one of the same session
    starts where it ends (``BarBuilder._span``)."""


class BarBuilder:
    """One symbol's bars of ``sizes`` (seconds) made of ``sessions`` (see the module doc)."""

    def __init__(self, symbol: str, sizes: Iterable[int], sessions: SessionKind) -> None:
        self.symbol = symbol
        self.sessions = check_sessions(sessions)
        chosen = sorted({check_size(s) for s in sizes})
        if not chosen:
            raise BarError(f"{symbol}: a bar builder needs at least one bar size")
        self._sizes = [_Size(seconds=s) for s in chosen]
        self.late = 0
        """Trades dropped because the bar they belong to had closed."""
        self.outside = 0
        """Trades dropped because they are outside the sessions."""

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(s.seconds for s in self._sizes)

    def add(self, price: Decimal, size: int, ts_ns: int) -> list[ClosedBar]:
        """Count a trade; return the bars it completed (oldest end first, then by size)."""
        return self._add(ts_ns, price, price, price, price, size)

    def add_bar(self, bar: Bar) -> list[ClosedBar]:
        """Count a bar of a smaller size (a minute bar into 5-minute bars): its open, high,
        low and close as trades at its start. Its start must lie in the bar it belongs to,
        which holds when its size divides the builder's sizes."""
        return self._add(epoch_ns(bar.start), bar.open, bar.high, bar.low, bar.close, bar.volume)

    def plan(self, first_ns: int, last_ns: int) -> list[Window | None] | None:
        """Whether trades stamped from ``first_ns`` to ``last_ns`` (at most a minute apart, in
        time order) would complete no bar and be late for none: then, per size, the window
        they open (None: they go into the open bar, or are outside the sessions), for ``take``;
        else None (each must be ``add``ed in turn)."""
        if first_ns // 60_000_000_000 != last_ns // 60_000_000_000:
            return None  # a session's bounds are on whole minutes: none falls between them
        planned: list[Window | None] = []
        for state in self._sizes:
            bar = state.open
            if bar is not None:
                if not bar.window.start_ns <= first_ns or last_ns >= bar.window.end_ns:
                    return None
                planned.append(None)
                continue
            if first_ns < state.horizon_ns:
                return None
            span = self._span(state, first_ns)
            if span is None:
                if window(last_ns, state.seconds, self.sessions) is not None:
                    return None
            elif last_ns >= span.end_ns:
                return None
            planned.append(span)
        return planned

    def take(
        self,
        planned: list[Window | None],
        prices: Sequence[Decimal],
        volume: int,
        count: int,
        source: Bar | None = None,
    ) -> None:
        """Count ``count`` trades at ``prices`` (in order) of ``volume`` shares in all, as
        ``plan`` found them: the same as ``add``ing each in turn. ``source``: the bar they are
        the trades of (``bar_trades``), closed as itself when it makes a bar alone."""
        high, low = max(prices), min(prices)
        outside = False
        for state, span in zip(self._sizes, planned, strict=True):
            bar = state.open
            if bar is not None:
                bar.high = max(bar.high, high)
                bar.low = min(bar.low, low)
                bar.close = prices[-1]
                bar.volume += volume
                bar.source = None
            elif span is None:
                outside = True
            else:
                state.open = _Open(span, prices[0], high, low, prices[-1], volume)
                if (
                    source is not None
                    and source.start.tzinfo is UTC
                    and span.start_ns == epoch_ns(source.start)
                    and source.open is prices[0]
                    and source.high is high
                    and source.low is low
                    and source.close is prices[-1]
                    and source.volume == volume
                    and source.symbol == self.symbol
                ):
                    # The bar it closes as is the one given, to the last digit: no copy.
                    state.open.source = source
        if outside:
            self.outside += count

    def close_due(self, now_ns: int) -> list[ClosedBar]:
        """The open bars whose end the clock has reached at ``now_ns``, closed."""
        return _ordered(
            [
                self._close(s, s.open)
                for s in self._sizes
                if s.open and s.open.window.end_ns <= now_ns
            ]
        )

    def due_by(self, now_ns: int) -> bool:
        """Whether an open bar's end is at or before ``now_ns`` (``close_due`` would close it)."""
        return any(s.open is not None and s.open.window.end_ns <= now_ns for s in self._sizes)

    def flush(self) -> list[ClosedBar]:
        """Close every open bar now (the data has ended)."""
        return _ordered([self._close(s, s.open) for s in self._sizes if s.open])

    def _add(
        self, ts_ns: int, open_: Decimal, high: Decimal, low: Decimal, close: Decimal, volume: int
    ) -> list[ClosedBar]:
        closed: list[ClosedBar] = []
        outside = late = False
        for state in self._sizes:
            bar = state.open
            if bar is not None:
                if bar.window.start_ns <= ts_ns < bar.window.end_ns:
                    bar.high = max(bar.high, high)
                    bar.low = min(bar.low, low)
                    bar.close = close
                    bar.volume += volume
                    bar.source = None
                    continue
                if ts_ns < bar.window.start_ns:
                    late = True
                    continue
                closed.append(self._close(state, bar))
            if ts_ns < state.horizon_ns:
                late = True
                continue
            span = self._span(state, ts_ns)
            if span is None:
                outside = True
                continue
            state.open = _Open(span, open_, high, low, close, volume)
        self.late += late
        self.outside += outside
        return _ordered(closed)

    def _span(self, state: _Size, ts_ns: int) -> Window | None:
        """``window(ts_ns, state.seconds, self.sessions)``: the window after the last one
        opened when it holds ``ts_ns`` and ends within that session (an intraday window ends
        where the next begins), else found anew."""
        last = state.last
        if last is not None:
            end = last.end_ns + state.seconds * _NS
            if last.end_ns <= ts_ns < end <= state.close_ns:
                span = state.last = Window(last.end_ns, end)
                return span
        found = _window(ts_ns, state.seconds, self.sessions)
        if found is None:
            return None
        state.last, state.close_ns = found
        return found[0]

    def _close(self, state: _Size, bar: _Open) -> ClosedBar:
        state.open = None
        state.horizon_ns = bar.window.end_ns
        if bar.source is not None and bar.window.end_ns - bar.window.start_ns == (
            state.seconds * _NS
        ):
            return ClosedBar(seconds=state.seconds, bar=bar.source, end_ns=bar.window.end_ns)
        return ClosedBar(
            seconds=state.seconds,
            bar=Bar(
                symbol=self.symbol,
                start=bar.window.start,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
            ),
            end_ns=bar.window.end_ns,
        )


def _ordered(closed: list[ClosedBar]) -> list[ClosedBar]:
    if len(closed) < 2:
        return closed
    return sorted(closed, key=lambda c: (c.end_ns, c.seconds))


def compose(bars: Sequence[Bar], seconds: int, sessions: SessionKind) -> list[Bar]:
    """Bars of a smaller size (minute bars, in time order) composed into bars of ``seconds``
    of ``sessions``; the last one too, complete or not."""
    if not bars:
        return []
    builder = BarBuilder(bars[0].symbol, (seconds,), sessions)
    out = [c.bar for b in bars for c in builder.add_bar(b)]
    out.extend(c.bar for c in builder.flush())
    return out


def bar_path(bar: Bar) -> tuple[tuple[Decimal, ...], tuple[int, ...]]:
    """The prices and sizes of ``bar``'s four trades (the module doc), in order."""
    if bar.high - bar.open <= bar.open - bar.low:
        prices = (bar.open, bar.high, bar.low, bar.close)
    else:
        prices = (bar.open, bar.low, bar.high, bar.close)
    quarter = bar.volume // 4
    return prices, (quarter, quarter, quarter, bar.volume - 3 * quarter)


def bar_trades(bar: Bar) -> list[Trade]:
    """The bar's four trades along the documented path (the module doc)."""
    prices, sizes = bar_path(bar)
    return [
        Trade(symbol=bar.symbol, price=price, size=size, at=bar.start + TRADE_STEP * i)
        for i, (price, size) in enumerate(zip(prices, sizes, strict=True))
    ]
