"""`actorctl start --log-format json -v` as a subprocess: every log line on standard error is a
JSON object of the run, and a decision's lines name its trace as Jaeger shows it."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import msgspec

from tests.test_cli import ACTORCTL, _env, _reap

HEX32 = re.compile(r"[0-9a-f]{32}")
HEX16 = re.compile(r"[0-9a-f]{16}")


def test_start_with_json_logs_names_the_run_and_each_decisions_trace(tmp_path: Path) -> None:
    """Lockstep replay of the default day with ``--log-format json -v``: the lines that start
    with ``{`` parse, all carry the one run id (announced by a ``run <id>`` line); the lot
    lines of the symbol actor (DEBUG, back with -v) name the actor, its symbol and the trace
    and span of their decision; no 202 of our own cancels is above DEBUG."""
    log = tmp_path / "stderr"
    # To a file: -v writes more than a pipe holds while the test reads standard output.
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                ACTORCTL,
                "start",
                "--speed",
                "0",
                "--days",
                "1",
                "--no-tracing",
                "--data-dir",
                str(tmp_path / "data"),
                "--log-format",
                "json",
                "-v",
            ],
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            env=_env(tmp_path / "control.sock"),
        )
    try:
        # With JSON logs the command's own lines (the fills, the summaries) are records too.
        deadline = time.monotonic() + 240
        while '"replay finished: TQQQ' not in log.read_text():
            assert process.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the replay never finished"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=30)
    finally:
        _reap(process)
    stderr = log.read_text()
    assert process.returncode == 0, stderr[-2000:]
    assert stdout == ""
    # Every line is one JSON object: the log's, the fills', and actorctl's own last word.
    entries = [msgspec.json.decode(line) for line in stderr.splitlines()]
    assert entries, stderr
    assert entries[-1]["message"].startswith("at stop: TQQQ ")
    assert any(e["message"] == "stopped by SIGINT" for e in entries)
    fills = [e for e in entries if e["logger"] == "actortrade.report" and " @ " in e["message"]]
    assert fills, stderr
    runs = {e.get("run_id") for e in entries}
    assert len(runs) == 1, runs
    (run_id,) = runs
    assert isinstance(run_id, str)
    assert re.fullmatch(r"[0-9a-f]{12}", run_id)
    assert any(e["message"] == f"run {run_id}" for e in entries)
    lots = [e for e in entries if e["logger"] == "actortrade.symbol" and " lot " in e["message"]]
    assert lots, stderr
    for entry in lots:
        assert entry["level"] == "DEBUG"
        assert (entry["actor"], entry["symbol"]) == ("symbol.TQQQ", "TQQQ")
        assert HEX32.fullmatch(entry["trace_id"]), entry
        assert HEX16.fullmatch(entry["span_id"]), entry
    cancels = [
        e
        for e in entries
        if e["logger"] == "actortrade.broker.ib" and e["message"].startswith("IB notice 202")
    ]
    assert cancels, "-v shows our cancels' answers at DEBUG"
    assert {e["level"] for e in cancels} == {"DEBUG"}
