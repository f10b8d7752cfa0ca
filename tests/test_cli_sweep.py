"""``actorctl sweep``: a 2x3 grid of the example MA-crossover on a local Dask cluster and on a
scheduler with two workers started as separate processes; each combination's summary is the
one a backtest of it alone writes; the same sweep twice gives the same results; --resume runs
only what is missing; a failing combination is reported and the others run; bad input exits 2
and writes nothing."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.app.backtest.test_report_browser import (
    CHROMIUM,
    FLAGS,
    OFFLINE_FLAGS,
    _own_network_namespace,
)
from tests.test_cli import ROOT, run

pytestmark = pytest.mark.slow
CONFIG = ROOT / "config" / "examples" / "ma_cross.toml"
GRID = ("--param", "ma_cross.fast=5,10", "--param", "ma_cross.slow=20,30,40")
DASK = Path(sys.executable).parent / "dask"
DAYS = "3"  # a Sharpe ratio needs more than one day


def _sweep(out: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run(
        "sweep",
        "--config",
        str(CONFIG),
        *GRID,
        "--days",
        DAYS,
        "--out",
        str(out),
        *args,
        timeout=timeout,
    )


def _folder(out: Path) -> Path:
    (folder,) = out.iterdir()
    return folder


def _rows(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(folder / "results.parquet").to_pylist()
    return rows


def _comparable(summary: dict[str, Any]) -> dict[str, Any]:
    # What a run writes of its own (its id, start and wall time) and of its config file's path.
    kept = {k: v for k, v in summary.items() if k != "run"}
    kept["config"] = {k: v for k, v in summary["config"].items() if k != "files"}
    return kept


def test_a_2x3_sweep_on_a_local_cluster_writes_results_and_a_page(tmp_path: Path) -> None:
    result = _sweep(tmp_path / "one", "--workers", "2")
    assert result.returncode == 0, result.stderr
    folder = _folder(tmp_path / "one")
    rows = _rows(folder)
    assert [(r["ma_cross.fast"], r["ma_cross.slow"]) for r in rows] == [
        (f, s) for f in ("5", "10") for s in ("20", "30", "40")
    ]
    assert all(r["error"] is None and r["run"] for r in rows)
    assert len({r["sharpe"] for r in rows}) > 1, "every combination the same"
    assert "6 combinations, 0 failed; best sharpe" in result.stdout
    page = (folder / "sweep.html").read_text()
    assert "http" not in page, "the page loads nothing from the network"
    assert "sharpe over ma_cross.slow (rows) and ma_cross.fast (columns)" in page
    for row in rows:
        assert (folder / row["run"] / "report.html").exists()
        assert f'href="{row["run"]}/report.html"' in page
    # Each combination is the backtest of its config alone: the same summary.
    row = rows[4]
    config = folder / "combos" / row["id"] / "config.toml"
    assert "fast = 10" in config.read_text()
    alone = run(
        "backtest",
        "--config",
        str(config),
        "--days",
        DAYS,
        "--out",
        str(tmp_path / "alone"),
        "--quiet",
        timeout=120,
    )
    assert alone.returncode == 0, alone.stderr
    swept = json.loads((folder / row["run"] / "summary.json").read_text())
    single = json.loads((_folder(tmp_path / "alone") / "summary.json").read_text())
    assert _comparable(swept) == _comparable(single)
    # The same sweep again: the same results (but for the runs' own directories).
    again = _sweep(tmp_path / "two", "--workers", "1", "--heatmap", "ma_cross.slow,ma_cross.fast")
    assert again.returncode == 0, again.stderr
    assert _folder(tmp_path / "two").name == folder.name
    turned = (_folder(tmp_path / "two") / "sweep.html").read_text()
    assert "sharpe over ma_cross.fast (rows) and ma_cross.slow (columns)" in turned
    strip = [{k: v for k, v in r.items() if k != "run"} for r in rows]
    assert [
        {k: v for k, v in r.items() if k != "run"} for r in _rows(_folder(tmp_path / "two"))
    ] == strip
    # --resume runs only what is missing.
    (folder / "combos" / rows[2]["id"] / "result.json").unlink()
    refused = _sweep(tmp_path / "one", "--workers", "1")
    assert refused.returncode == 2
    assert "exists: --resume to continue it" in refused.stderr
    resumed = _sweep(tmp_path / "one", "--workers", "1", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "5 done already" in resumed.stderr
    assert [{k: v for k, v in r.items() if k != "run"} for r in _rows(folder)] == strip


def test_a_failing_combination_is_reported_and_the_others_run(tmp_path: Path) -> None:
    result = run(
        "sweep",
        "--config",
        str(CONFIG),
        "--param",
        "ma_cross.fast=10,30",
        "--param",
        "ma_cross.slow=20,40",
        "--days",
        DAYS,
        "--workers",
        "2",
        "--out",
        str(tmp_path),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = _rows(_folder(tmp_path))
    failed = [r for r in rows if r["error"]]
    assert [(r["ma_cross.fast"], r["ma_cross.slow"]) for r in failed] == [("30", "20")]
    assert "fast: must be less than slow (20), got 30" in failed[0]["error"]
    assert sum(r["run"] is not None for r in rows) == 3
    assert "4 combinations, 1 failed" in result.stdout
    assert "failed" in result.stdout


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ("--param", "ma_cross.speed=1,2"),
            "--param ma_cross.speed: ma_cross has no parameter 'speed'",
        ),
        (("--param", "grid.step=0.01"), "--param grid.step: no grid in the config"),
        (("--param", "ma_cross.fast=5,ten"), "--param ma_cross.fast=ten: expected a whole number"),
        (("--param", "ma_cross.fast"), "expected KEY=V1,V2,... or KEY=START:STOP:STEP"),
        (("--param", "ma_cross.fast=9:1:1"), "STOP is below START"),
        (("--param", "ma_cross.fast=60,70"), "fast: must be less than slow (30), got 60"),
        (
            ("--param", "ma_cross.fast=5", "--scheduler", "tcp://127.0.0.1:9"),
            "--scheduler tcp://127.0.0.1:9: cannot reach it",
        ),
        (("--param", "ma_cross.fast=5", "--metric", "luck"), "--metric: 'luck' is not one of"),
        (
            ("--param", "ma_cross.fast=5", "--heatmap", "ma_cross.fast,x"),
            "--heatmap ma_cross.fast,x",
        ),
    ],
)
def test_bad_input_exits_2_naming_it_and_writes_nothing(
    tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    out = tmp_path / "sweeps"
    result = run(
        "sweep", "--config", str(CONFIG), *args, "--days", "3", "--out", str(out), timeout=120
    )
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert said in result.stderr
    assert not out.exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A Dask scheduler and two workers, each its own process, on loopback."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path / "dask-logs"
    logs.mkdir()
    commands = {
        "scheduler": ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        **{
            f"worker-{n}": [
                "worker",
                address,
                "--nworkers",
                "1",
                "--nthreads",
                "1",
                "--no-dashboard",
                "--name",
                f"worker-{n}",
            ]
            for n in range(2)
        },
    }
    with contextlib.ExitStack() as stack:
        processes = []
        try:
            for name, command in commands.items():
                log = stack.enter_context((logs / f"{name}.log").open("w"))
                processes.append(
                    subprocess.Popen([str(DASK), *command], stdout=log, stderr=subprocess.STDOUT)
                )
            yield address
        finally:
            for process in reversed(processes):
                process.terminate()
            for process in processes:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def test_a_sweep_on_a_scheduler_with_two_worker_processes(tmp_path: Path, cluster: str) -> None:
    from distributed import Client

    deadline = time.monotonic() + 60
    while True:
        try:
            with Client(cluster, timeout="5s") as client:
                if len(client.scheduler_info()["workers"]) == 2:
                    break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the scheduler and its two workers did not come up"
        time.sleep(0.5)
    result = _sweep(tmp_path / "remote", "--scheduler", cluster)
    assert result.returncode == 0, result.stderr
    assert f"2 worker(s) at {cluster}" in result.stderr
    rows = _rows(_folder(tmp_path / "remote"))
    assert len(rows) == 6
    assert all(r["error"] is None for r in rows)
    local = _sweep(tmp_path / "local", "--workers", "1")
    assert local.returncode == 0, local.stderr
    strip = [{k: v for k, v in r.items() if k != "run"} for r in rows]
    assert [
        {k: v for k, v in r.items() if k != "run"} for r in _rows(_folder(tmp_path / "local"))
    ] == strip


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium")
def test_the_page_sorts_its_table_in_a_real_browser_offline(tmp_path: Path) -> None:
    """Chromium with no network opens sweep.html#sort=-sharpe and #sort=sharpe: the table's
    rows in the order of the results' Sharpe ratios, descending and ascending."""
    result = _sweep(tmp_path / "out", "--workers", "1")
    assert result.returncode == 0, result.stderr
    folder = _folder(tmp_path / "out")
    sharpe = [r["sharpe"] for r in _rows(folder)]
    page = folder / "sweep.html"
    for fragment, descending in (("#sort=-sharpe", True), ("#sort=sharpe", False)):
        shown = subprocess.run(
            [
                *_own_network_namespace(),
                str(CHROMIUM),
                *FLAGS,
                *OFFLINE_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
                "--dump-dom",
                page.as_uri() + fragment,
            ],
            capture_output=True,
            check=True,
            timeout=180,
            text=True,
        ).stdout
        table = shown[shown.index('id="all"') :]
        rows = re.findall(r"<tr[^>]*>(.*?)</tr>", table[table.index("<tbody>") :], re.S)
        column = 3  # id, the two keys, then the metric
        got = [float(re.findall(r'data-v="([^"]*)"', row)[column]) for row in rows]
        assert got == sorted(sharpe, reverse=descending), fragment
