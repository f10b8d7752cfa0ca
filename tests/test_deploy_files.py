"""The deployment files a user runs without us: docker-compose.yml's bot commands are ones
``actorctl start`` accepts, paper only, and its healthcheck answers against a real service."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.core
import typer.main
import yaml

from app.cli import cli

ROOT = Path(__file__).resolve().parents[1]
ACTORCTL = str(Path(sys.executable).with_name("actorctl"))


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _bots() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in _compose()["services"].items()
        if service.get("build") == "."
    }


def test_every_bot_command_is_one_actorctl_start_accepts() -> None:
    """Each bot's command parses with actorctl's own command line (an option renamed since
    would fail here, not in a user's container)."""
    group = typer.main.get_command(cli)
    assert isinstance(group, typer.core.TyperGroup)
    bots = _bots()
    assert set(bots) == {"bot", "bot-ib"}
    for name, service in bots.items():
        command = [str(part) for part in service["command"]]
        assert command[0] == "start", name
        start = group.get_command(typer.Context(group), "start")
        assert start is not None
        context = start.make_context("start", command[1:])
        assert context.params["http_listen"] == "0.0.0.0:9464", name
        assert context.params["log_format"].value == "json", name
        assert service["healthcheck"]["test"][-1].endswith(
            "urlopen('http://127.0.0.1:9464/healthz', timeout=3)"
        )
        assert service["ports"] == [f"127.0.0.1:{service['ports'][0].split(':')[1]}:9464"]


def test_the_gateway_profile_is_opt_in_and_paper() -> None:
    """The IB Gateway and its bot run only with ``--profile gateway``; the bot's port is the
    image's paper port, which the live-money rule lets through without --live, and the
    Gateway's login stays in its own env file."""
    from config.load import DEFAULT_CONFIG, load_config
    from config.schema import LIVE_PORTS, BrokerKind

    services = _compose()["services"]
    assert services["ib-gateway"]["profiles"] == ["gateway"]
    assert services["bot-ib"]["profiles"] == ["gateway"]
    assert "profiles" not in services["bot"]
    assert "profiles" not in services["jaeger"]
    assert services["ib-gateway"]["environment"]["TRADING_MODE"] == "paper"
    assert services["bot-ib"]["env_file"] == [{"path": "./actortrade.env", "required": False}]
    command = services["bot-ib"]["command"]
    port = int(command[command.index("--port") + 1])
    assert port not in LIVE_PORTS
    from app.cli._common import broker_settings

    settings = broker_settings(
        load_config(DEFAULT_CONFIG), BrokerKind.IB, host="ib-gateway", port=port, live=False
    )
    assert settings.broker.port == port
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    assert "actortrade.env" in ignored


def test_the_healthcheck_answers_against_a_running_service(tmp_path: Path) -> None:
    """The compose healthcheck's own command, pointed at a real ``actorctl start``'s endpoint,
    exits 0 while it trades."""
    check = _bots()["bot"]["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = check[3].replace("127.0.0.1:9464", f"127.0.0.1:{port}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACTORTRADE_SOCKET": str(tmp_path / "s.sock")}
    process = subprocess.Popen(
        [ACTORCTL, "start", "--no-tracing", "--days", "3", "--http", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if re.search(r"HTTP endpoints on http://", line):
                break
        else:
            pytest.fail("the service never served its endpoints")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        assert result.returncode == 0, result.stderr
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        after = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        assert after.returncode != 0  # nothing answers once it has stopped
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
