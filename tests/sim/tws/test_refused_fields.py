"""Whatever the venue does not implement is refused with 201 naming the field, never silently
accepted: every field of ``sim.tws.refusals.REFUSED`` set to something other than ib_insync's
default, through ib_insync over a real socket, is a 201 and no order; a modify that asks for an
unsupported field is refused and the order works on as it was. (Brackets, OCA groups and stop
orders, once refused here, are implemented: tests/sim/tws/test_brackets_wire.py and others.)"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_insync import (
    IB,
    LimitOrder,
    Order,
    PriceCondition,
    SoftDollarTier,
    Stock,
    TagValue,
    TimeCondition,
)

from sim.engine import Engine
from sim.tws.orders import WireContract, WireOrder
from sim.tws.refusals import REFUSED, Refused, refusal
from tests.tws_venue import TQQQ, connect, trade, until, venue

pytestmark = pytest.mark.anyio

# Each refused field (its name in REFUSED) -> the ib_insync Order attributes that set it.
ON_THE_SOCKET: dict[str, dict[str, Any]] = {
    "openClose": {"openClose": "C"},
    "origin": {"origin": 1},
    "blockOrder": {"blockOrder": True},
    "sweepToFill": {"sweepToFill": True},
    "displaySize": {"displaySize": 5},
    "hidden": {"hidden": True},
    "discretionaryAmt": {"discretionaryAmt": 0.05},
    "goodAfterTime": {"goodAfterTime": "20261123 09:31:00 US/Eastern"},
    "goodTillDate": {"goodTillDate": "20261231 16:00:00 US/Eastern"},
    "faGroup": {"faGroup": "group"},
    "faMethod": {"faMethod": "EqualQuantity"},
    "faPercentage": {"faPercentage": "10"},
    "faProfile": {"faProfile": "profile"},
    "modelCode": {"modelCode": "model"},
    "shortSaleSlot": {"shortSaleSlot": 1},
    "designatedLocation": {"designatedLocation": "X"},
    "exemptCode": {"exemptCode": 0},
    "rule80A": {"rule80A": "I"},
    "settlingFirm": {"settlingFirm": "FIRM"},
    "allOrNone": {"allOrNone": True},
    "minQty": {"minQty": 5},
    "percentOffset": {"percentOffset": 0.01},
    "eTradeOnly": {"eTradeOnly": True},
    "firmQuoteOnly": {"firmQuoteOnly": True},
    "nbboPriceCap": {"nbboPriceCap": 51.0},
    "auctionStrategy": {"auctionStrategy": 1},
    "startingPrice": {"startingPrice": 50.0},
    "stockRefPrice": {"stockRefPrice": 50.0},
    "delta": {"delta": 0.5},
    "stockRangeLower": {"stockRangeLower": 45.0},
    "stockRangeUpper": {"stockRangeUpper": 55.0},
    "overridePercentageConstraints": {"overridePercentageConstraints": True},
    "volatility": {"volatility": 0.3},
    "volatilityType": {"volatilityType": 2},
    "deltaNeutralOrderType": {"deltaNeutralOrderType": "LMT"},
    "deltaNeutralAuxPrice": {"deltaNeutralAuxPrice": 1.0},
    "continuousUpdate": {"continuousUpdate": True},
    "referencePriceType": {"referencePriceType": 1},
    "trailStopPrice": {"trailStopPrice": 47.0},
    "trailingPercent": {"trailingPercent": 1.0},
    "scaleInitLevelSize": {"scaleInitLevelSize": 5},
    "scaleSubsLevelSize": {"scaleSubsLevelSize": 5},
    "scalePriceIncrement": {"scalePriceIncrement": 0.1},
    "scaleTable": {"scaleTable": "1/2/3"},
    "activeStartTime": {"activeStartTime": "20261123 09:31:00 US/Eastern"},
    "activeStopTime": {"activeStopTime": "20261123 15:59:00 US/Eastern"},
    "hedgeType": {"hedgeType": "D", "hedgeParam": "0.5"},
    "optOutSmartRouting": {"optOutSmartRouting": True},
    "clearingAccount": {"clearingAccount": "CLEAR"},
    "clearingIntent": {"clearingIntent": "IB"},
    "notHeld": {"notHeld": True},
    "algoStrategy": {"algoStrategy": "Adaptive", "algoParams": [TagValue("priority", "Normal")]},
    "algoId": {"algoId": "algo-1"},
    "orderMiscOptions": {"orderMiscOptions": [TagValue("option", "1")]},
    "solicited": {"solicited": True},
    "randomizeSize": {"randomizeSize": True},
    "randomizePrice": {"randomizePrice": True},
    "conditionsIgnoreRth": {
        "conditions": [PriceCondition(price=40.0, conId=TQQQ.con_id, exch="SMART")],
        "conditionsIgnoreRth": True,
    },
    "conditionsCancelOrder": {
        "conditions": [PriceCondition(price=40.0, conId=TQQQ.con_id, exch="SMART")],
        "conditionsCancelOrder": True,
    },
    "adjustedOrderType": {"adjustedOrderType": "STP"},
    "triggerPrice": {"triggerPrice": 45.0},
    "lmtPriceOffset": {"lmtPriceOffset": 0.1},
    "adjustedStopPrice": {"adjustedStopPrice": 44.0},
    "adjustedStopLimitPrice": {"adjustedStopLimitPrice": 43.0},
    "adjustedTrailingAmount": {"adjustedTrailingAmount": 1.0},
    "adjustableTrailingUnit": {"adjustableTrailingUnit": 1},
    "extOperator": {"extOperator": "operator"},
    "softDollarTier": {"softDollarTier": SoftDollarTier("tier", "1", "")},
    "cashQty": {"cashQty": 1000.0},
    "mifid2DecisionMaker": {"mifid2DecisionMaker": "maker"},
    "mifid2DecisionAlgo": {"mifid2DecisionAlgo": "algo"},
    "mifid2ExecutionTrader": {"mifid2ExecutionTrader": "trader"},
    "mifid2ExecutionAlgo": {"mifid2ExecutionAlgo": "algo"},
    "dontUseAutoPriceForHedge": {"dontUseAutoPriceForHedge": True},
    "isOmsContainer": {"isOmsContainer": True},
    "discretionaryUpToLimitPrice": {"discretionaryUpToLimitPrice": True},
    "usePriceMgmtAlgo": {"usePriceMgmtAlgo": True},
    "duration": {"duration": 60},
    "postToAts": {"postToAts": 1},
    "autoCancelParent": {"autoCancelParent": True},
    "advancedErrorOverride": {"advancedErrorOverride": "8229"},
    "manualOrderTime": {"manualOrderTime": "20261123 10:00:00"},
}
# Fields the client sends only for an exchange (IBKRATS) or an order type (PEG BEST, PEG MID)
# that is refused before them: checked on the parsed order instead.
OFF_THE_SOCKET: dict[str, dict[str, Any]] = {
    "minTradeQty": {"min_trade_qty": 100},
    "minCompeteSize": {"min_compete_size": 100},
    "competeAgainstBestOffset": {"compete_against_best_offset": Decimal("0.01")},
    "midOffsetAtWhole": {"mid_offset_at_whole": Decimal("0.01")},
    "midOffsetAtHalf": {"mid_offset_at_half": Decimal("0.005")},
}
# Values of the fields the venue uses, outside what it implements: (the order's attributes,
# the field the reason names).
OTHER_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "stop_with_a_limit_price": ({"orderType": "STP", "auxPrice": 45.0}, "lmtPrice"),
    "stop_limit_without_a_stop": ({"orderType": "STP LMT"}, "auxPrice"),
    "stop_price_on_a_limit": ({"auxPrice": 49.0}, "auxPrice"),
    "trigger_method_ib_does_not_have": (
        {"orderType": "STP LMT", "auxPrice": 45.0, "triggerMethod": 5},
        "triggerMethod 5",
    ),
    "trigger_method_on_a_limit": ({"triggerMethod": 2}, "triggerMethod"),
    "oca_type_without_a_group": ({"ocaType": 1}, "ocaType"),
    "oca_type_ib_does_not_have": ({"ocaGroup": "group-1", "ocaType": 4}, "ocaType 4"),
    "trailing": ({"orderType": "TRAIL", "trailingPercent": 1.0}, "orderType TRAIL"),
    "relative": ({"orderType": "REL", "percentOffset": 0.01}, "orderType REL"),
    "immediate_or_cancel": ({"tif": "IOC"}, "tif IOC"),
    "good_till_date": ({"tif": "GTD", "goodTillDate": "20261231 16:00:00"}, "tif GTD"),
    "short_sale_action": ({"action": "SSHORT"}, "action SSHORT"),
    "fractional_quantity": ({"totalQuantity": 10.5}, "totalQuantity 10.5"),
    "another_account": ({"account": "DU7654321"}, "account DU7654321"),
    "time_condition": (
        {"conditions": [TimeCondition(time="20261123 11:00:00")]},
        "conditions[0] (TimeCondition)",
    ),
    "condition_on_another_contract": (
        {"conditions": [PriceCondition(price=40.0, conId=TQQQ.con_id + 1, exch="SMART")]},
        "conditions[0].conId",
    ),
    "condition_on_bid_ask": (
        {"conditions": [PriceCondition(price=40.0, conId=TQQQ.con_id, triggerMethod=2)]},
        "conditions[0].triggerMethod",
    ),
}


def test_every_refused_field_is_tested() -> None:
    """The table and the tests below cover the same fields: a row added is a row tested."""
    assert {row.field for row in REFUSED} == set(ON_THE_SOCKET) | set(OFF_THE_SOCKET)


async def _refused(ib: IB, orders: list[Order]) -> list[tuple[int, str]]:
    # Places each order on TQQQ and waits for the venue's answer: its (code, message).
    [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
    answers: dict[int, tuple[int, str]] = {}

    def on_error(req_id: int, code: int, message: str, _contract: Any) -> None:
        answers[req_id] = (code, message)

    ib.errorEvent += on_error
    trades = [ib.placeOrder(contract, order) for order in orders]
    await until(lambda: all(t.order.orderId in answers for t in trades))
    await until(lambda: all(t.orderStatus.status == "Cancelled" for t in trades))
    return [answers[t.order.orderId] for t in trades]


@pytest.mark.parametrize("field", sorted(ON_THE_SOCKET))
async def test_a_field_the_venue_does_not_implement_is_refused_with_201_naming_it(
    field: str, client_errors: Callable[[], list[str]]
) -> None:
    """One field off its default, the rest a plain limit order: 201 naming the field, no
    order in the engine, nothing fills."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        order = LimitOrder("BUY", 10, 50.00, orderRef=f"refused:{field}")
        for attribute, value in ON_THE_SOCKET[field].items():
            setattr(order, attribute, value)
        [(code, message)] = await _refused(ib, [order])
        assert code == 201
        assert message.startswith(f"Order rejected - reason:{field} is not supported by this")
        trade(engine, "49.90", 100, 1)
        assert engine.orders == {}
        assert server.orders == {}
        assert engine.executions == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.parametrize("case", sorted(OTHER_VALUES))
