"""What the TWS face sends, other than orders (``sim.tws.orders``): one function per message,
returning its fields (message id first) in exactly the layout ib_insync 0.9.86 decodes for the
negotiated server version (ref/ib-wire.md section 1.4; ``ib_insync/decoder.py``)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from actors.domain import Instrument
from actors.domain.sessions import NEW_YORK
from sim.options import OptionContract, OptionError, is_option_con_id

ERROR_JSON_VERSION = 166
"""From this server version an error carries ``advancedOrderRejectJson``."""
SIZE_RULES_VERSION = 164
"""From this version contractDetails has no version field and no mdSizeMultiplier, and ends
with minSize, sizeIncrement, suggestedSizeIncrement."""
PENDING_PRICE_REVISION_VERSION = 178
"""From this version execDetails ends with pendingPriceRevision (ib_async decoder.py 457)."""

# Tick types (https://interactivebrokers.github.io/tws-api/tick_types.html): live, delayed.
BID, ASK, LAST, CLOSE = (1, 66), (2, 67), (4, 68), (9, 75)
BID_SIZE, ASK_SIZE, LAST_SIZE, VOLUME = (0, 69), (3, 70), (5, 71), (8, 74)


def contract_fields(
    instrument: Instrument, *, exchange: str = "SMART", primary: bool = True
) -> list[object]:
    """An instrument's contract as TWS sends it: conId, symbol, secType, lastTradeDate, strike,
    right, multiplier, exchange, [primaryExchange,] currency, localSymbol, tradingClass. An
    option's (an instrument named by its OCC symbol, with an option conId) is laid out by
    ``option_contract_fields``."""
    if is_option_con_id(instrument.con_id):
        try:
            option = OptionContract.from_local_symbol(instrument.symbol)
        except OptionError:
            pass
        else:
            return option_contract_fields(option, exchange=exchange, primary=primary)
    head: list[object] = [
        instrument.con_id,
        instrument.symbol,
        "STK",
        "",
        0.0,
        "",
        "",
        exchange,
    ]
    return [
        *head,
        *([instrument.primary_exchange] if primary else []),
        "USD",
        instrument.symbol,
        instrument.trading_class,
    ]


def ib_time(at: datetime) -> str:
    """A time as TWS prints it in the login time zone (New York)."""
    local = at.astimezone(NEW_YORK)
    return f"{local:%Y%m%d %H:%M:%S} America/New_York"


def next_valid_id(order_id: int) -> list[object]:
    return [9, 1, order_id]


def managed_accounts(accounts: str) -> list[object]:
    return [15, 1, accounts]


def error(req_id: int, code: int, message: str, *, server_version: int) -> list[object]:
    fields: list[object] = [4, 2, req_id, code, message]
    if server_version >= ERROR_JSON_VERSION:
        fields.append("")
    return fields


def order_status(
    *,
    order_id: int,
    status: str,
    filled: Decimal,
    remaining: Decimal,
    average_price: Decimal,
    perm_id: int,
    last_fill_price: Decimal,
    client_id: int,
    parent_id: int = 0,
) -> list[object]:
    return [
        3,
        order_id,
        status,
        float(filled),
        float(remaining),
        float(average_price),
        perm_id,
        parent_id,
        float(last_fill_price),
        client_id,
        "",
        0.0,
    ]


def open_order_end() -> list[object]:
    return [53, 1]


def exec_details(
    *,
    req_id: int,
    order_id: int,
    instrument: Instrument,
    exec_id: str,
    at: datetime,
    account: str,
    side: str,
    shares: Decimal,
    price: Decimal,
    perm_id: int,
    client_id: int,
    cumulative: Decimal,
    average_price: Decimal,
    order_ref: str,
    server_version: int,
) -> list[object]:
    contract = contract_fields(instrument, exchange=instrument.primary_exchange, primary=False)
    # pendingPriceRevision: whether IB may still revise the price; never, for the sim
    revision: list[object] = [False] if server_version >= PENDING_PRICE_REVISION_VERSION else []
    return [
        11,
        req_id,
        order_id,
        *contract,
        exec_id,
        ib_time(at),
        account,
        instrument.primary_exchange,
        "BOT" if side == "BUY" else "SLD",
        float(shares),
        float(price),
        perm_id,
        client_id,
        0,
        float(cumulative),
        float(average_price),
        order_ref,
        "",
        "",
        "",
        2,
        *revision,
    ]


def exec_details_end(req_id: int) -> list[object]:
    return [55, 1, req_id]


def commission_report(
    exec_id: str, commission: Decimal, realized: Decimal | None = None
) -> list[object]:
    return [
        59,
        1,
        exec_id,
        float(commission),
        "USD",
        "" if realized is None else float(realized),
        "",
        "",
    ]


def position(
    account: str, instrument: Instrument, quantity: Decimal, average_cost: Decimal
) -> list[object]:
    contract = contract_fields(instrument, exchange=instrument.primary_exchange, primary=False)
    return [61, 3, account, *contract, float(quantity), float(average_cost)]


def position_end() -> list[object]:
    return [62, 1]


def account_value(key: str, value: str, currency: str, account: str) -> list[object]:
    return [6, 2, key, value, currency, account]


def portfolio(
    *,
    instrument: Instrument,
    quantity: Decimal,
    market_price: Decimal,
    average_cost: Decimal,
    realized: Decimal,
    account: str,
) -> list[object]:
    contract = [
        instrument.con_id,
        instrument.symbol,
        "STK",
        "",
        0.0,
        "",
        "",
        instrument.primary_exchange,
        "USD",
        instrument.symbol,
        instrument.trading_class,
    ]
    value = quantity * market_price
    unrealized = value - quantity * average_cost
    return [
        7,
        8,
        *contract,
        float(quantity),
        float(market_price),
        float(value),
        float(average_cost),
        float(unrealized),
        float(realized),
        account,
    ]


def account_time(at: datetime) -> list[object]:
    return [8, 1, f"{at.astimezone(NEW_YORK):%H:%M}"]


def account_download_end(account: str) -> list[object]:
    return [54, 1, account]


def account_update_multi(
    req_id: int, account: str, key: str, value: str, currency: str
) -> list[object]:
    return [73, 1, req_id, account, "", key, value, currency]


def account_update_multi_end(req_id: int) -> list[object]:
    return [74, 1, req_id]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> list[object]:
    return [63, 1, req_id, account, tag, value, currency]


def account_summary_end(req_id: int) -> list[object]:
    return [64, 1, req_id]


def completed_orders_end() -> list[object]:
    return [102]


def contract_details(req_id: int, instrument: Instrument, *, server_version: int) -> list[object]:
    head: list[object] = [10]
    if server_version < SIZE_RULES_VERSION:
        head.append(8)
    fields: list[object] = [
        *head,
        req_id,
        instrument.symbol,
        "STK",
        "",
        0.0,
        "",
        "SMART",
        "USD",
        instrument.symbol,
        instrument.trading_class,
        instrument.trading_class,
        instrument.con_id,
        float(instrument.min_tick),
    ]
    if server_version < SIZE_RULES_VERSION:
        fields.append("")  # mdSizeMultiplier, obsolete
    fields += [
        "",  # multiplier
        "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,DAY,GTC,LMT,MKT,NONALGO,OCA,TRAIL",  # orderTypes
        f"SMART,{instrument.primary_exchange}",  # validExchanges
        1,  # priceMagnifier
        0,  # underConId
        instrument.long_name,
        instrument.primary_exchange,
        "",  # contractMonth
        "",  # industry
        "",  # category
        "",  # subcategory
        "US/Eastern",
        "",  # tradingHours
        "",  # liquidHours
        "",  # evRule
        "",  # evMultiplier
        0,  # no secIds
        1,  # aggGroup
        "",  # underSymbol
        "",  # underSecType
        "26,26",  # marketRuleIds
        "",  # realExpirationDate
        "ETF",  # stockType
    ]
    if server_version == SIZE_RULES_VERSION - 1:
        fields.append("")  # suggestedSizeIncrement, in 163 only
    if server_version >= SIZE_RULES_VERSION:
        fields += [1, 1, 100]
    return fields


def contract_details_end(req_id: int) -> list[object]:
    return [52, 1, req_id]


def tick_price(req_id: int, tick_type: int, price: Decimal, size: Decimal) -> list[object]:
    return [1, 6, req_id, tick_type, float(price), float(size), 0]


def tick_size(req_id: int, tick_type: int, size: Decimal) -> list[object]:
    return [2, 6, req_id, tick_type, float(size)]


def tick_snapshot_end(req_id: int) -> list[object]:
    return [57, 1, req_id]


def market_data_type(req_id: int, data_type: int) -> list[object]:
    return [58, 1, req_id, data_type]


def tick_req_params(req_id: int, min_tick: Decimal) -> list[object]:
    return [81, req_id, float(min_tick), "9c0001", 3]


def current_time(at: datetime) -> list[object]:
    return [49, 1, int(at.timestamp())]


# -- options (sim.tws.option_data) ------------------------------------------------------------

OPTION_BID, OPTION_ASK, OPTION_LAST, OPTION_MODEL = (10, 80), (11, 81), (12, 82), (13, 83)
"""tickOptionComputation's tick types: live, delayed."""
CALL_OPEN_INTEREST, PUT_OPEN_INTEREST, CALL_VOLUME, PUT_VOLUME = 27, 28, 29, 30
"""The tickSize types of generic ticks 101 (open interest) and 100 (option volume)."""
OPTION_ORDER_TYPES = "ACTIVETIM,AD,ADJUST,ALERT,ALLOC,DAY,GTC,LMT,MKT,NONALGO,OCA,STP,STPLMT"
"""What contractDetails lists for an option (IB's spelling: ``STPLMT`` is STP LMT)."""


