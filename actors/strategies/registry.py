"""Strategies by name: what the composition calls to make a symbol's ``StrategyKind`` from the
configured strategy name and its parameters (plain values: ``config`` produces them and imports
nothing of ``actors``; see ``config.strategies``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from config.lotmap import LotMap

from ..options.choice import ContractParams, EntryParams, LiquidityParams, SizingParams
from ..options.signals import ScalpParams, WhaleParams
from .grid import GridKind, GridParams
from .ma_cross import MaCrossKind, MaCrossParams
from .momentum import MomentumKind, MomentumParams
from .options import OptionsKind, OptionsParams
from .protocol import StrategyKind

__all__ = ["STRATEGIES", "StrategyError", "strategy_kind"]

STRATEGIES = ("grid", "ma_cross", "momentum", "scalp", "whale")
"""The strategies a symbol can run."""


class StrategyError(ValueError):
    """Raised by ``strategy_kind`` for an unknown strategy or parameters it does not take;
    names the strategy, the symbol and the parameter."""


def strategy_kind(
    name: str,
    symbol: str,
    parameters: Mapping[str, object],
    *,
    lot_map: LotMap | None = None,
) -> StrategyKind:
    """The ``StrategyKind`` of strategy ``name`` trading ``symbol`` with ``parameters`` (the
    fields of its parameter class other than ``symbol``; the grid also needs its lot map; an
    options strategy's are ``OptionsParams``' with its sub-tables as mappings, and its own
    rule's settings only: a scalp takes no ``whale`` table, a whale no ``scalp`` one)."""
    params_class: type[GridParams | MaCrossParams | MomentumParams]
    if name in _OPTIONS:
        return _options_kind(name, symbol, parameters)
    if name == "grid":
        params_class = GridParams
    elif name == "ma_cross":
        params_class = MaCrossParams
    elif name == "momentum":
        params_class = MomentumParams
    else:
        raise StrategyError(f"{symbol}: unknown strategy {name!r} (one of {', '.join(STRATEGIES)})")
    known = {field.name for field in attrs.fields(params_class)} - {"symbol"}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise StrategyError(
            f"{symbol}: the {name} strategy takes no parameter {', '.join(map(repr, unknown))}"
        )
    try:
        params = params_class(symbol=symbol, **parameters)  # type: ignore[arg-type]  # checked above
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"{symbol}: {name}: {exc}") from exc
    if isinstance(params, GridParams):
        if lot_map is None:
            raise StrategyError(f"{symbol}: the grid strategy needs a lot map")
        return GridKind(params, lot_map)
    if isinstance(params, MaCrossParams):
        return MaCrossKind(params)
    return MomentumKind(params)


# An options strategy's sub-tables, each the parameter class its mapping makes.
_TABLES: dict[str, type[Any]] = {
    "scalp": ScalpParams,
    "whale": WhaleParams,
    "contract": ContractParams,
    "liquidity": LiquidityParams,
    "entry": EntryParams,
    "sizing": SizingParams,
}
_OPTIONS = ("scalp", "whale")


def _options_kind(name: str, symbol: str, parameters: Mapping[str, object]) -> OptionsKind:
    other = "whale" if name == "scalp" else "scalp"
    known = {field.name for field in attrs.fields(OptionsParams)} - {"symbol", other}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise StrategyError(
            f"{symbol}: the {name} strategy takes no parameter {', '.join(map(repr, unknown))}"
        )
    values = dict(parameters)
    # Each sub-table is built here, so that an error names it (the parameter classes name
    # only the key, and attrs an unknown key as an unexpected keyword argument).
    for table, table_class in _TABLES.items():
        value = values.get(table)
        if not isinstance(value, Mapping):
            continue  # absent (the defaults), already built, or OptionsParams' to refuse
        fields = {field.name for field in attrs.fields(table_class)}
        extra = sorted(set(value) - fields)
        if extra:
            what = f"the {name} rule" if table == name else f"the {table} table"
            raise StrategyError(
                f"{symbol}: {name}: {what} takes no parameter {', '.join(map(repr, extra))} "
                f"(it takes {', '.join(sorted(fields))})"
            )
        try:
            values[table] = table_class(**value)
        except (TypeError, ValueError) as exc:
            where = "" if table == name else f"{table}: "
            raise StrategyError(f"{symbol}: {name}: {where}{exc}") from exc
    try:
        params = OptionsParams(symbol=symbol, **values)  # type: ignore[arg-type]  # checked above
    except (TypeError, ValueError) as exc:
        raise StrategyError(f"{symbol}: {name}: {exc}") from exc
    return OptionsKind(params, name)
