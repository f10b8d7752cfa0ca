"""bench/sweep_speed.py: a sweep on a local Dask cluster and the same backtests in a serial loop
give both rates, the same-run ratio with its target evaluated, and Dask's cost per task (no
timing gate: only that every figure is there)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "sweep_speed.py"


def test_a_quick_round_reports_both_rates_the_ratio_and_the_task_cost(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--rounds",
            "1",
            "--quick",
            "--workers",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads(out.read_text())}
    serial = rows["serial loop, 12 backtests of 1 generated day(s)"]
    swept = rows[
        "sweep on a LocalCluster of 2 worker process(es), 12 backtests of 1 generated day(s)"
    ]
    cost = rows["Dask's cost per task (an empty task, submitted and gathered)"]
    for row in (serial, swept):
        assert row["group"] == "sweep"
        assert row["unit"] == "/s"
        assert row["value"] > 0
    assert swept["ratios"][serial["name"]] > 0
    assert [
        (t["on"], t["op"], t["limit"], t["met"] in (True, False)) for t in swept["targets"]
    ] == [("ratio", ">=", 1.7, True)]
    assert cost["unit"] == "ms"
    assert cost["p50"] > 0
    assert "a task against" in cost["note"]
