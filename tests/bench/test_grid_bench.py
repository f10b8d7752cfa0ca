"""The grid latency benchmark runs end to end for every policy (a smoke test: no timing gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_grid_bench_reports_every_durability_policy(tmp_path: Path) -> None:
    """A tiny run yields p50/p99 and the ratios to the in-memory baseline and to nosync for
    group, sync and nosync."""
    out = tmp_path / "grid.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "grid_latency.py"),
            "--rounds",
            "1",
            "--ticks",
            "20",
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
    assert set(rows) == {"memory", "crash-safe", "power-safe", "power-safe-each", "unsafe"}
    for row in rows.values():
        assert 0 < row["p50_us"] <= row["p99_us"]
    assert rows["unsafe"]["vs_unsafe"] == 1.0
    assert rows["memory"]["vs_memory"] == 1.0
