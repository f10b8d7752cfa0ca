"""The market data the TWS face sends for an option, without I/O: its ticks from the venue's
quote (``Engine.option_quote``), the generic tick list checked as IB checks it, and the prints
its historical bars are made of.

**Ticks** of one quote, in this order (delayed ids after reqMarketDataType 3 or 4):
bid, ask and last prices with their sizes (tickPrice 1/66, 2/67, 4/68, each followed by its
tickSize 0/69, 3/70, 5/71; the last is the model price on the tick, one contract), the day's
volume (8/74), then tickOptionComputation (21) for the bid (10/80), the ask (11/81), the last
(12/82) and the model (13/83): the model's carries the quote's implied volatility, delta,
gamma, vega (per vol point), theta (per day), model price, PV of dividends and the underlying's
price; the bid's, ask's and last's carry the volatility implied by that price and the greeks at
it (not sent when no volatility gives that price, a zero bid say). With generic tick 100, the
option's volume as call (29) or put (30) volume; with 101, its open interest as call (27) or put
(28) open interest.

**Generic ticks**: the sim serves 100 and 101 (on an option: its own; on a stock: the totals of
its listed chain); any other is refused as IB refuses an unknown one (321, naming it and the
legal ones), and a snapshot with generic ticks is refused as IB does.

**Historical bars** of an option: at each print of its underlying, the option's quote with the
underlying at that price (``quote_option`` with the engine's pricing parameters, so the same
numbers ``Engine.option_quote`` gave then): TRADES the last (the model price on the tick, no
volume), MIDPOINT the middle of bid and ask, BID, ASK.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from actors.domain.sessions import NEW_YORK
from sim.options import OptionContract, OptionError, OptionQuote, PricingParams, quote_option
from sim.options.pricing import bsm_greeks, implied_vol, years_to_expiry

from . import messages as m
from .history import Print

SERVED_GENERIC_TICKS = (100, 101)
OPTION_VOLUME, OPTION_OPEN_INTEREST = 100, 101
OPTION_SHOWS = ("TRADES", "MIDPOINT", "BID", "ASK")
"""What reqHistoricalData shows of an option."""
_NS = 1_000_000_000
_VALIDATING = "Error validating request.-'bW' : cause - "


class GenericTicksRefused(Exception):
    """Raised by ``parse_generic_ticks`` for a list IB would refuse: its code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def parse_generic_ticks(text: str, *, sec_type: str, snapshot: bool) -> frozenset[int]:
    """The generic ticks of a reqMktData's ``genericTickList`` (comma-separated ids);
    ``GenericTicksRefused`` (321) for one the sim does not serve, or any with a snapshot."""
    wanted: set[int] = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if not item.isdigit() or int(item) not in SERVED_GENERIC_TICKS:
            raise GenericTicksRefused(
                321,
                f"{_VALIDATING}Incorrect generic tick list of {item}.  Legal ones for "
                f"({sec_type}) are: 100(Option Volume),101(Option Open Interest)",
            )
        wanted.add(int(item))
    if wanted and snapshot:
        raise GenericTicksRefused(
            321,
            f"{_VALIDATING}Snapshot market data subscription is not applicable to generic ticks",
        )
    return frozenset(wanted)


def computation(
    quote: OptionQuote, price: Decimal, params: PricingParams
) -> dict[str, float] | None:
    """What tickOptionComputation carries for ``price`` (a bid, ask or last of ``quote``):
    the volatility that price implies and the greeks at it; None when no volatility gives it."""
    option = quote.contract
    years = years_to_expiry(quote.at, option.expiry)
    spot, strike = float(quote.underlying_price), float(option.strike)
    try:
        vol = implied_vol(
            option.right,
            float(price),
            spot=spot,
            strike=strike,
            years=years,
            rate=params.rate,
            dividend_yield=params.dividend_yield,
        )
    except OptionError:
        return None
    greeks = bsm_greeks(
        option.right,
        spot=spot,
        strike=strike,
        years=years,
        vol=vol,
        rate=params.rate,
        dividend_yield=params.dividend_yield,
    )
    return {
        "implied_vol": vol,
        "delta": greeks.delta,
        "price": float(price),
        "pv_dividend": quote.pv_dividend,
        "gamma": greeks.gamma,
        "vega": greeks.vega,
        "theta": greeks.theta,
        "underlying_price": float(quote.underlying_price),
    }


def model_computation(quote: OptionQuote) -> dict[str, float]:
    """The model's tickOptionComputation: the quote's own numbers."""
    return {
        "implied_vol": quote.implied_vol,
        "delta": quote.delta,
        "price": quote.model_price,
        "pv_dividend": quote.pv_dividend,
        "gamma": quote.gamma,
        "vega": quote.vega,
        "theta": quote.theta,
        "underlying_price": float(quote.underlying_price),
    }


