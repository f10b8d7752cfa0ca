"""The options bot's pure decisions: which contract, whether its quote trades, the entry and
exit prices, and how many contracts (checked against the sim venue's listing and tick rules)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain import DomainError, OptionChain, OptionQuote, OptionSymbol
from actors.options.choice import (
    ContractParams,
    EntryParams,
    LiquidityParams,
    SizingParams,
    Skip,
    choose_contract,
    contracts_for,
    entry_limit,
    exit_prices,
    liquidity_problem,
    option_tick,
)
from sim.options import chain as sim_chain
from sim.options import pricing as sim_pricing

GOOD_FRIDAY = date(2027, 3, 26)
HOLIDAY_WEEK = sim_chain.expiries(date(2027, 3, 22), weeks=4)


def chain(
    strikes: tuple[Decimal, ...] | None = None,
    expirations: tuple[date, ...] = HOLIDAY_WEEK,
) -> OptionChain:
    if strikes is None:
        strikes = sim_chain.strike_grid(Decimal(50), each_side=5)  # 45 .. 55, 1 apart
    return OptionChain(
        underlying="TQQQ",
        exchange="SMART",
        trading_class="TQQQ",
        multiplier=100,
        expirations=expirations,
        strikes=strikes,
    )


def choose(
    price: str = "50.2",
    *,
    today: date = date(2027, 3, 24),
    bullish: bool = True,
    the_chain: OptionChain | None = None,
    **params: int,
) -> OptionSymbol | Skip:
    return choose_contract(
        chain() if the_chain is None else the_chain,
        underlying_price=Decimal(price),
        today=today,
        bullish=bullish,
        params=ContractParams(**params),
    )


def chosen(price: str = "50.2", **kwargs: object) -> OptionSymbol:
    result = choose(price, **kwargs)  # type: ignore[arg-type]
    assert isinstance(result, OptionSymbol), result
    return result


def skipped(result: object, code: str) -> Skip:
    assert isinstance(result, Skip), result
    assert result.code == code, result
    return result


# --- the contract --------------------------------------------------------------------------


def test_the_holiday_week_expires_on_thursday() -> None:
    """The test chain is the sim's: Good Friday 2027 moves that week's expiry to Thursday."""
    assert HOLIDAY_WEEK[0] == GOOD_FRIDAY - timedelta(days=1)
    assert HOLIDAY_WEEK[1] == date(2027, 4, 2)


def test_min_dte_1_takes_the_thursday_expiry_of_a_holiday_week() -> None:
    """On Wednesday 2027-03-24 with min_dte 1 the Thursday expiry, a day away, qualifies."""
    option = chosen(min_dte=1)
    assert option.expiry == date(2027, 3, 25)
    assert option.occ == "TQQQ  270325C00050000"


def test_min_dte_2_skips_to_the_next_week() -> None:
    """Thursday is 1 day away from Wednesday: min_dte 2 takes the next Friday."""
    assert chosen(min_dte=2).expiry == date(2027, 4, 2)


def test_min_dte_0_takes_the_expiry_on_its_own_day() -> None:
    """On the expiry day itself, min_dte 0 takes it and min_dte 1 does not."""
    assert chosen(today=date(2027, 3, 25), min_dte=0).expiry == date(2027, 3, 25)
    assert chosen(today=date(2027, 3, 25), min_dte=1).expiry == date(2027, 4, 2)


def test_expiries_before_today_never_qualify() -> None:
    """A stale chain's past expiries are passed over even with min_dte 0."""
    assert chosen(today=date(2027, 3, 29), min_dte=0).expiry == date(2027, 4, 2)


def test_no_expiry_far_enough_is_a_skip_naming_the_days() -> None:
    """min_dte past the chain's last expiry: a Skip naming it and its distance."""
    skip = skipped(choose(min_dte=30), "no_expiry")
    assert skip.reason == (
        "no expiry 30 or more days after 2027-03-24: the last listed is 2027-04-16, 23 days away"
    )
    skipped(choose(the_chain=chain(expirations=())), "no_expiry")


