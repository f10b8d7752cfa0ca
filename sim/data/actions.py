"""Corporate actions: LEAN factor files, split and dividend events, adjusted prices.

Bar tables hold raw (as-traded) prices; fills happen at those. Signals may use adjusted prices,
and a run applies the events (a split rescales positions, a dividend pays cash).

**LEAN factor files** (``factor_files/<sym>.csv``): rows ``date,price_factor,split_factor,
reference_price``, dates strictly increasing, the last a sentinel (``20501231,1,1,0``). A bar of
New York date ``d`` takes the first row dated on or after ``d`` (``FactorFile.factors_on``);
adjusted = raw x price_factor x split_factor, split-adjusted = raw x split_factor, and volume /
split_factor in both.

**Events from a factor file** (``actions_from_factors``), as LEAN derives them
(``Common/Data/Auxiliary/CorporateFactorRow.cs``, ``GetSplit``/``GetDividend``; the format
readme does not describe factor files): between two consecutive rows ``r`` and ``n`` the factors
change on the next trading day after ``r.date``, the **ex-date**; ``r.reference_price`` is the
raw close of ``r.date``.

* a split when the split factors differ: ``ratio = n.split_factor / r.split_factor`` new
  shares per old (QQQ: ``20000317`` 0.5 then 1: 2-for-1, ex-date 2000-03-20);
* a dividend when the price factors differ: ``amount = r.reference_price x (1 -
  r.price_factor / n.price_factor)``, the inverse of LEAN's ``pf(r) = pf(n) x (C - D) / C``.
  LEAN rounds it to cents; we keep 0.0001 (QQQ's distributions have four decimals: the rows
  ``20191220`` and ``20200320`` give 0.4577, paid with ex-date 2019-12-23).

The ex-date is the date of the raw table's next bar after ``r.date`` when the table has a bar
on ``r.date`` (so a closure the calendar rules do not know is skipped), else the next NYSE
trading day by ``actors.domain.sessions``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

import attrs
import numpy as np
import numpy.typing as npt

from actors.domain import CorporateAction as CorporateAction
from actors.domain import Dividend as Dividend
from actors.domain import Split as Split
from actors.domain.sessions import is_trading_day

from .frame import BarTable, DataError, as_date, new_york_dates
from .sources import csv_rows, read_bytes, shown

_AMOUNT: Final = Decimal("0.0001")
_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*")


@attrs.frozen(kw_only=True)
class FactorRow:
    """One row of a LEAN factor file."""

    date: date
    price_factor: float
    split_factor: float
    reference_price: float


@attrs.frozen(kw_only=True, eq=False)
class FactorFile:
    """A LEAN factor file of ``symbol``, read from ``source`` (see the module doc)."""

    symbol: str
    source: str
    rows: tuple[FactorRow, ...]

    @property
    def _dates(self) -> npt.NDArray[np.datetime64]:
        return np.array([row.date for row in self.rows], dtype="datetime64[D]")

    def factors_on(self, day: date) -> FactorRow:
        """The row that applies to a bar of New York date ``day``: the first dated on or
        after it."""
        at = int(np.searchsorted(self._dates, np.datetime64(day, "D"), side="left"))
        if at == len(self.rows):
            raise DataError(
                f"{self.source}:0: no factor row on or after {day} (the last is "
                f"{self.rows[-1].date})"
            )
        return self.rows[at]

    def factors(self, table: BarTable) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The price factor and the split factor of each bar of ``table``."""
        if table.symbol.upper() != self.symbol.upper():
            raise ValueError(f"the factors of {self.symbol} applied to {table.symbol} bars")
        days = new_york_dates(table.starts_ns())
        at = np.searchsorted(self._dates, days, side="left")
        if len(at) and at[-1] == len(self.rows):
            first = int(np.argmax(at == len(self.rows)))
            raise DataError(
                f"{self.source}:0: no factor row on or after {as_date(days[first])} (bar "
                f"{first + 1} of {table.source}; the last row is {self.rows[-1].date})"
            )
        price = np.array([row.price_factor for row in self.rows], dtype=np.float64)
        split = np.array([row.split_factor for row in self.rows], dtype=np.float64)
        return price[at], split[at]

    def adjusted(self, table: BarTable) -> BarTable:
        """``table`` adjusted for splits and dividends: prices x price factor x split
        factor, volume / split factor."""
        price, split = self.factors(table)
        return table.with_prices(price * split, split, f"adjusted by {self.source}")

    def split_adjusted(self, table: BarTable) -> BarTable:
        """``table`` adjusted for splits only: prices x split factor, volume / split factor."""
        _, split = self.factors(table)
        return table.with_prices(split, split, f"split-adjusted by {self.source}")


