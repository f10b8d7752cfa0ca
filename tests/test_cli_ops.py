"""`actorctl start` under a hostile operator, driven as a subprocess: output that fails, a data
directory made for something else or in use, a loose umask, SIGHUP, and stop signals in a row."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket as socket_module
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from app.datadir import Asked, claim
from tests.test_cli import ACTORCTL, _env, _line_with, _reap, run

END_OF_DAY = "2026-11-23T19:59:45-05:00"
"""The venue's clock once the default generated day has been replayed."""

ONE_ROUND_TRIP = (
    "Datetime,Symbol,Open,High,Low,Close,Volume\n"
    "2025-05-01 14:00:00,TQQQ,50.00,50.50,49.00,50.00,4000\n"
)
"""One bar whose path (open, high, low, close) buys a lot at the low and sells it at the close:
the day ends with executions and no open lot."""


def _start(
    *args: str,
    socket: Path,
    stdout: int | IO[Any] = subprocess.PIPE,
    stderr: Path,
    shell_umask: str | None = None,
) -> subprocess.Popen[str]:
    # stderr goes to a file: a pipe nobody drains would block a chatty service.
    command = [ACTORCTL, "start", "--no-tracing", *args]
    if shell_umask is not None:
        command = ["sh", "-c", f'umask {shell_umask}; exec "$@"', "sh", *command]
    with stderr.open("w") as errors:
        return subprocess.Popen(command, stdout=stdout, stderr=errors, text=True, env=_env(socket))


def _until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def _status(socket: Path) -> dict[str, Any] | None:
    answer = run("status", "--json", socket=socket)
    return json.loads(answer.stdout) if answer.returncode == 0 else None


def _restarts(nodes: list[dict[str, Any]]) -> int:
    return sum(n["restarts"] + _restarts(n.get("children") or []) for n in nodes)


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _clean_exit(process: subprocess.Popen[str], stderr: Path) -> str:
    process.wait(timeout=20)
    errors = stderr.read_text()
    assert process.returncode == 0, errors
    assert "Traceback" not in errors
    assert "Exception ignored" not in errors
    return errors


@pytest.fixture(scope="module")
def tqqq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory that traded the generated TQQQ day to its end (2 open lots)."""
    root = tmp_path_factory.mktemp("tqqq")
    socket = root / "ctl.sock"
    process = _start(
        "--speed", "0", "--data-dir", str(root / "data"), socket=socket, stderr=root / "err"
    )
    try:
        _line_with(process, "replay finished")
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    finally:
        _reap(process)
    assert process.returncode == 0
    return root / "data"


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    def copy(source: Path) -> Path:
        return Path(shutil.copytree(source, tmp_path / "data", symlinks=True))

    return copy


@pytest.mark.parametrize("how", ["dev-full", "closed-pipe"])
def test_a_failing_stdout_never_stops_trading(tmp_path: Path, how: str) -> None:
    """stdout to /dev/full, or a pipe its reader closed after 3 lines (`| head -3`): the fill
    printer fails inside the venue, and the service logs it once and trades the whole day on,
    without a restart, its ledger agreeing with the venue; `actorctl stop` ends it with 0 and
    no traceback, at the stop nor at the interpreter's exit."""
    socket = tmp_path / "ctl.sock"
    errors = tmp_path / "err"
    args = ("--speed", "0", "--data-dir", str(tmp_path / "data"))
    if how == "dev-full":
        with open("/dev/full", "w") as full:
            process = _start(*args, socket=socket, stdout=full, stderr=errors)
    else:
        process = _start(*args, socket=socket, stderr=errors)
    try:
        if how == "closed-pipe":
            assert process.stdout is not None
            for _ in range(3):
                assert process.stdout.readline()
            process.stdout.close()
        status = _until(
            lambda: (s := _status(socket)) and s["venue_time"] == END_OF_DAY and s,
            "end of the replayed day",
        )
        assert status["restarts"] == 0
        assert _restarts(status["tree"]) == 0
        dry = run("reconcile", "--dry-run", socket=socket)
        assert "clean: the ledger and the broker agree" in dry.stdout
        assert run("stop", socket=socket).returncode == 0
        said = _clean_exit(process, errors)
    finally:
        _reap(process)
    assert "standard output failed" in said
    assert "actorctl: stopped by actorctl stop" in said