def test_the_strike_nearest_the_price_is_taken() -> None:
    """50.2 is nearest 50, 50.6 nearest 51; a call when bullish, a put when bearish."""
    assert chosen("50.2").strike == 50
    assert chosen("50.6").strike == 51
    put = chosen("50.6", bullish=False)
    assert (put.right, put.strike) == ("P", 51)


def test_a_tie_between_strikes_goes_to_the_lower() -> None:
    """50.5 is as near 50 as 51: 50, for a call and a put alike."""
    assert chosen("50.5").strike == 50
    assert chosen("50.5", bullish=False).strike == 50


def test_strikes_out_moves_out_of_the_money_for_the_right() -> None:
    """Two strikes out: up for a call, down for a put; negative: into the money."""
    assert chosen(strikes_out=2).strike == 52
    assert chosen(strikes_out=2, bullish=False).strike == 48
    assert chosen(strikes_out=-2).strike == 48
    assert chosen(strikes_out=-2, bullish=False).strike == 52


def test_strikes_out_steps_along_the_chains_own_strikes() -> None:
    """Across the ladder's band at 25 the steps change from 0.50 to 1: the chain's list counts."""
    strikes = sim_chain.strike_grid(Decimal(25), each_side=3)  # 23.5 24 24.5 25 26 27 28
    assert chosen("24.9", the_chain=chain(strikes), strikes_out=2).strike == 27
    assert chosen("24.9", the_chain=chain(strikes), strikes_out=2, bullish=False).strike == 24
    uneven = (Decimal(40), Decimal(45), Decimal("47.5"), Decimal(60))
    assert chosen("47", the_chain=chain(uneven), strikes_out=1).strike == 60
    assert chosen("47", the_chain=chain(uneven), strikes_out=1, bullish=False).strike == 45


def test_stepping_off_the_strikes_is_a_skip() -> None:
    """From 50 in 45..55, six strikes out for a call (or in for a put) runs off the top."""
    skip = skipped(choose(strikes_out=6), "off_chain")
    assert skip.reason == (
        "6 strikes out of the money for a call from 50 (nearest 50.2) runs off the chain's "
        "strikes 45 .. 55"
    )
    skipped(choose(strikes_out=-6, bullish=False), "off_chain")
    skipped(choose(strikes_out=6, bullish=False), "off_chain")
    assert chosen(strikes_out=5).strike == 55
    assert chosen(strikes_out=5, bullish=False).strike == 45


def test_a_price_beyond_the_strikes_takes_the_end_strike() -> None:
    """A price above every strike is nearest the highest."""
    assert chosen("70").strike == 55
    skipped(choose("70", strikes_out=1), "off_chain")


def test_no_strikes_is_a_skip() -> None:
    """A chain without strikes lists no option."""
    skipped(choose(the_chain=chain(strikes=())), "no_strikes")


@pytest.mark.parametrize("price", ["0", "-1", "NaN", "Infinity", "sNaN"])
def test_a_price_that_is_not_positive_is_a_skip(price: str) -> None:
    """Zero, negative and non-finite prices choose nothing, and raise nothing."""
    skip = skipped(choose(price), "price")
    assert price in skip.reason


@given(
    price=st.decimals(min_value=Decimal(1), max_value=Decimal(600), places=2),
    offset=st.integers(min_value=-6, max_value=6),
    bullish=st.booleans(),
)
def test_the_strike_is_the_sim_ladders_strike_near_the_price(
    price: Decimal, offset: int, bullish: bool
) -> None:
    """On a chain of the sim's ladder, the strike is the sim's ``strike_near``, and a step
    off the chain is a Skip exactly where the chain ends."""
    strikes = sim_chain.strike_grid(price, each_side=6)
    result = choose(str(price), the_chain=chain(strikes), bullish=bullish, strikes_out=offset)
    try:
        expected = sim_chain.strike_near(price, offset, right="C" if bullish else "P")
    except sim_chain.OptionError:
        skipped(result, "off_chain")
        return
    if expected not in strikes:
        skipped(result, "off_chain")
        return
    assert isinstance(result, OptionSymbol), result
    assert result.strike == expected
    assert result.right == ("C" if bullish else "P")


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_dte", -1), ("min_dte", True), ("strikes_out", "1"), ("min_dte", 1.5)],
)
def test_contract_params_are_validated_naming_the_field(field: str, value: object) -> None:
    """A bad parameter is refused with its name (a value of the wrong type: TypeError)."""
    with pytest.raises((ValueError, TypeError), match=field):
        ContractParams(**{field: value})  # type: ignore[arg-type]


