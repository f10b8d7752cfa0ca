"""The strict lot-map loader and the shipped TQQQ map."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.errors import LotMapError
from config.lotmap import load_lot_map

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "lots" / "tqqq.csv"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lots.csv"
    path.write_text(text)
    return path


def test_the_shipped_tqqq_map_has_88_levels_derived_by_its_documented_rule() -> None:
    """Levels 0..87, 94 shares at level 0, equal notional per level (config/lots/README.md)."""
    lots = load_lot_map(SHIPPED)
    assert len(lots) == 88
    assert lots[0] == 94
    assert list(lots) == [round(94 / 0.99**k) for k in range(88)]


@given(st.lists(st.integers(min_value=1, max_value=1_000_000), min_size=1, max_size=120))
def test_any_well_formed_map_loads_back_exactly(shares: list[int]) -> None:
    """What is written is what is read."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        body = "".join(f"{level},{count}\n" for level, count in enumerate(shares))
        path = write(Path(folder), "level,shares_to_buy\n" + body)
        assert list(load_lot_map(path)) == shares


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("", 1, "empty file"),
        ("lvl,shares\n0,94\n", 1, "expected the header level,shares_to_buy"),
        ("level,shares_to_buy\n", 2, "no levels"),
        ("level,shares_to_buy\n0,94\n2,95\n", 3, "level 2 out of order: expected 1"),
        ("level,shares_to_buy\n1,94\n", 2, "level 1 out of order: expected 0"),
        ("level,shares_to_buy\n0,0\n", 2, "shares_to_buy must be between 1 and"),
        ("level,shares_to_buy\n0,9.5\n", 2, "shares_to_buy must be a whole number, got '9.5'"),
        ("level,shares_to_buy\n0,-3\n", 2, "shares_to_buy must be a whole number"),
        ("level,shares_to_buy\nx,3\n", 2, "level must be a whole number, got 'x'"),
        ("level,shares_to_buy\n0,94,1\n", 2, "expected 2 fields"),
        ("level,shares_to_buy\n0,94\n\n1,95\n", 3, "empty line inside the lot map"),
    ],
)
def test_a_bad_lot_map_is_refused_naming_file_and_line(
    tmp_path: Path, text: str, line: int, problem: str
) -> None:
    """Every defect names the file, the line and what is wrong."""
    path = write(tmp_path, text)
    with pytest.raises(LotMapError) as info:
        load_lot_map(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert problem in str(info.value)


def test_a_missing_lot_map_is_a_clear_error(tmp_path: Path) -> None:
    """A path that does not exist is named in the error."""
    with pytest.raises(LotMapError, match="cannot read the lot map"):
        load_lot_map(tmp_path / "nope.csv")


def test_a_trailing_newline_is_fine_and_crlf_too(tmp_path: Path) -> None:
    """Files written on Windows or ending in a newline load."""
    path = tmp_path / "crlf.csv"
    path.write_bytes(b"level,shares_to_buy\r\n0,94\r\n1,95\r\n")
    assert list(load_lot_map(path)) == [94, 95]


def test_regression_lot_map_with_a_non_ascii_digit_is_refused_naming_file_and_line(
    tmp_path: Path,
) -> None:
    """A corrupt row whose count holds a digit str.isdigit() accepts but int() does not ("²")
    was a ValueError traceback; it is a LotMapError naming the file and line (found by the
    process-level chaos's corrupt lot maps)."""
    path = tmp_path / "lots.csv"
    path.write_text("level,shares_to_buy\n0,94\n1,9²\n", encoding="utf-8")
    with pytest.raises(LotMapError) as info:
        load_lot_map(path)
    assert str(info.value) == f"{path}:3: shares_to_buy must be a whole number, got '9²'"


def test_regression_lot_map_of_nul_bytes_is_refused_with_a_short_message(
    tmp_path: Path,
) -> None:
    """A file of NUL bytes (what a crash can leave of a file being written) was echoed whole
    into the error, 16 KB of escapes on one line; the error shows its start and its length."""
    path = tmp_path / "lots.csv"
    path.write_bytes(b"\0" * 4096)
    with pytest.raises(LotMapError) as info:
        load_lot_map(path)
    message = str(info.value)
    assert message.startswith(f"{path}:1: expected the header level,shares_to_buy, found ")
    assert message.endswith("... (4096 characters)")
    assert len(message) < len(str(path)) + 150


def test_regression_lot_map_not_utf8_names_the_line_and_byte(tmp_path: Path) -> None:
    """Binary garbage was reported at line 0; it names the line and byte of the first bad byte."""
    path = tmp_path / "lots.csv"
    path.write_bytes(b"level,shares_to_buy\n0,94\n1,\xff95\n")
    with pytest.raises(LotMapError) as info:
        load_lot_map(path)
    assert str(info.value) == f"{path}:3: not UTF-8 text (byte 27)"


def test_regression_a_5000_digit_count_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    """int() refuses 4,300 digits and more: that ValueError was a traceback."""
    path = write(tmp_path, "level,shares_to_buy\n0,94\n1," + "9" * 5000 + "\n")
    with pytest.raises(LotMapError) as info:
        load_lot_map(path)
    assert str(info.value).startswith(f"{path}:3: shares_to_buy is too large: '999")
    assert str(info.value).endswith("... (5000 characters)")


def test_regression_a_field_over_the_csv_limit_is_refused_naming_file_and_line(
    tmp_path: Path,
) -> None:
    """A quoted field of 200,000 characters was a _csv.Error traceback."""
    path = write(tmp_path, 'level,shares_to_buy\n0,94\n1,"' + "x" * 200_000 + '"\n')
    with pytest.raises(LotMapError) as info:
        load_lot_map(path)
    assert str(info.value) == f"{path}:3: not CSV: field larger than field limit (131072)"


def test_a_lot_map_over_1_mib_is_refused_before_reading(tmp_path: Path) -> None:
    """A 50 MB field was read whole; a lot map is a few KiB, so the file is refused first."""
    path = tmp_path / "lots.csv"
    with path.open("wb") as file:
        file.write(b'level,shares_to_buy\n0,"')
        file.truncate(50 << 20)
    with pytest.raises(LotMapError) as info:
        load_lot_map(path)
    assert str(info.value) == f"{path}:0: cannot read the lot map: larger than 1 MiB"


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        ("/dev/zero", "a device, not a regular file"),
        ("fifo", "a FIFO, not a regular file"),
        ("folder", "a directory, not a regular file"),
    ],
)
def test_regression_a_lot_map_that_is_not_a_regular_file_is_refused(
    tmp_path: Path, where: str, problem: str
) -> None:
    """/dev/zero was read until MemoryError and a FIFO blocked the start for ever."""
    path = Path(where) if where.startswith("/") else tmp_path / where
    if where == "fifo":
        os.mkfifo(path)
    elif where == "folder":
        path.mkdir()
    with pytest.raises(LotMapError) as info:
        load_lot_map(path)
    assert str(info.value) == f"{path}:0: cannot read the lot map: {problem}"


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=300)
    | st.lists(
        st.sampled_from(["level,shares_to_buy\n", "\n", ",", '"', "0", "1", "94", "9" * 20]),
        max_size=40,
    ).map(lambda pieces: "".join(pieces).encode())
)
def test_any_bytes_as_a_lot_map_give_a_lot_map_or_a_lot_map_error(data: bytes) -> None:
    """Whatever the file holds, the loader answers a LotMap or a LotMapError, nothing else."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "lots.csv"
        path.write_bytes(data)
        try:
            lots = load_lot_map(path)
        except LotMapError:
            return
        assert all(0 < count <= 1_000_000 for count in lots)
