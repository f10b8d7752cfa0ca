"""The order messages of the TWS API: placeOrder and cancelOrder in, openOrder and completedOrder
out (ref/ib-wire.md sections 1.3 to 1.6), for server versions 157 to 178.

The layouts are those of ib_insync 0.9.86: ``client.placeOrder`` (client.py 410-620),
``decoder.openOrder`` (decoder.py 818-1071) and ``decoder.completedOrder`` (1073-1287); from 177
on, ib_async 1.0.3's, which drop faProfile from all three (its client.py 537, decoder.py 917
and 1181). Parsing is
strict: every field placeOrder carries is read, by type, in order, and a missing or leftover field
raises ``ProtocolError`` naming the field. ``WireOrder`` keeps every field openOrder echoes, so a
client that rebuilds its orders from openOrder on reconnect gets the order it placed.

Wire doubles become ``Decimal`` (``None`` for the empty field, IB's "unset"): ``"52.13"`` is
``Decimal("52.13")``. Integers the client leaves unset by default are ``int | None``; the others
are plain ``int``. Version-dependent fields are gated in one place, ``Since``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs

from .wire import Fields, ProtocolError

PLACE_ORDER = 3
CANCEL_ORDER = 4
OPEN_ORDER = 5
COMPLETED_ORDER = 101

MIN_SERVER_VERSION = 157
"""The lowest version ib_insync accepts (client.py 87)."""
MAX_SERVER_VERSION = 176
"""ib_insync's ``MaxClientVersion``, the highest version its encoder and decoder speak."""
HIGHEST_SERVER_VERSION = 178
"""ib_async's ``MaxClientVersion`` (client.py 88), the highest version this codec speaks."""


class Since(enum.IntEnum):
    """The first server version that carries each version-gated order field."""

    DURATION = 158
    """placeOrder and openOrder. ib_insync's decoder reads it only from 159 (IB's from 158); as
    the last field at 158, the extra one is harmless to ib_insync."""
    POST_TO_ATS = 160
    AUTO_CANCEL_PARENT = 162
    """placeOrder and openOrder; completedOrder carries it at every version."""
    ADVANCED_ERROR_OVERRIDE = 166
    """placeOrder only."""
    MANUAL_ORDER_TIME = 169
    """placeOrder's manualOrderTime and cancelOrder's manualCancelOrderTime."""
    PEG_BEST_PEG_MID = 170
    """minTradeQty and the PEG BEST / PEG MID offsets: in placeOrder when they apply, in
    openOrder and completedOrder always (5 fields)."""
    NO_FA_PROFILE = 177
    """faProfile is gone from placeOrder, openOrder and completedOrder (ib_async)."""


INFINITE = "Infinite"
"""How the client sends ``math.inf`` (only competeAgainstBestOffset uses it)."""


class ConditionKind(enum.IntEnum):
    """An order condition's ``condType`` (ib_insync order.py ``OrderCondition.createClass``)."""

    PRICE = 1
    TIME = 3
    MARGIN = 4
    EXECUTION = 5
    VOLUME = 6
    PERCENT_CHANGE = 7


@attrs.frozen(kw_only=True)
class WireComboLeg:
    """One leg of a BAG contract."""

    con_id: int = 0
    ratio: int = 0
    action: str = ""
    exchange: str = ""
    open_close: int = 0
    short_sale_slot: int = 0
    designated_location: str = ""
    exempt_code: int = -1


@attrs.frozen(kw_only=True)
class WireDeltaNeutralContract:
    con_id: int = 0
    delta: Decimal | None = None
    price: Decimal | None = None


@attrs.frozen(kw_only=True)
class WireContract:
    """The contract of placeOrder: its 12 fields, the security id, and the BAG and
    delta-neutral parts that ride elsewhere in the message."""

    con_id: int = 0
    symbol: str = ""
    sec_type: str = ""
    last_trade_date: str = ""
    strike: float = 0.0
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""
    sec_id_type: str = ""
    sec_id: str = ""
    combo_legs: tuple[WireComboLeg, ...] = ()
    """Only a BAG has legs."""
    delta_neutral: WireDeltaNeutralContract | None = None


@attrs.frozen(kw_only=True)
class WireCondition:
    """One order condition, of any kind. ``conjunction`` (``"a"`` or ``"o"``) links it to the
    next condition. ``value`` is the price, time, percent, volume or change percent, as the
    wire carries it; the fields a kind does not have are ``None``."""

    kind: int
    conjunction: str
    is_more: bool | None = None
    value: str = ""
    con_id: int | None = None
    exchange: str | None = None
    trigger_method: int | None = None
    """Price conditions only."""
    sec_type: str | None = None
    """Execution conditions only, as is ``symbol``."""
    symbol: str | None = None

    def price(self) -> Decimal:
        """The trigger price of a price condition."""
        if self.kind != ConditionKind.PRICE:
            raise ValueError(f"a condition of type {self.kind} has no price")
        return Decimal(self.value)