# --- liquidity -----------------------------------------------------------------------------


def quote(
    bid: str | None = "1.50",
    ask: str | None = "1.60",
    *,
    volume: int | None = 100,
    open_interest: int | None = 500,
) -> OptionQuote:
    return OptionQuote(
        symbol="TQQQ  270325C00050000",
        bid=None if bid is None else Decimal(bid),
        ask=None if ask is None else Decimal(ask),
        volume=volume,
        open_interest=open_interest,
    )


def problem(q: OptionQuote, **params: object) -> Skip | None:
    return liquidity_problem(q, LiquidityParams(**params))  # type: ignore[arg-type]


def test_a_quote_at_every_minimum_passes() -> None:
    """Volume 100 and open interest 500 are enough; a 6.45 % spread is under 10 %."""
    assert problem(quote()) is None


@pytest.mark.parametrize(
    ("bid", "ask"),
    [
        (None, "1.60"),
        ("1.50", None),
        ("NaN", "1.60"),
        ("1.50", "sNaN"),
        ("-Infinity", "1.60"),
        ("-0.05", "1.60"),
        ("0", "0"),
        ("0.10", "-0.10"),
        ("1.60", "1.50"),
    ],
)
def test_a_missing_negative_or_crossed_quote_is_no_quote(bid: str | None, ask: str | None) -> None:
    """No side, a NaN, a negative bid, an ask not above 0, or ask < bid: ``no_quote``."""
    skipped(problem(quote(bid, ask)), "no_quote")


def test_a_crossed_quote_names_both_prices() -> None:
    """The reason shows the crossing."""
    skip = skipped(problem(quote("1.60", "1.50")), "no_quote")
    assert "bid 1.60 over ask 1.50" in skip.reason


def test_a_locked_quote_is_not_crossed() -> None:
    """bid == ask is a quote with no spread."""
    assert problem(quote("1.50", "1.50")) is None


def test_a_zero_bid_is_refused() -> None:
    """Bid 0: nobody to sell the option back to."""
    skipped(problem(quote("0", "0.05")), "zero_bid")
    skipped(problem(quote("0.00", "0.05"), max_spread_pct=1000), "zero_bid")


def test_a_spread_over_the_limit_names_the_numbers() -> None:
    """0.20 on a mid of 1.60 is 12.5 %, over 10 %."""
    skip = skipped(problem(quote("1.50", "1.70")), "spread")
    assert skip.reason == (
        "TQQQ  270325C00050000: spread 0.20 is 12.5 % of the mid 1.60, over 10 %"
    )


def test_a_spread_of_exactly_the_limit_passes() -> None:
    """0.20 on a mid of 2.00 is exactly 10 %: it passes; a cent wider does not."""
    assert problem(quote("1.90", "2.10")) is None
    skipped(problem(quote("1.90", "2.11")), "spread")
    assert problem(quote("1.90", "2.11"), max_spread_pct="10.52") is None
    skipped(problem(quote("1.90", "2.11"), max_spread_pct="10.47"), "spread")


def test_a_spread_just_over_is_shown_over_the_limit() -> None:
    """A spread a hair over 10 % is shown rounded up, not as 10 %."""
    skip = skipped(problem(quote("1.9000", "2.1001")), "spread")
    assert "is 10.01 % of the mid" in skip.reason


