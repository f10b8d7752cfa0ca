"""What must hold after any run of the trading tree: ledger, venue and strategy agree."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from actors.domain import OrderRef, Side, round_to_tick
from actors.lot_keeper import LedgerState
from actors.trading import SimTrading


def check_agreement(trading: SimTrading, ledger: LedgerState, symbol: str) -> Counter[Side]:
    """Assert the invariants; return how many executions there were per side."""
    engine = trading.engine
    strategy = trading.strategies[symbol]
    # Every execution recorded exactly once; every order at the venue had a committed intent.
    assert sorted(f.exec_id for f in ledger.fills) == sorted(e.exec_id for e in engine.executions)
    refs = [o.ref for o in engine.orders.values()]
    assert len(refs) == len(set(refs))
    assert set(refs) <= {i.ref for i in ledger.intents}
    # The venue's position is the ledger's open shares; each open lot has one right sell.
    open_lots = [lot for lot in ledger.lots if lot.open_shares]
    position = engine.positions[symbol].quantity if symbol in engine.positions else 0
    assert position == sum(lot.open_shares for lot in open_lots)
    working = [o for o in engine.open_orders() if o.side is Side.SELL]
    for lot in open_lots:
        sells = [o for o in working if OrderRef.parse(o.ref).lot == lot.lot]
        assert len(sells) == 1, f"lot {lot.lot}: {len(sells)} working sells"
        assert sells[0].remaining == lot.open_shares
        average = lot.cost / lot.bought
        assert sells[0].limit == round_to_tick(average * Decimal("1.01"), Decimal("0.01"))
    # At most one working buy per level, at most queue_depth conditional ones.
    buys = Counter(OrderRef.parse(o.ref).level for o in engine.open_orders() if o.side is Side.BUY)
    assert all(n == 1 for n in buys.values()), buys
    assert sum(n for level, n in buys.items() if level > 0) <= strategy.params.queue_depth
    # The strategy's books are the ledger's.
    closed = [lot for lot in ledger.lots if not lot.open_shares]
    assert strategy.realized == sum((lot.realized for lot in closed), Decimal(0))
    assert {lot.id: lot.bought for lot in strategy.lots.values()} == {
        lot.lot: lot.bought for lot in ledger.lots
    }
    return Counter(OrderRef.parse(e.ref).side for e in engine.executions)
