"""Prices rounded to the tick, and self-describing orderRefs."""

from __future__ import annotations

import string
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain import DomainError, OrderRef, Side, round_to_tick
from actors.strategies.grid import GridRef

CENT = Decimal("0.01")


def test_the_spec_ladder_rounds_as_written() -> None:
    """100.00 -> 99.00 -> 98.01 -> 97.03 (SPEC section 4)."""
    ladder = [Decimal("100.00")]
    for _ in range(3):
        ladder.append(round_to_tick(ladder[-1] * Decimal("0.99"), CENT))
    assert ladder == [Decimal("100.00"), Decimal("99.00"), Decimal("98.01"), Decimal("97.03")]


def test_halves_round_up() -> None:
    """Half-up, not banker's rounding."""
    assert round_to_tick(Decimal("10.005"), CENT) == Decimal("10.01")
    assert round_to_tick(Decimal("10.015"), CENT) == Decimal("10.02")
    assert round_to_tick(Decimal("10.0049"), CENT) == Decimal("10.00")


@given(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=6),
    st.sampled_from([Decimal("0.01"), Decimal("0.05"), Decimal("0.0001"), Decimal("0.25")]),
)
def test_a_rounded_price_is_a_multiple_of_the_tick_within_half_a_tick(
    value: Decimal, tick: Decimal
) -> None:
    """round_to_tick lands on the tick grid and moves the price by at most half a tick."""
    rounded = round_to_tick(value, tick)
    assert rounded % tick == 0
    assert abs(rounded - value) <= tick / 2


@pytest.mark.parametrize("tick", [Decimal(0), Decimal(-1), Decimal("NaN")])
def test_a_bad_tick_size_is_refused(tick: Decimal) -> None:
    """Tick sizes must be positive."""
    with pytest.raises(DomainError, match="tick size"):
        round_to_tick(Decimal("1.00"), tick)


_segments = st.lists(
    st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=8),
    min_size=1,
    max_size=4,
).map(":".join)


@given(
    st.builds(
        OrderRef,
        strategy=st.sampled_from(["grid", "ma_cross", "options_scalp"]),
        symbol=st.sampled_from(["TQQQ", "QQQ", "BRK.B"]),
        tag=_segments,
        attempt=st.integers(min_value=1, max_value=1000),
    )
)
def test_an_order_ref_parses_back_to_itself(ref: OrderRef) -> None:
    """Any orderRef we write maps back to its strategy, symbol, tag and attempt, and names
    the symbol actor it belongs to."""
    assert OrderRef.parse(str(ref)) == ref
    assert ref.route == f"{ref.strategy}:{ref.symbol}"


@given(
    st.builds(
        GridRef,
        strategy=st.just("grid"),
        symbol=st.sampled_from(["TQQQ", "QQQ", "BRK.B"]),
        level=st.integers(min_value=0, max_value=500),
        side=st.sampled_from(Side),
        lot=st.integers(min_value=1, max_value=10**9),
        attempt=st.integers(min_value=1, max_value=1000),
    )
)
def test_a_grid_ref_is_the_format_the_grid_always_wrote(ref: GridRef) -> None:
    """The grid's tag is L<level>:<side>:<lot>: its refs read as they always did (the orders
    it left at the broker before the Strategy protocol still map back to their lots)."""
    text = str(ref)
    assert text == (f"grid:{ref.symbol}:L{ref.level}:{ref.side.value}:{ref.lot}:{ref.attempt}")
    assert GridRef.parse(text) == ref
    assert OrderRef.parse(text).tag == f"L{ref.level}:{ref.side.value}:{ref.lot}"


@pytest.mark.parametrize(
    "text", ["", "grid:tqqq:L3:BUY:1:1", "grid:TQQQ:L3", "grid:TQQQ::1", "manual", "ib:9:7"]
)
def test_a_foreign_order_ref_is_named_in_the_error(text: str) -> None:
    """Orders that are not ours are recognised as such."""
    with pytest.raises(DomainError, match="not an actortrade orderRef"):
        OrderRef.parse(text)


@pytest.mark.parametrize(
    "text", ["grid:TQQQ:3:BUY:1:1", "grid:TQQQ:L3:HOLD:1:1", "grid:TQQQ:x:1", "grid:TQQQ:L3:BUY:1"]
)
def test_a_ref_of_another_shape_is_not_the_grids(text: str) -> None:
    """Well-formed orderRefs whose tag is not L<level>:<side>:<lot> are not the grid's."""
    with pytest.raises(DomainError, match="not a grid orderRef"):
        GridRef.parse(text)