def option_ticks(
    req_id: int,
    quote: OptionQuote,
    params: PricingParams,
    *,
    delayed: bool,
    generic: frozenset[int] = frozenset(),
) -> list[list[object]]:
    """The messages of one quote of an option (see the module doc)."""
    d = 1 if delayed else 0
    call = quote.contract.right.value == "C"
    out: list[list[object]] = [
        m.tick_price(req_id, m.BID[d], quote.bid, Decimal(quote.bid_size)),
        m.tick_size(req_id, m.BID_SIZE[d], Decimal(quote.bid_size)),
        m.tick_price(req_id, m.ASK[d], quote.ask, Decimal(quote.ask_size)),
        m.tick_size(req_id, m.ASK_SIZE[d], Decimal(quote.ask_size)),
        m.tick_price(req_id, m.LAST[d], quote.last, Decimal(1)),
        m.tick_size(req_id, m.LAST_SIZE[d], Decimal(1)),
        m.tick_size(req_id, m.VOLUME[d], Decimal(quote.volume)),
    ]
    for tick, price in ((m.OPTION_BID, quote.bid), (m.OPTION_ASK, quote.ask)):
        fields = computation(quote, price, params)
        if fields is not None:
            out.append(m.tick_option_computation(req_id, tick[d], **fields))
    last = computation(quote, quote.last, params)
    if last is not None:
        out.append(m.tick_option_computation(req_id, m.OPTION_LAST[d], **last))
    out.append(m.tick_option_computation(req_id, m.OPTION_MODEL[d], **model_computation(quote)))
    if OPTION_VOLUME in generic:
        out.append(
            m.tick_generic_size(req_id, m.CALL_VOLUME if call else m.PUT_VOLUME, quote.volume)
        )
    if OPTION_OPEN_INTEREST in generic:
        out.append(
            m.tick_generic_size(
                req_id, m.CALL_OPEN_INTEREST if call else m.PUT_OPEN_INTEREST, quote.open_interest
            )
        )
    return out


def chain_totals(quotes: Iterable[OptionQuote]) -> dict[int, int]:
    """The totals generic ticks 100 and 101 give on a stock: call and put volume (29, 30) and
    call and put open interest (27, 28) over ``quotes`` (its listed chain's)."""
    totals = {m.CALL_VOLUME: 0, m.PUT_VOLUME: 0, m.CALL_OPEN_INTEREST: 0, m.PUT_OPEN_INTEREST: 0}
    for quote in quotes:
        call = quote.contract.right.value == "C"
        totals[m.CALL_VOLUME if call else m.PUT_VOLUME] += quote.volume
        totals[m.CALL_OPEN_INTEREST if call else m.PUT_OPEN_INTEREST] += quote.open_interest
    return totals


def stock_generic_ticks(
    req_id: int, totals: dict[int, int], generic: frozenset[int]
) -> list[list[object]]:
    """Generic ticks 100 and 101 on a stock: its chain's totals."""
    out: list[list[object]] = []
    if OPTION_VOLUME in generic:
        out += [m.tick_generic_size(req_id, t, totals[t]) for t in (m.CALL_VOLUME, m.PUT_VOLUME)]
    if OPTION_OPEN_INTEREST in generic:
        out += [
            m.tick_generic_size(req_id, t, totals[t])
            for t in (m.CALL_OPEN_INTEREST, m.PUT_OPEN_INTEREST)
        ]
    return out


def option_prints(
    option: OptionContract,
    underlying: Sequence[Print],
    params: PricingParams,
    *,
    show: str,
    start_ns: int,
    end_ns: int,
) -> list[Print]:
    """The option's prints in [start_ns, end_ns): its quote at each print of its underlying
    (``underlying`` in time order), the price ``show`` names; none after it expired."""
    low = bisect.bisect_left(underlying, start_ns, key=lambda p: p.ts_ns)
    high = bisect.bisect_left(underlying, end_ns, key=lambda p: p.ts_ns)
    out: list[Print] = []
    for p in underlying[low:high]:
        seconds, rest = divmod(p.ts_ns, _NS)
        at = datetime.fromtimestamp(seconds, UTC).astimezone(NEW_YORK)
        at += timedelta(microseconds=rest // 1000)
        try:
            quote = quote_option(option, p.price, at, params)
        except OptionError:
            break  # expired: every later print is too
        price = {
            "TRADES": quote.last,
            "MIDPOINT": (quote.bid + quote.ask) / 2,
            "BID": quote.bid,
            "ASK": quote.ask,
        }[show]
        out.append(Print(ts_ns=p.ts_ns, price=price, size=0))
    return out
