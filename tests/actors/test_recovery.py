"""Recovery of the trading tree: a service stopped and resumed on the same ledger and venue,
actors killed mid-replay, broker connections dropped; afterwards the ledger, the venue and the
strategy agree, and no order was placed twice."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from actors.broker import Poll
from actors.domain import PlaceOrder, Side, TimeInForce
from actors.ledger import Origin
from actors.lot_keeper import LedgerState, LoadLedger
from actors.reconciler import Reconcile, ReconcileReport
from app.compose import SimTrading, sim_trading
from config.lotmap import load_lot_map
from sim.engine import Engine, Input
from sim.journal import open_engine
from sim.replay import generated_session, trades
from supervisors import Supervisor

from .test_trading_loop import cross_check
from .trading_checks import StepChecker, check_agreement

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
SEEDS = int(os.environ.get("ACTORTRADE_CHAOS_SEEDS", "1"))
"""Seeds per chaos test; raise it for a longer campaign."""
LOTS = {"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")}


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks: the lot-keeper's writer thread does real disk work."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


async def run_tree(
    tmp_path: Path,
    bars: list[Any],
    *,
    engine: Engine | None = None,
    chaos: Callable[[Supervisor, SimTrading], Any] | None = None,
) -> tuple[SimTrading, LedgerState, Supervisor, StepChecker]:
    checkers: list[StepChecker] = []
    trading = sim_trading(
        data_dir=tmp_path / "ledger",
        bars=bars,
        lots=LOTS,
        engine=engine,
        on_step=lambda: checkers[0](),
    )
    checker = StepChecker(trading, "TQQQ")
    checkers.append(checker)
    root = Supervisor("root", trading.spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        if chaos is not None:
            tg.start_soon(chaos, root, trading)
        await trading.finished.wait()
        keeper = trading.cells["lot-keeper"].ref
        ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
        root.stop()
    return trading, ledger, root, checker


async def test_a_stopped_and_resumed_service_trades_as_if_it_never_stopped(
    tmp_path: Path,
) -> None:
    """Three runs on one ledger and one journaled venue, each resuming the replay where the
    last stopped, end exactly where one uninterrupted run (the plain model) ends."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    journal = tmp_path / "venue.journal"
    with anyio.fail_after(180):
        for cut in (len(bars) // 3, 2 * len(bars) // 3, len(bars)):
            trading, ledger, root, _ = await run_tree(
                tmp_path, bars[:cut], engine=open_engine(journal)
            )
            assert root.restarts == 0
            check_agreement(trading, ledger, "TQQQ")
    cross_check(trading, ledger, bars)
    assert [a for a in trading.alerts if a.kind == "reconcile"] == []


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_killing_any_actor_mid_replay_loses_nothing_and_places_nothing_twice(
    tmp_path: Path, seed: int
) -> None:
    """The lot-keeper, the broker, the symbol actor, the reconciler and the feed are killed
    at random moments; after every step and at the end the books agree."""
    bars = generated_session(seed=7 + seed, day=date(2026, 11, 24))
    rng = random.Random(20261122 + seed)
    killed: list[str] = []

    moments = sorted(rng.sample([t.at for t in trades(bars)], 8))

    async def chaos(root: Supervisor, trading: SimTrading) -> None:
        targets = ["lot-keeper", "broker", "symbols/symbol.TQQQ", "reconciler", "market-data"]
        for moment in moments:
            # Polls the replay's progress: the moments are venue times, not wall times.
            while trading.port.now < moment and not trading.finished.is_set():  # noqa: ASYNC110
                await anyio.sleep(0.001)
            target = rng.choice(targets)
            supervisor, _, name = target.rpartition("/")
            parent = root.child(supervisor) if supervisor else root
            assert isinstance(parent, Supervisor)
            try:
                parent.kill(name)
            except KeyError:
                continue  # restarting right now
            killed.append(target)

    with anyio.fail_after(240):
        trading, ledger, root, checker = await run_tree(tmp_path, bars, chaos=chaos)
    assert len(killed) >= 3, killed
    assert root.restarts > 0
    check_agreement(trading, ledger, "TQQQ")
    assert checker.checks > 0


@pytest.mark.parametrize("seed", range(SEEDS))
async def test_dropped_broker_connections_are_healed_by_reconnect_and_reconciliation(
    tmp_path: Path, seed: int
) -> None:
    """The venue drops the connection, sometimes in the middle of a fill (events lost), and
    restarts overnight; the broker actor reconnects and the symbol actor reconciles: every
    execution is in the ledger exactly once and every open lot has its sell."""
    bars = generated_session(seed=7 + seed, day=date(2026, 11, 24)) + generated_session(
        seed=8 + seed, day=date(2026, 11, 25)
    )
    faults: list[str] = []

    async def chaos(root: Supervisor, trading: SimTrading) -> None:
        link = trading.port.link
        engine = trading.engine
        seen = 0
        while len(faults) < 6 and not trading.finished.is_set():
            await anyio.sleep(0.001)
            if len(engine.executions) <= seen or not link.connected:
                continue
            seen = len(engine.executions) + 2
            kind = ("disconnect_after", "disconnect", "restart")[len(faults) % 3]
            if kind == "disconnect_after":
                link.disconnect_after(1)
            elif kind == "disconnect":
                link.disconnect()
            else:
                engine.restart()
            faults.append(kind)

    with anyio.fail_after(240):
        trading, ledger, root, _ = await run_tree(tmp_path, bars, chaos=chaos)
    assert len(faults) >= 3, faults
    assert root.restarts > 0
    check_agreement(trading, ledger, "TQQQ")


def offline(engine: Engine, bars: list[Any], *, after: datetime, count: int) -> None:
    """The market moves while the service is down: the venue matches ``count`` trades."""
    for trade in [t for t in trades(bars) if t.at > after][:count]:
        engine.on_trade(trade.symbol, trade.price, trade.size, trade.at)


async def test_fills_while_the_service_was_down_are_recorded_and_close_their_lots(
    tmp_path: Path,
) -> None:
    """Sells (and conditional buys) that filled at the broker while the service was down are
    recorded on restart, their lots closed or opened, and the grid carries on from there."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    journal = tmp_path / "venue.journal"
    with anyio.fail_after(120):
        trading, _, _, _ = await run_tree(
            tmp_path, bars[: len(bars) // 3], engine=open_engine(journal)
        )
        engine = trading.engine
        assert engine.last_trade_at is not None
        executions = len(engine.executions)
        offline(engine, bars, after=engine.last_trade_at, count=len(bars))  # a long outage
        missed = {e.exec_id for e in engine.executions[executions:]}
        assert missed, "the outage should have filled something"
        trading, ledger, _, _ = await run_tree(tmp_path, bars, engine=engine)
    check_agreement(trading, ledger, "TQQQ")
    (first,) = [d for d in trading.alerts if "executions the ledger missed" in d.message][:1]
    assert all(exec_id in first.message for exec_id in missed)


async def test_orphan_shares_become_a_lot_with_its_sell(tmp_path: Path) -> None:
    """Shares bought at the broker outside the grid become a lot at the broker's average
    cost, with its +1% GTC sell, and the ledger then matches the position."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    journal = tmp_path / "venue.journal"
    with anyio.fail_after(120):
        trading, _, _, _ = await run_tree(tmp_path, bars[:400], engine=open_engine(journal))
        engine = trading.engine
        held = engine.positions["TQQQ"].quantity
        manual = PlaceOrder(
            ref="manual-1",
            symbol="TQQQ",
            side=Side.BUY,
            quantity=50,
            limit=None,
            tif=TimeInForce.DAY,
        )
        assert engine.last_trade_at is not None
        engine.place(manual, engine.last_trade_at)
        offline(engine, bars, after=engine.last_trade_at, count=1)
        assert engine.positions["TQQQ"].quantity == held + 50
        trading, ledger, _, _ = await run_tree(tmp_path, bars[:800], engine=engine)
    orphan = [i for i in ledger.intents if i.origin is Origin.ORPHAN]
    assert [i.order.quantity for i in orphan] == [50]
    check_agreement(trading, ledger, "TQQQ")


async def test_missing_shares_fail_closed_and_place_no_new_orders(tmp_path: Path) -> None:
    """Shares the ledger holds but the broker does not (sold by hand): the symbol halts, no
    order is placed after that, and the status shows the difference."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    journal = tmp_path / "venue.journal"
    with anyio.fail_after(120):
        trading, _, _, _ = await run_tree(tmp_path, bars[:400], engine=open_engine(journal))
        engine = trading.engine
        assert engine.positions["TQQQ"].quantity > 10
        manual = PlaceOrder(
            ref="manual-2",
            symbol="TQQQ",
            side=Side.SELL,
            quantity=10,
            limit=None,
            tif=TimeInForce.DAY,
        )
        assert engine.last_trade_at is not None
        engine.place(manual, engine.last_trade_at)
        offline(engine, bars, after=engine.last_trade_at, count=1)
        orders_before = set(engine.orders)
        trading, _, _, _ = await run_tree(tmp_path, bars, engine=engine)
    strategy = trading.strategies["grid:TQQQ"]
    assert strategy.halted is not None
    assert "broker" in strategy.halted
    assert set(engine.orders) == orders_before, "a halted symbol placed an order"
    assert any(a.kind == "halted" for a in trading.alerts)
    assert any("MISSING SHARES" in a.message for a in trading.alerts)


async def test_a_dry_run_reports_the_diff_and_changes_nothing_then_a_real_run_repairs(
    tmp_path: Path,
) -> None:
    """While the service runs, shares appear at the broker: `reconcile --dry-run` reports
    them as orphans and would place their sell, writing and sending nothing; a real
    reconciliation then adopts them as a lot with its sell."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))[:400]
    trading = sim_trading(data_dir=tmp_path / "ledger", bars=bars, lots=LOTS)
    root = Supervisor("root", trading.spec)
    engine = trading.engine
    reconciler = trading.cells["reconciler"].ref
    keeper = trading.cells["lot-keeper"].ref
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await trading.finished.wait()
            assert engine.last_trade_at is not None
            manual = PlaceOrder(
                ref="manual-3",
                symbol="TQQQ",
                side=Side.BUY,
                quantity=30,
                limit=None,
                tif=TimeInForce.DAY,
            )
            engine.place(manual, engine.last_trade_at)
            offline(
                engine,
                generated_session(seed=11, day=date(2026, 11, 23)),
                after=engine.last_trade_at,
                count=1,
            )
            orders_before = set(engine.orders)
            before: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)

            dry: ReconcileReport = await reconciler.request(Reconcile(dry_run=True), timeout=30)
            (diff,) = dry.diffs
            assert diff.dry_run
            assert diff.orphan_shares == 30
            assert len(diff.placed) == 1
            assert "would become a lot" in " ".join(diff.lines())
            unchanged: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
            assert unchanged == before
            assert set(engine.orders) == orders_before

            real: ReconcileReport = await reconciler.request(Reconcile(), timeout=30)
            (diff,) = real.diffs
            assert diff.orphan_shares == 30
            assert not diff.dry_run
            await trading.cells["broker"].ref.request(Poll(), timeout=30)
            after: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
            clean: ReconcileReport = await reconciler.request(Reconcile(), timeout=30)
            assert clean.clean, [line for d in clean.diffs for line in d.lines()]
            root.stop()
    assert [i.order.quantity for i in after.intents if i.origin is Origin.ORPHAN] == [30]
    assert set(engine.orders) - orders_before == set(diff.placed)
    check_agreement(trading, after, "TQQQ")


