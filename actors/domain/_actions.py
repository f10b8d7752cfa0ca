"""Corporate actions: a split rescales what is held and what is working, a dividend pays cash.

The venue (``sim.engine``), the ledger (``actors.ledger``) and the symbol actors apply a split
with these functions, so that all three agree to the last digit on what an order or a fill
became: quantities times the ratio (whole shares only), order prices divided by it and
rounded half-up to the tick, execution prices divided by it exactly (a cost basis keeps its
value: quantity x price is unchanged).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import TypeAlias

import attrs

from ._orders import PlaceOrder, PriceCondition
from ._values import DomainError, round_to_tick

TICK = Decimal("0.01")
"""The tick a split's rescaled order prices are rounded to (the stocks the venue lists)."""


@attrs.frozen(kw_only=True)
class Split:
    """From ``ex_date`` on, each old share of ``symbol`` is ``ratio`` new shares (2 for a
    2-for-1 split, 0.1 for a 1-for-10 reverse split)."""

    symbol: str
    ex_date: date
    ratio: Decimal

    @property
    def id(self) -> str:
        """What names it in the ledger (applied once, whoever asks again)."""
        return f"split:{self.symbol}:{self.ex_date.isoformat()}:{self.ratio}"


@attrs.frozen(kw_only=True)
class Dividend:
    """A holder of ``symbol`` at the close before ``ex_date`` is paid ``amount_per_share``."""

    symbol: str
    ex_date: date
    amount_per_share: Decimal

    @property
    def id(self) -> str:
        return f"dividend:{self.symbol}:{self.ex_date.isoformat()}:{self.amount_per_share}"


CorporateAction: TypeAlias = Split | Dividend


def split_shares(quantity: int, ratio: Decimal, what: str) -> int:
    """``quantity`` shares after a split of ``ratio``; ``DomainError`` naming ``what`` when that
    is not a whole number (a broker pays the fraction in cash: not modelled)."""
    scaled = Decimal(quantity) * ratio
    if scaled != scaled.to_integral_value():
        raise DomainError(
            f"{what}: {quantity} shares split {ratio}:1 make {scaled}, not whole shares "
            "(fractional shares paid in cash are not supported)"
        )
    return int(scaled)


def split_price(price: Decimal, ratio: Decimal) -> Decimal:
    """An execution's price (a cost basis) after a split: exact, unrounded."""
    return price / ratio


def split_order_price(price: Decimal | None, ratio: Decimal) -> Decimal | None:
    """A working order's price after a split, rounded half-up to the tick."""
    return None if price is None else round_to_tick(price / ratio, TICK)


def split_condition(condition: PriceCondition | None, ratio: Decimal) -> PriceCondition | None:
    if condition is None:
        return None
    trigger = split_order_price(condition.trigger, ratio)
    assert trigger is not None
    return attrs.evolve(condition, trigger=trigger)


def split_order(order: PlaceOrder, ratio: Decimal) -> PlaceOrder:
    """``order`` as it stands after a split of ``ratio`` (its quantity, limit, stop and price
    condition rescaled)."""
    return attrs.evolve(
        order,
        quantity=split_shares(order.quantity, ratio, order.ref),
        limit=split_order_price(order.limit, ratio),
        stop=split_order_price(order.stop, ratio),
        condition=split_condition(order.condition, ratio),
    )


def check_ratio(action: Split) -> None:
    if not action.ratio.is_finite() or action.ratio <= 0:
        raise DomainError(f"{action.id}: a split's ratio must be a positive number")