def test_volume_under_the_minimum_or_not_sent_is_refused() -> None:
    """99 is under 100; None was not sent; 0 passes a minimum of 0."""
    assert skipped(problem(quote(volume=99)), "volume").reason.endswith("volume 99 under 100")
    assert skipped(problem(quote(volume=None)), "volume").reason.endswith("volume not sent")
    assert problem(quote(volume=0), min_volume=0) is None
    skipped(problem(quote(volume=-1), min_volume=0), "volume")


def test_open_interest_under_the_minimum_or_not_sent_is_refused() -> None:
    """499 is under 500; None was not sent."""
    skip = skipped(problem(quote(open_interest=499)), "open_interest")
    assert skip.reason.endswith("open interest 499 under 500")
    skip = skipped(problem(quote(open_interest=None)), "open_interest")
    assert skip.reason.endswith("open interest not sent")
    assert problem(quote(open_interest=0), min_open_interest=0) is None


def test_the_first_problem_is_reported() -> None:
    """A wide, untraded quote is refused for its spread first, then its volume."""
    skipped(problem(quote("1.00", "2.00", volume=None, open_interest=None)), "spread")
    skipped(problem(quote(volume=None, open_interest=None)), "volume")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_spread_pct", 0),
        ("max_spread_pct", "-1"),
        ("max_spread_pct", "NaN"),
        ("min_volume", -1),
        ("min_open_interest", -1),
        ("min_volume", None),
    ],
)
def test_liquidity_params_are_validated_naming_the_field(field: str, value: object) -> None:
    """A bad parameter is refused with its name."""
    with pytest.raises((ValueError, TypeError), match=field):
        LiquidityParams(**{field: value})  # type: ignore[arg-type]


_any_price = st.one_of(
    st.none(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-5, max_value=5, places=2),
    st.sampled_from([Decimal("sNaN"), Decimal("-NaN"), Decimal("1E+999999"), Decimal(0)]),
    st.floats(allow_nan=True),
    st.integers(min_value=-10, max_value=10),
)
_any_count = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True))


@given(
    bid=_any_price,
    ask=_any_price,
    volume=_any_count,
    open_interest=_any_count,
    implied_vol=st.one_of(st.none(), st.floats(allow_nan=True)),
    max_spread_pct=st.decimals(min_value=Decimal("0.01"), max_value=1000, places=2),
)
def test_liquidity_problem_never_raises(
    bid: object,
    ask: object,
    volume: object,
    open_interest: object,
    implied_vol: float | None,
    max_spread_pct: Decimal,
) -> None:
    """Whatever a feed put in the quote, the answer is a Skip or None, never an exception."""
    q = OptionQuote(
        symbol="TQQQ  270325C00050000",
        bid=bid,  # type: ignore[arg-type]
        ask=ask,  # type: ignore[arg-type]
        volume=volume,  # type: ignore[arg-type]
        open_interest=open_interest,  # type: ignore[arg-type]
        implied_vol=implied_vol,
    )
    result = liquidity_problem(q, LiquidityParams(max_spread_pct=max_spread_pct))
    assert result is None or isinstance(result, Skip)
    if result is None:
        assert isinstance(bid, Decimal | int)
        assert isinstance(ask, Decimal | int)
        assert 0 < bid <= ask


# --- entry and exits -----------------------------------------------------------------------


def test_the_tick_is_a_penny_under_3_and_a_nickel_from_3() -> None:
    """2.99 trades in pennies, 3.00 in nickels."""
    assert option_tick(Decimal("2.99")) == Decimal("0.01")
    assert option_tick(Decimal("3.00")) == Decimal("0.05")


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal(50), places=3))
def test_the_tick_is_the_sim_venues(price: Decimal) -> None:
    """The same rule as the sim venue quotes by."""
    assert option_tick(price) == sim_pricing.option_tick(price)


def test_the_mid_is_rounded_up_to_the_tick() -> None:
    """1.50/1.55 has a mid of 1.525: the buy's limit is 1.53."""
    assert entry_limit(quote("1.50", "1.55"), EntryParams()) == Decimal("1.53")
    assert entry_limit(quote("1.50", "1.60"), EntryParams()) == Decimal("1.55")


