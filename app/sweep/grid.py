"""The parameter grid of a sweep: ``KEY=V1,V2,...`` or ``KEY=START:STOP:STEP`` per parameter,
their cartesian product, and each combination applied to the config.

A key names a strategy's parameter table and one of its keys: ``ma_cross.fast`` sets ``fast``
in the ``[symbols.ma_cross]`` table of every symbol trading the MA-crossover; ``TQQQ.grid.step``
only in TQQQ's. A value is read as the key's type (a whole number, a decimal, text, one of a
set of words), and each combination is checked as a config file would be: every problem names
the ``--param`` and its value. A range runs from START to STOP inclusive in steps of STEP,
counted in decimals (``0.5:2.0:0.25`` is 0.5, 0.75, ... 2.0, with no float drift).
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from config.errors import ConfigError, InvalidSetting
from config.load import render_config
from config.schema import Config, SymbolConfig
from config.strategies import StrategyName

MAX_COMBINATIONS = 10_000
"""More is a typo in a range, not a sweep."""

Value = int | float | str | bool | Decimal


class SweepError(ValueError):
    """A parameter or value that cannot be swept; the message names the ``--param``."""


@attrs.frozen
class Param:
    """One swept key and its values, in the order given."""

    key: str
    values: tuple[str, ...]


def parse_param(text: str) -> Param:
    """``KEY=V1,V2,...`` or ``KEY=START:STOP:STEP`` (``SweepError`` naming it otherwise)."""
    key, sep, spec = text.partition("=")
    key = key.strip()
    if not sep or not key or not spec.strip():
        raise SweepError(f"--param {text!r}: expected KEY=V1,V2,... or KEY=START:STOP:STEP")
    if spec.count(":") == 2 and "," not in spec:
        return Param(key=key, values=_range(key, spec))
    values = tuple(v.strip() for v in spec.split(","))
    if any(not v for v in values):
        raise SweepError(f"--param {key}: an empty value in {spec!r}")
    if len(set(values)) != len(values):
        raise SweepError(f"--param {key}: a value given twice in {spec!r}")
    return Param(key=key, values=values)


def _range(key: str, spec: str) -> tuple[str, ...]:
    try:
        start, stop, step = (Decimal(part.strip()) for part in spec.split(":"))
    except InvalidOperation:
        raise SweepError(f"--param {key}={spec}: START:STOP:STEP must be numbers") from None
    if not (start.is_finite() and stop.is_finite() and step.is_finite()) or step <= 0:
        raise SweepError(f"--param {key}={spec}: STEP must be a positive number")
    if stop < start:
        raise SweepError(f"--param {key}={spec}: STOP is below START")
    count = int((stop - start) / step) + 1
    if count > MAX_COMBINATIONS:
        raise SweepError(f"--param {key}={spec}: {count:,} values (at most {MAX_COMBINATIONS:,})")
    return tuple(str(start + step * i) for i in range(count))


def combinations(params: Sequence[Param]) -> list[dict[str, str]]:
    """The cartesian product, the first parameter varying slowest."""
    keys = [p.key for p in params]
    if len(set(keys)) != len(keys):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise SweepError(f"--param {twice[0]}: given twice")
    total = 1
    for param in params:
        total *= len(param.values)
    if total > MAX_COMBINATIONS:
        raise SweepError(f"{total:,} combinations (at most {MAX_COMBINATIONS:,})")
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(p.values for p in params))
    ]


def combination_id(combination: Mapping[str, str]) -> str:
    """A short, stable name of a combination (its run's directory)."""
    text = json.dumps(sorted(combination.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def apply(config: Config, combination: Mapping[str, str]) -> Config:
    """``config`` with the combination's values set, each table's at once (``fast`` and
    ``slow`` are checked together); ``SweepError`` naming the ``--param`` otherwise."""
    changes: dict[tuple[int, str], dict[str, tuple[str, Value | enum.Enum]]] = {}
    for key, text in combination.items():
        table_name, field = key.split(".")[-2:]
        for index in _targets(config, key):
            current = getattr(_table(config.symbols[index], table_name), field)
            changes.setdefault((index, table_name), {})[field] = (key, _typed(key, text, current))
    symbols = list(config.symbols)
    for (index, table_name), fields in changes.items():
        entry = symbols[index]
        given = ", ".join(f"{key}={combination[key]}" for key, _ in fields.values())
        try:
            table = attrs.evolve(
                _table(entry, table_name), **{f: value for f, (_, value) in fields.items()}
            )
            symbols[index] = attrs.evolve(entry, **{table_name: table})
        except InvalidSetting as exc:
            raise SweepError(f"--param {given}: {exc}") from None
        except (ConfigError, ValueError, TypeError) as exc:
            raise SweepError(f"--param {given}: {exc}") from None
    return attrs.evolve(config, symbols=tuple(symbols))


def check(config: Config, params: Sequence[Param]) -> None:
    """Every key names a parameter of a table some symbol uses, and every value is of its
    type (``SweepError`` naming the first that is not). Whether a combination holds together
    (``fast`` below ``slow``) is ``apply``'s to say."""
    for param in params:
        index = _targets(config, param.key)[0]
        table_name, field = param.key.split(".")[-2:]
        current = getattr(_table(config.symbols[index], table_name), field)
        for value in param.values:
            _typed(param.key, value, current)


def rendered(config: Config) -> str:
    """A combination's config as a file (``actorctl backtest --config`` reads it back)."""
    return render_config(config)


def _targets(config: Config, key: str) -> list[int]:
    parts = key.split(".")
    names = [s.value for s in StrategyName]
    if len(parts) not in (2, 3) or parts[-2] not in names:
        raise SweepError(
            f"--param {key}: a key is STRATEGY.PARAM or SYMBOL.STRATEGY.PARAM, the strategy one "
            f"of {', '.join(names)}"
        )
    strategy = StrategyName(parts[-2])
    symbol = parts[0] if len(parts) == 3 else None
    found = [
        i
        for i, entry in enumerate(config.symbols)
        if entry.strategy is strategy and (symbol is None or entry.symbol == symbol)
    ]
    if not found:
        who = f"symbol {symbol} trading {strategy.value}" if symbol else strategy.value
        raise SweepError(f"--param {key}: no {who} in the config")
    table = _table(config.symbols[found[0]], strategy.value)
    known = [f.name for f in attrs.fields(type(table))]
    if parts[-1] not in known:
        raise SweepError(
            f"--param {key}: {strategy.value} has no parameter {parts[-1]!r} (it has "
            f"{', '.join(known)})"
        )
    return found


def _table(entry: SymbolConfig, name: str) -> Any:
    table = getattr(entry, name)
    if table is None:
        raise SweepError(f"{entry.symbol} has no [symbols.{name}] table to sweep")
    return table


def _typed(key: str, text: str, current: object) -> Value | enum.Enum:
    """``text`` as the type of the parameter's current value."""
    value = _converted(text, current)
    if value is None:
        what = (
            "one of " + ", ".join(str(m.value) for m in type(current))
            if isinstance(current, enum.Enum)
            else {bool: "true or false", int: "a whole number", float: "a number"}.get(
                type(current), "a finite decimal number"
            )
        )
        raise SweepError(f"--param {key}={text}: expected {what}")
    return value


def _converted(text: str, current: object) -> Value | enum.Enum | None:
    # None: ``text`` is not a value of the type.
    if isinstance(current, bool):
        lowered = text.lower()
        return lowered == "true" if lowered in ("true", "false") else None
    try:
        if isinstance(current, enum.Enum):
            return type(current)(text)
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float):
            return float(text)
        if isinstance(current, Decimal):
            number = Decimal(text)
            return number if number.is_finite() else None
    except (ValueError, InvalidOperation):
        return None
    return text


def describe(params: Iterable[Param]) -> str:
    return ", ".join(f"{p.key} ({len(p.values)})" for p in params)
