"""The journaled TWS venue in its own process (tests/sim/tws/venue_process.py), SIGKILLed with
orders working and started again on the same journal: every client of the matrix reconnects to
the same open orders (orderId, permId, orderRef, parentId, OCA group, conditions, status), the
same executions with their commissions and the same position, and the market goes on matching
those orders. Zero protocol errors on both sides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from tests.sim.tws import venue_process as child
from tests.sim.tws.clients import Api, Client
from tests.sim.tws.venue_process import venue_process
from tests.tws_venue import MONDAY, TQQQ, until

pytestmark = pytest.mark.anyio
WORKING = ("Submitted", "PreSubmitted")


@attrs.frozen
class Scenario:
    """Orders placed before the kill, and what the market does to them after the restart."""

    name: str
    place: Callable[[Any, Api, Any], None]
    """Places the orders with ``(ib, api, contract)``; each order has an orderRef."""
    market: tuple[tuple[str, int], ...]
    """The trades after the restart: (price, size), a minute apart."""
    final: dict[str, str]
    """Every order's status by orderRef once the market has moved."""
    position: float


def _limit(ib: Any, api: Api, contract: Any) -> None:
    ib.placeOrder(
        contract, api.LimitOrder("SELL", 94, 50.56, tif="GTC", outsideRth=True, orderRef="sell")
    )


def _conditional(ib: Any, api: Api, contract: Any) -> None:
    order = api.LimitOrder("BUY", 5, 48.0, tif="GTC", outsideRth=True, orderRef="dip")
    order.conditions = [
        api.PriceCondition(isMore=False, price=48.0, conId=contract.conId, exch="SMART")
    ]
    ib.placeOrder(contract, order)


def _both(ib: Any, api: Api, contract: Any) -> None:
    _limit(ib, api, contract)
    _conditional(ib, api, contract)


# Brackets and OCA groups join here once placeOrder takes parentId, transmit and ocaGroup.
SCENARIOS = [
    Scenario(
        name="limit",
        place=_limit,
        market=(("50.40", 100), ("50.60", 100)),
        final={"sell": "Filled"},
        position=0.0,
    ),
    Scenario(
        name="conditional",
        place=_conditional,
        market=(("48.50", 100), ("48.00", 100)),
        final={"dip": "Filled"},
        position=99.0,
    ),
    Scenario(
        name="limit-and-conditional",
        place=_both,
        market=(("48.00", 100), ("50.60", 100)),
        final={"sell": "Filled", "dip": "Filled"},
        position=5.0,
    ),
]


def books(ib: Any) -> dict[str, Any]:
    """What a client knows of its account: open orders, executions, positions."""
    return {
        "orders": sorted(
            (
                t.order.orderId,
                t.order.permId,
                t.order.orderRef,
                t.order.action,
                t.order.totalQuantity,
                t.order.orderType,
                t.order.lmtPrice,
                t.order.auxPrice,
                t.order.tif,
                t.order.outsideRth,
                t.order.parentId,
                t.order.ocaGroup,
                t.order.ocaType,
                [(c.isMore, c.price, c.conId) for c in t.order.conditions],
                t.orderStatus.status,
                t.orderStatus.remaining,
            )
            for t in ib.openTrades()
        ),
        "executions": sorted(
            (
                f.execution.execId,
                f.execution.orderId,
                f.execution.permId,
                f.execution.orderRef,
                f.execution.side,
                f.execution.shares,
                f.execution.price,
                f.execution.cumQty,
                f.execution.time,
                f.commissionReport.commission,
            )
            for f in ib.fills()
        ),
        "positions": [(p.contract.conId, p.position, p.avgCost) for p in ib.positions()],
    }


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
async def test_orders_executions_and_positions_survive_a_sigkill_of_the_venue(
    scenario: Scenario, client: Client, tmp_path: Path, client_errors: Callable[[], list[str]]
) -> None:
    """A filled buy and the scenario's working orders; SIGKILL; the same journal reopened in a
    new process: the client finds its books exactly as before, and the orders then trade."""
    journal = tmp_path / "venue.jsonl"
    async with venue_process(journal) as venue:
        ib = await client.connect_to(venue.port, client_id=5)
        [contract] = await ib.qualifyContractsAsync(client.api.Stock("TQQQ", "SMART", "USD"))
        await venue.trade("50.00", 100, 0)
        buy = ib.placeOrder(contract, client.api.LimitOrder("BUY", 94, 50.10, orderRef="buy"))
        await until(lambda: buy.orderStatus.status == "Submitted")
        await venue.trade("50.05", 500, 1)
        await until(lambda: buy.orderStatus.status == "Filled")
        await until(lambda: all(f.commissionReport.execId for f in buy.fills))
        scenario.place(ib, client.api, contract)
        await until(lambda: working(ib) == set(scenario.final))
        await until(lambda: position(ib) == 94.0)
        before = books(ib)
        assert await venue.protocol_errors() == []
        await venue.kill()
        await until(lambda: not ib.isConnected())
    async with venue_process(journal) as venue:
        ib = await client.connect_to(venue.port, client_id=5)
        assert books(ib) == before
        for minute, (price, size) in enumerate(scenario.market, start=2):
            await venue.trade(price, size, minute)
        await until(lambda: statuses(ib) == {"buy": "Filled", **scenario.final})
        await until(lambda: position(ib) == scenario.position)
        assert len(ib.fills()) == 1 + len(scenario.final)
        assert await venue.protocol_errors() == []
        ib.disconnect()
    assert client_errors() == []


def working(ib: Any) -> set[str]:
    return {t.order.orderRef for t in ib.openTrades() if t.orderStatus.status in WORKING}


def position(ib: Any) -> float:
    # a flat position is no position to the client (both libraries drop it)
    return sum(p.position for p in ib.positions() if p.contract.symbol == "TQQQ")


def statuses(ib: Any) -> dict[str, str]:
    return {t.order.orderRef: t.orderStatus.status for t in ib.trades()}


async def test_the_venue_process_refuses_a_malformed_command(tmp_path: Path) -> None:
    """A command it cannot read is answered as an error, and the venue goes on."""
    async with venue_process(tmp_path / "venue.jsonl") as venue:
        with pytest.raises(ValueError, match="unknown command"):
            await venue.ask("sell", "everything")
        with pytest.raises(ValueError, match="error trade"):
            await venue.ask("trade", "fifty", 1, 2)
        await venue.trade("50.00", 100, 0)
        assert await venue.protocol_errors() == []


def test_the_venue_process_lists_what_the_other_tests_trade() -> None:
    """The child repeats tests.tws_venue's instrument and Monday (it cannot import them)."""
    assert (child.TQQQ, child.MONDAY) == (TQQQ, MONDAY)