def test_a_mid_from_3_is_rounded_up_to_the_nickel() -> None:
    """A mid of 3.025 becomes 3.05; of 2.995, 3.00."""
    assert entry_limit(quote("2.95", "3.10"), EntryParams()) == Decimal("3.05")
    assert entry_limit(quote("2.99", "3.00"), EntryParams()) == Decimal("3.00")


def test_the_entry_at_the_ask_is_the_ask() -> None:
    """entry_price ask pays the ask."""
    assert entry_limit(quote("1.50", "1.60"), EntryParams(entry_price="ask")) == Decimal("1.60")


def test_an_entry_without_a_two_sided_quote_is_a_skip() -> None:
    """No bid, a crossed quote: no entry limit, in either mode."""
    skipped(entry_limit(quote(None, "1.60"), EntryParams()), "no_quote")
    skipped(entry_limit(quote("1.60", "1.50"), EntryParams(entry_price="ask")), "no_quote")


@given(
    bid=st.decimals(min_value=0, max_value=20, places=2),
    width=st.decimals(min_value=Decimal("0.01"), max_value=5, places=2),
)
def test_the_entry_limit_is_on_the_tick_between_mid_and_ask(bid: Decimal, width: Decimal) -> None:
    """With a quote on the sim's ticks, the limit is the sim's ceiling of the mid: on the tick,
    at or above the mid, at most the ask."""
    bid = sim_pricing.tick_floor(bid)
    ask = max(sim_pricing.tick_ceiling(bid + width), bid + option_tick(bid))
    q = quote(str(bid), str(ask))
    limit = entry_limit(q, EntryParams())
    assert isinstance(limit, Decimal)
    assert limit == sim_pricing.tick_ceiling((bid + ask) / 2)
    assert (bid + ask) / 2 <= limit <= ask
    assert limit % option_tick(limit) == 0


def test_exits_are_50_percent_up_and_30_percent_down() -> None:
    """An entry at 2.00: take profit at 3.00, stop at 1.40."""
    assert exit_prices(Decimal("2.00"), EntryParams()) == (Decimal("3.00"), Decimal("1.40"))


def test_exits_round_half_up_to_the_tick_of_their_level() -> None:
    """1.23 x 1.5 = 1.845 -> 1.85; 1.23 x 0.7 = 0.861 -> 0.86; 2.10 x 1.5 = 3.15 stays on the
    nickel; 2.20 x 1.5 = 3.30; 4.10 x 1.5 = 6.15; 4.10 x 0.7 = 2.87 (a penny level)."""
    assert exit_prices(Decimal("1.23"), EntryParams()) == (Decimal("1.85"), Decimal("0.86"))
    assert exit_prices(Decimal("2.10"), EntryParams())[0] == Decimal("3.15")
    assert exit_prices(Decimal("4.10"), EntryParams()) == (Decimal("6.15"), Decimal("2.87"))
    # 2.02 x 1.5 = 3.03: the nickel level, half-up: 3.05; 2.01 x 1.5 = 3.015 -> 3.00
    assert exit_prices(Decimal("2.02"), EntryParams())[0] == Decimal("3.05")
    assert exit_prices(Decimal("2.01"), EntryParams())[0] == Decimal("3.00")


def test_exits_keep_at_least_a_tick_from_the_entry() -> None:
    """A 0.1 % target on 0.50 rounds back to the entry: the exits are a tick either side."""
    tight = EntryParams(tp_pct="0.1", sl_pct="0.1")
    assert exit_prices(Decimal("0.50"), tight) == (Decimal("0.51"), Decimal("0.49"))
    assert exit_prices(Decimal("3.00"), tight) == (Decimal("3.05"), Decimal("2.99"))
    assert exit_prices(Decimal("2.99"), tight) == (Decimal("3.00"), Decimal("2.98"))


