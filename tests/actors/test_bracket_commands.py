"""The bracket and modify commands below the host: ``PlaceBracket``'s checks of its legs, the
lot-keeper committing a bracket's legs all or none and amending an intent before a change is
sent (real LMDB), and the position guard counting a bracket's exits once, for what the entry
bought."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import msgspec
import pytest

from actors import ledger
from actors.domain import (
    BracketError,
    BrokerOrder,
    BrokerPosition,
    BrokerSnapshot,
    ModifyOrder,
    PlaceBracket,
    PlaceOrder,
    Side,
    TimeInForce,
)
from actors.exposure import SellBook
from actors.lot_keeper import (
    AmendIntent,
    CommitBracket,
    CommitIntent,
    LedgerState,
    LoadLedger,
    Refused,
)

from .test_lot_keeper import fill, tree

pytestmark = pytest.mark.anyio
P = "probe:TQQQ:"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def leg(tag: str, side: Side, quantity: int = 10, **fields: Any) -> PlaceOrder:
    return PlaceOrder(
        ref=f"{P}{tag}:1",
        symbol="TQQQ",
        side=side,
        quantity=quantity,
        limit=fields.pop("limit", Decimal("50.00")),
        tif=TimeInForce.GTC,
        **fields,
    )


def bracket(quantity: int = 10, tag: str = "b") -> PlaceBracket:
    parent = f"{P}{tag}.entry:1"
    return PlaceBracket(
        entry=leg(f"{tag}.entry", Side.BUY, quantity),
        take_profit=leg(
            f"{tag}.tp", Side.SELL, quantity, limit=Decimal("51.00"), parent=parent, oca=tag
        ),
        stop_loss=leg(
            f"{tag}.sl",
            Side.SELL,
            quantity,
            limit=None,
            stop=Decimal("49.00"),
            parent=parent,
            oca=tag,
        ),
    )


def test_order_types_follow_from_the_prices() -> None:
    assert leg("a", Side.BUY).order_type == "LMT"
    assert leg("a", Side.BUY, limit=None).order_type == "MKT"
    assert leg("a", Side.SELL, limit=None, stop=Decimal(49)).order_type == "STP"
    assert leg("a", Side.SELL, stop=Decimal(49)).order_type == "STP LMT"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"take_profit": {"quantity": 5}}, "take_profit is for 5, the entry for 10"),
        ({"stop_loss": {"stop": None}}, "stop_loss has no stop price"),
        ({"stop_loss": {"oca": "other"}}, "the exits are in two OCA groups"),
        ({"take_profit": {"side": Side.BUY}}, "take_profit must be on the other side"),
        ({"take_profit": {"parent": "x"}}, "take_profit's parent is 'x'"),
        ({"take_profit": {"limit": None}}, "take_profit must be a limit order, not MKT"),
        ({"entry": {"oca": "b"}}, "the entry must be a plain limit or market order"),
        ({"take_profit": {"symbol": "QQQ"}}, "take_profit is for QQQ"),
        ({"stop_loss": {"ref": "grid:TQQQ:x:1"}}, "one strategy's orders, one route"),
    ],
)
def test_a_bracket_whose_legs_do_not_make_one_is_refused_naming_the_leg(
    change: dict[str, dict[str, Any]], says: str
) -> None:
    good = bracket()
    legs = {name: getattr(good, name) for name in ("entry", "take_profit", "stop_loss")}
    for name, fields in change.items():
        legs[name] = attrs.evolve(legs[name], **fields)
    with pytest.raises(BracketError, match=f"bracket {P}b.entry:1: .*{says}"):
        PlaceBracket(**legs)


def test_an_intent_written_before_stops_and_brackets_existed_still_reads() -> None:
    """A ledger record of the previous shape (no stop, parent, oca) decodes with their
    defaults: ledgers written before still open."""
    old = (
        b'{"order":{"ref":"grid:TQQQ:L1.BUY.2:1","symbol":"TQQQ","side":"BUY","quantity":95,'
        b'"limit":"99.00","tif":"GTC","outside_rth":true,"condition":null},"created_ns":1,'
        b'"origin":"strategy","dry":false}'
    )
    record = msgspec.json.decode(old, type=ledger.IntentRecord)
    assert (record.order.stop, record.order.parent, record.order.oca) == (None, None, None)
    assert record.order.order_type == "LMT"


async def test_a_brackets_legs_are_committed_together_or_not_at_all(tmp_path: Path) -> None:
    root, keeper = tree(tmp_path)
    good = bracket()
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        assert await keeper.ref.request(CommitBracket(bracket=good), timeout=10) is True
        assert await keeper.ref.request(CommitBracket(bracket=good), timeout=10) is False
        # A second bracket one of whose legs reuses a committed ref: none of it is written.
        other = bracket(tag="c")
        clash = attrs.evolve(other, stop_loss=attrs.evolve(other.stop_loss, ref=good.stop_loss.ref))
        reply = await keeper.ref.request(CommitBracket(bracket=clash), timeout=10)
        assert isinstance(reply, Refused)
        state: LedgerState = await keeper.ref.request(LoadLedger(symbol="TQQQ"), timeout=10)
        root.stop()
    assert sorted(i.ref for i in state.intents) == sorted(leg.ref for leg in good.legs)
    (sl,) = [i for i in state.intents if i.ref == good.stop_loss.ref]
    assert (sl.order.stop, sl.order.parent, sl.order.oca) == (Decimal("49.00"), good.entry.ref, "b")


async def test_an_intent_is_amended_as_a_change_says_and_a_bad_change_is_refused(
    tmp_path: Path,
) -> None:
    root, keeper = tree(tmp_path)
    buy = leg("buy", Side.BUY, 10)
    ask = keeper.ref.request
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await ask(CommitIntent(order=buy), timeout=10)
        await ask(fill(buy.ref, "e1", 4, "50.00"), timeout=10)
        change = ModifyOrder(ref=buy.ref, quantity=8, limit=Decimal("50.25"))
        assert await ask(AmendIntent(change=change), timeout=10) is True
        assert await ask(AmendIntent(change=change), timeout=10) is False
        below = await ask(AmendIntent(change=attrs.evolve(change, quantity=3)), timeout=10)
        retyped = await ask(AmendIntent(change=attrs.evolve(change, limit=None)), timeout=10)
        unknown = await ask(AmendIntent(change=attrs.evolve(change, ref=f"{P}x:1")), timeout=10)
        state: LedgerState = await ask(LoadLedger(symbol="TQQQ"), timeout=10)
        root.stop()
    assert isinstance(below, Refused)
    assert "4 already filled" in below.reason
    assert isinstance(retyped, Refused)
    assert "LMT order: a change cannot make it MKT" in retyped.reason
    assert isinstance(unknown, Refused)
    assert "no intent" in unknown.reason
    (intent,) = state.intents
    assert (intent.order.quantity, intent.order.limit) == (8, Decimal("50.25"))


def test_a_brackets_exits_offer_once_and_only_what_the_entry_bought() -> None:
    """Two exits of 10 in one group offer nothing before the entry fills, then what it
    bought, never 20; a plain sell beside them is refused beyond the position."""
    book = SellBook(position=5)
    good = bracket()
    book.bracket(good.entry.ref, [good.take_profit.ref, good.stop_loss.ref], "b", 10)
    assert book.offered == 0
    assert book.refuses(5) is None
    book.filled(good.entry.ref, Side.BUY, 6)
    assert (book.position, book.offered) == (11, 6)
    assert book.refuses(5) is None
    assert book.refuses(6) is not None
    book.filled(good.entry.ref, Side.BUY, 4)
    assert (book.position, book.offered) == (15, 10)
    book.filled(good.take_profit.ref, Side.SELL, 3)
    assert (book.position, book.offered) == (12, 7)
    book.filled(good.take_profit.ref, Side.SELL, 7)
    assert (book.position, book.offered) == (5, 0)
    book.gone(good.stop_loss.ref)
    assert book.groups == {}
    assert book.refuses(5) is None


def test_the_book_from_a_snapshot_counts_a_brackets_exits_as_one() -> None:
    """After a restart: the snapshot's working exits (parent and group on them) offer what
    their entry filled less what the group sold; an excess cancels a plain sell, never the
    exits first."""
    good = bracket()
    snapshot = BrokerSnapshot(
        orders=(
            BrokerOrder(order=good.entry, filled=10, working=False),
            BrokerOrder(order=good.take_profit, filled=2, working=True),
            BrokerOrder(order=good.stop_loss, filled=0, working=True),
            BrokerOrder(order=leg("plain", Side.SELL, 4), filled=0, working=True),
        ),
        positions=(BrokerPosition(symbol="TQQQ", quantity=8, average_cost=Decimal(50)),),
    )
    book = SellBook.from_snapshot(snapshot, "TQQQ", lambda ref: ref.startswith(P))
    assert book.offered == 8 + 4
    assert book.excess(keep=(), cancelling=()) == [f"{P}plain:1"]
