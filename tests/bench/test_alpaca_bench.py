"""The Alpaca feed benchmark runs end to end (a smoke test: no timing gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_alpaca_bench_reports_ingest_and_latency_against_their_baselines(
    tmp_path: Path,
) -> None:
    """A tiny run yields trades/s for the raw client and the actors, the tick-to-order of both
    paths, and their ratios."""
    out = tmp_path / "alpaca.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "alpaca_feed.py"),
            "--rounds",
            "1",
            "--trades",
            "2000",
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
    results = json.loads(out.read_text())["results"]
    assert set(results["ingest_trades_per_s"]) == {"raw", "actors"}
    assert all(rate > 0 for rate in results["ingest_trades_per_s"].values())
    assert results["ingest_actors_vs_raw"] > 0
    for row in results["latency"].values():
        assert 0 < row["p50_us"] <= row["p99_us"]
    assert results["latency_alpaca_vs_replay"] > 0
    assert all(cost > 0 for cost in results["parse_us_per_trade"].values())
