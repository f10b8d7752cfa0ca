"""A backtest's run directory: ``runs/<run-id>/``, never overwritten.

* ``bars.parquet``, ``orders.parquet``, ``fills.parquet``, ``equity.parquet``: the replayed bars,
  the orders the tree placed (as they ended), the executions and the portfolio at every bar's
  close (``app.backtest.run``);
* ``summary.json``: the metrics, the run's provenance (git SHA and dirty flag, the config's and
  every data file's SHA-256, package versions), the virtual period and the wall time.

The run id is the UTC start time and the first 8 hex digits of the config hash
(``20261205T021530Z-1a2b3c4d``). Everything but ``summary.json``'s ``run`` section (its id, its
wall-clock start and duration) depends on the bars and the config only: two runs of the same
give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import attrs

from actors.domain import Bar, epoch_ns

from .run import EquityPoint, FillRecord, OrderRecord, Recorded

PACKAGES = ("actortrade", "ib_insync", "alpaca-py", "anyio", "lmdb", "pyarrow", "matplotlib")


class RunDirectoryError(RuntimeError):
    """The run directory could not be made (it exists, or the disk refused)."""


def digest(paths: Iterable[Path]) -> str:
    """SHA-256 over the files' bytes, in the order given."""
    h = hashlib.sha256()
    for path in paths:
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def run_id(started: datetime, config_hash: str) -> str:
    return f"{started.astimezone(UTC):%Y%m%dT%H%M%SZ}-{config_hash[:8]}"


def new_run_dir(out: Path, ident: str) -> Path:
    """``out/ident``, made now; an existing one is never reused (a suffix ``-2``, ``-3``, ...)."""
    out.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        path = out / (ident if n == 1 else f"{ident}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunDirectoryError(f"{out}: 999 runs named {ident} already: pick another --out")


def git_state(root: Path) -> dict[str, Any]:
    """The checkout's commit and whether it has uncommitted changes (None outside git)."""
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}
    return {"sha": sha, "dirty": bool(status.strip())}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def write_tables(folder: Path, bars: Sequence[Bar], recorded: Recorded) -> None:
    """The four Parquet ledgers of a run."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ts = pa.timestamp("ns", tz="UTC")
    tables = {
        "bars": pa.table(
            {
                "symbol": pa.array([b.symbol for b in bars], pa.string()),
                "start": pa.array([epoch_ns(b.start) for b in bars], ts),
                "open": pa.array([float(b.open) for b in bars], pa.float64()),
                "high": pa.array([float(b.high) for b in bars], pa.float64()),
                "low": pa.array([float(b.low) for b in bars], pa.float64()),
                "close": pa.array([float(b.close) for b in bars], pa.float64()),
                "volume": pa.array([b.volume for b in bars], pa.int64()),
            }
        ),
        "orders": _records(recorded.orders, OrderRecord, {"accepted_ns": ts, "ended_ns": ts}),
        "fills": _records(recorded.fills, FillRecord, {"ts_ns": ts}),
        "equity": _records(recorded.equity, EquityPoint, {"ts_ns": ts}),
    }
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet", compression="zstd")


def _records(rows: Sequence[Any], cls: type, times: Mapping[str, Any]) -> Any:
    import pyarrow as pa

    columns: dict[str, Any] = {}
    for field in attrs.fields(cls):
        values = [getattr(row, field.name) for row in rows]
        kind = times.get(field.name)
        name = field.name.removesuffix("_ns") if kind is not None else field.name
        columns[name] = pa.array(values, kind) if kind is not None else values
    if not rows:
        return pa.table(
            {
                (f.name.removesuffix("_ns") if f.name in times else f.name): pa.array(
                    [], times.get(f.name, _empty_type(f.type))
                )
                for f in attrs.fields(cls)
            }
        )
    return pa.table(columns)


def _empty_type(annotation: Any) -> Any:
    import pyarrow as pa

    text = str(annotation)
    if text.startswith("int"):
        return pa.int64()
    if text.startswith("float"):
        return pa.float64()
    if text.startswith("bool"):
        return pa.bool_()
    return pa.string()


def write_summary(folder: Path, summary: Mapping[str, Any]) -> Path:
    path = folder / "summary.json"
    path.write_text(json.dumps(summary, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return path
