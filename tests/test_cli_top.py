"""`actorctl top` against a running service: its frame from a real status reply, and the live
view in a real terminal (tmux): it refreshes, q and Ctrl-C quit with 0 and give the terminal
back, and it says so and exits 0 when the service stops."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from app.cli.top import Rates, render
from app.control import Status, StatusReply, request
from tests.test_cli import ACTORCTL, _env, _reap, run
from tests.test_cli_ops import _until

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 140, 45


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Path]:
    """A service replaying two generated days at 300x (minutes: it trades while a test
    looks), on a private socket; its control socket."""
    socket = tmp_path / "ctl.sock"
    with (tmp_path / "service.err").open("w") as errors:
        process = subprocess.Popen(
            [
                *(ACTORCTL, "start", "--no-tracing", "--days", "2", "--speed", "300"),
                *("--data-dir", str(tmp_path / "data"), "--socket", str(socket)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            text=True,
            env=_env(socket),
        )
    try:
        _until(lambda: run("status", socket=socket).returncode == 0, "status from the service")
        yield socket
    finally:
        if process.poll() is None:
            run("stop", socket=socket)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=20)
        _reap(process)


def _decided(socket: Path) -> StatusReply | None:
    reply = request(socket, Status(), timeout=30)
    return reply if reply.symbols and reply.symbols[0].get("last_decision") else None


def _text(frame: Any) -> str:
    console = Console(width=WIDTH, file=io.StringIO(), record=True)
    console.print(frame)
    return console.export_text()


def test_a_frame_shows_the_tree_each_symbol_its_position_and_last_decision(
    service: Path,
) -> None:
    """render() of a running service's status names every actor with its state, and each
    symbol with its position, open lots and the last order it decided."""
    reply = _until(lambda: _decided(service), "decision of the grid")
    text = _text(render(reply))
    for actor in ("alerting", "alerts", "lot-keeper", "risk", "broker", "symbol.TQQQ"):
        assert re.search(rf"^ *{re.escape(actor)} +running ", text, re.MULTILINE), text
    (view,) = reply.symbols
    held = sum(lot["shares"] for lot in view["lots"])
    row = next(line for line in text.splitlines() if line.startswith("TQQQ "))
    assert re.search(rf"TQQQ +grid +{held} sh ", row), row
    assert " ".join(lot["label"] for lot in view["lots"]) in row
    assert view["last_decision"] in text
    assert f"pid {reply.pid}" in text
    assert "venue time 2026-11-23 " in text


def test_rates_are_the_handled_counts_per_second_between_two_polls(service: Path) -> None:
    """The first frame shows the service's average since it started; later ones the messages
    handled between two polls, per second of the poll's clock."""
    first = request(service, Status(), timeout=30)
    rates = Rates()
    assert rates.update(first, 100.0) == {}
    second = _until(
        lambda: (
            (r := request(service, Status(), timeout=30)) and _handled(r) > _handled(first) and r
        ),
        "message handled by symbol.TQQQ",
    )
    per_second = rates.update(second, 102.0)
    assert per_second["symbol.TQQQ"] == (_handled(second) - _handled(first)) / 2
    average = next(a for a in first.metrics["actors"] if a["actor"] == "symbol.TQQQ")
    row = next(line for line in _text(render(first)).splitlines() if "symbol.TQQQ" in line)
    assert row.split()[-1] == f"{average['per_second']:.1f}"


def _handled(reply: StatusReply) -> int:
    symbols = next(node for node in reply.tree if node["id"] == "symbols")
    return int(symbols["children"][0]["mailbox"]["processed"])


def test_once_prints_one_frame_and_no_service_is_said_as_status_says_it(
    service: Path, tmp_path: Path
) -> None:
    """`top --once` prints a frame and exits 0; without a service `top` exits 1 with the
    message `status` gives."""
    once = run("top", "--once", "--socket", str(service))
    assert once.returncode == 0, once.stderr
    assert "symbol.TQQQ" in once.stdout
    assert "TQQQ " in once.stdout
    nowhere = tmp_path / "none.sock"
    missing = run("top", "--socket", str(nowhere))
    status = run("status", "--socket", str(nowhere))
    assert missing.returncode == status.returncode == 1
    assert missing.stderr == status.stderr
    assert f"no actorctl is running on {nowhere}" in missing.stderr


