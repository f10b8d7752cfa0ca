"""The position guard (``actors.exposure.SellBook``): whatever the ledger believes, the sells it
lets through never take the broker's position below zero."""

from __future__ import annotations

from decimal import Decimal

import attrs
from hypothesis import given
from hypothesis import strategies as st

from actors.domain import BrokerOrder, BrokerPosition, BrokerSnapshot, PlaceOrder, Side, TimeInForce
from actors.exposure import SellBook


def order(
    ref: str, side: Side, quantity: int, *, filled: int = 0, working: bool = True
) -> BrokerOrder:
    placed = PlaceOrder(
        ref=ref,
        symbol="TQQQ",
        side=side,
        quantity=quantity,
        limit=Decimal("50.00"),
        tif=TimeInForce.GTC,
    )
    return BrokerOrder(order=placed, filled=filled, working=working)


def ours(ref: str) -> bool:
    return ref.startswith("grid:TQQQ:")


def test_the_book_counts_every_working_sell_at_the_broker_ours_and_the_operators() -> None:
    """From a snapshot: our working sells by ref (what is left of them), the operator's in a
    sum, done orders and buys not at all."""
    snapshot = BrokerSnapshot(
        orders=(
            order("grid:TQQQ:L0:SELL:1:1", Side.SELL, 94, filled=10),
            order("grid:TQQQ:L1:SELL:2:1", Side.SELL, 95, working=False),
            order("grid:TQQQ:L2:BUY:3:1", Side.BUY, 96),
            order("ib:9:7", Side.SELL, 30),
        ),
        positions=(BrokerPosition(symbol="TQQQ", quantity=200, average_cost=Decimal("50")),),
    )
    book = SellBook.from_snapshot(snapshot, "TQQQ", ours)
    assert book.working == {"grid:TQQQ:L0:SELL:1:1": 84}
    assert book.foreign == 30
    assert book.headroom == 200 - 84 - 30


def test_a_sell_the_position_does_not_cover_is_refused_until_the_cancel_is_confirmed() -> None:
    """A stale sell being cancelled still counts: a new sell for the same shares waits for the
    broker to confirm the cancel (else both could fill and the position go short)."""
    book = SellBook(position=94, working={"grid:TQQQ:L0:SELL:380:1": 94})
    assert book.refuses(94) is not None
    assert "holds 94" in (book.refuses(94) or "")
    book.gone("grid:TQQQ:L0:SELL:380:1")
    assert book.refuses(94) is None
    book.sent("grid:TQQQ:L0:SELL:381:2", 94)
    assert book.refuses(1) is not None


def test_fills_move_the_position_and_what_a_sell_still_offers() -> None:
    """A buy fill adds shares; a sell fill removes them from the position and from its sell."""
    book = SellBook(position=0)
    book.filled("grid:TQQQ:L0:BUY:1:1", Side.BUY, 94)
    book.sent("grid:TQQQ:L0:SELL:1:1", 94)
    book.filled("grid:TQQQ:L0:SELL:1:1", Side.SELL, 40)
    assert (book.position, book.working) == (54, {"grid:TQQQ:L0:SELL:1:1": 54})
    book.filled("grid:TQQQ:L0:SELL:1:1", Side.SELL, 54)
    assert (book.position, book.working, book.headroom) == (0, {}, 0)


def test_excess_sells_are_given_up_newest_first_and_the_strategys_own_last() -> None:
    """Sells offering 3 x 94 against a position of 94: the two not kept go, newest first (by
    the broker's order ids in the snapshot, then in the order sent); sells already being
    cancelled count as gone."""
    snapshot = BrokerSnapshot(
        orders=tuple(
            attrs.evolve(order(ref, Side.SELL, 94), order_id=order_id)
            for ref, order_id in (("grid:TQQQ:L1:SELL:7:1", 12), ("grid:TQQQ:L0:SELL:5:1", 11))
        ),
        positions=(BrokerPosition(symbol="TQQQ", quantity=94, average_cost=Decimal("50")),),
    )
    book = SellBook.from_snapshot(snapshot, "TQQQ", ours)
    book.sent("grid:TQQQ:L2:SELL:9:1", 94)
    book.position = 94
    assert book.excess(keep={"grid:TQQQ:L2:SELL:9:1"}, cancelling=()) == [
        "grid:TQQQ:L1:SELL:7:1",
        "grid:TQQQ:L0:SELL:5:1",
    ]
    assert book.excess(keep=(), cancelling={"grid:TQQQ:L2:SELL:9:1"}) == ["grid:TQQQ:L1:SELL:7:1"]
    assert SellBook(position=94, working={"grid:TQQQ:L0:SELL:5:1": 94}).excess((), ()) == []


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, int, int]]:
    """What happens at a broker: buys filling, sells asked for (any size: the ledger may be
    wrong), sells filling (at most what is left of them) and sells cancelled."""
    return draw(
        st.lists(
            st.tuples(
                st.sampled_from(["buy-fill", "sell", "sell-fill", "cancel"]),
                st.integers(min_value=0, max_value=5),
                st.integers(min_value=1, max_value=300),
            ),
            max_size=60,
        )
    )


@given(
    start=st.integers(min_value=0, max_value=500),
    resting=st.lists(st.integers(min_value=1, max_value=300), max_size=4),
    history=histories(),
)
def test_sells_the_book_lets_through_never_take_the_position_below_zero(
    start: int, resting: list[int], history: list[tuple[str, int, int]]
) -> None:
    """Model a broker: sells (already resting ones included, which may offer more than the
    position, as after a broker lost state) are placed only as the book allows once the
    excess is cancelled, fill at most their rest: the position never goes below zero."""
    position = start
    working: dict[str, int] = {f"grid:TQQQ:L0:SELL:{i}:1": n for i, n in enumerate(resting)}
    book = SellBook(position=position, working=dict(working))
    for ref in book.excess(keep=(), cancelling=()):
        del working[ref]  # the cancels reach the broker before anything else
        book.gone(ref)
    sent = 0
    for what, which, quantity in history:
        refs = sorted(working)
        match what:
            case "buy-fill":
                position += quantity
                book.filled("grid:TQQQ:L0:BUY:0:1", Side.BUY, quantity)
            case "sell":
                if book.refuses(quantity) is None:
                    sent += 1
                    ref = f"grid:TQQQ:L0:SELL:{100 + sent}:1"
                    working[ref] = quantity
                    book.sent(ref, quantity)
            case "sell-fill" if refs:
                ref = refs[which % len(refs)]
                done = min(quantity, working[ref])
                position -= done
                working[ref] -= done
                if not working[ref]:
                    del working[ref]
                book.filled(ref, Side.SELL, done)
            case "cancel" if refs:
                ref = refs[which % len(refs)]
                del working[ref]
                book.gone(ref)
        assert position >= 0
        assert sum(working.values()) <= position
        assert book.position == position