@attrs.frozen(kw_only=True)
class WireDeltaNeutralOrder:
    """The delta-neutral order attributes, on the wire when ``delta_neutral_order_type`` is set."""

    con_id: int = 0
    settling_firm: str = ""
    clearing_account: str = ""
    clearing_intent: str = ""
    open_close: str = ""
    short_sale: bool = False
    short_sale_slot: int = 0
    designated_location: str = ""


@attrs.frozen(kw_only=True)
class WireScale:
    """The scale attributes, on the wire when ``scale_price_increment`` is above 0."""

    price_adjust_value: Decimal | None = None
    price_adjust_interval: int | None = None
    profit_offset: Decimal | None = None
    auto_reset: bool = False
    init_position: int | None = None
    init_fill_qty: int | None = None
    random_percent: bool = False


@attrs.frozen(kw_only=True)
class WirePegBench:
    """The pegged-to-benchmark attributes, on the wire for a ``PEG BENCH`` order."""

    reference_contract_id: int = 0
    is_pegged_change_amount_decrease: bool = False
    pegged_change_amount: Decimal | None = None
    reference_change_amount: Decimal | None = None
    reference_exchange_id: str = ""


@attrs.frozen(kw_only=True)
class WireOrder:
    """Everything placeOrder carries, in wire order: what the venue models, and the rest to echo
    back on openOrder. Defaults are what ib_insync sends for a default ``Order``."""

    order_id: int
    contract: WireContract
    action: str
    """BUY or SELL (SSHORT for institutions)."""
    total_quantity: Decimal
    order_type: str
    lmt_price: Decimal | None
    aux_price: Decimal | None
    tif: str
    oca_group: str = ""
    account: str = ""
    open_close: str = ""
    origin: int = 0
    order_ref: str = ""
    transmit: bool = True
    parent_id: int = 0
    block_order: bool = False
    sweep_to_fill: bool = False
    display_size: int = 0
    trigger_method: int = 0
    outside_rth: bool = False
    hidden: bool = False
    # BAG only (the legs themselves are the contract's)
    order_combo_leg_prices: tuple[Decimal | None, ...] = ()
    smart_combo_routing_params: tuple[tuple[str, str], ...] = ()

    discretionary_amt: Decimal | None = Decimal(0)
    good_after_time: str = ""
    good_till_date: str = ""
    fa_group: str = ""
    fa_method: str = ""
    fa_percentage: str = ""
    fa_profile: str = ""
    model_code: str = ""
    short_sale_slot: int = 0
    designated_location: str = ""
    exempt_code: int = -1
    oca_type: int = 0
    rule_80a: str = ""
    settling_firm: str = ""
    all_or_none: bool = False
    min_qty: int | None = None
    percent_offset: Decimal | None = None
    e_trade_only: bool = False
    firm_quote_only: bool = False
    nbbo_price_cap: Decimal | None = None
    auction_strategy: int = 0
    starting_price: Decimal | None = None
    stock_ref_price: Decimal | None = None
    delta: Decimal | None = None
    stock_range_lower: Decimal | None = None
    stock_range_upper: Decimal | None = None
    override_percentage_constraints: bool = False
    volatility: Decimal | None = None
    volatility_type: int | None = None
    delta_neutral_order_type: str = ""
    delta_neutral_aux_price: Decimal | None = None
    delta_neutral: WireDeltaNeutralOrder = WireDeltaNeutralOrder()
    continuous_update: bool = False
    reference_price_type: int | None = None
    trail_stop_price: Decimal | None = None
    trailing_percent: Decimal | None = None
    scale_init_level_size: int | None = None
    scale_subs_level_size: int | None = None
    scale_price_increment: Decimal | None = None
    scale: WireScale = WireScale()
    scale_table: str = ""
    active_start_time: str = ""
    active_stop_time: str = ""
    hedge_type: str = ""
    hedge_param: str = ""
    """On the wire only with a ``hedge_type``."""
    opt_out_smart_routing: bool = False
    clearing_account: str = ""
    clearing_intent: str = ""
    not_held: bool = False
    algo_strategy: str = ""
    algo_params: tuple[tuple[str, str], ...] = ()
    algo_id: str = ""
    what_if: bool = False
    order_misc_options: str = ""
    """As on the wire: ``tag=value;`` pairs."""
    solicited: bool = False
    randomize_size: bool = False
    randomize_price: bool = False
    peg_bench: WirePegBench = WirePegBench()
    conditions: tuple[WireCondition, ...] = ()
    conditions_ignore_rth: bool = False
    conditions_cancel_order: bool = False
    adjusted_order_type: str = ""
    trigger_price: Decimal | None = None
    lmt_price_offset: Decimal | None = None
    adjusted_stop_price: Decimal | None = None
    adjusted_stop_limit_price: Decimal | None = None
    adjusted_trailing_amount: Decimal | None = None
    adjustable_trailing_unit: int = 0
    ext_operator: str = ""
    soft_dollar_tier_name: str = ""
    soft_dollar_tier_value: str = ""
    cash_qty: Decimal | None = None
    mifid2_decision_maker: str = ""
    mifid2_decision_algo: str = ""
    mifid2_execution_trader: str = ""
    mifid2_execution_algo: str = ""
    dont_use_auto_price_for_hedge: bool = False
    is_oms_container: bool = False
    discretionary_up_to_limit_price: bool = False
    use_price_mgmt_algo: bool = False
    # gated by the server version: see Since
    duration: int | None = None
    post_to_ats: int | None = None
    auto_cancel_parent: bool = False
    advanced_error_override: str = ""
    manual_order_time: str = ""
    min_trade_qty: int | None = None
    min_compete_size: int | None = None
    compete_against_best_offset: Decimal | None = None
    """``Decimal("Infinity")`` for the client's ``math.inf``."""
    mid_offset_at_whole: Decimal | None = None
    mid_offset_at_half: Decimal | None = None


