"""bench/decision_split.py splits a real decision into its stages (a smoke test: no timing
gate): every stage of both bots is stamped, and the stages add up to the time in the bot."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_decision_is_split_into_every_stage_of_both_bots(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "decision_split.py"),
            *("--rounds", "1"),
            *("--ticks", "40"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    stages = dict.fromkeys(("seed", "ours"), 0)
    for bot, section in re.findall(r"^(seed|ours): (.*?)(?=^\S|\Z)", out, re.M | re.S):
        steps = [float(v) for v in re.findall(r"^  \S.*?\+\s*([\d.]+) us$", section, re.M)]
        inside = float(re.search(r"in the bot\s+([\d.]+) us", section)[1])  # type: ignore[index]
        stages[bot] = len(steps)
        assert all(step >= 0 for step in steps)
        # Medians of steps need not add up exactly to the median of their sum: roughly do.
        assert 0.5 * inside <= sum(steps) <= 1.5 * inside, section
    assert stages == {"seed": 2, "ours": 6}, out
    assert re.search(r"ours/seed \d+\.\d\d\. For ours <= 0\.9x the seed", out), out
