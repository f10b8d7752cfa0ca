"""An option position seen through the TWS face by the unmodified ib_insync client, over a
real socket: its average cost and the cash at 100 shares a contract, and its exercise at
expiry as execDetails (live and through reqExecutions) and positions; zero protocol errors."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from ib_insync import ExecutionFilter

from actors.domain import Side
from sim.engine import Engine
from sim.tws.server import STARTING_CASH
from tests.sim.option_desk import D, at, option, order
from tests.tws_venue import TQQQ, connect, until, venue

pytestmark = pytest.mark.anyio
CALL = option(50, "C")
FRIDAY = "2026-12-11"


def _cash(ib: object) -> Decimal:
    values = {v.tag: v.value for v in ib.accountValues()}  # type: ignore[attr-defined]
    return Decimal(values["TotalCashValue"])


@pytest.mark.parametrize("version", [157, 176])
async def test_an_exercised_call_reaches_the_client_as_executions_and_positions(
    version: int, client_errors: Callable[[], list[str]]
) -> None:
    """2 calls bought at the ask: position 2 at ask x 100, cash less 200 x ask and $1.30;
    TQQQ at 52 on Friday and the venue advanced past the close: the client hears two live
    executions (the calls closing at 0, 200 TQQQ bought at 50, orderRef exercise:<OCC>),
    reqExecutions lists them, and the positions are 200 shares (ib_insync drops a position
    of 0)."""
    engine = Engine()
    engine.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    engine.place(order("b", CALL.local_symbol, Side.BUY, 2), at("10:00:01"))
    engine.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    [bought] = engine.executions
    async with venue(engine, version) as server:
        ib = await connect(server)
        [held] = [p for p in ib.positions() if p.contract.conId == CALL.con_id]
        assert (held.position, Decimal(str(held.avgCost))) == (2, bought.price * 100)
        assert _cash(ib) == STARTING_CASH - bought.price * 200 - D("1.30")
        engine.on_trade("TQQQ", D("52.00"), 100, at("15:59", FRIDAY))
        engine.advance(at("17:00", FRIDAY))
        ref = f"exercise:{CALL.local_symbol}"
        await until(lambda: len([f for f in ib.fills() if f.execution.orderRef == ref]) == 2)
        legs = [
            (f.contract.conId, f.execution.side, f.execution.shares, f.execution.price)
            for f in ib.fills()
            if f.execution.orderRef == ref
        ]
        assert legs == [(CALL.con_id, "SLD", 2.0, 0.0), (TQQQ.con_id, "BOT", 200.0, 50.0)]
        await until(
            lambda: {p.contract.conId: p.position for p in ib.positions()} == {TQQQ.con_id: 200.0}
        )
        await until(lambda: _cash(ib) == STARTING_CASH - bought.price * 200 - D("1.30") - 10_000)
        listed = await ib.reqExecutionsAsync()
        # the calls were bought in the engine, not through this face: only the legs listed
        settled = [x.exec_id for x in engine.executions if x.settles]
        assert [f.execution.execId for f in listed] == settled
        assert len(settled) == 2
        # an execution filter's symbol names an option by its underlying, as at IB
        by_underlying = await ib.reqExecutionsAsync(ExecutionFilter(symbol="TQQQ"))
        assert [f.execution.execId for f in by_underlying] == settled
        assert await ib.reqExecutionsAsync(ExecutionFilter(symbol="QQQ")) == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []
