"""The lot map: how many shares the grid buys at each level (``level,shares_to_buy`` CSV)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import attrs

from .errors import LotMapError
from .files import MAX_INPUT_BYTES, InputFileError, read_input

HEADER = ("level", "shares_to_buy")
MAX_SHARES = 1_000_000
_MAX_DIGITS = 18


@attrs.frozen
class LotMap:
    """Shares to buy per level; level ``k`` is ``shares[k]``, levels run 0..len-1."""

    shares: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.shares)

    def __getitem__(self, level: int) -> int:
        return self.shares[level]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shares)


def load_lot_map(path: str | Path) -> LotMap:
    """Read a lot map strictly: the header, then levels 0, 1, 2, ... each with a positive whole
    number of shares. Any deviation raises ``LotMapError`` naming the file and line."""
    name = str(path)
    try:
        text = read_input(Path(path), limit=MAX_INPUT_BYTES).decode("utf-8")
    except InputFileError as exc:
        raise LotMapError(name, 0, f"cannot read the lot map: {exc.problem}") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise LotMapError(name, line, f"not UTF-8 text (byte {exc.start})") from None
    lines = text.splitlines()
    if not lines:
        raise LotMapError(name, 1, f"empty file; expected the header {','.join(HEADER)}")
    reader = csv.reader(lines)
    try:
        rows = list(reader)
    except csv.Error as exc:  # a field longer than the csv module's limit, say
        raise LotMapError(name, reader.line_num, f"not CSV: {exc}") from None
    header = tuple(cell.strip() for cell in rows[0])
    if header != HEADER:
        raise LotMapError(
            name, 1, f"expected the header {','.join(HEADER)}, found {_shown(','.join(header))}"
        )
    shares: list[int] = []
    for number, row in enumerate(rows[1:], start=2):
        if not row or all(not cell.strip() for cell in row):
            if number == len(rows) + 1:
                break
            raise LotMapError(name, number, "empty line inside the lot map")
        if len(row) != 2:
            raise LotMapError(
                name, number, f"expected 2 fields (level,shares_to_buy), found {len(row)}"
            )
        level = _whole(name, number, "level", row[0])
        count = _whole(name, number, "shares_to_buy", row[1])
        if level != len(shares):
            raise LotMapError(
                name,
                number,
                f"level {level} out of order: expected {len(shares)} (levels run 0, 1, 2, ...)",
            )
        if not 0 < count <= MAX_SHARES:
            raise LotMapError(
                name, number, f"shares_to_buy must be between 1 and {MAX_SHARES}, got {count}"
            )
        shares.append(count)
    if not shares:
        raise LotMapError(name, 2, "no levels: the lot map needs at least level 0")
    return LotMap(tuple(shares))


def _whole(path: str, line: int, field: str, cell: str) -> int:
    text = cell.strip()
    # ASCII only: "²" is a digit to str.isdigit() but not to int().
    if not (text.isascii() and text.isdigit()):
        raise LotMapError(path, line, f"{field} must be a whole number, got {_shown(cell)}")
    # Far above any level or share count, and int() refuses 4,300 digits and more.
    if len(text) > _MAX_DIGITS:
        raise LotMapError(path, line, f"{field} is too large: {_shown(text)}")
    return int(text)


def _shown(text: str, limit: int = 60) -> str:
    # A corrupt file's "value" can be a whole block of garbage: show its start.
    shown = repr(text)
    return shown if len(shown) <= limit else f"{shown[:limit]}... ({len(text)} characters)"