@attrs.frozen(kw_only=True)
class WireOrderState:
    """The order state openOrder and completedOrder carry. The margin fields are text, as
    TWS sends them (numbers for a whatIf answer)."""

    status: str
    """PendingSubmit, PreSubmitted, Submitted, Filled, Cancelled, Inactive, ..."""
    init_margin_before: str = ""
    maint_margin_before: str = ""
    equity_with_loan_before: str = ""
    init_margin_change: str = ""
    maint_margin_change: str = ""
    equity_with_loan_change: str = ""
    init_margin_after: str = ""
    maint_margin_after: str = ""
    equity_with_loan_after: str = ""
    commission: float | None = None
    min_commission: float | None = None
    max_commission: float | None = None
    commission_currency: str = ""
    warning_text: str = ""
    completed_time: str = ""
    completed_status: str = ""


# --- parsing --------------------------------------------------------------------------------


# Fields that remember the last field read, to name it when fields are left over.
class _Cursor(Fields):
    def __init__(self, name: str, fields: Sequence[str]) -> None:
        super().__init__(name, fields)
        self.fields = fields
        self.last = "the message id"

    def text(self, what: str = "field") -> str:
        # ``Fields.text`` inlined: a placeOrder reads about 120 fields, and a venue reopened
        # with its orders re-reads every one it holds (``TwsServer._adopt``).
        at = self._at
        fields = self._fields
        if at >= len(fields):
            return super().text(what)  # raises, naming the missing field
        self._at = at + 1
        self.last = what
        return fields[at]

    def done(self) -> None:
        if self.remaining():
            raise ProtocolError(
                f"{self.name}: {self.remaining()} field(s) left over after {self.last} "
                f"(from field {self.position}): {list(self.fields[self.position :][:5])}"
            )


def _check_version(server_version: int) -> None:
    if not MIN_SERVER_VERSION <= server_version <= HIGHEST_SERVER_VERSION:
        raise ValueError(
            f"server version {server_version} is outside the {MIN_SERVER_VERSION}.."
            f"{HIGHEST_SERVER_VERSION} this codec speaks"
        )


def _open(message: str, msg_id: int, fields: Sequence[str], server_version: int) -> _Cursor:
    _check_version(server_version)
    f = _Cursor(f"{message} (server version {server_version})", fields)
    if f.integer("the message id") != msg_id:
        raise ProtocolError(f"{f.name}: the message id is {fields[0]!r}, not {msg_id}")
    return f


def _double(f: Fields, what: str, *, infinite: bool = False) -> Decimal | None:
    text = f.text(what)
    if text == "":
        return None
    if infinite and text == INFINITE:
        return Decimal("Infinity")
    try:
        value = Decimal(repr(float(text)))
    except ValueError:
        value = Decimal("NaN")
    if not value.is_finite():
        raise ProtocolError(f"{f.name}: field {f.position - 1} ({what}) is not a number: {text!r}")
    return value


def _required(f: Fields, what: str) -> Decimal:
    value = _double(f, what)
    if value is None:
        raise ProtocolError(f"{f.name}: field {f.position - 1} ({what}) is empty")
    return value


def _tag_values(f: Fields, count: int, what: str) -> tuple[tuple[str, str], ...]:
    return tuple((f.text(f"{what}[{i}].tag"), f.text(f"{what}[{i}].value")) for i in range(count))


def _count(f: Fields, what: str) -> int:
    count = f.integer(what)
    if count < 0:
        raise ProtocolError(f"{f.name}: field {f.position - 1} ({what}) is negative: {count}")
    return count


def parse_contract12(f: Fields) -> WireContract:
    """The 12 contract fields every request that names a contract carries (client.py 257-264):
    conId, symbol, secType, lastTradeDateOrContractMonth, strike, right, multiplier, exchange,
    primaryExchange, currency, localSymbol, tradingClass. An empty conId or strike is 0."""
    return WireContract(
        con_id=f.integer("conId", empty=0),
        symbol=f.text("symbol"),
        sec_type=f.text("secType"),
        last_trade_date=f.text("lastTradeDateOrContractMonth"),
        strike=f.number("strike") or 0.0,
        right=f.text("right"),
        multiplier=f.text("multiplier"),
        exchange=f.text("exchange"),
        primary_exchange=f.text("primaryExchange"),
        currency=f.text("currency"),
        local_symbol=f.text("localSymbol"),
        trading_class=f.text("tradingClass"),
    )


