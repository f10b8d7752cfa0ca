"""The wire-to-wire benchmark runs end to end (a smoke test: no timing gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wire_bench_reports_wire_and_in_process_side_by_side(tmp_path: Path) -> None:
    """A tiny run yields p50/p99 for the wire path and the in-process one, and their ratio."""
    out = tmp_path / "wire.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "wire_latency.py"),
            "--rounds",
            "1",
            "--ticks",
            "30",
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
    assert set(rows) == {"wire", "in-process"}
    for row in rows.values():
        assert 0 < row["p50_us"] <= row["p99_us"]
    assert rows["in-process"]["vs_in_process"] == 1.0
    assert rows["wire"]["vs_in_process"] > 0
