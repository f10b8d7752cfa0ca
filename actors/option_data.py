"""Option data for the options bot: the ``OptionData`` port a symbol actor's options strategy
calls directly (not an actor), between a signal and an order, for the underlying's option
chain, a quote of the option it chose and the account's equity to size the order with.

Two adapters answer it, each turning its venue's answers into our ``OptionChain`` and
``OptionQuote`` (``actors.domain``):

* ``actors.brokers.sim.SimOptionData``: the in-process sim venue's engine, listing and
  quoting as the venue's TWS face does;
* ``actors.brokers.ib_options.IBOptionData``: IB's ``reqSecDefOptParams``, ``reqMktData``
  (generic ticks 100 and 101) and account summary through ib_insync, on a connection of its
  own (its own clientId).

What the callers may rely on:

* **Chains** are cached per New York trading day by the adapters (``ChainCache``): an
  underlying's listing holds still through the day, so asking again costs no request.
* **Quotes** with missing fields are returned with those fields None (no bid yet, no open
  interest sent before the timeout, IB's "no price"): the caller's liquidity filter skips such
  an option. Only a venue that cannot be reached or refuses the request (an option it does
  not list, a market data permission it lacks) raises ``OptionDataError``.
* **Equity** is the account's net liquidation value (IB's ``NetLiquidation``), in USD.

``Pacer`` spaces an adapter's requests so that it stays under IB's pacing limits.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

import anyio

from .domain import OptionChain, OptionQuote
from .domain.sessions import NEW_YORK


class OptionDataError(RuntimeError):
    """Raised by an ``OptionData`` adapter whose venue cannot answer: unreachable, timed out,
    or refusing the request (``code``: IB's error code, when IB refused); names the source,
    what was asked and why."""

    def __init__(self, source: str, asked: str, why: str, *, code: int | None = None) -> None:
        super().__init__(f"{source}: {asked}: {why}")
        self.source = source
        self.asked = asked
        self.why = why
        self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        # the message is built from the fields: rebuilt from them when unpickled
        return (_rebuild, (self.source, self.asked, self.why, self.code))


def _rebuild(source: str, asked: str, why: str, code: int | None) -> OptionDataError:
    return OptionDataError(source, asked, why, code=code)


class OptionData(Protocol):
    """Where option chains, option quotes and the account's equity come from (see the module
    doc)."""

    @property
    def name(self) -> str:
        """The source's name in logs (``sim``, ``ib``)."""
        ...

    async def chain(self, underlying: str) -> OptionChain:
        """The options listed on ``underlying`` today (cached for the New York day).
        Raises ``OptionDataError`` when the venue cannot answer or lists none."""
        ...

    async def quote(self, symbol: str) -> OptionQuote:
        """The venue's quote of the option ``symbol`` (an OCC symbol) now; fields the venue
        did not send are None. Raises ``OptionDataError`` when the venue cannot answer or
        does not list the option."""
        ...

    async def equity(self) -> Decimal:
        """The account's net liquidation value (``NetLiquidation``) in USD. Raises
        ``OptionDataError`` when the venue cannot answer."""
        ...


class ChainCache:
    """The chains an adapter fetched today, by underlying: the day is the New York date of
    ``clock`` (the venue's time for the sim, the wall clock for IB). A chain of another day is
    never answered; putting one drops the other days'."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._chains: dict[tuple[str, date], OptionChain] = {}

    def __repr__(self) -> str:
        return f"ChainCache({sorted(u for u, _ in self._chains)})"

    def today(self) -> date:
        """The New York date of ``clock``: the day a chain is cached for."""
        return self.clock().astimezone(NEW_YORK).date()

    def get(self, underlying: str) -> OptionChain | None:
        return self._chains.get((underlying, self.today()))

    def put(self, chain: OptionChain) -> None:
        today = self.today()
        self._chains = {key: c for key, c in self._chains.items() if key[1] == today}
        self._chains[(chain.underlying, today)] = chain


class PacerError(ValueError):
    """Raised by ``Pacer`` for a rate or a period that is not a positive number, naming it."""


class Pacer:
    """Spaces requests so that at most ``rate`` go in any ``per`` seconds (IB refuses a
    client's messages beyond 50 a second with error 100; an adapter keeps well under that,
    since its cancels and ib_insync's own messages share the connection). ``rate`` 0: no
    limit (a venue without pacing).

    A request reserves its slot when it asks (``reserve``), so concurrent callers are spaced
    among themselves; a caller cancelled while it waits keeps its slot (the spacing errs on
    the safe side). ``clock`` gives monotonic seconds: the event loop's by default
    (``anyio.current_time``, virtual under a test's mock clock)."""

    def __init__(
        self, rate: int, *, per: float = 1.0, clock: Callable[[], float] | None = None
    ) -> None:
        if rate < 0:
            raise PacerError(f"rate: a whole number of requests >= 0, got {rate!r}")
        if not per > 0:  # NaN too
            raise PacerError(f"per: a positive number of seconds, got {per!r}")
        self.rate = rate
        self.per = float(per)
        self.clock = clock if clock is not None else anyio.current_time
        self.granted = 0
        """Requests let through so far."""
        self._slots: collections.deque[float] = collections.deque(maxlen=rate or None)

    def __repr__(self) -> str:
        return f"Pacer({self.rate} per {self.per:g}s)"

    def reserve(self, now: float) -> float:
        """Reserve the next request's slot, asked at ``now``: the seconds it must wait before
        it goes (0: at once). Reads no clock."""
        self.granted += 1
        if not self.rate:
            return 0.0
        slots = self._slots
        # Slots are reserved in time order: the rate-th last one is the oldest that may still
        # share a window of ``per`` seconds with this one.
        at = now if len(slots) < self.rate else max(now, slots[0] + self.per)
        slots.append(at)
        return at - now

    async def wait(self) -> None:
        """Return when the next request may go (at once, while under the rate)."""
        delay = self.reserve(self.clock())
        if delay > 0:
            await anyio.sleep(delay)
