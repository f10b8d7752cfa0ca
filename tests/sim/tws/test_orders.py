"""The order codec of the TWS face, against ib_insync itself: every placeOrder its client builds
parses into what was sent, and every openOrder / completedOrder we build decodes, without a
logged error, into the order that was placed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_insync import (
    IB,
    Bag,
    ComboLeg,
    Contract,
    DeltaNeutralContract,
    ExecutionCondition,
    LimitOrder,
    MarginCondition,
    MarketOrder,
    Order,
    OrderComboLeg,
    PercentChangeCondition,
    PriceCondition,
    Stock,
    StopOrder,
    TagValue,
    TimeCondition,
    Trade,
    VolumeCondition,
)
from ib_insync.client import Client
from ib_insync.decoder import Decoder
from ib_insync.order import OrderCondition
from ib_insync.util import UNSET_DOUBLE, UNSET_INTEGER, dataclassAsDict
from ib_insync.wrapper import Wrapper

from sim.tws.orders import (
    MAX_SERVER_VERSION,
    MIN_SERVER_VERSION,
    ConditionKind,
    Since,
    WireComboLeg,
    WireCondition,
    WireOrder,
    WireOrderState,
    completed_order_fields,
    open_order_fields,
    parse_cancel_order,
    parse_place_order,
)
from sim.tws.wire import ProtocolError, encode_field

VERSIONS = [MIN_SERVER_VERSION, MAX_SERVER_VERSION]
ALL_VERSIONS = list(range(MIN_SERVER_VERSION, MAX_SERVER_VERSION + 1))
CLIENT_ID = 7
PERM_ID = 1873000001
D = Decimal


def tqqq(**kw: Any) -> Contract:
    return Stock(
        "TQQQ",
        "SMART",
        "USD",
        conId=900001,
        primaryExchange="NASDAQ",
        localSymbol="TQQQ",
        tradingClass="NMS",
        **kw,
    )


def _grid_buy() -> tuple[Contract, Order]:
    # the grid's conditional buy: rest a GTC limit, armed once the last trade is at or under
    order = LimitOrder("BUY", 100, 49.5, tif="GTC", outsideRth=True, orderRef="grid:TQQQ:buy:49.50")
    order.conditions = [PriceCondition(isMore=False, price=52.13, conId=900001, exch="SMART")]
    return tqqq(), order


def _every_condition() -> tuple[Contract, Order]:
    order = LimitOrder("BUY", 10, 50.25, conditionsCancelOrder=True, conditionsIgnoreRth=True)
    order.conditions = [
        PriceCondition(isMore=True, price=55.0, conId=900001, exch="SMART", triggerMethod=2).Or(),
        TimeCondition(isMore=True, time="20261123 15:30:00 US/Eastern").Or(),
        MarginCondition(isMore=False, percent=30).And(),
        ExecutionCondition(secType="STK", exch="SMART", symbol="SQQQ").Or(),
        VolumeCondition(isMore=True, volume=1_000_000, conId=900001, exch="SMART").And(),
        PercentChangeCondition(isMore=False, changePercent=-2.5, conId=900001, exch="SMART"),
    ]
    return tqqq(), order


def _bag() -> tuple[Contract, Order]:
    contract = Bag(
        symbol="SPY",
        exchange="SMART",
        currency="USD",
        comboLegs=[
            ComboLeg(conId=1, ratio=1, action="BUY", exchange="SMART"),
            ComboLeg(conId=2, ratio=2, action="SELL", exchange="SMART", exemptCode=3),
        ],
    )
    order = LimitOrder(
        "BUY",
        1,
        1.25,
        orderComboLegs=[OrderComboLeg(price=0.5), OrderComboLeg()],
        smartComboRoutingParams=[TagValue("NonGuaranteed", "1")],
    )
    return contract, order


def _exotic() -> tuple[Contract, Order]:
    # every conditional block of placeOrder at once, and most of the flat fields set
    contract = tqqq(deltaNeutralContract=DeltaNeutralContract(conId=5, delta=0.5, price=10.25))
    order = Order(
        action="SELL",
        totalQuantity=300,
        orderType="PEG BENCH",
        lmtPrice=50.0,
        auxPrice=0.5,
        tif="DAY",
        ocaGroup="oca-1",
        ocaType=2,
        account="DU1234567",
        origin=0,
        blockOrder=True,
        sweepToFill=True,
        displaySize=100,
        triggerMethod=7,
        discretionaryAmt=0.1,
        goodAfterTime="20261123 09:35:00 US/Eastern",
        faGroup="g",
        faMethod="EqualQuantity",
        faPercentage="10",
        faProfile="p",
        modelCode="m",
        shortSaleSlot=1,
        designatedLocation="loc",
        exemptCode=2,
        rule80A="A",
        settlingFirm="firm",
        allOrNone=True,
        minQty=50,
        percentOffset=0.01,
        eTradeOnly=True,
        firmQuoteOnly=True,
        nbboPriceCap=51.0,
        auctionStrategy=1,
        startingPrice=49.0,
        stockRefPrice=48.5,
        delta=0.3,
        stockRangeLower=40.0,
        stockRangeUpper=60.0,
        overridePercentageConstraints=True,
        volatility=0.25,
        volatilityType=2,
        deltaNeutralOrderType="LMT",
        deltaNeutralAuxPrice=1.5,
        deltaNeutralConId=6,
        deltaNeutralSettlingFirm="dnfirm",
        deltaNeutralClearingAccount="dnacct",
        deltaNeutralClearingIntent="IB",
        deltaNeutralOpenClose="C",
        deltaNeutralShortSale=True,
        deltaNeutralShortSaleSlot=2,
        deltaNeutralDesignatedLocation="dnloc",
        continuousUpdate=True,
        referencePriceType=1,
        trailStopPrice=47.0,
        trailingPercent=1.5,
        scaleInitLevelSize=100,
        scaleSubsLevelSize=50,
        scalePriceIncrement=0.05,
        scalePriceAdjustValue=0.01,
        scalePriceAdjustInterval=60,
        scaleProfitOffset=0.2,
        scaleAutoReset=True,
        scaleInitPosition=10,
        scaleInitFillQty=5,
        scaleRandomPercent=True,
        scaleTable="table",
        activeStartTime="20261123 09:30:00",
        activeStopTime="20261123 16:00:00",
        hedgeType="D",
        hedgeParam="0.5",
        optOutSmartRouting=True,
        clearingAccount="clr",
        clearingIntent="Away",
        notHeld=True,
        algoStrategy="Adaptive",
        algoParams=[TagValue("adaptivePriority", "Normal"), TagValue("x", "y")],
        algoId="algo-1",
        orderMiscOptions=[TagValue("misc", "1")],
        solicited=True,
        randomizeSize=True,
        randomizePrice=True,
        referenceContractId=42,
        isPeggedChangeAmountDecrease=True,
        peggedChangeAmount=0.5,
        referenceChangeAmount=0.25,
        referenceExchangeId="NYSE",
        adjustedOrderType="STP",
        triggerPrice=45.0,
        lmtPriceOffset=0.05,
        adjustedStopPrice=44.0,
        adjustedStopLimitPrice=43.5,
        adjustedTrailingAmount=1.0,
        adjustableTrailingUnit=1,
        extOperator="ext",
        cashQty=15000.0,
        mifid2DecisionMaker="dm",
        mifid2DecisionAlgo="da",
        mifid2ExecutionTrader="et",
        mifid2ExecutionAlgo="ea",
        dontUseAutoPriceForHedge=True,
        isOmsContainer=True,
        discretionaryUpToLimitPrice=True,
        usePriceMgmtAlgo=True,
        duration=60,
        postToAts=1,
        autoCancelParent=True,
        advancedErrorOverride="8229",
        manualOrderTime="20261123 10:00:00",
    )
    order.softDollarTier.name = "tier"
    order.softDollarTier.val = "1"
    order.conditions = [TimeCondition(isMore=True, time="20261123 15:00:00")]
    return contract, order


def _peg_mid_on_ibkrats() -> tuple[Contract, Order]:
    order = Order(
        action="BUY",
        totalQuantity=10,
        orderType="PEG MID",
        lmtPrice=50.0,
        minTradeQty=5,
        midOffsetAtWhole=0.01,
        midOffsetAtHalf=0.005,
    )
    return Stock("TQQQ", "IBKRATS", "USD", conId=900001), order


def _peg_best() -> tuple[Contract, Order]:
    order = Order(
        action="BUY",
        totalQuantity=10,
        orderType="PEG BEST",
        lmtPrice=50.0,
        minCompeteSize=100,
        competeAgainstBestOffset=0.02,
    )
    return tqqq(), order


ORDERS: dict[str, Callable[[], tuple[Contract, Order]]] = {
    "grid_conditional_buy": _grid_buy,
    "market": lambda: (tqqq(), MarketOrder("SELL", 25)),
    "every_condition_or_chain": _every_condition,
    "what_if": lambda: (tqqq(), LimitOrder("BUY", 1000, 50.0, whatIf=True)),
    "child_not_transmitted": lambda: (
        tqqq(),
        LimitOrder("SELL", 100, 55.0, transmit=False, parentId=41, orderRef="tp"),
    ),
    "hidden": lambda: (tqqq(), LimitOrder("BUY", 5, 48.75, hidden=True)),
    "good_till_date": lambda: (
        tqqq(),
        LimitOrder("SELL", 7, 60.01, tif="GTD", goodTillDate="20261231 16:00:00 US/Eastern"),
    ),
    "stop": lambda: (tqqq(), StopOrder("SELL", 100, 45.5, tif="GTC")),
    "bag": _bag,
    "exotic": _exotic,
    "peg_mid_ibkrats": _peg_mid_on_ibkrats,
    "peg_best": _peg_best,
}


# --- ib_insync as the oracle --------------------------------------------------------------


def sent_by_client(version: int, request: Callable[[Client], None]) -> list[list[str]]:
    """The fields of each message ib_insync's client sends for ``request`` at ``version``."""
    client = Client(Wrapper(None))
    client._serverVersion = version
    client.connState = Client.CONNECTED
    sent: list[str] = []
    client.sendMsg = sent.append  # type: ignore[method-assign, assignment]  # not a socket
    try:
        request(client)
    finally:
        client.connState = Client.DISCONNECTED
    assert all(message.endswith("\0") for message in sent)
    return [message[:-1].split("\0") for message in sent]


