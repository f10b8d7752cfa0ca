"""Market data replay: 1-minute bar CSVs expanded to trades, and a generated TQQQ-like session.

**The intra-bar path.** A bar becomes four trades, 15 seconds apart from its start: the open,
then whichever extreme is nearer the open, then the other extreme, then the close
(O, H, L, C when the high is nearer the open, else O, L, H, C; ties go to the high). Each gets a
quarter of the bar's volume (the remainder on the close). So every bar's high and low are
visited, which is what triggers limit and conditional orders in the bar, in a plausible order.

Bar CSVs use the format of ``../shared/marketdata/tqqq_1min``: ``Datetime,Symbol,Open,High,Low,
Close,Volume`` with ``Datetime`` the bar start in naive UTC.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

import attrs

from .sessions import NEW_YORK, REGULAR_CLOSE, REGULAR_OPEN, is_trading_day

HEADER = ("Datetime", "Symbol", "Open", "High", "Low", "Close", "Volume")
STEP = timedelta(seconds=15)


class ReplayError(ValueError):
    """Raised for a malformed replay file; the message starts with ``file:line:``."""


@attrs.frozen(kw_only=True)
class Bar:
    symbol: str
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


@attrs.frozen(kw_only=True)
class Trade:
    symbol: str
    price: Decimal
    size: int
    at: datetime


def load_bars(path: str | Path) -> list[Bar]:
    """Read a bar CSV strictly; every defect names the file and line."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ReplayError(f"{name}:0: cannot read: {exc.strerror or exc}") from exc
    rows = csv.reader(text.splitlines())
    header = tuple(next(rows, ()))
    if header != HEADER:
        raise ReplayError(
            f"{name}:1: expected the header {','.join(HEADER)}, found {','.join(header)!r}"
        )
    bars: list[Bar] = []
    for number, row in enumerate(rows, start=2):
        bar = _bar(name, number, row)
        if bars and bar.symbol == bars[-1].symbol and bar.start <= bars[-1].start:
            previous = f"{bars[-1].start:%Y-%m-%d %H:%M}"
            raise ReplayError(f"{name}:{number}: bars out of order ({row[0]} after {previous})")
        bars.append(bar)
    return bars


def _bar(path: str, line: int, row: list[str]) -> Bar:
    if len(row) != len(HEADER):
        raise ReplayError(f"{path}:{line}: expected {len(HEADER)} fields, found {len(row)}")
    try:
        start = datetime.fromisoformat(row[0])
    except ValueError:
        raise ReplayError(f"{path}:{line}: Datetime is not a date and time: {row[0]!r}") from None
    if start.tzinfo is not None:
        raise ReplayError(f"{path}:{line}: Datetime must be naive UTC, got {row[0]!r}")
    try:
        open_, high, low, close = (Decimal(cell) for cell in row[2:6])
        volume = Decimal(row[6])
    except InvalidOperation:
        raise ReplayError(f"{path}:{line}: prices and volume must be numbers: {row[2:]}") from None
    if not all(p.is_finite() and p > 0 for p in (open_, high, low, close)):
        raise ReplayError(f"{path}:{line}: prices must be positive numbers: {row[2:6]}")
    if not low <= min(open_, close) <= max(open_, close) <= high:
        raise ReplayError(
            f"{path}:{line}: inconsistent bar: low {low} high {high} open {open_} close {close}"
        )
    if not volume.is_finite() or volume < 0 or volume != volume.to_integral_value():
        raise ReplayError(f"{path}:{line}: volume must be a whole number >= 0, got {row[6]!r}")
    return Bar(
        symbol=row[1],
        start=start.replace(tzinfo=UTC),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=int(volume),
    )


def bar_trades(bar: Bar) -> list[Trade]:
    """The bar's four trades along the documented path."""
    if bar.high - bar.open <= bar.open - bar.low:
        path = (bar.open, bar.high, bar.low, bar.close)
    else:
        path = (bar.open, bar.low, bar.high, bar.close)
    quarter = bar.volume // 4
    sizes = (quarter, quarter, quarter, bar.volume - 3 * quarter)
    return [
        Trade(symbol=bar.symbol, price=price, size=size, at=bar.start + STEP * i)
        for i, (price, size) in enumerate(zip(path, sizes, strict=True))
    ]


def trades(bars: Iterable[Bar]) -> Iterator[Trade]:
    for bar in bars:
        yield from bar_trades(bar)


def generated_session(
    *,
    seed: int,
    day: date = date(2026, 11, 23),
    symbol: str = "TQQQ",
    start_price: Decimal = Decimal("52.00"),
) -> list[Bar]:
    """A seeded, TQQQ-like day of 1-minute bars, 04:00-20:00 New York time: a random walk with
    about 0.12% per minute in regular hours and 0.05% outside them, and volume to match. The
    same seed always gives the same bars."""
    rng = random.Random(seed)
    bars: list[Bar] = []
    price = float(start_price)
    moment = datetime.combine(day, time(4, 0), tzinfo=NEW_YORK)
    end = datetime.combine(day, time(20, 0), tzinfo=NEW_YORK)
    cent = Decimal("0.01")
    while moment < end:
        regular = REGULAR_OPEN <= moment.time() < REGULAR_CLOSE
        sigma = 0.0012 if regular else 0.0005
        points = [price]
        for _ in range(3):
            points.append(points[-1] * (1 + rng.gauss(0.0, sigma / 2)))
        close = points[-1]
        open_ = Decimal(repr(price)).quantize(cent)
        close_d = Decimal(repr(close)).quantize(cent)
        high = max(Decimal(repr(p)).quantize(cent) for p in points)
        low = min(Decimal(repr(p)).quantize(cent) for p in points)
        volume = int(rng.uniform(150_000, 600_000) if regular else rng.uniform(2_000, 40_000))
        bars.append(
            Bar(
                symbol=symbol,
                start=moment.astimezone(UTC),
                open=open_,
                high=high,
                low=low,
                close=close_d,
                volume=volume,
            )
        )
        price = close
        moment += timedelta(minutes=1)
    return bars


def generated_days(
    *,
    seed: int,
    days: int,
    first: date = date(2026, 11, 23),
    symbol: str = "TQQQ",
    start_price: Decimal = Decimal("52.00"),
) -> list[Bar]:
    """``days`` consecutive trading days (weekends and NYSE holidays skipped) of generated
    bars, each opening at the previous day's close; day ``i`` uses seed ``seed + i``, so one
    day is exactly ``generated_session(seed=seed, day=first)``."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    bars: list[Bar] = []
    day, price = first, start_price
    for i in range(days):
        while not is_trading_day(day):
            day += timedelta(days=1)
        session = generated_session(seed=seed + i, day=day, symbol=symbol, start_price=price)
        bars.extend(session)
        price = session[-1].close
        day += timedelta(days=1)
    return bars
