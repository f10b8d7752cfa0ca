"""The historical bars endpoint, without I/O: ``GET /v2/stocks/bars`` (and the single-symbol
``GET /v2/stocks/{symbol}/bars``, answered by the server in its own shape) parsed and answered.

Parameters (Alpaca's): ``symbols`` (comma-separated, required), ``timeframe`` (``{n}Min`` 1-59,
also spelt ``{n}T``, ``{n}Hour`` 1-23 or ``{n}H``, ``1Day`` or ``1D``; others are 422; bars
longer than a minute are composed of the minute bars by ``actors.domain.bars``, extended
session, so a day is 04:00-20:00 New York and dated at 04:00; minute bars outside the sessions
are in no longer bar), ``start``/``end`` (RFC-3339 or a date; naive means UTC;
both inclusive, open-ended when absent), ``limit`` (1..10,000: the most bars in this response;
alpaca-py asks for the rest with the token), ``page_token``, ``sort`` (``asc``/``desc``, by
time within a symbol), ``feed`` (any known feed; every feed serves the same bars), and
``adjustment``, ``asof``, ``currency`` (accepted, ignored); any other parameter is 400.

Bars are ordered by symbol, then time; a page holds at most ``min(limit, page size)`` of them.
``next_page_token`` is opaque (it names the last bar sent), so a page boundary stays put when
bars are added meanwhile.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import attrs

from actors.domain.bars import DAY, window

from .bars import MinuteBar

PAGE_CAP = 10_000
_TIMEFRAME = re.compile(r"^([1-9][0-9]?)(Min|T|Hour|H|Day|D)$")
_UNIT_SECONDS = {"Min": 60, "T": 60, "Hour": 3600, "H": 3600, "Day": DAY, "D": DAY}
_UNIT_MAX = {60: 59, 3600: 23, DAY: 1}
REST_FEEDS = ("iex", "sip", "delayed_sip", "boats", "overnight", "otc")
_IGNORED = ("adjustment", "asof", "currency")
_KNOWN = ("symbols", "timeframe", "start", "end", "limit", "page_token", "sort", "feed")


class RestError(Exception):
    """Raised by ``parse_bars_query`` for a request the endpoint refuses: its HTTP status and
    the ``message`` of the JSON error body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@attrs.frozen(kw_only=True)
class BarsQuery:
    symbols: tuple[str, ...]
    start: datetime | None = None
    end: datetime | None = None
    limit: int | None = None
    page_token: str | None = None
    descending: bool = False
    seconds: int = 60


def parse_bars_query(params: Mapping[str, Sequence[str]]) -> BarsQuery:
    """The query string's parameters (as ``urllib.parse.parse_qs`` gives them), checked."""
    unknown = sorted(set(params) - {*_KNOWN, *_IGNORED})
    if unknown:
        raise RestError(400, f"unknown parameter: {', '.join(unknown)}")
    one = {name: values[-1] for name, values in params.items() if values}
    symbols = tuple(s.strip() for s in one.get("symbols", "").split(",") if s.strip())
    if not symbols:
        raise RestError(400, "symbols is required")
    timeframe = one.get("timeframe")
    if timeframe is None:
        raise RestError(400, "timeframe is required")
    seconds = _timeframe_seconds(timeframe)
    limit = None
    if "limit" in one:
        try:
            limit = int(one["limit"])
        except ValueError:
            raise RestError(400, f"invalid limit {one['limit']!r}") from None
        if not 1 <= limit <= PAGE_CAP:
            raise RestError(400, f"limit must be between 1 and {PAGE_CAP}, got {limit}")
    sort = one.get("sort", "asc")
    if sort not in ("asc", "desc"):
        raise RestError(400, f"invalid sort {sort!r}: asc or desc")
    feed = one.get("feed")
    if feed is not None and feed not in REST_FEEDS:
        raise RestError(400, f"invalid feed {feed!r}")
    token = one.get("page_token") or None
    if token is not None:
        _after(token)  # refuse a bad token now, not halfway through the answer
    query = BarsQuery(
        symbols=symbols,
        start=_time("start", one.get("start")),
        end=_time("end", one.get("end")),
        limit=limit,
        page_token=token,
        descending=sort == "desc",
        seconds=seconds,
    )
    if query.start and query.end and query.end < query.start:
        raise RestError(400, "end is before start")
    return query