def place_order_frame(version: int, order_id: int, contract: Contract, order: Order) -> list[str]:
    """The fields of the placeOrder message ib_insync's client sends at ``version``."""
    (fields,) = sent_by_client(version, lambda client: client.placeOrder(order_id, contract, order))
    return fields


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def logged_errors() -> Iterator[list[logging.LogRecord]]:
    """ERROR records of the ib_insync loggers: the decoder logs a bad message, never raises."""
    handler = Collect()
    logger = logging.getLogger("ib_insync")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def decode(ib: IB, version: int, fields: Sequence[object]) -> list[logging.LogRecord]:
    """Feed one message of ours to ib_insync's decoder; return what it logged at ERROR."""
    decoder = Decoder(ib.wrapper, version)
    with logged_errors() as errors:
        decoder.interpret([encode_field(field) for field in fields])
    return errors


def completed_orders_requested() -> IB:
    """An IB whose reqCompletedOrders is outstanding, as ib_insync's reqCompletedOrdersAsync
    leaves it: only then does its wrapper take a completedOrder (ref section 1.6)."""
    ib = IB()
    ib.wrapper.startReq("completedOrders")
    return ib


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    # ib_insync's startReq makes an asyncio.Future: give it a loop of this test's own
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


# --- what ib_insync sends, as a WireOrder would hold it --------------------------------------


