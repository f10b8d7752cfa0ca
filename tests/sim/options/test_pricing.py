"""The option model: Black-Scholes-Merton prices and greeks, implied volatility, the smile,
the bid/ask rule and the synthetic volume and open interest."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from actors.domain.sessions import NEW_YORK
from sim.options.chain import OptionContract, OptionError, Right, option_chain, strike_near
from sim.options.pricing import (
    MAX_VOL,
    MIN_VOL,
    MIN_YEARS,
    NICKEL,
    PENNY,
    Liquidity,
    PricingParams,
    Smile,
    SpreadRule,
    activity_day,
    bsm_greeks,
    bsm_price,
    implied_vol,
    liquidity_factor,
    option_tick,
    quote_option,
    spread_width,
    tick_ceiling,
    tick_floor,
    tick_round,
    years_to_expiry,
)

spots = st.floats(min_value=5.0, max_value=500.0)
moneyness = st.floats(min_value=0.6, max_value=1.6)
years = st.floats(min_value=0.02, max_value=3.0)
vols = st.floats(min_value=0.05, max_value=1.5)
rates = st.floats(min_value=0.0, max_value=0.10)
yields = st.floats(min_value=0.0, max_value=0.06)
rights = st.sampled_from(Right)

EXPIRY = date(2026, 12, 18)  # a monthly, Friday
MONDAY = datetime(2026, 12, 14, 10, 30, tzinfo=NEW_YORK)
PRICES = st.decimals(min_value=Decimal("10.00"), max_value=Decimal("400.00"), places=2)


def contract(
    strike: Decimal | int | str, right: str = "C", expiry: date = EXPIRY
) -> OptionContract:
    return OptionContract(underlying="TQQQ", expiry=expiry, strike=Decimal(strike), right=right)


def intrinsic(right: Right, spot: Decimal, strike: Decimal) -> Decimal:
    return max(Decimal(0), spot - strike if right is Right.CALL else strike - spot)


# --- the model -----------------------------------------------------------------------------


def test_hull_reference_prices() -> None:
    """Hull, Options, Futures, and Other Derivatives (the Black-Scholes-Merton chapter's
    example): S=42, K=40, r=10%, sigma=20%, T=0.5 gives a call of 4.76 and a put of 0.81."""
    args = {"spot": 42.0, "strike": 40.0, "years": 0.5, "vol": 0.2, "rate": 0.1}
    assert round(bsm_price("C", **args), 2) == 4.76
    assert round(bsm_price("P", **args), 2) == 0.81


def test_hull_reference_greeks() -> None:
    """Hull's greeks example (S=49, K=50, r=5%, sigma=20%, 20 weeks): call delta 0.522, gamma
    0.066, vega 12.1 per unit of vol (0.121 a point), theta -4.31 a year (/365 a day)."""
    greeks = bsm_greeks("C", spot=49.0, strike=50.0, years=20 / 52, vol=0.2, rate=0.05)
    assert round(greeks.price, 2) == 2.40
    assert round(greeks.delta, 3) == 0.522
    assert round(greeks.gamma, 3) == 0.066
    assert round(greeks.vega * 100, 1) == 12.1
    assert round(greeks.theta * 365, 2) == -4.31


@given(spots, moneyness, years, vols, rates, yields)
def test_put_call_parity(s: float, m: float, t: float, vol: float, r: float, q: float) -> None:
    """C - P = S e^-qT - K e^-rT."""
    k = s * m
    args = {"spot": s, "strike": k, "years": t, "vol": vol, "rate": r, "dividend_yield": q}
    call, put = bsm_price("C", **args), bsm_price("P", **args)
    assert call - put == pytest.approx(s * math.exp(-q * t) - k * math.exp(-r * t), abs=1e-9 * s)


@given(rights, spots, moneyness, years, vols, rates, yields)
def test_greeks_match_finite_differences(
    right: Right, s: float, m: float, t: float, vol: float, r: float, q: float
) -> None:
    """Delta, gamma, vega and theta equal central differences of the price."""
    k = s * m

    def price(*, spot: float = s, sigma: float = vol, tau: float = t) -> float:
        return bsm_price(right, spot=spot, strike=k, years=tau, vol=sigma, rate=r, dividend_yield=q)

    greeks = bsm_greeks(right, spot=s, strike=k, years=t, vol=vol, rate=r, dividend_yield=q)
    # steps scaled to what the price varies over: the spread of the underlying at expiry
    # (sigma sqrt T), the vol and the time themselves
    spread = s * vol * math.sqrt(t)
    hs, hg, hv, ht = spread * 1e-4, spread * 1e-2, vol * 1e-5, t * 1e-5
    delta = (price(spot=s + hs) - price(spot=s - hs)) / (2 * hs)
    gamma = (price(spot=s + hg) - 2 * price() + price(spot=s - hg)) / (hg * hg)
    vega = (price(sigma=vol + hv) - price(sigma=vol - hv)) / (2 * hv) / 100
    theta = -(price(tau=t + ht) - price(tau=t - ht)) / (2 * ht) / 365
    assert greeks.delta == pytest.approx(delta, rel=1e-5, abs=1e-7)
    # a second difference loses about eps * price / h**2 to rounding
    assert greeks.gamma == pytest.approx(gamma, rel=1e-3, abs=1e-5 / s + 1e-14 * s / hg**2)
    assert greeks.vega == pytest.approx(vega, rel=1e-5, abs=1e-7 * s)
    assert greeks.theta == pytest.approx(theta, rel=1e-4, abs=1e-7 * s)


@given(rights, spots, moneyness, years, vols, rates, yields)
def test_implied_vol_recovers_sigma(
    right: Right, s: float, m: float, t: float, vol: float, r: float, q: float
) -> None:
    """The implied volatility of a model price is the volatility that made it."""
    k = s * m
    greeks = bsm_greeks(right, spot=s, strike=k, years=t, vol=vol, rate=r, dividend_yield=q)
    # where a vol point moves the price by less than float noise, no solver can tell vols apart
    assume(greeks.vega > 1e-6 * s)
    found = implied_vol(right, greeks.price, spot=s, strike=k, years=t, rate=r, dividend_yield=q)
    assert found == pytest.approx(vol, abs=1e-6)


@given(spots, moneyness, years, vols, rates, yields, st.floats(min_value=1.001, max_value=1.5))
def test_call_rises_with_spot_and_vol_and_falls_with_strike(
    s: float, m: float, t: float, vol: float, r: float, q: float, up: float
) -> None:
    """A call is worth more with a higher spot or volatility, less with a higher strike."""
    k = s * m
    base = bsm_price("C", spot=s, strike=k, years=t, vol=vol, rate=r, dividend_yield=q)
    higher = {
        "spot": bsm_price("C", spot=s * up, strike=k, years=t, vol=vol, rate=r, dividend_yield=q),
        "vol": bsm_price("C", spot=s, strike=k, years=t, vol=vol * up, rate=r, dividend_yield=q),
        "strike": bsm_price("C", spot=s, strike=k * up, years=t, vol=vol, rate=r, dividend_yield=q),
    }
    # deep in or out of the money a change moves the price by less than float ulps
    noise = 1e-12 * s
    assert higher["spot"] >= base - noise
    assert higher["vol"] >= base - noise
    assert higher["strike"] <= base + noise
    if base > 1e-6 * s:
        assert higher["spot"] > base
        assert higher["strike"] < base


def test_implied_vol_refuses_prices_no_vol_gives() -> None:
    """Under intrinsic or above the 500%-vol value, the error says which."""
    args = {"spot": 50.0, "strike": 40.0, "years": 0.1, "rate": 0.0}
    with pytest.raises(OptionError, match=r"price: 9.0 is below the call's value at vol"):
        implied_vol("C", 9.0, **args)
    with pytest.raises(OptionError, match=r"price: 50.5 is above the call's value at vol 5.0"):
        implied_vol("C", 50.5, **args)
    assert implied_vol("C", bsm_price("C", vol=MIN_VOL, **args), **args) == pytest.approx(
        MIN_VOL, abs=1e-8
    )
    assert implied_vol("P", bsm_price("P", vol=MAX_VOL, **args), **args) == pytest.approx(
        MAX_VOL, abs=1e-6
    )


def test_smile_skews_and_floors() -> None:
    """base + skew k + curvature k^2 in log-moneyness, never under the floor."""
    smile = Smile(base=0.5, skew=-0.3, curvature=0.4, floor=0.2)
    assert smile.vol(strike=100.0, forward=100.0) == pytest.approx(0.5)
    k = math.log(90 / 100)
    assert smile.vol(strike=90.0, forward=100.0) == pytest.approx(0.5 - 0.3 * k + 0.4 * k * k)
    assert smile.vol(strike=90.0, forward=100.0) > smile.vol(strike=110.0, forward=100.0)
    flat_down = Smile(base=0.3, skew=1.0, curvature=0.0, floor=0.2)
    assert flat_down.vol(strike=50.0, forward=100.0) == 0.2


# --- time to expiry ------------------------------------------------------------------------


def test_years_run_to_the_new_york_close_of_expiry() -> None:
    """A day before 16:00 New York is 1/365 of a year; the close itself is the floor."""
    close = datetime(2026, 12, 18, 16, 0, tzinfo=NEW_YORK)
    assert years_to_expiry(close - timedelta(days=1), EXPIRY) == pytest.approx(1 / 365)
    assert years_to_expiry(close.astimezone(UTC), EXPIRY) == MIN_YEARS
    with pytest.raises(
        OptionError, match=r"expiry: 2026-12-18 is in the past at 2026-12-18T16:00:01"
    ):
        years_to_expiry(close + timedelta(seconds=1), EXPIRY)
    with pytest.raises(OptionError, match=r"now: an aware datetime"):
        years_to_expiry(datetime(2026, 12, 18, 10), EXPIRY)


@pytest.mark.parametrize("strike", ["40", "48", "50", "52", "60"])
@pytest.mark.parametrize("right", ["C", "P"])
def test_expiry_day_converges_to_intrinsic(strike: str, right: str) -> None:
    """On expiration day the model approaches intrinsic value and meets it at the close."""
    option = contract(strike, right)
    spot = Decimal("50.37")
    value = intrinsic(option.right, spot, option.strike)
    gaps = []
    for clock in ("09:30", "12:00", "15:00", "15:59", "16:00"):
        hour, minute = map(int, clock.split(":"))
        now = datetime(2026, 12, 18, hour, minute, tzinfo=NEW_YORK)
        gaps.append(abs(quote_option(option, spot, now).model_price - float(value)))
    assert gaps == sorted(gaps, reverse=True)
    at_close = quote_option(option, spot, datetime(2026, 12, 18, 16, 0, tzinfo=NEW_YORK))
    assert at_close.last == tick_round(value)
    assert gaps[-1] < 0.005


# --- ticks and the bid/ask rule ------------------------------------------------------------


@given(st.decimals(min_value=Decimal(0), max_value=Decimal(500), places=6))
def test_tick_rounding_is_on_the_option_tick(value: Decimal) -> None:
    """Floor and ceiling land on the tick of their level (0.01 under 3, 0.05 from 3)."""
    low, high, nearest = tick_floor(value), tick_ceiling(value), tick_round(value)
    for price in (low, high, nearest):
        assert price % option_tick(price) == 0
    assert low <= value <= high
    assert high - low <= NICKEL
    assert value - low < option_tick(low)
    assert high - value < option_tick(high)
    assert low <= nearest <= high


def test_option_tick_rule() -> None:
    """0.01 under $3, 0.05 at or above."""
    assert option_tick(Decimal("2.99")) == PENNY
    assert option_tick(Decimal("3.00")) == NICKEL
    assert tick_ceiling(Decimal("2.991")) == Decimal("3.00")
    assert tick_ceiling(Decimal("3.01")) == Decimal("3.05")
    assert tick_floor(Decimal("3.04")) == Decimal("3.00")
    assert tick_floor(Decimal("2.999")) == Decimal("2.99")


@given(
    PRICES,
    st.integers(min_value=-12, max_value=12),
    rights,
    st.integers(min_value=0, max_value=40 * 24 * 60),
)
def test_quote_brackets_the_model_on_the_tick(
    spot: Decimal, offset: int, right: Right, minutes_before: int
) -> None:
    """bid <= model <= ask, both on the tick, bid >= 0, ask at least a tick above the bid."""
    expiry = date(2027, 1, 15)
    now = datetime(2027, 1, 15, 16, 0, tzinfo=NEW_YORK) - timedelta(minutes=minutes_before)
    option = contract(strike_near(spot, offset), right.value, expiry)
    quote = quote_option(option, spot, now)
    model = Decimal(quote.model_price)
    assert Decimal(0) <= quote.bid <= model <= quote.ask
    assert quote.bid % option_tick(quote.bid) == 0
    assert quote.ask % option_tick(quote.ask) == 0
    assert quote.ask >= quote.bid + option_tick(quote.bid)
    assert quote.last == tick_round(model)
    assert quote.bid_size >= (1 if quote.bid > 0 else 0)
    assert quote.ask_size >= 1


def test_far_out_of_the_money_bids_nothing() -> None:
    """A worthless far-OTM option bids 0 (size 0) and offers a few cents."""
    quote = quote_option(contract("100", "C"), Decimal("50.37"), MONDAY)
    assert quote.model_price < 1e-6
    assert (quote.bid, quote.bid_size) == (Decimal(0), 0)
    assert PENNY <= quote.ask <= Decimal("0.10")


def test_spread_is_never_under_a_tick() -> None:
    """A width under a tick still quotes one tick apart, on either side of $3."""
    tight = PricingParams(spread=SpreadRule(base=1e-6, relative=0.0, otm=0.0, near=0.0))
    spot = Decimal("50.37")
    for strike, right in ((100, "C"), (50, "C"), (50, "P"), (40, "C"), (60, "P")):
        quote = quote_option(contract(strike, right), spot, MONDAY, tight)
        assert quote.ask - quote.bid == option_tick(quote.bid), quote


@given(
    st.floats(min_value=0.0, max_value=50.0),
    st.floats(min_value=0.0, max_value=6.0),
    st.floats(min_value=0.0, max_value=365.0),
    st.floats(min_value=0.01, max_value=3.0),
)
def test_spread_widens_out_of_the_money_and_near_expiry(
    model: float, z: float, days: float, step: float
) -> None:
    """For the same model price, a width never narrows further out or nearer expiry."""
    rule = SpreadRule()
    width = spread_width(rule, model=model, otm_sd=z, days=days)
    assert spread_width(rule, model=model, otm_sd=z + step, days=days) >= width
    assert spread_width(rule, model=model, otm_sd=z, days=days + step) <= width
    if z + step <= rule.max_z:
        assert spread_width(rule, model=model, otm_sd=z + step, days=days) > width
    assert spread_width(rule, model=model, otm_sd=z, days=days + step) < width


def test_quotes_are_relatively_wider_out_of_the_money_and_near_expiry() -> None:
    """Across a chain, the spread over the price grows out of the money and toward expiry."""
    spot = Decimal("50.37")

    def relative(option: OptionContract, now: datetime, underlying: Decimal = spot) -> float:
        quote = quote_option(option, underlying, now)
        assert quote.ask < 3
        return float(quote.ask - quote.bid) / quote.model_price

    calls = [relative(contract(k, "C"), MONDAY) for k in (50, 52, 54, 56)]
    puts = [relative(contract(k, "P"), MONDAY) for k in (50, 48, 46, 44)]
    assert calls == sorted(calls)
    assert puts == sorted(puts)
    # a $20 underlying keeps these prices under $3, on the penny tick: nickels would round
    # the longer-dated quote outward by more than the rule widens the nearer one
    far = contract(20, "C", date(2027, 3, 19))
    spreads = [
        relative(
            far, datetime(2027, 3, 19, 15, 0, tzinfo=NEW_YORK) - timedelta(days=d), Decimal("20.13")
        )
        for d in (60, 30, 10, 3, 1)
    ]
    assert spreads == sorted(spreads)


# --- synthetic volume and open interest ----------------------------------------------------


def test_volume_and_open_interest_are_deterministic_per_trading_day() -> None:
    """Same contract, day and seed: same numbers, at any time of that day; another day or
    another seed: other numbers."""
    option = contract(50, "C")
    spot = Decimal("50.37")
    morning = quote_option(option, spot, MONDAY)
    later = quote_option(option, Decimal("50.37"), MONDAY + timedelta(hours=4))
    assert (morning.volume, morning.open_interest) == (later.volume, later.open_interest)
    assert (morning.bid_size, morning.ask_size) == (later.bid_size, later.ask_size)
    assert morning.volume > 0
    assert morning.open_interest > 0
    moved = quote_option(option, Decimal("51.20"), MONDAY + timedelta(hours=1), reference=spot)
    assert (moved.volume, moved.open_interest) == (morning.volume, morning.open_interest)
    assert moved.model_price > morning.model_price
    next_day = quote_option(option, spot, MONDAY + timedelta(days=1))
    assert (next_day.volume, next_day.open_interest) != (morning.volume, morning.open_interest)
    reseeded = quote_option(option, spot, MONDAY, PricingParams(liquidity=Liquidity(seed=7)))
    assert (reseeded.volume, reseeded.open_interest) != (morning.volume, morning.open_interest)


def test_weekend_activity_is_the_last_trading_day() -> None:
    """Saturday shows Friday's session; Good Friday 2027 shows Thursday's."""
    assert activity_day(datetime(2026, 12, 19, 12, tzinfo=NEW_YORK)) == date(2026, 12, 18)
    assert activity_day(datetime(2027, 3, 26, 12, tzinfo=NEW_YORK)) == date(2027, 3, 25)
    # 03:00 UTC on Saturday is still Friday evening in New York
    assert activity_day(datetime(2026, 12, 19, 3, tzinfo=UTC)) == date(2026, 12, 18)


def test_activity_decays_away_from_the_money_and_with_expiry() -> None:
    """The liquidity factor falls off both ways; volume and OI follow it across a chain
    (the hash only moves them within a factor of three)."""
    rule = Liquidity()
    assert liquidity_factor(rule, log_moneyness=0.0, days=0.0) == 1.0
    assert liquidity_factor(rule, log_moneyness=0.2, days=5.0) < liquidity_factor(
        rule, log_moneyness=0.1, days=5.0
    )
    assert liquidity_factor(rule, log_moneyness=-0.2, days=5.0) == liquidity_factor(
        rule, log_moneyness=0.2, days=5.0
    )
    spot = Decimal("50.37")
    atm = quote_option(contract(50, "C"), spot, MONDAY)
    otm = quote_option(contract(65, "C"), spot, MONDAY)  # ln(65/50.37) = 0.26: 1/13 the factor
    later = quote_option(contract(50, "C", date(2027, 2, 19)), spot, MONDAY)  # 63 days on
    assert otm.volume < atm.volume
    assert otm.open_interest < atm.open_interest
    assert later.volume < atm.volume
    assert later.open_interest < atm.open_interest


# --- the quote's greeks --------------------------------------------------------------------


def test_quote_carries_the_option_computation() -> None:
    """IV from the smile at the contract's forward moneyness, greeks of that vol, and a PV
    dividend that makes put-call parity hold on the quotes."""
    params = PricingParams(rate=0.05, dividend_yield=0.02)
    spot = Decimal("50.37")
    chain = option_chain("TQQQ", spot, MONDAY.date(), weeks=6, each_side=3)
    now = MONDAY
    for expiry in chain.expiries:
        t = years_to_expiry(now, expiry)
        forward = 50.37 * math.exp((0.05 - 0.02) * t)
        for strike in chain.strikes:
            call = quote_option(chain.contract(expiry, strike, "C"), spot, now, params)
            put = quote_option(chain.contract(expiry, strike, "P"), spot, now, params)
            assert call.implied_vol == params.smile.vol(strike=float(strike), forward=forward)
            assert put.implied_vol == call.implied_vol
            assert call.underlying_price == spot
            assert call.pv_dividend == put.pv_dividend > 0
            assert call.model_price - put.model_price == pytest.approx(
                50.37 - call.pv_dividend - float(strike) * math.exp(-0.05 * t), abs=1e-9
            )
            assert 0 < call.delta < 1
            assert -1 < put.delta < 0
            assert call.gamma == pytest.approx(put.gamma)
            assert call.vega == pytest.approx(put.vega)
            assert call.theta < 0


# --- bad input -----------------------------------------------------------------------------


def test_bad_model_inputs_are_named() -> None:
    """Each model input is checked and named."""
    args = {"spot": 50.0, "strike": 50.0, "years": 0.1, "vol": 0.3, "rate": 0.01}
    with pytest.raises(OptionError, match=r"vol: a positive number, got -0.3"):
        bsm_price("C", **{**args, "vol": -0.3})
    with pytest.raises(OptionError, match=r"spot: a finite number, got nan"):
        bsm_price("C", **{**args, "spot": math.nan})
    with pytest.raises(OptionError, match=r"strike: a positive number, got 0.0"):
        bsm_price("C", **{**args, "strike": 0.0})
    with pytest.raises(OptionError, match=r"years: a positive number, got 0"):
        bsm_price("C", **{**args, "years": 0})
    with pytest.raises(OptionError, match=r"right: an option right is 'C' or 'P', got 'X'"):
        bsm_price("X", **args)


def test_bad_quote_inputs_are_named() -> None:
    """A bad underlying price, a naive or late time, bad parameters: each says what."""
    option = contract(50, "C")
    with pytest.raises(OptionError, match=r"underlying_price: a positive Decimal for TQQQ"):
        quote_option(option, Decimal(-1), MONDAY)
    with pytest.raises(OptionError, match=r"underlying_price: a positive Decimal for TQQQ"):
        quote_option(option, 50.0, MONDAY)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match=r"expiry: 2026-12-18 is in the past"):
        quote_option(option, Decimal(50), datetime(2026, 12, 21, 10, tzinfo=NEW_YORK))
    with pytest.raises(OptionError, match=r"now: an aware datetime"):
        quote_option(option, Decimal(50), datetime(2026, 12, 14, 10))
    with pytest.raises(OptionError, match=r"reference: a positive Decimal for TQQQ, got 0"):
        quote_option(option, Decimal(50), MONDAY, reference=0)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match=r"contract: an OptionContract"):
        quote_option("TQQQ", Decimal(50), MONDAY)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match=r"smile.base: more than 0.0, got 0.0"):
        Smile(base=0.0)
    with pytest.raises(OptionError, match=r"smile.floor: at least 0.0001, got 0.0"):
        Smile(floor=0.0)
    with pytest.raises(OptionError, match=r"pricing.rate: a finite number, got inf"):
        PricingParams(rate=math.inf)
    with pytest.raises(OptionError, match=r"pricing.dividend_yield: at least 0.0, got -0.01"):
        PricingParams(dividend_yield=-0.01)
    with pytest.raises(OptionError, match=r"spread.base: more than 0.0, got -0.01"):
        SpreadRule(base=-0.01)
    with pytest.raises(OptionError, match=r"liquidity.volume: a whole number >= 0, got -5"):
        Liquidity(volume=-5)
    with pytest.raises(OptionError, match=r"liquidity.moneyness: a number, got '0.1'"):
        Liquidity(moneyness="0.1")  # type: ignore[arg-type]
