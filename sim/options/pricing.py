"""Option quotes and greeks for the sim venue (docs/options-venue.md, *Pricing*).

* Black-Scholes-Merton with a continuous dividend yield ``q``: price, delta, gamma, vega (per
  vol point), theta (per calendar day); implied volatility by bisection on [1e-4, 5].
* The volatility of a strike comes from a smile in log-moneyness against the forward:
  ``max(floor, base + skew * k + curvature * k**2)``, ``k = ln(K / F)``.
* Time to expiry runs to 16:00 New York on the expiration day, in 365-day years, floored at
  one second so that a quote at the close is the intrinsic value.
* Bid and ask straddle the model price by a width that grows out of the money and toward
  expiry (``spread_width``), rounded outward to the option tick (0.01 under $3, 0.05 from $3):
  bid <= model <= ask, bid >= 0, ask >= bid + one tick.
* Volume, open interest and quote sizes are synthetic: a seeded hash of (contract, trading
  day) scaled by a liquidity that decays away from the money and with time to expiry.

Computes in float (the ``math`` module); prices leave as ``Decimal`` on the option tick.
Pure functions of their arguments: the caller passes the time.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import attrs

from actors.domain import round_to_tick
from actors.domain.sessions import NEW_YORK, is_trading_day

from .chain import OptionContract, OptionError, Right

MIN_VOL = 1e-4
MAX_VOL = 5.0
"""The implied-volatility search interval (0.01% .. 500%)."""
EXPIRY_CLOSE = time(16, 0)
YEAR_SECONDS = 365 * 24 * 3600
MIN_YEARS = 1 / YEAR_SECONDS
"""The floor of the time to expiry: one second, so the close of expiration day prices within
a fraction of a cent of intrinsic."""

PENNY = Decimal("0.01")
NICKEL = Decimal("0.05")
NICKEL_FROM = Decimal(3)
"""Options trade in pennies under $3.00 and in nickels from $3.00 (the classic tick rule)."""


# --- parameters ----------------------------------------------------------------------------


def _finite(
    where: str, *, low: float | None = None, above: float | None = None
) -> Callable[[object, attrs.Attribute[float], float], None]:
    def check(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise OptionError(f"{where}.{attribute.name}: a number, got {value!r}")
        if not math.isfinite(value):
            raise OptionError(f"{where}.{attribute.name}: a finite number, got {value!r}")
        if low is not None and value < low:
            raise OptionError(f"{where}.{attribute.name}: at least {low}, got {value!r}")
        if above is not None and value <= above:
            raise OptionError(f"{where}.{attribute.name}: more than {above}, got {value!r}")

    return check


@attrs.frozen(kw_only=True)
class Smile:
    """Implied volatility by strike: ``max(floor, base + skew * k + curvature * k**2)`` with
    ``k = ln(strike / forward)``. A negative skew makes puts dearer than calls (equities)."""

    base: float = attrs.field(default=0.60, validator=_finite("smile", above=0.0))
    skew: float = attrs.field(default=-0.25, validator=_finite("smile"))
    curvature: float = attrs.field(default=0.50, validator=_finite("smile", low=0.0))
    floor: float = attrs.field(default=0.05, validator=_finite("smile", low=MIN_VOL))

    def vol(self, *, strike: float, forward: float) -> float:
        _positive_float(strike, "strike")
        _positive_float(forward, "forward")
        k = math.log(strike / forward)
        return min(MAX_VOL, max(self.floor, self.base + self.skew * k + self.curvature * k * k))


@attrs.frozen(kw_only=True)
class SpreadRule:
    """The bid/ask width (``spread_width``): ``(base + relative * model) * (1 + otm * z) *
    (1 + near / (1 + days))`` dollars, ``z`` the distance out of the money in standard
    deviations (``ln`` moneyness over ``vol * sqrt(T)``, capped at ``max_z``), ``days`` the
    calendar days to expiry."""

    base: float = attrs.field(default=0.02, validator=_finite("spread", above=0.0))
    relative: float = attrs.field(default=0.03, validator=_finite("spread", low=0.0))
    otm: float = attrs.field(default=0.5, validator=_finite("spread", low=0.0))
    max_z: float = attrs.field(default=4.0, validator=_finite("spread", above=0.0))
    near: float = attrs.field(default=2.0, validator=_finite("spread", low=0.0))


@attrs.frozen(kw_only=True)
class Liquidity:
    """Synthetic activity: ``scale * exp(-|ln(K/S)| / moneyness) * exp(-days / expiry_days)
    * (0.5 + u)``, ``u`` uniform in [0, 1) from a hash of (seed, contract, trading day, what)."""

    seed: int = 0
    volume: int = 5_000
    open_interest: int = 20_000
    size: int = 50
    moneyness: float = attrs.field(default=0.10, validator=_finite("liquidity", above=0.0))
    expiry_days: float = attrs.field(default=30.0, validator=_finite("liquidity", above=0.0))

    def __attrs_post_init__(self) -> None:
        for name in ("seed", "volume", "open_interest", "size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OptionError(f"liquidity.{name}: a whole number >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class PricingParams:
    """Everything a quote depends on besides the contract, the underlying's price and the time."""

    rate: float = attrs.field(default=0.04, validator=_finite("pricing", low=-0.05))
    dividend_yield: float = attrs.field(default=0.0, validator=_finite("pricing", low=0.0))
    smile: Smile = attrs.field(factory=Smile)
    spread: SpreadRule = attrs.field(factory=SpreadRule)
    liquidity: Liquidity = attrs.field(factory=Liquidity)


