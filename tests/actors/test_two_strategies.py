"""Two strategies on one symbol, in one tree (``app.compose.sim_trading``): the grid and the
MA-crossover both trade TQQQ on a generated day. Each has its own symbol actor, routed by
``strategy:symbol``; the broker holds one position, which is the sum of theirs; the never-short
check counts every strategy's working sells against it."""

from __future__ import annotations

from collections import Counter
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.domain import OrderRef, Side
from actors.lot_keeper import LedgerState, LoadLedger
from actors.reconciler import Reconcile, ReconcileReport
from actors.strategies.registry import strategy_kind
from app.compose import sim_trading
from config.lotmap import load_lot_map
from sim.replay import generated_session
from supervisors import Supervisor

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
ROUTES = ("grid:TQQQ", "ma_cross:TQQQ")


@pytest.fixture
def anyio_backend() -> str:
    """The store's thread and the replay: a real clock."""
    return "asyncio"


def _net(executions: list[Any]) -> int:
    return sum(e.quantity if e.side is Side.BUY else -e.quantity for e in executions)


async def test_the_grid_and_ma_cross_trade_tqqq_in_one_tree_each_its_own_orders(
    tmp_path: Path,
) -> None:
    """Both strategies' orders reach the venue under their own refs; each one's ledger facts
    and position are the venue's executions of its refs; the venue's one position is their
    sum; no sell ever offers more than it; reconciliation is clean, with nothing foreign."""
    bars = generated_session(seed=23, day=date(2026, 11, 24))[:480]
    kind = strategy_kind(
        "ma_cross",
        "TQQQ",
        {
            "order_type": "market",
            "sessions": "extended",
            "target_notional": Decimal(20_000),
            "fast": 5,
            "slow": 20,
        },
    )
    trading = sim_trading(
        data_dir=tmp_path / "ledger",
        bars=bars,
        lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
        kinds={"ma_cross:TQQQ": kind},
    )
    engine = trading.engine
    worst: list[int] = []

    def offered_beyond_the_position(_event: object) -> None:
        # After every venue event: what the working sells of either strategy still offer,
        # beyond the one position.
        offered = sum(
            o.remaining for o in engine.open_orders() if o.symbol == "TQQQ" and o.side is Side.SELL
        )
        held = engine.positions["TQQQ"].quantity if "TQQQ" in engine.positions else 0
        worst.append(offered - held)

    engine.listeners.append(offered_beyond_the_position)
    root = Supervisor("root", trading.spec)
    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await trading.finished.wait()
            report = await trading.cells["reconciler"].ref.request(Reconcile(), timeout=60)
            ledger: LedgerState = await trading.cells["lot-keeper"].ref.request(
                LoadLedger(symbol="TQQQ"), timeout=30
            )
            root.stop()
    assert root.restarts == 0
    # The cells: the symbol's first strategy under the symbol, the other under its route.
    assert trading.cells["TQQQ"].name == "symbol.TQQQ"
    assert trading.cells["ma_cross:TQQQ"].name == "symbol.TQQQ.ma_cross"
    refs = Counter(OrderRef.parse(ref).route for ref in engine.orders)
    assert set(refs) == set(ROUTES)
    assert min(refs.values()) >= 2
    position = engine.positions["TQQQ"].quantity
    held = 0
    for route in ROUTES:
        prefix = f"{route}:"
        executions = [e for e in engine.executions if e.ref.startswith(prefix)]
        assert executions, route
        # Every execution of this strategy recorded once, under its own refs; every order of
        # it at the venue had its intent committed first.
        fills = [f for f in ledger.fills if f.ref.startswith(prefix)]
        assert sorted(f.exec_id for f in fills) == sorted(e.exec_id for e in executions)
        assert {o for o in engine.orders if o.startswith(prefix)} <= {i.ref for i in ledger.intents}
        shares = sum(line.shares for line in trading.strategies[route].positions())
        assert shares == _net(executions), route
        held += shares
    assert position == held == _net(engine.executions)
    assert max(worst) <= 0
    assert isinstance(report, ReconcileReport)
    assert [d.symbol for d in report.diffs] == ["TQQQ", "TQQQ"]
    for diff in report.diffs:
        assert diff.clean, diff.lines()
        assert (diff.foreign_orders, diff.adopted_orders, diff.orphan_shares) == ((), (), 0)
        assert diff.broker_position == position
