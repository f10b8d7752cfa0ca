"""The tracing overhead benchmark runs end to end (a smoke test: no timing gate): every variant
reports, and every span it exported reached the OTLP receiver in the other process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_tracing_bench_reports_on_and_off_and_exports_every_span(tmp_path: Path) -> None:
    out = tmp_path / "tracing.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "tracing_overhead.py"),
            "--rounds",
            "1",
            "--ticks",
            "20",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    rows = report["results"]
    assert set(rows) == {
        "memory tracing off",
        "memory tracing on",
        "crash-safe tracing off",
        "crash-safe tracing on",
    }
    for name, row in rows.items():
        assert 0 < row["p50_us"] <= row["p99_us"]
        if name.endswith("off"):
            assert row["on_vs_off"] == 1.0
    # 20 decisions per traced run, each at least a tick, decide, commit, submit and place span.
    assert report["spans_exported"] >= 2 * 20 * 5
    assert report["spans_received"] == report["spans_exported"]
    assert "worst p50 on/off ratio" in result.stdout