# --- the model -----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Greeks:
    """A model price and its sensitivities: delta and gamma per $1 of the underlying, vega per
    vol point (0.01), theta per calendar day (the change as a day passes)."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float


def norm_cdf(x: float) -> float:
    # erfc keeps the far tails accurate where 1 + erf(x) would cancel
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def bsm_greeks(
    right: Right | str,
    *,
    spot: float,
    strike: float,
    years: float,
    vol: float,
    rate: float,
    dividend_yield: float = 0.0,
) -> Greeks:
    """Black-Scholes-Merton (European, continuous dividend yield) price and greeks."""
    side = Right.parse(right)
    _positive_float(spot, "spot")
    _positive_float(strike, "strike")
    _positive_float(years, "years")
    _positive_float(vol, "vol")
    _finite_float(rate, "rate")
    _finite_float(dividend_yield, "dividend_yield")
    root_t = math.sqrt(years)
    sd = vol * root_t
    d1 = (math.log(spot / strike) + (rate - dividend_yield + 0.5 * vol * vol) * years) / sd
    d2 = d1 - sd
    carry = math.exp(-dividend_yield * years)
    discount = math.exp(-rate * years)
    density = norm_pdf(d1)
    gamma = carry * density / (spot * sd)
    vega = spot * carry * density * root_t
    decay = -spot * carry * density * vol / (2.0 * root_t)
    if side is Right.CALL:
        price = spot * carry * norm_cdf(d1) - strike * discount * norm_cdf(d2)
        delta = carry * norm_cdf(d1)
        theta = (
            decay
            - rate * strike * discount * norm_cdf(d2)
            + dividend_yield * spot * carry * norm_cdf(d1)
        )
    else:
        price = strike * discount * norm_cdf(-d2) - spot * carry * norm_cdf(-d1)
        delta = -carry * norm_cdf(-d1)
        theta = (
            decay
            + rate * strike * discount * norm_cdf(-d2)
            - dividend_yield * spot * carry * norm_cdf(-d1)
        )
    return Greeks(
        price=max(0.0, price), delta=delta, gamma=gamma, vega=vega / 100.0, theta=theta / 365.0
    )


def bsm_price(
    right: Right | str,
    *,
    spot: float,
    strike: float,
    years: float,
    vol: float,
    rate: float,
    dividend_yield: float = 0.0,
) -> float:
    """The Black-Scholes-Merton price (``bsm_greeks(...).price``)."""
    return bsm_greeks(
        right,
        spot=spot,
        strike=strike,
        years=years,
        vol=vol,
        rate=rate,
        dividend_yield=dividend_yield,
    ).price


def implied_vol(
    right: Right | str,
    price: float,
    *,
    spot: float,
    strike: float,
    years: float,
    rate: float,
    dividend_yield: float = 0.0,
    tolerance: float = 1e-10,
) -> float:
    """The volatility in [MIN_VOL, MAX_VOL] at which the model gives ``price``, by bisection
    (the price increases with the volatility); an OptionError when no volatility there does."""
    side = Right.parse(right)
    _finite_float(price, "price")
    _positive_float(tolerance, "tolerance")

    def model(vol: float) -> float:
        return bsm_price(
            side,
            spot=spot,
            strike=strike,
            years=years,
            vol=vol,
            rate=rate,
            dividend_yield=dividend_yield,
        )

    low, high = MIN_VOL, MAX_VOL
    at_low, at_high = model(low), model(high)
    if price < at_low:
        raise OptionError(
            f"price: {price} is below the {side.name.lower()}'s value at vol {MIN_VOL} "
            f"({at_low}): under its discounted intrinsic value, no volatility gives it"
        )
    if price > at_high:
        raise OptionError(
            f"price: {price} is above the {side.name.lower()}'s value at vol {MAX_VOL} "
            f"({at_high}): no volatility up to {MAX_VOL:.0%} gives it"
        )
    while high - low > tolerance:
        middle = 0.5 * (low + high)
        if model(middle) < price:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def years_to_expiry(now: datetime, expiry: date) -> float:
    """Years (of 365 days) from ``now`` to 16:00 New York on ``expiry``, at least MIN_YEARS;
    an OptionError once that close has passed (the option has expired)."""
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise OptionError(f"now: an aware datetime, got {now!r}")
    if isinstance(expiry, datetime) or not isinstance(expiry, date):
        raise OptionError(f"expiry: a date, got {expiry!r}")
    close = datetime.combine(expiry, EXPIRY_CLOSE, tzinfo=NEW_YORK)
    seconds = (close - now).total_seconds()
    if seconds < 0:
        raise OptionError(
            f"expiry: {expiry} is in the past at {now.isoformat()} (it expired at "
            f"{close.isoformat()})"
        )
    return max(MIN_YEARS, seconds / YEAR_SECONDS)


# --- the quote -----------------------------------------------------------------------------


def option_tick(price: Decimal) -> Decimal:
    """The tick of an option price: 0.01 under $3, 0.05 from $3."""
    return PENNY if price < NICKEL_FROM else NICKEL


def tick_floor(value: Decimal) -> Decimal:
    """The highest price on the option tick at or below ``value`` (bids round down)."""
    price = _directed(value, PENNY, ROUND_FLOOR)
    return price if price < NICKEL_FROM else _directed(value, NICKEL, ROUND_FLOOR)


def tick_ceiling(value: Decimal) -> Decimal:
    """The lowest price on the option tick at or above ``value`` (asks round up)."""
    price = _directed(value, PENNY, ROUND_CEILING)
    return price if price < NICKEL_FROM else _directed(value, NICKEL, ROUND_CEILING)


def tick_round(value: Decimal) -> Decimal:
    """``value`` rounded half-up to the option tick of its level (the last/model price)."""
    price = round_to_tick(value, PENNY)
    return price if price < NICKEL_FROM else round_to_tick(value, NICKEL)


def _directed(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    return (value / tick).to_integral_value(rounding=rounding) * tick


def spread_width(rule: SpreadRule, *, model: float, otm_sd: float, days: float) -> float:
    """The dollar width of the quote (before rounding outward to the tick): grows with the
    distance out of the money ``otm_sd`` (standard deviations, capped at ``rule.max_z``) and
    as ``days`` to expiry shrink."""
    _finite_float(model, "model")
    _finite_float(otm_sd, "otm_sd")
    _finite_float(days, "days")
    if model < 0 or otm_sd < 0 or days < 0:
        raise OptionError(
            f"spread_width: model, otm_sd and days are >= 0, got {model}, {otm_sd}, {days}"
        )
    z = min(otm_sd, rule.max_z)
    return (rule.base + rule.relative * model) * (1 + rule.otm * z) * (1 + rule.near / (1 + days))


def activity_day(now: datetime) -> date:
    """The trading day whose activity a quote at ``now`` shows: New York's date, or the last
    trading day before it on a weekend or holiday."""
    if not isinstance(now, datetime) or now.tzinfo is None:
        raise OptionError(f"now: an aware datetime, got {now!r}")
    day = now.astimezone(NEW_YORK).date()
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def liquidity_factor(rule: Liquidity, *, log_moneyness: float, days: float) -> float:
    """In (0, 1]: 1 at the money at expiry, decaying away from the money and with days."""
    return math.exp(-abs(log_moneyness) / rule.moneyness - days / rule.expiry_days)


def draw(rule: Liquidity, contract: OptionContract, day: date, what: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, contract, trading day, what)."""
    key = f"{rule.seed}|{contract.local_symbol}|{day.isoformat()}|{what}".encode()
    digest = hashlib.blake2b(key, digest_size=8, person=b"sim-opt-liq").digest()
    return int.from_bytes(digest, "big") / 2**64


