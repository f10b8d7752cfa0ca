"""systemd's notify protocol over a real ``AF_UNIX`` datagram socket standing in for
``$NOTIFY_SOCKET``: the client, the watchdog's interval, and what a real service on the
embedded venue tells systemd (``STATUS=`` while it starts, ``READY=1`` once, ``WATCHDOG=1``
while healthy and never while an actor is stuck, ``STOPPING=1`` at the stop)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.broker import Snapshot
from actors.brokers.sim import SimPort
from actors.domain import BrokerSnapshot
from app.compose import SimTrading, sim_trading
from app.ops.health import Health, Reading
from app.ops.notify import Notifier, SystemdNotify, systemd_companions, watchdog_interval
from config.lotmap import load_lot_map
from sim.engine import Engine
from sim.replay import generated_session
from supervisors import Supervisor
from supervisors.service import serve

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks: a real socket, and the lot-keeper's writer thread."""
    return request.param, {}


@pytest.fixture
def systemd_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A bound datagram socket where systemd's would be: its address and the socket."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify"
    sock.bind(str(path))
    sock.setblocking(False)
    with sock:
        yield str(path), sock


async def _receive(sock: socket.socket) -> list[str]:
    await anyio.wait_readable(sock)
    return sock.recv(65536).decode().split("\n")


def _queued(sock: socket.socket) -> list[list[str]]:
    taken = []
    while True:
        try:
            taken.append(sock.recv(65536).decode().split("\n"))
        except BlockingIOError:
            return taken


def test_a_datagram_of_lines_reaches_a_path_and_an_abstract_address(
    systemd_socket: tuple[str, socket.socket],
) -> None:
    """One datagram of newline-separated ``KEY=VALUE``, to a path and to ``@name`` (Linux's
    abstract namespace)."""
    path, sock = systemd_socket
    notifier = Notifier(path)
    assert notifier.notify("READY=1", "STATUS=trading: TQQQ")
    assert sock.recv(4096) == b"READY=1\nSTATUS=trading: TQQQ"
    notifier.close()

    name = f"actortrade-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as abstract:
        abstract.bind("\0" + name)
        found = Notifier.from_environment({"NOTIFY_SOCKET": f"@{name}"})
        assert found is not None
        assert found.notify("WATCHDOG=1")
        assert abstract.recv(4096) == b"WATCHDOG=1"
        found.close()


def test_a_failed_send_is_counted_never_raised(tmp_path: Path) -> None:
    """Nobody listening at ``$NOTIFY_SOCKET``: each send says False and the service goes on."""
    notifier = Notifier(str(tmp_path / "nobody"))
    assert not notifier.notify("READY=1")
    assert not notifier.notify("WATCHDOG=1")
    assert (notifier.sent, notifier.failures) == (0, 2)
    notifier.close()


def test_no_notify_socket_is_no_notifier() -> None:
    """Unset, empty or not an address: not run by systemd as a notify service."""
    assert Notifier.from_environment({}) is None
    assert Notifier.from_environment({"NOTIFY_SOCKET": ""}) is None
    assert Notifier.from_environment({"NOTIFY_SOCKET": "relative/path"}) is None


def test_the_watchdog_interval_is_ours_only_when_its_pid_is_ours() -> None:
    """``$WATCHDOG_USEC`` in seconds; none when ``$WATCHDOG_PID`` names another process."""
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=7) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "7"}, pid=7) == 0.5
    assert watchdog_interval({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "8"}, pid=7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid=7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, pid=7) is None
    assert watchdog_interval({}, pid=7) is None


def _reading(summary: str, *, ready: bool = False, stopping: bool = False) -> Reading:
    return Reading(
        taken=0.0,
        alive=not stopping,
        tree_healthy=not stopping,
        ready=ready,
        reasons=() if ready else ("TQQQ not reconciled",),
        summary=summary,
        stopping=stopping,
    )


