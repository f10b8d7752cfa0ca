"""``ModifyOrder`` and ``PlaceBracket`` from a strategy through the real host, lot-keeper, risk
and broker actors, and ib_insync over the socket to our TWS API server (``sim/tws``): a change
is amended in the ledger, then reaches the venue as IB's modify (the same order id placed
again); a change asking for more than a limit allows is refused before anything is amended or
sent; a bracket, which the IB port does not send yet, is refused leg by leg with nothing at the
venue."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.brokers.ib import IBMarketData, IBPort
from actors.domain import ModifyOrder, OrderRejected, Side
from actors.lot_keeper import AmendIntent, LedgerState, LoadLedger
from actors.messages import Command
from actors.risk_rules import RiskLimits
from actors.strategies.protocol import ModifyRefused
from actors.symbol import Resync
from app.compose import LiveSource, live_trading
from sim.engine import Engine
from sim.replay import generated_session, trades
from sim.tws.server import TwsServer
from supervisors import Supervisor
from tests.tws_venue import TQQQ, client_protocol_errors, until

from .probe_strategy import Probe, ProbeKind

pytestmark = pytest.mark.anyio
CENT = Decimal("0.01")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _run(
    tmp_path: Path,
    kind: ProbeKind,
    *,
    risk: RiskLimits | None = None,
    ticks: int = 200,
    during: Callable[[Any, Engine], Awaitable[None]] | None = None,
) -> tuple[Engine, TwsServer, LedgerState, Any]:
    bars = generated_session(seed=11, day=date(2026, 11, 23))[:ticks]
    engine = Engine()
    server = TwsServer(
        engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or bars[0].start
    )
    async with anyio.create_task_group() as venue:
        number = await venue.start(server.serve)
        trading = live_trading(
            data_dir=tmp_path / "ledger",
            lots={},
            kinds={"probe:TQQQ": kind},
            port=IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0),
            feeds=[
                LiveSource(
                    source=IBMarketData(host="127.0.0.1", port=number, client_id=2, max_requests=0),
                    symbols=frozenset({"TQQQ"}),
                )
            ],
            risk=risk,
        )
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await until(lambda: 2 in server.sessions and server.sessions[2].subscriptions)
                for n, trade in enumerate(trades(bars)):
                    engine.on_trade(trade.symbol, trade.price, trade.size, trade.at)
                    await anyio.sleep(0.002)
                    if during is not None and n == ticks // 2:
                        await during(trading, engine)
                await anyio.sleep(0.5)
                keeper = trading.cells["lot-keeper"].ref
                state: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                root.stop()
        venue.cancel_scope.cancel()
    assert root.restarts == 0
    return engine, server, state, trading


async def test_a_modified_limit_is_amended_in_the_ledger_then_modified_at_the_venue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A buy rests a dollar under the market; ten ticks later the strategy raises its limit
    above the market: the ledger's intent says the new limit, the venue's order (the same
    order id) has it and fills at it, and the fill is recorded once."""
    client_errors = client_protocol_errors(caplog)
    caplog.set_level(logging.WARNING, logger="ib_insync")
    state: dict[str, Any] = {}

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            order = probe.order("buy", Side.BUY, 10, price - 1)
            state["ref"] = order.ref
            return [order]
        if n == 10:
            state["limit"] = price + Decimal("0.50")
            return [ModifyOrder(ref=state["ref"], quantity=10, limit=state["limit"], reason="t")]
        return []

    kind = ProbeKind(symbol="TQQQ", script=script)
    engine, server, ledger, _ = await _run(tmp_path, kind)
    ref = state["ref"]
    venue_order = engine.orders[ref]
    assert venue_order.limit == state["limit"]
    assert venue_order.filled == 10
    assert [e.ref for e in engine.executions] == [ref]
    (intent,) = [i for i in ledger.intents if i.ref == ref]
    assert intent.order.limit == state["limit"]
    assert intent.order.quantity == 10
    assert [f.ref for f in ledger.fills] == [ref]
    assert kind.live.position == 10
    assert not [e for e in kind.live.seen if isinstance(e, ModifyRefused | OrderRejected)]
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_change_beyond_a_risk_limit_is_refused_and_nothing_is_amended_or_sent(
    tmp_path: Path,
) -> None:
    """The per-symbol cap allows the resting buy of 10 but not 500: the change is refused
    (``ModifyRefused`` with the rule), the ledger and the venue keep 10; a smaller change
    then goes through (asking for less is never blocked)."""
    state: dict[str, Any] = {}

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            order = probe.order("buy", Side.BUY, 10, price - 5)
            state["ref"] = order.ref
            state["limit"] = order.limit
            return [order]
        if n == 10:
            return [ModifyOrder(ref=state["ref"], quantity=500, limit=state["limit"])]
        if n == 20:
            return [ModifyOrder(ref=state["ref"], quantity=4, limit=state["limit"])]
        return []

    kind = ProbeKind(symbol="TQQQ", script=script)
    engine, server, ledger, _ = await _run(
        tmp_path, kind, risk=RiskLimits(max_notional_per_symbol=Decimal(5_000))
    )
    ref = state["ref"]
    refused = [e for e in kind.live.seen if isinstance(e, ModifyRefused)]
    assert [(e.ref, e.rule) for e in refused] == [(ref, "symbol_notional")]
    assert engine.orders[ref].quantity == 4
    (intent,) = [i for i in ledger.intents if i.ref == ref]
    assert intent.order.quantity == 4
    assert server.protocol_errors == []


