"""The journaled TWS venue in its own process (tests/sim/tws/venue_process.py), SIGKILLed with
orders working and started again on the same journal: every client of the matrix reconnects to
the same open orders (orderId, permId, orderRef, parentId, OCA group, conditions, status), the
same executions with their commissions and the same position, and the market goes on matching
those orders: a limit, a conditional order, a bracket (``ib.bracketOrder``) before its parent
fills, and the options bot's OCA bracket after. Zero protocol errors on both sides."""

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


@attrs.frozen(kw_only=True)
class Scenario:
    """Orders placed before the kill, and what the market does to them after the restart."""

    name: str
    place: Callable[[Any, Api, Any], None]
    """Places the orders with ``(ib, api, contract)``; each order has an orderRef."""
    before: tuple[tuple[str, int], ...] = ()
    """The trades after the orders are placed, before the kill: (price, size), a minute apart."""
    placed: dict[str, str]
    """Every order's status by orderRef at the kill."""
    position_before: float = 94.0
    market: tuple[tuple[str, int], ...]
    """The trades after the restart."""
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


def _bracket(ib: Any, api: Api, contract: Any) -> None:
    # ib.bracketOrder: parent and take-profit held until the stop-loss transmits the three
    legs = ib.bracketOrder("BUY", 10, 49.00, 55.00, 45.00)
    for leg, ref in zip(legs, ("entry", "tp", "sl"), strict=True):
        leg.orderRef = ref
        leg.tif = "GTC"
        ib.placeOrder(contract, leg)


def _oca_bracket(ib: Any, api: Api, contract: Any) -> None:
    # the options bot's entry: parent limit, take-profit limit, stop-loss stop, one OCA group
    parent_id, tp_id, sl_id = (ib.client.getReqId() for _ in range(3))
    exits = {"parentId": parent_id, "ocaGroup": "entry-7", "ocaType": 1, "tif": "GTC"}
    legs = [
        api.LimitOrder(
            "BUY", 10, 50.00, orderId=parent_id, transmit=False, tif="GTC", orderRef="entry"
        ),
        api.LimitOrder("SELL", 10, 55.00, orderId=tp_id, transmit=False, orderRef="tp", **exits),
        api.StopOrder("SELL", 10, 45.00, orderId=sl_id, transmit=True, orderRef="sl", **exits),
    ]
    for leg in legs:
        ib.placeOrder(contract, leg)