@attrs.frozen(kw_only=True)
class OptionQuote:
    """A quote of ``contract`` and what IB's tickOptionComputation (message 21) carries:
    implied volatility, delta, option price, PV of dividends, gamma, vega, theta, underlying
    price. ``last`` is the model price on the tick; ``model_price`` unrounded."""

    contract: OptionContract
    at: datetime
    bid: Decimal
    ask: Decimal
    last: Decimal
    bid_size: int
    ask_size: int
    volume: int
    open_interest: int
    model_price: float
    implied_vol: float
    delta: float
    gamma: float
    vega: float
    theta: float
    underlying_price: Decimal
    pv_dividend: float


def quote_option(
    contract: OptionContract,
    underlying_price: Decimal,
    now: datetime,
    params: PricingParams | None = None,
    *,
    reference: Decimal | None = None,
) -> OptionQuote:
    """The venue's quote of ``contract`` at ``now`` with the underlying last at
    ``underlying_price``; an OptionError for a bad price or an expired contract.

    Volume, open interest and sizes are the trading day's: drawn around ``reference`` (the
    underlying's previous close, say; ``underlying_price`` when not given) and the whole
    calendar days from that day to expiry, so they hold still through the day."""
    if not isinstance(contract, OptionContract):
        raise OptionError(f"contract: an OptionContract, got {contract!r}")
    if (
        not isinstance(underlying_price, Decimal)
        or not underlying_price.is_finite()
        or underlying_price <= 0
    ):
        raise OptionError(
            f"underlying_price: a positive Decimal for {contract.underlying}, "
            f"got {underlying_price!r}"
        )
    if reference is not None and (
        not isinstance(reference, Decimal) or not reference.is_finite() or reference <= 0
    ):
        raise OptionError(
            f"reference: a positive Decimal for {contract.underlying}, got {reference!r}"
        )
    p = params if params is not None else PricingParams()
    years = years_to_expiry(now, contract.expiry)
    spot, strike = float(underlying_price), float(contract.strike)
    forward = spot * math.exp((p.rate - p.dividend_yield) * years)
    vol = p.smile.vol(strike=strike, forward=forward)
    greeks = bsm_greeks(
        contract.right,
        spot=spot,
        strike=strike,
        years=years,
        vol=vol,
        rate=p.rate,
        dividend_yield=p.dividend_yield,
    )
    log_moneyness = math.log(strike / spot)
    out = log_moneyness if contract.right is Right.CALL else -log_moneyness
    days = years * 365.0
    width = spread_width(
        p.spread, model=greeks.price, otm_sd=max(0.0, out) / (vol * math.sqrt(years)), days=days
    )
    model = Decimal(greeks.price)
    bid = max(Decimal(0), tick_floor(model - Decimal(width / 2)))
    ask = max(tick_ceiling(model + Decimal(width / 2)), bid + option_tick(bid))
    day = activity_day(now)
    liquid = liquidity_factor(
        p.liquidity,
        log_moneyness=math.log(
            strike / float(reference if reference is not None else underlying_price)
        ),
        days=float((contract.expiry - day).days),
    )
    size = p.liquidity.size * liquid
    return OptionQuote(
        contract=contract,
        at=now,
        bid=bid,
        ask=ask,
        last=tick_round(model),
        bid_size=0
        if bid == 0
        else max(1, int(size * (0.5 + draw(p.liquidity, contract, day, "bid")))),
        ask_size=max(1, int(size * (0.5 + draw(p.liquidity, contract, day, "ask")))),
        volume=int(
            p.liquidity.volume * liquid * (0.5 + draw(p.liquidity, contract, day, "volume"))
        ),
        open_interest=int(
            p.liquidity.open_interest * liquid * (0.5 + draw(p.liquidity, contract, day, "oi"))
        ),
        model_price=greeks.price,
        implied_vol=vol,
        delta=greeks.delta,
        gamma=greeks.gamma,
        vega=greeks.vega,
        theta=greeks.theta,
        underlying_price=underlying_price,
        pv_dividend=spot * (1.0 - math.exp(-p.dividend_yield * years)),
    )


def _positive_float(value: float, where: str) -> None:
    _finite_float(value, where)
    if value <= 0:
        raise OptionError(f"{where}: a positive number, got {value!r}")


def _finite_float(value: float, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise OptionError(f"{where}: a finite number, got {value!r}")