def _trading(tmp_path: Path, **options: Any) -> SimTrading:
    return sim_trading(
        data_dir=tmp_path / "ledger",
        bars=generated_session(seed=11, day=date(2026, 11, 23)),
        lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
        speed=300,
        **options,
    )


def test_status_on_change_ready_once_and_stopping_once(
    tmp_path: Path, systemd_socket: tuple[str, socket.socket]
) -> None:
    """A STATUS only when the summary changes; READY=1 with its STATUS at the first ready
    reading and never again; STOPPING=1 once, and nothing after it."""
    path, sock = systemd_socket
    notify = SystemdNotify(Health(_trading(tmp_path), ["grid:TQQQ"]), Notifier(path), period=None)
    for reading in (
        _reading("not ready (TQQQ not reconciled): nothing traded yet"),
        _reading("not ready (TQQQ not reconciled): nothing traded yet"),
        _reading("trading: TQQQ 0 held,\nP&L 0.00", ready=True),
        _reading("trading: TQQQ 0 held, P&L 0.00", ready=True),
        _reading("trading: TQQQ 10 held, P&L 0.00", ready=True),
        _reading("not ready (broker disconnected): TQQQ 10 held, P&L 0.00"),
        _reading("trading: TQQQ 10 held, P&L 0.00", ready=True),
        _reading("stopping", stopping=True),
        _reading("stopping", stopping=True),
        _reading("trading: TQQQ 10 held, P&L 0.00", ready=True),
    ):
        notify.on_reading(reading)
    notify.notifier.close()
    assert _queued(sock) == [
        ["STATUS=not ready (TQQQ not reconciled): nothing traded yet"],
        ["READY=1", "STATUS=trading: TQQQ 0 held, P&L 0.00"],
        ["STATUS=trading: TQQQ 10 held, P&L 0.00"],
        ["STATUS=not ready (broker disconnected): TQQQ 10 held, P&L 0.00"],
        ["STATUS=trading: TQQQ 10 held, P&L 0.00"],
        ["STOPPING=1", "STATUS=stopping"],
    ]


def test_a_service_never_ready_says_why_and_never_ready(
    tmp_path: Path, systemd_socket: tuple[str, socket.socket]
) -> None:
    """A symbol that never reconciles: STATUS names the reasons, READY=1 is never sent, so
    that systemd's TimeoutStartSec fails the start."""
    path, sock = systemd_socket
    notify = SystemdNotify(Health(_trading(tmp_path), ["grid:TQQQ"]), Notifier(path), period=None)
    for _ in range(3):
        notify.on_reading(_reading("not ready (TQQQ not reconciled): nothing traded yet"))
    notify.notifier.close()
    assert _queued(sock) == [["STATUS=not ready (TQQQ not reconciled): nothing traded yet"]]
    assert not notify.ready


def test_no_companions_without_a_notify_socket(tmp_path: Path) -> None:
    """Not run by systemd: nothing to run beside the tree, no listener added."""
    health = Health(_trading(tmp_path), ["grid:TQQQ"])
    assert systemd_companions(health, env={"WATCHDOG_USEC": "30000000"}) == []
    assert health.listeners == []


class SnapshotsHang(SimPort):
    """The embedded venue in-process, whose snapshots hang once ``hang`` is set: the broker
    actor then blocks in its handler for good, messages waiting behind it."""

    hang = False

    async def snapshot(self) -> BrokerSnapshot:
        if self.hang:
            await anyio.sleep_forever()
        return await super().snapshot()


def _environment(path: str) -> dict[str, str]:
    # The watchdog every 0.2 s (half of WATCHDOG_USEC), meant for this process.
    return {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())}


