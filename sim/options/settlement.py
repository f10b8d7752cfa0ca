"""What an option position becomes at the close of its expiration day (docs/options-venue.md,
*Expiry*): exercised or assigned into shares of the underlying at the strike when in the money
by at least OCC's auto-exercise threshold, worthless otherwise.

Pure functions of their arguments; the engine (``sim.engine``) books the legs as executions.
"""

from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal

import attrs

from actors.domain import Side
from actors.domain.sessions import NEW_YORK

from .chain import OptionContract, Right
from .pricing import EXPIRY_CLOSE, PENNY

EXERCISE_THRESHOLD = PENNY
"""OCC's exercise by exception: an option in the money by at least $0.01 at expiry is
exercised (a long one) or assigned (a short one) unless its holder says otherwise."""


class Outcome(enum.StrEnum):
    """How a position ended: the first word of its executions' refs (``exercise:<OCC>``)."""

    EXERCISE = "exercise"
    ASSIGNMENT = "assignment"
    EXPIRY = "expiry"


@attrs.frozen(kw_only=True)
class Leg:
    """One execution of a settlement: ``quantity`` of ``symbol`` (contracts of the option at
    price 0 with its multiplier, or shares of the underlying at the strike)."""

    symbol: str
    side: Side
    quantity: int
    price: Decimal
    multiplier: int = 1


@attrs.frozen(kw_only=True)
class Settlement:
    contract: OptionContract
    outcome: Outcome
    legs: tuple[Leg, ...]

    @property
    def ref(self) -> str:
        """``<outcome>:<OCC symbol>``, the ref of every leg's execution."""
        return f"{self.outcome}:{self.contract.local_symbol}"


def expiry_close(contract: OptionContract) -> datetime:
    """The moment ``contract`` expires: 16:00 New York on its expiration day."""
    return datetime.combine(contract.expiry, EXPIRY_CLOSE, tzinfo=NEW_YORK)


def in_the_money(contract: OptionContract, underlying_price: Decimal) -> bool:
    """Whether the option is worth exercising at ``underlying_price`` by OCC's threshold."""
    if contract.right is Right.CALL:
        intrinsic = underlying_price - contract.strike
    else:
        intrinsic = contract.strike - underlying_price
    return intrinsic >= EXERCISE_THRESHOLD


def settle(contract: OptionContract, quantity: int, underlying_price: Decimal | None) -> Settlement:
    """The settlement of a position of ``quantity`` contracts (negative: short) at expiry,
    with the underlying's last trade at or before the close at ``underlying_price`` (None: it
    never traded, and the option is taken to expire worthless).

    The option leg closes the position at 0. In the money, a long call buys and a long put
    sells ``multiplier`` shares a contract at the strike (exercise); a short call sells and a
    short put buys them (assignment)."""
    if quantity == 0:
        raise ValueError(f"settle: no position in {contract.local_symbol} to settle")
    contracts = abs(quantity)
    long = quantity > 0
    option_leg = Leg(
        symbol=contract.local_symbol,
        side=Side.SELL if long else Side.BUY,
        quantity=contracts,
        price=Decimal(0),
        multiplier=contract.multiplier,
    )
    if underlying_price is None or not in_the_money(contract, underlying_price):
        return Settlement(contract=contract, outcome=Outcome.EXPIRY, legs=(option_leg,))
    buys_shares = (contract.right is Right.CALL) == long
    stock_leg = Leg(
        symbol=contract.underlying,
        side=Side.BUY if buys_shares else Side.SELL,
        quantity=contracts * contract.multiplier,
        price=contract.strike,
    )
    return Settlement(
        contract=contract,
        outcome=Outcome.EXERCISE if long else Outcome.ASSIGNMENT,
        legs=(option_leg, stock_leg),
    )