@pytest.mark.parametrize("broker", ["embedded", "inprocess"])
def test_a_directory_made_for_tqqq_refuses_spy_and_stays_as_it_was(
    tqqq_dir: Path, copy_of: Callable[[Path], Path], tmp_path: Path, broker: str
) -> None:
    """`--symbol SPY` on a directory whose TQQQ lots are open: exit 2 with what it holds and
    what was asked (a KeyError traceback over the wire, a silent start in-process, before);
    not one byte of the directory changed."""
    data = copy_of(tqqq_dir)
    before = _hashes(data)
    refused = run(
        "start",
        "--symbol",
        "SPY",
        "--speed",
        "0",
        "--no-tracing",
        "--broker",
        broker,
        "--data-dir",
        str(data),
        socket=tmp_path / "ctl.sock",
    )
    assert refused.returncode == 2, refused.stderr
    assert (
        f"{data}: this data directory trades TQQQ on the embedded sim venue; asked for SPY: "
        "TQQQ has 2 open lots (189 shares) here" in refused.stderr
    )
    assert "Traceback" not in refused.stderr
    assert "trading" not in refused.stderr
    assert _hashes(data) == before


def test_a_symbol_without_open_lots_may_be_left_out_and_its_executions_still_reach_a_client(
    copy_of: Callable[[Path], Path], tmp_path: Path
) -> None:
    """A directory whose TQQQ lot was bought and sold, started for SPY alone: admitted (told
    TQQQ is left out), and the embedded venue answers the broker's reqExecutions with TQQQ's
    executions too (it raised KeyError for a symbol not traded: a restart storm). The
    manifest keeps TQQQ and adds SPY."""
    bars = tmp_path / "bars.csv"
    bars.write_text(ONE_ROUND_TRIP)
    made = tmp_path / "made"
    first = _start(
        "--replay",
        str(bars),
        "--speed",
        "0",
        "--data-dir",
        str(made),
        socket=tmp_path / "a.sock",
        stderr=tmp_path / "err-a",
    )
    try:
        summary = _line_with(first, "replay finished")
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=20)
    finally:
        _reap(first)
    assert "1 buy and 1 sell executions, 0 open lots" in summary
    socket = tmp_path / "b.sock"
    errors = tmp_path / "err-b"
    second = _start(
        "--symbol", "SPY", "--speed", "0", "--data-dir", str(made), socket=socket, stderr=errors
    )
    try:
        assert "SPY 0 open lots" in _line_with(second, "reconciled with the venue")
        _line_with(second, "replay finished")
        status = _status(socket)
        assert status is not None
        assert _restarts(status["tree"]) == 0
        second.send_signal(signal.SIGTERM)
        said = _clean_exit(second, errors)
    finally:
        _reap(second)
    assert f"{made} holds TQQQ too, with no open lots: not traded by this start" in said
    assert json.loads((made / "manifest.json").read_text())["symbols"] == ["TQQQ", "SPY"]


def test_a_second_start_on_a_directory_in_use_is_refused_naming_the_first(
    tmp_path: Path,
) -> None:
    """A service trades over the wire on D; a second start on D in-process (which never opened
    the ledger's own lock before reaching the venue's journal) is refused, exit 2, naming the
    first's pid; the journal is untouched."""
    data = tmp_path / "data"
    first = _start(
        "--speed",
        "0",
        "--data-dir",
        str(data),
        socket=tmp_path / "a.sock",
        stderr=tmp_path / "err-a",
    )
    try:
        _line_with(first, "replay finished")
        journal = (data / "venue.journal").read_bytes()
        second = run(
            "start",
            "--broker",
            "inprocess",
            "--speed",
            "0",
            "--no-tracing",
            "--data-dir",
            str(data),
            socket=tmp_path / "b.sock",
        )
        assert second.returncode == 2
        assert f"{data} is in use by another actortrade process (pid {first.pid})" in (
            second.stderr
        )
        assert (data / "venue.journal").read_bytes() == journal
        first.send_signal(signal.SIGTERM)
        _clean_exit(first, tmp_path / "err-a")
    finally:
        _reap(first)


def test_a_directory_another_process_holds_is_refused_naming_that_process(
    tqqq_dir: Path, copy_of: Callable[[Path], Path], tmp_path: Path
) -> None:
    """Whoever holds the directory's lock (here the test itself) is named; nothing changes."""
    data = copy_of(tqqq_dir)
    with claim(data) as held:
        held.admit(Asked(venue="sim", mode="paper", symbols=("TQQQ",)), open_lots=lambda s: (0, 0))
        before = _hashes(data)
        refused = run(
            "start",
            "--broker",
            "inprocess",
            "--speed",
            "0",
            "--no-tracing",
            "--data-dir",
            str(data),
            socket=tmp_path / "ctl.sock",
        )
        assert refused.returncode == 2
        assert f"is in use by another actortrade process (pid {os.getpid()})" in refused.stderr
        assert _hashes(data) == before


