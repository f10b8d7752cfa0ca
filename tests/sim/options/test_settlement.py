"""sim.options.settlement: what an option position becomes at expiry (properties)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain import Side
from sim.options import OptionContract, Outcome, settle
from sim.options.chain import strike_grid
from sim.options.settlement import expiry_close

EXPIRY = date(2026, 12, 11)
contracts = st.builds(
    lambda strike, right: OptionContract(
        underlying="TQQQ", expiry=EXPIRY, strike=strike, right=right
    ),
    st.sampled_from(strike_grid(Decimal(50), each_side=20)),
    st.sampled_from(["C", "P"]),
)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(200), places=2)
quantities = st.integers(min_value=-50, max_value=50).filter(bool)


@given(contracts, quantities, prices)
def test_the_shares_delivered_are_worth_the_intrinsic_value(
    contract: OptionContract, quantity: int, price: Decimal
) -> None:
    """The stock leg, valued at the underlying's price, is worth the position's intrinsic
    value (x 100 a contract) when in the money by a cent or more; there is no stock leg
    otherwise; the option leg always closes the position at 0."""
    result = settle(contract, quantity, price)
    option_leg, *stock = result.legs
    assert option_leg.symbol == contract.local_symbol
    assert option_leg.quantity == abs(quantity)
    assert option_leg.side is (Side.SELL if quantity > 0 else Side.BUY)
    assert (option_leg.price, option_leg.multiplier) == (0, 100)
    payoff = price - contract.strike if contract.right == "C" else contract.strike - price
    if payoff >= Decimal("0.01"):
        [leg] = stock
        signed = leg.quantity if leg.side is Side.BUY else -leg.quantity
        assert leg.price == contract.strike
        assert signed * (price - contract.strike) == quantity * 100 * payoff
        assert result.outcome is (Outcome.EXERCISE if quantity > 0 else Outcome.ASSIGNMENT)
    else:
        assert stock == []
        assert result.outcome is Outcome.EXPIRY
    assert result.ref == f"{result.outcome}:{contract.local_symbol}"


def test_without_an_underlying_price_the_option_expires_worthless() -> None:
    """An underlying that never traded: no moneyness, no delivery."""
    call = OptionContract(underlying="TQQQ", expiry=EXPIRY, strike=Decimal(1), right="C")
    assert settle(call, 3, None).outcome is Outcome.EXPIRY


def test_no_position_is_an_error() -> None:
    """Settling nothing is a caller's mistake, named."""
    call = OptionContract(underlying="TQQQ", expiry=EXPIRY, strike=Decimal(50), right="C")
    with pytest.raises(ValueError, match="no position"):
        settle(call, 0, Decimal(50))


def test_the_close_is_four_in_new_york() -> None:
    """16:00 America/New_York on the expiry day."""
    call = OptionContract(underlying="TQQQ", expiry=EXPIRY, strike=Decimal(50), right="C")
    assert expiry_close(call).isoformat() == "2026-12-11T16:00:00-05:00"
