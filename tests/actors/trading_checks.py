"""What must hold after any run of the trading tree: ledger, venue and strategy agree."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from actors.domain import Side, round_to_tick
from actors.lot_keeper import LedgerState
from actors.strategies.grid import GridRef
from app.compose import LiveTrading, SimTrading
from sim.engine import Engine


def check_agreement(
    trading: SimTrading | LiveTrading,
    ledger: LedgerState,
    symbol: str,
    engine: Engine | None = None,
) -> Counter[Side]:
    """Assert the invariants; return how many executions there were per side. ``engine`` is
    the venue when ``trading`` does not hold it (live trading against a TWS API server)."""
    if engine is None:
        assert isinstance(trading, SimTrading)
        engine = trading.engine
    strategy = trading.strategies[f"grid:{symbol}"]
    # Every execution of ours recorded exactly once (plus the synthetic fills of lots made
    # for orphan shares); every order of ours at the venue had a committed intent.
    assert sorted(f.exec_id for f in ledger.fills if not f.exec_id.startswith("orphan:")) == sorted(
        e.exec_id for e in engine.executions if e.ref.startswith("grid:")
    )
    refs = [o.ref for o in engine.orders.values() if o.ref.startswith("grid:")]
    assert len(refs) == len(set(refs))
    assert set(refs) <= {i.ref for i in ledger.intents}
    # The venue's position is the ledger's open shares; each open lot has one right sell.
    open_lots = [lot for lot in ledger.lots if lot.open_shares]
    position = engine.positions[symbol].quantity if symbol in engine.positions else 0
    assert position == sum(lot.open_shares for lot in open_lots)
    working = [o for o in engine.open_orders() if o.side is Side.SELL and o.ref in refs]
    for lot in open_lots:
        sells = [o for o in working if GridRef.parse(o.ref).lot == lot.lot]
        assert len(sells) == 1, f"lot {lot.lot}: {len(sells)} working sells"
        assert sells[0].remaining == lot.open_shares
        average = lot.cost / lot.bought
        assert sells[0].limit == round_to_tick(average * Decimal("1.01"), Decimal("0.01"))
    # At most one working buy per level, at most queue_depth conditional ones.
    buys = Counter(
        GridRef.parse(o.ref).level
        for o in engine.open_orders()
        if o.side is Side.BUY and o.ref in refs
    )
    assert all(n == 1 for n in buys.values()), buys
    assert sum(n for level, n in buys.items() if level > 0) <= strategy.params.queue_depth
    # The strategy's books are the ledger's.
    closed = [lot for lot in ledger.lots if not lot.open_shares]
    assert strategy.realized == sum((lot.realized for lot in closed), Decimal(0))
    assert {lot.id: lot.bought for lot in strategy.lots.values()} == {
        lot.lot: lot.bought for lot in ledger.lots
    }
    return Counter(GridRef.parse(e.ref).side for e in engine.executions if e.ref in refs)


class StepChecker:
    """The invariants that must hold after every lockstep step (when all a trade caused has
    been handled), between the strategy and the venue; checked only when the venue's books
    changed, to keep a 45-session replay fast."""

    def __init__(self, trading: SimTrading, symbol: str) -> None:
        self.trading = trading
        self.symbol = symbol
        self.checks = 0
        self._seen = (-1, -1)

    def __call__(self) -> None:
        engine = self.trading.engine
        books = (len(engine.orders), len(engine.executions))
        if books == self._seen:
            return
        self._seen = books
        self.checks += 1
        strategy = self.trading.strategies[f"grid:{self.symbol}"]
        ours = {ref for ref in engine.orders if ref.startswith("grid:")}
        working = [o for o in engine.open_orders() if o.ref in ours]
        # At most one working buy per level; at most queue_depth conditional ones.
        buys = Counter(GridRef.parse(o.ref).level for o in working if o.side is Side.BUY)
        assert all(n == 1 for n in buys.values()), buys
        assert sum(n for level, n in buys.items() if level > 0) <= strategy.params.queue_depth
        # The strategy's open shares are the venue's position (unless it failed closed on
        # missing shares, which is the one difference it must not paper over).
        position = engine.positions[self.symbol].quantity if self.symbol in engine.positions else 0
        shares = sum(lot.open_shares for lot in strategy.open_lots())
        assert shares == position or (strategy.halted is not None and shares > position)
        # Every open lot whose buy is done has exactly one working sell, of its open shares.
        sells = Counter(GridRef.parse(o.ref).lot for o in working if o.side is Side.SELL)
        for lot in strategy.open_lots():
            if lot.buy_done:
                assert sells[lot.id] == 1, f"lot {lot.id}: {sells[lot.id]} working sells"
        # Every order the venue ever saw is one the strategy committed; refs are never reused.
        assert ours <= set(strategy.orders)
        # Realized P&L is the sum over closed lots.
        closed = [lot.realized for lot in strategy.lots.values() if lot.closed]
        assert strategy.realized == sum(closed, Decimal(0))
