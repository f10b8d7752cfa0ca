"""Configuration errors: each names the file and the line or key path at fault."""

from __future__ import annotations


class ConfigError(ValueError):
    """Raised by the config and lot-map loaders; nothing has been written when it is raised."""


class LotMapError(ConfigError):
    """Raised by ``load_lot_map``; the message starts with ``file:line:``."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}:{line}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem
