"""The face's untransmitted orders (``sim.tws.brackets.HeldOrders``) as a state machine: any
forest of held parents and children, released by group or cancelled by order."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from sim.tws.brackets import HeldOrder, HeldOrders
from sim.tws.orders import WireContract, WireOrder
from tests.tws_venue import TQQQ


@st.composite
def forests(draw: st.DrawFn) -> list[int]:
    # parents[i]: the index of order i's parent (an earlier order), or -1 for a root.
    size = draw(st.integers(1, 12))
    return [draw(st.integers(-1, i - 1)) for i in range(size)]


def _held(parents: list[int], client_id: int = 1) -> HeldOrders:
    # Order i has id 10 + i; a child joins its parent's group, as place_order does.
    held = HeldOrders()
    for i, parent in enumerate(parents):
        parent_id = 10 + parent if parent >= 0 else 0
        group = held.group_of(client_id, parent_id) if parent_id else None
        wire = WireOrder(
            order_id=10 + i,
            contract=WireContract(con_id=TQQQ.con_id),
            action="BUY",
            total_quantity=Decimal(1),
            order_type="LMT",
            lmt_price=Decimal(1),
            aux_price=None,
            tif="DAY",
            transmit=False,
            parent_id=parent_id,
        )
        held.hold(
            HeldOrder(
                client_id=client_id,
                wire=wire,
                fields=(),
                server_version=176,
                instrument=TQQQ,
                group=group if group is not None else 10 + i,
            )
        )
    return held


def _root(parents: list[int], i: int) -> int:
    while parents[i] >= 0:
        i = parents[i]
    return i


def _descendants(parents: list[int], i: int) -> set[int]:
    found = {i}
    for j in range(i + 1, len(parents)):
        if parents[j] in found:
            found.add(j)
    return found


@given(forests(), st.data())
def test_a_release_takes_its_whole_group_in_placing_order_and_nothing_else(
    parents: list[int], data: st.DataObject
) -> None:
    """A group is a root and every order under it; released, they come oldest first."""
    held = _held(parents)
    root = _root(parents, data.draw(st.integers(0, len(parents) - 1)))
    released = [h.order_id for h in held.release(1, 10 + root)]
    group = [i for i in range(len(parents)) if _root(parents, i) == root]
    assert released == [10 + i for i in group]
    assert [h.order_id for h in held.of(1)] == [
        10 + i for i in range(len(parents)) if i not in group
    ]


@given(forests(), st.data())
def test_a_cancel_takes_the_order_and_everything_under_it(
    parents: list[int], data: st.DataObject
) -> None:
    """A held parent's cancel takes its held children, and theirs; other clients' and other
    orders stay."""
    held = _held(parents)
    other = _held([-1], client_id=2)
    for order in other.of():
        held.hold(order)
    i = data.draw(st.integers(0, len(parents) - 1))
    dropped = {h.order_id for h in held.cancel(1, 10 + i)}
    assert dropped == {10 + j for j in _descendants(parents, i)}
    assert {h.order_id for h in held.of(1)} == {
        10 + j for j in range(len(parents)) if 10 + j not in dropped
    }
    assert [h.client_id for h in held.of(2)] == [2]
    assert held.cancel(1, 10 + i) == []
