"""The grid against a fake broker, driven by hypothesis through any sequence of prices, fills,
partial fills, duplicate executions, rejects, cancels and timer ticks.

After every step: no two live buys for one level, every order placed once under a unique
self-describing orderRef, the lots' accounting equal to the executions the broker reported, and
realized P&L equal to the sum over closed lots. After a settle (pending cancels confirmed, time
past every backoff): every open lot has exactly one live sell of the right size and price, and
the live conditional buys are exactly the next ``queue_depth`` levels at the chained triggers.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from actors.domain import (
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    Side,
    round_to_tick,
)
from actors.messages import Alert, Command, LotClosed, LotOpened
from actors.strategies.grid import GridParams, GridRef, GridStrategy
from config.lotmap import LotMap

TICK = Decimal("0.01")
prices = st.integers(min_value=8000, max_value=12000).map(lambda cents: Decimal(cents) / 100)


@attrs.define
class Books:
    """The broker's side: live orders and every execution it reported, per lot."""

    live: dict[str, PlaceOrder] = attrs.Factory(dict)
    filled: Counter[str] = attrs.Factory(Counter)
    cancel_requested: set[str] = attrs.Factory(set)
    placed: list[str] = attrs.Factory(list)
    sent: dict[str, PlaceOrder] = attrs.Factory(dict)
    bought: Counter[int] = attrs.Factory(Counter)
    sold: Counter[int] = attrs.Factory(Counter)
    cost: dict[int, Decimal] = attrs.Factory(dict)
    proceeds: dict[int, Decimal] = attrs.Factory(dict)
    first_fill: dict[int, Decimal] = attrs.Factory(dict)
    executions: list[OrderFilled] = attrs.Factory(list)