def as_wire(value: object) -> object:
    if value is None or value in (UNSET_DOUBLE, UNSET_INTEGER):
        return None
    if isinstance(value, float):
        return D("Infinity") if value == float("inf") else D(repr(value))
    return value


def camel(name: str, prefix: str = "") -> str:
    head, *rest = name.split("_")
    words = [head, *(word[:1].upper() + word[1:] for word in rest)]
    if prefix:
        words[0] = words[0][:1].upper() + words[0][1:]
        words.insert(0, prefix)
    return "".join(words)


# WireOrder fields not named after their Order attribute, or not held by Order as one value
SPECIAL = {
    "order_id",
    "contract",
    "order_combo_leg_prices",
    "smart_combo_routing_params",
    "delta_neutral",
    "scale",
    "peg_bench",
    "algo_params",
    "order_misc_options",
    "soft_dollar_tier_name",
    "soft_dollar_tier_value",
    "conditions",
}
RENAMED = {"rule_80a": "rule80A"}
GATES = {
    "duration": Since.DURATION,
    "post_to_ats": Since.POST_TO_ATS,
    "auto_cancel_parent": Since.AUTO_CANCEL_PARENT,
    "advanced_error_override": Since.ADVANCED_ERROR_OVERRIDE,
    "manual_order_time": Since.MANUAL_ORDER_TIME,
    "min_trade_qty": Since.PEG_BEST_PEG_MID,
    "min_compete_size": Since.PEG_BEST_PEG_MID,
    "compete_against_best_offset": Since.PEG_BEST_PEG_MID,
    "mid_offset_at_whole": Since.PEG_BEST_PEG_MID,
    "mid_offset_at_half": Since.PEG_BEST_PEG_MID,
}