def _parse_contract(f: Fields) -> WireContract:
    contract = parse_contract12(f)
    return attrs.evolve(contract, sec_id_type=f.text("secIdType"), sec_id=f.text("secId"))


def _parse_combo_leg(f: Fields, what: str) -> WireComboLeg:
    return WireComboLeg(
        con_id=f.integer(f"{what}.conId"),
        ratio=f.integer(f"{what}.ratio"),
        action=f.text(f"{what}.action"),
        exchange=f.text(f"{what}.exchange"),
        open_close=f.integer(f"{what}.openClose"),
        short_sale_slot=f.integer(f"{what}.shortSaleSlot"),
        designated_location=f.text(f"{what}.designatedLocation"),
        exempt_code=f.integer(f"{what}.exemptCode"),
    )


def _parse_delta_neutral_order(f: Fields) -> WireDeltaNeutralOrder:
    return WireDeltaNeutralOrder(
        con_id=f.integer("deltaNeutralConId"),
        settling_firm=f.text("deltaNeutralSettlingFirm"),
        clearing_account=f.text("deltaNeutralClearingAccount"),
        clearing_intent=f.text("deltaNeutralClearingIntent"),
        open_close=f.text("deltaNeutralOpenClose"),
        short_sale=f.flag("deltaNeutralShortSale"),
        short_sale_slot=f.integer("deltaNeutralShortSaleSlot"),
        designated_location=f.text("deltaNeutralDesignatedLocation"),
    )


def _parse_scale(f: Fields) -> WireScale:
    return WireScale(
        price_adjust_value=_double(f, "scalePriceAdjustValue"),
        price_adjust_interval=f.optional_integer("scalePriceAdjustInterval"),
        profit_offset=_double(f, "scaleProfitOffset"),
        auto_reset=f.flag("scaleAutoReset"),
        init_position=f.optional_integer("scaleInitPosition"),
        init_fill_qty=f.optional_integer("scaleInitFillQty"),
        random_percent=f.flag("scaleRandomPercent"),
    )


def _parse_peg_bench(f: Fields) -> WirePegBench:
    return WirePegBench(
        reference_contract_id=f.integer("referenceContractId"),
        is_pegged_change_amount_decrease=f.flag("isPeggedChangeAmountDecrease"),
        pegged_change_amount=_double(f, "peggedChangeAmount"),
        reference_change_amount=_double(f, "referenceChangeAmount"),
        reference_exchange_id=f.text("referenceExchangeId"),
    )


# Each condition type's fields after its type, in the order of ib_insync's dataclasses
# (order.py 336-412), which is also how openOrder and completedOrder carry them:
# (WireCondition attribute, the client's name for it).
_CONDITION_LAYOUTS: dict[ConditionKind, tuple[tuple[str, str], ...]] = {
    ConditionKind.PRICE: (
        ("conjunction", "conjunction"),
        ("is_more", "isMore"),
        ("value", "price"),
        ("con_id", "conId"),
        ("exchange", "exch"),
        ("trigger_method", "triggerMethod"),
    ),
    ConditionKind.TIME: (("conjunction", "conjunction"), ("is_more", "isMore"), ("value", "time")),
    ConditionKind.MARGIN: (
        ("conjunction", "conjunction"),
        ("is_more", "isMore"),
        ("value", "percent"),
    ),
    ConditionKind.EXECUTION: (
        ("conjunction", "conjunction"),
        ("sec_type", "secType"),
        ("exchange", "exch"),
        ("symbol", "symbol"),
    ),
    ConditionKind.VOLUME: (
        ("conjunction", "conjunction"),
        ("is_more", "isMore"),
        ("value", "volume"),
        ("con_id", "conId"),
        ("exchange", "exch"),
    ),
    ConditionKind.PERCENT_CHANGE: (
        ("conjunction", "conjunction"),
        ("is_more", "isMore"),
        ("value", "changePercent"),
        ("con_id", "conId"),
        ("exchange", "exch"),
    ),
}
# How each kind's value must read (it is kept as text): the decoder turns it into this type.
_CONDITION_VALUE_TYPES: dict[ConditionKind, type] = {
    ConditionKind.PRICE: float,
    ConditionKind.TIME: str,
    ConditionKind.MARGIN: int,
    ConditionKind.VOLUME: int,
    ConditionKind.PERCENT_CHANGE: float,
}
CONJUNCTIONS = ("a", "o")


def _parse_condition(f: Fields, what: str) -> WireCondition:
    number = f.integer(f"{what}.condType")
    try:
        kind = ConditionKind(number)
    except ValueError:
        raise ProtocolError(
            f"{f.name}: field {f.position - 1} ({what}.condType) is not a condition type: {number}"
        ) from None
    values: dict[str, Any] = {}
    for attribute, name in _CONDITION_LAYOUTS[kind]:
        label = f"{what}.{name}"
        if attribute == "is_more":
            values[attribute] = f.flag(label)
        elif attribute in ("con_id", "trigger_method"):
            values[attribute] = f.integer(label)
        else:
            values[attribute] = f.text(label)
    if values["conjunction"] not in CONJUNCTIONS:
        raise ProtocolError(
            f"{f.name}: {what}.conjunction is {values['conjunction']!r}, not 'a' or 'o'"
        )
    value_type = _CONDITION_VALUE_TYPES.get(kind, str)
    if "value" in values and value_type is not str:
        try:
            value_type(values["value"])
        except ValueError:
            raise ProtocolError(
                f"{f.name}: {what} value {values['value']!r} is not {value_type.__name__}"
            ) from None
    return WireCondition(kind=kind, **values)


