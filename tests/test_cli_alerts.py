"""Alerts from a real run: `actorctl start` in a subprocess, its Slack webhook and heartbeat
URLs (from the environment) pointing at a local HTTP server that records what it receives."""

from __future__ import annotations

import json
import signal
import tempfile
from pathlib import Path

from tests.http_recorder import Request, ThreadRecorder
from tests.test_cli import _line_with, _reap, _spawn, _stop, run

SECRET_PATH = "/services/T0SECRET/B0SECRET/XSECRETXSECRET"


def test_start_posts_its_trading_notice_to_slack_and_pings_the_heartbeat() -> None:
    """Once TQQQ has reconciled, Slack gets "trading" (an info alert), the heartbeat URL is
    pinged, and `actorctl status --json` shows the alert as sent and Slack's figures; the
    webhook's secret path appears in no output."""
    socket = Path(tempfile.mkdtemp(prefix="alerts-", dir="/tmp")) / "actorctl.sock"
    with ThreadRecorder.serving() as hooks:
        process = _spawn(
            "start",
            "--no-tracing",
            socket=socket,
            env={
                "ACTORTRADE_SLACK_WEBHOOK_URL": f"{hooks.url}{SECRET_PATH}",
                "ACTORTRADE_HEARTBEAT_URL": f"{hooks.url}/ping/SECRETPING",
            },
        )
        try:
            _line_with(process, "trading")

            def told(requests: list[Request]) -> bool:
                return any(r.path == SECRET_PATH for r in requests) and any(
                    r.path == "/ping/SECRETPING" for r in requests
                )

            assert hooks.wait_until(told, timeout=30), hooks.requests
            status = run("status", "--json", socket=socket)
            text = run("status", socket=socket)
            _, stdout, stderr = _stop(process, signal.SIGTERM)
        finally:
            _reap(process)
    assert process.returncode == 0, stderr
    (posted,) = [r for r in hooks.requests if r.path == SECRET_PATH][:1]
    assert posted.method == "POST"
    message = posted.json()["text"]
    assert message.startswith("actortrade INFO TQQQ trading: grid reconciled with the broker")
    assert message.endswith("; trading")
    assert "actorctl: alerts: slack, a heartbeat every 60 s" in stderr
    reply = json.loads(status.stdout)
    (notice,) = [a for a in reply["alerts"] if a["kind"] == "trading"]
    assert notice["severity"] == "info"
    assert notice["delivery"] == {"slack": "sent"}
    channels = {c["name"]: c for c in reply["alerting"]["channels"]}
    assert channels["slack"]["sent"] >= 1
    assert channels["heartbeat"]["sent"] >= 1
    assert "TQQQ trading: grid reconciled" in text.stdout
    for output in (status.stdout, text.stdout, stdout, stderr):
        assert "SECRET" not in output


def test_a_webhook_variable_that_is_not_a_url_is_refused_before_anything_is_written(
    tmp_path: Path,
) -> None:
    """Exit 2 naming the variable, not its value; no data directory made."""
    socket = tmp_path / "ctl.sock"
    data = tmp_path / "data"
    process = _spawn(
        "start",
        "--data-dir",
        str(data),
        socket=socket,
        env={"ACTORTRADE_SLACK_WEBHOOK_URL": "hooks.example/SECRETX"},
    )
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 2, stderr
    assert stderr == (
        "actorctl: $ACTORTRADE_SLACK_WEBHOOK_URL: must be an http:// or https:// URL with a host "
        "(its value is not shown)\n"
    )
    assert not data.exists()
