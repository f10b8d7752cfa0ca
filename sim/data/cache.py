"""A local Parquet cache of bar tables, keyed by the content of their source.

``BarCache(root).load(path, symbol, interval)`` hashes ``path`` (a file's bytes, or a folder's
files: ``sim.data.sources.source_digest``) and looks for ``<root>/<digest>-<symbol>-<interval>
.parquet``. When it is there, whole and made by this loader version, the table is read from it
and the source is not parsed; otherwise the loader parses the source and the table is written,
to a temporary file renamed into place, so that a reader never sees half a file. The table's
symbol, interval, source, digest, dropped rows and the loader version are in the Parquet
schema's metadata.

A cache file that cannot be read, has another schema or metadata, or fails the checks is never
trusted: it is discarded with a ``CacheWarning`` and rebuilt from the source. Nothing is written
when the source fails to load, or when its bytes changed while it was parsed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from .checks import check
from .frame import INTERVALS, SCHEMA, BarTable, DataError
from .sources import LOADER_VERSION, load_table, source_digest

Loader = Callable[[Path, str, str], BarTable]
"""Parses ``(path, symbol, interval)`` into a table."""

_KEY: Final = b"actortrade.bars"
_SYMBOL = re.compile(r"[A-Za-z0-9._^=-]{1,32}")


class CacheWarning(UserWarning):
    """Warned by ``BarCache.load`` when it discards a damaged or foreign cache file."""


class BarCache:
    """The Parquet files of bar tables under ``root`` (made when first written)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_of(self, digest: str, symbol: str, interval: str) -> Path:
        """Where the table of ``symbol`` at ``interval`` of the source ``digest`` is kept."""
        if not _SYMBOL.fullmatch(symbol):
            raise ValueError(f"a cached symbol is 1 to 32 of A-Z a-z 0-9 . _ ^ = -, got {symbol!r}")
        if interval not in INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, got {interval!r}")
        return self.root / f"{digest}-{symbol}-{interval}.parquet"

    def load(
        self,
        path: str | Path,
        symbol: str,
        interval: str,
        loader: Loader = load_table,
        *,
        version: str = LOADER_VERSION,
    ) -> BarTable:
        """``symbol``'s bars at ``interval`` from ``path``: from the cache when it holds them
        for these bytes and this ``version`` (give a version of your own to a loader that
        reads the file differently), else parsed by ``loader`` and cached."""
        path = Path(path)
        digest = source_digest(path)
        target = self.path_of(digest, symbol, interval)
        if target.exists():
            try:
                return _read(target, digest, symbol, interval, version)
            except (DataError, OSError, pa.ArrowException, ValueError, KeyError) as exc:
                warnings.warn(
                    f"{target}: discarded and rebuilt from {path}: {exc}",
                    CacheWarning,
                    stacklevel=2,
                )
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        table = loader(path, symbol, interval)
        if (table.symbol, table.interval) != (symbol, interval):
            raise ValueError(
                f"the loader of {path} returned {table.symbol} {table.interval} bars for "
                f"{symbol} {interval}"
            )
        if source_digest(path) == digest:  # else it changed while parsed: keep nothing
            _write(target, table, digest, version)
        return table


def table_fields(table: BarTable, key: str, version: str) -> dict[str, Any]:
    """What a Parquet file of ``table`` says of it in its ``actortrade.bars`` metadata."""
    return {
        "key": key,
        "symbol": table.symbol,
        "interval": table.interval,
        "source": table.source,
        "digest": table.digest,
        "dropped": list(table.dropped),
        "loader_version": version,
    }


def write_table(target: Path, table: BarTable, fields: Mapping[str, Any]) -> None:
    """``table`` as a Parquet file at ``target`` with ``fields`` (``table_fields``, and more if
    the writer wants) as its metadata, written whole: a temporary file, fsynced, renamed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    data = table.table.replace_schema_metadata({_KEY: json.dumps(fields, sort_keys=True).encode()})
    descriptor, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            pq.write_table(data, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_table(target: Path) -> tuple[BarTable, dict[str, Any]]:
    """The bar table ``write_table`` wrote to ``target``, checked, and its metadata fields;
    ``DataError`` (``target:0: ...``) for a file without them or with other columns, and
    ``target:bar N: ...`` for a bar that fails the checks."""
    data = pq.read_table(target)
    raw = (data.schema.metadata or {}).get(_KEY)
    if raw is None:
        raise DataError(f"{target}:0: no {_KEY.decode()} metadata")
    try:
        fields = json.loads(raw)
        symbol, interval = str(fields["symbol"]), str(fields["interval"])
        source, digest = str(fields["source"]), str(fields["digest"])
        dropped = tuple(str(reason) for reason in fields["dropped"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"{target}:0: bad {_KEY.decode()} metadata: {exc}") from None
    columns = data.replace_schema_metadata(None)
    if not columns.schema.equals(SCHEMA):
        found = ", ".join(
            f"{f.name} {f.type}{'' if f.nullable else ' not null'}" for f in columns.schema
        )
        raise DataError(f"{target}:0: columns ({found}) are not the bar table's")
    table = BarTable(
        table=columns,
        symbol=symbol,
        interval=interval,
        source=source,
        digest=digest,
        dropped=dropped,
    )
    check(table, locate=lambda i: f"{target}:bar {i + 1}")
    return table, fields


def _write(target: Path, table: BarTable, key: str, version: str) -> None:
    write_table(target, table, table_fields(table, key, version))


def _read(target: Path, digest: str, symbol: str, interval: str, version: str) -> BarTable:
    table, fields = read_table(target)
    wanted = {"key": digest, "symbol": symbol, "interval": interval, "loader_version": version}
    for name, value in wanted.items():
        if fields.get(name) != value:
            raise DataError(f"{target}:0: {name} is {fields.get(name)!r}, not {value!r}")
    return table
