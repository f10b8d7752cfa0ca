"""Market data replay: 1-minute bar CSVs expanded to trades, and a generated TQQQ-like session.

**The intra-bar path.** A bar becomes four trades, 15 seconds apart from its start
(``bar_trades``, defined with the bars in ``actors.domain.bars``): the open, then whichever
extreme is nearer the open, then the other extreme, then the close (O, H, L, C when the high is
nearer the open, else O, L, H, C; ties go to the high). Each gets a quarter of the bar's volume
(the remainder on the close). So every bar's high and low are visited, which is what triggers
limit and conditional orders in the bar, in a plausible order.

Bar CSVs use the format of ``../shared/marketdata/tqqq_1min``: ``Datetime,Symbol,Open,High,Low,
Close,Volume`` with ``Datetime`` the bar start in naive UTC. ``load_bars`` is strict, since the
file is an operator's input: one clock across symbols, prices and volumes and years in sane
ranges, a regular file of bounded size (the README's "Bar files").
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import stat
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO

from actors.domain import Bar, Trade
from actors.domain.bars import TRADE_STEP, bar_trades
from actors.domain.sessions import NEW_YORK, REGULAR_CLOSE, REGULAR_OPEN, is_trading_day

HEADER = ("Datetime", "Symbol", "Open", "High", "Low", "Close", "Volume")
STEP = TRADE_STEP

MAX_FILE_BYTES = 256 << 20
"""The largest bar file read (256 MiB, some 4.5 million bars: 25 years of one symbol's minutes,
extended hours included); its bars take about ten times that in memory."""
MAX_LINE_BYTES = 1024
"""A row is about 60 bytes; a longer line is not a bar (and is not read whole)."""
MAX_PRICE = Decimal(10_000_000)
MAX_VOLUME = 10**12
YEARS = (1970, 2100)
"""The years a bar may start in: a clock outside them is a corrupt file, not history."""
MAX_GENERATED_DAYS = 1000
"""The most days ``actorctl start --days`` generates: about four years, some 15 s and 600 MB
of bars; more is a typo that would fill the memory."""


class ReplayError(ValueError):
    """Raised for a malformed replay file; the message starts with ``file:line:``."""


def load_bars(path: str | Path, *, ticks: Mapping[str, Decimal] | None = None) -> list[Bar]:
    """Read a bar CSV strictly; every defect names the file and line.

    The file is one clock: its bars are in time order across symbols (several symbols may share
    a minute, no symbol twice), or the venue's clock would run backwards. With ``ticks`` (each
    traded symbol's tick), only those symbols' bars are kept, and a price below its symbol's
    tick is refused (no order could be priced there); every row is checked either way.
    """
    name = str(path)
    bars: list[Bar] = []
    with _open(name, Path(path)) as file:
        reader = csv.reader(_lines(name, file), strict=True)
        try:
            header = tuple(next(reader, ()))
            if header != HEADER:
                found = _shown(",".join(header))
                raise ReplayError(
                    f"{name}:1: expected the header {','.join(HEADER)}, found {found}"
                )
            last: datetime | None = None
            at_last: set[str] = set()
            for row in reader:
                number = reader.line_num
                bar = _bar(name, number, row)
                if last is not None and bar.start < last:
                    raise ReplayError(
                        f"{name}:{number}: bars out of order ({_shown(row[0])} after "
                        f"{last:%Y-%m-%d %H:%M:%S}; the file must be in time order across "
                        "symbols)"
                    )
                if bar.start != last:
                    last, at_last = bar.start, set()
                if bar.symbol in at_last:
                    raise ReplayError(
                        f"{name}:{number}: a second {_shown(bar.symbol)} bar at "
                        f"{bar.start:%Y-%m-%d %H:%M:%S}"
                    )
                at_last.add(bar.symbol)
                if ticks is None:
                    bars.append(bar)
                elif bar.symbol in ticks:
                    if bar.low < (tick := ticks[bar.symbol]):
                        raise ReplayError(
                            f"{name}:{number}: price {bar.low} is below the tick {tick} of "
                            f"{bar.symbol}"
                        )
                    bars.append(bar)
        except csv.Error as exc:  # a quote left open, a NUL, ...
            raise ReplayError(f"{name}:{reader.line_num}: not CSV: {exc}") from None
    return bars


@contextlib.contextmanager
def _open(name: str, path: Path) -> Iterator[BinaryIO]:
    try:
        # Non-blocking, so that opening a FIFO does not wait for a writer; the type is checked
        # on what was opened.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ReplayError(f"{name}:0: cannot read: {exc.strerror or exc}") from None
    try:
        status = os.fstat(descriptor)
    except OSError as exc:
        os.close(descriptor)
        raise ReplayError(f"{name}:0: cannot read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        # A FIFO would wait for a writer, a device like /dev/zero never ends.
        kind = next((k for test, k in _KINDS if test(status.st_mode)), "a special file")
        raise ReplayError(f"{name}:0: {kind}, not a regular file")
    if status.st_size > MAX_FILE_BYTES:
        os.close(descriptor)
        raise ReplayError(f"{name}:0: larger than {MAX_FILE_BYTES >> 20} MiB")
    with os.fdopen(descriptor, "rb") as file:
        yield file


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
    (stat.S_ISSOCK, "a socket"),
)


def _lines(name: str, file: BinaryIO) -> Iterator[str]:
    # Line by line, each decoded on its own, so that an error names its line exactly and a
    # line of garbage is not read whole.
    number = 0
    while raw := file.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES:
            raise ReplayError(f"{name}:{number}: a line longer than {MAX_LINE_BYTES} bytes")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReplayError(f"{name}:{number}: not UTF-8 text (byte {exc.start})") from None
        yield line


def _bar(path: str, line: int, row: list[str]) -> Bar:
    if len(row) != len(HEADER):
        raise ReplayError(f"{path}:{line}: expected {len(HEADER)} fields, found {len(row)}")
    try:
        start = datetime.fromisoformat(row[0])
    except ValueError:
        raise ReplayError(
            f"{path}:{line}: Datetime is not a date and time: {_shown(row[0])}"
        ) from None
    if start.tzinfo is not None:
        raise ReplayError(f"{path}:{line}: Datetime must be naive UTC, got {_shown(row[0])}")
    if not YEARS[0] <= start.year <= YEARS[1]:
        raise ReplayError(
            f"{path}:{line}: Datetime must be in the years {YEARS[0]} to {YEARS[1]}, got "
            f"{_shown(row[0])}"
        )
    try:
        open_, high, low, close = (Decimal(cell) for cell in row[2:6])
        volume = Decimal(row[6])
    except InvalidOperation:
        raise ReplayError(
            f"{path}:{line}: prices and volume must be numbers: {_shown(row[2:])}"
        ) from None
    if not all(p.is_finite() and 0 < p < MAX_PRICE for p in (open_, high, low, close)):
        raise ReplayError(
            f"{path}:{line}: prices must be positive numbers below {MAX_PRICE}: {_shown(row[2:6])}"
        )
    if not low <= min(open_, close) <= max(open_, close) <= high:
        raise ReplayError(
            f"{path}:{line}: inconsistent bar: low {low} high {high} open {open_} close {close}"
        )
    if (
        not volume.is_finite()
        or not 0 <= volume < MAX_VOLUME
        or volume != volume.to_integral_value()
    ):
        raise ReplayError(
            f"{path}:{line}: volume must be a whole number >= 0 and below {MAX_VOLUME:,}, "
            f"got {_shown(row[6])}"
        )
    return Bar(
        symbol=row[1],
        start=start.replace(tzinfo=UTC),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=int(volume),
    )


def _shown(value: object, limit: int = 60) -> str:
    # A corrupt file's "value" can be a whole line of garbage: show its start.
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


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