def test_the_stop_is_at_least_one_tick() -> None:
    """A 99 % stop on 0.50 would be 0.005: the stop is 0.01 (and an entry of 0.01 stops at it)."""
    deep = EntryParams(sl_pct=99)
    assert exit_prices(Decimal("0.50"), deep)[1] == Decimal("0.01")
    assert exit_prices(Decimal("0.01"), deep) == (Decimal("0.02"), Decimal("0.01"))


@given(
    entry=st.decimals(min_value=Decimal("0.02"), max_value=Decimal(40), places=2),
    tp_pct=st.decimals(min_value=Decimal("0.1"), max_value=Decimal(300), places=1),
    sl_pct=st.decimals(min_value=Decimal("0.1"), max_value=Decimal("99.9"), places=1),
)
def test_exits_bracket_the_entry_on_the_tick(
    entry: Decimal, tp_pct: Decimal, sl_pct: Decimal
) -> None:
    """stop < entry < take-profit, both on the sim's tick, each the sim's rounding of its
    target unless that would not leave the entry."""
    entry = sim_pricing.tick_round(entry)
    take_profit, stop = exit_prices(entry, EntryParams(tp_pct=tp_pct, sl_pct=sl_pct))
    assert stop < entry < take_profit
    for price in (take_profit, stop):
        assert price % option_tick(price) == 0
    target = sim_pricing.tick_round(entry * (1 + tp_pct / 100))
    assert take_profit == target or (target <= entry and take_profit == min_above(entry))
    floor = sim_pricing.tick_round(entry * (1 - sl_pct / 100))
    assert stop == floor or floor >= entry or floor < Decimal("0.01")


def min_above(price: Decimal) -> Decimal:
    return min(
        p
        for p in (price + Decimal("0.01"), price + Decimal("0.05"), Decimal("3.00"))
        if p > price and p % option_tick(p) == 0
    )


@pytest.mark.parametrize("entry", ["0", "-1", "NaN"])
def test_an_entry_that_is_no_price_has_no_exits(entry: str) -> None:
    """exit_prices refuses a non-positive or NaN entry, naming it."""
    with pytest.raises(DomainError, match="entry"):
        exit_prices(Decimal(entry), EntryParams())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("entry_price", "last"),
        ("tp_pct", 0),
        ("sl_pct", 0),
        ("sl_pct", 100),
        ("sl_pct", "Infinity"),
        ("tp_pct", 1.5),
    ],
)
def test_entry_params_are_validated_naming_the_field(field: str, value: object) -> None:
    """A bad parameter is refused with its name (a float is no Decimal)."""
    with pytest.raises((ValueError, TypeError), match=field):
        EntryParams(**{field: value})  # type: ignore[arg-type]


# --- size ----------------------------------------------------------------------------------


def size(
    equity: str,
    premium: str = "2.00",
    *,
    multiplier: int = 100,
    sl_pct: str = "30",
    **params: object,
) -> int | Skip:
    return contracts_for(
        equity=Decimal(equity),
        premium=Decimal(premium),
        multiplier=multiplier,
        sl_pct=Decimal(sl_pct),
        params=SizingParams(**params),  # type: ignore[arg-type]
    )


def test_an_equity_allowing_n_contracts_exactly_buys_n() -> None:
    """1 % of 18000 is 180, a contract at 2.00 risks 60: 3 contracts; a cent less, 2."""
    assert size("18000") == 3
    assert size("17999.99") == 2


def test_sizing_is_exact_where_a_float_is_not() -> None:
    """0.3 % of 10000 = 30 = 0.10 x 100 x 3 % x 100 exactly (in floats 0.1 x 3 is not 0.3)."""
    exact = {"sl_pct": "3", "max_risk_pct_per_trade": "0.3", "max_contracts": 1000}
    assert size("10000", "0.10", **exact) == 100  # type: ignore[arg-type]
    assert size("9999.99", "0.10", **exact) == 99  # type: ignore[arg-type]


def test_max_contracts_caps_the_size() -> None:
    """1 % of 1,000,000 risks 10000: 166 contracts by risk, 10 by default, 200 if allowed."""
    assert size("1000000") == 10
    assert size("1000000", max_contracts=200) == 166
    assert size("1000000", max_contracts=1) == 1