class GridMachine(RuleBasedStateMachine):
    @initialize(
        shares=st.lists(st.integers(min_value=1, max_value=4), min_size=2, max_size=8),
        depth=st.integers(min_value=1, max_value=3),
    )
    def start(self, shares: list[int], depth: int) -> None:
        self.params = GridParams(symbol="TQQQ", queue_depth=depth)
        self.grid = GridStrategy(self.params, LotMap(tuple(shares)))
        self.books = Books()
        self.now = 0.0
        self.exec_seq = 0
        self.alerts: list[Alert] = []
        self.opened: set[int] = set()
        self.closed: dict[int, Decimal] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def apply(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, PlaceOrder):
                assert command.ref not in self.books.placed, f"orderRef reused: {command.ref}"
                ref = GridRef.parse(command.ref)
                assert (ref.symbol, ref.side) == ("TQQQ", command.side)
                assert 0 <= ref.level < len(self.grid.lot_map)
                assert command.quantity > 0
                assert command.limit > 0
                assert command.limit == round_to_tick(command.limit, TICK)
                self.books.placed.append(command.ref)
                self.books.sent[command.ref] = command
                self.books.live[command.ref] = command
            elif isinstance(command, CancelOrder):
                assert command.ref in self.books.placed, f"cancel of unknown {command.ref}"
                self.books.cancel_requested.add(command.ref)
            elif isinstance(command, LotOpened):
                assert command.lot not in self.opened, f"lot {command.lot} opened twice"
                self.opened.add(command.lot)
            elif isinstance(command, LotClosed):
                assert command.lot not in self.closed, f"lot {command.lot} closed twice"
                assert command.shares == self.books.bought[command.lot]
                self.closed[command.lot] = command.realized
            else:
                self.alerts.append(command)

    def live_where(self, **wanted: object) -> list[PlaceOrder]:
        return [
            order
            for order in self.books.live.values()
            if all(getattr(order, key) == value for key, value in wanted.items())
        ]

    def execute(self, ref: str, quantity: int) -> None:
        order = self.books.live[ref]
        lot = GridRef.parse(ref).lot
        self.exec_seq += 1
        event = OrderFilled(
            ref=ref, exec_id=f"x{self.exec_seq}", quantity=quantity, price=order.limit
        )
        self.books.filled[ref] += quantity
        if self.books.filled[ref] >= order.quantity:
            del self.books.live[ref]
        if order.side is Side.BUY:
            self.books.first_fill.setdefault(lot, order.limit)
            self.books.bought[lot] += quantity
            self.books.cost[lot] = self.books.cost.get(lot, Decimal(0)) + order.limit * quantity
        else:
            self.books.sold[lot] += quantity
            self.books.proceeds[lot] = (
                self.books.proceeds.get(lot, Decimal(0)) + order.limit * quantity
            )
        self.books.executions.append(event)
        self.apply(self.grid.on_filled(event, self.now))

    def end(self, ref: str, event: OrderCancelled | OrderRejected) -> None:
        del self.books.live[ref]
        if isinstance(event, OrderCancelled):
            self.apply(self.grid.on_cancelled(event, self.now))
        else:
            self.apply(self.grid.on_rejected(event, self.now))

    # -- rules ------------------------------------------------------------------------------

    @rule(price=prices, dt=st.floats(min_value=0.0, max_value=30.0))
    def price_moves(self, price: Decimal, dt: float) -> None:
        self.now += dt
        self.apply(self.grid.on_price(price, self.now))

    @rule(data=st.data(), whole=st.booleans())
    def broker_fills(self, data: st.DataObject, whole: bool) -> None:
        if not self.books.live:
            return
        ref = data.draw(st.sampled_from(sorted(self.books.live)))
        remaining = self.books.live[ref].quantity - self.books.filled[ref]
        quantity = remaining if whole else data.draw(st.integers(1, remaining))
        self.execute(ref, quantity)

    @rule(data=st.data())
    def broker_repeats_an_execution(self, data: st.DataObject) -> None:
        if self.books.executions:
            event = data.draw(st.sampled_from(self.books.executions))
            self.apply(self.grid.on_filled(event, self.now))

    @rule(data=st.data())
    def broker_cancels(self, data: st.DataObject) -> None:
        if self.books.live:
            ref = data.draw(st.sampled_from(sorted(self.books.live)))
            self.end(ref, OrderCancelled(ref=ref, reason="broker"))

    @rule(data=st.data())
    def broker_rejects(self, data: st.DataObject) -> None:
        fresh = [ref for ref in sorted(self.books.live) if self.books.filled[ref] == 0]
        if fresh:
            ref = data.draw(st.sampled_from(fresh))
            self.end(ref, OrderRejected(ref=ref, reason="test", code=201))

    @rule(data=st.data())
    def broker_accepts(self, data: st.DataObject) -> None:
        if self.books.live:
            ref = data.draw(st.sampled_from(sorted(self.books.live)))
            self.apply(self.grid.on_accepted(OrderAccepted(ref=ref)))

    @rule()
    def restart_from_the_facts(self) -> None:
        """The symbol actor restarts: its grid is rebuilt from the committed intents, the
        recorded executions and the broker's working orders, then re-synced."""
        before = self.grid
        self.grid = GridStrategy.restore(
            self.params,
            self.grid.lot_map,
            orders=self.books.sent.values(),
            fills=self.books.executions,
            working=set(self.books.live),
            now=self.now,
        )
        after = self.grid
        assert after.realized == before.realized
        assert after.next_lot == before.next_lot
        assert {i: (lot.bought, lot.sold, lot.closed) for i, lot in after.lots.items()} == {
            i: (lot.bought, lot.sold, lot.closed) for i, lot in before.lots.items()
        }
        assert after.anchor == before.anchor
        assert after.desired_levels() == before.desired_levels()
        self.apply(self.grid.resync(self.now))

    @rule(dt=st.floats(min_value=0.0, max_value=200.0))
    def timer(self, dt: float) -> None:
        self.now += dt
        self.apply(self.grid.on_timer(self.now))

    @rule()
    def settle_and_check(self) -> None:
        """Confirm pending cancels and let every backoff expire, then check the strong rules."""
        for _ in range(10):
            pending = [ref for ref in self.books.cancel_requested if ref in self.books.live]
            for ref in sorted(pending):
                self.end(ref, OrderCancelled(ref=ref, reason="cancel confirmed"))
            self.now += self.params.retry_maximum + 1
            before = len(self.books.placed), len(self.books.cancel_requested)
            self.apply(self.grid.on_timer(self.now))
            if not pending and (len(self.books.placed), len(self.books.cancel_requested)) == before:
                break
        self.check_sells()
        self.check_queue()

    # -- invariants -------------------------------------------------------------------------

    @invariant()
    def at_most_one_live_buy_per_level(self) -> None:
        if not hasattr(self, "grid"):
            return
        levels = Counter(
            (self.grid.orders[ref].cycle, GridRef.parse(ref).level)
            for ref, order in self.books.live.items()
            if order.side is Side.BUY and ref not in self.books.cancel_requested
        )
        assert all(count == 1 for count in levels.values()), levels

    @invariant()
    def lots_match_the_broker_executions(self) -> None:
        if not hasattr(self, "grid"):
            return
        for lot_id, lot in self.grid.lots.items():
            assert lot.bought == self.books.bought[lot_id]
            assert lot.sold == self.books.sold[lot_id]
            if lot.closed:
                assert lot.sold == lot.bought
        assert set(self.books.bought) == set(self.grid.lots)

    @invariant()
    def realized_pnl_is_the_sum_over_closed_lots(self) -> None:
        if not hasattr(self, "grid"):
            return
        expected = sum(
            (
                self.books.proceeds.get(i, Decimal(0)) - self.books.cost[i]
                for i, lot in self.grid.lots.items()
                if lot.closed
            ),
            Decimal(0),
        )
        assert self.grid.realized == expected
        # Every closed lot was reported once, with its own realized P&L.
        assert self.closed == {i: lot.realized for i, lot in self.grid.lots.items() if lot.closed}

    def check_sells(self) -> None:
        for lot_id in self.books.bought:
            open_shares = self.books.bought[lot_id] - self.books.sold[lot_id]
            buy_live = any(
                GridRef.parse(ref).lot == lot_id
                for ref in self.live_where(side=Side.BUY)
                for ref in [ref.ref]
            )
            sells = [
                order
                for order in self.live_where(side=Side.SELL)
                if GridRef.parse(order.ref).lot == lot_id
            ]
            if open_shares == 0 or buy_live:
                assert sells == [], f"lot {lot_id}: sell while closed or still buying"
                continue
            assert len(sells) == 1, (
                f"lot {lot_id} with {open_shares} open shares has {len(sells)} sells"
            )
            (sell,) = sells
            average = self.books.cost[lot_id] / self.books.bought[lot_id]
            assert sell.quantity - self.books.filled[sell.ref] == open_shares
            assert sell.limit == round_to_tick(average * Decimal("1.01"), TICK)

    def check_queue(self) -> None:
        grid = self.grid
        current = [lot for lot in grid.open_lots(grid.cycle)]
        conditional = sorted(
            GridRef.parse(order.ref).level
            for order in self.live_where(side=Side.BUY)
            if grid.orders[order.ref].cycle == grid.cycle and GridRef.parse(order.ref).level > 0
        )
        if not current:
            assert conditional == []
            return
        deepest = max(lot.level for lot in current)
        top = min(deepest + 1 + self.params.queue_depth, len(grid.lot_map))
        assert conditional == list(range(deepest + 1, top))
        anchor_lot = min(
            lot.id for lot in grid.lots.values() if lot.cycle == grid.cycle and lot.level == 0
        )
        trigger = self.books.first_fill[anchor_lot]
        chain = [trigger]
        for _ in range(len(grid.lot_map)):
            chain.append(round_to_tick(chain[-1] * Decimal("0.99"), TICK))
        for order in self.live_where(side=Side.BUY):
            level = GridRef.parse(order.ref).level
            if grid.orders[order.ref].cycle == grid.cycle and level > 0:
                assert order.limit == chain[level]
                assert order.condition is not None
                assert order.condition.trigger == chain[level]


TestGridStateMachine = GridMachine.TestCase
TestGridStateMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