def expected_condition(condition: OrderCondition) -> WireCondition:
    match condition:
        case PriceCondition():
            return WireCondition(
                kind=ConditionKind.PRICE,
                conjunction=condition.conjunction,
                is_more=condition.isMore,
                value=str(condition.price),
                con_id=condition.conId,
                exchange=condition.exch,
                trigger_method=condition.triggerMethod,
            )
        case TimeCondition():
            return WireCondition(
                kind=ConditionKind.TIME,
                conjunction=condition.conjunction,
                is_more=condition.isMore,
                value=condition.time,
            )
        case MarginCondition():
            return WireCondition(
                kind=ConditionKind.MARGIN,
                conjunction=condition.conjunction,
                is_more=condition.isMore,
                value=str(condition.percent),
            )
        case ExecutionCondition():
            return WireCondition(
                kind=ConditionKind.EXECUTION,
                conjunction=condition.conjunction,
                sec_type=condition.secType,
                exchange=condition.exch,
                symbol=condition.symbol,
            )
        case VolumeCondition():
            return WireCondition(
                kind=ConditionKind.VOLUME,
                conjunction=condition.conjunction,
                is_more=condition.isMore,
                value=str(condition.volume),
                con_id=condition.conId,
                exchange=condition.exch,
            )
        case PercentChangeCondition():
            return WireCondition(
                kind=ConditionKind.PERCENT_CHANGE,
                conjunction=condition.conjunction,
                is_more=condition.isMore,
                value=str(condition.changePercent),
                con_id=condition.conId,
                exchange=condition.exch,
            )
    raise AssertionError(f"no expectation for {condition!r}")


def assert_parsed(
    wire: WireOrder, order_id: int, contract: Contract, order: Order, version: int
) -> None:
    """``wire`` holds every field ib_insync sent for (order_id, contract, order)."""
    differences: dict[str, tuple[object, object]] = {}

    def check(name: str, got: object, sent: object) -> None:
        if got != as_wire(sent):
            differences[name] = (got, sent)

    check("order_id", wire.order_id, order_id)
    for field in attrs.fields(WireOrder):
        if field.name in SPECIAL or version < GATES.get(field.name, 0):
            continue
        name = RENAMED.get(field.name, camel(field.name))
        check(field.name, getattr(wire, field.name), getattr(order, name))
    for field in attrs.fields(type(wire.contract)):
        if field.name in ("combo_legs", "delta_neutral"):
            continue
        name = {"last_trade_date": "lastTradeDateOrContractMonth"}.get(
            field.name, camel(field.name)
        )
        check(f"contract.{field.name}", getattr(wire.contract, field.name), getattr(contract, name))
    if contract.secType == "BAG":
        check(
            "contract.combo_legs",
            [attrs.asdict(leg) for leg in wire.contract.combo_legs],
            [
                {name: getattr(leg, camel(name)) for name in attrs.fields_dict(WireComboLeg)}
                for leg in contract.comboLegs
            ],
        )
        check(
            "order_combo_leg_prices",
            wire.order_combo_leg_prices,
            tuple(as_wire(leg.price) for leg in order.orderComboLegs),
        )
        check(
            "smart_combo_routing_params",
            wire.smart_combo_routing_params,
            tuple(tuple(tag) for tag in order.smartComboRoutingParams),
        )
    dnc = contract.deltaNeutralContract
    check(
        "contract.delta_neutral",
        wire.contract.delta_neutral and attrs.asdict(wire.contract.delta_neutral),
        dnc and {"con_id": dnc.conId, "delta": as_wire(dnc.delta), "price": as_wire(dnc.price)},
    )
    if order.deltaNeutralOrderType:
        for name, got in attrs.asdict(wire.delta_neutral).items():
            check(f"delta_neutral.{name}", got, getattr(order, camel(name, "deltaNeutral")))
    if wire.scale_price_increment:
        for name, got in attrs.asdict(wire.scale).items():
            check(f"scale.{name}", got, getattr(order, camel(name, "scale")))
    if order.orderType == "PEG BENCH":
        for name, got in attrs.asdict(wire.peg_bench).items():
            check(f"peg_bench.{name}", got, getattr(order, camel(name)))
    check(
        "algo_params",
        wire.algo_params,
        tuple(tuple(tag) for tag in order.algoParams) if order.algoStrategy else (),
    )
    check(
        "order_misc_options",
        wire.order_misc_options,
        "".join(f"{tag.tag}={tag.value};" for tag in order.orderMiscOptions),
    )
    check("soft_dollar_tier_name", wire.soft_dollar_tier_name, order.softDollarTier.name)
    check("soft_dollar_tier_value", wire.soft_dollar_tier_value, order.softDollarTier.val)
    check("conditions", wire.conditions, tuple(map(expected_condition, order.conditions)))
    assert differences == {}


