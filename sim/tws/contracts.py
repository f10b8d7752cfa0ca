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

Anything else is IB's error 200, "No security definition has been found for the request", for
the request's id, and nothing else happens. ``mismatch`` names the first field that does not
agree, for the venue's log.
"""

from __future__ import annotations

from collections.abc import Mapping

from actors.domain import Instrument

from .orders import WireContract

STOCK = "STK"
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
    for field, given, agree in checks:
        if given not in agree:
            return f"{field}={given!r}"
    return None