def parse_place_order(fields: Sequence[str], server_version: int) -> WireOrder:
    """The order of a placeOrder message (``fields`` from the message id on)."""
    f = _open("placeOrder", PLACE_ORDER, fields, server_version)
    # keyword arguments are evaluated left to right: each update() reads fields in wire order
    o: dict[str, Any] = {"order_id": f.integer("orderId"), "contract": _parse_contract(f)}
    o.update(
        action=f.text("action"),
        total_quantity=_required(f, "totalQuantity"),
        order_type=f.text("orderType"),
        lmt_price=_double(f, "lmtPrice"),
        aux_price=_double(f, "auxPrice"),
        tif=f.text("tif"),
        oca_group=f.text("ocaGroup"),
        account=f.text("account"),
        open_close=f.text("openClose"),
        origin=f.integer("origin"),
        order_ref=f.text("orderRef"),
        transmit=f.flag("transmit"),
        parent_id=f.integer("parentId"),
        block_order=f.flag("blockOrder"),
        sweep_to_fill=f.flag("sweepToFill"),
        display_size=f.integer("displaySize"),
        trigger_method=f.integer("triggerMethod"),
        outside_rth=f.flag("outsideRth"),
        hidden=f.flag("hidden"),
    )
    if o["contract"].sec_type == "BAG":
        legs = tuple(
            _parse_combo_leg(f, f"comboLegs[{i}]") for i in range(_count(f, "len(comboLegs)"))
        )
        o["contract"] = attrs.evolve(o["contract"], combo_legs=legs)
        o["order_combo_leg_prices"] = tuple(
            _double(f, f"orderComboLegs[{i}].price")
            for i in range(_count(f, "len(orderComboLegs)"))
        )
        o["smart_combo_routing_params"] = _tag_values(
            f, _count(f, "len(smartComboRoutingParams)"), "smartComboRoutingParams"
        )
    f.text("sharesAllocation")
    o.update(
        discretionary_amt=_double(f, "discretionaryAmt"),
        good_after_time=f.text("goodAfterTime"),
        good_till_date=f.text("goodTillDate"),
        fa_group=f.text("faGroup"),
        fa_method=f.text("faMethod"),
        fa_percentage=f.text("faPercentage"),
        fa_profile=f.text("faProfile") if server_version < Since.NO_FA_PROFILE else "",
        model_code=f.text("modelCode"),
        short_sale_slot=f.integer("shortSaleSlot"),
        designated_location=f.text("designatedLocation"),
        exempt_code=f.integer("exemptCode"),
        oca_type=f.integer("ocaType"),
        rule_80a=f.text("rule80A"),
        settling_firm=f.text("settlingFirm"),
        all_or_none=f.flag("allOrNone"),
        min_qty=f.optional_integer("minQty"),
        percent_offset=_double(f, "percentOffset"),
        e_trade_only=f.flag("eTradeOnly"),
        firm_quote_only=f.flag("firmQuoteOnly"),
        nbbo_price_cap=_double(f, "nbboPriceCap"),
        auction_strategy=f.integer("auctionStrategy"),
        starting_price=_double(f, "startingPrice"),
        stock_ref_price=_double(f, "stockRefPrice"),
        delta=_double(f, "delta"),
        stock_range_lower=_double(f, "stockRangeLower"),
        stock_range_upper=_double(f, "stockRangeUpper"),
        override_percentage_constraints=f.flag("overridePercentageConstraints"),
        volatility=_double(f, "volatility"),
        volatility_type=f.optional_integer("volatilityType"),
        delta_neutral_order_type=f.text("deltaNeutralOrderType"),
        delta_neutral_aux_price=_double(f, "deltaNeutralAuxPrice"),
    )
    if o["delta_neutral_order_type"]:
        o["delta_neutral"] = _parse_delta_neutral_order(f)
    o.update(
        continuous_update=f.flag("continuousUpdate"),
        reference_price_type=f.optional_integer("referencePriceType"),
        trail_stop_price=_double(f, "trailStopPrice"),
        trailing_percent=_double(f, "trailingPercent"),
        scale_init_level_size=f.optional_integer("scaleInitLevelSize"),
        scale_subs_level_size=f.optional_integer("scaleSubsLevelSize"),
        scale_price_increment=_double(f, "scalePriceIncrement"),
    )
    if _scales(o["scale_price_increment"]):
        o["scale"] = _parse_scale(f)
    o.update(
        scale_table=f.text("scaleTable"),
        active_start_time=f.text("activeStartTime"),
        active_stop_time=f.text("activeStopTime"),
        hedge_type=f.text("hedgeType"),
    )
    if o["hedge_type"]:
        o["hedge_param"] = f.text("hedgeParam")
    o.update(
        opt_out_smart_routing=f.flag("optOutSmartRouting"),
        clearing_account=f.text("clearingAccount"),
        clearing_intent=f.text("clearingIntent"),
        not_held=f.flag("notHeld"),
    )
    if f.flag("deltaNeutralContract present"):
        delta_neutral = WireDeltaNeutralContract(
            con_id=f.integer("deltaNeutralContract.conId"),
            delta=_double(f, "deltaNeutralContract.delta"),
            price=_double(f, "deltaNeutralContract.price"),
        )
        o["contract"] = attrs.evolve(o["contract"], delta_neutral=delta_neutral)
    o["algo_strategy"] = f.text("algoStrategy")
    if o["algo_strategy"]:
        o["algo_params"] = _tag_values(f, _count(f, "len(algoParams)"), "algoParams")
    o.update(
        algo_id=f.text("algoId"),
        what_if=f.flag("whatIf"),
        order_misc_options=f.text("orderMiscOptions"),
        solicited=f.flag("solicited"),
        randomize_size=f.flag("randomizeSize"),
        randomize_price=f.flag("randomizePrice"),
    )
    if o["order_type"] == "PEG BENCH":
        o["peg_bench"] = _parse_peg_bench(f)
    o["conditions"] = tuple(
        _parse_condition(f, f"conditions[{i}]") for i in range(_count(f, "len(conditions)"))
    )
    if o["conditions"]:
        o["conditions_ignore_rth"] = f.flag("conditionsIgnoreRth")
        o["conditions_cancel_order"] = f.flag("conditionsCancelOrder")
    o.update(
        adjusted_order_type=f.text("adjustedOrderType"),
        trigger_price=_double(f, "triggerPrice"),
        lmt_price_offset=_double(f, "lmtPriceOffset"),
        adjusted_stop_price=_double(f, "adjustedStopPrice"),
        adjusted_stop_limit_price=_double(f, "adjustedStopLimitPrice"),
        adjusted_trailing_amount=_double(f, "adjustedTrailingAmount"),
        adjustable_trailing_unit=f.integer("adjustableTrailingUnit"),
        ext_operator=f.text("extOperator"),
        soft_dollar_tier_name=f.text("softDollarTier.name"),
        soft_dollar_tier_value=f.text("softDollarTier.val"),
        cash_qty=_double(f, "cashQty"),
        mifid2_decision_maker=f.text("mifid2DecisionMaker"),
        mifid2_decision_algo=f.text("mifid2DecisionAlgo"),
        mifid2_execution_trader=f.text("mifid2ExecutionTrader"),
        mifid2_execution_algo=f.text("mifid2ExecutionAlgo"),
        dont_use_auto_price_for_hedge=f.flag("dontUseAutoPriceForHedge"),
        is_oms_container=f.flag("isOmsContainer"),
        discretionary_up_to_limit_price=f.flag("discretionaryUpToLimitPrice"),
        use_price_mgmt_algo=f.flag("usePriceMgmtAlgo"),
    )
    if server_version >= Since.DURATION:
        o["duration"] = f.optional_integer("duration")
    if server_version >= Since.POST_TO_ATS:
        o["post_to_ats"] = f.optional_integer("postToAts")
    if server_version >= Since.AUTO_CANCEL_PARENT:
        o["auto_cancel_parent"] = f.flag("autoCancelParent")
    if server_version >= Since.ADVANCED_ERROR_OVERRIDE:
        o["advanced_error_override"] = f.text("advancedErrorOverride")
    if server_version >= Since.MANUAL_ORDER_TIME:
        o["manual_order_time"] = f.text("manualOrderTime")
    if server_version >= Since.PEG_BEST_PEG_MID:
        if o["contract"].exchange == "IBKRATS":
            o["min_trade_qty"] = f.optional_integer("minTradeQty")
        if o["order_type"] == "PEG BEST":
            o["min_compete_size"] = f.optional_integer("minCompeteSize")
            o["compete_against_best_offset"] = offset = _double(
                f, "competeAgainstBestOffset", infinite=True
            )
            if offset is not None and offset.is_infinite():
                o["mid_offset_at_whole"] = _double(f, "midOffsetAtWhole")
                o["mid_offset_at_half"] = _double(f, "midOffsetAtHalf")
        elif o["order_type"] == "PEG MID":
            o["mid_offset_at_whole"] = _double(f, "midOffsetAtWhole")
            o["mid_offset_at_half"] = _double(f, "midOffsetAtHalf")
    f.done()
    return WireOrder(**o)


