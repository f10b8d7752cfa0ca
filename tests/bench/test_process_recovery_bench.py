"""The process-recovery benchmark runs end to end (a smoke test: no timing gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_process_recovery_bench_restarts_a_killed_service_into_agreement(
    tmp_path: Path,
) -> None:
    """A quick run builds its lots through `actorctl start`, SIGKILLs the service and restarts
    it: the restart reconciles every lot with its sell, in agreement, and trades; each figure
    is there and positive."""
    out = tmp_path / "process-recovery.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "process_recovery.py"),
            "--quick",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = json.loads(out.read_text())
    lots = document["lots"]
    assert lots == 50
    rows = {row["name"]: row for row in document["rows"]}
    killed = rows[f"SIGKILL to reconciled-and-trading, {lots} lots"]
    graceful = f"graceful stop, restart to reconciled-and-trading, {lots} lots"
    assert graceful in rows
    assert killed["targets"][0]["limit"] == 2000
    assert killed["ratios"][graceful] > 0
    for row in rows.values():
        assert row["group"] == "process recovery"
        assert row["unit"] == "ms"
        assert 0 < row["p50"] <= row["max"], row
    assert any(name.startswith("SIGKILL restart phase: ") for name in rows)
    restarts = {r["variant"]: r for r in document["restarts"]}
    assert set(restarts) == {"sigkill", "graceful", "cold"}
    for variant in ("sigkill", "graceful"):
        restart = restarts[variant]
        assert restart["in_agreement"], restart
        assert restart["open_lots"] == lots
        assert restart["working_sells"] == lots
        assert restart["ticks"] > 0
        assert (
            f"TQQQ {lots} open lots, {lots} sells and 3 buys working, in agreement"
            in (restart["line"])
        )
    assert restarts["cold"]["open_lots"] == 0
