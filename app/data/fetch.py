"""History fetched from a broker into the bar cache: ``actorctl data fetch``.

``fetch_ib`` asks IB (TWS or IB Gateway) for TRADES bars with ib_insync's
``reqHistoricalDataAsync``, regular hours only, in chunks of NYSE trading days as long as IB
allows for the bar size (``CHUNK_DAYS``), paced on the client side by ``IBPacing`` (IB's limits:
at most 60 requests in 10 minutes, none identical within 15 s, at most 5 for one contract in
2 s); a pacing violation that still comes back (error 162) is waited out and the request sent
again. ``fetch_alpaca`` asks Alpaca's REST bars endpoint through alpaca-py's
``StockHistoricalDataClient.get_stock_bars``, ``adjustment=raw``; alpaca-py follows
``next_page_token`` itself. Both return a ``BarTable`` of raw prices that passed
``sim.data.check``, dated as every table is (``docs/data.md``): a daily bar starts at 09:30 New
York time of its date.

``store_fetched`` writes a table under ``<cache>/fetched/`` as
``<source>-<SYM>-<interval>-<from>-<to>.parquet`` (the request spelt out, so a second fetch of
the same request replaces the file) and lists it in ``<cache>/fetched/manifest.json``;
``read_fetched`` reads such a file back, checked.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Hashable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import anyio
import attrs
import numpy as np
import pyarrow as pa
from alpaca.common.exceptions import APIError
from alpaca.data.enums import Adjustment, DataFeed
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.models import BarSet
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from ib_insync import IB, RequestError, Stock

from actors.domain.sessions import NEW_YORK, is_trading_day
from sim.data import INTERVALS, BarTable, DataError, check
from sim.data.cache import read_table, table_fields, write_table
from sim.data.frame import daily_starts, make_table, new_york_dates

SOURCES: Final = ("ib", "alpaca")
IB_BAR_SIZES: Final = {"1min": "1 min", "1h": "1 hour", "1d": "1 day"}
CHUNK_DAYS: Final = {"1min": 1, "1h": 20, "1d": 250}
"""Trading days per IB request: IB's longest duration for the bar size ("1 D" for 1-minute
bars, "1 M" for hourly ones, "1 Y" for daily ones), in trading days."""
ALPACA_TIMEFRAMES: Final = {
    "1min": TimeFrame(1, TimeFrameUnit.Minute),
    "1h": TimeFrame(1, TimeFrameUnit.Hour),
    "1d": TimeFrame(1, TimeFrameUnit.Day),
}
FEEDS: Final = tuple(f.value for f in DataFeed)
"""Alpaca's data feeds (``iex`` is free; ``sip`` needs a subscription)."""
FETCHED_VERSION: Final = "fetched-1"
"""The loader version in a fetched file's metadata (``sim.data.BarCache``'s field)."""
MANIFEST: Final = "manifest.json"
_KEY: Final = b"actortrade.bars"
_PACING_TEXT = "pacing violation"
_NO_DATA_TEXT = "no data"

Progress = Callable[[str], None]
Sleep = Callable[[float], Awaitable[None]]


class FetchError(Exception):
    """Raised by ``fetch_ib`` and ``fetch_alpaca`` for a fetch that cannot be done (the host
    cannot be reached, the keys are refused, the broker refuses a request); the message names
    the source, the symbol and what went wrong."""


@attrs.frozen(kw_only=True)
class IBPacing:
    """IB's historical data pacing, kept on the client side: at most ``requests`` in any
    ``window`` seconds, none identical to one sent less than ``identical_within`` seconds ago,
    at most ``same_contract`` for one contract in ``same_contract_window`` seconds; each wait
    is ``margin`` seconds longer (the two clocks are not the same). ``violation_wait``: seconds
    waited after a pacing violation before asking again; ``retries``: how many times."""

    requests: int = 60
    window: float = 600.0
    identical_within: float = 15.0
    same_contract: int = 5
    same_contract_window: float = 2.0
    margin: float = 0.1
    violation_wait: float = 15.0
    retries: int = 8


