"""Option contracts and chains: expiries, strikes, OCC symbols and conIds."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain.sessions import is_trading_day, nyse_holidays
from sim.options.chain import (
    MAX_CON_ID,
    MAX_STRIKE,
    OPTION_CON_ID_BASE,
    OptionChain,
    OptionContract,
    OptionError,
    Right,
    expiries,
    is_expiry,
    is_listed_strike,
    is_monthly,
    is_option_con_id,
    monthly_expiries,
    monthly_expiry,
    nearest_expiry,
    option_chain,
    strike_at,
    strike_grid,
    strike_index,
    strike_near,
    strike_step,
    weekly_expiry,
)

# The stock conIds the sim venue assigns (app/compose/_venue.py: 900001 + i per listed symbol;
# tests/tws_venue.py TQQQ) and a real IB one used in the tests (QQQ).
STOCK_CON_IDS = set(range(900_001, 901_001)) | {320227571}

days = st.dates(min_value=date(2001, 1, 1), max_value=date(2077, 12, 31))
listed_strikes = st.integers(min_value=1, max_value=2047).map(strike_at)


def tqqq(expiry: date, strike: str, right: str = "C") -> OptionContract:
    return OptionContract(underlying="TQQQ", expiry=expiry, strike=Decimal(strike), right=right)


# --- expiries ------------------------------------------------------------------------------


def test_good_friday_weekly_moves_to_thursday() -> None:
    """The week of Good Friday 2027-03-26 (an NYSE holiday) expires on Thursday 2027-03-25."""
    assert date(2027, 3, 26) in nyse_holidays(2027)
    assert weekly_expiry(date(2027, 3, 22)) == date(2027, 3, 25)
    assert expiries(date(2027, 3, 22), weeks=2) == (date(2027, 3, 25), date(2027, 4, 2))
    assert expiries(date(2027, 3, 26), weeks=1) == (date(2027, 4, 2),)  # on Good Friday
    assert not is_expiry(date(2027, 3, 26))
    assert is_expiry(date(2027, 3, 25))


def test_every_holiday_friday_moves_to_the_trading_day_before() -> None:
    """Each Friday NYSE holiday of 2020-2035 moves its week's expiry to the day before it."""
    fridays = [
        holiday
        for year in range(2020, 2036)
        for holiday in nyse_holidays(year)
        if holiday.weekday() == 4
    ]
    assert len(fridays) > 10
    for friday in fridays:
        expiry = weekly_expiry(friday)
        assert expiry is not None
        assert expiry < friday
        assert is_trading_day(expiry)
        assert all(
            not is_trading_day(expiry + timedelta(days=d))
            for d in range(1, (friday - expiry).days + 1)
        )


@given(days)
def test_weekly_expiry_is_the_last_trading_day_up_to_friday(day: date) -> None:
    """A week's expiry is its last trading day up to Friday, in the same week."""
    expiry = weekly_expiry(day)
    friday = day + timedelta(days=4 - day.weekday())
    assert expiry is not None  # no week of these years is closed Monday to Friday
    assert expiry.isocalendar()[:2] == day.isocalendar()[:2]
    assert is_trading_day(expiry)
    assert expiry <= friday
    assert all(
        not is_trading_day(expiry + timedelta(days=d)) for d in range(1, (friday - expiry).days + 1)
    )


@given(days, st.integers(min_value=1, max_value=12))
def test_expiries_are_the_next_ones_one_a_week(as_of: date, weeks: int) -> None:
    """``expiries`` lists the next ``weeks`` expiries from as_of on, one a week, none skipped."""
    listed = expiries(as_of, weeks=weeks)
    assert len(listed) == weeks
    assert list(listed) == sorted(set(listed))
    assert all(is_expiry(e) for e in listed)
    assert listed[0] >= as_of
    assert not any(is_expiry(as_of + timedelta(days=d)) for d in range((listed[0] - as_of).days))
    for earlier, later in itertools.pairwise(listed):
        assert earlier.isocalendar()[:2] != later.isocalendar()[:2]
        assert (later - earlier).days <= 8  # Thursday to next Friday at most
        assert not any(
            is_expiry(earlier + timedelta(days=d)) for d in range(1, (later - earlier).days)
        )