def test_under_umask_000_nothing_in_the_data_directory_is_for_the_group_or_the_world(
    tmp_path: Path,
) -> None:
    """`umask 000; actorctl start --data-dir D`: D and every directory in it 0700 at most, every
    file 0600 at most (the ledger's LMDB files, the journal, the locks, the manifest)."""
    data = tmp_path / "data"
    process = _start(
        "--speed",
        "0",
        "--data-dir",
        str(data),
        socket=tmp_path / "ctl.sock",
        stderr=tmp_path / "err",
        shell_umask="000",
    )
    try:
        _line_with(process, "replay finished")
        process.send_signal(signal.SIGTERM)
        _clean_exit(process, tmp_path / "err")
    finally:
        _reap(process)
    entries = [data, *data.rglob("*")]
    names = {str(p.relative_to(data)) for p in entries}
    assert {"ledger/data.mdb", "ledger/lock.mdb", "venue.journal", "manifest.json"} <= names
    loose = {str(p): oct(stat.S_IMODE(p.lstat().st_mode)) for p in entries}
    assert {p: m for p, m in loose.items() if int(m, 8) & 0o077} == {}


def test_sighup_is_ignored_and_the_service_answers_until_a_sigterm_stops_it(
    tmp_path: Path,
) -> None:
    """A closing terminal's SIGHUP killed the service with no word; now it is logged and
    ignored: `status` still answers, and SIGTERM then stops it with 0."""
    socket = tmp_path / "ctl.sock"
    errors = tmp_path / "err"
    process = _start("--speed", "0", socket=socket, stderr=errors)
    try:
        _line_with(process, "reconciled with the venue")
        process.send_signal(signal.SIGHUP)
        _until(lambda: "SIGHUP received: ignored" in errors.read_text(), "SIGHUP logged", 20)
        assert run("status", socket=socket).returncode == 0
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        said = _clean_exit(process, errors)
    finally:
        _reap(process)
    assert "actorctl: stopped by SIGTERM" in said


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_two_stop_signals_in_quick_succession_exit_0(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """The second one came after the receiver was gone and killed the process (143, 130);
    now it forces the stop if the tree is still stopping, ends the exit early if not: 0."""
    errors = tmp_path / "err"
    process = _start(socket=tmp_path / "ctl.sock", stderr=errors)
    try:
        _line_with(process, "reconciled with the venue")
        process.send_signal(signum)
        process.send_signal(signum)
        said = _clean_exit(process, errors)
    finally:
        _reap(process)
    assert f"stopped by {signum.name}" in said


def test_a_signal_while_the_process_exits_ends_it_at_once_with_0(tmp_path: Path) -> None:
    """After the tree has stopped the process still exports its last spans (up to the export
    timeout, here against an endpoint that never answers): a SIGTERM then met the default
    action (exit 143); now it ends the exit at once, with 0."""
    errors = tmp_path / "err"
    with socket_module.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections queue, nothing is ever read or answered
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        process = _start(
            "--speed",
            "0",
            "--tracing",
            "--otlp-endpoint",
            endpoint,
            socket=tmp_path / "ctl.sock",
            stderr=errors,
        )
        try:
            _line_with(process, "replay finished")
            process.send_signal(signal.SIGTERM)
            _until(lambda: "actorctl: stopped by SIGTERM" in errors.read_text(), "the stop", 20)
            assert process.poll() is None  # exporting its spans
            sent = time.monotonic()
            process.send_signal(signal.SIGTERM)
            _clean_exit(process, errors)
        finally:
            _reap(process)
    assert time.monotonic() - sent < 3


def test_a_second_signal_while_the_tree_stops_forces_it_and_exits_0(tmp_path: Path) -> None:
    """SIGINT and SIGTERM delivered together (sent while the process was stopped, so neither
    can be merged into the other): the first asks for the stop, the second forces it; the
    exit status is 0 and the last line says it was forced."""
    errors = tmp_path / "err"
    process = _start(socket=tmp_path / "ctl.sock", stderr=errors)
    try:
        _line_with(process, "reconciled with the venue")
        process.send_signal(signal.SIGSTOP)
        process.send_signal(signal.SIGINT)
        process.send_signal(signal.SIGTERM)
        process.send_signal(signal.SIGCONT)
        said = _clean_exit(process, errors)
    finally:
        _reap(process)
    # The kernel delivers them in either order.
    assert re.search(r"actorctl: stopped by SIG(INT|TERM) \(forced by a second signal, SIG", said)
