"""The bench suite: a quick smoke of every group through `actorctl bench` (CI runs this, not the
full suite), and the regression check's comparison (no timing gate anywhere)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
ACTORCTL = str(Path(sys.executable).with_name("actorctl"))


def _bench(name: str) -> ModuleType:
    # bench/ is not a package: load a module by path, with its folder importable.
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location(
            f"bench_{name}", ROOT / "bench" / f"{name}.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "bench"))


@pytest.mark.slow
def test_actorctl_bench_quick_runs_every_group_and_writes_a_stamped_result(
    tmp_path: Path,
) -> None:
    """`actorctl bench --quick` runs every group once and writes one JSON stamped with the git
    SHA, versions and machine; every figure has its same-run ratio and every SPEC 13 target is
    evaluated (met or missed: a smoke does not gate on timing)."""
    out = tmp_path / "suite.json"
    result = subprocess.run(
        [ACTORCTL, "bench", "--quick", "--quiet", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    data = json.loads(out.read_text())
    meta = data["meta"]
    assert len(meta["git_sha"]) == 40
    assert meta["python"] == sys.version.split()[0]
    assert meta["packages"]["anyio"]
    assert meta["packages"]["ib_insync"]
    assert meta["machine"]["cpus"] >= 1
    suite = _bench("suite")
    assert set(meta["groups"]) == {key for key, *_ in suite.GROUPS}
    rows = [suite.Row.from_json(r) for r in data["rows"]]
    groups = {row.group for row in rows}
    assert {
        "tick-to-order, 3 hops",
        "tick-to-order, grid",
        "tick-to-order, wire",
        "alpaca feed",
        "throughput",
        "durable fills",
        "recovery",
        "process recovery",
        "seed-style baseline",
        "decision tail, busy loop",
        "backtest",
        "sweep",
    } <= groups
    for row in rows:
        if row.unit == "count":  # what a kill did: zero is a result; --quick may skip one
            assert row.value is None or row.value >= 0, row
            assert row.note, row
            continue
        figure = row.value if row.unit == "/s" else row.p50
        assert figure is not None, row
        assert figure > 0, row
        assert all(ratio > 0 for ratio in row.ratios.values()), row
        for name in row.ratios:
            assert any(other.group == row.group and other.name == name for other in rows), name
    named = {row.key: row for row in rows}
    hops = named["tick-to-order, 3 hops: actors [uvloop]"]
    assert set(hops.ratios) == {"direct calls", "asyncio.Queue [uvloop]"}
    assert {t.text() for t in hops.targets} == {
        "x asyncio.Queue [uvloop] <= 1.15",
        "x direct calls <= 15",
    }
    for symbols in ("10 symbols", "100 symbols"):
        (target,) = named[f"throughput: actors [uvloop], {symbols}"].targets
        assert target.text() == f"x asyncio.Queue [uvloop], {symbols} >= 0.9"
    (many,) = named["throughput: actors [uvloop], 1000 symbols"].targets
    assert many.text() == "value >= 80000"
    fills = named["durable fills: lot-keeper [power-safe], 64 senders"]
    assert {t.text() for t in fills.targets} == {"x Store.write [power-safe], 64 senders >= 2"}
    for backend in ("asyncio", "uvloop", "trio"):
        for policy in ("memory", "crash-safe", "power-safe", "power-safe-each", "unsafe"):
            on = named[f"tick-to-order, grid: {policy}, tracing on [{backend}]"]
            assert f"{policy}, tracing off [{backend}]" in on.ratios
    (busy,) = (r for r in rows if r.key.startswith("decision tail, busy loop: ours, busy loop"))
    assert {t.text() for t in busy.targets} == {"p99 <= 20"}
    (ours,) = (r for r in rows if r.key.startswith("seed-style baseline: ours, venue in its own"))
    assert {t.text() for t in ours.targets} == {
        "x seed bot, venue in its own process: trade published -> placeOrder decoded <= 0.9"
    }
    assert "targets (SPEC 13):" in result.stdout
    assert "written to" in result.stdout


def _row(suite: ModuleType, unit: str, ratio: float, group: str = "throughput") -> object:
    return suite.Row(group=group, name="x", unit=unit, value=1.0, p50=1.0, ratios={"b": ratio})


def test_the_check_flags_a_ratio_that_worsened_beyond_its_tolerance() -> None:
    """Latency ratios worsen upwards and rates downwards; within the tolerance is no regression;
    the groups with fsync or another process get the looser tolerance."""
    suite = _bench("suite")
    base = [_row(suite, "us", 1.0, "tick-to-order, 3 hops")]
    assert suite.compare([_row(suite, "us", 1.2, "tick-to-order, 3 hops")], base) == []
    worse = suite.compare([_row(suite, "us", 1.3, "tick-to-order, 3 hops")], base)
    assert len(worse) == 1
    assert "from 1.00 to 1.30" in worse[0]
    assert suite.compare([_row(suite, "us", 0.5, "tick-to-order, 3 hops")], base) == []
    rate = [_row(suite, "/s", 1.0)]
    assert suite.compare([_row(suite, "/s", 0.7)], rate) != []
    assert suite.compare([_row(suite, "/s", 2.0)], rate) == []
    fills = [_row(suite, "/s", 1.0, "durable fills")]
    assert suite.compare([_row(suite, "/s", 0.7, "durable fills")], fills) == []
    assert suite.compare([_row(suite, "/s", 0.5, "durable fills")], fills) != []


def test_a_row_round_trips_through_json_with_its_targets() -> None:
    """What the suite writes is what the check reads back: ratios, targets and their verdicts."""
    common = _bench("common")
    row = common.Row(
        group="g",
        name="n",
        unit="us",
        p50=10.0,
        p99=20.0,
        p999=30.0,
        max=40.0,
        ratios={"b": 1.1},
        targets=(common.Target(on="ratio", op="<=", limit=1.15, baseline="b"),),
    )
    data = json.loads(json.dumps(row.to_json()))
    assert data["targets"][0]["met"] is True
    back = common.Row.from_json(data)
    assert back == row
    missed = common.Row.from_json({**data, "ratios": {"b": 1.2}})
    assert missed.targets[0].met(missed) is False
