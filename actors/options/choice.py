"""The options bot's decisions between a signal and a bracket: which contract, whether its
quote is good enough to trade, at what limit to enter and where to exit, and how many
contracts. Pure functions of their arguments: no I/O, no clock reads (``today`` and the
account's equity come in as arguments).

A decision that finds nothing to do returns a ``Skip`` (a ``code`` to count and alert on, a
``reason`` that names the numbers) rather than raising: a thin chain, a wide spread or a small
account is the market, not a bug. Parameters are validated when built (``ValueError``, or
``TypeError`` for a value of the wrong type, naming the field).

* **Contract** (``choose_contract``): the nearest expiry at least ``min_dte`` calendar days
  after ``today``, taken from the chain's expirations (IB's chains mix weeklies and monthlies;
  every listed expiry is a candidate); the strike nearest the underlying's price (a tie goes
  to the lower strike), then ``strikes_out`` steps along the chain's own sorted strikes, out of
  the money for the right (up for a call, down for a put; negative: into the money); a call
  when bullish, a put when bearish.
* **Liquidity** (``liquidity_problem``): a two-sided, uncrossed quote with a bid above zero, a
  spread of at most ``max_spread_pct`` of the mid, and the day's volume and the open interest
  at their minimums.
* **Entry and exits** (``entry_limit``, ``exit_prices``): prices on the option tick
  (``option_tick``: 0.01 under 3.00, 0.05 from 3.00); a buy at the mid rounded up (or at the
  ask), a take-profit ``tp_pct`` above the entry and a stop ``sl_pct`` below it, each at
  least a tick away from the entry.
* **Size** (``contracts_for``): as many contracts as lose at most ``max_risk_pct_per_trade``
  of the equity when the stop is hit, within ``max_contracts`` and ``max_notional``.

Prices are per share, as quoted; one contract is ``multiplier`` shares (``MULTIPLIER``, 100,
for standard US equity options).
"""

from __future__ import annotations

import decimal
from datetime import date
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal

import attrs

from ..domain import DomainError, OptionChain, OptionQuote, OptionSymbol, round_to_tick

PENNY = Decimal("0.01")
NICKEL = Decimal("0.05")
NICKEL_FROM = Decimal("3.00")
"""Option prices are quoted in pennies under 3.00 and in nickels from 3.00."""
_HUNDRED = Decimal(100)

# Quote arithmetic that never raises: a price from a feed may be any finite Decimal, however
# large; an overflow becomes an infinity (which compares) instead of a trap. 64 digits keep
# the products and halves of any realistic prices exact.
_QUOTE_MATH = decimal.Context(prec=64, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN, traps=[])
# Sizing arithmetic: exact for amounts of up to 100 digits (an inexact product would round).
_SIZE_MATH = decimal.Context(prec=100, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


@attrs.frozen(kw_only=True)
class Skip:
    """Why a decision found nothing to trade: ``code`` (one word, to count and alert on) and
    ``reason`` (a sentence naming the numbers)."""

    reason: str
    code: str


# --- parameters ----------------------------------------------------------------------------


def _number(value: object, name: str) -> Decimal:
    # Parameters arrive from the config as Decimals, from code as strings or ints too.
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | str) and not isinstance(value, bool):
        try:
            number = Decimal(value)
        except decimal.InvalidOperation:
            raise ValueError(f"{name} must be a decimal number, got {value!r}") from None
    else:
        raise TypeError(f"{name} must be a decimal number, got {value!r}")
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number


# One converter per Decimal parameter, so that a bad value's error names its field (attrs
# gives a converter no field, and mypy's attrs plugin takes only named functions).
def _max_spread_pct(value: object) -> Decimal:
    return _number(value, "max_spread_pct")


def _tp_pct(value: object) -> Decimal:
    return _number(value, "tp_pct")


def _sl_pct(value: object) -> Decimal:
    return _number(value, "sl_pct")