async def test_a_value_the_venue_does_not_implement_is_refused_with_201_naming_it(
    case: str, client_errors: Callable[[], list[str]]
) -> None:
    """Order types, times in force, actions, quantities, accounts and conditions the venue
    does not trade: 201 naming the field and its value, no order."""
    attributes, named = OTHER_VALUES[case]
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        order = LimitOrder("BUY", 10, 50.00, orderRef=f"refused:{case}")
        for attribute, value in attributes.items():
            setattr(order, attribute, value)
        [(code, message)] = await _refused(ib, [order])
        assert code == 201
        assert message.startswith(f"Order rejected - reason:{named} is not supported by this")
        assert engine.orders == {}
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


def _plain() -> WireOrder:
    # A limit order as ib_insync sends a default LimitOrder: nothing refused.
    return WireOrder(
        order_id=1,
        contract=WireContract(con_id=TQQQ.con_id, symbol="TQQQ", sec_type="STK"),
        action="BUY",
        total_quantity=Decimal(10),
        order_type="LMT",
        lmt_price=Decimal("50.00"),
        aux_price=None,
        tif="DAY",
        open_close="O",
    )


@pytest.mark.parametrize("field", sorted(OFF_THE_SOCKET))
def test_a_field_the_client_sends_only_for_refused_orders_is_refused_too(field: str) -> None:
    """The PEG BEST / PEG MID / IBKRATS fields, on a parsed order, are refused by name."""
    plain = _plain()
    assert refusal(plain, con_id=TQQQ.con_id) is None
    changed = attrs.evolve(plain, **OFF_THE_SOCKET[field])
    reason = refusal(changed, con_id=TQQQ.con_id)
    assert reason is not None
    assert reason.startswith(f"{field} is not supported by this venue")