async def _serve_until(
    trading: SimTrading,
    health: Health,
    env: dict[str, str],
    script: Callable[[Supervisor, Callable[[str], None]], Any],
) -> None:
    companions = [health.run, *systemd_companions(health, env=env), script]
    with anyio.fail_after(300):
        # As actorctl start serves it (app/cli/_run.py): Health hears the stop at once.
        await serve(
            trading.spec,
            hooks=trading.hooks,
            companions=companions,
            on_stopping=health.stopping,
        )


async def test_a_served_tree_is_ready_once_pings_while_healthy_and_says_stopping(
    tmp_path: Path, systemd_socket: tuple[str, socket.socket]
) -> None:
    """STATUS while it starts, READY=1 with the trading STATUS once reconciled, then
    WATCHDOG=1 again and again; at the stop STOPPING=1, and no WATCHDOG=1 after it."""
    path, sock = systemd_socket
    trading = _trading(tmp_path)
    health = Health(trading, ["grid:TQQQ"], interval=0.05)
    seen: list[list[str]] = []

    async def script(_root: Supervisor, stop: Callable[[str], None]) -> None:
        while "READY=1" not in [line for datagram in seen for line in datagram]:
            seen.append(await _receive(sock))
        pings = 0
        while pings < 4:
            datagram = await _receive(sock)
            seen.append(datagram)
            pings += datagram == ["WATCHDOG=1"]
        stop("SIGTERM")

    await _serve_until(trading, health, _environment(path), script)
    seen.extend(_queued(sock))

    ready = [i for i, datagram in enumerate(seen) if "READY=1" in datagram]
    assert len(ready) == 1
    (at,) = ready
    assert seen[at][0] == "READY=1"
    assert seen[at][1].startswith("STATUS=trading: TQQQ ")
    # Before it (if its first reading was not ready yet), only why it was not.
    before = [line for datagram in seen[:at] for line in datagram if line != "WATCHDOG=1"]
    assert all(line.startswith("STATUS=not ready (") for line in before), before
    stopping = [i for i, datagram in enumerate(seen) if "STOPPING=1" in datagram]
    assert stopping == [len(seen) - 1]
    assert seen[-1] == ["STOPPING=1", "STATUS=stopping"]
    assert seen[at + 1 : -1].count(["WATCHDOG=1"]) >= 4


async def test_no_watchdog_ping_while_an_actor_is_stuck(
    tmp_path: Path, systemd_socket: tuple[str, socket.socket]
) -> None:
    """The broker actor blocked in its handler with messages waiting: once Health finds it
    stuck, STATUS says so and no WATCHDOG=1 follows (systemd would kill and restart it)."""
    path, sock = systemd_socket
    engine = Engine()
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    port = SnapshotsHang(engine, bars[0].start)
    trading = _trading(tmp_path, engine=engine, port=port)
    health = Health(trading, ["grid:TQQQ"], interval=0.05, stall_after=0.5)
    seen: list[list[str]] = []
    after: list[list[str]] = []

    async def ask_broker() -> None:
        # Times out long after the test: the reply never comes.
        await trading.cells["broker"].ref.request(Snapshot(), timeout=600)

    async def script(_root: Supervisor, stop: Callable[[str], None]) -> None:
        pings = 0
        while pings < 3:
            datagram = await _receive(sock)
            seen.append(datagram)
            pings += "READY=1" in [line for d in seen for line in d] and datagram == ["WATCHDOG=1"]
        port.hang = True
        async with anyio.create_task_group() as asks:
            asks.start_soon(ask_broker)  # taken, and never answered
            asks.start_soon(ask_broker)  # waits behind it
            while not any("broker stuck" in line for line in seen[-1]):
                seen.append(await _receive(sock))
            # Ten watchdog periods: every one of them a ping, were it healthy.
            with anyio.move_on_after(2.0):
                while True:
                    after.append(await _receive(sock))
            asks.cancel_scope.cancel()
        stop("test")

    await _serve_until(trading, health, _environment(path), script)
    assert seen[-1][0].startswith("STATUS=not ready (")
    assert ["WATCHDOG=1"] not in after, after