def tick_option_computation(
    req_id: int,
    tick_type: int,
    *,
    implied_vol: float,
    delta: float,
    price: float,
    pv_dividend: float,
    gamma: float,
    vega: float,
    theta: float,
    underlying_price: float,
) -> list[object]:
    """Message 21. From server version 156 (so at every version served) it has no version
    field and carries ``tickAttrib`` (1: price-based volatility), as ib_insync's decoder reads
    it: reqId, tickType, tickAttrib, impliedVol, delta, optPrice, pvDividend, gamma, vega, theta,
    undPrice."""
    return [
        21,
        req_id,
        tick_type,
        1,
        implied_vol,
        delta,
        price,
        pv_dividend,
        gamma,
        vega,
        theta,
        underlying_price,
    ]


def tick_generic_size(req_id: int, tick_type: int, size: int) -> list[object]:
    """A generic tick's value that ib_insync keeps as a size (27-30) comes as tickSize."""
    return tick_size(req_id, tick_type, Decimal(size))


def sec_def_opt_params(
    req_id: int,
    *,
    exchange: str,
    underlying_con_id: int,
    trading_class: str,
    multiplier: int,
    expirations: list[str],
    strikes: list[Decimal],
) -> list[object]:
    """securityDefinitionOptionParameter (75), no version field: reqId, exchange,
    underlyingConId, tradingClass, multiplier, the count and the expirations (YYYYMMDD), the
    count and the strikes."""
    return [
        75,
        req_id,
        exchange,
        underlying_con_id,
        trading_class,
        str(multiplier),
        len(expirations),
        *expirations,
        len(strikes),
        *(float(s) for s in strikes),
    ]