def parse_cancel_order(fields: Sequence[str], server_version: int) -> tuple[int, str]:
    """The order id of a cancelOrder message, and its manualCancelOrderTime ("" before 169)."""
    f = _open("cancelOrder", CANCEL_ORDER, fields, server_version)
    f.integer("version")
    order_id = f.integer("orderId")
    manual_time = (
        f.text("manualCancelOrderTime") if server_version >= Since.MANUAL_ORDER_TIME else ""
    )
    f.done()
    return order_id, manual_time


def _scales(increment: Decimal | None) -> bool:
    # client.py: `0 < order.scalePriceIncrement < UNSET_DOUBLE`; unset is the empty field
    return increment is not None and increment.is_finite() and increment > 0


# --- encoding -------------------------------------------------------------------------------
# Each encoder lists the fields in the order ib_insync's decoder unpacks them; a block sent
# under a condition is sent under the very condition the decoder tests.


def _contract11(contract: WireContract) -> list[object]:
    # the decoder's contract has no primaryExchange
    return [
        contract.con_id,
        contract.symbol,
        contract.sec_type,
        contract.last_trade_date,
        contract.strike,
        contract.right,
        contract.multiplier,
        contract.exchange,
        contract.currency,
        contract.local_symbol,
        contract.trading_class,
    ]