def test_max_notional_caps_the_size() -> None:
    """1000 of premium buys 5 contracts at 200 each, 999.99 buys 4."""
    assert size("1000000", max_notional="1000") == 5
    assert size("1000000", max_notional="999.99") == 4
    assert size("18000", max_notional="1000") == 3


def test_a_zero_size_is_a_skip_showing_the_sums() -> None:
    """1 % of 5000 is 50, under the 60 one contract risks: nothing to buy."""
    skip = skipped(size("5000"), "size")
    assert skip.reason == (
        "1 % of equity 5000 is 50 to risk; one contract risks 2.00 x 100 x 30 % = 60.00: "
        "0 contracts"
    )


def test_a_notional_under_one_contract_is_a_skip() -> None:
    """max_notional 150 is under one contract's 200 of premium."""
    skip = skipped(size("1000000", max_notional="150"), "size")
    assert "max_notional 150 is under one contract's premium 2.00 x 100 = 200.00" in skip.reason


@pytest.mark.parametrize(
    ("equity", "premium", "multiplier", "code"),
    [
        ("0", "2.00", 100, "equity"),
        ("-100", "2.00", 100, "equity"),
        ("NaN", "2.00", 100, "equity"),
        ("10000", "0", 100, "premium"),
        ("10000", "-1", 100, "premium"),
        ("10000", "sNaN", 100, "premium"),
        ("10000", "2.00", 0, "multiplier"),
    ],
)
def test_nothing_to_size_is_a_skip(equity: str, premium: str, multiplier: int, code: str) -> None:
    """A non-positive equity, premium or multiplier sizes nothing."""
    skipped(size(equity, premium, multiplier=multiplier), code)


def test_an_impossible_stop_is_refused() -> None:
    """sl_pct must be in (0, 100): EntryParams guarantees it; a direct call is checked."""
    with pytest.raises(DomainError, match="sl_pct"):
        size("10000", sl_pct="0")
    with pytest.raises(DomainError, match="sl_pct"):
        size("10000", sl_pct="100")


@given(
    equity=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(10**9), places=2),
    premium=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2),
    sl_pct=st.decimals(min_value=Decimal("0.1"), max_value=Decimal("99.9"), places=1),
    risk_pct=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2),
    max_contracts=st.integers(min_value=1, max_value=1000),
    max_notional=st.one_of(
        st.none(), st.decimals(min_value=Decimal(1), max_value=Decimal(10**6), places=2)
    ),
)
def test_the_size_is_the_largest_within_every_limit(
    equity: Decimal,
    premium: Decimal,
    sl_pct: Decimal,
    risk_pct: Decimal,
    max_contracts: int,
    max_notional: Decimal | None,
) -> None:
    """n contracts keep within the risk, the count and the notional, and n + 1 would not."""
    params = SizingParams(
        max_risk_pct_per_trade=risk_pct, max_contracts=max_contracts, max_notional=max_notional
    )
    result = contracts_for(
        equity=equity, premium=premium, multiplier=100, sl_pct=sl_pct, params=params
    )
    n = 0 if isinstance(result, Skip) else result
    if isinstance(result, Skip):
        assert result.code == "size"
    else:
        assert n >= 1

    def within(count: int) -> bool:
        risked = premium * 100 * sl_pct * count <= equity * risk_pct
        paid = max_notional is None or premium * 100 * count <= max_notional
        return risked and paid and count <= max_contracts

    assert within(n)
    assert not within(n + 1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_risk_pct_per_trade", 0),
        ("max_risk_pct_per_trade", "100.01"),
        ("max_contracts", 0),
        ("max_notional", "0"),
        ("max_notional", "-5"),
    ],
)
def test_sizing_params_are_validated_naming_the_field(field: str, value: object) -> None:
    """A bad parameter is refused with its name."""
    with pytest.raises(ValueError, match=field):
        SizingParams(**{field: value})  # type: ignore[arg-type]
    assert SizingParams(max_risk_pct_per_trade=100).max_risk_pct_per_trade == 100
