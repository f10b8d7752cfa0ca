"""Bad ticks never reach a strategy (SPEC section 11): dropped, counted by reason."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain import PriceTick, Quote
from actors.ticks import TickGuard


def tick(price: str, at: int = 0, symbol: str = "TQQQ") -> PriceTick:
    return PriceTick(symbol=symbol, price=Decimal(price), ts_event_ns=at)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (tick("NaN"), "non-finite"),
        (tick("Infinity"), "non-finite"),
        (tick("0"), "non-positive"),
        (tick("-1.5"), "non-positive"),
        (tick("50", symbol="QQQ"), "foreign"),
        (Quote(symbol="TQQQ", bid=Decimal("50.02"), ask=Decimal("50.01")), "crossed"),
    ],
)
def test_a_bad_tick_is_dropped_and_counted_by_reason(bad: PriceTick | Quote, reason: str) -> None:
    """Each kind of bad tick is refused and counted under its reason."""
    guard = TickGuard(symbol="TQQQ")
    assert not guard.admit(bad)
    assert guard.dropped == {reason: 1}
    assert guard.accepted == 0


def test_out_of_order_and_stale_ticks_are_dropped() -> None:
    """A tick older than the last accepted one, or older than the staleness limit, is dropped."""
    guard = TickGuard(symbol="TQQQ", stale_after_ns=5_000)
    assert guard.admit(tick("50", at=10_000), now_ns=11_000)
    assert not guard.admit(tick("50.01", at=9_000), now_ns=11_000)
    assert not guard.admit(tick("50.02", at=10_500), now_ns=20_000)
    assert guard.admit(tick("50.03", at=10_500), now_ns=12_000)
    assert guard.dropped == {"out-of-order": 1, "stale": 1}


@given(st.decimals(allow_nan=True, allow_infinity=True))
def test_only_finite_positive_prices_pass(price: Decimal) -> None:
    """Whatever the value, the gate admits it exactly when it is a finite positive price."""
    guard = TickGuard(symbol="TQQQ")
    admitted = guard.admit(PriceTick(symbol="TQQQ", price=price))
    assert admitted == (price.is_finite() and price > 0)