def _combo(order: WireOrder) -> list[object]:
    out: list[object] = ["", len(order.contract.combo_legs)]  # comboLegsDescrip
    for leg in order.contract.combo_legs:
        out += [
            leg.con_id,
            leg.ratio,
            leg.action,
            leg.exchange,
            leg.open_close,
            leg.short_sale_slot,
            leg.designated_location,
            leg.exempt_code,
        ]
    out += [len(order.order_combo_leg_prices), *order.order_combo_leg_prices]
    out.append(len(order.smart_combo_routing_params))
    for tag, value in order.smart_combo_routing_params:
        out += [tag, value]
    return out


def _scale_and_hedge(order: WireOrder) -> list[object]:
    out: list[object] = [
        order.scale_init_level_size,
        order.scale_subs_level_size,
        order.scale_price_increment,
    ]
    if _scales(order.scale_price_increment):
        s = order.scale
        out += [
            s.price_adjust_value,
            s.price_adjust_interval,
            s.profit_offset,
            s.auto_reset,
            s.init_position,
            s.init_fill_qty,
            s.random_percent,
        ]
    out.append(order.hedge_type)
    if order.hedge_type:
        out.append(order.hedge_param)
    return out


def _delta_neutral_contract_and_algo(order: WireOrder) -> list[object]:
    dnc = order.contract.delta_neutral
    out: list[object] = [False] if dnc is None else [True, dnc.con_id, dnc.delta, dnc.price]
    out.append(order.algo_strategy)
    if order.algo_strategy:
        out.append(len(order.algo_params))
        for tag, value in order.algo_params:
            out += [tag, value]
    return out


def _peg_bench_and_conditions(order: WireOrder) -> list[object]:
    out: list[object] = []
    if order.order_type == "PEG BENCH":
        p = order.peg_bench
        out += [
            p.reference_contract_id,
            p.is_pegged_change_amount_decrease,
            p.pegged_change_amount,
            p.reference_change_amount,
            p.reference_exchange_id,
        ]
    out.append(len(order.conditions))
    for condition in order.conditions:
        layout = _CONDITION_LAYOUTS[ConditionKind(condition.kind)]
        out += [condition.kind, *(getattr(condition, attribute) for attribute, _ in layout)]
    if order.conditions:
        out += [order.conditions_ignore_rth, order.conditions_cancel_order]
    return out


def _fa_profile(order: WireOrder, server_version: int) -> list[object]:
    return [order.fa_profile] if server_version < Since.NO_FA_PROFILE else []


def _peg_best_peg_mid(order: WireOrder, server_version: int) -> list[object]:
    if server_version < Since.PEG_BEST_PEG_MID:
        return []
    offset = order.compete_against_best_offset
    return [
        order.min_trade_qty,
        order.min_compete_size,
        INFINITE if offset is not None and offset.is_infinite() else offset,
        order.mid_offset_at_whole,
        order.mid_offset_at_half,
    ]