def _timeframe_seconds(timeframe: str) -> int:
    match = _TIMEFRAME.match(timeframe)
    unit = _UNIT_SECONDS[match[2]] if match else 0
    if match is None or int(match[1]) > _UNIT_MAX[unit]:
        raise RestError(
            422, f"invalid timeframe {timeframe!r}: 1-59Min, 1-23Hour or 1Day (also T, H, D)"
        )
    seconds = int(match[1]) * unit
    if DAY % seconds:  # 7Min, 5Hour...: not a bar of actors.domain.bars
        raise RestError(422, f"invalid timeframe {timeframe!r}: this venue's bars divide a day")
    return seconds


def composed(bars: Iterable[MinuteBar], seconds: int) -> list[MinuteBar]:
    """Minute bars (any order) composed into bars of ``seconds`` of the extended session."""
    groups: dict[tuple[str, int], list[MinuteBar]] = {}
    for bar in sorted(bars, key=lambda b: (b.symbol, b.start)):
        span = window(int(bar.start.timestamp()) * 1_000_000_000, seconds, "extended")
        if span is not None:
            groups.setdefault((bar.symbol, span.start_ns), []).append(bar)
    out = []
    for (symbol, start_ns), group in groups.items():
        volume = sum(b.volume for b in group)
        notional = sum((b.vwap * b.volume for b in group), Decimal(0))
        out.append(
            MinuteBar(
                symbol=symbol,
                start=datetime.fromtimestamp(start_ns // 1_000_000_000, UTC),
                open=group[0].open,
                high=max(b.high for b in group),
                low=min(b.low for b in group),
                close=group[-1].close,
                volume=volume,
                trades=sum(b.trades for b in group),
                vwap=notional / volume if volume else group[-1].close,
            )
        )
    return out


def _time(name: str, text: str | None) -> datetime | None:
    if text is None or text == "":
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        at = datetime.fromisoformat(text)
    except ValueError:
        raise RestError(400, f"invalid {name} {text!r}: expected RFC-3339 or a date") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def _key(bar: MinuteBar, descending: bool) -> tuple[str, int]:
    stamp = int(bar.start.timestamp())
    return bar.symbol, -stamp if descending else stamp


def _token(key: tuple[str, int]) -> str:
    return base64.urlsafe_b64encode(f"{key[0]}\n{key[1]}".encode()).decode()


def _after(token: str) -> tuple[str, int]:
    try:
        symbol, stamp = base64.urlsafe_b64decode(token.encode()).decode().split("\n")
        return symbol, int(stamp)
    except (binascii.Error, UnicodeError, ValueError):
        raise RestError(400, f"invalid page_token {token!r}") from None


def bars_page(bars: Iterable[MinuteBar], query: BarsQuery, page_size: int) -> dict[str, Any]:
    """The response body for one page: ``{"bars": {symbol: [...]}, "next_page_token": ...}``."""
    wanted = set(query.symbols)
    if query.seconds != 60:
        bars = composed((b for b in bars if b.symbol in wanted), query.seconds)
    chosen = [
        b
        for b in bars
        if b.symbol in wanted
        and (query.start is None or b.start >= query.start)
        and (query.end is None or b.start <= query.end)
    ]
    keyed = sorted(((_key(b, query.descending), b) for b in chosen), key=lambda kb: kb[0])
    if query.page_token is not None:
        after = _after(query.page_token)
        keyed = [(k, b) for k, b in keyed if k > after]
    size = min(query.limit or PAGE_CAP, PAGE_CAP, page_size)
    page, rest = keyed[:size], keyed[size:]
    body: dict[str, list[dict[str, Any]]] = {}
    for _, bar in page:
        body.setdefault(bar.symbol, []).append(bar.rest())
    return {"bars": body, "next_page_token": _token(page[-1][0]) if rest else None}
