"""A lockstep step that skips its polls when nothing is delivered or in flight leaves the tree
exactly as polling would: the same replays with and without the skips give the same orders,
executions and ledger, for the grid and for a bar-close strategy."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.lot_keeper import LedgerState, LoadLedger
from app.compose import sim_trading, strategy_kinds
from config.load import load_config
from config.lotmap import load_lot_map
from sim.replay import generated_days, generated_session
from supervisors import Supervisor

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks: the lot-keeper's writer thread does real disk work."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


async def _replay(folder: Path, bars: list[Any], *, skip: bool, **tree: Any) -> dict[str, Any]:
    trading = sim_trading(data_dir=folder, bars=bars, skip_idle_polls=skip, **tree)
    root = Supervisor("root", trading.spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await trading.finished.wait()
        ledger: LedgerState = await trading.cells["lot-keeper"].ref.request(
            LoadLedger(symbol="TQQQ"), timeout=30
        )
        root.stop()
    assert root.restarts == 0
    engine = trading.engine
    return {
        "orders": [
            (o.ref, o.side, o.quantity, o.limit, o.condition, o.filled, o.done)
            for o in engine.orders.values()
        ],
        "executions": [
            (e.ref, e.side, e.quantity, e.price, e.commission, e.time) for e in engine.executions
        ],
        "lots": sorted((v.lot, v.level, v.bought, v.cost, v.sold, v.proceeds) for v in ledger.lots),
        "skipped": sum(feed.polls_skipped for feed in trading.feed),
    }


async def test_the_grid_trades_the_same_with_and_without_skipped_polls(tmp_path: Path) -> None:
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    lots = {"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")}
    with anyio.fail_after(600):
        polled = await _replay(tmp_path / "polled", bars, skip=False, lots=lots)
        skipped = await _replay(tmp_path / "skipped", bars, skip=True, lots=lots)
    assert polled["skipped"] == 0
    assert skipped["skipped"] > len(bars)  # most steps skip both their polls
    assert polled["executions"], "the grid traded nothing: the cross-check proves nothing"
    for key in ("orders", "executions", "lots"):
        assert skipped[key] == polled[key], key


async def test_a_bar_strategy_trades_the_same_with_and_without_skipped_polls(
    tmp_path: Path,
) -> None:
    settings = load_config(ROOT / "config/examples/ma_cross.toml")
    bars = generated_days(seed=14, days=2, symbol="TQQQ")
    kinds = strategy_kinds(settings)
    with anyio.fail_after(600):
        polled = await _replay(tmp_path / "polled", bars, skip=False, lots={}, kinds=kinds)
        skipped = await _replay(tmp_path / "skipped", bars, skip=True, lots={}, kinds=kinds)
    assert skipped["skipped"] > len(bars)
    assert len(polled["executions"]) > 10
    for key in ("orders", "executions", "lots"):
        assert skipped[key] == polled[key], key