async def test_a_modify_asking_for_an_unsupported_field_is_refused_and_the_order_works_on(
    client_errors: Callable[[], list[str]],
) -> None:
    """A resting limit modified into a hidden order: 201 naming hidden, and the venue's order
    keeps its fields and fills at its limit."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        codes: list[tuple[int, int, str]] = []
        ib.errorEvent += lambda req_id, code, msg, _contract: codes.append((req_id, code, msg))
        resting = ib.placeOrder(contract, LimitOrder("BUY", 10, 50.00, orderRef="modify:1"))
        await until(lambda: resting.orderStatus.status == "Submitted")
        resting.order.hidden = True
        resting.order.lmtPrice = 50.50
        ib.placeOrder(contract, resting.order)
        await until(lambda: any(code == 201 for _, code, _ in codes))
        [(req_id, _, message)] = codes
        assert req_id == resting.order.orderId
        assert message.startswith("Order rejected - reason:hidden is not supported")
        venue_order = server.orders["modify:1"]
        assert (venue_order.wire.hidden, venue_order.wire.lmt_price) == (False, Decimal("50.0"))
        assert not engine.orders["modify:1"].done
        trade(engine, "50.25", 100, 1)
        assert engine.executions == []  # 50.50 was refused with the modify
        trade(engine, "50.00", 100, 2)
        assert [(e.ref, e.price) for e in engine.executions] == [("modify:1", Decimal("50.00"))]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


def _set(row: Refused) -> object:
    # A value of the row's attribute's type that is not one of its unset values.
    default = row.unset[0]
    if isinstance(default, bool):
        return not default
    if isinstance(default, str):
        return "C"
    if isinstance(default, int):
        return 7
    return Decimal("1.5")  # the doubles: unset is None (and 0 for some)


@given(st.sets(st.sampled_from(range(len(REFUSED))), min_size=1))
def test_the_first_refused_field_set_is_the_one_named(indexes: set[int]) -> None:
    """Any fields of the table set at once: the reason names the first of them, in wire
    order, so the reason is the same whatever else the order sets."""
    plain = _plain()
    changed = attrs.evolve(plain, **{REFUSED[i].attribute: _set(REFUSED[i]) for i in indexes})
    reason = refusal(changed, con_id=TQQQ.con_id)
    assert reason is not None
    assert reason.startswith(f"{REFUSED[min(indexes)].field} is not supported by this venue")