def _cut_before_executions(path: Path, count: int) -> int:
    """Cut the venue's journal back to before the trade that made its last ``count``
    executions (a journal that lost its tail); returns how many entries were cut."""
    lines = path.read_bytes().split(b"\n")[:-1]
    total = len(open_engine(path).executions)
    replayed = Engine()
    keep = len(lines)
    for number, line in enumerate(lines[1:], start=1):
        replayed.apply(msgspec.json.decode(line, type=Input))
        if len(replayed.executions) > total - count:
            keep = number
            break
    path.write_bytes(b"\n".join(lines[:keep]) + b"\n")
    return len(lines) - keep


@pytest.mark.parametrize(
    ("minutes", "lost"),
    [
        # The reporter's shape: a lot's sell and the next lot's buy forgotten, so the position
        # still matches the ledger's open shares while the venue works the sold lot's sell.
        pytest.param(360, 2, id="sell-and-buy"),
        pytest.param(700, 1, id="buy"),
        pytest.param(700, 3, id="sell-and-two-buys"),
    ],
)
async def test_a_venue_that_lost_its_latest_executions_never_makes_the_grid_go_short(
    tmp_path: Path, minutes: int, lost: int
) -> None:
    """The reporter's repro in-process: the venue's journal loses the trades that made its last
    executions while the service is down, so the venue works again sells whose fills the ledger
    holds and reissues execution ids. On restart those sells are cancelled before anything
    else, a sell for the same shares waits until the cancel is confirmed, a reissued execId is
    a conflict on record (never a duplicate, never recorded with its new facts): the position
    never goes below zero and the working sells never offer more than it."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    journal = tmp_path / "venue.journal"
    with anyio.fail_after(120):
        first, before, _, _ = await run_tree(tmp_path, bars[:minutes], engine=open_engine(journal))
        first.engine.recorder.close()  # type: ignore[union-attr]
        assert _cut_before_executions(journal, lost) > 0
        engine = open_engine(journal)
        low: list[int] = []

        def never_short() -> None:
            held = engine.positions["TQQQ"].quantity if "TQQQ" in engine.positions else 0
            offered = sum(o.remaining for o in engine.open_orders() if o.side is Side.SELL)
            low.append(min(held, held - offered))

        trading = sim_trading(
            data_dir=tmp_path / "ledger", bars=bars, lots=LOTS, engine=engine, on_step=never_short
        )
        root = Supervisor("root", trading.spec)
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await trading.finished.wait()
            reconciler = trading.cells["reconciler"].ref
            report: ReconcileReport = await reconciler.request(Reconcile(), timeout=30)
            keeper = trading.cells["lot-keeper"].ref
            after: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
            root.stop()
    assert low
    assert min(low) >= 0, f"short or oversold by {-min(low)} shares"
    # The loss was noticed: sells cancelled or held back, a conflict, or missing shares.
    told = {alert.kind for alert in trading.alerts}
    assert told & {"stale-order", "sell-refused", "execution-conflict", "halted"}, told
    # Every fill the ledger held before is still there, with the same facts.
    held = {f.exec_id: (f.ref, f.quantity, f.price) for f in after.fills}
    for fill in before.fills:
        assert held[fill.exec_id] == (fill.ref, fill.quantity, fill.price)
    # An execution the venue holds now is the ledger's, or a conflict on record with it.
    reported = {(c.exec_id, c.reported.ref, c.reported.quantity) for c in after.conflicts}
    for execution in engine.executions:
        facts = (execution.ref, execution.quantity, execution.price)
        if held.get(execution.exec_id) != facts:
            assert (execution.exec_id, execution.ref, execution.quantity) in reported
    if after.open_conflicts:
        assert trading.strategies["grid:TQQQ"].halted is not None
        (diff,) = report.diffs
        assert diff.conflicts
        assert "EXECUTION CONFLICT" in "\n".join(diff.lines())
