"""Configuration errors: each names the file and the line or key path at fault."""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(ValueError):
    """Raised by the config and lot-map loaders; nothing has been written when it is raised."""


class LotMapError(ConfigError):
    """Raised by ``load_lot_map``; the message starts with ``file:line:``."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class InvalidSetting(ConfigError):
    """Raised by the config schema's validators; ``key`` is relative to the table being built.

    The loader re-raises it inside a ``ConfigFileError`` naming the file and the full key path.
    """

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class ConfigFileError(ConfigError):
    """Raised by ``load_config`` and ``parse_config``: one line per problem, each ``file: problem``
    where the problem ends with ``@ key.path`` or names the line and column."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__("\n".join(f"{source}: {problem}" for problem in self.problems))