# Order attributes openOrder does not carry (ib_insync's decoder leaves them at their default)
NOT_IN_OPEN_ORDER = {
    "orderId",
    "clientId",
    "permId",
    "transmit",
    "overridePercentageConstraints",
    "scaleTable",
    "activeStartTime",
    "activeStopTime",
    "algoId",
    "orderMiscOptions",
    "extOperator",
    "mifid2DecisionMaker",
    "mifid2DecisionAlgo",
    "mifid2ExecutionTrader",
    "mifid2ExecutionAlgo",
    "advancedErrorOverride",
    "manualOrderTime",
}
NOT_IN_COMPLETED_ORDER = NOT_IN_OPEN_ORDER | {
    "auctionStrategy",
    "blockOrder",
    "eTradeOnly",
    "firmQuoteOnly",
    "nbboPriceCap",
    "parentId",
    "optOutSmartRouting",
    "whatIf",
    "deltaNeutralSettlingFirm",
    "deltaNeutralClearingAccount",
    "deltaNeutralClearingIntent",
    "deltaNeutralOpenClose",
    "adjustedOrderType",
    "triggerPrice",
    "adjustedStopPrice",
    "adjustedStopLimitPrice",
    "adjustedTrailingAmount",
    "adjustableTrailingUnit",
    "softDollarTier",
    "discretionaryUpToLimitPrice",
    "usePriceMgmtAlgo",
    "duration",
    "postToAts",
    "filledQuantity",
}
# Contract attributes neither message carries
NOT_IN_CONTRACT = {"primaryExchange", "secIdType", "secId", "comboLegsDescrip"}


def assert_rebuilt(
    rebuilt: Order, order: Order, version: int, skip: set[str] = NOT_IN_OPEN_ORDER
) -> None:
    """ib_insync rebuilt ``order`` from our message: every field the message carries."""
    skip = set(skip)
    if version < Since.DURATION:
        skip |= {"duration", "postToAts", "autoCancelParent"}
    if version < Since.PEG_BEST_PEG_MID:
        skip |= {
            "minTradeQty",
            "minCompeteSize",
            "competeAgainstBestOffset",
            "midOffsetAtWhole",
            "midOffsetAtHalf",
        }
    got, sent = dataclassAsDict(rebuilt), dataclassAsDict(order)
    assert {k: (got[k], v) for k, v in sent.items() if k not in skip and got[k] != v} == {}


def assert_same_contract(rebuilt: Contract, contract: Contract) -> None:
    got, sent = dataclassAsDict(rebuilt), dataclassAsDict(contract)
    assert {
        k: (got[k], v) for k, v in sent.items() if k not in NOT_IN_CONTRACT and got[k] != v
    } == {}


def round_trip(version: int, order_id: int, contract: Contract, order: Order) -> WireOrder:
    wire = parse_place_order(place_order_frame(version, order_id, contract, order), version)
    assert_parsed(wire, order_id, contract, order, version)
    return wire


# --- placeOrder -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", list(ORDERS))
def test_place_order_parses_into_every_field_the_client_sent(case: str, version: int) -> None:
    """parse_place_order reads back what ib_insync's placeOrder sent, field for field."""
    contract, order = ORDERS[case]()
    round_trip(version, 11, contract, order)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_place_order_parses_at_every_server_version(version: int) -> None:
    """Each version gate of placeOrder agrees with ib_insync's, 157 through 176."""
    for build in (_grid_buy, _exotic, _peg_mid_on_ibkrats, _peg_best):
        contract, order = build()
        round_trip(version, 12, contract, order)


def test_grid_conditional_buy_parses_into_the_venue_fields() -> None:
    """The fields the venue models come out typed: Decimals, flags and the price condition."""
    contract, order = _grid_buy()
    wire = round_trip(176, 12, contract, order)
    assert (wire.action, wire.total_quantity, wire.order_type) == ("BUY", D(100), "LMT")
    assert (wire.lmt_price, wire.aux_price, wire.tif) == (D("49.5"), None, "GTC")
    assert (wire.outside_rth, wire.transmit, wire.order_ref) == (True, True, "grid:TQQQ:buy:49.50")
    assert (wire.contract.symbol, wire.contract.primary_exchange) == ("TQQQ", "NASDAQ")
    (condition,) = wire.conditions
    assert (condition.kind, condition.is_more, condition.price()) == (1, False, D("52.13"))
    assert (condition.conjunction, condition.con_id, condition.exchange) == ("a", 900001, "SMART")