def open_order_fields(
    order: WireOrder,
    state: WireOrderState,
    *,
    client_id: int,
    perm_id: int,
    server_version: int,
) -> list[object]:
    """An openOrder message for ``order`` as client ``client_id`` placed it, in ``state``."""
    _check_version(server_version)
    out: list[object] = [OPEN_ORDER, order.order_id, *_contract11(order.contract)]
    out += [
        order.action,
        order.total_quantity,
        order.order_type,
        order.lmt_price,
        order.aux_price,
        order.tif,
        order.oca_group,
        order.account,
        order.open_close,
        order.origin,
        order.order_ref,
        client_id,
        perm_id,
        order.outside_rth,
        order.hidden,
        order.discretionary_amt,
        order.good_after_time,
        "",  # sharesAllocation
        order.fa_group,
        order.fa_method,
        order.fa_percentage,
        *_fa_profile(order, server_version),
        order.model_code,
        order.good_till_date,
        order.rule_80a,
        order.percent_offset,
        order.settling_firm,
        order.short_sale_slot,
        order.designated_location,
        order.exempt_code,
        order.auction_strategy,
        order.starting_price,
        order.stock_ref_price,
        order.delta,
        order.stock_range_lower,
        order.stock_range_upper,
        order.display_size,
        order.block_order,
        order.sweep_to_fill,
        order.all_or_none,
        order.min_qty,
        order.oca_type,
        order.e_trade_only,
        order.firm_quote_only,
        order.nbbo_price_cap,
        order.parent_id,
        order.trigger_method,
        order.volatility,
        order.volatility_type,
        order.delta_neutral_order_type,
        order.delta_neutral_aux_price,
    ]
    if order.delta_neutral_order_type:
        dn = order.delta_neutral
        out += [
            dn.con_id,
            dn.settling_firm,
            dn.clearing_account,
            dn.clearing_intent,
            dn.open_close,
            dn.short_sale,
            dn.short_sale_slot,
            dn.designated_location,
        ]
    out += [
        order.continuous_update,
        order.reference_price_type,
        order.trail_stop_price,
        order.trailing_percent,
        None,  # basisPoints
        None,  # basisPointsType
        *_combo(order),
        *_scale_and_hedge(order),
        order.opt_out_smart_routing,
        order.clearing_account,
        order.clearing_intent,
        order.not_held,
        *_delta_neutral_contract_and_algo(order),
        order.solicited,
        order.what_if,
        state.status,
        state.init_margin_before,
        state.maint_margin_before,
        state.equity_with_loan_before,
        state.init_margin_change,
        state.maint_margin_change,
        state.equity_with_loan_change,
        state.init_margin_after,
        state.maint_margin_after,
        state.equity_with_loan_after,
        state.commission,
        state.min_commission,
        state.max_commission,
        state.commission_currency,
        state.warning_text,
        order.randomize_size,
        order.randomize_price,
        *_peg_bench_and_conditions(order),
        order.adjusted_order_type,
        order.trigger_price,
        order.trail_stop_price,
        order.lmt_price_offset,
        order.adjusted_stop_price,
        order.adjusted_stop_limit_price,
        order.adjusted_trailing_amount,
        order.adjustable_trailing_unit,
        order.soft_dollar_tier_name,
        order.soft_dollar_tier_value,
        "",  # softDollarTier.displayName: TWS's, placeOrder does not carry it
        order.cash_qty,
        order.dont_use_auto_price_for_hedge,
        order.is_oms_container,
        order.discretionary_up_to_limit_price,
        order.use_price_mgmt_algo,
    ]
    if server_version >= Since.DURATION:
        out.append(order.duration)
    if server_version >= Since.POST_TO_ATS:
        out.append(order.post_to_ats)
    if server_version >= Since.AUTO_CANCEL_PARENT:
        out.append(order.auto_cancel_parent)
    out += _peg_best_peg_mid(order, server_version)
    return out


def completed_order_fields(
    order: WireOrder,
    state: WireOrderState,
    *,
    perm_id: int,
    filled: Decimal,
    server_version: int,
    parent_perm_id: int = 0,
) -> list[object]:
    """A completedOrder message for ``order``, done with ``filled`` shares, in ``state`` (its
    ``completed_time`` and ``completed_status`` included)."""
    _check_version(server_version)
    out: list[object] = [COMPLETED_ORDER, *_contract11(order.contract)]
    out += [
        order.action,
        order.total_quantity,
        order.order_type,
        order.lmt_price,
        order.aux_price,
        order.tif,
        order.oca_group,
        order.account,
        order.open_close,
        order.origin,
        order.order_ref,
        perm_id,
        order.outside_rth,
        order.hidden,
        order.discretionary_amt,
        order.good_after_time,
        order.fa_group,
        order.fa_method,
        order.fa_percentage,
        *_fa_profile(order, server_version),
        order.model_code,
        order.good_till_date,
        order.rule_80a,
        order.percent_offset,
        order.settling_firm,
        order.short_sale_slot,
        order.designated_location,
        order.exempt_code,
        order.starting_price,
        order.stock_ref_price,
        order.delta,
        order.stock_range_lower,
        order.stock_range_upper,
        order.display_size,
        order.sweep_to_fill,
        order.all_or_none,
        order.min_qty,
        order.oca_type,
        order.trigger_method,
        order.volatility,
        order.volatility_type,
        order.delta_neutral_order_type,
        order.delta_neutral_aux_price,
    ]
    if order.delta_neutral_order_type:
        dn = order.delta_neutral
        out += [dn.con_id, dn.short_sale, dn.short_sale_slot, dn.designated_location]
    out += [
        order.continuous_update,
        order.reference_price_type,
        order.trail_stop_price,
        order.trailing_percent,
        *_combo(order),
        *_scale_and_hedge(order),
        order.clearing_account,
        order.clearing_intent,
        order.not_held,
        *_delta_neutral_contract_and_algo(order),
        order.solicited,
        state.status,
        order.randomize_size,
        order.randomize_price,
        *_peg_bench_and_conditions(order),
        order.trail_stop_price,
        order.lmt_price_offset,
        order.cash_qty,
        order.dont_use_auto_price_for_hedge,
        order.is_oms_container,
        "",  # autoCancelDate
        filled,
        0,  # refFuturesConId
        order.auto_cancel_parent,
        "",  # shareholder
        False,  # imbalanceOnly
        False,  # routeMarketableToBbo
        parent_perm_id,
        state.completed_time,
        state.completed_status,
    ]
    out += _peg_best_peg_mid(order, server_version)
    return out