class Terminal:
    """A tmux server of its own running one shell script in a WIDTH x HEIGHT pane."""

    def __init__(self, script: Path) -> None:
        self.name = f"actorctl-top-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env = {k: v for k, v in _env().items() if k != "TMUX"}
        self.tmux("new-session", "-d", "-x", str(WIDTH), "-y", str(HEIGHT), f"sh {script}")

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.name, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
            env=self.env,
        )
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p")

    def showing(self, *patterns: str, timeout: float = 30) -> str:
        def shown() -> str | None:
            screen = self.screen()
            return screen if all(re.search(p, screen, re.MULTILINE) for p in patterns) else None

        try:
            found: str = _until(shown, f"{patterns} on the screen", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the screen:\n{self.screen()}") from None
        return found

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.name, "kill-server"], capture_output=True, timeout=10, check=False
        )


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Callable[[Path], Terminal]]:
    """Runs `actorctl top --socket SOCKET` in tmux, then prints its exit status and the tty's
    modes, then DONE; killed at the end."""
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed")
    started: list[Terminal] = []

    def start(socket: Path) -> Terminal:
        script = tmp_path / "top.sh"
        # The shell lets Ctrl-C go to top alone (a trapped signal is default again in a child).
        script.write_text(
            "trap true INT\n"
            f"{ACTORCTL} top --socket {socket} --interval 0.5\n"
            "echo EXIT=$?\n"
            "stty -a\n"
            "echo DONE\n"
            "sleep 600\n"
        )
        started.append(Terminal(script))
        return started[-1]

    try:
        yield start
    finally:
        for each in started:
            each.kill()


TREE = r"^lot-keeper +running .*\n(.*\n)*  symbol\.TQQQ +running "
SYMBOL = r"^TQQQ +grid +\d+ sh "


def _venue_time(screen: str) -> str:
    found = re.search(r"venue time (\S+ \S+)", screen)
    assert found, screen
    return found.group(1)


def _restored(screen: str, term: Terminal) -> None:
    # The tty is back in canonical mode with echo, and the cursor visible on the main screen.
    modes = screen.split("EXIT=", 1)[1].split()
    assert {"icanon", "echo", "isig"} <= set(modes), screen
    assert term.tmux("display", "-p", "#{cursor_flag} #{alternate_on}").split() == ["1", "0"]


@pytest.mark.parametrize("key", ["q", "Q", "C-c", "SIGTERM"])
def test_top_refreshes_in_a_terminal_until_a_key_quits_it_and_restores_the_terminal(
    service: Path, terminal: Callable[[Path], Terminal], key: str
) -> None:
    """In a real terminal the view shows the tree and the symbol, refreshes (the venue's
    clock moves on), and q, Q, Ctrl-C or a SIGTERM ends it with 0, the terminal as it was."""
    term = terminal(service)
    first = term.showing(TREE, SYMBOL, "venue time", "q quits")
    _until(lambda: _venue_time(term.screen()) != _venue_time(first), "refresh")
    if key == "SIGTERM":
        shell = term.tmux("display", "-p", "#{pane_pid}").strip()
        (top,) = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        os.kill(int(top), signal.SIGTERM)
    else:
        term.tmux("send-keys", key)
    screen = term.showing("EXIT=", "^DONE$")
    assert "EXIT=0" in screen, screen
    assert "Traceback" not in screen
    _restored(screen, term)


def test_top_says_the_service_stopped_and_exits_0(
    service: Path, terminal: Callable[[Path], Terminal]
) -> None:
    """`actorctl stop` while top watches: top says the service stopped, exits 0, and gives
    the terminal back."""
    term = terminal(service)
    term.showing(TREE, SYMBOL)
    stop = run("stop", socket=service)
    assert stop.returncode == 0, stop.stderr
    screen = term.showing("EXIT=", "^DONE$")
    assert "actorctl top: the service stopped" in screen, screen
    assert "EXIT=0" in screen, screen
    _restored(screen, term)