def test_third_friday_monthlies() -> None:
    """Monthlies are the third Friday; April 2025's (Good Friday 18th) moves to the 17th."""
    assert monthly_expiry(2026, 12) == date(2026, 12, 18)
    assert monthly_expiry(2027, 1) == date(2027, 1, 15)
    assert monthly_expiry(2026, 5) == date(2026, 5, 15)  # May 1st is a Friday
    assert monthly_expiry(2025, 4) == date(2025, 4, 17)
    assert monthly_expiries(date(2026, 12, 18), months=3) == (
        date(2026, 12, 18),
        date(2027, 1, 15),
        date(2027, 2, 19),
    )
    assert monthly_expiries(date(2026, 12, 19), months=1) == (date(2027, 1, 15),)
    assert is_monthly(date(2026, 12, 18))
    assert not is_monthly(date(2026, 12, 11))


@given(st.integers(min_value=2001, max_value=2077), st.integers(min_value=1, max_value=12))
def test_monthly_is_the_weekly_of_the_third_friday(year: int, month: int) -> None:
    """Every monthly expiry is a weekly one, in the week of the month's third Friday (15-21)."""
    expiry = monthly_expiry(year, month)
    third_friday = next(
        date(year, month, d) for d in range(15, 22) if date(year, month, d).weekday() == 4
    )
    assert expiry == weekly_expiry(third_friday)
    assert is_expiry(expiry)
    assert is_monthly(expiry)


def test_nearest_expiry_at_or_past_min_days() -> None:
    """The nearest expiry at least min_days away: today's counts with 0, skips with 1."""
    friday = date(2026, 12, 4)
    assert nearest_expiry(friday, min_days=0) == friday
    assert nearest_expiry(friday, min_days=1) == date(2026, 12, 11)
    assert nearest_expiry(date(2026, 12, 5), min_days=0) == date(2026, 12, 11)  # a Saturday
    assert nearest_expiry(date(2027, 3, 19), min_days=7) == date(2027, 4, 2)  # 25th: 6 days
    assert nearest_expiry(date(2027, 3, 19), min_days=6) == date(2027, 3, 25)


@given(days, st.integers(min_value=0, max_value=60))
def test_nearest_expiry_is_the_first_listed_one_far_enough(as_of: date, min_days: int) -> None:
    """No listed expiry lies between as_of + min_days and the one chosen."""
    chosen = nearest_expiry(as_of, min_days=min_days)
    assert is_expiry(chosen)
    assert (chosen - as_of).days >= min_days
    earliest = as_of + timedelta(days=min_days)
    assert not any(is_expiry(earliest + timedelta(days=d)) for d in range((chosen - earliest).days))


# --- strikes -------------------------------------------------------------------------------


def test_strike_steps_by_band() -> None:
    """0.50 apart under 25, 1 from 25 to under 200, 5 from 200."""
    assert strike_step(Decimal("24.5")) == Decimal("0.5")
    assert strike_step(Decimal(25)) == 1
    assert strike_step(Decimal("199")) == 1
    assert strike_step(Decimal(200)) == 5
    assert strike_grid(Decimal("24.8"), each_side=3) == tuple(
        Decimal(s) for s in ("23.5", "24", "24.5", "25", "26", "27", "28")
    )
    assert strike_grid(Decimal("201"), each_side=2) == tuple(
        Decimal(s) for s in (198, 199, 200, 205, 210)
    )
    assert strike_grid(Decimal("0.7"), each_side=2) == (Decimal("0.5"), Decimal(1), Decimal("1.5"))


@given(listed_strikes)
def test_strike_index_is_a_bijection(strike: Decimal) -> None:
    """strike_at inverts strike_index; neighbours are one step of their band apart."""
    index = strike_index(strike)
    assert strike_at(index) == strike
    assert is_listed_strike(strike)
    if index < 2047:
        assert strike_at(index + 1) - strike == strike_step(strike_at(index + 1) - Decimal("0.001"))


@given(st.decimals(min_value=Decimal("0.01"), max_value=MAX_STRIKE, places=3))
def test_strike_near_is_the_nearest_listed(price: Decimal) -> None:
    """No listed strike is strictly nearer the price than strike_near's."""
    chosen = strike_near(price)
    index = strike_index(chosen)
    for neighbour in (index - 1, index + 1):
        if 1 <= neighbour <= 2047:
            assert abs(strike_at(neighbour) - price) >= abs(chosen - price)


