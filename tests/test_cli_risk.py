"""The risk actor and dry-run through the real ``actorctl``, as subprocesses on the embedded
venue (its TWS API server and ib_insync): a daily loss guard tripped on a falling day survives
a SIGKILL of ``actorctl start`` (a restart on the same data directory the same day stays
tripped, sends no buy, says nothing again); ``actorctl halt`` / ``resume``; ``start --dry-run``
sends the venue nothing and ``status`` shows what it would have sent."""

from __future__ import annotations

import json
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actors import ledger
from actors.lot_keeper import ledger_store
from tests.test_cli import ACTORCTL, _env, run
from tests.test_cli_ops import _until

CONFIG = """
[risk]
equity = 100000
max_daily_loss_pct = "0.05"
"""


def falling_day(path: Path, minutes: int = 240) -> Path:
    """A TQQQ bar file from the open, falling 0.2% a minute (naive UTC times)."""
    lines = ["Datetime,Symbol,Open,High,Low,Close,Volume"]
    price = Decimal("52.00")
    start = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
    for minute in range(minutes):
        close = (price * Decimal("0.998")).quantize(Decimal("0.01"))
        at = (start + timedelta(minutes=minute)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{at},TQQQ,{price},{price},{close},{close},100000")
        price = close
    path.write_text("\n".join(lines) + "\n")
    return path


def buys_sent(data: Path) -> list[str]:
    """The orderRefs of every buy the venue was sent (its journal)."""
    raw = (data / "venue.journal").read_bytes()
    refs = []
    for line in raw[: raw.rfind(b"\n") + 1].splitlines():
        entry = msgspec.json.decode(line)
        if entry[0] == "place" and entry[1]["side"] == "BUY":
            refs.append(entry[1]["ref"])
    return refs


def start(*args: str, socket: Path, log: Path) -> subprocess.Popen[str]:
    with log.open("w") as errors:
        return subprocess.Popen(
            [ACTORCTL, "start", "--no-tracing", *args],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=_env(socket),
        )


def status(socket: Path) -> dict[str, Any] | None:
    answer = run("status", "--json", socket=socket)
    return json.loads(answer.stdout) if answer.returncode == 0 else None


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    return out


def test_a_tripped_daily_loss_guard_survives_a_sigkill_of_actorctl_start(tmp_path: Path) -> None:
    """Killed once the guard has tripped, started again on the same directory: the ledger still
    says tripped, the replay goes on falling and no buy reaches the venue, and the operator was
    told once, by the first run."""
    config = tmp_path / "risk.toml"
    config.write_text(CONFIG)
    bars = falling_day(tmp_path / "falling.csv")
    data = tmp_path / "data"
    socket = Path(f"/tmp/actortrade-risk-{id(tmp_path)}.sock")
    args = ("--config", str(config), "--replay", str(bars), "--data-dir", str(data))
    first = start(*args, "--speed", "600", socket=socket, log=tmp_path / "first.log")
    try:
        tripped = _until(
            lambda: (s := status(socket)) is not None and s["risk"]["tripped"] and s,
            "tripped guard",
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate(timeout=10)
    assert first.returncode == -signal.SIGKILL
    told = [a for a in tripped["alerts"] if a["kind"] == "risk-tripped"]
    assert len(told) == 1
    with ledger_store(data / "ledger") as store:
        record = store.read(ledger.load_risk)
    assert record.tripped == tripped["risk"]["tripped"]
    assert record.session == "2026-11-23"
    before = buys_sent(data)
    assert before
    last_trade = tripped["venue_time"]

    second = start(*args, "--speed", "0", socket=socket, log=tmp_path / "second.log")
    try:
        assert second.stdout is not None
        for line in second.stdout:
            if "replay finished" in line:
                break
        after = status(socket)
        assert after is not None
        stop(second)
    finally:
        if second.poll() is None:
            second.kill()
            second.communicate(timeout=10)
    assert after["risk"]["tripped"] == record.tripped
    assert after["risk"]["refused"].get("daily_loss", 0) > 0
    assert not [a for a in after["alerts"] if a["kind"] == "risk-tripped"]
    assert buys_sent(data) == before
    assert after["venue_time"] > last_trade


def test_halt_and_resume_go_through_the_control_socket(tmp_path: Path) -> None:
    """`actorctl halt TQQQ` stops new buys at the venue (durably: the ledger has it), an unknown
    symbol is refused naming it, `actorctl resume` lets the grid buy again."""
    data = tmp_path / "data"
    socket = Path(f"/tmp/actortrade-halt-{id(tmp_path)}.sock")
    service = start("--data-dir", str(data), "--speed", "300", socket=socket, log=tmp_path / "log")
    try:
        _until(lambda: buys_sent(data) if (data / "venue.journal").exists() else [], "a buy")
        halted = run("halt", "TQQQ", socket=socket)
        assert halted.returncode == 0, halted.stderr
        assert "halted: TQQQ" in halted.stdout
        unknown = run("halt", "SPY", socket=socket)
        assert unknown.returncode == 1
        assert "'SPY' is not traded here (traded: TQQQ)" in unknown.stdout + unknown.stderr
        shown = run("status", socket=socket)
        assert "HALTED by the operator: TQQQ" in shown.stdout
        settled = len(buys_sent(data))
        _until(
            lambda: (s := status(socket)) is not None and s["risk"]["refused"].get("halt", 0),
            "a refusal for the halt",
            timeout=90,
        )
        assert len(buys_sent(data)) == settled
        resumed = run("resume", socket=socket)
        assert resumed.returncode == 0, resumed.stderr
        assert "halted: nothing" in resumed.stdout
        _until(lambda: len(buys_sent(data)) > settled, "a buy after resume", timeout=90)
        stop(service)
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate(timeout=10)


@pytest.mark.parametrize("how", [("--dry-run",), ("--config", "DRY")], ids=["flag", "config"])
def test_start_dry_run_sends_the_venue_nothing_and_status_shows_what_it_would_have(
    tmp_path: Path, how: tuple[str, ...]
) -> None:
    """The default generated day over the wire in dry-run: zero orders in the venue's journal,
    every intent marked dry, and status lists the orders that would have been sent."""
    if how[0] == "--config":
        config = tmp_path / "dry.toml"
        config.write_text('mode = "dry-run"\n')
        how = ("--config", str(config))
    data = tmp_path / "data"
    socket = Path(f"/tmp/actortrade-dry-{id(tmp_path)}.sock")
    service = start(
        *how, "--data-dir", str(data), "--speed", "0", socket=socket, log=tmp_path / "log"
    )
    try:
        assert service.stdout is not None
        for line in service.stdout:
            if "replay finished" in line:
                break
        reply = status(socket)
        shown = run("status", socket=socket).stdout
        stop(service)
    finally:
        if service.poll() is None:
            service.kill()
            service.communicate(timeout=10)
    assert reply is not None
    assert reply["mode"] == "dry-run"
    assert reply["dry_run"]["sent"] > 0
    assert reply["dry_run"]["working"]
    assert "DRY RUN:" in shown
    assert buys_sent(data) == []
    assert b'"place"' not in (data / "venue.journal").read_bytes()
    with ledger_store(data / "ledger") as store:
        intents = store.read(ledger.intents)
    assert intents
    assert all(i.dry for i in intents)