def load_factor_file(path: str | Path, symbol: str | None = None) -> FactorFile:
    """A LEAN factor file; ``symbol`` defaults to the file's name (``qqq.csv`` is QQQ).
    Every row must have a date ``YYYYMMDD`` after the row before, finite positive factors and a
    finite reference price >= 0 (LEAN skips rows it cannot use; we refuse the file, naming
    the row)."""
    path = Path(path)
    name = str(path)
    rows: list[FactorRow] = []
    for line, cells in enumerate(csv_rows(name, read_bytes(path)), 1):
        if len(cells) not in (3, 4):
            raise DataError(f"{name}:{line}: expected 3 or 4 fields, found {len(cells)}")
        day = _yyyymmdd(cells[0])
        if day is None:
            raise DataError(f"{name}:{line}: date is not YYYYMMDD: {shown(cells[0])}")
        numbers: list[float] = []
        for label, cell in zip(
            ("price_factor", "split_factor", "reference_price"), cells[1:], strict=False
        ):
            try:
                value = float(cell)
            except ValueError:
                raise DataError(f"{name}:{line}: {label} is not a number: {shown(cell)}") from None
            low_ok = value >= 0 if label == "reference_price" else value > 0
            if not (np.isfinite(value) and low_ok):
                bound = ">= 0" if label == "reference_price" else "> 0"
                raise DataError(f"{name}:{line}: {label} must be finite and {bound}: {cell}")
            numbers.append(value)
        if rows and day <= rows[-1].date:
            raise DataError(
                f"{name}:{line}: date {day} is not after the row before's {rows[-1].date}"
            )
        rows.append(
            FactorRow(
                date=day,
                price_factor=numbers[0],
                split_factor=numbers[1],
                reference_price=numbers[2] if len(numbers) > 2 else 0.0,
            )
        )
    if not rows:
        raise DataError(f"{name}:0: no factor rows")
    return FactorFile(symbol=(symbol or path.stem).upper(), source=name, rows=tuple(rows))


def _yyyymmdd(text: str) -> date | None:
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def actions_from_factors(factors: FactorFile, raw: BarTable) -> list[CorporateAction]:
    """The splits and dividends of ``factors`` (see the module doc) whose ex-date falls after
    the first bar of ``raw`` and on or before its last: the events a run over ``raw`` must
    apply, in date order (a split before a dividend of the same day)."""
    if raw.symbol.upper() != factors.symbol.upper():
        raise ValueError(f"the factors of {factors.symbol} applied to {raw.symbol} bars")
    if len(raw) == 0:
        return []
    days = new_york_dates(raw.starts_ns())
    first, last = as_date(days[0]), as_date(days[-1])
    closes = raw.column("close")
    events: list[CorporateAction] = []
    for row, after in zip(factors.rows, factors.rows[1:], strict=False):
        if row.split_factor == after.split_factor and row.price_factor == after.price_factor:
            continue
        ex_date = _ex_date(days, row.date)
        if not first < ex_date <= last:
            continue
        if row.split_factor != after.split_factor:
            ratio = after.split_factor / row.split_factor
            events.append(
                Split(symbol=raw.symbol, ex_date=ex_date, ratio=Decimal(f"{ratio:.6f}").normalize())
            )
        if row.price_factor != after.price_factor:
            close = row.reference_price or _close_on(days, closes, row.date)
            if close is None:
                raise DataError(
                    f"{factors.source}:0: the dividend after {row.date} has no reference "
                    f"price and {raw.source} no bar that day"
                )
            amount = close * (1.0 - row.price_factor / after.price_factor)
            events.append(
                Dividend(
                    symbol=raw.symbol,
                    ex_date=ex_date,
                    amount_per_share=Decimal(f"{amount:.4f}"),
                )
            )
    return events


