"""The grid strategy's rules (SPEC section 4), one example each."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from actors.domain import (
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceCondition,
    Side,
    TimeInForce,
)
from actors.messages import Alert, Command
from actors.strategies.grid import GridParams, GridRef, GridStrategy
from config.lotmap import LotMap

D = Decimal
_exec_ids = itertools.count(1)


def grid(levels: int = 10, **params: object) -> GridStrategy:
    lots = LotMap(tuple(range(10, 10 + levels)))
    return GridStrategy(GridParams(symbol="TQQQ", **params), lots)  # type: ignore[arg-type]


def places(commands: list[Command]) -> list[PlaceOrder]:
    return [c for c in commands if isinstance(c, PlaceOrder)]


def cancels(commands: list[Command]) -> list[str]:
    return [c.ref for c in commands if isinstance(c, CancelOrder)]


def alerts(commands: list[Command]) -> list[str]:
    return [c.kind for c in commands if isinstance(c, Alert)]


def fill(
    g: GridStrategy, ref: str, price: str, qty: int | None = None, now: float = 1.0
) -> list[Command]:
    quantity = qty if qty is not None else g.orders[ref].quantity - g.orders[ref].filled
    event = OrderFilled(ref=ref, exec_id=f"e{next(_exec_ids)}", quantity=quantity, price=D(price))
    return g.on_filled(event, now)


def level_of(command: PlaceOrder) -> int:
    return GridRef.parse(command.ref).level


def anchored(price: str = "100.00") -> tuple[GridStrategy, list[Command]]:
    g = grid()
    (buy,) = places(g.on_price(D(price), 0.0))
    return g, fill(g, buy.ref, price)


def test_level_zero_buys_the_first_lot_with_a_limit_a_quarter_percent_up_outside_rth() -> None:
    """Flat: a LIMIT buy of lots[0] at price * 1.0025, rounded to the tick, DAY, outsideRth."""
    (order,) = places(grid().on_price(D("52.37"), 0.0))
    assert order == PlaceOrder(
        ref="grid:TQQQ:L0:BUY:1:1",
        symbol="TQQQ",
        side=Side.BUY,
        quantity=10,
        limit=D("52.50"),
        tif=TimeInForce.DAY,
        outside_rth=True,
        condition=None,
    )


def test_the_level_zero_fill_anchors_a_queue_of_three_chained_conditional_buys() -> None:
    """T0 = fill price; T[k] = round(T[k-1] * 0.99); LMT = trigger; GTC; outsideRth."""
    _, commands = anchored("100.00")
    buys = [c for c in places(commands) if c.side is Side.BUY]
    assert [(level_of(c), c.limit, c.condition) for c in buys] == [
        (1, D("99.00"), PriceCondition(trigger=D("99.00"), is_more=False)),
        (2, D("98.01"), PriceCondition(trigger=D("98.01"), is_more=False)),
        (3, D("97.03"), PriceCondition(trigger=D("97.03"), is_more=False)),
    ]
    assert all(c.tif is TimeInForce.GTC and c.outside_rth for c in buys)
    assert [c.quantity for c in buys] == [11, 12, 13]


def test_every_filled_lot_gets_its_own_gtc_sell_one_percent_up() -> None:
    """1-to-1: the lot's sell is round_tick(purchase * 1.01), GTC, for exactly its shares."""
    _, commands = anchored("52.37")
    (sell,) = [c for c in places(commands) if c.side is Side.SELL]
    assert (sell.quantity, sell.limit, sell.tif, sell.outside_rth) == (
        10,
        D("52.89"),
        TimeInForce.GTC,
        True,
    )
    assert sell.ref == "grid:TQQQ:L0:SELL:1:1"


def test_a_conditional_fill_tops_the_queue_up_with_exactly_one_new_level() -> None:
    """Level 1 fills: its sell, and level 4 joins levels 2 and 3."""
    g, commands = anchored()
    level1 = next(c for c in places(commands) if c.side is Side.BUY and level_of(c) == 1)
    after = fill(g, level1.ref, "99.00")
    assert [(c.side, level_of(c), c.limit) for c in places(after)] == [
        (Side.SELL, 1, D("99.99")),
        (Side.BUY, 4, D("96.06")),
    ]
    assert cancels(after) == []


