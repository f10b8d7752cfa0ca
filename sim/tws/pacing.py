"""IB's pacing limits for the TWS face, so that a client's throttling can be tested.

Measured on a monotonic clock given to the server (``time.monotonic`` by default; a test
gives its own, so nothing depends on how fast the machine is), never on the venue's clock:

* **Messages**: ``messages_per_second`` from one connection, as a bucket of that many that
  refills at that many a second (``MessageRate``). A message over it is answered with error 100,
  "Max rate of messages per second has been exceeded:max=50 rec=N (k)" (N received in the last
  second, k this connection's violations), and is not served (TWS may also disconnect a client
  that persists; the sim does not).
* **Market data lines**: at most ``market_data_lines`` streaming subscriptions per connection;
  one more is error 101, "Max number of tickers has been reached". A snapshot holds no line
  (the sim answers it at once).
* **Historical data** (bars of ``small_bar_seconds`` or less, as IB paces them), across the
  server's connections: an identical request within ``identical_within`` seconds, a request
  that would be the ``same_contract_requests + 1``-th for one contract and whatToShow within
  ``same_contract_window`` seconds, or the ``historical_requests + 1``-th within
  ``historical_window`` seconds is error 162, "Historical Market Data Service error
  message:Historical data request pacing violation". A refused request does not count.

IB's defaults: 50 messages a second, 100 lines, 60 historical requests in 10 minutes, none
identical within 15 s, at most 5 for one contract in 2 s. A server enforces them only when
given them (``TwsServer(pacing=PacingLimits())``).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Hashable
from typing import Any

import attrs

HISTORICAL_PACING_TEXT = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)
MAX_TICKERS_TEXT = "Max number of tickers has been reached"


class PacingError(ValueError):
    """Raised by ``PacingLimits`` for a limit that is not a positive number, naming it."""


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise PacingError(f"pacing.{attribute.name}: a positive number, got {value!r}")


@attrs.frozen(kw_only=True)
class PacingLimits:
    """The limits (``TwsServer(pacing=)``); IB's by default."""

    messages_per_second: int = attrs.field(default=50, validator=_positive)
    market_data_lines: int = attrs.field(default=100, validator=_positive)
    historical_requests: int = attrs.field(default=60, validator=_positive)
    historical_window: float = attrs.field(default=600.0, validator=_positive)
    identical_within: float = attrs.field(default=15.0, validator=_positive)
    same_contract_requests: int = attrs.field(default=5, validator=_positive)
    same_contract_window: float = attrs.field(default=2.0, validator=_positive)
    small_bar_seconds: int = attrs.field(default=30, validator=_positive)


class MessageRate:
    """One connection's message rate: a bucket of ``limit`` messages that refills at ``limit``
    a second (a burst of ``limit``, then ``limit`` a second, so a client throttled a little
    under it, as ib_insync is at 45, never meets it however its bursts land in a second)."""

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.clock = clock
        self.violations = 0
        self._tokens = float(limit)
        self._last: float | None = None
        self._stamps: collections.deque[float] = collections.deque()

    def arrive(self) -> str | None:
        """Count a message; the text of error 100 when it is over the limit (it then takes
        nothing from the bucket: a client that keeps flooding gets ``limit`` a second through)."""
        now = self.clock()
        if self._last is not None:
            self._tokens = min(float(self.limit), self._tokens + (now - self._last) * self.limit)
        self._last = now
        while self._stamps and self._stamps[0] <= now - 1.0:
            self._stamps.popleft()
        self._stamps.append(now)
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return None
        self.violations += 1
        return (
            f"Max rate of messages per second has been exceeded:max={self.limit} "
            f"rec={len(self._stamps)} ({self.violations})"
        )


class HistoryPacing:
    """The historical data requests a server served, for IB's pacing rules."""

    def __init__(self, limits: PacingLimits, clock: Callable[[], float]) -> None:
        self.limits = limits
        self.clock = clock
        self._served: collections.deque[tuple[float, Hashable, Hashable]] = collections.deque()

    def admit(self, request: Hashable, contract: Hashable, bar_seconds: int) -> bool:
        """Whether ``request`` (everything it asked) for ``contract`` (its contract and
        whatToShow) may be served now; counted when it may."""
        limits = self.limits
        if bar_seconds > limits.small_bar_seconds:
            return True
        now = self.clock()
        while self._served and self._served[0][0] <= now - limits.historical_window:
            self._served.popleft()
        identical = any(
            r == request for t, r, _ in self._served if t > now - limits.identical_within
        )
        same = sum(
            1 for t, _, c in self._served if c == contract and t > now - limits.same_contract_window
        )
        if (
            identical
            or same >= limits.same_contract_requests
            or len(self._served) >= limits.historical_requests
        ):
            return False
        self._served.append((now, request, contract))
        return True
