"""What the TWS API server refuses in a placeOrder: every field it parses (``sim.tws.orders``)
whose value asks for something the venue does not do. Such an order is refused whole with
error 201, "Order rejected - reason:<field> is not supported by this venue (<why>)", and nothing
of it works: a venue that accepted an OCA group and let both orders fill, or held a bracket's
child as a plain order, would be worse than one that says no.

``REFUSED`` is the table: each field, in wire order, with the values that mean "not set" as
ib_insync 0.9.86 sends its ``Order`` defaults (``UNSET_DOUBLE`` and ``UNSET_INTEGER`` go on the
wire as the empty field, parsed as None; empty strings; False; the zeros and -1 it defaults
to), and why the venue cannot honour it. ``refusal`` also checks the fields the venue does use
but only for some values: the action, the quantity, the order type (LMT, MKT, STP, STP LMT) and
the prices it carries (``lmtPrice`` for LMT and STP LMT, ``auxPrice``, the stop, for STP and
STP LMT, and no other), the trigger method (IB's values, on stop orders only), the OCA type
(1, 2, 3, with a group), the time in force (DAY and GTC), and the conditions (price conditions
on the order's own contract, triggered by the last price). ``parentId`` and ``transmit`` are
the face's (``sim.tws.brackets``): they need the client's other orders to check.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from .orders import ConditionKind, WireOrder

ACTIONS = ("BUY", "SELL")
ORDER_TYPES = ("LMT", "MKT", "STP", "STP LMT")
LIMITED = ("LMT", "STP LMT")
"""The order types that carry a limit price (``lmtPrice``)."""
STOPPED = ("STP", "STP LMT")
"""The order types that carry a stop price (``auxPrice``)."""
TIMES_IN_FORCE = ("", "DAY", "GTC")
TRIGGER_METHODS = (0, 1, 2, 3, 4, 7, 8)
"""IB's triggerMethod values: 0 the default (last for stocks, double bid/ask for options), 1
double bid/ask, 2 last, 3 double last, 4 bid/ask, 7 last or bid/ask, 8 mid-point."""
OCA_TYPES = (0, 1, 2, 3)
"""IB's ocaType with an ocaGroup: 1 cancel the others with block, 2 reduce them with block, 3
reduce them without block; 0 (ib_insync's default, unset) is taken as 1."""


@attrs.frozen(kw_only=True)
class Refused:
    """A placeOrder field the venue does not implement: ``field`` as IB and ib_insync name it,
    ``attribute`` of ``WireOrder``, the values that leave it unset, and why it is refused."""

    field: str
    attribute: str
    unset: tuple[object, ...]
    why: str


def _row(field: str, attribute: str, unset: tuple[object, ...], why: str) -> Refused:
    return Refused(field=field, attribute=attribute, unset=unset, why=why)


_ZERO = (None, Decimal(0))
_FA = "one account, no allocation"
_INSTITUTIONAL = "institutional order attributes are not simulated"
_BOX = "BOX auction and pegged-to-stock orders are not simulated"
_VOL = "VOL orders are not simulated"
_SCALE = "scale orders are not simulated"
_ADJUST = "adjusted (attached) orders are not simulated"
_MIFID = "MiFID II tags are not kept"
_ROUTING = "routing preferences are not simulated"
_PEG = "pegged orders are not simulated"

REFUSED: tuple[Refused, ...] = (
    _row("openClose", "open_close", ("", "O"), _INSTITUTIONAL),
    _row("origin", "origin", (0,), "customer orders only"),
    _row("blockOrder", "block_order", (False,), _INSTITUTIONAL),
    _row("sweepToFill", "sweep_to_fill", (False,), _ROUTING),
    _row("displaySize", "display_size", (0,), "iceberg (reserve) orders are not simulated"),
    _row("hidden", "hidden", (False,), "hidden orders are not simulated"),
    _row("discretionaryAmt", "discretionary_amt", _ZERO, "discretionary orders are not simulated"),
    _row("goodAfterTime", "good_after_time", ("",), "orders work from when they are placed"),
    _row("goodTillDate", "good_till_date", ("",), "DAY and GTC only"),
    _row("faGroup", "fa_group", ("",), _FA),
    _row("faMethod", "fa_method", ("",), _FA),
    _row("faPercentage", "fa_percentage", ("",), _FA),
    _row("faProfile", "fa_profile", ("",), _FA),
    _row("modelCode", "model_code", ("",), _FA),
    _row("shortSaleSlot", "short_sale_slot", (0,), _INSTITUTIONAL),
    _row("designatedLocation", "designated_location", ("",), _INSTITUTIONAL),
    _row("exemptCode", "exempt_code", (-1,), _INSTITUTIONAL),
    _row("rule80A", "rule_80a", ("",), _INSTITUTIONAL),
    _row("settlingFirm", "settling_firm", ("",), _INSTITUTIONAL),
    _row("allOrNone", "all_or_none", (False,), "fills are partial, by the prints' sizes"),
    _row("minQty", "min_qty", (None,), "fills are partial, by the prints' sizes"),
    _row("percentOffset", "percent_offset", (None,), "relative orders are not simulated"),
    _row("eTradeOnly", "e_trade_only", (False,), _ROUTING),
    _row("firmQuoteOnly", "firm_quote_only", (False,), _ROUTING),
    _row("nbboPriceCap", "nbbo_price_cap", (None,), _ROUTING),
    _row("auctionStrategy", "auction_strategy", (0,), _BOX),
    _row("startingPrice", "starting_price", (None,), _BOX),
    _row("stockRefPrice", "stock_ref_price", (None,), _BOX),
    _row("delta", "delta", (None,), _BOX),
    _row("stockRangeLower", "stock_range_lower", (None,), _BOX),
    _row("stockRangeUpper", "stock_range_upper", (None,), _BOX),
    _row(
        "overridePercentageConstraints",
        "override_percentage_constraints",
        (False,),
        "the venue has no price constraints to override",
    ),
    _row("volatility", "volatility", (None,), _VOL),
    _row("volatilityType", "volatility_type", (None,), _VOL),
    _row("deltaNeutralOrderType", "delta_neutral_order_type", ("",), _VOL),
    _row("deltaNeutralAuxPrice", "delta_neutral_aux_price", (None,), _VOL),
    _row("continuousUpdate", "continuous_update", (False,), _VOL),
    _row("referencePriceType", "reference_price_type", (None,), _VOL),
    _row("trailStopPrice", "trail_stop_price", (None,), "trailing orders are not simulated"),
    _row("trailingPercent", "trailing_percent", (None,), "trailing orders are not simulated"),
    _row("scaleInitLevelSize", "scale_init_level_size", (None,), _SCALE),
    _row("scaleSubsLevelSize", "scale_subs_level_size", (None,), _SCALE),
    _row("scalePriceIncrement", "scale_price_increment", (None,), _SCALE),
    _row("scaleTable", "scale_table", ("",), _SCALE),
    _row("activeStartTime", "active_start_time", ("",), "orders work from when they are placed"),
    _row("activeStopTime", "active_stop_time", ("",), "DAY and GTC only"),
    _row("hedgeType", "hedge_type", ("",), "hedge orders are not simulated"),
    _row("optOutSmartRouting", "opt_out_smart_routing", (False,), _ROUTING),
    _row("clearingAccount", "clearing_account", ("",), _INSTITUTIONAL),
    _row("clearingIntent", "clearing_intent", ("",), _INSTITUTIONAL),
    _row("notHeld", "not_held", (False,), _INSTITUTIONAL),
    _row("algoStrategy", "algo_strategy", ("",), "IB algos are not simulated"),
    _row("algoId", "algo_id", ("",), "IB algos are not simulated"),
    _row("orderMiscOptions", "order_misc_options", ("",), "no miscellaneous options"),
    _row("solicited", "solicited", (False,), _INSTITUTIONAL),
    _row("randomizeSize", "randomize_size", (False,), "sizes are as given"),
    _row("randomizePrice", "randomize_price", (False,), "prices are as given"),
    _row(
        "conditionsIgnoreRth",
        "conditions_ignore_rth",
        (False,),
        "conditions are checked on the venue's prints, in the order's sessions",
    ),
    _row(
        "conditionsCancelOrder",
        "conditions_cancel_order",
        (False,),
        "a condition met always activates its order",
    ),
    _row("adjustedOrderType", "adjusted_order_type", ("",), _ADJUST),
    _row("triggerPrice", "trigger_price", (None,), _ADJUST),
    _row("lmtPriceOffset", "lmt_price_offset", (None,), _ADJUST),
    _row("adjustedStopPrice", "adjusted_stop_price", (None,), _ADJUST),
    _row("adjustedStopLimitPrice", "adjusted_stop_limit_price", (None,), _ADJUST),
    _row("adjustedTrailingAmount", "adjusted_trailing_amount", (None,), _ADJUST),
    _row("adjustableTrailingUnit", "adjustable_trailing_unit", (0,), _ADJUST),
    _row("extOperator", "ext_operator", ("",), _INSTITUTIONAL),
    _row("softDollarTier", "soft_dollar_tier_name", ("",), _INSTITUTIONAL),
    _row("softDollarTier", "soft_dollar_tier_value", ("",), _INSTITUTIONAL),
    _row("cashQty", "cash_qty", (None,), "quantities are in shares"),
    _row("mifid2DecisionMaker", "mifid2_decision_maker", ("",), _MIFID),
    _row("mifid2DecisionAlgo", "mifid2_decision_algo", ("",), _MIFID),
    _row("mifid2ExecutionTrader", "mifid2_execution_trader", ("",), _MIFID),
    _row("mifid2ExecutionAlgo", "mifid2_execution_algo", ("",), _MIFID),
    _row("dontUseAutoPriceForHedge", "dont_use_auto_price_for_hedge", (False,), _INSTITUTIONAL),
    _row("isOmsContainer", "is_oms_container", (False,), _INSTITUTIONAL),
    _row(
        "discretionaryUpToLimitPrice",
        "discretionary_up_to_limit_price",
        (False,),
        "discretionary orders are not simulated",
    ),
    _row("usePriceMgmtAlgo", "use_price_mgmt_algo", (False,), "IB algos are not simulated"),
    _row("duration", "duration", (None,), "DAY and GTC only"),
    _row("postToAts", "post_to_ats", (None,), _ROUTING),
    _row("autoCancelParent", "auto_cancel_parent", (False,), "a child's cancel leaves its parent"),
    _row("advancedErrorOverride", "advanced_error_override", ("",), "no warnings to override"),
    _row("manualOrderTime", "manual_order_time", ("",), _INSTITUTIONAL),
    _row("minTradeQty", "min_trade_qty", (None,), _ROUTING),
    _row("minCompeteSize", "min_compete_size", (None,), _PEG),
    _row("competeAgainstBestOffset", "compete_against_best_offset", (None,), _PEG),
    _row("midOffsetAtWhole", "mid_offset_at_whole", (None,), _PEG),
    _row("midOffsetAtHalf", "mid_offset_at_half", (None,), _PEG),
)


def not_supported(field: str, why: str) -> str:
    """A 201's reason: the field, and why."""
    return f"{field} is not supported by this venue ({why})"


def refusal(wire: WireOrder, *, con_id: int) -> str | None:
    """Why the venue refuses ``wire`` (a 201's reason, naming the field), or None when it
    implements every field the order sets. ``con_id``: the order's instrument."""
    if wire.action not in ACTIONS:
        return not_supported(f"action {wire.action}", "BUY and SELL only")
    if wire.total_quantity <= 0 or wire.total_quantity != wire.total_quantity.to_integral():
        return not_supported(
            f"totalQuantity {wire.total_quantity}", "a positive whole number of shares only"
        )
    if wire.order_type not in ORDER_TYPES:
        return not_supported(f"orderType {wire.order_type}", "LMT, MKT, STP and STP LMT only")
    problem = _prices(wire)
    if problem is not None:
        return problem
    if wire.tif not in TIMES_IN_FORCE:
        return not_supported(f"tif {wire.tif}", "DAY and GTC only")
    if wire.trigger_method not in TRIGGER_METHODS:
        return not_supported(
            f"triggerMethod {wire.trigger_method}", "IB's 0, 1, 2, 3, 4, 7 and 8 only"
        )
    if wire.trigger_method and wire.order_type not in STOPPED:
        return not_supported("triggerMethod", "only a STP or STP LMT order triggers")
    if wire.oca_group and wire.oca_type not in OCA_TYPES:
        return not_supported(f"ocaType {wire.oca_type}", "1, 2 and 3 only")
    if not wire.oca_group and wire.oca_type:
        return not_supported("ocaType", "an OCA type without an ocaGroup")
    for row in REFUSED:
        if getattr(wire, row.attribute) not in row.unset:
            return not_supported(row.field, row.why)
    for i, condition in enumerate(wire.conditions):
        if condition.kind != ConditionKind.PRICE:
            kind = ConditionKind(condition.kind).name.title().replace("_", "")
            return not_supported(f"conditions[{i}] ({kind}Condition)", "price conditions only")
        if condition.con_id not in (None, 0, con_id):
            return not_supported(
                f"conditions[{i}].conId", "a price condition on the order's own contract only"
            )
        if condition.trigger_method not in (None, 0):
            return not_supported(
                f"conditions[{i}].triggerMethod", "price conditions trigger on the last price"
            )
    return None


def _prices(wire: WireOrder) -> str | None:
    # The limit and stop prices each order type carries, and only those.
    kind = {"LMT": "a limit", "MKT": "a market", "STP": "a stop", "STP LMT": "a stop limit"}[
        wire.order_type
    ]
    if wire.order_type in LIMITED and (wire.lmt_price is None or wire.lmt_price <= 0):
        return not_supported("lmtPrice", f"{kind} order needs a positive limit price")
    if wire.order_type not in LIMITED and wire.lmt_price not in _ZERO:
        return not_supported("lmtPrice", f"{kind} order has no limit price")
    if wire.order_type in STOPPED and (wire.aux_price is None or wire.aux_price <= 0):
        return not_supported("auxPrice", f"{kind} order needs a positive stop price")
    if wire.order_type not in STOPPED and wire.aux_price not in _ZERO:
        return not_supported("auxPrice", f"{kind} order has no stop price (STP and STP LMT only)")
    return None