async def test_a_bracket_goes_over_the_wire_as_one_and_its_exits_protect_the_fill(
    tmp_path: Path,
) -> None:
    """The IB port sends a bracket as IB's client does (the entry and take-profit held, the
    stop last, transmitting all three): every leg reaches the venue, none is rejected, the
    entry fills and both exits work as its children in one OCA group."""

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            return [probe.bracket("b1", 10, price + 1, price + 2, price - 2)]
        return []

    kind = ProbeKind(symbol="TQQQ", script=script)
    engine, server, ledger, _ = await _run(tmp_path, kind, ticks=40)
    legs = {ref.split(":")[2]: order for ref, order in engine.orders.items()}
    assert sorted(legs) == ["b1.entry", "b1.sl", "b1.tp"]
    entry = legs["b1.entry"]
    assert entry.filled == 10
    for name in ("b1.tp", "b1.sl"):
        leg = legs[name]
        assert leg.parent == entry.ref
        assert leg.oca == "oca.b1"
        assert not leg.done
    assert legs["b1.sl"].stop is not None
    assert not [e for e in kind.live.seen if isinstance(e, OrderRejected)]
    assert {i.ref.split(":")[2] for i in ledger.intents} == {"b1.entry", "b1.sl", "b1.tp"}
    assert server.protocol_errors == []


async def test_a_change_amended_but_never_sent_is_sent_by_the_next_reconciliation(
    tmp_path: Path,
) -> None:
    """What a crash between the amendment and the send leaves: the ledger's intent says 5
    shares at a new limit, the venue still works the old order. The next reconciliation
    sends the change: the venue's order becomes the intent's."""
    state: dict[str, Any] = {}

    def script(probe: Probe, price: Decimal, n: int) -> list[Command]:
        if n == 1:
            order = probe.order("buy", Side.BUY, 10, price - 5)
            state["ref"], state["limit"] = order.ref, order.limit - CENT
            return [order]
        return []

    async def amend_then_reconcile(trading: Any, engine: Engine) -> None:
        change = ModifyOrder(ref=state["ref"], quantity=5, limit=state["limit"])
        keeper = trading.cells["lot-keeper"].ref
        assert await keeper.request(AmendIntent(change=change), timeout=10) is True
        state["before"] = engine.orders[state["ref"]].quantity
        diff = await trading.cells["TQQQ"].ref.request(Resync(), timeout=30)
        state["diff"] = diff

    kind = ProbeKind(symbol="TQQQ", script=script)
    engine, server, ledger, _ = await _run(tmp_path, kind, ticks=60, during=amend_then_reconcile)
    order = engine.orders[state["ref"]]
    assert state["before"] == 10
    assert (order.quantity, order.limit) == (5, state["limit"])
    (intent,) = [i for i in ledger.intents if i.ref == state["ref"]]
    assert (intent.order.quantity, intent.order.limit) == (5, state["limit"])
    assert server.protocol_errors == []