def sec_def_opt_params_end(req_id: int) -> list[object]:
    return [76, req_id]


def option_contract_details(
    req_id: int,
    *,
    con_id: int,
    underlying: Instrument,
    local_symbol: str,
    expiry: str,
    strike: Decimal,
    right: str,
    multiplier: int,
    long_name: str,
    min_tick: Decimal,
    server_version: int,
) -> list[object]:
    """contractDetails (10) of an option in the layout of ``contract_details``: the expiry
    with its last trade time (``YYYYMMDD 16:00:00``, which ib_insync splits into
    lastTradeDateOrContractMonth and lastTradeTime), the underlying's conId, symbol and secType,
    the real expiration date, the contract month."""
    head: list[object] = [10]
    if server_version < SIZE_RULES_VERSION:
        head.append(8)
    fields: list[object] = [
        *head,
        req_id,
        underlying.symbol,
        "OPT",
        f"{expiry} 16:00:00",
        float(strike),
        right,
        "SMART",
        "USD",
        local_symbol,
        underlying.symbol,  # marketName: the trading class
        underlying.symbol,  # tradingClass
        con_id,
        float(min_tick),
    ]
    if server_version < SIZE_RULES_VERSION:
        fields.append("")  # mdSizeMultiplier, obsolete
    fields += [
        str(multiplier),
        OPTION_ORDER_TYPES,
        "SMART",  # validExchanges
        1,  # priceMagnifier
        underlying.con_id,  # underConId
        long_name,
        "SMART",  # primaryExchange
        expiry[:6],  # contractMonth
        "",  # industry
        "",  # category
        "",  # subcategory
        "US/Eastern",
        "",  # tradingHours
        "",  # liquidHours
        "",  # evRule
        "",  # evMultiplier
        0,  # no secIds
        2,  # aggGroup
        underlying.symbol,  # underSymbol
        "STK",  # underSecType
        "32,32",  # marketRuleIds
        expiry,  # realExpirationDate
        "",  # stockType
    ]
    if server_version == SIZE_RULES_VERSION - 1:
        fields.append("")  # suggestedSizeIncrement, in 163 only
    if server_version >= SIZE_RULES_VERSION:
        fields += [1, 1, 1]
    return fields


def option_contract_fields(
    option: OptionContract, *, exchange: str = "SMART", primary: bool = True
) -> list[object]:
    """An option's contract as TWS sends it, in ``contract_fields``' layout: conId, symbol (the
    underlying), ``OPT``, expiry ``YYYYMMDD``, strike, right, multiplier, exchange,
    [primaryExchange,] currency, the OCC local symbol, the trading class (the underlying)."""
    return [
        option.con_id,
        option.underlying,
        "OPT",
        option.last_trade_date,
        float(option.strike),
        option.right.value,
        str(option.multiplier),
        exchange,
        *(["SMART"] if primary else []),
        option.currency,
        option.local_symbol,
        option.trading_class,
    ]
