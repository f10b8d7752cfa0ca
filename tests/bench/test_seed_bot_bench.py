"""The seed-style baseline runs end to end (a smoke test: no timing gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_seed_baseline_reports_latency_throughput_and_the_kill(tmp_path: Path) -> None:
    """A quick run yields the seed bot's and our tick-to-order, with the venue on a thread and
    in its own process (ours against the seed's in the same place, the latter with its target),
    price rates with their ratio, and the measured outcome of SIGKILLing the seed bot between
    placeOrder and its commit."""
    out = tmp_path / "seed.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "seed_bot.py"),
            "--quick",
            "--rounds",
            "1",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(out.read_text())}
    assert {row["group"] for row in rows.values()} == {"seed-style baseline"}
    latency = [row for row in rows.values() if row["unit"] == "us"]
    rates = [row for row in rows.values() if row["unit"] == "/s"]
    assert len(latency) == 4
    assert len(rates) == 2
    for row in latency:
        assert 0 < row["p50"] <= row["p99"] <= row["p999"]
    for row in rates:
        assert row["value"] > 0
    # Each of ours has the seed bot with the venue in the same place as its baseline.
    for where in ("", ", venue in its own process"):
        seed_latency = next(r for r in latency if r["name"].startswith(f"seed bot{where}:"))
        ours_latency = next(r for r in latency if r["name"].startswith(f"ours{where}:"))
        assert set(ours_latency["ratios"]) == {seed_latency["name"]}
        assert ours_latency["ratios"][seed_latency["name"]] > 0
    (target,) = ours_latency["targets"]
    assert (target["on"], target["op"], target["limit"]) == ("ratio", "<=", 0.9)
    assert target["baseline"] == seed_latency["name"]
    assert target["met"] in (True, False)
    kill = next(r for name, r in rows.items() if name.startswith("seed bot: duplicate orders"))
    assert kill["value"] is not None
    assert kill["value"] >= 0
    assert kill["rounds"] == 1
    assert "kill at placement" in kill["note"]
    assert "not reached" not in kill["note"]
    assert "Control run without a kill" in kill["note"]