def test_peg_best_with_an_infinite_offset_parses() -> None:
    """competeAgainstBestOffset=inf goes as "Infinite" and brings the two mid offsets along."""
    contract, order = _peg_best()
    order.competeAgainstBestOffset = float("inf")
    order.midOffsetAtWhole, order.midOffsetAtHalf = 0.01, 0.005
    wire = round_trip(176, 13, contract, order)
    assert wire.compete_against_best_offset == D("Infinity")


@pytest.mark.parametrize("version", VERSIONS)
def test_place_order_with_a_leftover_field_is_refused_naming_the_last_field(version: int) -> None:
    """One field too many: ProtocolError, naming the field it follows."""
    contract, order = _grid_buy()
    fields = place_order_frame(version, 14, contract, order)
    last = "manualOrderTime" if version >= Since.MANUAL_ORDER_TIME else "usePriceMgmtAlgo"
    with pytest.raises(ProtocolError, match=f"1 field\\(s\\) left over after {last}"):
        parse_place_order([*fields, ""], version)


@pytest.mark.parametrize("version", VERSIONS)
def test_place_order_missing_a_field_is_refused_naming_it(version: int) -> None:
    """One field short: ProtocolError, naming the missing field."""
    contract, order = _grid_buy()
    fields = place_order_frame(version, 15, contract, order)
    last = "manualOrderTime" if version >= Since.MANUAL_ORDER_TIME else "usePriceMgmtAlgo"
    with pytest.raises(ProtocolError, match=f"missing field \\d+ \\({last}\\)"):
        parse_place_order(fields[:-1], version)


def test_place_order_with_an_unknown_condition_type_is_refused() -> None:
    """condType 2 is no condition IB defines."""
    contract, order = _grid_buy()
    order.conditions = [PriceCondition(condType=2, price=1.0)]
    fields = place_order_frame(176, 16, contract, order)
    with pytest.raises(ProtocolError, match=r"conditions\[0\]\.condType.*: 2"):
        parse_place_order(fields, 176)


def test_place_order_with_a_bad_conjunction_is_refused() -> None:
    """A conjunction links conditions with 'a' or 'o', nothing else."""
    contract, order = _grid_buy()
    order.conditions = [PriceCondition(conjunction="x", price=1.0)]
    with pytest.raises(ProtocolError, match=r"conditions\[0\]\.conjunction"):
        parse_place_order(place_order_frame(176, 17, contract, order), 176)


def test_place_order_with_a_misplaced_field_is_refused() -> None:
    """Text where an integer or a finite number belongs: ProtocolError naming the field."""
    contract, order = _grid_buy()
    fields = place_order_frame(176, 18, contract, order)
    fields[1] = "seven"
    with pytest.raises(ProtocolError, match=r"\(orderId\) is not an integer"):
        parse_place_order(fields, 176)
    fields[1] = "18"
    for price in ("nan", "inf", "Infinite", "49,5"):
        fields[19] = price
        with pytest.raises(ProtocolError, match=r"\(lmtPrice\) is not a number"):
            parse_place_order(fields, 176)


def test_another_message_is_not_a_place_order() -> None:
    """The message id must be placeOrder's."""
    contract, order = _grid_buy()
    fields = place_order_frame(176, 19, contract, order)
    with pytest.raises(ProtocolError, match="message id"):
        parse_place_order(["4", *fields[1:]], 176)


def test_server_versions_outside_the_codec_are_refused() -> None:
    """The codec speaks 157..178 only: others are a programming error, not a wire one."""
    contract, order = _grid_buy()
    fields = place_order_frame(176, 20, contract, order)
    with pytest.raises(ValueError, match="outside"):
        parse_place_order(fields, 179)


# --- cancelOrder ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_cancel_order_parses(version: int) -> None:
    """cancelOrder carries the order id, and a manual cancel time from 169 on."""

    def cancel_two(client: Client) -> None:
        client.cancelOrder(21)
        client.cancelOrder(22, "20261123 10:00:00")

    sent = sent_by_client(version, cancel_two)
    plain, manual = (parse_cancel_order(fields, version) for fields in sent)
    assert plain == (21, "")
    expected = "20261123 10:00:00" if version >= Since.MANUAL_ORDER_TIME else ""
    assert manual == (22, expected)
    with pytest.raises(ProtocolError, match="left over"):
        parse_cancel_order([*sent[0], "x"], version)


