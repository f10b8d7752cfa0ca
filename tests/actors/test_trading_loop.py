"""The grid trading in-process: replay -> symbol actor -> lot-keeper (LMDB) -> broker actor ->
sim venue, then the ledger, the venue's books and the strategy must agree."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.broker import BrokerActor
from actors.brokers.sim import SimPort
from actors.domain import OrderRef, Side, round_to_tick
from actors.lot_keeper import LedgerState, LoadLedger, LotKeeper, ledger_store
from actors.messages import Alert
from actors.replay_feed import ReplayFeed
from actors.strategies.grid import GridParams, GridStrategy
from actors.symbol import SymbolActor
from config.lotmap import load_lot_map
from runtime import ActorCell
from sim.engine import Engine
from sim.replay import generated_session, trades
from supervisors import ChildSpec, Strategy, Supervisor, SupervisorSpec

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks: the lot-keeper's writer thread does real disk work."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


async def test_a_generated_session_trades_and_ledger_venue_and_strategy_agree(
    tmp_path: Path,
) -> None:
    """Buys, sells and P&L happen; every execution is in the ledger once; every open lot has
    exactly one working sell of its size at +1%; the venue's position equals the open lots."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    engine = Engine()
    port = SimPort(engine, bars[0].start)
    strategy = GridStrategy(GridParams(symbol="TQQQ"), load_lot_map(ROOT / "config/lots/tqqq.csv"))
    alerts: list[Alert] = []
    done = anyio.Event()
    store = ledger_store(tmp_path / "ledger")
    keeper: ActorCell[Any] = ActorCell("lot-keeper", lambda: LotKeeper(store))
    broker: ActorCell[Any] = ActorCell("broker", lambda: BrokerActor(port, {"TQQQ": symbol.ref}))
    symbol: ActorCell[Any] = ActorCell(
        "symbol.TQQQ",
        lambda: SymbolActor(strategy, lot_keeper=keeper.ref, broker=broker.ref, alerts=alerts),
    )
    feed: ActorCell[Any] = ActorCell(
        "market-data",
        lambda: ReplayFeed(
            trades(bars),
            port=port,
            broker=broker.ref,
            symbols={"TQQQ": symbol.ref},
            finished=done.set,
        ),
    )
    root = Supervisor(
        "root",
        SupervisorSpec(
            strategy=Strategy.REST_FOR_ONE,
            children=[ChildSpec(id=c.name, start=c) for c in (keeper, broker, symbol, feed)],
        ),
    )
    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await done.wait()  # in lockstep: everything the replay caused has been handled
            assert not any(len(c.mailbox) for c in (keeper, broker, symbol))
            ledger: LedgerState = await keeper.ref.request(LoadLedger(symbol="TQQQ"), timeout=30)
            root.stop()

    assert root.restarts == 0
    sides = Counter(OrderRef.parse(e.ref).side for e in engine.executions)
    assert sides[Side.BUY] > 3, sides
    assert sides[Side.SELL] > 0, sides

    # Every execution recorded exactly once; every order at the venue had a committed intent.
    assert sorted(f.exec_id for f in ledger.fills) == sorted(e.exec_id for e in engine.executions)
    assert set(engine.orders) <= {i.ref for i in ledger.intents}

    # The venue's position is the ledger's open shares, lot by lot.
    open_lots = [lot for lot in ledger.lots if lot.open_shares]
    assert engine.positions["TQQQ"].quantity == sum(lot.open_shares for lot in open_lots)
    working = [o for o in engine.open_orders() if o.side is Side.SELL]
    for lot in open_lots:
        (sell,) = [o for o in working if OrderRef.parse(o.ref).lot == lot.lot]
        assert sell.remaining == lot.open_shares
        assert sell.limit == round_to_tick(lot.cost / lot.bought * Decimal("1.01"), Decimal("0.01"))

    # The strategy's books are the ledger's.
    assert strategy.realized == sum(
        (lot.realized for lot in ledger.lots if not lot.open_shares), Decimal(0)
    )
    assert {lot.id: lot.bought for lot in strategy.lots.values()} == {
        lot.lot: lot.bought for lot in ledger.lots
    }
    assert not [a for a in alerts if a.kind in ("fill-refused", "intent-refused", "unknown-fill")]
