"""Strategies by name: what the composition calls to make a symbol's ``StrategyKind`` from the
configured strategy name and its parameters (plain values: ``config`` produces them and imports
nothing of ``actors``; see ``config.strategies``)."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from config.lotmap import LotMap

from .grid import GridKind, GridParams
from .ma_cross import MaCrossKind, MaCrossParams
from .momentum import MomentumKind, MomentumParams
from .protocol import StrategyKind

__all__ = ["STRATEGIES", "StrategyError", "strategy_kind"]

STRATEGIES = ("grid", "ma_cross", "momentum")
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
    fields of its parameter class other than ``symbol``; the grid also needs its lot map)."""
    params_class: type[GridParams | MaCrossParams | MomentumParams]
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