# --- openOrder ------------------------------------------------------------------------------

SUBMITTED = WireOrderState(status="Submitted")
DECODABLE = [case for case in ORDERS if case != "what_if"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", DECODABLE)
def test_open_order_rebuilds_the_order_that_was_placed(case: str, version: int) -> None:
    """placeOrder -> WireOrder -> openOrder -> ib_insync: the same Order, contract and state."""
    contract, order = ORDERS[case]()
    wire = round_trip(version, 31, contract, order)
    ib = IB()
    fields = open_order_fields(
        wire, SUBMITTED, client_id=CLIENT_ID, perm_id=PERM_ID, server_version=version
    )
    assert decode(ib, version, fields) == []
    trade: Trade = ib.wrapper.trades[(CLIENT_ID, 31)]
    assert (trade.order.orderId, trade.order.clientId, trade.order.permId) == (
        31,
        CLIENT_ID,
        PERM_ID,
    )
    assert trade.orderStatus.status == "Submitted"
    assert_rebuilt(trade.order, order, version)
    assert_same_contract(trade.contract, contract)


def test_open_order_echoes_the_grid_fields() -> None:
    """The fields the grid relies on after a reconnect, spelled out."""
    contract, order = _grid_buy()
    wire = round_trip(176, 32, contract, order)
    ib = IB()
    state = WireOrderState(status="PreSubmitted", commission=1.0, commission_currency="USD")
    fields = open_order_fields(wire, state, client_id=1, perm_id=5, server_version=176)
    assert decode(ib, 176, fields) == []
    trade = ib.wrapper.trades[(1, 32)]
    o = trade.order
    assert (o.action, o.totalQuantity, o.lmtPrice, o.tif) == ("BUY", 100.0, 49.5, "GTC")
    assert (o.outsideRth, o.orderRef, o.permId) == (True, "grid:TQQQ:buy:49.50", 5)
    assert o.conditions == [
        PriceCondition(isMore=False, price=52.13, conId=900001, exch="SMART", triggerMethod=0)
    ]
    assert trade.orderStatus.status == "PreSubmitted"
    assert trade.contract.symbol == "TQQQ"


@pytest.mark.parametrize("version", VERSIONS)
def test_open_order_answers_what_if(version: int, loop: asyncio.AbstractEventLoop) -> None:
    """A whatIf order's openOrder ends the client's whatIfOrder request with the margins."""
    contract, order = ORDERS["what_if"]()
    wire = round_trip(version, 33, contract, order)
    ib = IB()
    future = ib.wrapper.startReq(33, contract)
    state = WireOrderState(
        status="PreSubmitted",
        init_margin_before="0.0",
        init_margin_change="25000.0",
        init_margin_after="25000.0",
        commission=5.0,
        commission_currency="USD",
    )
    fields = open_order_fields(wire, state, client_id=1, perm_id=0, server_version=version)
    assert decode(ib, version, fields) == []
    assert future.done()
    answer = future.result()
    assert (answer.initMarginChange, answer.commission, answer.status) == (
        "25000.0",
        5.0,
        "PreSubmitted",
    )
    assert ib.wrapper.trades == {}


@pytest.mark.parametrize("version", [v for v in ALL_VERSIONS if v != Since.DURATION])
def test_open_order_has_no_field_the_decoder_does_not_read(version: int) -> None:
    """Drop our last field and ib_insync fails: it reads every field we send.

    (At 158 our last field is duration, which IB reads from 158 but ib_insync only from 159.)
    """
    for build in (_grid_buy, _exotic, _peg_mid_on_ibkrats):
        contract, order = build()
        wire = round_trip(version, 34, contract, order)
        fields = open_order_fields(wire, SUBMITTED, client_id=1, perm_id=9, server_version=version)
        assert decode(IB(), version, fields) == []
        assert decode(IB(), version, fields[:-1]) != []


# --- completedOrder -------------------------------------------------------------------------

FILLED = WireOrderState(
    status="Filled", completed_time="20261123 15:59:59 America/New_York", completed_status="Filled"
)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", DECODABLE)
def test_completed_order_rebuilds_the_order_that_was_placed(
    case: str, version: int, loop: asyncio.AbstractEventLoop
) -> None:
    """placeOrder -> WireOrder -> completedOrder -> ib_insync, during reqCompletedOrders."""
    contract, order = ORDERS[case]()
    wire = round_trip(version, 41, contract, order)
    ib = completed_orders_requested()
    fields = completed_order_fields(
        wire, FILLED, perm_id=PERM_ID, filled=wire.total_quantity, server_version=version
    )
    assert decode(ib, version, fields) == []
    (trade,) = ib.wrapper._results["completedOrders"]
    assert ib.wrapper.trades[PERM_ID] is trade
    assert trade.orderStatus.status == "Filled"
    assert (trade.order.permId, trade.order.filledQuantity) == (PERM_ID, order.totalQuantity)
    assert_rebuilt(trade.order, order, version, NOT_IN_COMPLETED_ORDER)
    assert_same_contract(trade.contract, contract)


@pytest.mark.parametrize("version", ALL_VERSIONS)
def test_completed_order_has_no_field_the_decoder_does_not_read(
    version: int, loop: asyncio.AbstractEventLoop
) -> None:
    """Drop our last field and ib_insync fails: it reads every field we send."""
    for build in (_grid_buy, _exotic, _peg_mid_on_ibkrats):
        contract, order = build()
        wire = round_trip(version, 43, contract, order)
        fields = completed_order_fields(
            wire, FILLED, perm_id=PERM_ID, filled=D(0), server_version=version
        )
        assert decode(completed_orders_requested(), version, fields) == []
        assert decode(completed_orders_requested(), version, fields[:-1]) != []


def test_completed_order_outside_a_request_is_an_error_in_ib_insync() -> None:
    """ref section 1.6: without reqCompletedOrders outstanding, ib_insync drops the message."""
    contract, order = _grid_buy()
    wire = round_trip(176, 42, contract, order)
    fields = completed_order_fields(
        wire, FILLED, perm_id=PERM_ID, filled=D(100), server_version=176
    )
    assert decode(IB(), 176, fields) != []


# --- any limit order ------------------------------------------------------------------------

cents = st.decimals(min_value=D("0.01"), max_value=D("99999.99"), places=2)
price_conditions = st.builds(
    lambda more, price, con_id, exch, method, conjunction: PriceCondition(
        conjunction=conjunction,
        isMore=more,
        price=float(price),
        conId=con_id,
        exch=exch,
        triggerMethod=method,
    ),
    st.booleans(),
    cents,
    st.integers(min_value=0, max_value=2**31 - 2),
    st.sampled_from(["SMART", "NASDAQ", "ARCA"]),
    st.integers(min_value=0, max_value=8),
    st.sampled_from(["a", "o"]),
)
# ib_insync drops every field whose value is "?" from an openOrder of an order it did not place
# (wrapper.openOrder: "ignore '?' values in the order"), so such an orderRef cannot round-trip.
refs = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\0"), max_size=40
).filter(lambda ref: ref != "?")


