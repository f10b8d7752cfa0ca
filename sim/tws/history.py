"""``reqHistoricalData`` (message 20) of the TWS API server, without I/O: the request checked
the way IB checks it, and the TRADES bars of a symbol's prints.

The prints are the venue's own trades and the history it was given (the replay file's bars
before the replay started, each as the four trades ``sim.replay.bar_trades`` makes of it:
what the venue would have printed). Bars follow ``actors.domain.bars``: the New York clock,
regular hours (``useRTH=1``) or the extended session, daily bars by session; weekly bars group
a week's sessions, monthly a month's, each dated by its first session. No empty bars.

**The window.** ``endDateTime`` (empty: the venue's clock) ends it, exclusive; the duration
(``"N S"`` seconds, ``"N D"`` trading days counting the end's own, ``"N W"`` weeks, ``"N M"``
months, ``"N Y"`` years; no unit is seconds) starts it. A bar still in progress at the end is
sent as far as it goes, as IB does.

**Options** (``sim.tws.option_data.option_prints``): the prints are the option's quotes at its
underlying's prints, and TRADES, MIDPOINT, BID and ASK are served; bars of MIDPOINT, BID and ASK
carry no volume, WAP or count (-1 each, as IB sends them).

**Refusals** (IB's codes and wording; checked in IB's order): 10314 for an end date/time it
cannot read; 321 ("Error validating request.-'bP' : cause - ...") for a duration not given,
malformed, zero, under 30 s, over 86400 S / 365 D / 52 W / 12 M; a bar size not in IB's list
(case-insensitive, the list in the message); a ``whatToShow`` other than TRADES (the only one
simulated; IB's wording for an unknown one); a ``formatDate`` other than 1 or 2;
``keepUpToDate`` (live updates are not simulated; with an end date, IB's own "End date not
supported with live updates"). 162 "HMDS query returned no data" when the window holds no
print.

**The answer** (``historicalData``, message 17, no version field at server version >= 124):
``reqId, start, end, count``, then per bar ``date, open, high, low, close, volume, WAP,
barCount``. Dates: ``formatDate=1`` is ``YYYYMMDD HH:MM:SS America/New_York`` for intraday
bars, ``formatDate=2`` Unix seconds; daily and longer bars are ``YYYYMMDD`` either way.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from actors.domain import Bar, epoch_ns
from actors.domain.bars import DAY, SessionKind, bar_trades, window
from actors.domain.sessions import NEW_YORK, is_trading_day

WEEK = 7 * DAY
MONTH = 31 * DAY
"""Markers for weekly and monthly bars (grouped by calendar, not by a fixed span)."""
BAR_SIZES = {
    "1 secs": 1,
    "5 secs": 5,
    "10 secs": 10,
    "15 secs": 15,
    "30 secs": 30,
    "1 min": 60,
    "2 mins": 120,
    "3 mins": 180,
    "5 mins": 300,
    "10 mins": 600,
    "15 mins": 900,
    "20 mins": 1200,
    "30 mins": 1800,
    "1 hour": 3600,
    "2 hours": 7200,
    "3 hours": 10800,
    "4 hours": 14400,
    "8 hours": 28800,
    "1 day": DAY,
    "1w": WEEK,
    "1 week": WEEK,
    "1m": MONTH,
    "1 month": MONTH,
}
LEGAL_SIZES = (
    "1 secs, 5 secs, 10 secs, 15 secs, 30 secs, 1 min, 2 mins, 3 mins, 5 mins, 10 mins, "
    "15 mins, 20 mins, 30 mins, 1 hour, 2 hours, 3 hours, 4 hours, 8 hours, 1 day, 1W, 1M"
)
_VALIDATING = "Error validating request.-'bP' : cause - "
_DURATION = re.compile(r"^(\d+)(?: ([SDWMYsdwmy]))?$")
_END = re.compile(r"^(\d{8})[ -](\d{2}:\d{2}:\d{2})(?: (\S+))?$")
_NS = 1_000_000_000


class HistoryRefused(Exception):
    """Raised by ``check_request`` for a request IB would refuse: its code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@attrs.frozen(kw_only=True)
