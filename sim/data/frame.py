"""The bar table: one symbol's bars at one interval, as a pyarrow table of raw prices.

A ``BarTable`` is what every loader returns and what the Parquet cache stores. Its columns are
fixed (``SCHEMA``): ``start`` (the bar's start, nanoseconds UTC), ``open``, ``high``, ``low``,
``close`` (float64, the prices as traded: never adjusted here) and ``volume`` (float64).

**When a bar starts.** Minute and hour bars start at their own start, in UTC. A daily bar covers
the regular session, so it starts at 09:30 New York time of its date, converted to UTC (14:30
UTC in winter, 13:30 in summer): ``daily_starts``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from actors.domain import Bar
from actors.domain.sessions import NEW_YORK, REGULAR_OPEN

SCHEMA: Final = pa.schema(
    [
        pa.field("start", pa.timestamp("ns", tz="UTC"), nullable=False),
        pa.field("open", pa.float64(), nullable=False),
        pa.field("high", pa.float64(), nullable=False),
        pa.field("low", pa.float64(), nullable=False),
        pa.field("close", pa.float64(), nullable=False),
        pa.field("volume", pa.float64(), nullable=False),
    ]
)
"""The columns of every bar table, in this order."""
PRICES: Final = ("open", "high", "low", "close")
INTERVALS: Final = ("1min", "1h", "1d")
"""The bar sizes a table may have."""
_QUANTUM = Decimal("0.0001")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_HOUR_NS = 3_600 * 1_000_000_000
_DAY_NS = 24 * _HOUR_NS


class DataError(ValueError):
    """Raised by the loaders, the checks and the factor files for input that is not bars; the
    message starts with where: ``file:row:`` (``file.zip:member:row`` inside a zip; row 0 for
    the file as a whole)."""


def _check_table(instance: BarTable, attribute: attrs.Attribute[pa.Table], value: pa.Table) -> None:
    if not isinstance(value, pa.Table) or not value.schema.equals(SCHEMA):
        shown = value.schema if isinstance(value, pa.Table) else type(value).__name__
        raise TypeError(f"a BarTable holds a table of schema {SCHEMA}, got {shown}")


def _check_interval(instance: BarTable, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {value!r}")


@attrs.frozen(kw_only=True, eq=False)
class BarTable:
    """One symbol's bars at one interval: ``table`` (schema ``SCHEMA``, raw prices), where they
    came from (``source``, a path or a description) and the sha256 of the source's bytes
    (``digest``). ``dropped`` says which rows of the source a loader left out, and why."""

    table: pa.Table = attrs.field(validator=_check_table)
    symbol: str
    interval: str = attrs.field(validator=_check_interval)
    source: str
    digest: str
    dropped: tuple[str, ...] = ()

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def starts_ns(self) -> npt.NDArray[np.int64]:
        """The bars' starts, Unix nanoseconds."""
        column = self.table.column("start").cast(pa.int64())
        return np.asarray(column.to_numpy(), dtype=np.int64)

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """A price or volume column as a float64 array."""
        if name not in PRICES and name != "volume":
            raise KeyError(f"no column {name!r}: the columns are {', '.join(SCHEMA.names)}")
        return np.asarray(self.table.column(name).to_numpy(), dtype=np.float64)

    def slice(self, start: datetime | None = None, end: datetime | None = None) -> BarTable:
        """The bars starting in ``[start, end)`` (aware datetimes; ``None`` leaves a side
        open), in a table of the same symbol, interval and source."""
        starts = self.starts_ns()
        first = 0 if start is None else int(np.searchsorted(starts, _ns(start), side="left"))
        last = len(starts) if end is None else int(np.searchsorted(starts, _ns(end), "left"))
        return attrs.evolve(self, table=self.table.slice(first, max(last - first, 0)))

    def to_bars(self) -> list[Bar]:
        """The bars as the vocabulary's ``Bar`` (prices quantised to 0.0001, whole volumes):
        for small uses, since each bar costs five Decimals."""
        columns = {name: self.table.column(name).to_pylist() for name in (*PRICES, "volume")}
        starts = self.table.column("start").cast(pa.int64()).to_pylist()
        return [
            Bar(
                symbol=self.symbol,
                start=_EPOCH + timedelta(microseconds=start // 1000),
                open=_price(columns["open"][i]),
                high=_price(columns["high"][i]),
                low=_price(columns["low"][i]),
                close=_price(columns["close"][i]),
                volume=round(columns["volume"][i]),
            )
            for i, start in enumerate(starts)
        ]

    def with_prices(
        self, factor: npt.NDArray[np.float64], volume_divisor: npt.NDArray[np.float64], note: str
    ) -> BarTable:
        """A copy whose prices are multiplied by ``factor`` and volumes divided by
        ``volume_divisor`` (one value per bar); ``note`` is appended to the source."""
        arrays: list[pa.Array] = [self.table.column("start").combine_chunks()]
        for name in PRICES:
            arrays.append(pa.array(self.column(name) * factor, pa.float64()))
        arrays.append(pa.array(self.column("volume") / volume_divisor, pa.float64()))
        return attrs.evolve(
            self,
            table=pa.Table.from_arrays(arrays, schema=SCHEMA),
            source=f"{self.source} ({note})",
        )


def _price(value: float) -> Decimal:
    # Through the shortest repr: a float64 price like 51.62 becomes exactly 51.6200.
    return Decimal(repr(value)).quantize(_QUANTUM)


def _ns(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError(f"slice needs aware datetimes, got naive {moment.isoformat()}")
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def make_table(
    starts_ns: npt.NDArray[np.int64],
    columns: Sequence[npt.NDArray[np.float64]],
) -> pa.Table:
    """A table of ``SCHEMA`` from the starts (Unix ns, UTC) and the five float columns in the
    order open, high, low, close, volume."""
    arrays: list[pa.Array] = [pa.array(starts_ns, pa.int64()).cast(SCHEMA.field("start").type)]
    arrays.extend(pa.array(np.asarray(c, dtype=np.float64), pa.float64()) for c in columns)
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def new_york_to_utc_ns(local_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """New York wall-clock times (nanoseconds since 1970-01-01 00:00 *local*) as Unix ns;
    ``ValueError`` for a time that does not exist or exists twice (the hour a clock change
    skips or repeats)."""
    # By zoneinfo (which falls back on the tzdata package), one offset per distinct local day
    # when the day has one offset from 00:00 to 23:00, else one per distinct local hour: New
    # York's clock changes on the hour, at most once a day.
    days, inverse = np.unique(local_ns // _DAY_NS, return_inverse=True)
    offsets = np.empty(len(days), dtype=np.int64)
    changing = np.zeros(len(days), dtype=np.bool_)
    for k, day in enumerate(days.tolist()):
        midnight = _NAIVE_EPOCH + timedelta(days=day)
        first = NEW_YORK.utcoffset(midnight)
        changing[k] = first != NEW_YORK.utcoffset(midnight + timedelta(hours=23))
        offsets[k] = _delta_ns(first)
    result = local_ns - offsets[inverse.reshape(-1)]
    if changing.any():
        on_change = changing[inverse.reshape(-1)]
        result[on_change] = local_ns[on_change] - _hourly_offsets(local_ns[on_change])
    return np.asarray(result, dtype=np.int64)


def _hourly_offsets(local_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    hours, inverse = np.unique(local_ns // _HOUR_NS, return_inverse=True)
    offsets = np.empty(len(hours), dtype=np.int64)
    for k, hour in enumerate(hours.tolist()):
        moment = _NAIVE_EPOCH + timedelta(hours=hour)
        before = NEW_YORK.utcoffset(moment.replace(fold=0))
        if before != NEW_YORK.utcoffset(moment.replace(fold=1)):
            raise ValueError(f"{moment:%Y-%m-%d %H}:xx is not one New York time (a clock change)")
        offsets[k] = _delta_ns(before)
    return offsets[inverse.reshape(-1)]


def _delta_ns(delta: timedelta | None) -> int:
    if delta is None:  # never for a ZoneInfo; utcoffset's type allows it
        raise ValueError("New York has no UTC offset")
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000


def daily_starts(days: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    """The start of each day's bar: 09:30 New York time of that date (``datetime64[D]``), as
    Unix ns."""
    open_ns = (REGULAR_OPEN.hour * 60 + REGULAR_OPEN.minute) * 60 * 1_000_000_000
    local = days.astype("datetime64[ns]").astype(np.int64) + open_ns
    return new_york_to_utc_ns(local)


def new_york_dates(starts_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.datetime64]:
    """The New York date of each start (Unix ns), as ``datetime64[D]``."""
    # New York is UTC-5 or UTC-4: a UTC day's New York date changes at 04:00 or 05:00 UTC, so
    # only starts in that hour need their own offset.
    early = (starts_ns % _DAY_NS) // _HOUR_NS == 4
    offsets = np.full(len(starts_ns), -5 * _HOUR_NS, dtype=np.int64)
    if early.any():
        hours, inverse = np.unique(starts_ns[early] // _HOUR_NS, return_inverse=True)
        exact = np.array(
            # The offset at that UTC hour: ``utcoffset`` of an aware time in another zone
            # would read its wall clock as New York's.
            [
                _delta_ns((_EPOCH + timedelta(hours=h)).astimezone(NEW_YORK).utcoffset())
                for h in hours.tolist()
            ],
            dtype=np.int64,
        )
        offsets[early] = exact[inverse.reshape(-1)]
    local = starts_ns + offsets
    return local.astype("datetime64[ns]").astype("datetime64[D]")


def as_date(day: np.datetime64) -> date:
    """A ``datetime64[D]`` as a ``date``."""
    return date.fromisoformat(str(day.astype("datetime64[D]")))
