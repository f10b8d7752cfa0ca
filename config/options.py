"""Command-line options that override the config: checked by the same schema, named as typed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from .errors import ConfigError, InvalidSetting

__all__ = ["OptionError", "override"]

_Table = TypeVar("_Table")


class OptionError(ConfigError):
    """Raised by ``override`` for an option whose value the config schema refuses; the message
    is ``--option: problem``."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


def override(table: _Table, options: Mapping[str, tuple[str, Any]]) -> _Table:
    """``table`` (a config table) with each field in ``options`` set to its option's value,
    where that option was given (is not None). ``options`` maps a field to ``(option, value)``,
    e.g. ``{"port": ("--port", port)}``; the schema's validators check the result, so an option
    has the range of the key it overrides."""
    given = {field: value for field, (_option, value) in options.items() if value is not None}
    if not given:
        return table
    try:
        return attrs.evolve(table, **given)  # type: ignore[misc] # the tables are attrs classes
    except InvalidSetting as exc:
        option, _value = options.get(exc.key, (exc.key, None))
        raise OptionError(option, exc.problem) from None
