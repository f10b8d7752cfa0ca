"""The Parquet cache: keyed by content, read without parsing, never trusting a damaged file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sim.data import LOADER_VERSION, BarCache, BarTable, CacheWarning, DataError, load_table

HEADER = "Datetime,Symbol,Open,High,Low,Close,Volume\n"
BODY = (
    "2025-05-01 13:30:00,TQQQ,51.62,51.70,51.50,51.65,1000\n"
    "2025-05-01 13:31:00,TQQQ,51.65,51.80,51.60,51.75,900\n"
)


class CountingLoader:
    """The real loader, counting its parses."""

    def __init__(self) -> None:
        self.parses = 0

    def __call__(self, path: Path, symbol: str, interval: str) -> BarTable:
        self.parses += 1
        return load_table(path, symbol, interval)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "bars.csv"
    path.write_text(HEADER + BODY)
    return path


def test_the_second_load_reads_parquet_and_does_not_parse(tmp_path: Path, source: Path) -> None:
    """One parse for two loads; the same bars, symbol, source and digest both times."""
    cache, loader = BarCache(tmp_path / "cache"), CountingLoader()
    first = cache.load(source, "TQQQ", "1min", loader)
    second = cache.load(source, "TQQQ", "1min", loader)
    assert loader.parses == 1
    assert second.table.equals(first.table)
    assert (second.symbol, second.interval, second.source, second.digest) == (
        "TQQQ",
        "1min",
        str(source),
        first.digest,
    )
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"{first.digest}-TQQQ-1min.parquet"]


def test_the_metadata_is_in_the_parquet_schema(tmp_path: Path, source: Path) -> None:
    """symbol, interval, source, digest, dropped and the loader version."""
    table = BarCache(tmp_path).load(source, "TQQQ", "1min")
    stored = pq.read_schema(tmp_path / f"{table.digest}-TQQQ-1min.parquet").metadata
    fields = json.loads(stored[b"actortrade.bars"])
    assert fields == {
        "key": table.digest,
        "symbol": "TQQQ",
        "interval": "1min",
        "source": str(source),
        "digest": table.digest,
        "dropped": [],
        "loader_version": LOADER_VERSION,
    }


def test_changed_bytes_are_another_key(tmp_path: Path, source: Path) -> None:
    """Editing the source parses it again, into a second file."""
    cache, loader = BarCache(tmp_path / "cache"), CountingLoader()
    cache.load(source, "TQQQ", "1min", loader)
    source.write_text(HEADER + BODY.replace("1000", "1001"))
    assert cache.load(source, "TQQQ", "1min", loader).to_bars()[0].volume == 1001
    assert loader.parses == 2
    assert len(list((tmp_path / "cache").iterdir())) == 2


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), id="cut"),
        pytest.param(lambda p: p.write_bytes(b"PAR1garbagePAR1"), id="garbage"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty"),
    ],
)
def test_a_damaged_cache_file_is_discarded_with_a_warning_and_rebuilt(
    tmp_path: Path, source: Path, damage: object
) -> None:
    """Never trusted: a warning, one more parse, and a good file again."""
    cache, loader = BarCache(tmp_path), CountingLoader()
    table = cache.load(source, "TQQQ", "1min", loader)
    target = tmp_path / f"{table.digest}-TQQQ-1min.parquet"
    damage(target)  # type: ignore[operator]
    with pytest.warns(CacheWarning, match="discarded and rebuilt"):
        again = cache.load(source, "TQQQ", "1min", loader)
    assert loader.parses == 2
    assert again.table.equals(table.table)
    assert cache.load(source, "TQQQ", "1min", loader).table.equals(table.table)
    assert loader.parses == 2


def test_a_cache_file_of_bad_bars_or_another_version_is_not_trusted(
    tmp_path: Path, source: Path
) -> None:
    """A file whose bars fail the checks, or written by another loader version, is rebuilt."""
    cache, loader = BarCache(tmp_path), CountingLoader()
    table = cache.load(source, "TQQQ", "1min", loader)
    target = tmp_path / f"{table.digest}-TQQQ-1min.parquet"
    stored = pq.read_table(target)
    swapped = stored.set_column(2, stored.schema.field("high"), stored.column("low"))
    pq.write_table(swapped.replace_schema_metadata(stored.schema.metadata), target)
    with pytest.warns(CacheWarning, match=r"column open 51\.62 > high 51\.5"):
        cache.load(source, "TQQQ", "1min", loader)
    with pytest.warns(CacheWarning, match="loader_version is '1', not 'mine'"):
        cache.load(source, "TQQQ", "1min", loader, version="mine")
    nullable = stored.set_column(2, "high", stored.column("high"))  # another schema
    pq.write_table(nullable.replace_schema_metadata(stored.schema.metadata), target)
    with pytest.warns(CacheWarning, match=r"columns \(.*high double, low double not null"):
        cache.load(source, "TQQQ", "1min", loader)
    assert loader.parses == 4


def test_a_bad_source_writes_nothing(tmp_path: Path, source: Path) -> None:
    """The loader's error comes through; the cache folder holds no file, not even a temp."""
    source.write_text(HEADER + BODY + "2025-05-01 13:32:00,TQQQ,51.7,oops,51.6,51.7,1\n")
    cache = BarCache(tmp_path / "cache")
    with pytest.raises(DataError, match=r"bars.csv:4: column High is not a number"):
        cache.load(source, "TQQQ", "1min")
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")


def test_a_folder_source_is_keyed_by_its_files(tmp_path: Path) -> None:
    """A LEAN minute folder: one key for its files; a new day is a new key."""
    import zipfile

    folder = tmp_path / "minute" / "spy"
    folder.mkdir(parents=True)

    def day(stamp: str) -> None:
        with zipfile.ZipFile(folder / f"{stamp}_trade.zip", "w") as archive:
            archive.writestr(f"{stamp}_spy_minute_trade.csv", "34200000,1,1,1,1,1\n")

    day("20131004")
    cache, loader = BarCache(tmp_path / "cache"), CountingLoader()
    assert len(cache.load(folder, "SPY", "1min", loader)) == 1
    assert len(cache.load(folder, "SPY", "1min", loader)) == 1
    day("20131007")
    assert len(cache.load(folder, "SPY", "1min", loader)) == 2
    assert loader.parses == 2


def test_a_source_changed_while_parsed_is_returned_but_not_cached(
    tmp_path: Path, source: Path
) -> None:
    """The key is of the bytes hashed first: a table of other bytes is not stored under it."""

    def editing(path: Path, symbol: str, interval: str) -> BarTable:
        table = load_table(path, symbol, interval)
        path.write_text(HEADER + BODY.replace("1000", "1001"))
        return table

    cache = BarCache(tmp_path / "cache")
    assert len(cache.load(source, "TQQQ", "1min", editing)) == 2
    assert not (tmp_path / "cache").exists() or not os.listdir(tmp_path / "cache")


def test_a_symbol_or_interval_that_is_no_file_name_is_refused(tmp_path: Path, source: Path) -> None:
    """The cache's file names are made of them."""
    with pytest.raises(ValueError, match="a cached symbol is"):
        BarCache(tmp_path).load(source, "../x", "1min")
    with pytest.raises(ValueError, match="interval must be one of"):
        BarCache(tmp_path).load(source, "TQQQ", "../1min")
