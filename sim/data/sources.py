"""Loaders of historical bars: the minute-bar CSV, Yahoo daily CSVs and LEAN equity files.

Each returns ``BarTable``s of raw prices, checked (``sim.data.checks``), and fails with
``DataError`` naming ``file:row`` (``file.zip:member:row`` inside a zip; row 0 for the file as a
whole). A row is the 1-based line of the CSV, the header included. Parsing is by column, with
numpy, not per-row Decimals: a value that does not parse is found again row by row only to name
it.

Files are read whole (a regular file of at most ``sim.replay.MAX_FILE_BYTES``), so that the
digest (sha256 of the bytes, as ``sha256sum`` prints it) is of exactly what was parsed. A
directory's digest is the sha256 of its ``SHA256SUMS``-style listing: one line
``<sha256>  <relative path>`` per regular file under it, sorted by path (``tree_digest``).
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import io
import os
import re
import stat
import zipfile
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from sim.replay import MAX_FILE_BYTES, YEARS

from .checks import check
from .frame import BarTable, DataError, daily_starts, make_table, new_york_to_utc_ns

LOADER_VERSION: Final = "1"
"""Changes whenever a loader would read a file differently: the cache rebuilds on a change."""

MINUTE_HEADER: Final = ("Datetime", "Symbol", "Open", "High", "Low", "Close", "Volume")
YAHOO_HEADER: Final = ("date", "open", "high", "low", "close", "volume")
"""The first columns of a Yahoo daily CSV (``adj_close``, ``is_synthetic``, ... may follow)."""
REAL_FROM: Final = {"QQQ": date(1999, 3, 10), "TQQQ": date(2010, 2, 11)}
"""Each symbol's first day of trading: Yahoo rows before it are a backfill, not trades."""
LEAN_SCALE: Final = 10_000.0
"""LEAN equity prices are integers in deci-cents (1/10,000 dollar)."""
_MS_PER_DAY: Final = 86_400_000
_MINUTE_ZIP = re.compile(r"(\d{8})_trade\.zip")


# -- reading ---------------------------------------------------------------------------------