def test_when_the_deepest_lot_sells_the_queue_moves_back_up() -> None:
    """Open 0,1,2 (queue 3,4,5); lot 2 sells: level 2 is placed again, level 5 cancelled."""
    g, commands = anchored()
    refs = {level_of(c): c.ref for c in places(commands) if c.side is Side.BUY}
    more = fill(g, refs[1], "99.00") + fill(g, refs[2], "98.01")
    queue = {level_of(c): c.ref for c in places(more) if c.side is Side.BUY}
    assert sorted(queue) == [4, 5]
    sell2 = next(c.ref for c in places(more) if c.side is Side.SELL and level_of(c) == 2)
    after = fill(g, sell2, "98.99")
    assert cancels(after) == [queue[5]]
    assert [(c.side, level_of(c), c.limit) for c in places(after)] == [(Side.BUY, 2, D("98.01"))]
    assert g.realized == (D("98.99") - D("98.01")) * 12


def test_when_the_last_lot_sells_the_queue_is_cancelled_and_the_next_price_re_anchors() -> None:
    """Flat again: queued buys cancelled; the next tick is a new level 0 with new refs."""
    g, commands = anchored("100.00")
    sell = next(c.ref for c in places(commands) if c.side is Side.SELL)
    queued = [c.ref for c in places(commands) if c.side is Side.BUY]
    after = fill(g, sell, "101.00")
    assert sorted(cancels(after)) == sorted(queued)
    assert g.anchor is None
    (new,) = places(g.on_price(D("101.50"), 2.0))
    assert (level_of(new), new.limit, new.ref) == (0, D("101.75"), "grid:TQQQ:L0:BUY:5:1")
    assert g.realized == D("1.00") * 10


def test_the_end_of_the_ladder_stops_buying_and_tells_the_operator_once() -> None:
    """With 3 levels, once level 2 is bought nothing more is queued; one ladder-end alert."""
    g = grid(levels=3)
    (buy,) = places(g.on_price(D("100.00"), 0.0))
    commands = fill(g, buy.ref, "100.00")
    refs = {level_of(c): c.ref for c in places(commands) if c.side is Side.BUY}
    assert sorted(refs) == [1, 2]
    commands = fill(g, refs[1], "99.00") + fill(g, refs[2], "98.01")
    assert [c for c in places(commands) if c.side is Side.BUY] == []
    assert alerts(commands) == ["ladder-end"]
    assert alerts(g.on_price(D("97.00"), 3.0)) == []


def test_an_unfilled_level_zero_buy_is_cancelled_and_reported_after_the_timeout() -> None:
    """Default 120 s: cancel + alert; nothing before."""
    g = grid()
    (buy,) = places(g.on_price(D("100.00"), 0.0))
    assert g.on_timer(119.0) == []
    commands = g.on_timer(120.0)
    assert cancels(commands) == [buy.ref]
    assert alerts(commands) == ["fill-timeout"]
    assert g.on_timer(200.0) == []


def test_a_partially_filled_level_zero_that_times_out_keeps_its_shares_and_sells_them() -> None:
    """Cancelled after a partial fill: the lot holds the filled shares, and gets its sell."""
    g = grid()
    (buy,) = places(g.on_price(D("100.00"), 0.0))
    assert [c.side for c in places(fill(g, buy.ref, "100.00", qty=4))] == [Side.BUY] * 3
    g.on_timer(120.0)
    commands = g.on_cancelled(OrderCancelled(ref=buy.ref), 121.0)
    (sell,) = places(commands)
    assert (sell.side, sell.quantity, sell.limit) == (Side.SELL, 4, D("101.00"))


def test_a_sell_is_placed_only_when_its_buy_is_done() -> None:
    """Partial fills accumulate into the lot; the sell covers all of them, at their average."""
    g, commands = anchored()
    level1 = next(c for c in places(commands) if c.side is Side.BUY and level_of(c) == 1)
    first = fill(g, level1.ref, "99.00", qty=5)
    assert [c for c in places(first) if c.side is Side.SELL] == []
    second = fill(g, level1.ref, "98.90", qty=6)
    (sell,) = [c for c in places(second) if c.side is Side.SELL]
    average = (D("99.00") * 5 + D("98.90") * 6) / 11
    assert (sell.quantity, sell.limit) == (11, (average * D("1.01")).quantize(D("0.01")))