SCENARIOS = [
    Scenario(
        name="limit",
        place=_limit,
        placed={"sell": "Submitted"},
        market=(("50.40", 100), ("50.60", 100)),
        final={"sell": "Filled"},
        position=0.0,
    ),
    Scenario(
        name="conditional",
        place=_conditional,
        placed={"dip": "PreSubmitted"},
        market=(("48.50", 100), ("48.00", 100)),
        final={"dip": "Filled"},
        position=99.0,
    ),
    Scenario(
        name="limit-and-conditional",
        place=_both,
        placed={"sell": "Submitted", "dip": "PreSubmitted"},
        market=(("48.00", 100), ("50.60", 100)),
        final={"sell": "Filled", "dip": "Filled"},
        position=5.0,
    ),
    Scenario(
        name="bracket",
        place=_bracket,
        placed={"entry": "Submitted", "tp": "PreSubmitted", "sl": "PreSubmitted"},
        market=(("48.90", 100), ("55.10", 100)),
        final={"entry": "Filled", "tp": "Filled", "sl": "Cancelled"},
        position=94.0,
    ),
    Scenario(
        name="oca-bracket-parent-filled",
        place=_oca_bracket,
        before=(("49.95", 100),),
        placed={"entry": "Filled", "tp": "Submitted", "sl": "PreSubmitted"},
        position_before=104.0,
        market=(("45.01", 100), ("44.90", 100)),
        final={"entry": "Filled", "tp": "Cancelled", "sl": "Filled"},
        position=94.0,
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
        for minute, (price, size) in enumerate(scenario.before, start=2):
            await until(lambda: working(ib) == set(scenario.placed))  # at the venue
            await venue.trade(price, size, minute)
        await until(lambda: statuses(ib) == {"buy": "Filled", **scenario.placed})
        await until(lambda: position(ib) == scenario.position_before)
        await until(lambda: all(f.commissionReport.execId for f in ib.fills()))
        before = books(ib)
        assert await venue.protocol_errors() == []
        await venue.kill()
        await until(lambda: not ib.isConnected())
    async with venue_process(journal) as venue:
        ib = await client.connect_to(venue.port, client_id=5)
        assert books(ib) == before
        for minute, (price, size) in enumerate(scenario.market, start=2 + len(scenario.before)):
            await venue.trade(price, size, minute)
        await until(lambda: statuses(ib) == {"buy": "Filled", **scenario.final})
        await until(lambda: position(ib) == scenario.position)
        filled = [ref for ref, status in scenario.final.items() if status == "Filled"]
        assert sorted(f.execution.orderRef for f in ib.fills()) == sorted(["buy", *filled])
        assert await venue.protocol_errors() == []
        ib.disconnect()
    assert client_errors() == []


def position(ib: Any) -> float:
    # a flat position is no position to the client (both libraries drop it)
    return sum(p.position for p in ib.positions() if p.contract.symbol == "TQQQ")


def working(ib: Any) -> set[str]:
    return {
        t.order.orderRef
        for t in ib.trades()
        if t.orderStatus.status in ("Submitted", "PreSubmitted")
    }


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


async def test_an_option_bracket_survives_a_sigkill_of_the_venue(
    client: Client, tmp_path: Path, client_errors: Callable[[], list[str]]
) -> None:
    """The options bot's entry on this week's 50 call (parent filled, take-profit working, stop
    waiting, one OCA group); SIGKILL; reopened on the journal: the same legs (parentId, group,
    type), the option execution and position (100 shares a contract in the average cost), and
    the market goes on: the call's bid reaches the take-profit, which fills, and the stop goes
    by OCA."""
    journal = tmp_path / "venue.jsonl"
    api = client.api
    async with venue_process(journal) as venue:
        ib = await client.connect_to(venue.port, client_id=5)
        await venue.trade("50.02", 1000, 0)
        [call] = await ib.qualifyContractsAsync(api.Option("TQQQ", "20261127", 50, "C", "SMART"))
        parent_id, tp_id, sl_id = (ib.client.getReqId() for _ in range(3))
        exits = {"parentId": parent_id, "ocaGroup": "call-1", "ocaType": 1, "tif": "DAY"}
        legs = [
            api.LimitOrder(
                "BUY", 2, 20.00, orderId=parent_id, transmit=False, tif="DAY", orderRef="entry"
            ),
            api.LimitOrder("SELL", 2, 9.50, orderId=tp_id, transmit=False, orderRef="tp", **exits),
            api.StopOrder("SELL", 2, 0.05, orderId=sl_id, transmit=True, orderRef="sl", **exits),
        ]
        for leg in legs:
            ib.placeOrder(call, leg)
        await until(lambda: working(ib) == {"entry", "tp", "sl"})
        await venue.trade("50.02", 1000, 1)
        await until(
            lambda: statuses(ib) == {"entry": "Filled", "tp": "Submitted", "sl": "PreSubmitted"}
        )
        await until(lambda: [p.position for p in ib.positions()] == [2.0])
        await until(lambda: all(f.commissionReport.execId for f in ib.fills()))
        before = books(ib)
        [(con_id, _, average_cost)] = before["positions"]
        assert con_id == call.conId
        assert average_cost == pytest.approx(ib.fills()[0].execution.price * 100)
        await venue.kill()
        await until(lambda: not ib.isConnected())
    async with venue_process(journal) as venue:
        ib = await client.connect_to(venue.port, client_id=5)
        assert books(ib) == before
        await venue.trade("60.00", 1000, 2)
        await venue.trade("60.00", 1000, 3)
        await until(lambda: statuses(ib) == {"entry": "Filled", "tp": "Filled", "sl": "Cancelled"})
        await until(lambda: not [p for p in ib.positions() if p.position])
        assert await venue.protocol_errors() == []
        ib.disconnect()
    assert client_errors() == []