@given(
    quantity=st.integers(min_value=1, max_value=1_000_000),
    price=cents,
    tif=st.sampled_from(["DAY", "GTC"]),
    outside_rth=st.booleans(),
    ref=refs,
    conditions=st.lists(price_conditions, max_size=3),
)
def test_any_limit_order_round_trips_through_both_messages(
    quantity: int,
    price: Decimal,
    tif: str,
    outside_rth: bool,
    ref: str,
    conditions: list[PriceCondition],
) -> None:
    """placeOrder parses into the same order, and its openOrder rebuilds it, at 157 and 176."""
    order = LimitOrder(
        "SELL", quantity, float(price), tif=tif, outsideRth=outside_rth, orderRef=ref
    )
    order.conditions = list[OrderCondition](conditions)
    for version in VERSIONS:
        wire = round_trip(version, 51, tqqq(), order)
        assert (wire.lmt_price, wire.total_quantity, wire.order_ref) == (price, D(quantity), ref)
        assert [c.price() for c in wire.conditions] == [D(repr(c.price)) for c in conditions]
        assert [c.conjunction for c in wire.conditions] == [c.conjunction for c in conditions]
        ib = IB()
        fields = open_order_fields(
            wire, SUBMITTED, client_id=CLIENT_ID, perm_id=PERM_ID, server_version=version
        )
        assert decode(ib, version, fields) == []
        rebuilt = ib.wrapper.trades[(CLIENT_ID, 51)].order
        assert_rebuilt(rebuilt, order, version)
        assert rebuilt.conditions == conditions


def test_condition_price_is_only_for_price_conditions() -> None:
    """price() of a time condition is a mistake, said as such."""
    with pytest.raises(ValueError, match="no price"):
        WireCondition(kind=ConditionKind.TIME, conjunction="a", value="20261123").price()
