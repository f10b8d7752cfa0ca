"""A bracket's life through the real host, lot-keeper (LMDB on disk), broker actor and the
in-process venue (``sim/engine.py`` through ``SimPort``): the take-profit path, the stop path,
an entry cancelled before it filled, a symbol actor killed while the exits work, and what a
crash between the commit and the send leaves. After each: every leg's intent was committed
before the venue saw it, each execution is in the ledger once, the exits never sold more than
the entry bought, and the venue's position is the strategy's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.domain import CancelOrder, OrderCancelled, OrderFilled, OrderRef, PlaceBracket, Side
from actors.lot_keeper import CommitBracket, LedgerState, LoadLedger
from actors.messages import Command
from actors.symbol import Resync
from app.compose import SimTrading, sim_trading
from sim.replay import generated_session
from supervisors import Supervisor

from .probe_strategy import Probe, ProbeKind

pytestmark = pytest.mark.anyio
DAY = date(2026, 11, 24)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Real clocks: the lot-keeper's writer thread does real disk work."""
    return str(request.param)


async def _run(
    tmp_path: Path,
    kind: ProbeKind,
    *,
    minutes: int = 240,
    during: Callable[[SimTrading, Supervisor], Awaitable[None]] | None = None,
) -> tuple[SimTrading, LedgerState, Supervisor, list[object]]:
    bars = generated_session(seed=23, day=DAY)[:minutes]
    trading = sim_trading(
        data_dir=tmp_path / "ledger", bars=bars, lots={}, kinds={"probe:TQQQ": kind}
    )
    # Every venue input, to check that each leg's intent was committed before it got there.
    venue: list[object] = []
    trading.engine.listeners.append(venue.append)
    root = Supervisor("root", trading.spec)
    with anyio.fail_after(180):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            if during is not None:
                tg.start_soon(during, trading, root)
            await trading.finished.wait()
            await anyio.sleep(0.2)
            keeper = trading.cells["lot-keeper"].ref
            ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
            root.stop()
    return trading, ledger, root, venue


def _books_agree(trading: SimTrading, ledger: LedgerState, kind: ProbeKind) -> None:
    engine = trading.engine
    executions = [e for e in engine.executions if e.symbol == "TQQQ"]
    assert sorted(f.exec_id for f in ledger.fills) == sorted(e.exec_id for e in executions)
    assert {ref for ref in engine.orders} <= {i.ref for i in ledger.intents}
    net = sum(e.quantity if e.side is Side.BUY else -e.quantity for e in executions)
    held = engine.positions["TQQQ"].quantity if "TQQQ" in engine.positions else 0
    assert held == net == kind.live.position >= 0


def _legs(probe_bracket: PlaceBracket) -> tuple[str, str, str]:
    return probe_bracket.entry.ref, probe_bracket.take_profit.ref, probe_bracket.stop_loss.ref


def _filled(trading: SimTrading, ref: str) -> int:
    return sum(e.quantity for e in trading.engine.executions if e.ref == ref)


async def test_the_take_profit_fills_and_the_group_cancels_the_stop(tmp_path: Path) -> None:
    made: list[PlaceBracket] = []

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            made.append(probe.bracket("b1", 20, price + 1, price + Decimal("0.05"), price - 5))
            return [made[0]]
        return []

    kind = ProbeKind(symbol="TQQQ", script=script)
    trading, ledger, root, _ = await _run(tmp_path, kind)
    entry, take, stop = _legs(made[0])
    assert root.restarts == 0
    assert (_filled(trading, entry), _filled(trading, take), _filled(trading, stop)) == (20, 20, 0)
    assert trading.engine.orders[stop].done
    cancelled = [e for e in kind.live.seen if isinstance(e, OrderCancelled)]
    assert [e.ref for e in cancelled] == [stop]
    _books_agree(trading, ledger, kind)
    assert kind.live.position == 0


async def test_the_stop_triggers_and_the_group_cancels_the_take_profit(tmp_path: Path) -> None:
    made: list[PlaceBracket] = []

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            made.append(probe.bracket("b1", 20, price + 1, price + 50, price - Decimal("0.05")))
            return [made[0]]
        return []

    kind = ProbeKind(symbol="TQQQ", script=script)
    trading, ledger, _, _ = await _run(tmp_path, kind)
    entry, take, stop = _legs(made[0])
    assert (_filled(trading, entry), _filled(trading, take), _filled(trading, stop)) == (20, 0, 20)
    assert trading.engine.orders[take].done
    _books_agree(trading, ledger, kind)


