"""What the TWS face answers a whatIf placeOrder with: the margin and equity before the order,
its change, and after, and its commission, as IB's OrderState carries them. Nothing is placed.

The venue's rules (a cash-and-margin account on IBKR's fixed pricing):

* stocks, Reg-T: initial margin 50% of the position's value, maintenance 25% of a long
  position's value and 30% of a short one's;
* a long option: its premium (price x multiplier x contracts), initial and maintenance alike;
* a short option, Reg-T: per contract, the premium plus the larger of 20% of the underlying's
  value less what the option is out of the money and 10% of the underlying's value (a call) or
  of the strike's (a put), times the multiplier, initial and maintenance alike;
* commissions: stocks $0.005 a share, at least $1.00 and at most 1% of the value; options $0.65
  a contract, at least $1.00. The venue knows its commission exactly, so the minimum and maximum
  IB sends are the commission too.

Equity with loan value is cash plus the positions' value; an order changes it by its commission
only (the cash paid is the value bought).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import attrs

from sim.options import OptionContract, Right

from .orders import WireOrderState

INITIAL = Decimal("0.50")
MAINTENANCE_LONG = Decimal("0.25")
MAINTENANCE_SHORT = Decimal("0.30")
SHORT_OPTION_RATE = Decimal("0.20")
SHORT_OPTION_FLOOR = Decimal("0.10")
PER_SHARE = Decimal("0.005")
PER_CONTRACT = Decimal("0.65")
MINIMUM = Decimal("1.00")
MAXIMUM_RATE = Decimal("0.01")


@attrs.frozen(kw_only=True)
class Holding:
    """A position (shares or contracts, negative when short) valued at ``price`` (a share's, or
    an option's premium per share). ``option`` and ``underlying_price`` for an option."""

    quantity: int
    price: Decimal
    option: OptionContract | None = None
    underlying_price: Decimal | None = None

    @property
    def multiplier(self) -> int:
        return self.option.multiplier if self.option is not None else 1

    @property
    def value(self) -> Decimal:
        return self.quantity * self.price * self.multiplier


def margin(holding: Holding) -> tuple[Decimal, Decimal]:
    """The (initial, maintenance) margin ``holding`` needs."""
    quantity = holding.quantity
    if quantity == 0:
        return Decimal(0), Decimal(0)
    option = holding.option
    if option is None:
        value = abs(quantity) * holding.price
        maintenance = MAINTENANCE_LONG if quantity > 0 else MAINTENANCE_SHORT
        return value * INITIAL, value * maintenance
    premium = abs(quantity) * holding.price * option.multiplier
    if quantity > 0:
        return premium, premium
    underlying = holding.underlying_price if holding.underlying_price is not None else Decimal(0)
    if option.right is Right.CALL:
        out_of_the_money = max(option.strike - underlying, Decimal(0))
        floor = SHORT_OPTION_FLOOR * underlying
    else:
        out_of_the_money = max(underlying - option.strike, Decimal(0))
        floor = SHORT_OPTION_FLOOR * option.strike
    each = max(SHORT_OPTION_RATE * underlying - out_of_the_money, floor) * option.multiplier
    required = premium + each * abs(quantity)
    return required, required


def commission(quantity: int, price: Decimal, option: OptionContract | None) -> Decimal:
    """IBKR's fixed commission on an order of ``quantity`` shares or contracts at ``price``."""
    if option is not None:
        return max(PER_CONTRACT * quantity, MINIMUM)
    return min(max(PER_SHARE * quantity, MINIMUM), MAXIMUM_RATE * quantity * price).quantize(
        Decimal("0.01")
    )


def what_if(
    *,
    cash: Decimal,
    others: Iterable[Holding],
    before: Holding,
    bought: int,
) -> WireOrderState:
    """The OrderState of a whatIf order that buys ``bought`` (sells, when negative) of the
    holding ``before`` (its position now, at the order's price), with the account's ``cash``
    and its ``others`` holdings."""
    others = list(others)
    after = attrs.evolve(before, quantity=before.quantity + bought)
    fee = commission(abs(bought), before.price, before.option)
    base_initial = sum((margin(h)[0] for h in others), Decimal(0))
    base_maintenance = sum((margin(h)[1] for h in others), Decimal(0))
    equity_before = cash + sum((h.value for h in others), Decimal(0)) + before.value
    init_before, maint_before = margin(before)
    init_after, maint_after = margin(after)
    init_before += base_initial
    maint_before += base_maintenance
    init_after += base_initial
    maint_after += base_maintenance
    equity_after = equity_before - fee
    return WireOrderState(
        status="PreSubmitted",
        init_margin_before=_money(init_before),
        maint_margin_before=_money(maint_before),
        equity_with_loan_before=_money(equity_before),
        init_margin_change=_money(init_after - init_before),
        maint_margin_change=_money(maint_after - maint_before),
        equity_with_loan_change=_money(equity_after - equity_before),
        init_margin_after=_money(init_after),
        maint_margin_after=_money(maint_after),
        equity_with_loan_after=_money(equity_after),
        commission=float(fee),
        min_commission=float(fee),
        max_commission=float(fee),
        commission_currency="USD",
    )


def _money(value: Decimal) -> str:
    return f"{value:.2f}"
