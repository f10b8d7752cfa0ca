"""The gate every market data event passes before a strategy sees it (SPEC section 11): a tick
that is not finite or not positive, a crossed quote, one older than the last accepted (out of
order) or too old for its receipt time (stale) is dropped, counted by reason, and logged (the
first of each reason, then every thousandth, so a broken feed cannot flood the log)."""

from __future__ import annotations

import logging
from collections import Counter

import attrs

from .domain import PriceTick, Quote

log = logging.getLogger("actortrade.ticks")


@attrs.define(kw_only=True)
class TickGuard:
    """One symbol's gate. ``stale_after_ns`` = 0 disables the staleness check (replays run on
    the bars' clock, not the wall clock)."""

    symbol: str
    stale_after_ns: int = 0
    last_event_ns: int = 0
    accepted: int = 0
    dropped: Counter[str] = attrs.Factory(Counter)

    def admit(self, tick: PriceTick | Quote, now_ns: int = 0) -> bool:
        """True if ``tick`` may reach the strategy; otherwise it is counted and dropped."""
        reason = self._problem(tick, now_ns)
        if reason is None:
            self.accepted += 1
            if tick.ts_event_ns:
                self.last_event_ns = tick.ts_event_ns
            return True
        self.dropped[reason] += 1
        if self.dropped[reason] % 1000 == 1:
            log.warning(
                "%s: dropped a %s tick (%d so far): %r",
                self.symbol,
                reason,
                self.dropped[reason],
                tick,
            )
        return False

    def _problem(self, tick: PriceTick | Quote, now_ns: int) -> str | None:
        if tick.symbol != self.symbol:
            return "foreign"
        prices = [tick.price] if isinstance(tick, PriceTick) else [tick.bid, tick.ask]
        if not all(p.is_finite() for p in prices):
            return "non-finite"
        if any(p <= 0 for p in prices):
            return "non-positive"
        if isinstance(tick, Quote) and tick.bid > tick.ask:
            return "crossed"
        if tick.ts_event_ns and tick.ts_event_ns < self.last_event_ns:
            return "out-of-order"
        if (
            self.stale_after_ns
            and tick.ts_event_ns
            and now_ns - tick.ts_event_ns > self.stale_after_ns
        ):
            return "stale"
        return None
