"""systemd's notify protocol (``sd_notify(3)``): the service tells systemd it is ready, how it
stands, that it is alive, and that it is stopping.

``Notifier`` is the client: one datagram of newline-separated ``KEY=VALUE`` lines to the
``AF_UNIX`` socket at ``$NOTIFY_SOCKET``. It is written by hand, as the protocol is one
``sendto``: systemd-python would need libsystemd's headers to build, and gives nothing more.

``SystemdNotify`` turns the service's health (``app.ops.health``) into the messages:

* ``STATUS=`` the reading's one-line summary whenever it changes (``systemctl status`` shows
  it, so a service that never becomes ready says why);
* ``READY=1``, with the ``STATUS=``, at the first ready reading: reconciled and trading. Never
  before: a service that cannot get ready is failed by ``TimeoutStartSec=``, which is right;
* ``WATCHDOG=1`` every half watchdog interval (``$WATCHDOG_USEC``), from its own task, only
  while the readings are fresh (the event loop turns) and the tree is healthy (no actor stuck):
  a process that cannot heal itself is restarted by systemd;
* ``STOPPING=1``, with a ``STATUS=``, when the service stops.

Nothing here ever raises into the service: a send that fails is logged, once as a warning.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from supervisors import Supervisor
    from supervisors.service import Companion

    from .health import Health, Reading

__all__ = ["Notifier", "SystemdNotify", "systemd_companions", "watchdog_interval"]

log = logging.getLogger("actortrade.systemd")


class Notifier:
    """A client of the notify socket at ``address`` (a path, or ``@name`` in Linux's abstract
    namespace)."""

    def __init__(self, address: str) -> None:
        self.address = address
        # "@name" is the abstract namespace, whose names start with a NUL byte.
        self._target = "\0" + address[1:] if address.startswith("@") else address
        self._socket: socket.socket | None = None
        self._failed = False
        self.sent = 0
        """Datagrams sent."""
        self.failures = 0
        """Sends that failed."""

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None) -> Notifier | None:
        """The notifier of ``$NOTIFY_SOCKET`` (None when unset: not run by systemd, or not as
        ``Type=notify``)."""
        address = (os.environ if env is None else env).get("NOTIFY_SOCKET", "")
        # A path or an abstract name; systemd's other kinds (vsock:, for a virtual machine's
        # manager) are not for a service on the host.
        if not address.startswith(("/", "@")):
            return None
        return cls(address)

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` (each ``KEY=VALUE``) as one datagram; whether it was sent."""
        data = "\n".join(lines).encode()
        try:
            if self._socket is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # Never block the event loop: a full queue at systemd's end is a failed send.
                sock.setblocking(False)
                self._socket = sock
            self._socket.sendto(data, self._target)
        except OSError as exc:
            self.failures += 1
            level = logging.DEBUG if self._failed else logging.WARNING
            self._failed = True
            log.log(
                level,
                "cannot notify systemd at %s (%s): %s",
                self.address,
                ", ".join(line.partition("=")[0] for line in lines),
                exc.strerror or exc,
            )
            return False
        self.sent += 1
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def watchdog_interval(env: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """The watchdog's interval in seconds (``$WATCHDOG_USEC``), or None: no watchdog, or one
    meant for another process (``$WATCHDOG_PID`` names another pid)."""
    env = os.environ if env is None else env
    meant_for = env.get("WATCHDOG_PID", "")
    if meant_for and meant_for != str(os.getpid() if pid is None else pid):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


class SystemdNotify:
    """Tells systemd what ``health`` reads (see the module doc). ``on_reading`` is a listener
    of ``health``; ``run`` is the watchdog's task, pinging every ``period`` seconds (half the
    watchdog's interval) while the service is healthy."""

    def __init__(self, health: Health, notifier: Notifier, *, period: float | None) -> None:
        self.health = health
        self.notifier = notifier
        self.period = period
        """Seconds between two ``WATCHDOG=1`` (None: no watchdog)."""
        self.ready = False
        """``READY=1`` has been sent."""
        self.stopping = False
        """``STOPPING=1`` has been sent."""
        self._status: str | None = None

    def on_reading(self, reading: Reading) -> None:
        if self.stopping:
            return
        lines = []
        status = _one_line(reading.summary)
        if reading.stopping:
            self.stopping = True
            lines.append("STOPPING=1")
        elif reading.ready and not self.ready:
            self.ready = True
            lines.append("READY=1")
        if status != self._status or lines:
            self._status = status
            lines.append(f"STATUS={status}")
        if lines:
            self.notifier.notify(*lines)

    def healthy(self) -> bool:
        """Whether a watchdog ping is deserved now: a fresh reading (the event loop turns and
        the readings are taken) of a healthy tree."""
        if self.period is None:
            return False
        latest = self.health.latest
        # Readings come every health.interval: a period shorter than two of them would skip
        # pings of a healthy service.
        fresh = self.health.fresh(max(self.period, 2 * self.health.interval))
        return fresh and latest is not None and latest.tree_healthy and not latest.stopping

    async def run(self, _root: Supervisor, _stop: Callable[[str], None]) -> None:
        """Ping the watchdog until cancelled (when the tree has stopped); then say
        ``STOPPING=1`` if it has not been said, and close the socket."""
        period = self.period
        try:
            if period is None:
                await anyio.sleep_forever()
            else:
                while True:
                    if self.healthy():
                        self.notifier.notify("WATCHDOG=1")
                    await anyio.sleep(period)
        finally:
            if not self.stopping:
                self.stopping = True
                self.notifier.notify("STOPPING=1", "STATUS=stopped")
            self.notifier.close()


def systemd_companions(
    health: Health,
    *,
    env: Mapping[str, str] | None = None,
    period: float | None = None,
) -> list[Companion]:
    """The service's companions for systemd: none when not run as a ``Type=notify`` unit
    (``$NOTIFY_SOCKET`` unset); else the watchdog's task, with a listener of ``health`` added
    that sends ``READY=1``, ``STATUS=`` and ``STOPPING=1``.

    ``period`` overrides the watchdog's (half of ``$WATCHDOG_USEC``; no ping without it)."""
    notifier = Notifier.from_environment(env)
    if notifier is None:
        return []
    interval = watchdog_interval(env)
    if period is None and interval is not None:
        period = interval / 2
    notify = SystemdNotify(health, notifier, period=period)
    health.listeners.append(notify.on_reading)
    return [notify.run]


def _one_line(text: str) -> str:
    # STATUS= is one line of the datagram: a newline would start another KEY=VALUE.
    return " ".join(text.split())
