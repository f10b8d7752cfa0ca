"""actorctl, driven as a user would: the installed console script in a subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket as socket_module
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from tests.otlp_receiver import Receiver, otlp_receiver
from tests.users import as_user, impostor_command, other_user

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))


def _env(socket: Path | None = None) -> dict[str, str]:
    # Every test its own control socket: a developer's running actorctl must not interfere.
    default = Path(f"/tmp/actorctl-test-{os.getpid()}.sock")
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "ACTORTRADE_SOCKET": str(socket or default),
    }


def run(
    *args: str, timeout: float = 30, socket: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACTORCTL, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=_env(socket),
    )


def test_help_lists_the_commands() -> None:
    """`actorctl --help` works and names `start` and `demo`."""
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "start" in result.stdout
    assert "demo" in result.stdout
    assert "Trade each symbol's strategy on the embedded sim venue" in result.stdout


def test_version_prints_the_distribution_version() -> None:
    """`actorctl --version` prints the installed version."""
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("actorctl 0.")


def test_bad_options_are_refused_with_a_usage_error() -> None:
    """A bad value names the option and exits non-zero."""
    result = run("demo", "--report-every", "-1")
    assert result.returncode == 2
    assert "--report-every" in result.stderr


ROOT = Path(__file__).resolve().parents[1]


def _spawn(
    *args: str, socket: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ACTORCTL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**_env(socket), **(env or {})},
    )


def _reap(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=10)


def _line_with(process: subprocess.Popen[str], text: str) -> str:
    assert process.stdout is not None
    for line in process.stdout:
        if text in line:
            return line
    stderr = process.stderr.read() if process.stderr else ""
    raise AssertionError(f"no line with {text!r}; stderr: {stderr}")


def _stop(process: subprocess.Popen[str], signum: signal.Signals) -> tuple[float, str, str]:
    sent = time.monotonic()
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=10)
    return time.monotonic() - sent, stdout, stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(
    "how",
    [("--backend", "asyncio"), ("--backend", "trio", "--broker", "inprocess")],
    ids=["asyncio-over-the-wire", "trio-in-process"],
)
def test_start_trades_on_the_embedded_venue_until_a_signal_then_stops_within_5_s(
    signum: signal.Signals, how: tuple[str, ...]
) -> None:
    """The default run buys at once (over the wire through ib_insync by default; in-process
    on trio), then stops on SIGINT/SIGTERM with exit 0 within 5 s."""
    process = _spawn("start", *how)
    try:
        # Paced replay: under load the order may meet the second trade, so only the shape is
        # checked here; exact prices are checked by the lockstep (--speed 0) tests.
        line = _line_with(process, "BUY")
        assert "BUY    94 TQQQ @ 52.0" in line
        assert "(L0) position 94" in line
        elapsed, stdout, stderr = _stop(process, signum)
    finally:
        _reap(process)
    assert process.returncode == 0, stderr
    assert elapsed < 5.0
    assert f"stopped by {signum.name}" in stderr
    assert "forced" not in stderr
    assert "at stop:" in stdout
    assert "in PAPER mode on the embedded sim venue" in stderr
    if "inprocess" not in how:
        assert "through its TWS API server with ib_insync" in stderr
        assert "TWS API server listens on 127.0.0.1:" in stderr


def test_start_replays_the_whole_generated_day_and_reports_the_pnl(receiver: Receiver) -> None:
    """As fast as possible: the day ends with a summary of orders, executions, lots and P&L.
    Tracing goes where the standard OTEL_* variables say (as docker-compose.yml sets them)."""
    process = _spawn(
        "start",
        "--speed",
        "0",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_SERVICE_NAME": "compose-bot"},
    )
    try:
        summary = _line_with(process, "replay finished")
        _, _, stderr = _stop(process, signal.SIGTERM)
    finally:
        _reap(process)
    assert "3 sell executions" in summary
    assert "realized P&L 150.40" in summary
    assert f"tracing: a trace per decision to {receiver.endpoint} as service 'compose-bot'" in (
        stderr
    )
    assert {s["resource"]["service.name"] for s in receiver.spans} == {"compose-bot"}
    assert sum(1 for s in receiver.spans if s["name"] == "order.filled") == 8


def test_start_with_feed_alpaca_trades_the_day_through_both_sdks_to_the_same_pnl() -> None:
    """The seed's hybrid configuration on the embedded venue: prices through its Alpaca stream
    server and alpaca-py, orders through its TWS API server and ib_insync; in lockstep the day
    ends exactly as with the replay handed straight to the symbol actor."""
    process = _spawn("start", "--feed", "alpaca", "--speed", "0", "--no-tracing")
    try:
        summary = _line_with(process, "replay finished")
        _, _, stderr = _stop(process, signal.SIGTERM)
    finally:
        _reap(process)
    assert process.returncode == 0, stderr
    assert "tracing" not in stderr  # --no-tracing: no export, no warning about Jaeger
    assert "3 sell executions" in summary
    assert "realized P&L 150.40" in summary
    assert "Alpaca stream server listens on ws://127.0.0.1:" in stderr
    assert "prices: TQQQ from its Alpaca stream server with alpaca-py" in stderr


def test_check_tests_the_alpaca_feed_history_and_stream() -> None:
    """`check --feed alpaca` on the embedded venue: its history in pages through
    StockHistoricalDataClient, and a stream that accepts the keys and subscribes."""
    result = run("check", "--feed", "alpaca", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alpaca history from http://127.0.0.1:" in result.stdout
    assert "960 minute bars of TQQQ" in result.stdout
    assert "subscribed to iex trades of TQQQ" in result.stdout


def test_feeds_that_cannot_work_are_refused_before_anything_starts() -> None:
    """trio with alpaca-py, a replay feeding a real IB, Alpaca without keys: exit 2, why."""
    trio = run("start", "--backend", "trio", "--broker", "inprocess", "--feed", "alpaca")
    assert trio.returncode == 2
    assert "alpaca-py run on asyncio only" in trio.stderr
    replay = run("start", "--broker", "ib", "--feed", "replay")
    assert replay.returncode == 2
    assert "a replay drives only the embedded venue" in replay.stderr
    keyless = subprocess.run(
        [ACTORCTL, "start", "--broker", "ib", "--feed", "alpaca"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**_env(), "ALPACA_KEY": "", "ALPACA_SECRET": ""},
    )
    assert keyless.returncode == 2
    assert "needs ALPACA_KEY and ALPACA_SECRET" in keyless.stderr


def test_start_replays_a_bar_file_and_refuses_a_bad_one(tmp_path: Path) -> None:
    """--replay reads a bar CSV; a bad one is refused naming file and line, exit 2."""
    good = tmp_path / "bars.csv"
    good.write_text(
        "Datetime,Symbol,Open,High,Low,Close,Volume\n"
        "2025-05-01 14:00:00,TQQQ,50.00,50.10,49.90,50.05,1000\n"
        "2025-05-01 14:01:00,TQQQ,50.05,50.60,50.00,50.55,1000\n"
    )
    process = _spawn("start", "--replay", str(good), "--speed", "0")
    try:
        assert "BUY    94 TQQQ @ 50.10 (L0)" in _line_with(process, "BUY")
        summary = _line_with(process, "replay finished")
        _stop(process, signal.SIGTERM)
    finally:
        _reap(process)
    assert "1 sell executions" in summary
    bad = tmp_path / "bad.csv"
    bad.write_text("Datetime,Symbol,Open,High,Low,Close,Volume\nnot a row\n")
    result = run("start", "--replay", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2: expected 7 fields" in result.stderr


def test_check_reports_an_unreachable_broker_and_refuses_a_live_port() -> None:
    """A TWS that is not there: exit 1 naming host and port; a live port: refused, exit 2."""
    with socket_module.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    down = run("check", "--broker", "ib", "--port", str(free))
    assert down.returncode == 1
    assert f"broker: cannot connect to IB at 127.0.0.1:{free} (paper mode)" in down.stdout
    live = run("check", "--broker", "ib", "--port", "7496")
    assert live.returncode == 2
    assert "port 7496 is IB's TWS live port" in live.stderr


def test_live_trading_and_trio_over_the_wire_are_refused_before_anything_starts() -> None:
    """--live on the paper-only embedded venue, and trio with ib_insync: exit 2, a reason."""
    live = run("start", "--live")
    assert live.returncode == 2
    assert "paper only" in live.stderr
    trio = run("start", "--backend", "trio")
    assert trio.returncode == 2
    assert "--broker inprocess" in trio.stderr


def test_start_refuses_a_bad_lot_map_and_a_bad_config(tmp_path: Path) -> None:
    """Bad input: a clear message naming the file and line or key path, exit 2."""
    lots = tmp_path / "lots.csv"
    lots.write_text("level,shares_to_buy\n0,0\n")
    result = run("start", "--lots", str(lots))
    assert result.returncode == 2
    assert f"{lots}:2: shares_to_buy must be between 1" in result.stderr
    config = tmp_path / "bot.toml"
    config.write_text('[[symbols]]\nsymbol = "TQQQ"\n[symbols.grid]\nprofits = "0.02"\n')
    for command in ("start", "check"):
        result = run(command, "--config", str(config))
        assert result.returncode == 2
        assert f"{config}: extra field 'profits' @ symbols[0].grid" in result.stderr


def test_a_second_service_on_the_same_data_dir_is_refused_and_a_later_one_resumes(
    tmp_path: Path,
) -> None:
    """While one service runs on a data directory another is refused (naming the holder's
    pid); after a stop, a new start resumes where the venue's replay stopped."""
    data = tmp_path / "data"
    first = _spawn("start", "--data-dir", str(data), "--speed", "0", socket=tmp_path / "a.sock")
    try:
        _line_with(first, "replay finished")
        second = run("start", "--data-dir", str(data), socket=tmp_path / "b.sock")
        assert second.returncode == 2
        assert f"is in use by another actortrade process (pid {first.pid})" in second.stderr
        _stop(first, signal.SIGTERM)
    finally:
        _reap(first)
    assert first.returncode == 0
    again = _spawn("start", "--data-dir", str(data), "--speed", "0", socket=tmp_path / "c.sock")
    try:
        summary = _line_with(again, "replay finished")
        _, _, stderr = _stop(again, signal.SIGTERM)
    finally:
        _reap(again)
    assert "resuming: the venue has seen trades up to 2026-11-23T19:59:45-05:00" in stderr
    # Nothing new to replay: the books are those of the first run, reconciled clean.
    assert "3 sell executions" in summary
    assert "realized P&L 150.40" in summary
    assert "reconcile" not in stderr


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real OTLP/HTTP receiver on loopback (decodes the exporter's protobuf)."""
    with otlp_receiver() as running:
        yield running


def test_status_lots_reconcile_backup_and_stop_talk_to_the_running_service(
    tmp_path: Path, receiver: Receiver
) -> None:
    """The control socket (mode 0600): status shows the live tree, the metrics and the tracing,
    lots the open lots, reconcile --dry-run a clean diff, backup a copy of the ledger, and stop
    stops it, exporting the last spans: each decision's trace reached the OTLP receiver."""
    socket = tmp_path / "ctl.sock"
    data = tmp_path / "data"
    process = _spawn(
        "start",
        "--data-dir",
        str(data),
        "--speed",
        "0",
        "--otlp-endpoint",
        receiver.endpoint,
        socket=socket,
    )
    try:
        _line_with(process, "replay finished")
        assert socket.stat().st_mode & 0o777 == 0o600
        status = run("status", socket=socket)
        assert status.returncode == 0, status.stderr
        for actor in ("lot-keeper", "broker", "symbol.TQQQ", "reconciler", "market-data"):
            assert actor in status.stdout
        assert "TQQQ: 2 open lots (189 shares), realized P&L 150.40" in status.stdout
        assert "lot 14 (L1) opened: 95 @ 52.9400, selling at 53.47" in status.stdout
        # The metrics, as the OTel SDK collects them.
        assert "tick-to-order TQQQ: 4 samples, p50 " in status.stdout
        assert "LMDB commit: " in status.stdout
        assert "ticks TQQQ: 4 decided, " in status.stdout
        assert "orders submitted: 17 buys, 5 sells" in status.stdout
        assert "broker reconnects: 0" in status.stdout
        assert f"tracing: to {receiver.endpoint}: " in status.stdout
        assert re.search(r"symbol\.TQQQ +0 +\d{4,} +[\d.]+ +0", status.stdout), status.stdout
        lots = run("lots", socket=socket)
        assert lots.returncode == 0
        rows = [line.split() for line in lots.stdout.splitlines() if line.startswith("TQQQ ")]
        assert [row[1:5] for row in rows if row[2] != "realized"] == [
            ["grid", "13", "L0", "94"],
            ["grid", "14", "L1", "95"],
        ]
        dry = run("reconcile", "--dry-run", socket=socket)
        assert dry.returncode == 0
        assert "clean: the ledger and the broker agree" in dry.stdout
        copy = tmp_path / "copy"
        backup = run("backup", str(copy), socket=socket)
        assert backup.returncode == 0, backup.stderr
        assert (copy / "data.mdb").stat().st_size > 0
        refused = run("backup", str(copy), socket=socket)
        assert refused.returncode == 1
        assert "is not empty" in refused.stderr
        stop = run("stop", socket=socket)
        assert stop.returncode == 0
        _, stderr = process.communicate(timeout=10)
    finally:
        _reap(process)
    assert process.returncode == 0
    assert f"tracing: a trace per decision to {receiver.endpoint}" in stderr
    spans = receiver.spans
    by_id = {s["span_id"]: s for s in spans}
    fills = [s for s in spans if s["name"] == "order.filled"]
    assert len(fills) == 8  # 5 buys and 3 sells, each in its decision's trace
    sell = next(s for s in fills if s["attributes"]["trading.side"] == "SELL")
    chain = [sell]
    while chain[-1]["parent_id"]:
        chain.append(by_id[chain[-1]["parent_id"]])
    assert [s["name"] for s in chain] == [
        "order.filled",
        "broker.place",
        "order.submit",
        "decide",
        "order.filled",
        "broker.place",
        "order.submit",
        "decide",
        "tick",
    ]
    assert {s["resource"]["service.name"] for s in spans} == {"actortrade"}
    assert not socket.exists()
    gone = run("status", socket=socket)
    assert gone.returncode == 1
    assert f"no actorctl is running on {socket}" in gone.stderr
    offline = run("backup", str(tmp_path / "copy2"), "--data-dir", str(data))
    assert offline.returncode == 0, offline.stderr


def test_check_reports_the_config_lot_maps_and_secrets_without_their_values() -> None:
    """`actorctl check` validates the shipped config and lot map and never prints a secret."""
    env = {**_env(), "ALPACA_KEY": "PKSECRETVALUE123", "ALPACA_SECRET": "shh-very-secret"}
    result = subprocess.run(
        [ACTORCTL, "check", "--what-if"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "broker: connected to the embedded venue's TWS API server" in result.stdout
    assert "TQQQ: qualified; snapshot bid 51.99 ask 52.01" in result.stdout
    assert "what-if BUY 94 @ 52.14 (not placed)" in result.stdout
    assert "lot map for TQQQ" in result.stdout
    assert "88 levels" in result.stdout
    assert "PKSECRETVALUE123" not in result.stdout + result.stderr
    assert "shh-very-secret" not in result.stdout + result.stderr
    assert "alpaca_key=<set>" in result.stdout


def test_demo_restarts_crashed_symbol_actors_and_keeps_reporting() -> None:
    """The supervision example: with --crash-every, actors crash and come back."""
    process = _spawn("demo", "--report-every", "0.1", "--crash-every", "0.05", "--seed", "7")
    try:
        assert process.stdout is not None
        incarnations: set[str] = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not incarnations - {"#1"}:
            line = process.stdout.readline()
            incarnations.update(part.split()[-1] for part in line.split("|") if "#" in part)
        _, _, stderr = _stop(process, signal.SIGTERM)
    finally:
        _reap(process)
    assert incarnations - {"#1"}, "no symbol actor was ever restarted"
    assert process.returncode == 0, stderr
    assert "crashed: DemoCrash" in stderr


def test_a_root_that_gives_up_stops_the_service_with_a_clear_message_and_exit_1() -> None:
    """Crashing far beyond the restart intensity escalates to the root, which gives up."""
    process = _spawn("demo", "--crash-every", "0.001")
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        _reap(process)
    assert process.returncode == 1
    assert "actorctl: the service stopped because supervisor 'root' gave up" in stderr


@pytest.mark.parametrize("feed", ["ib", "alpaca"])
def test_start_with_broker_ib_trades_through_a_tws_on_its_market_data(
    tmp_path: Path, feed: str, receiver: Receiver
) -> None:
    """`actorctl start --broker ib --host H --port P`, as against a real TWS: here our TWS API
    server in a thread, its market moving; the service trades on IB's market data, or on
    Alpaca's (`--feed alpaca`, the keys from the environment, the stream's URL from the
    config: here our Alpaca server on the same market), and `status` shows the lots; it stops
    cleanly. Its traces reach the OTLP endpoint of the config; no secret (the Alpaca keys, the
    IB account id) is in any span, event or resource attribute, nor in anything printed."""
    import threading
    from datetime import date

    import anyio

    from actors.domain import Instrument
    from sim.alpaca.server import AlpacaServer
    from sim.engine import Engine
    from sim.replay import generated_session, trades
    from sim.tws.server import TwsServer

    bars = generated_session(seed=11, day=date(2026, 11, 23))[:300]
    engine = Engine()
    server = TwsServer(
        engine,
        instruments=[Instrument(symbol="TQQQ", con_id=900001)],
        clock=lambda: engine.last_trade_at or bars[0].start,
        account="DU7319468",
    )
    key, secret = "PKCLITEST7X2Q", "cli-test-secret-2f9c41"
    alpaca = AlpacaServer(engine, credentials={key: secret})
    ready = threading.Event()
    market_open = threading.Event()
    done = threading.Event()

    async def venue() -> None:
        async with anyio.create_task_group() as tg:
            await tg.start(server.serve)
            await tg.start(alpaca.serve)
            ready.set()
            await anyio.to_thread.run_sync(market_open.wait)
            for trade in trades(bars):
                engine.on_trade(trade.symbol, trade.price, trade.size, trade.at)
                await anyio.sleep(0.002)
            await anyio.to_thread.run_sync(done.wait)
            tg.cancel_scope.cancel()

    thread = threading.Thread(target=anyio.run, args=(venue,), daemon=True)
    thread.start()
    assert ready.wait(10)
    socket = tmp_path / "ctl.sock"
    config = tmp_path / "bot.toml"
    config.write_text(
        f'[alpaca]\nstream_url = "{alpaca.url("iex")}"\n\n[[symbols]]\nsymbol = "TQQQ"\n'
        f'lots = "{ROOT / "config/lots/tqqq.csv"}"\nfeed = "{feed}"\n\n'
        f'[telemetry]\nendpoint = "{receiver.endpoint}"\nservice_name = "bot-{feed}"\n'
    )
    process = _spawn(
        "start",
        "--config",
        str(config),
        "--broker",
        "ib",
        "--port",
        str(server.port),
        "--data-dir",
        str(tmp_path / "data"),
        socket=socket,
        env={"ALPACA_KEY": key, "ALPACA_SECRET": secret, "IB_ACCOUNT": server.account},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert f"in PAPER mode through IB at 127.0.0.1:{server.port}" in line
        assert ("TQQQ from Alpaca" in line) == (feed == "alpaca")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (
            2 in server.sessions if feed == "ib" else alpaca.events_of("subscribe")
        ):
            time.sleep(0.05)
        market_open.set()
        deadline = time.monotonic() + 30
        status = run("status", socket=socket)
        while time.monotonic() < deadline and (
            status.returncode != 0 or "open lots (0 shares)" in status.stdout
        ):
            time.sleep(0.2)
            status = run("status", socket=socket)
        assert status.returncode == 0, status.stderr
        assert f"on the IB at 127.0.0.1:{server.port}" in status.stdout
        assert "TQQQ: 1 open lots (94 shares)" in status.stdout
        shown = "feed alpaca (ws://127.0.0.1:" if feed == "alpaca" else "feed ib (127.0.0.1:"
        assert shown in status.stdout
        _, stdout, stderr = _stop(process, signal.SIGTERM)
    finally:
        _reap(process)
        done.set()
        thread.join(10)
    assert process.returncode == 0, stderr
    assert server.protocol_errors == []
    assert len(engine.executions) >= 1
    printed = line + stdout + stderr + status.stdout
    spans = receiver.spans
    assert {s["resource"]["service.name"] for s in spans} == {f"bot-{feed}"}
    names = {s["name"] for s in spans}
    assert {"tick", "decide", "intent.commit", "order.submit", "broker.place"} <= names
    assert "order.filled" in names
    exported = repr(spans)  # every attribute, event, link and resource value
    for hidden in (secret, key, server.account):
        assert hidden not in printed
        assert hidden not in exported
    assert "******468" in printed  # the account, masked as logged at connect
    assert bool(alpaca.events_of("auth")) == (feed == "alpaca")


def _connect_when_serving(path: Path) -> socket_module.socket:
    deadline = time.monotonic() + 30
    while True:
        conn = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_STREAM)
        conn.settimeout(10)
        try:
            conn.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError, BlockingIOError):
            # Not there yet, or its backlog is full: the service accepts when it gets to it.
            conn.close()
            assert time.monotonic() < deadline, f"nothing serves on {path}"
            time.sleep(0.05)
            continue
        except BaseException:
            conn.close()
            raise
        return conn


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
def test_300_connections_held_open_under_256_open_files_do_not_stop_the_service(
    tmp_path: Path,
) -> None:
    """The service keeps trading and answering: connections past the limit of 64 are turned
    away at once, and `status` answers once the others are closed; `stop` exits 0."""
    socket = tmp_path / "ctl.sock"
    process = subprocess.Popen(
        ["prlimit", "--nofile=256:256", ACTORCTL, "start", "--speed", "0", "--no-tracing"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(socket),
    )
    try:
        with contextlib.ExitStack() as held:
            last = held.enter_context(_connect_when_serving(socket))
            for _ in range(299):
                last = held.enter_context(_connect_when_serving(socket))
            reply = last.makefile("rb").readline()
            turned_away = msgspec.json.decode(reply)
            assert turned_away["type"] == "failed"
            assert turned_away["error"].startswith("too many control connections (64);")
        summary = _line_with(process, "replay finished")
        status = run("status", socket=socket)
        assert status.returncode == 0, status.stderr
        assert "TQQQ: 2 open lots (189 shares), realized P&L 150.40" in status.stdout
        stop = run("stop", socket=socket)
        assert stop.returncode == 0, stop.stderr
        _, stderr = process.communicate(timeout=10)
    finally:
        _reap(process)
    assert process.returncode == 0, stderr
    assert "3 sell executions" in summary


def _default_env(tmpdir: Path) -> dict[str, str]:
    # The default control socket: no $ACTORTRADE_SOCKET, no $XDG_RUNTIME_DIR (cron, services,
    # containers), so in $TMPDIR/actortrade-<uid>/.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmpdir)}
    for name in ("ACTORTRADE_SOCKET", "XDG_RUNTIME_DIR"):
        env.pop(name, None)
    return env


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory like /tmp (mode 1777) for $TMPDIR, short enough for socket paths."""
    directory = Path(tempfile.mkdtemp(prefix="h17-", dir="/tmp"))
    directory.chmod(0o1777)
    yield directory
    shutil.rmtree(directory)


def test_another_user_cannot_take_over_the_default_control_socket(
    tmp_path: Path, shared_tmp: Path
) -> None:
    """Another user makes $TMPDIR/actortrade-<uid>/ first, mode 0777, to swap our socket for
    theirs: `start` refuses it (exit 2, nothing created), and `stop` and `status` refuse their
    server there, naming its uid, rather than report it as ours."""
    other = other_user()
    directory = shared_tmp / f"actortrade-{os.getuid()}"
    hijack = subprocess.run(
        impostor_command(other, "hijack", str(directory)), check=False, cwd="/", **as_user(other)
    )
    assert hijack.returncode == 0
    env = _default_env(shared_tmp)
    data = tmp_path / "data"
    start = subprocess.run(
        [ACTORCTL, "start", "--speed", "0", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )
    assert start.returncode == 2, start.stderr
    assert start.stderr == (
        f"actorctl: refusing control socket directory {directory} (owner uid {other.pw_uid} "
        f"({other.pw_name}), mode 0777): it belongs to uid {other.pw_uid} ({other.pw_name}), "
        f"not to this user (uid {os.geteuid()}), so its owner could replace the control socket "
        "in it; have it removed, or use another directory (--socket, $ACTORTRADE_SOCKET or "
        "$XDG_RUNTIME_DIR)\n"
    )
    assert list(directory.iterdir()) == []
    assert not data.exists()
    server = subprocess.Popen(
        impostor_command(other, "serve", str(directory / "actorctl.sock")),
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
        **as_user(other),
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == "serving\n"
        for command in ("stop", "status"):
            refused = subprocess.run(
                [ACTORCTL, command], capture_output=True, text=True, timeout=30, env=env
            )
            assert refused.returncode == 1
            assert refused.stdout == ""
            assert refused.stderr == (
                f"actorctl: {command}: the process serving {directory / 'actorctl.sock'} is pid "
                f"{server.pid} of uid {other.pw_uid} ({other.pw_name}), neither this user (uid "
                f"{os.geteuid()}) nor root: it is not our actortrade service\n"
            )
    finally:
        server.kill()
        server.communicate(timeout=10)


def test_the_default_control_socket_directory_is_made_private(
    tmp_path: Path, shared_tmp: Path
) -> None:
    """Without $XDG_RUNTIME_DIR, `start` makes $TMPDIR/actortrade-<uid>/ mode 0700 and serves
    there; `status` and `stop` find it."""
    env = _default_env(shared_tmp)
    process = subprocess.Popen(
        [ACTORCTL, "start", "--speed", "0", "--no-tracing"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _line_with(process, "replay finished")
        directory = shared_tmp / f"actortrade-{os.getuid()}"
        assert stat.S_IMODE(directory.lstat().st_mode) == 0o700
        status = subprocess.run(
            [ACTORCTL, "status"], capture_output=True, text=True, timeout=30, env=env
        )
        assert status.returncode == 0, status.stderr
        stop = subprocess.run(
            [ACTORCTL, "stop"], capture_output=True, text=True, timeout=30, env=env
        )
        assert stop.stdout == f"actortrade pid {process.pid} is stopping\n"
        _, stderr = process.communicate(timeout=10)
    finally:
        _reap(process)
    assert process.returncode == 0, stderr


def _unusable_sockets(tmp: Path) -> dict[str, tuple[Path, str]]:
    a_file = tmp / "notes"
    a_file.write_text("not a directory")
    long = tmp / ("d" * 60) / ("s" * 60 + ".sock")
    return {
        "under-a-file": (
            a_file / "x" / "s.sock",
            f"cannot create control socket {a_file / 'x' / 's.sock'}: cannot create its "
            f"directory {a_file / 'x'}: Not a directory",
        ),
        "too-long": (
            long,
            f"control socket path {long} is too long: {len(os.fsencode(long))} bytes, a Unix "
            "socket address holds at most 107",
        ),
        "not-a-socket": (
            a_file,
            f"control socket path {a_file} exists and is not a socket; not touching it",
        ),
    }


@pytest.mark.parametrize("case", ["under-a-file", "too-long", "not-a-socket"])
def test_start_refuses_an_unusable_socket_path_before_creating_anything(
    tmp_path: Path, shared_tmp: Path, case: str
) -> None:
    """A service nobody could control is not started: exit 2, one line saying why, and no
    data directory, no socket directory made."""
    socket, why = _unusable_sockets(shared_tmp)[case]
    data = tmp_path / "data"
    result = run("start", "--speed", "0", "--data-dir", str(data), "--socket", str(socket))
    assert result.returncode == 2
    assert result.stderr == f"actorctl: {why}\n"
    assert not data.exists()
    assert sorted(p.name for p in shared_tmp.iterdir()) == ["notes"]


def test_a_second_start_on_the_same_control_socket_is_refused_naming_the_first(
    tmp_path: Path,
) -> None:
    """The socket is claimed before anything else: exit 2, the first's pid; the first goes on."""
    socket = tmp_path / "ctl.sock"
    first = _spawn("start", "--speed", "0", "--no-tracing", socket=socket)
    try:
        _line_with(first, "replay finished")
        second = run("start", "--data-dir", str(tmp_path / "data"), socket=socket)
        assert second.returncode == 2
        assert second.stderr == (
            f"actorctl: another actorctl (pid {first.pid}) is already serving on {socket}\n"
        )
        assert not (tmp_path / "data").exists()
        assert run("stop", socket=socket).returncode == 0
        _, stderr = first.communicate(timeout=10)
    finally:
        _reap(first)
    assert first.returncode == 0, stderr
