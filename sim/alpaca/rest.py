"""The historical bars endpoint, without I/O: ``GET /v2/stocks/bars`` parsed and answered.

Parameters (Alpaca's): ``symbols`` (comma-separated, required), ``timeframe`` (only ``1Min``,
also spelt ``1T``; others are 422), ``start``/``end`` (RFC-3339 or a date; naive means UTC;
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
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import attrs

from .bars import MinuteBar

PAGE_CAP = 10_000
TIMEFRAMES = ("1Min", "1T")
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
    if timeframe not in TIMEFRAMES:
        raise RestError(422, f"invalid timeframe {timeframe!r}: this venue serves 1Min bars only")
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
    )
    if query.start and query.end and query.end < query.start:
        raise RestError(400, "end is before start")
    return query


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
