"""The grid trading in-process: replay -> symbol actor -> lot-keeper (LMDB) -> broker actor ->
sim venue, then the ledger, the venue's books and the strategy must agree."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.domain import Side
from actors.lot_keeper import LedgerState, LoadLedger
from actors.strategies.grid import GridRef
from app.compose import sim_trading
from config.lotmap import load_lot_map
from sim.replay import generated_session, load_bars, trades
from supervisors import Supervisor

from . import plain_grid
from .trading_checks import StepChecker, check_agreement

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
STEP_CHECKS: list[int] = []
REAL = ROOT.parent / "shared" / "marketdata" / "tqqq_1min" / "TQQQ_60day_1min_data.csv"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks: the lot-keeper's writer thread does real disk work."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


async def run(tmp_path: Path, bars: list[Any]) -> tuple[Any, LedgerState]:
    checker: list[StepChecker] = []
    trading = sim_trading(
        data_dir=tmp_path / "ledger",
        bars=bars,
        lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
        on_step=lambda: checker[0](),
    )
    checker.append(StepChecker(trading, "TQQQ"))
    root = Supervisor("root", trading.spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await trading.finished.wait()  # lockstep: all the replay caused has been handled
        assert not any(len(c.mailbox) for c in trading.cells.values())
        keeper = trading.cells["lot-keeper"].ref
        ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
        root.stop()
    assert root.restarts == 0
    assert checker[0].checks > 0
    STEP_CHECKS.append(checker[0].checks)
    return trading, ledger


async def test_a_generated_session_trades_and_ledger_venue_and_strategy_agree(
    tmp_path: Path,
) -> None:
    """Buys, sells and P&L happen, and the ledger, the venue and the strategy agree."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    with anyio.fail_after(600):  # a hang guard: a loaded 2-core machine needs over 120 s
        trading, ledger = await run(tmp_path, bars)
    sides = check_agreement(trading, ledger, "TQQQ")
    cross_check(trading, ledger, bars)
    assert sides[Side.BUY] > 3
    assert sides[Side.SELL] > 0
    assert not [a for a in trading.alerts if a.kind.endswith("refused")]


@pytest.mark.skipif(not REAL.exists(), reason="../shared/marketdata is not on this machine")
async def test_all_45_real_tqqq_sessions_replay_through_the_tree(
    tmp_path: Path, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    """The 45 real sessions of 1-minute bars, in lockstep; then the books agree. Prints the
    orders, fills, open lots, realized P&L and the time taken (reported, not gated: shared
    machines are noisy; fail_after only guards against a hang)."""
    bars = load_bars(REAL)
    started = time.monotonic()
    with anyio.fail_after(120):
        trading, ledger = await run(tmp_path, bars)
    elapsed = time.monotonic() - started
    sides = check_agreement(trading, ledger, "TQQQ")
    cross_check(trading, ledger, bars)
    open_lots = [lot for lot in ledger.lots if lot.open_shares]
    realized = trading.strategies["grid:TQQQ"].realized
    held = sum(lot.open_shares for lot in open_lots)
    print(
        f"\n{anyio_backend[0]}: {len(bars)} bars in {elapsed:.1f} s: "
        f"{len(trading.engine.orders)} orders, {sides[Side.BUY]} buy and {sides[Side.SELL]} sell "
        f"executions, {len(open_lots)} open lots ({held} shares), "
        f"realized P&L {realized:.2f}; invariants checked after {STEP_CHECKS[-1]} steps"
    )
    assert sides[Side.SELL] > 10


def cross_check(trading: Any, ledger: LedgerState, bars: list[Any]) -> None:
    """The actors' outcome equals the plain re-implementation's, by value."""
    expected = plain_grid.run(trades(bars), list(load_lot_map(ROOT / "config/lots/tqqq.csv")))
    sides = Counter(GridRef.parse(e.ref).side for e in trading.engine.executions)
    assert (sides[Side.BUY], sides[Side.SELL]) == (expected.buys, expected.sells)
    assert trading.strategies["grid:TQQQ"].realized == expected.realized
    assert trading.engine.positions["TQQQ"].quantity == expected.position
    assert sorted(
        (lot.level, lot.open_shares, lot.cost) for lot in ledger.lots if lot.open_shares
    ) == sorted(
        (lot.level, lot.bought - lot.sold, lot.cost)
        for lot in expected.lots
        if lot.sold < lot.bought
    )