def test_strike_near_counts_strikes_out_of_the_money() -> None:
    """Offset N is N strikes out of the money: up for calls, down for puts."""
    assert strike_near(Decimal("50.37")) == 50
    assert strike_near(Decimal("50.37"), 2, right="C") == 52
    assert strike_near(Decimal("50.37"), 2, right=Right.PUT) == 48
    assert strike_near(Decimal("50.37"), -1, right="P") == 51
    assert strike_near(Decimal("24.7"), 1) == 25
    assert strike_near(Decimal("24.9"), 1) == 26
    assert strike_near(Decimal("24.75")) == Decimal("24.5")  # a tie goes to the lower strike


# --- contracts -----------------------------------------------------------------------------


def test_occ_local_symbol() -> None:
    """Root padded to 6, YYMMDD, C/P, strike x 1000 in 8 digits."""
    assert tqqq(date(2026, 12, 4), "50").local_symbol == "TQQQ  261204C00050000"
    assert tqqq(date(2026, 12, 4), "22.5", "P").local_symbol == "TQQQ  261204P00022500"
    spy = OptionContract(
        underlying="SPY", expiry=date(2027, 3, 25), strike=Decimal(600), right="PUT"
    )
    assert spy.local_symbol == "SPY   270325P00600000"
    assert spy.last_trade_date == "20270325"
    assert (
        OptionContract(underlying="SPY", expiry=date(2027, 3, 25), strike="600.000", right="P")
        == spy
    )
    assert str(tqqq(date(2026, 12, 4), "50.0").strike) == "50"
    assert spy.sec_type == "OPT"
    assert (spy.multiplier, spy.trading_class, spy.exchange, spy.currency) == (
        100,
        "SPY",
        "SMART",
        "USD",
    )


def test_con_ids_unique_across_chains_and_disjoint_from_stocks() -> None:
    """Every contract of a year of chains has its own conId, in the option range."""
    seen: dict[int, OptionContract] = {}
    listed = 0
    for underlying, reference in (
        ("TQQQ", "50.37"),
        ("QQQ", "512.3"),
        ("SPY", "600"),
        ("SQQQ", "8.4"),
    ):
        chain = option_chain(
            underlying, Decimal(reference), date(2026, 12, 1), weeks=52, each_side=40
        )
        listed += len(chain.expiries) * len(chain.strikes) * 2
        for contract in chain.contracts():
            assert contract.con_id not in seen, (contract, seen.get(contract.con_id))
            seen[contract.con_id] = contract
    assert len(seen) == listed > 30_000
    assert all(OPTION_CON_ID_BASE <= con_id <= MAX_CON_ID for con_id in seen)
    assert not STOCK_CON_IDS & seen.keys()
    assert all(is_option_con_id(con_id) for con_id in seen)
    assert not any(is_option_con_id(con_id) for con_id in STOCK_CON_IDS)


@given(days, listed_strikes, st.sampled_from(Right))
def test_con_id_is_a_function_of_the_fields(day: date, strike: Decimal, right: Right) -> None:
    """The same fields give the same conId; the other right, strike or week another one."""
    expiry = weekly_expiry(day)
    assert expiry is not None
    contract = OptionContract(underlying="TQQQ", expiry=expiry, strike=strike, right=right)
    again = OptionContract(
        underlying="TQQQ", expiry=expiry, strike=Decimal(str(strike)), right=right.value
    )
    assert contract.con_id == again.con_id
    assert OPTION_CON_ID_BASE <= contract.con_id <= MAX_CON_ID
    other_right = Right.PUT if right is Right.CALL else Right.CALL
    assert (
        OptionContract(underlying="TQQQ", expiry=expiry, strike=strike, right=other_right).con_id
        != contract.con_id
    )
    next_week = weekly_expiry(expiry + timedelta(days=7))
    assert next_week is not None
    assert (
        OptionContract(underlying="TQQQ", expiry=next_week, strike=strike, right=right).con_id
        != contract.con_id
    )


def test_chain_lists_its_contracts_and_refuses_others() -> None:
    """A chain resolves its own (expiry, strike, right) and names what it does not list."""
    chain = option_chain("TQQQ", Decimal("50.37"), date(2026, 12, 1), weeks=3, each_side=4)
    assert chain == OptionChain(
        underlying="TQQQ",
        expiries=(date(2026, 12, 4), date(2026, 12, 11), date(2026, 12, 18)),
        strikes=tuple(Decimal(s) for s in range(46, 55)),
    )
    assert chain.trading_class == "TQQQ"
    assert chain.contract(date(2026, 12, 4), Decimal(50), "C") == tqqq(date(2026, 12, 4), "50")
    assert len(list(chain.contracts())) == 3 * 9 * 2
    with pytest.raises(OptionError, match=r"expiry: TQQQ lists no expiry 2026-12-25"):
        chain.contract(date(2026, 12, 25), Decimal(50), "C")
    with pytest.raises(OptionError, match=r"strike: TQQQ lists no strike 60"):
        chain.contract(date(2026, 12, 4), Decimal(60), "C")


