"""Warm-up history (SPEC 12): the ``HistorySource`` port a symbol actor asks for the bars a
strategy needs before its first decision (``Needs.warmup``), and its adapter on the replay file.

Three adapters answer it, each turning its vendor's bars into our ``Bar``s of the
definitions of ``actors.domain.bars``:

* ``ReplayHistory`` (here): the minute bars of the file the sim venue replays (``sim.replay``),
  those the venue has already seen, composed into the size asked for;
* ``actors.brokers.ib.IBHistory``: IB's ``reqHistoricalData`` through ib_insync (TRADES bars,
  ``useRTH`` for regular sessions), on a connection of its own;
* ``actors.feeds.alpaca.AlpacaHistory``: Alpaca's REST bars through alpaca-py's
  ``StockHistoricalDataClient.get_stock_bars`` (paginated), minute bars composed here, since
  Alpaca's bars always include the extended hours.

A source answers with complete bars only: the bar in progress is not history.
``HistoryBySymbol`` gives each symbol its own source (the application's choice,
``[history] source``: see ``docs/bars.md``).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from .domain import Bar, epoch_ns
from .domain.bars import BarBuilder, SessionKind, window


class HistoryError(RuntimeError):
    """Raised by a ``HistorySource`` that cannot answer (its venue refused or is unreachable);
    names the source, the symbol and why."""


class HistorySource(Protocol):
    """Where warm-up bars come from (see the module doc)."""

    @property
    def name(self) -> str:
        """The source's name in logs (``replay``, ``ib``, ``alpaca``)."""
        ...

    async def recent(
        self, symbol: str, *, seconds: int, count: int, sessions: SessionKind
    ) -> list[Bar]:
        """The last ``count`` complete bars of ``symbol`` of ``seconds`` made of ``sessions``
        (``actors.domain.bars``), as of the source's own clock, oldest first; fewer when its
        history is shorter. Raises ``HistoryError`` when the source cannot answer."""
        ...


def last_complete(
    minutes: Sequence[Bar], *, seconds: int, count: int, sessions: SessionKind, until_ns: int
) -> list[Bar]:
    """The last ``count`` bars of ``seconds`` composed of ``minutes`` (minute bars of one
    symbol in time order), among those complete at ``until_ns`` (their end is not later)."""
    builder = BarBuilder(minutes[0].symbol if minutes else "", (seconds,), sessions)
    complete = [c.bar for m in minutes for c in builder.add_bar(m)]
    complete.extend(c.bar for c in builder.close_due(until_ns))
    return complete[-count:] if count else []


class ReplayHistory:
    """History from the minute bars of a replay file: the bars that start at or before
    ``until()`` (the venue's last trade, say: the bars the replay has already printed), none
    when it returns None. ``bars`` are in time order (``sim.replay.load_bars`` checks it)."""

    name = "replay"

    def __init__(self, bars: Sequence[Bar], *, until: Callable[[], datetime | None]) -> None:
        self.until = until
        self._by_symbol: dict[str, list[Bar]] = {}
        for bar in bars:
            self._by_symbol.setdefault(bar.symbol, []).append(bar)
        self._starts = {s: [epoch_ns(b.start) for b in bs] for s, bs in self._by_symbol.items()}

    def __repr__(self) -> str:
        return f"ReplayHistory(symbols={sorted(self._by_symbol)})"

    async def recent(
        self, symbol: str, *, seconds: int, count: int, sessions: SessionKind
    ) -> list[Bar]:
        until = self.until()
        bars = self._by_symbol.get(symbol, [])
        if until is None or not bars or count <= 0:
            return []
        # The minute bar of the venue's last trade has been printed whole by then (a replayed
        # minute is four trades, the last 45 s after its start).
        cut_ns = epoch_ns(until)
        end = bisect.bisect_right(self._starts[symbol], cut_ns)
        # Walk back only as far as the bars asked for reach (one more, which may be cut).
        windows: set[int] = set()
        first = end
        while first > 0 and len(windows) <= count + 1:
            first -= 1
            span = window(self._starts[symbol][first], seconds, sessions)
            if span is not None:
                windows.add(span.start_ns)
        if len(windows) > count + 1:
            first += 1
        minutes = bars[first:end]
        if not minutes:
            return []
        until_ns = epoch_ns(minutes[-1].start + timedelta(minutes=1))
        return last_complete(
            minutes, seconds=seconds, count=count, sessions=sessions, until_ns=until_ns
        )


class HistoryBySymbol:
    """Each symbol's warm-up from a source of its own (an Alpaca-fed symbol from Alpaca's bars,
    an IB-fed one from IB's, say). A symbol it has no source for is refused with a
    ``HistoryError`` naming it (the composition gives every symbol that needs warm-up one)."""

    def __init__(self, sources: Mapping[str, HistorySource]) -> None:
        self.sources = dict(sources)

    def __repr__(self) -> str:
        return f"HistoryBySymbol({self.name})"

    @property
    def name(self) -> str:
        """Each source's name with its symbols, as ``ib (QQQ), alpaca (TQQQ)``."""
        by_name: dict[str, list[str]] = {}
        for symbol, source in self.sources.items():
            by_name.setdefault(source.name, []).append(symbol)
        return ", ".join(f"{name} ({', '.join(sorted(s))})" for name, s in by_name.items())

    async def recent(
        self, symbol: str, *, seconds: int, count: int, sessions: SessionKind
    ) -> list[Bar]:
        source = self.sources.get(symbol)
        if source is None:
            raise HistoryError(f"no history source serves {symbol}")
        return await source.recent(symbol, seconds=seconds, count=count, sessions=sessions)