class HistoryRequest:
    symbol: str
    start: datetime
    end: datetime
    seconds: int
    regular: bool
    format_date: int
    what_to_show: str = "TRADES"


@attrs.frozen(kw_only=True)
class Print:
    ts_ns: int
    price: Decimal
    size: int


def _refuse(cause: str) -> HistoryRefused:
    return HistoryRefused(321, _VALIDATING + cause)


def parse_end(text: str, now: datetime) -> datetime:
    """``endDateTime``: empty is ``now``; ``YYYYMMDD HH:MM:SS [zone]`` (New York without a
    zone) or ``YYYYMMDD-HH:MM:SS`` (UTC)."""
    if text == "":
        return now
    match = _END.match(text)
    invalid = HistoryRefused(
        10314,
        "End Date/Time: The date, time, or time-zone entered is invalid. The correct format is "
        "yyyymmdd hh:mm:ss xx/xxxx where yyyymmdd and xx/xxxx are optional. E.g.: 20031126 "
        "15:59:00 US/Eastern",
    )
    if match is None:
        raise invalid
    day, clock, zone = match.groups()
    try:
        naive = datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S")
        tz = UTC if "-" in text and zone is None else ZoneInfo(zone) if zone else NEW_YORK
    except (ValueError, ZoneInfoNotFoundError):
        raise invalid from None
    return naive.replace(tzinfo=tz)


