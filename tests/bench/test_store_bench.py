"""The store benchmark runs end to end for every policy (a smoke test: no timing gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_store_bench_reports_every_durability_policy(tmp_path: Path) -> None:
    """A tiny run prints and writes p50/p99 and burst rate for group, sync and nosync."""
    out = tmp_path / "store.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "store_commit.py"),
            "--rounds",
            "1",
            "--writes",
            "64",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads(out.read_text())["results"]
    assert set(rows) == {"crash-safe", "power-safe", "power-safe-each", "unsafe"}
    for row in rows.values():
        assert 0 < row["p50_us"] <= row["p99_us"]
        assert row["writes_per_s"] > 0
    assert rows["power-safe-each"]["burst_vs_sync"] == 1.0
