"""How the TWS API server finds the instrument a request's contract names: by every field the
contract gives, the same way for every request (contract details, market data, historical
bars, placeOrder).

A contract resolves to a known instrument only if each field it gives agrees with it:

- ``conId``, when nonzero, names the instrument; a ``symbol`` or ``secType`` given too must be
  that instrument's. Without a conId the ``symbol`` names it.
- ``secType`` is empty or ``STK`` (the venue's instruments are US stocks and ETFs); a stock has
  no ``lastTradeDateOrContractMonth``, ``strike``, ``right`` or ``multiplier``, so each of them
  must be empty (0 for the strike).
- ``exchange`` is empty, ``SMART`` or the instrument's primary exchange; ``primaryExchange`` is
  empty or the instrument's; ``currency`` empty or ``USD``; ``localSymbol`` empty or the
  symbol; ``tradingClass`` empty or the instrument's.
- a security id (``secIdType``/``secId``, placeOrder's) is not looked up: given, nothing
  resolves.

An option (``secType`` OPT, or a conId in the option range, ``sim.options.is_option_con_id``)
resolves by ``resolve_option``: by its conId, or by its OCC ``localSymbol``, or by ``symbol`` +
``lastTradeDateOrContractMonth`` (``YYYYMMDD``) + ``strike`` + ``right`` (C, P, CALL or PUT),
on an underlying the venue trades; then every other field it gives must agree: ``exchange``
empty or SMART, ``primaryExchange`` empty or SMART, ``currency`` empty or USD, ``multiplier``
empty or 100, ``tradingClass`` empty or the underlying, ``localSymbol`` empty or the OCC
symbol, no security id, no legs. The contract must also be listed that day (``sim.tws.listing``).
An option missing its expiry, strike or right names no one contract: 200 (the venue does not
answer a partial option with every contract it matches, as IB's contract details do).

Anything else is IB's error 200, "No security definition has been found for the request", for
the request's id, and nothing else happens. ``mismatch`` names the first field that does not
agree, for the venue's log.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import Decimal

from actors.domain import Instrument
from sim.options import OptionContract, OptionError, Right

from .orders import WireContract

STOCK = "STK"
OPTION = "OPT"
OPTION_EXCHANGE = "SMART"
_DAY = re.compile(r"^\d{8}$")
CURRENCY = "USD"
SMART = "SMART"
NO_SECURITY_DEFINITION = 200
NO_SECURITY_DEFINITION_TEXT = "No security definition has been found for the request"


def resolve(
    contract: WireContract,
    by_symbol: Mapping[str, Instrument],
    by_con_id: Mapping[int, Instrument],
) -> Instrument | None:
    """The instrument ``contract`` names by all its fields, or None (IB's error 200)."""
    if contract.con_id:
        instrument = by_con_id.get(contract.con_id)
    else:
        instrument = by_symbol.get(contract.symbol)
    if instrument is None or mismatch(contract, instrument) is not None:
        return None
    return instrument


def mismatch(contract: WireContract, instrument: Instrument) -> str | None:
    """The first field of ``contract`` that does not agree with ``instrument`` (as
    ``field=value``), or None when every field it gives does."""
    # (field, value given, the values that agree)
    checks: tuple[tuple[str, object, tuple[object, ...]], ...] = (
        ("conId", contract.con_id, (0, instrument.con_id)),
        ("symbol", contract.symbol, ("", instrument.symbol)),
        ("secType", contract.sec_type, ("", STOCK)),
        ("lastTradeDateOrContractMonth", contract.last_trade_date, ("",)),
        ("strike", contract.strike, (0.0,)),
        ("right", contract.right, ("",)),
        ("multiplier", contract.multiplier, ("",)),
        ("exchange", contract.exchange, ("", SMART, instrument.primary_exchange)),
        ("primaryExchange", contract.primary_exchange, ("", instrument.primary_exchange)),
        ("currency", contract.currency, ("", CURRENCY)),
        ("localSymbol", contract.local_symbol, ("", instrument.symbol)),
        ("tradingClass", contract.trading_class, ("", instrument.trading_class)),
        ("secIdType", contract.sec_id_type, ("",)),
        ("secId", contract.sec_id, ("",)),
        ("comboLegs", contract.combo_legs, ((),)),
        ("deltaNeutralContract", contract.delta_neutral, (None,)),
    )
    return first_disagreement(checks)


def option_named(contract: WireContract) -> OptionContract | str:
    """The option ``contract`` names without its conId: by its OCC ``localSymbol``, else by
    symbol, expiry (``YYYYMMDD``), strike and right; or the reason it names none (for the log)."""
    if contract.local_symbol:
        try:
            return OptionContract.from_local_symbol(contract.local_symbol)
        except OptionError as exc:
            return str(exc)
    if not _DAY.match(contract.last_trade_date):
        return f"lastTradeDateOrContractMonth={contract.last_trade_date!r}: not YYYYMMDD"
    if not contract.strike:
        return "strike: not given"
    if not contract.right:
        return "right: not given"
    day = contract.last_trade_date
    try:
        return OptionContract(
            underlying=contract.symbol,
            expiry=date(int(day[:4]), int(day[4:6]), int(day[6:])),
            strike=Decimal(repr(contract.strike)),
            right=contract.right,
        )
    except (OptionError, ValueError) as exc:
        return str(exc)


def option_mismatch(contract: WireContract, option: OptionContract) -> str | None:
    """The first field of ``contract`` that does not agree with ``option`` (as
    ``field=value``), or None when every field it gives does."""
    try:
        right = Right.parse(contract.right) if contract.right else None
    except OptionError:
        return f"right={contract.right!r}"
    checks: tuple[tuple[str, object, tuple[object, ...]], ...] = (
        ("conId", contract.con_id, (0, option.con_id)),
        ("symbol", contract.symbol, ("", option.underlying)),
        ("secType", contract.sec_type, ("", OPTION)),
        ("lastTradeDateOrContractMonth", contract.last_trade_date, ("", option.last_trade_date)),
        ("strike", contract.strike, (0.0, float(option.strike))),
        ("right", right, (None, option.right)),
        ("multiplier", contract.multiplier, ("", str(option.multiplier))),
        ("exchange", contract.exchange, ("", OPTION_EXCHANGE)),
        ("primaryExchange", contract.primary_exchange, ("", OPTION_EXCHANGE)),
        ("currency", contract.currency, ("", CURRENCY)),
        ("localSymbol", contract.local_symbol, ("", option.local_symbol)),
        ("tradingClass", contract.trading_class, ("", option.trading_class)),
        ("secIdType", contract.sec_id_type, ("",)),
        ("secId", contract.sec_id, ("",)),
        ("comboLegs", contract.combo_legs, ((),)),
        ("deltaNeutralContract", contract.delta_neutral, (None,)),
    )
    return first_disagreement(checks)


def resolve_option(
    contract: WireContract,
    *,
    underlyings: Mapping[str, Instrument],
    by_con_id: Callable[[int], OptionContract | None],
    listed: Callable[[OptionContract], bool],
) -> OptionContract | str:
    """The listed option ``contract`` names by all its fields (see the module doc), or why
    none (IB's error 200): ``by_con_id`` finds a listed option by its conId, ``listed`` says
    whether the venue lists an option today."""
    if contract.con_id:
        found = by_con_id(contract.con_id)
        if found is None:
            return f"conId={contract.con_id}: no listed option"
        option: OptionContract = found
    else:
        named = option_named(contract)
        if isinstance(named, str):
            return named
        option = named
    if option.underlying not in underlyings:
        return f"symbol={option.underlying!r}: not an underlying the venue trades"
    problem = option_mismatch(contract, option)
    if problem is not None:
        return problem
    if not listed(option):
        return (
            f"{option.local_symbol!r}: not listed (expiry {option.expiry}, strike {option.strike})"
        )
    return option


def first_disagreement(checks: tuple[tuple[str, object, tuple[object, ...]], ...]) -> str | None:
    """The first ``(field, value given, the values that agree)`` whose value disagrees, as
    ``field=value``; None when every one agrees."""
    for field, given, agree in checks:
        if given not in agree:
            return f"{field}={given!r}"
    return None