def read_bytes(path: Path) -> bytes:
    """A regular file's bytes, at most ``MAX_FILE_BYTES``; else ``DataError`` (``path:0:``)."""
    name = str(path)
    try:
        # Non-blocking, so that opening a FIFO does not wait for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataError(f"{name}:0: cannot read: {exc.strerror or exc}") from None
    try:
        problem = _not_readable(os.fstat(descriptor))
    except OSError as exc:
        problem = f"cannot read: {exc.strerror or exc}"
    if problem:
        os.close(descriptor)
        raise DataError(f"{name}:0: {problem}")
    with os.fdopen(descriptor, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:  # it grew while we read it
        raise DataError(f"{name}:0: larger than {MAX_FILE_BYTES >> 20} MiB")
    return data


def _not_readable(status: os.stat_result) -> str:
    if not stat.S_ISREG(status.st_mode):
        kind = "a directory" if stat.S_ISDIR(status.st_mode) else "a special file"
        return f"{kind}, not a regular file"
    if status.st_size > MAX_FILE_BYTES:
        return f"larger than {MAX_FILE_BYTES >> 20} MiB"
    return ""


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tree_digest(directory: Path) -> str:
    """The digest of every regular file under ``directory`` (see the module doc)."""
    files = sorted(
        (p for p in directory.rglob("*") if p.is_file()),
        key=lambda p: p.relative_to(directory).as_posix(),
    )
    listing = "".join(
        f"{file_digest(read_bytes(p))}  {p.relative_to(directory).as_posix()}\n" for p in files
    )
    return file_digest(listing.encode())


def source_digest(path: Path) -> str:
    """The digest of a file's bytes, or of a directory by ``tree_digest``."""
    return tree_digest(path) if path.is_dir() else file_digest(read_bytes(path))


def csv_rows(name: str, data: bytes) -> list[list[str]]:
    """The rows of a CSV file's bytes, each on one line (row i, from 0, is line i + 1); else
    ``DataError`` naming the line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(f"{name}:{line}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        rows = list(reader)
    except csv.Error as exc:  # a quote left open, a NUL, ...
        raise DataError(f"{name}:{reader.line_num}: not CSV: {exc}") from None
    if reader.line_num != len(rows):
        # Read again, row by row, only to name the row.
        again = csv.reader(io.StringIO(text, newline=""), strict=True)
        for count, _ in enumerate(again, 1):
            if again.line_num != count:
                raise DataError(f"{name}:{count}: a quoted field runs over several lines")
    return rows


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut short: a corrupt file's "value" can be a whole line of garbage."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _widths(name: str, rows: Sequence[list[str]], width: int, first_line: int) -> None:
    for i, row in enumerate(rows):
        if len(row) != width:
            line = first_line + i
            raise DataError(f"{name}:{line}: expected {width} fields, found {len(row)}")


def _floats(
    where: Callable[[int], str], label: str, values: Sequence[str]
) -> npt.NDArray[np.float64]:
    try:
        return np.array(values, dtype=np.float64)
    except ValueError:
        for i, value in enumerate(values):
            try:
                float(value)
            except ValueError:
                raise DataError(
                    f"{where(i)}: column {label} is not a number: {shown(value)}"
                ) from None
        raise  # unreachable: numpy refused a value float() takes


def _lines(first_line: int, name: str) -> Callable[[int], str]:
    return lambda i: f"{name}:{first_line + i}"


def _checked(table: BarTable, locate: Callable[[int], str]) -> BarTable:
    check(table, locate=locate)
    return table


# -- the minute-bar CSV ----------------------------------------------------------------------


def load_minute_csv(path: str | Path, symbol: str | None = None) -> dict[str, BarTable]:
    """The bars of a minute-bar CSV (the format of ``sim.replay``: ``Datetime,Symbol,Open,High,
    Low,Close,Volume``, ``Datetime`` the bar start in naive UTC), one table per symbol; only
    ``symbol``'s with ``symbol``."""
    path = Path(path)
    name = str(path)
    data = read_bytes(path)
    rows = csv_rows(name, data)
    header = tuple(rows[0]) if rows else ()
    if header != MINUTE_HEADER:
        found = shown(",".join(header))
        raise DataError(f"{name}:1: expected the header {','.join(MINUTE_HEADER)}, found {found}")
    body = rows[1:]
    _widths(name, body, len(MINUTE_HEADER), 2)
    where = _lines(2, name)
    starts = np.empty(len(body), dtype=np.int64)
    epoch = datetime(1970, 1, 1)
    for i, row in enumerate(body):
        try:
            moment = datetime.fromisoformat(row[0])
        except ValueError:
            raise DataError(
                f"{where(i)}: Datetime is not a date and time: {shown(row[0])}"
            ) from None
        if moment.tzinfo is not None:
            raise DataError(f"{where(i)}: Datetime must be naive UTC, got {shown(row[0])}")
        if not YEARS[0] <= moment.year <= YEARS[1]:
            raise DataError(
                f"{where(i)}: Datetime must be in the years {YEARS[0]} to {YEARS[1]}, got "
                f"{shown(row[0])}"
            )
        delta = moment - epoch
        starts[i] = (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000
    columns = list(zip(*body, strict=True)) if body else [()] * len(MINUTE_HEADER)
    values = [_floats(where, label, columns[k]) for k, label in enumerate(MINUTE_HEADER[2:], 2)]
    symbols = np.array(columns[1], dtype=object)
    wanted = sorted(set(columns[1])) if symbol is None else [symbol]
    digest = file_digest(data)
    tables: dict[str, BarTable] = {}
    for sym in wanted:
        if not sym:
            raise DataError(f"{where(int(np.argmax(symbols == sym)))}: Symbol is empty")
        rows_of = np.flatnonzero(symbols == sym)
        if len(rows_of) == 0:
            raise DataError(f"{name}:0: no {sym!r} bars (the file holds {_held(columns[1])})")
        table = BarTable(
            table=make_table(starts[rows_of], [v[rows_of] for v in values]),
            symbol=sym,
            interval="1min",
            source=name,
            digest=digest,
        )
        tables[sym] = _checked(table, _rows_at(name, rows_of + 2))
    return tables


def _rows_at(name: str, lines: npt.NDArray[np.int64]) -> Callable[[int], str]:
    return lambda i: f"{name}:{lines[i]}"


def _held(symbols: Sequence[str]) -> str:
    held = sorted(set(symbols))
    return ", ".join(held[:10]) + (", ..." if len(held) > 10 else "") if held else "no bars"


# -- Yahoo daily CSV -------------------------------------------------------------------------


def load_yahoo_daily(
    path: str | Path,
    symbol: str,
    *,
    drop_last: bool = True,
    real_from: date | None = None,
) -> BarTable:
    """A Yahoo-style daily CSV (``date,open,high,low,close,volume[,adj_close,is_synthetic,...]``)
    at the prices the file has (Yahoo's are split-adjusted as of the download: ``as_traded``).

    Rows that are not real trading are dropped, as ``../shared/marketdata/PROVENANCE.md`` says,
    and each group named in the table's ``dropped``: rows with ``is_synthetic`` True (a
    backfill); rows before ``real_from`` (by default the symbol's first day of trading,
    ``REAL_FROM``: QQQ 1999-03-10); and, with ``drop_last``, the last row, which a download made
    during a session captures before the close.
    """
    path = Path(path)
    name = str(path)
    data = read_bytes(path)
    rows = csv_rows(name, data)
    header = tuple(rows[0]) if rows else ()
    if header[: len(YAHOO_HEADER)] != YAHOO_HEADER:
        found = shown(",".join(header))
        raise DataError(
            f"{name}:1: expected a header starting {','.join(YAHOO_HEADER)}, found {found}"
        )
    body = rows[1:]
    _widths(name, body, len(header), 2)
    where = _lines(2, name)
    days = np.empty(len(body), dtype="datetime64[D]")
    for i, row in enumerate(body):
        day = _iso_date(row[0])
        if day is None:
            raise DataError(f"{where(i)}: date is not YYYY-MM-DD: {shown(row[0])}")
        days[i] = np.datetime64(day, "D")
    columns = list(zip(*body, strict=True)) if body else [()] * len(header)
    values = [_floats(where, label, columns[k]) for k, label in enumerate(YAHOO_HEADER[1:], 1)]
    dropped: list[str] = []
    drop = np.zeros(len(body), dtype=np.bool_)

    def group(mask: npt.NDArray[np.bool_], why: str) -> None:
        new = mask & ~drop
        if new.any():
            at = np.flatnonzero(new)
            first, last = str(days[at[0]]), str(days[at[-1]])
            span = first if first == last else f"{first}..{last}"
            lines = _spans(at + 2)
            count = f"{len(at)} row{'s' if len(at) > 1 else ''}"
            dropped.append(f"{name}:{lines}: {count} ({span}) dropped: {why}")
            drop[:] |= new

    if "is_synthetic" in header:
        flags = columns[header.index("is_synthetic")]
        for i, flag in enumerate(flags):
            if flag not in ("True", "False"):
                raise DataError(f"{where(i)}: is_synthetic is not True or False: {shown(flag)}")
        group(np.array(flags) == "True", "is_synthetic True (a backfill, not trades)")
    first_day = real_from or REAL_FROM.get(symbol.upper())
    if first_day is not None:
        before = days < np.datetime64(first_day, "D")
        group(before, f"before {symbol}'s first day of trading {first_day}")
    if drop_last and len(body):
        last = np.zeros(len(body), dtype=np.bool_)
        last[-1] = True
        group(last, "the last row (a download during a session holds the day before the close)")
    kept = np.flatnonzero(~drop)
    table = BarTable(
        table=make_table(daily_starts(days[kept]), [v[kept] for v in values]),
        symbol=symbol,
        interval="1d",
        source=name,
        digest=file_digest(data),
        dropped=tuple(dropped),
    )
    return _checked(table, _rows_at(name, kept + 2))


def _iso_date(text: str) -> date | None:
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _spans(lines: npt.NDArray[np.int64]) -> str:
    # Lines 2, 3, 4, 9 -> "2-4,9".
    parts: list[str] = []
    start = previous = int(lines[0])
    for line in (*(int(x) for x in lines[1:]), None):
        if line is not None and line == previous + 1:
            previous = line
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if line is not None:
            start = previous = line
    return ",".join(parts)


# -- LEAN equity files -----------------------------------------------------------------------

LEAN_FOLDERS: Final = {"1d": "daily", "1h": "hour", "1min": "minute"}


def load_lean(root: str | Path, symbol: str, interval: str) -> BarTable:
    """LEAN equity trade bars of ``symbol`` (any case) at ``interval`` from a LEAN
    ``equity/usa`` folder ``root``: ``daily/<sym>.zip`` or ``hour/<sym>.zip`` (one member
    ``<sym>.csv``, rows ``YYYYMMDD HH:MM,open,high,low,close,volume``), or every
    ``minute/<sym>/YYYYMMDD_trade.zip`` (one member ``YYYYMMDD_<sym>_minute_trade.csv``, rows
    ``ms since midnight,open,...``). Times are New York's; prices deci-cents, raw.

    A daily bar starts at 09:30 New York time of its date; an hour bar at its hour, but for
    LEAN's 09:00 bar, which holds 09:30 to 10:00 and so starts at 09:30 (``docs/bars.md``);
    a minute bar at its minute."""
    root = Path(root)
    if interval not in LEAN_FOLDERS:
        raise ValueError(f"interval must be one of {', '.join(LEAN_FOLDERS)}, got {interval!r}")
    folder = root / LEAN_FOLDERS[interval]
    if interval == "1min":
        return _lean_minutes(folder / symbol.lower(), symbol.upper(), None)
    return _lean_bars(folder / f"{symbol.lower()}.zip", symbol.upper(), interval)


def _zip_member(path: Path, data: bytes, member: str) -> tuple[str, bytes]:
    name = str(path)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise DataError(f"{name}:0: not a zip file: {exc}") from None
    with archive:
        names = archive.namelist()
        if names != [member]:
            raise DataError(f"{name}:0: expected one member {member!r}, found {shown(names)}")
        info = archive.getinfo(member)
        if info.file_size > MAX_FILE_BYTES:
            raise DataError(f"{name}:{member}:0: larger than {MAX_FILE_BYTES >> 20} MiB")
        try:
            return f"{name}:{member}", archive.read(member)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{name}:{member}:0: cannot unzip: {exc}") from None


def _lean_prices(
    where: Callable[[int], str], columns: Sequence[Sequence[str]]
) -> list[npt.NDArray[np.float64]]:
    values: list[npt.NDArray[np.float64]] = []
    for k, label in enumerate(("open", "high", "low", "close", "volume"), 1):
        raw = _floats(where, label, columns[k])
        if label != "volume":
            with np.errstate(invalid="ignore"):
                fractional = np.isfinite(raw) & (raw != np.round(raw))
            if fractional.any():
                i = int(np.argmax(fractional))
                raise DataError(
                    f"{where(i)}: column {label} is not a whole number of deci-cents: "
                    f"{shown(columns[k][i])}"
                )
            raw = raw / LEAN_SCALE
        values.append(raw)
    return values


def _lean_bars(path: Path, symbol: str, interval: str) -> BarTable:
    data = read_bytes(path)
    member, text = _zip_member(path, data, f"{symbol.lower()}.csv")
    rows = csv_rows(member, text)
    _widths(member, rows, 6, 1)
    where = _lines(1, member)
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    stamps = pa.array(columns[0], pa.string())
    parsed = pc.strptime(stamps, format="%Y%m%d %H:%M", unit="ns", error_is_null=True)
    bad = np.asarray(pc.invert(pc.and_(parsed.is_valid(), pc.equal(pc.utf8_length(stamps), 14))))
    if interval == "1d":
        bad |= np.asarray(pc.invert(pc.ends_with(stamps, " 00:00")))
    if bad.any():
        i = int(np.argmax(bad))
        form = "YYYYMMDD 00:00" if interval == "1d" else "YYYYMMDD HH:MM"
        raise DataError(f"{where(i)}: time is not {form}: {shown(columns[0][i])}")
    local = np.asarray(parsed.cast(pa.int64()).to_numpy(), dtype=np.int64)
    if interval == "1d":
        starts = daily_starts(local.astype("datetime64[ns]").astype("datetime64[D]"))
    else:
        starts = _new_york(where, _regular_hours(where, local, columns[0]))
    table = BarTable(
        table=make_table(starts, _lean_prices(where, columns)),
        symbol=symbol,
        interval=interval,
        source=str(path),
        digest=file_digest(data),
    )
    return _checked(table, where)


def _regular_hours(
    where: Callable[[int], str], local: npt.NDArray[np.int64], stamps: Sequence[str]
) -> npt.NDArray[np.int64]:
    # LEAN's hour bars are the regular session's, labelled 09:00 to 15:00; the 09:00 bar holds
    # 09:30 to 10:00, so it starts at 09:30 (docs/bars.md: the first regular hourly bar).
    hour_ns = 3_600 * 10**9
    clock = local % (24 * hour_ns)
    outside = (clock % hour_ns != 0) | (clock < 9 * hour_ns) | (clock > 15 * hour_ns)
    if outside.any():
        i = int(np.argmax(outside))
        raise DataError(
            f"{where(i)}: not an hour of the regular session (09:00 to 15:00): {shown(stamps[i])}"
        )
    return np.where(clock == 9 * hour_ns, local + hour_ns // 2, local)


def _new_york(where: Callable[[int], str], local: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    try:
        return new_york_to_utc_ns(local)
    except ValueError:
        # A wall-clock time that does not exist (or exists twice) in New York: find which.
        for i in range(len(local)):
            try:
                new_york_to_utc_ns(local[i : i + 1])
            except ValueError as exc:
                raise DataError(f"{where(i)}: {exc}") from None
        raise


def _lean_minutes(folder: Path, symbol: str, only: Path | None) -> BarTable:
    if not folder.is_dir():
        raise DataError(f"{folder}:0: no such folder of LEAN minute files")
    days = sorted(p for p in folder.iterdir() if _MINUTE_ZIP.fullmatch(p.name))
    if only is not None:
        days = [only]
    if not days:
        raise DataError(f"{folder}:0: no YYYYMMDD_trade.zip files")
    parts: list[tuple[npt.NDArray[np.int64], list[npt.NDArray[np.float64]]]] = []
    offsets: list[int] = []
    members: list[str] = []
    for path in days:
        stamp = path.name[:8]
        member, text = _zip_member(
            path, read_bytes(path), f"{stamp}_{symbol.lower()}_minute_trade.csv"
        )
        try:
            day = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
        except ValueError:
            raise DataError(f"{path}:0: not a date: {stamp}") from None
        rows = csv_rows(member, text)
        _widths(member, rows, 6, 1)
        where = _lines(1, member)
        columns = list(zip(*rows, strict=True)) if rows else [()] * 6
        ms = _floats(where, "time", columns[0])
        outside = ~((ms >= 0) & (ms < _MS_PER_DAY) & (ms == np.round(ms)))
        if outside.any():
            i = int(np.argmax(outside))
            raise DataError(
                f"{where(i)}: time is not a whole number of ms in a day: {shown(columns[0][i])}"
            )
        midnight = np.datetime64(day, "ns").astype(np.int64)
        local = midnight + ms.astype(np.int64) * 1_000_000
        offsets.append(sum(len(p[0]) for p in parts))
        members.append(member)
        parts.append((_new_york(where, local), _lean_prices(where, columns)))
    starts = np.concatenate([p[0] for p in parts])
    values = [np.concatenate([p[1][k] for p in parts]) for k in range(5)]

    def locate(i: int) -> str:
        at = bisect.bisect_right(offsets, i) - 1
        return f"{members[at]}:{i - offsets[at] + 1}"

    table = BarTable(
        table=make_table(starts, values),
        symbol=symbol,
        interval="1min",
        source=str(only or folder),
        digest=file_digest(read_bytes(only)) if only else tree_digest(folder),
    )
    return _checked(table, locate)


# -- dispatch --------------------------------------------------------------------------------


def load(
    path: str | Path, *, symbol: str | None = None, interval: str | None = None
) -> dict[str, BarTable]:
    """The bar tables of ``path``, by its shape (``docs/data.md``, *Which loader*):

    * ``.../daily/<sym>.zip``, ``.../hour/<sym>.zip``: LEAN daily or hour bars of SYM;
    * a folder ``.../minute/<sym>``: LEAN minute bars of SYM, every day in it; one of its
      ``YYYYMMDD_trade.zip``: that day;
    * a LEAN root (a folder holding ``daily``, ``hour`` or ``minute``): ``symbol`` and
      ``interval`` say which;
    * a ``.csv`` whose header is the minute-bar CSV's: every symbol in it (only ``symbol``'s
      when given);
    * a ``.csv`` whose header starts ``date,open,high,low,close,volume``: Yahoo daily bars of
      ``symbol``, by default the file's name (``QQQ.csv`` is QQQ).

    ``interval``, when given, must be what the file holds.
    """
    path = Path(path)
    tables = _dispatch(path, symbol, interval)
    for table in tables.values():
        if interval is not None and table.interval != interval:
            raise DataError(f"{path}:0: holds {table.interval} bars, not {interval}")
    return tables


def load_table(path: str | Path, symbol: str, interval: str) -> BarTable:
    """``symbol``'s table at ``interval`` from ``load``: the cache's default loader."""
    tables = load(path, symbol=symbol, interval=interval)
    if symbol not in tables:
        raise DataError(f"{path}:0: no {symbol!r} bars (found {', '.join(sorted(tables))})")
    return tables[symbol]


def _dispatch(path: Path, symbol: str | None, interval: str | None) -> dict[str, BarTable]:
    parent = path.parent.name
    if path.is_dir():
        if parent == "minute":
            sym = symbol or path.name.upper()
            return {sym: _lean_minutes(path, sym, None)}
        if any((path / folder).is_dir() for folder in LEAN_FOLDERS.values()):
            if symbol is None or interval is None:
                raise DataError(f"{path}:0: a LEAN root: name the symbol and the interval")
            return {symbol: load_lean(path, symbol, interval)}
        raise DataError(f"{path}:0: a folder that is neither a LEAN root nor minute/<symbol>")
    if path.suffix == ".zip":
        if parent in ("daily", "hour"):
            sym = symbol or path.stem.upper()
            return {sym: _lean_bars(path, sym, "1d" if parent == "daily" else "1h")}
        if _MINUTE_ZIP.fullmatch(path.name) and path.parent.parent.name == "minute":
            sym = symbol or parent.upper()
            return {sym: _lean_minutes(path.parent, sym, path)}
        raise DataError(f"{path}:0: a zip outside LEAN's daily/, hour/ or minute/<symbol>/ folders")
    first = _first_line(path)
    if first == ",".join(MINUTE_HEADER):
        return load_minute_csv(path, symbol)
    if first.split(",")[: len(YAHOO_HEADER)] == list(YAHOO_HEADER):
        sym = symbol or path.stem.upper()
        return {sym: load_yahoo_daily(path, sym)}
    raise DataError(f"{path}:1: not a bar file this loader knows (header {shown(first)})")


def _first_line(path: Path) -> str:
    data = read_bytes(path)
    return data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