# --- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"strike": Decimal(-50)}, r"strike: -50 is not a listed strike"),
        ({"strike": Decimal("50.5")}, r"strike: 50.5 is not a listed strike"),
        ({"strike": Decimal(10_000)}, r"strike: 10000 is not a listed strike"),
        ({"strike": "fifty"}, r"strike: not a number: 'fifty'"),
        ({"strike": 50.0}, r"strike: a Decimal, int or numeric string, got 50.0"),
        ({"right": "X"}, r"right: an option right is 'C' or 'P', got 'X'"),
        ({"expiry": date(2026, 12, 3)}, r"expiry: 2026-12-03 \(Thursday\) is not an expiry"),
        ({"expiry": date(2027, 3, 26)}, r"expiry: 2027-03-26 \(Friday\) is not an expiry"),
        ({"expiry": datetime(2026, 12, 4, 16)}, r"expiry: a date \(not a datetime\)"),
        ({"expiry": date(1999, 12, 31)}, r"expiry: 1999-12-31 is outside the listed range"),
        ({"underlying": "tqqq"}, r"underlying: a symbol of 1 to 6 capitals"),
        ({"underlying": "TOOLONGX"}, r"underlying: a symbol of 1 to 6 capitals"),
        ({"multiplier": 10}, r"multiplier: the sim lists 100, got 10"),
        ({"exchange": "CBOE"}, r"exchange: the sim lists options on SMART, got 'CBOE'"),
        ({"currency": "EUR"}, r"currency: the sim lists USD options, got 'EUR'"),
        ({"trading_class": "TQQ"}, r"trading_class: 'TQQ', the sim lists 'TQQQ'"),
    ],
)
def test_bad_contract_fields_are_named(fields: dict[str, object], message: str) -> None:
    """A contract the sim does not list is refused with the field and the value."""
    args: dict[str, object] = {
        "underlying": "TQQQ",
        "expiry": date(2026, 12, 4),
        "strike": Decimal(50),
        "right": "C",
    }
    args.update(fields)
    with pytest.raises(OptionError, match=message):
        OptionContract(**args)  # type: ignore[arg-type]


def test_bad_chain_arguments_are_named() -> None:
    """Expiry, strike and chain functions name the argument they refuse."""
    with pytest.raises(OptionError, match=r"weeks: a number of weeks >= 1, got 0"):
        expiries(date(2026, 12, 1), weeks=0)
    with pytest.raises(OptionError, match=r"as_of: a date \(not a datetime\)"):
        expiries(datetime(2026, 12, 1, 10), weeks=2)
    with pytest.raises(OptionError, match=r"min_days: a number of days >= 0, got -1"):
        nearest_expiry(date(2026, 12, 1), min_days=-1)
    with pytest.raises(OptionError, match=r"month: 1..12, got 13"):
        monthly_expiry(2026, 13)
    with pytest.raises(OptionError, match=r"months: a number of months >= 1, got 0"):
        monthly_expiries(date(2026, 12, 1), months=0)
    with pytest.raises(OptionError, match=r"price: a positive finite Decimal, got Decimal\('-1'\)"):
        strike_near(Decimal(-1))
    with pytest.raises(OptionError, match=r"price: a positive finite Decimal, got 50.0"):
        strike_near(50.0)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match=r"offset: -5 strikes from 1.5 .* runs off the ladder"):
        strike_near(Decimal("1.4"), -5)
    with pytest.raises(OptionError, match=r"reference price: a positive finite Decimal"):
        strike_grid(Decimal("NaN"), each_side=2)
    with pytest.raises(OptionError, match=r"each_side: a number of strikes >= 0, got -1"):
        strike_grid(Decimal(50), each_side=-1)
    with pytest.raises(OptionError, match=r"underlying: a symbol of 1 to 6 capitals"):
        option_chain("", Decimal(50), date(2026, 12, 1), weeks=1, each_side=1)
    with pytest.raises(OptionError, match=r"right: an option right is 'C' or 'P', got 'X'"):
        strike_near(Decimal(50), 1, right="X")
