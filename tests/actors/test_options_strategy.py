"""The options strategy alone (pure: facts and events in, commands out): rebuilt from the
ledger's facts after a restart, it keeps a held position protected (a missing exit placed
again), treats an exit working while nothing is held as an orphan (not live: its host cancels
it), closes before the expiry, and fails closed when a close cannot be placed."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from actors.domain import (
    Bar,
    CancelOrder,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    Side,
    TimeInForce,
)
from actors.domain.sessions import NEW_YORK
from actors.ledger import FillRecord, IntentRecord
from actors.messages import Alert
from actors.strategies.options import OptionsKind, OptionsParams, OptionsView
from actors.strategies.protocol import BarClosed, Facts

OPTION = "SPY   261211C00600000"
GROUP = "scalp:SPY:S202612071535"


def leg(
    name: str, side: Side, *, attempt: int = 1, quantity: int = 2, **fields: object
) -> PlaceOrder:
    return PlaceOrder(
        ref=f"scalp:SPY:S202612071535:{name}:{attempt}",
        symbol=OPTION,
        side=side,
        quantity=quantity,
        tif=TimeInForce.GTC if side is Side.SELL else TimeInForce.DAY,
        outside_rth=False,
        **fields,  # type: ignore[arg-type]
    )


ENTRY = leg("entry", Side.BUY, limit=Decimal("10.00"))
TP = leg("tp", Side.SELL, limit=Decimal("11.00"), parent=ENTRY.ref, oca=GROUP)
SL = leg("sl", Side.SELL, limit=None, stop=Decimal("9.00"), parent=ENTRY.ref, oca=GROUP)


def facts(*, fills: dict[str, int], working: set[str], extra: tuple[PlaceOrder, ...] = ()) -> Facts:
    intents = tuple(
        IntentRecord(order=order, created_ns=i) for i, order in enumerate((ENTRY, TP, SL, *extra))
    )
    records = tuple(
        FillRecord(
            exec_id=f"x{i}",
            ref=ref,
            quantity=quantity,
            price=Decimal("10.00"),
            commission=None,
            seq=i,
        )
        for i, (ref, quantity) in enumerate(fills.items(), 1)
    )
    return Facts(intents=intents, fills=records, working=frozenset(working), placed_at={}, now=0.0)


KIND = OptionsKind(OptionsParams(symbol="SPY"))


def test_a_missing_exit_is_placed_again_after_a_restart() -> None:
    strategy = KIND.restore(facts(fills={ENTRY.ref: 2}, working={TP.ref}))
    commands = strategy.resync(0.0)
    placed = [c for c in commands if isinstance(c, PlaceOrder)]
    assert len(placed) == 1
    sl = placed[0]
    assert sl.ref == "scalp:SPY:S202612071535:sl:2"
    assert (sl.side, sl.quantity, sl.stop, sl.oca, sl.parent) == (
        Side.SELL,
        2,
        Decimal("9.00"),
        GROUP,
        None,
    )
    assert {o.ref for o in strategy.live_orders()} == {TP.ref, sl.ref}


def test_an_exit_working_when_nothing_is_held_is_not_live() -> None:
    """The take-profit filled and the OCA cancel of the stop was lost: the stop still works
    at the broker. Rebuilt, the strategy is flat and does not count it, so its host cancels
    it as an order the ledger says is done; nothing is placed."""
    strategy = KIND.restore(facts(fills={ENTRY.ref: 2, TP.ref: 2}, working={SL.ref}))
    assert strategy.live_orders() == []
    assert strategy.resync(0.0) == []
    view = strategy.view()
    assert isinstance(view, OptionsView)
    assert view.state == "flat"
    assert strategy.realized == 0  # bought and sold at 10.00 in this fixture


def test_a_partly_filled_entry_keeps_its_exits_for_what_it_bought() -> None:
    strategy = KIND.restore(facts(fills={ENTRY.ref: 1}, working={TP.ref, SL.ref}))
    assert strategy.resync(0.0) == []
    assert [p.shares for p in strategy.positions()] == [1]
    assert {o.ref for o in strategy.live_orders()} == {TP.ref, SL.ref}


def test_an_entry_still_working_after_a_restart_keeps_its_bracket() -> None:
    strategy = KIND.restore(facts(fills={}, working={ENTRY.ref, TP.ref, SL.ref}))
    assert {o.ref for o in strategy.live_orders()} == {ENTRY.ref, TP.ref, SL.ref}
    view = strategy.view()
    assert isinstance(view, OptionsView)
    assert view.state == "entering"


def _bar(at: datetime) -> BarClosed:
    price = Decimal("600.00")
    bar = Bar(symbol="SPY", start=at, open=price, high=price, low=price, close=price, volume=10)
    return BarClosed(bar=bar, seconds=60)


def test_a_held_option_is_closed_before_its_expiry() -> None:
    strategy = KIND.restore(facts(fills={ENTRY.ref: 2}, working={TP.ref, SL.ref}))
    friday = datetime(2026, 12, 11, 15, 43, tzinfo=NEW_YORK)
    assert [c for c in strategy.decide(_bar(friday), 0.0) if not isinstance(c, Alert)] == []
    commands = strategy.decide(_bar(friday + timedelta(minutes=1)), 0.0)  # ends 15:45
    cancels = [c.ref for c in commands if isinstance(c, CancelOrder)]
    assert sorted(cancels) == sorted([TP.ref, SL.ref])
    assert not any(isinstance(c, PlaceOrder) for c in commands)  # not while the exits work
    assert strategy.decide(OrderCancelled(ref=TP.ref), 0.0) == []
    closing = strategy.decide(OrderCancelled(ref=SL.ref), 0.0)
    [close] = [c for c in closing if isinstance(c, PlaceOrder)]
    assert (close.side, close.quantity, close.limit, close.oca) == (Side.SELL, 2, None, None)
    assert close.ref == "scalp:SPY:S202612071535:close:1"
    # A close that cannot be placed fails closed: halted, an alert, no loop of retries.
    after = strategy.decide(OrderRejected(ref=close.ref, reason="no bid"), 0.0)
    assert strategy.halted is not None
    assert [type(c) for c in after] == [Alert]


def test_a_fill_after_the_entry_ended_is_protected_at_once() -> None:
    """The entry's cancel came first (events reordered), its fill after: the contracts it
    bought get both exits again, alone, in the bracket's OCA group."""
    strategy = KIND.restore(facts(fills={}, working={ENTRY.ref, TP.ref, SL.ref}))
    assert strategy.decide(OrderCancelled(ref=ENTRY.ref), 0.0)  # an alert; flat again
    assert strategy.live_orders() == []
    commands = strategy.decide(
        OrderFilled(ref=ENTRY.ref, exec_id="late", quantity=1, price=Decimal("10.00")), 0.0
    )
    placed = sorted((c for c in commands if isinstance(c, PlaceOrder)), key=lambda c: c.ref)
    assert [(c.ref.split(":")[3], c.quantity, c.oca, c.parent) for c in placed] == [
        ("sl", 1, GROUP, None),
        ("tp", 1, GROUP, None),
    ]
    assert {o.ref for o in strategy.live_orders()} == {c.ref for c in placed}
    assert [p.shares for p in strategy.positions()] == [1]


