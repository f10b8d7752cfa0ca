"""The mailbox benchmark runs end to end and reports every figure (a smoke test: no timing gate)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_mailbox_bench_prints_ratios_and_writes_json(tmp_path: Path) -> None:
    """A tiny run yields p50/p99 and same-run ratios for every variant, both backends."""
    out = tmp_path / "mailbox.json"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "mailbox_latency.py"),
            "--rounds",
            "2",
            "--ticks",
            "300",
            "--warmup",
            "20",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "target actors 3-hop" in result.stdout
    data = json.loads(out.read_text())
    rows = data["results"]
    loop = "uvloop" if data["uvloop"] else "asyncio"
    for name in (
        f"actors 3-hop [{loop}]",
        f"asyncio.Queue 3-hop [{loop}]",
        "actors 3-hop [trio]",
        "direct 3-hop",
        f"actors 1-hop [{loop}]",
    ):
        assert rows[name]["p50_us"] > 0
        assert rows[name]["p99_us"] >= rows[name]["p50_us"]
        assert rows[name]["vs_direct"] > 0
    assert rows[f"actors 3-hop [{loop}]"]["vs_queue"] > 0
    assert rows["direct 3-hop"]["vs_direct"] == 1.0