async def test_an_entry_cancelled_before_it_filled_takes_its_exits_with_it(
    tmp_path: Path,
) -> None:
    made: list[PlaceBracket] = []

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            made.append(probe.bracket("b1", 20, price - 10, price + 1, price - 11))
            return [made[0]]
        if n == 30:
            return [CancelOrder(ref=made[0].entry.ref, reason="timed out")]
        return []

    kind = ProbeKind(symbol="TQQQ", script=script)
    trading, ledger, _, _ = await _run(tmp_path, kind, minutes=60)
    assert trading.engine.executions == []
    cancelled = {e.ref for e in kind.live.seen if isinstance(e, OrderCancelled)}
    assert cancelled == set(_legs(made[0]))
    assert not kind.live.live_orders()
    _books_agree(trading, ledger, kind)


async def test_a_symbol_actor_killed_while_the_exits_work_keeps_them_whole(
    tmp_path: Path,
) -> None:
    """After the restart the rebuilt strategy and the position guard count the two exits as
    one sell of what the entry bought: nothing is cancelled as an excess; the stop, which the
    price reaches an hour and a half later, still triggers and fills, and the group cancels
    the take-profit."""
    made: list[PlaceBracket] = []

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            made.append(probe.bracket("b1", 20, price + 1, price + 1, price - Decimal("0.30")))
            return [made[0]]
        return []

    exits_at_kill: list[int] = []

    async def kill_once_bought(trading: SimTrading, root: Supervisor) -> None:
        while not made or trading.engine.orders.get(made[0].entry.ref) is None:  # noqa: ASYNC110
            await anyio.sleep(0.001)
        entry = made[0].entry.ref
        while trading.engine.orders[entry].filled < 20:  # noqa: ASYNC110
            await anyio.sleep(0.001)
        symbols = root.child("symbols")
        assert isinstance(symbols, Supervisor)
        symbols.kill("symbol.TQQQ")
        exits_at_kill.extend(trading.engine.orders[leg.ref].filled for leg in made[0].legs[1:])

    kind = ProbeKind(symbol="TQQQ", script=script)
    trading, ledger, root, _ = await _run(tmp_path, kind, minutes=390, during=kill_once_bought)
    entry, take, stop = _legs(made[0])
    symbols = root.child("symbols")
    assert isinstance(symbols, Supervisor)
    assert symbols.restarts >= 1
    assert len(kind.built) >= 2
    assert not [a for a in trading.alerts if a.kind == "oversold"]
    assert _filled(trading, entry) == 20
    assert (_filled(trading, take), _filled(trading, stop)) == (0, 20)
    assert trading.engine.orders[take].done
    # The kill came before either exit filled: the rebuilt actor saw the stop fill.
    assert exits_at_kill == [0, 0]
    assert any(isinstance(e, OrderFilled) and e.ref == stop for e in kind.live.seen)
    _books_agree(trading, ledger, kind)


async def test_legs_committed_but_never_sent_are_retired_and_nothing_works(
    tmp_path: Path,
) -> None:
    """What a crash between the commit and the send leaves: three intents, nothing at the
    venue. The next reconciliation retires all three; nothing of the bracket ever works."""
    state: dict[str, Any] = {}

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            state["bracket"] = probe.bracket("lost", 20, price + 1, price + 2, price - 2)
        return []

    async def commit_only(trading: SimTrading, _root: Supervisor) -> None:
        while "bracket" not in state:  # noqa: ASYNC110
            await anyio.sleep(0.001)
        keeper = trading.cells["lot-keeper"].ref
        assert await keeper.request(CommitBracket(bracket=state["bracket"]), timeout=10) is True
        state["diff"] = await trading.cells["TQQQ"].ref.request(Resync(), timeout=30)

    kind = ProbeKind(symbol="TQQQ", script=script)
    trading, ledger, _, _ = await _run(tmp_path, kind, minutes=30, during=commit_only)
    legs = set(_legs(state["bracket"]))
    assert set(state["diff"].retired_intents) == legs
    assert not legs & set(trading.engine.orders)
    assert not kind.live.live_orders()
    assert {i.ref for i in ledger.intents} == legs
    assert not [e for e in kind.live.seen if isinstance(e, OrderFilled)]
    assert OrderRef.parse(state["bracket"].stop_loss.ref).tag == "lost.sl"
