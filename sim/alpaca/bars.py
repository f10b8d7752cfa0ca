"""Minute bars as Alpaca serves them: built from a symbol's trades, or taken from replay bars.

A bar covers one UTC minute, ``[start, start + 1 min)``, and carries what alpaca-py's ``Bar``
model requires besides OHLCV: ``n`` (trade count) and ``vw`` (volume-weighted price). A bar is
complete when its symbol's first trade of a later minute arrives (or on ``MinuteBars.complete``);
a trade older than the open bar's minute is counted in the open bar, as a late print would be.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from actors.domain import Bar
from actors.domain.bars import bar_trades

from .messages import timestamp


@attrs.frozen(kw_only=True)
class MinuteBar:
    symbol: str
    start: datetime
    """UTC, on the minute."""
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    trades: int
    vwap: Decimal

    def point(self) -> dict[str, Any]:
        """The stream's bar message (``T`` = ``b``); ``t`` is the bar's start."""
        return {
            "T": "b",
            "S": self.symbol,
            "o": float(self.open),
            "h": float(self.high),
            "l": float(self.low),
            "c": float(self.close),
            "v": self.volume,
            "t": timestamp(self.start),
            "n": self.trades,
            "vw": float(self.vwap),
        }

    def rest(self) -> dict[str, Any]:
        """The historical endpoint's bar: ``t`` is RFC-3339 to the second, ``Z``."""
        return {
            "t": f"{self.start:%Y-%m-%dT%H:%M:%S}Z",
            "o": float(self.open),
            "h": float(self.high),
            "l": float(self.low),
            "c": float(self.close),
            "v": self.volume,
            "n": self.trades,
            "vw": float(self.vwap),
        }


def from_replay(bar: Bar) -> MinuteBar:
    """A replay bar as served: ``n`` and ``vw`` are those of the four trades ``sim.replay``
    makes of it (``actors.domain.bars.bar_trades``), which is what the venue would have printed."""
    trades = [t for t in bar_trades(bar) if t.size > 0]
    volume = sum(t.size for t in trades)
    vwap = sum((t.price * t.size for t in trades), Decimal(0)) / volume if volume else bar.close
    return MinuteBar(
        symbol=bar.symbol,
        start=_minute(bar.start),
        open=bar.open,
        high=bar.high,
        low=bar.low,
        close=bar.close,
        volume=bar.volume,
        trades=len(trades),
        vwap=vwap,
    )


def _minute(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"a bar needs an aware time, got naive {at.isoformat()}")
    return at.astimezone(UTC).replace(second=0, microsecond=0)


@attrs.define
class _Open:
    start: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int = 0
    trades: int = 0
    notional: Decimal = Decimal(0)


class MinuteBars:
    """One symbol's open bar, fed its trades in time order."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._open: _Open | None = None

    def add(self, price: Decimal, size: int, at: datetime) -> MinuteBar | None:
        """Count a trade; return the bar it completed (the previous minute's), if any."""
        minute = _minute(at)
        completed = None
        if self._open is not None and minute > self._open.start:
            completed = self.complete()
        if self._open is None:
            self._open = _Open(start=minute, open=price, high=price, low=price, close=price)
        bar = self._open
        bar.high = max(bar.high, price)
        bar.low = min(bar.low, price)
        bar.close = price
        bar.volume += size
        bar.trades += 1
        bar.notional += price * size
        return completed

    def complete(self) -> MinuteBar | None:
        """Close the open bar now (the session ended, say) and return it."""
        bar, self._open = self._open, None
        if bar is None:
            return None
        return MinuteBar(
            symbol=self.symbol,
            start=bar.start,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            trades=bar.trades,
            vwap=bar.notional / bar.volume if bar.volume else bar.close,
        )