def _max_risk_pct_per_trade(value: object) -> Decimal:
    return _number(value, "max_risk_pct_per_trade")


def _max_notional(value: object) -> Decimal | None:
    return None if value is None else _number(value, "max_notional")


def _whole(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{attribute.name} must be a whole number, got {value!r}")


def _whole_at_least(minimum: int) -> Any:
    def check(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        _whole(_instance, attribute, value)
        if value < minimum:
            raise ValueError(f"{attribute.name} must be {minimum} or more, got {value!r}")

    return check


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _percent_below_100(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not 0 < value < _HUNDRED:
        raise ValueError(f"{attribute.name} must be above 0 and under 100 (percent), got {value}")


def _percent_up_to_100(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not 0 < value <= _HUNDRED:
        raise ValueError(f"{attribute.name} must be above 0 and at most 100 (percent), got {value}")


# --- the contract --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ContractParams:
    """Which option a signal buys (see ``choose_contract``)."""

    min_dte: int = attrs.field(default=1, validator=_whole_at_least(0))
    """The fewest calendar days from today to the expiry (0: an expiry today will do)."""
    strikes_out: int = attrs.field(default=0, validator=_whole)
    """Strikes out of the money from the one nearest the price: 0 the nearest, N > 0 N strikes
    out of the money (higher for a call, lower for a put), N < 0 into the money."""


def choose_contract(
    chain: OptionChain,
    *,
    underlying_price: Decimal,
    today: date,
    bullish: bool,
    params: ContractParams,
) -> OptionSymbol | Skip:
    """The option a signal buys: a call when ``bullish``, a put otherwise, on ``chain``'s
    underlying.

    * Expiry: the earliest of ``chain.expirations`` with ``(expiry - today).days >=
      params.min_dte`` (expiries before today never qualify, since ``min_dte >= 0``).
    * Strike: the one of ``chain.strikes`` nearest ``underlying_price`` (a tie goes to the
      lower strike), then ``params.strikes_out`` places along the sorted strikes: up for a
      call, down for a put (a negative count goes the other way, into the money).

    A ``Skip`` when ``underlying_price`` is not a positive finite number (code ``price``), no
    expiry is far enough (``no_expiry``), the chain lists no strikes (``no_strikes``), or the
    steps run off either end of the strikes (``off_chain``). Raises ``DomainError`` only for
    a chain no option can be named from (an underlying that is not a stock symbol, an expiry
    outside the years of OCC symbols).
    """
    if not underlying_price.is_finite() or underlying_price <= 0:
        return Skip(code="price", reason=f"underlying price {underlying_price} is not positive")
    expiry = next(
        (e for e in chain.expirations if (e - today).days >= params.min_dte),
        None,
    )
    if expiry is None:
        if not chain.expirations:
            listed = "the chain lists no expiry"
        else:
            last = chain.expirations[-1]
            listed = f"the last listed is {last}, {(last - today).days} days away"
        return Skip(
            code="no_expiry",
            reason=f"no expiry {params.min_dte} or more days after {today}: {listed}",
        )
    strikes = chain.strikes
    if not strikes:
        return Skip(code="no_strikes", reason=f"the {chain.underlying} chain lists no strikes")
    # Strikes are sorted ascending, so the first of the nearest is the lower one of a tie.
    # (A whole strike may be held as 5E+1: reasons show strikes with ``:f``.)
    nearest = min(range(len(strikes)), key=lambda i: abs(strikes[i] - underlying_price))
    right: Literal["C", "P"] = "C" if bullish else "P"
    target = nearest + (params.strikes_out if bullish else -params.strikes_out)
    if not 0 <= target < len(strikes):
        return Skip(
            code="off_chain",
            reason=(
                f"{params.strikes_out} strikes out of the money for a "
                f"{'call' if bullish else 'put'} from {strikes[nearest]:f} (nearest "
                f"{underlying_price}) runs off the chain's strikes {strikes[0]:f} .. "
                f"{strikes[-1]:f}"
            ),
        )
    return OptionSymbol(
        underlying=chain.underlying, expiry=expiry, right=right, strike=strikes[target]
    )


# --- liquidity -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LiquidityParams:
    """How good a quote must be to trade (see ``liquidity_problem``)."""

    max_spread_pct: Decimal = attrs.field(
        default=Decimal(10), converter=_max_spread_pct, validator=_positive
    )
    """The widest spread, ask - bid, in percent of the mid."""
    min_volume: int = attrs.field(default=100, validator=_whole_at_least(0))
    """The fewest contracts traded today."""
    min_open_interest: int = attrs.field(default=500, validator=_whole_at_least(0))
    """The fewest contracts open."""


def _price(value: object) -> Decimal | None:
    # A usable price: a finite Decimal (an int is one); None for anything else (NaN included).
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    return None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _percent(value: Decimal) -> str:
    # A percentage for a reason: up to 2 decimals, rounded up (an "over" is never shown as the
    # limit itself), no trailing zeros (12.5, 33.34, 10).
    shown = value.quantize(PENNY, ROUND_CEILING, _QUOTE_MATH).normalize(_QUOTE_MATH)
    return f"{shown:f}"


# A two-sided quote's bid and ask, or the Skip (no_quote) saying why it is none.
def _two_sided(quote: OptionQuote) -> tuple[Decimal, Decimal] | Skip:
    bid, ask = _price(quote.bid), _price(quote.ask)
    if bid is None or ask is None:
        missing = " and ".join(
            f"{name} {value}"
            for name, value, usable in (("bid", quote.bid, bid), ("ask", quote.ask, ask))
            if usable is None
        )
        return Skip(code="no_quote", reason=f"{quote.symbol}: no usable {missing}")
    if bid < 0 or ask <= 0:
        return Skip(code="no_quote", reason=f"{quote.symbol}: bid {bid}, ask {ask} is no quote")
    if ask < bid:
        return Skip(code="no_quote", reason=f"{quote.symbol}: crossed, bid {bid} over ask {ask}")
    return bid, ask


def liquidity_problem(quote: OptionQuote, params: LiquidityParams) -> Skip | None:
    """What makes ``quote`` too thin to trade, None when nothing does. The first that holds,
    in this order:

    * ``no_quote``: the bid or the ask is missing (None, NaN, infinite, not a number), the bid
      is negative, the ask is not positive, or the quote is crossed (ask < bid);
    * ``zero_bid``: the bid is 0 (nobody would buy the option back);
    * ``spread``: ``(ask - bid) / mid x 100 > max_spread_pct``, the mid being ``(bid + ask) /
      2`` (a spread of exactly ``max_spread_pct`` passes);
    * ``volume``: the day's volume was not sent, or is under ``min_volume``;
    * ``open_interest``: the open interest was not sent, or is under ``min_open_interest``.

    Never raises, whatever the quote holds; comparisons are exact for prices of up to 30
    digits.
    """
    with decimal.localcontext(_QUOTE_MATH):
        sides = _two_sided(quote)
        if isinstance(sides, Skip):
            return sides
        bid, ask = sides
        if bid == 0:
            return Skip(code="zero_bid", reason=f"{quote.symbol}: bid 0 (ask {ask})")
        spread, mid = ask - bid, (bid + ask) / 2
        if spread * _HUNDRED > params.max_spread_pct * mid:
            return Skip(
                code="spread",
                reason=(
                    f"{quote.symbol}: spread {spread} is {_percent(spread * _HUNDRED / mid)} % "
                    f"of the mid {mid}, over {_percent(params.max_spread_pct)} %"
                ),
            )
    for code, name, value, minimum in (
        ("volume", "volume", quote.volume, params.min_volume),
        ("open_interest", "open interest", quote.open_interest, params.min_open_interest),
    ):
        count = _count(value)
        if count is None:
            return Skip(code=code, reason=f"{quote.symbol}: {name} not sent")
        if count < minimum:
            return Skip(code=code, reason=f"{quote.symbol}: {name} {count} under {minimum}")
    return None


# --- entry and exits -----------------------------------------------------------------------


def _mid_or_ask(_instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value not in ("mid", "ask"):
        raise ValueError(f"{attribute.name} must be 'mid' or 'ask', got {value!r}")


@attrs.frozen(kw_only=True)
class EntryParams:
    """How an option is bought and where its bracket exits (see ``entry_limit`` and
    ``exit_prices``)."""

    entry_price: Literal["mid", "ask"] = attrs.field(default="mid", validator=_mid_or_ask)
    """The buy's limit: the mid rounded up to the tick, or the ask."""
    tp_pct: Decimal = attrs.field(default=Decimal(50), converter=_tp_pct, validator=_positive)
    """The take-profit, in percent of the entry premium above it."""
    sl_pct: Decimal = attrs.field(
        default=Decimal(30), converter=_sl_pct, validator=_percent_below_100
    )
    """The stop-loss, in percent of the entry premium below it (under 100: a stop at 0 would
    never trigger)."""


def option_tick(price: Decimal) -> Decimal:
    """The tick of an option price: 0.01 under 3.00, 0.05 at or above 3.00 (the classic rule
    of US equity options outside the penny pilot, as the sim venue quotes them)."""
    return PENNY if price < NICKEL_FROM else NICKEL


def _rounded(value: Decimal) -> Decimal:
    # Half-up to the tick of the level the value rounds to (2.996 -> 3.00; 3.024 -> 3.00).
    price = round_to_tick(value, PENNY)
    return price if price < NICKEL_FROM else round_to_tick(value, NICKEL)


def _directed(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (value / tick).to_integral_value(rounding=rounding) * tick


def _ceiling(value: Decimal) -> Decimal:
    # The lowest price on the option tick at or above value.
    price = _directed(value, PENNY, ROUND_CEILING)
    return price if price < NICKEL_FROM else _directed(value, NICKEL, ROUND_CEILING)


def _above(price: Decimal) -> Decimal:
    # The lowest price on the option tick strictly above price.
    step = _directed(price, PENNY, ROUND_FLOOR) + PENNY
    return step if step < NICKEL_FROM else _directed(price, NICKEL, ROUND_FLOOR) + NICKEL


def _below(price: Decimal) -> Decimal:
    # The highest price on the option tick strictly below price (0 under 0.01).
    if price > NICKEL_FROM:
        return _directed(price, NICKEL, ROUND_CEILING) - NICKEL
    return max(Decimal(0), _directed(price, PENNY, ROUND_CEILING) - PENNY)


def entry_limit(quote: OptionQuote, params: EntryParams) -> Decimal | Skip:
    """The limit price of the buy: with ``entry_price="mid"`` the mid, ``(bid + ask) / 2``,
    rounded up to the option tick of its level (so that it leans toward a fill), never above
    the ask; with ``"ask"`` the ask. A ``Skip`` (code ``no_quote``) when the quote is not
    two-sided, as ``liquidity_problem`` defines it (a zero bid is a bid here: it is
    ``liquidity_problem``'s to refuse)."""
    sides = _two_sided(quote)
    if isinstance(sides, Skip):
        return sides
    bid, ask = sides
    if params.entry_price == "ask":
        return ask
    return min(_ceiling((bid + ask) / 2), ask)


def exit_prices(entry: Decimal, params: EntryParams) -> tuple[Decimal, Decimal]:
    """The bracket's take-profit and stop prices for an option bought at ``entry``:

    * take-profit: ``entry x (1 + tp_pct / 100)`` rounded half-up to the option tick of its
      level (to the penny; from 3.00 to the nickel, ``round_to_tick``), and at least the
      first tick above ``entry``;
    * stop: ``entry x (1 - sl_pct / 100)`` rounded the same way, at most the last tick below
      ``entry`` and at least one tick, 0.01 (so an entry of 0.01 has its stop at 0.01).

    Raises ``DomainError`` for an entry that is not a positive finite price.
    """
    if not entry.is_finite() or entry <= 0:
        raise DomainError(f"entry: {entry} is not a positive price")
    take_profit = max(_rounded(entry * (1 + params.tp_pct / _HUNDRED)), _above(entry))
    stop = min(_rounded(entry * (1 - params.sl_pct / _HUNDRED)), _below(entry))
    return take_profit, max(stop, PENNY)


# --- size ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class SizingParams:
    """How many contracts an entry buys (see ``contracts_for``)."""

    max_risk_pct_per_trade: Decimal = attrs.field(
        default=Decimal(1),
        converter=_max_risk_pct_per_trade,
        validator=_percent_up_to_100,
    )
    """The most a trade may lose at its stop, in percent of the equity."""
    max_contracts: int = attrs.field(default=10, validator=_whole_at_least(1))
    max_notional: Decimal | None = attrs.field(
        default=None,
        converter=_max_notional,
        validator=_positive,
    )
    """The most premium one entry may pay (premium x multiplier x contracts); None: no cap."""


def contracts_for(
    *,
    equity: Decimal,
    premium: Decimal,
    multiplier: int,
    sl_pct: Decimal,
    params: SizingParams,
) -> int | Skip:
    """The contracts one entry buys at ``premium`` (per share) when its stop is ``sl_pct``
    percent below it:

    ``floor(equity x max_risk_pct_per_trade / 100 / (premium x multiplier x sl_pct / 100))``,
    at most ``max_contracts`` and at most ``floor(max_notional / (premium x multiplier))``.

    Exact: the floors are of exact quotients (to 100 digits), so an equity that allows N
    contracts exactly buys N, and a cent less N - 1. A ``Skip`` when the equity is not
    positive (code ``equity``), the premium is not positive (``premium``), the multiplier is
    under 1 (``multiplier``), or the result is 0 (``size``, its reason showing the sums).
    Raises ``DomainError`` for an ``sl_pct`` that is not above 0 and under 100.
    """
    if not sl_pct.is_finite() or not 0 < sl_pct < _HUNDRED:
        raise DomainError(f"sl_pct: {sl_pct} is not a percentage above 0 and under 100")
    if not equity.is_finite() or equity <= 0:
        return Skip(code="equity", reason=f"equity {equity} is not positive")
    if not premium.is_finite() or premium <= 0:
        return Skip(code="premium", reason=f"premium {premium} is not positive")
    if isinstance(multiplier, bool) or multiplier < 1:
        return Skip(code="multiplier", reason=f"multiplier {multiplier} is under 1")
    with decimal.localcontext(_SIZE_MATH):
        budget = equity * params.max_risk_pct_per_trade / _HUNDRED
        cost = premium * multiplier
        risk = cost * sl_pct / _HUNDRED
        # Capped before dividing, so the quotient's whole part is small and exact.
        cap = params.max_contracts
        contracts = cap if budget >= risk * cap else int(budget // risk)
        if contracts == 0:
            return Skip(
                code="size",
                reason=(
                    f"{params.max_risk_pct_per_trade} % of equity {equity} is {budget} to risk; "
                    f"one contract risks {premium} x {multiplier} x {sl_pct} % = {risk}: "
                    "0 contracts"
                ),
            )
        if params.max_notional is not None and params.max_notional < cost * contracts:
            contracts = int(params.max_notional // cost)
            if contracts == 0:
                return Skip(
                    code="size",
                    reason=(
                        f"max_notional {params.max_notional} is under one contract's premium "
                        f"{premium} x {multiplier} = {cost}: 0 contracts"
                    ),
                )
    return contracts