def test_every_open_bracket_is_protected_after_a_restart() -> None:
    """Two brackets hold contracts (the first bought after its entry ended, while the second
    was being placed): both are rebuilt, and the first's missing exits are placed again."""
    second = "scalp:SPY:S202612071600"

    def later(name: str, side: Side, **fields: object) -> PlaceOrder:
        return PlaceOrder(
            ref=f"{second}:{name}:1",
            symbol=OPTION,
            side=side,
            quantity=1,
            tif=TimeInForce.GTC if side is Side.SELL else TimeInForce.DAY,
            outside_rth=False,
            **fields,  # type: ignore[arg-type]
        )

    entry2 = later("entry", Side.BUY, limit=Decimal("10.00"))
    tp2 = later("tp", Side.SELL, limit=Decimal("11.00"), parent=entry2.ref, oca=second)
    sl2 = later("sl", Side.SELL, limit=None, stop=Decimal("9.00"), parent=entry2.ref, oca=second)
    strategy = KIND.restore(
        facts(
            fills={ENTRY.ref: 2, entry2.ref: 1},
            working={tp2.ref, sl2.ref},
            extra=(entry2, tp2, sl2),
        )
    )
    placed = [c for c in strategy.resync(0.0) if isinstance(c, PlaceOrder)]
    assert sorted((c.ref.split(":")[2:4], c.quantity, c.oca) for c in placed) == [
        (["S202612071535", "sl"], 2, GROUP),
        (["S202612071535", "tp"], 2, GROUP),
    ]
    live = {o.ref for o in strategy.live_orders()}
    assert live == {tp2.ref, sl2.ref, *(c.ref for c in placed)}
    assert sorted(p.shares for p in strategy.positions()) == [1, 2]
    view = strategy.view()
    assert isinstance(view, OptionsView)
    assert view.contracts == 3