def _ex_date(days: npt.NDArray[np.datetime64], before: date) -> date:
    after = int(np.searchsorted(days, np.datetime64(before, "D"), side="right"))
    if 0 < after < len(days) and days[after - 1] == np.datetime64(before, "D"):
        return as_date(days[after])
    day = before + timedelta(days=1)
    while not is_trading_day(day):
        day += timedelta(days=1)
    return day


def _close_on(
    days: npt.NDArray[np.datetime64], closes: npt.NDArray[np.float64], day: date
) -> float | None:
    # The last bar of that New York date (a daily table has one).
    at = int(np.searchsorted(days, np.datetime64(day, "D"), side="right")) - 1
    return float(closes[at]) if at >= 0 and days[at] == np.datetime64(day, "D") else None


_KEYS: Final = frozenset({"symbol", "date", "split", "dividend"})


def actions_from_list(
    rows: Sequence[Mapping[str, object]], *, source: str = "<list>", where: str = "actions"
) -> list[CorporateAction]:
    """Events from an explicit list, as a config gives them: each row ``{symbol, date,
    split=RATIO}`` or ``{symbol, date, dividend=AMOUNT}``, the date an ISO date (or a
    ``date``), the ratio a positive number of new shares per old or ``"N:M"`` (``"3:1"`` is
    3), the amount a positive number per share. ``DataError`` names ``source: where[i].key``.
    Returned in date order."""
    events: list[tuple[date, int, CorporateAction]] = []
    for i, row in enumerate(rows):
        at = f"{source}: {where}[{i}]"
        if not isinstance(row, Mapping):
            raise DataError(f"{at}: expected a table of symbol, date and split or dividend")
        if extra := sorted(set(row) - _KEYS):
            raise DataError(
                f"{at}.{extra[0]}: unknown key (the keys are {', '.join(sorted(_KEYS))})"
            )
        for key in ("symbol", "date"):
            if key not in row:
                raise DataError(f"{at}.{key}: missing")
        symbol = row["symbol"]
        if not isinstance(symbol, str) or not symbol.strip():
            raise DataError(f"{at}.symbol: expected a symbol, got {shown(symbol)}")
        day = _date(f"{at}.date", row["date"])
        kinds = [key for key in ("split", "dividend") if key in row]
        if len(kinds) != 1:
            raise DataError(f"{at}: expected one of split or dividend, found {len(kinds)}")
        if kinds[0] == "split":
            ratio = _ratio(f"{at}.split", row["split"])
            events.append((day, 0, Split(symbol=symbol, ex_date=day, ratio=ratio)))
        else:
            amount = _positive(f"{at}.dividend", row["dividend"])
            events.append((day, 1, Dividend(symbol=symbol, ex_date=day, amount_per_share=amount)))
    return [event for _, _, event in sorted(events, key=lambda e: (e[0], e[1]))]


def _date(at: str, value: object) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
        except ValueError:
            pass
    raise DataError(f"{at}: expected a date YYYY-MM-DD, got {shown(value)}")


def _positive(at: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise DataError(f"{at}: expected a positive number, got {shown(value)}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise DataError(f"{at}: expected a positive number, got {shown(value)}") from None
    if not number.is_finite() or number <= 0:
        raise DataError(f"{at}: expected a positive number, got {shown(value)}")
    return number


def _ratio(at: str, value: object) -> Decimal:
    if isinstance(value, str) and (match := _RATIO.fullmatch(value)):
        new, old = (Decimal(part) for part in match.groups())
        if new > 0 and old > 0:
            return (new / old).normalize()
        raise DataError(f"{at}: expected N:M with N and M positive, got {shown(value)}")
    return _positive(at, value)


def as_traded(table: BarTable, splits: Sequence[CorporateAction]) -> BarTable:
    """A split-adjusted ``table`` (Yahoo's) back at the prices as traded: each bar's prices
    multiplied by the product of the ratios of ``splits`` of its symbol with an ex-date after
    the bar's New York date, its volume divided by it (dividends are ignored)."""
    ours = sorted(
        (e for e in splits if isinstance(e, Split) and e.symbol == table.symbol),
        key=lambda e: e.ex_date,
    )
    days = new_york_dates(table.starts_ns())
    factor = np.ones(len(table), dtype=np.float64)
    for split in ours:
        factor[days < np.datetime64(split.ex_date, "D")] *= float(split.ratio)
    return table.with_prices(factor, factor, f"as traded, {len(ours)} splits undone")