def test_a_duplicate_execution_is_ignored() -> None:
    """The same execId twice changes nothing."""
    g = grid()
    (buy,) = places(g.on_price(D("100.00"), 0.0))
    event = OrderFilled(ref=buy.ref, exec_id="dup", quantity=10, price=D("100.00"))
    assert places(g.on_filled(event, 1.0))
    assert g.on_filled(event, 1.0) == []
    assert g.lots[1].bought == 10


def test_a_rejected_buy_is_retried_with_backoff_and_reported() -> None:
    """Rejects alert and back off 1 s, 2 s, ... per level instead of spamming the broker."""
    g, commands = anchored()
    level1 = next(c for c in places(commands) if c.side is Side.BUY and level_of(c) == 1)
    after = g.on_rejected(OrderRejected(ref=level1.ref, reason="margin", code=201), 10.0)
    assert alerts(after) == ["order-rejected"]
    assert places(after) == []
    assert places(g.on_price(D("100.10"), 10.5)) == []
    (retry,) = places(g.on_price(D("100.10"), 11.0))
    assert level_of(retry) == 1
    assert retry.ref != level1.ref
    again = g.on_rejected(OrderRejected(ref=retry.ref, reason="margin"), 11.0)
    assert "2 s" in next(c.message for c in again if isinstance(c, Alert))
    assert places(g.on_price(D("100.10"), 12.9)) == []
    g.on_accepted(OrderAccepted(ref=places(g.on_price(D("100.10"), 13.0))[0].ref))


def test_an_order_rejected_retry_limit_times_in_a_row_is_not_retried_and_says_so() -> None:
    """A venue that refuses a level-0 buy whatever happens (a price below the tick, an account
    restriction): after ``retry_limit`` rejections in a row the grid stops asking, with one
    "gave-up" alert, instead of retrying every minute forever."""
    g = grid(retry_limit=3)
    now = 0.0
    kinds: list[str] = []
    for _ in range(10):
        placed = places(g.on_price(D("52.00"), now))
        if not placed:
            now += 3600.0
            continue
        (order,) = placed
        kinds += alerts(g.on_rejected(OrderRejected(ref=order.ref, reason="tick"), now))
        now += 3600.0
    assert kinds == ["order-rejected", "order-rejected", "gave-up"]
    assert places(g.on_timer(now + 86_400.0)) == []
    assert places(g.on_price(D("52.00"), now + 86_400.0)) == []
    with pytest.raises(ValueError, match="retry_limit"):
        grid(retry_limit=0)


def test_a_sell_cancelled_at_the_broker_is_reported_and_placed_again() -> None:
    """A sell that vanished without filling is re-placed as attempt 2 of the same lot."""
    g, commands = anchored()
    sell = next(c for c in places(commands) if c.side is Side.SELL)
    after = g.on_cancelled(OrderCancelled(ref=sell.ref, reason="operator"), 5.0)
    assert alerts(after) == ["sell-vanished"]
    (again,) = places(after)
    assert again.ref == "grid:TQQQ:L0:SELL:1:2"
    assert (again.quantity, again.limit) == (sell.quantity, sell.limit)


def test_a_late_buy_fill_resizes_the_lots_sell() -> None:
    """A fill reported after the buy was cancelled: the sell is replaced to cover every share."""
    g = grid()
    (buy,) = places(g.on_price(D("100.00"), 0.0))
    fill(g, buy.ref, "100.00", qty=4)
    g.on_timer(120.0)
    (sell,) = places(g.on_cancelled(OrderCancelled(ref=buy.ref), 121.0))
    late = fill(g, buy.ref, "100.00", qty=2, now=122.0)
    assert cancels(late) == [sell.ref]
    (resized,) = places(g.on_cancelled(OrderCancelled(ref=sell.ref), 123.0))
    assert (resized.quantity, resized.ref) == (6, "grid:TQQQ:L0:SELL:1:2")


def test_a_fill_for_an_order_we_never_placed_is_reported() -> None:
    """Unknown refs are the reconciler's business: alert, change nothing."""
    g = grid()
    commands = g.on_filled(OrderFilled(ref="manual", exec_id="x", quantity=1, price=D(1)), 0.0)
    assert alerts(commands) == ["unknown-fill"]
    assert g.lots == {}


@pytest.mark.parametrize("price", ["0", "-1", "NaN", "Infinity"])
def test_a_bad_price_never_reaches_the_rules(price: str) -> None:
    """Non-positive or non-finite prices are refused with the symbol named."""
    with pytest.raises(ValueError, match="TQQQ: price must be positive"):
        grid().on_price(D(price), 0.0)