class IBPacer:
    """The historical requests sent to one IB login, on ``clock`` (monotonic seconds): how long
    the next one must wait to keep to ``pacing``. Share one between the fetches of several
    symbols: IB counts every request of the login."""

    def __init__(
        self, pacing: IBPacing | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pacing = pacing or IBPacing()
        self.clock = clock
        self.sent: collections.deque[tuple[float, Hashable, Hashable]] = collections.deque()
        """(when, contract, request) of each request sent, the last ``window`` seconds'."""

    def wait_for(self, contract: Hashable, request: Hashable) -> float:
        """Seconds to wait before sending ``request`` for ``contract`` (0: now)."""
        p, now = self.pacing, self.clock()
        ready = now
        times = [t for t, _, _ in self.sent]
        if len(times) >= p.requests:
            ready = max(ready, times[-p.requests] + p.window + p.margin)
        same = [t for t, c, _ in self.sent if c == contract]
        if len(same) >= p.same_contract:
            ready = max(ready, same[-p.same_contract] + p.same_contract_window + p.margin)
        for t, c, r in self.sent:
            if (c, r) == (contract, request):
                ready = max(ready, t + p.identical_within + p.margin)
        return ready - now

    def count(self, contract: Hashable, request: Hashable) -> None:
        """Note ``request`` for ``contract`` as sent now."""
        now = self.clock()
        self.sent.append((now, contract, request))
        keep = max(
            self.pacing.window, self.pacing.identical_within, self.pacing.same_contract_window
        )
        while self.sent and self.sent[0][0] <= now - keep:
            self.sent.popleft()


def trading_days(first: date, last: date) -> list[date]:
    """The NYSE trading days from ``first`` to ``last``, both included."""
    days, day = [], first
    while day <= last:
        if is_trading_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def ib_chunks(interval: str, first: date, last: date) -> list[tuple[str, str]]:
    """The ``(endDateTime, durationStr)`` of each request for ``[first, last]``, oldest first:
    each ends at 23:59:59 New York of its last trading day (as UTC, ``YYYYMMDD-HH:MM:SS``) and
    lasts its ``CHUNK_DAYS[interval]`` trading days or fewer ("N D" counts the end's day)."""
    days = trading_days(first, last)
    size = CHUNK_DAYS[interval]
    chunks = []
    for i in range(0, len(days), size):
        group = days[i : i + size]
        end = datetime.combine(group[-1], datetime.max.time().replace(microsecond=0), NEW_YORK)
        chunks.append((f"{end.astimezone(UTC):%Y%m%d-%H:%M:%S}", f"{len(group)} D"))
    return chunks


async def fetch_ib(
    host: str,
    port: int,
    client_id: int,
    symbol: str,
    interval: str,
    start: date,
    end: date,
    *,
    pacer: IBPacer | None = None,
    sleep: Sleep = anyio.sleep,
    progress: Progress | None = None,
    connect_timeout: float = 10.0,
    exchange: str = "SMART",
    currency: str = "USD",
) -> BarTable:
    """``symbol``'s TRADES bars at ``interval`` of the regular sessions of the New York days
    ``start`` to ``end`` (both included), from TWS at ``host:port`` as ``client_id`` (see the
    module doc); ``pacer`` keeps the requests to IB's pacing (a new one on ``time.monotonic``
    by default: share one across the symbols of a login), ``sleep`` waits on its clock;
    ``progress`` is told a line per request."""
    _check_request(symbol, interval, start, end)
    pacer = pacer or IBPacer()
    say = progress or (lambda _line: None)
    chunks = ib_chunks(interval, start, end)
    where = f"ib: {symbol} {interval} from {host}:{port}"
    ib = IB()  # type: ignore[no-untyped-call]  # ib_insync 0.9.86 leaves IB() unannotated
    ib.RaiseRequestErrors = True
    rows: list[Any] = []
    try:
        try:
            await ib.connectAsync(
                host, port, clientId=client_id, timeout=connect_timeout, readonly=True
            )
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise FetchError(
                f"ib: cannot reach TWS at {host}:{port}: {type(exc).__name__}: {exc}"
            ) from exc
        try:
            qualified = await ib.qualifyContractsAsync(Stock(symbol, exchange, currency))
        except RequestError as exc:
            if exc.code != 200:  # 200: no security definition
                raise FetchError(f"{where}: error {exc.code}: {exc.message}") from None
            qualified = []
        if not qualified:
            raise FetchError(f"ib: IB knows no {symbol} stock on {exchange} in {currency}")
        contract = qualified[0]
        for n, (end_text, duration) in enumerate(chunks, 1):
            asked = (end_text, duration, IB_BAR_SIZES[interval])
            for _attempt in range(pacer.pacing.retries + 1):
                wait = pacer.wait_for(symbol, asked)
                if wait > 0:
                    say(f"ib: {symbol}: pacing: waiting {wait:.1f} s")
                    await sleep(wait)
                pacer.count(symbol, asked)
                try:
                    got = await ib.reqHistoricalDataAsync(
                        contract,
                        endDateTime=end_text,
                        durationStr=duration,
                        barSizeSetting=IB_BAR_SIZES[interval],
                        whatToShow="TRADES",
                        useRTH=True,
                        formatDate=2,
                        timeout=max(connect_timeout, 60.0),
                    )
                except RequestError as exc:
                    if exc.code == 162 and _NO_DATA_TEXT in exc.message:
                        say(f"ib: {symbol} {interval}: request {n}/{len(chunks)}: no bars")
                        break
                    elif exc.code == 162 and _PACING_TEXT in exc.message:
                        wait = pacer.pacing.violation_wait
                        say(f"ib: {symbol}: pacing violation (162): waiting {wait:.0f} s")
                        await sleep(wait)
                        continue
                    else:
                        raise FetchError(
                            f"{where}: request {n} (end {end_text}, {duration}): error "
                            f"{exc.code}: {exc.message}"
                        ) from None
                else:
                    if not got:  # ib_insync's answer to its own timeout: an empty list
                        raise FetchError(f"{where}: request {n} ({end_text}) timed out")
                rows.extend(got)
                say(
                    f"ib: {symbol} {interval}: request {n}/{len(chunks)} ({duration} to "
                    f"{end_text} UTC): {len(got)} bars"
                )
                break
            else:
                raise FetchError(f"{where}: request {n} still paced after the retries")
    except ConnectionError as exc:
        raise FetchError(f"{where}: the connection was lost: {exc}") from exc
    finally:
        ib.disconnect()  # type: ignore[no-untyped-call]  # unannotated in ib_insync 0.9.86
    return _ib_table(symbol, interval, rows, start, end, f"ib://{host}:{port}")


def _ib_table(
    symbol: str, interval: str, rows: list[Any], first: date, last: date, source: str
) -> BarTable:
    starts: list[int] = []
    days: list[date] = []
    for row in rows:
        if isinstance(row.date, datetime):
            starts.append(_epoch_ns(row.date))
        else:
            days.append(row.date)
    if days:
        starts = daily_starts(np.array(days, dtype="datetime64[D]")).tolist()
    columns = [np.array([float(getattr(r, name)) for r in rows]) for name in _OHLCV]
    starts_ns = np.array(starts, dtype=np.int64)
    return _table("ib", symbol, interval, starts_ns, columns, first, last, source)


_OHLCV = ("open", "high", "low", "close", "volume")


def fetch_alpaca(
    base_url: str | None,
    key: str,
    secret: str,
    symbol: str,
    interval: str,
    start: date,
    end: date,
    *,
    feed: str = "iex",
    progress: Progress | None = None,
) -> BarTable:
    """``symbol``'s bars at ``interval`` of the New York days ``start`` to ``end`` (both
    included) from Alpaca's REST bars (``base_url``: another server's, the sim's; None:
    Alpaca's), raw prices, as Alpaca serves them (its minute and hour bars include the extended
    hours). Blocks (HTTP requests): run it in a thread from async code."""
    _check_request(symbol, interval, start, end)
    say = progress or (lambda _line: None)
    where = f"alpaca: {symbol} {interval} from {base_url or 'Alpaca'}"
    client = StockHistoricalDataClient(key, secret, url_override=base_url)
    request = StockBarsRequest(
        symbol_or_symbols=symbol,
        timeframe=ALPACA_TIMEFRAMES[interval],
        start=datetime.combine(start, datetime.min.time(), NEW_YORK).astimezone(UTC),
        end=datetime.combine(end, datetime.max.time().replace(microsecond=0), NEW_YORK).astimezone(
            UTC
        ),
        adjustment=Adjustment.RAW,
        feed=DataFeed(feed),
    )
    try:
        answer = client.get_stock_bars(request)
    except APIError as exc:
        raise FetchError(f"{where}: HTTP {exc.status_code}: {exc}") from None
    except OSError as exc:  # requests' ConnectionError is an OSError
        raise FetchError(f"{where}: cannot reach it: {type(exc).__name__}") from exc
    if not isinstance(answer, BarSet):
        raise FetchError(f"{where}: unexpected answer {type(answer).__name__}")
    rows = answer.data.get(symbol, [])
    say(f"alpaca: {symbol} {interval}: {len(rows)} bars")
    if interval == "1d":  # Alpaca dates a day at its midnight or 04:00: ours start at 09:30
        days = [r.timestamp.astimezone(NEW_YORK).date() for r in rows]
        starts = daily_starts(np.array(days, dtype="datetime64[D]"))
    else:
        starts = np.array([_epoch_ns(r.timestamp) for r in rows], dtype=np.int64)
    columns = [np.array([float(getattr(r, name)) for r in rows]) for name in _OHLCV]
    return _table("alpaca", symbol, interval, starts, columns, start, end, base_url or "alpaca")


def _check_request(symbol: str, interval: str, start: date, end: date) -> None:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
    if start > end:
        raise ValueError(f"the first day {start} is after the last {end}")
    if not symbol or not symbol.replace(".", "").isalnum():
        raise ValueError(f"a symbol is letters, digits and dots, got {symbol!r}")


def _epoch_ns(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def request_digest(source: str, symbol: str, interval: str, start: date, end: date) -> str:
    """The sha256 of the request: a fetched table's ``digest`` and its cache key."""
    text = json.dumps(
        {
            "source": source,
            "symbol": symbol,
            "interval": interval,
            "from": str(start),
            "to": str(end),
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _table(
    name: str,
    symbol: str,
    interval: str,
    starts: Any,
    columns: list[Any],
    first: date,
    last: date,
    source: str,
) -> BarTable:
    # In time order, one bar per start (the later answer's, should two requests overlap) and
    # only the days asked for (New York's): a source's window edges are its own.
    starts = np.asarray(starts, dtype=np.int64)
    order = np.argsort(starts, kind="stable")
    starts, columns = starts[order], [np.asarray(c, dtype=np.float64)[order] for c in columns]
    days = new_york_dates(starts) if len(starts) else np.array([], dtype="datetime64[D]")
    keep = (days >= np.datetime64(first)) & (days <= np.datetime64(last))
    keep[:-1] &= starts[1:] != starts[:-1]
    table = BarTable(
        table=make_table(starts[keep], [c[keep] for c in columns]),
        symbol=symbol,
        interval=interval,
        source=f"{source} {symbol} {interval} {first}..{last}",
        digest=request_digest(name, symbol, interval, first, last),
    )
    check(table)
    return table


# -- the cache ---------------------------------------------------------------------------------


def fetched_path(
    cache: Path, source: str, symbol: str, interval: str, start: date, end: date
) -> Path:
    """Where ``store_fetched`` keeps the table of this request."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    return Path(cache) / "fetched" / f"{source}-{symbol}-{interval}-{start}-{end}.parquet"


def store_fetched(cache: Path, source: str, table: BarTable, start: date, end: date) -> Path:
    """Write ``table`` (fetched from ``source`` for the days ``start`` to ``end``) under
    ``<cache>/fetched/``, replacing an earlier fetch of the same request, and list it in the
    manifest; the file is written whole (a temporary file renamed into place)."""
    target = fetched_path(cache, source, table.symbol, table.interval, start, end)
    key = request_digest(source, table.symbol, table.interval, start, end)
    fields = table_fields(table, key, FETCHED_VERSION)
    fields["fetched"] = {"source": source, "from": str(start), "to": str(end)}
    write_table(target, table, fields)
    entry = {
        "file": target.name,
        "source": source,
        "symbol": table.symbol,
        "interval": table.interval,
        "from": str(start),
        "to": str(end),
        "bars": len(table),
        "first_bar": _iso(table, 0),
        "last_bar": _iso(table, -1),
        "key": key,
        "fetched_at": f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}",
    }
    _add_to_manifest(target.parent, entry)
    return target


def _iso(table: BarTable, index: int) -> str | None:
    if not len(table):
        return None
    ns = int(table.starts_ns()[index])
    return f"{datetime.fromtimestamp(ns / 1e9, UTC):%Y-%m-%dT%H:%M:%SZ}"


def read_manifest(folder: Path) -> list[dict[str, Any]]:
    """The entries of ``<folder>/manifest.json`` (``<cache>/fetched``), by file name."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return []
    entries: list[dict[str, Any]] = json.loads(path.read_text())["fetched"]
    return entries


def _add_to_manifest(folder: Path, entry: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".{MANIFEST}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two fetches at once each keep their entry
        entries = [e for e in read_manifest(folder) if e["file"] != entry["file"]]
        entries.append(entry)
        entries.sort(key=lambda e: str(e["file"]))
        with _atomic(folder / MANIFEST) as file:
            file.write(json.dumps({"fetched": entries}, indent=2).encode() + b"\n")


@contextlib.contextmanager
def _atomic(target: Path) -> Iterator[Any]:
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_fetched(path: Path) -> BarTable:
    """The table ``store_fetched`` wrote to ``path``, checked; ``DataError`` (``path:0: ...``)
    for a file that is not one, ``path:bar N: ...`` for a bar that fails the checks."""
    path = Path(path)
    try:
        table, fields = read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{path}:0: not a Parquet file of bars: {exc}") from None
    except DataError as exc:
        if f"no {_KEY.decode()} metadata" in str(exc):
            raise DataError(
                f"{path}:0: no {_KEY.decode()} metadata: not written by actorctl data fetch"
            ) from None
        raise
    if fields.get("loader_version") != FETCHED_VERSION:
        raise DataError(
            f"{path}:0: loader version {fields.get('loader_version')!r}, not "
            f"{FETCHED_VERSION!r}: not a fetched table (or an older one: fetch it again)"
        )
    return table
