"""bench/backtest_speed.py: ours' backtest engine and backtrader on the same bars give rows with
their rates, the same-run ratio and the cross-check of the two engines' trades and equity (no
timing gate: only that every figure is there)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "backtest_speed.py"
BARS = 2_000


def test_a_short_run_reports_both_rates_the_ratio_and_the_cross_check(tmp_path: Path) -> None:
    """A 2,000-bar round: three positive rates, ours x backtrader with its targets evaluated, and
    both engines' round trips and final equity in the notes, the crossover's fills identical."""
    out = tmp_path / "backtest.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--bars", str(BARS), "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads(out.read_text())}
    theirs = rows[f"backtrader 1.9.78 SMA-cross 10/30, {BARS:,} 1-min bars"]
    ours = rows[f"ours ma_cross 10/30 (drive), {BARS:,} 1-min bars"]
    grid = rows[f"ours grid, config/examples/grid.toml (drive), {BARS:,} 1-min bars"]
    for row in (theirs, ours, grid):
        assert row["group"] == "backtest"
        assert row["unit"] == "/s"
        assert row["value"] > 0, row
        assert row["rounds"] == 1
    assert ours["ratios"][theirs["name"]] > 0
    assert grid["ratios"][ours["name"]] > 0
    assert {(t["on"], t["op"], t["limit"]) for t in ours["targets"]} == {
        ("ratio", ">=", 1.0),
        ("value", ">=", 40_000.0),
    }
    assert all(t["met"] in (True, False) for t in ours["targets"])

    def cross_check(note: str) -> tuple[int, float]:
        found = re.search(r"(\d+) round trips, .*?final equity ([\d,]+\.\d\d)", note)
        assert found is not None, note
        return int(found[1]), float(found[2].replace(",", ""))

    their_trips, their_equity = cross_check(theirs["note"])
    our_trips, our_equity = cross_check(ours["note"])
    assert their_trips > 10
    assert our_trips == their_trips
    assert abs(our_equity - their_equity) < 1.0
    assert re.search(r"all \d+ fills identical", ours["note"]), ours["note"]
    assert re.search(r"\d+ fills, final equity", grid["note"]), grid["note"]
    check = rows["cross-check: ma_cross round trips, ours (same bars)"]
    assert (check["unit"], check["value"]) == ("count", our_trips)
    assert f"backtrader {their_trips}; final equity ours" in check["note"]
    assert f"x {theirs['name']} >= 1:" in result.stdout