def window_start(duration: str, end: datetime) -> datetime:
    """The start of the window ``duration`` ends at ``end`` (see the module doc)."""
    if duration == "":
        raise _refuse("Historical data request duration not specified.")
    match = _DURATION.match(duration)
    if match is None:
        raise _refuse(
            "When specifying a unit, historical data request duration format is "
            "integer{SPACE}unit (S|D|W|M|Y)."
        )
    count, unit = int(match[1]), (match[2] or "S").upper()
    if count == 0 or (unit == "S" and count < 30) or count > 1_000_000:
        raise _refuse("Historical data requested duration is invalid.")
    limits = {"S": 86400, "D": 365, "W": 52, "M": 12}
    if unit in limits and count > limits[unit]:
        raise _refuse(
            "Historical data request for greater than 86400 seconds rejected."
            if unit == "S"
            else f"Historical data request for durations longer than {limits[unit]} "
            f"{ {'D': 'days', 'W': 'weeks', 'M': 'months'}[unit] } must be made in years."
        )
    local = end.astimezone(NEW_YORK)
    if unit == "S":
        return end - timedelta(seconds=count)
    if unit == "W":
        return end - timedelta(weeks=count)
    if unit == "D":
        day, seen = local.date(), 0
        while True:
            if is_trading_day(day):
                seen += 1
                if seen == count:
                    return datetime.combine(day, datetime.min.time(), tzinfo=NEW_YORK)
            day -= timedelta(days=1)
    months = count if unit == "M" else 12 * count
    year, month = divmod(local.year * 12 + local.month - 1 - months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return local.replace(year=year, month=month + 1, day=min(local.day, last))


def check_request(
    *,
    symbol: str,
    end_text: str,
    duration: str,
    bar_size: str,
    what_to_show: str,
    use_rth: bool,
    format_date: int,
    keep_up_to_date: bool,
    now: datetime,
    shows: tuple[str, ...] = ("TRADES",),
) -> HistoryRequest:
    """The request as IB validates it (see the module doc); ``HistoryRefused`` otherwise.
    ``shows``: the whatToShow values served for the contract (an option's:
    ``sim.tws.option_data``)."""
    end = parse_end(end_text, now)
    start = window_start(duration, end)
    seconds = BAR_SIZES.get(bar_size.strip().lower())
    if seconds is None:
        raise _refuse(f"Historical data bar size setting is invalid. Legal ones are: {LEGAL_SIZES}")
    if what_to_show.upper() not in shows:
        raise _refuse(f"What to show value of {what_to_show} rejected.")
    if format_date not in (1, 2):
        raise _refuse(f"Date formatting selection of {format_date} rejected.")
    if keep_up_to_date:
        raise _refuse(
            "End date not supported with live updates"
            if end_text
            else "Live updates of historical bars (keepUpToDate) are not simulated"
        )
    return HistoryRequest(
        symbol=symbol,
        start=start,
        end=end,
        seconds=seconds,
        regular=use_rth,
        format_date=format_date,
        what_to_show=what_to_show.upper(),
    )


def history_prints(bars: Iterable[Bar]) -> dict[str, list[Print]]:
    """Given history bars as the prints the venue would have made of them."""
    prints: dict[str, list[Print]] = {}
    for bar in bars:
        for trade in bar_trades(bar):
            prints.setdefault(bar.symbol, []).append(
                Print(ts_ns=epoch_ns(trade.at), price=trade.price, size=trade.size)
            )
    return prints


@attrs.frozen(kw_only=True)
class HistoryBar:
    bar: Bar
    seconds: int
    wap: Decimal
    count: int


def history_bars(request: HistoryRequest, prints: Iterable[Print]) -> list[HistoryBar]:
    """The TRADES bars of ``prints`` (in time order) in the request's window."""
    start_ns, end_ns = epoch_ns(request.start), epoch_ns(request.end)
    sessions: SessionKind = "regular" if request.regular else "extended"
    size = min(request.seconds, DAY)
    groups: dict[object, list[Print]] = {}
    starts: dict[object, int] = {}
    for p in prints:
        if not start_ns <= p.ts_ns < end_ns:
            continue
        span = window(p.ts_ns, size, sessions)
        if span is None:
            continue
        key: object = span.start_ns
        if request.seconds == WEEK:
            key = datetime.fromtimestamp(span.start_ns // _NS, NEW_YORK).isocalendar()[:2]
        elif request.seconds == MONTH:
            local = datetime.fromtimestamp(span.start_ns // _NS, NEW_YORK)
            key = (local.year, local.month)
        groups.setdefault(key, []).append(p)
        starts.setdefault(key, span.start_ns)
    out = []
    for key, group in groups.items():
        volume = sum(p.size for p in group)
        notional = sum((p.price * p.size for p in group), Decimal(0))
        out.append(
            HistoryBar(
                bar=Bar(
                    symbol=request.symbol,
                    start=datetime.fromtimestamp(starts[key] // _NS, UTC),
                    open=group[0].price,
                    high=max(p.price for p in group),
                    low=min(p.price for p in group),
                    close=group[-1].price,
                    volume=volume,
                ),
                seconds=request.seconds,
                wap=(notional / volume).quantize(Decimal("0.0001")) if volume else group[-1].price,
                count=len(group),
            )
        )
    return out


def bar_date(bar: HistoryBar, format_date: int) -> str:
    local = bar.bar.start.astimezone(NEW_YORK)
    if bar.seconds >= DAY:
        return f"{local:%Y%m%d}"
    if format_date == 2:
        return str(int(bar.bar.start.timestamp()))
    return f"{local:%Y%m%d %H:%M:%S} America/New_York"


def historical_data(req_id: int, request: HistoryRequest, bars: list[HistoryBar]) -> list[object]:
    """The ``historicalData`` message (17) answering ``request``."""
    fields: list[object] = [
        17,
        req_id,
        f"{request.start.astimezone(NEW_YORK):%Y%m%d %H:%M:%S}",
        f"{request.end.astimezone(NEW_YORK):%Y%m%d %H:%M:%S}",
        len(bars),
    ]
    traded = request.what_to_show == "TRADES"
    for b in bars:
        fields += [
            bar_date(b, request.format_date),
            b.bar.open,
            b.bar.high,
            b.bar.low,
            b.bar.close,
            *((b.bar.volume, b.wap, b.count) if traded else (-1, -1, -1)),
        ]
    return fields
