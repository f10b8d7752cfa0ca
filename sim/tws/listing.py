"""Which options the TWS face lists for an underlying the venue trades, on a trading day.

* **Expiries**: the weekly expiries of the next ``weeks`` weeks and the monthly expiries of the
  next ``months`` months (``sim.options.expiries``, ``monthly_expiries``), from the venue
  clock's New York date; an expiry on that day is listed until its close.
* **Strikes**: ``strike_grid(reference, each_side=...)``, the reference being the underlying's
  first trade of the day (``Engine.opens``), or, before its first trade of the day, its last
  trade before it. The chain so holds still through the day. An underlying that has never traded
  lists nothing (error 200 for any option on it).
* **Kept**: a contract with a working order or an open position at the venue stays listed
  until it expires, even once the strikes moved away from it.

Pure functions of their arguments (the server passes the engine's state and its clock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from decimal import Decimal
from typing import Any

import attrs

from sim.options import OptionChain, OptionContract, OptionError, expiries, monthly_expiries
from sim.options.chain import strike_grid


def _count(low: int) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ListingError(f"listing.{attribute.name}: a whole number >= {low}, got {value!r}")

    return check


class ListingError(ValueError):
    """Raised by ``Listing`` for a count that is not a whole number in range, naming it."""


@attrs.frozen(kw_only=True)
class Listing:
    """How many expiries and strikes the venue lists per underlying (``TwsServer(listing=)``)."""

    weeks: int = attrs.field(default=8, validator=_count(1))
    """Weekly expiries: this many weeks' (the current week's first)."""
    months: int = attrs.field(default=3, validator=_count(0))
    """Monthly expiries besides: this many months' (the current month's first, once past)."""
    each_side: int = attrs.field(default=20, validator=_count(0))
    """Strikes each side of the one nearest the reference price."""


def reference_price(
    today: date, opens: Mapping[str, tuple[date, Decimal]], last: Mapping[str, Decimal], symbol: str
) -> Decimal | None:
    """The price the strikes of ``symbol`` are laid around on ``today``: its first trade of
    the day, else its last trade before it, else None (never traded: nothing listed)."""
    opened = opens.get(symbol)
    if opened is not None and opened[0] == today:
        return opened[1]
    return last.get(symbol)


def listed_chain(underlying: str, reference: Decimal, today: date, listing: Listing) -> OptionChain:
    """The chain of ``underlying`` on ``today`` (see the module doc)."""
    days = set(expiries(today, weeks=listing.weeks))
    if listing.months:
        days.update(monthly_expiries(today, months=listing.months))
    return OptionChain(
        underlying=underlying,
        expiries=tuple(sorted(days)),
        strikes=strike_grid(reference, each_side=listing.each_side),
    )


def is_listed(chain: OptionChain, option: OptionContract) -> bool:
    """Whether ``chain`` lists ``option`` (its expiry and its strike; both rights are)."""
    return (
        option.underlying == chain.underlying
        and option.expiry in chain.expiries
        and option.strike in chain.strikes
    )


def held_options(symbols: Iterable[str], today: date) -> dict[int, OptionContract]:
    """The options among ``symbols`` (OCC local symbols of working orders and open positions;
    other symbols are skipped) that have not expired before ``today``, by conId."""
    held: dict[int, OptionContract] = {}
    for symbol in symbols:
        try:
            option = OptionContract.from_local_symbol(symbol)
        except OptionError:
            continue  # a stock
        if option.expiry >= today:
            held[option.con_id] = option
    return held
