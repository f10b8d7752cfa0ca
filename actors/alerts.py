"""The alerts actor (SPEC 3, 12): every operator-facing event of the service reaches the
operator through it, by Slack, Discord, Telegram (``actors.alerts_http``), with a heartbeat
URL pinged while it runs.

* Anyone tells it an ``Alert`` with ``ActorRef.try_tell``: its mailbox is bounded, and a full
  one drops the alert (the mailbox's ``dropped`` counts it) rather than hold up a sender on
  the trading path. Supervisors reach it through ``AlertHooks`` (restarts, escalations, a
  child that gives up or is refused for good: a feed's refused keys, say).
* Repeats (the same ``Alert.key`` within ``dedup_window`` seconds of its first) are sent once;
  the count follows as "(repeated N times)" with the next distinct alert, or at the window's
  end.
* Each channel queues and delivers on its own (``alerts_http.Channel``): a dead endpoint
  slows neither trading nor the other channels.
* ``AlertLog``, owned by the composition, keeps the recent alerts with their delivery state
  and the channels' figures across the actor's restarts: ``actorctl status`` asks for them
  (``DescribeAlerts``).

Its timers (rate limits, backoff, dedup windows, heartbeat) run on the actor's clock.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import anyio
import attrs

from runtime import Actor, ActorRef, ExitHandled, Request, SupervisorHooks

from .alerts_http import (
    Channel,
    ChannelFigures,
    ChannelSettings,
    Delivery,
    Endpoint,
    Heartbeat,
    Outgoing,
    beat,
)
from .messages import SEVERITY, Alert, Severity

if TYPE_CHECKING:
    import httpx

__all__ = [
    "AlertEntry",
    "AlertHooks",
    "AlertLine",
    "AlertLog",
    "AlertSettings",
    "AlertsActor",
    "AlertsView",
    "ChannelSpec",
    "ChannelView",
    "DescribeAlerts",
    "Deduper",
    "Repeat",
    "render",
]


@attrs.frozen(kw_only=True)
class ChannelSpec:
    endpoint: Endpoint
    settings: ChannelSettings = attrs.Factory(ChannelSettings)


@attrs.frozen(kw_only=True)
class AlertSettings:
    """What the alerts actor delivers to, and how."""

    channels: tuple[ChannelSpec, ...] = ()
    heartbeat: Heartbeat | None = None
    heartbeat_timeout: float = 10.0
    dedup_window: float = 300.0
    """Seconds during which repeats of an alert are counted, not sent; 0: every one is sent."""
    mailbox: int = 1024
    history: int = 1000
    """Alerts kept for ``actorctl status`` (and for watching a run: ``AlertLog``)."""
    flush_timeout: float = 2.0
    """Seconds a graceful stop gives the channels to deliver what they hold."""
    sweep: float = 1.0
    """Seconds between two checks for dedup windows that ended."""
    seed: int | None = None
    """Seeds the retries' jitter (tests); None: a random seed."""


@attrs.define(kw_only=True)
class AlertEntry:
    alert: Alert
    delivery: dict[str, str] = attrs.Factory(dict)
    repeated: int = 0
    """Repeats folded into this entry by the dedup window."""


class AlertLog:
    """The alerts of a run, oldest first (the last ``limit``), with their delivery state and
    the channels' figures: written by the alerts actor only, read to watch it. Iterating
    yields the ``Alert``s."""

    def __init__(self, limit: int = 1000) -> None:
        self.entries: collections.deque[AlertEntry] = collections.deque(maxlen=limit)
        self.figures: dict[str, ChannelFigures] = {}
        self.received = 0
        self.suppressed = 0

    def __iter__(self) -> Iterator[Alert]:
        return (entry.alert for entry in tuple(self.entries))

    def __len__(self) -> int:
        return len(self.entries)

    def figures_of(self, name: str) -> ChannelFigures:
        figures = self.figures.get(name)
        if figures is None:
            figures = self.figures[name] = ChannelFigures(name=name)
        return figures


@attrs.frozen(kw_only=True)
class Repeat:
    """Repeats of ``alert`` that were not sent."""

    alert: Alert
    count: int


@attrs.define
class _Window:
    opened: float
    alert: Alert
    entry: AlertEntry | None
    unsent: int = 0


class Deduper:
    """Which alerts to send: the first of a key in ``window`` seconds; the repeats after it are
    counted and come out as a ``Repeat`` with the next distinct alert or once the window
    ended (``due``)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._open: dict[str, _Window] = {}

    def admit(
        self, alert: Alert, now: float, entry: AlertEntry | None = None
    ) -> tuple[AlertEntry | None, list[Repeat]]:
        """``(None, repeats)`` if ``alert`` repeats one within its window (it is counted on
        that one's entry), else ``(entry, repeats)``: send it after the repeats."""
        repeats = self.due(now)
        if self.window <= 0:
            return entry, repeats
        window = self._open.get(alert.key)
        if window is not None:
            window.unsent += 1
            if window.entry is not None:
                window.entry.repeated += 1
            return None, repeats
        for other in self._open.values():
            if other.unsent:
                repeats.append(Repeat(alert=other.alert, count=other.unsent))
                other.unsent = 0
        self._open[alert.key] = _Window(opened=now, alert=alert, entry=entry)
        return entry, repeats

    @property
    def unsent(self) -> bool:
        """Whether some repeats wait to be told."""
        return any(window.unsent for window in self._open.values())

    def due(self, now: float) -> list[Repeat]:
        """The repeats of the windows that ended by ``now`` (which close)."""
        ended = [key for key, w in self._open.items() if now - w.opened >= self.window]
        repeats = []
        for key in ended:
            window = self._open.pop(key)
            if window.unsent:
                repeats.append(Repeat(alert=window.alert, count=window.unsent))
        return repeats


def render(alert: Alert, repeated: int = 0) -> str:
    """An alert as a channel's message text."""
    where = f" {alert.symbol}" if alert.symbol else ""
    more = f" (repeated {repeated} times)" if repeated else ""
    return f"actortrade {alert.severity.value.upper()}{where} {alert.kind}: {alert.message}{more}"


@attrs.frozen(kw_only=True)
class DescribeAlerts(Request["AlertsView"]):
    """Reply with an ``AlertsView`` of the last ``last`` alerts."""

    last: int = 20


@attrs.frozen(kw_only=True)
class Sweep:
    """Send the repeats of the dedup windows that ended (the actor tells itself)."""


@attrs.frozen(kw_only=True)
class AlertLine:
    symbol: str
    kind: str
    message: str
    severity: str
    at_ns: int
    repeated: int
    delivery: dict[str, str]


@attrs.frozen(kw_only=True)
class ChannelView:
    name: str
    queued: int
    sent: int
    retried: int
    dropped: int
    failed: int
    last_error: str | None


@attrs.frozen(kw_only=True)
class AlertsView:
    """What ``actorctl status`` shows of the alerts."""

    alerts: tuple[AlertLine, ...]
    channels: tuple[ChannelView, ...]
    received: int
    suppressed: int
    """Repeats not sent (counted instead)."""
    dropped: int
    """Alerts that found the actor's mailbox full."""


AlertsInbox = Alert | DescribeAlerts | Sweep


class AlertsActor(Actor[AlertsInbox]):
    """See the module doc. ``log`` outlives the incarnations (the composition owns it)."""

    def __init__(self, settings: AlertSettings, log: AlertLog) -> None:
        self.settings = settings
        self.log = log
        self.rng = random.Random(settings.seed)
        self.dedup = Deduper(settings.dedup_window)
        self.channels: list[Channel] = []

    async def on_start(self) -> None:
        clock = self.context.clock
        self.channels = [
            Channel(
                spec.endpoint,
                spec.settings,
                figures=self.log.figures_of(spec.endpoint.name),
                clock=clock,
                rng=self.rng,
            )
            for spec in self.settings.channels
        ]
        for figures in self.log.figures.values():
            figures.queued = 0  # what a previous incarnation had queued is gone with it
        if self.settings.heartbeat is not None:
            self.log.figures_of(self.settings.heartbeat.name)

    async def background(self) -> None:
        settings = self.settings
        if not self.channels and settings.heartbeat is None:
            return  # it keeps the alerts for status: no client, no timer
        import httpx  # here, not at the top: a service with no channel never loads it

        # One client per incarnation: its connection pool is the channels' only shared state.
        async with httpx.AsyncClient() as client, anyio.create_task_group() as tg:
            for channel in self.channels:
                tg.start_soon(channel.run, client)
            if settings.heartbeat is not None:
                tg.start_soon(self._beat, settings.heartbeat, client)
            if settings.dedup_window > 0 and self.channels:
                while True:
                    await self.context.clock.sleep(settings.sweep)
                    # Only when repeats wait to be told: an idle actor tells itself nothing.
                    if self.dedup.unsent:
                        self.context.self_ref.try_tell(Sweep())

    async def on_stop(self) -> None:
        # A graceful stop (the service stopping, or giving up: "unrecoverable" is told just
        # then) must not lose what was told meanwhile: file it, then give the channels
        # flush_timeout seconds to deliver what they hold.
        for message in self.context.drain():
            if isinstance(message, Alert):
                self._alert(message)
        self._repeats(self.dedup.due(float("inf")))
        pending = [channel for channel in self.channels if channel.pending]
        if not pending:
            return
        import httpx

        with anyio.CancelScope(shield=True), anyio.move_on_after(self.settings.flush_timeout):
            async with httpx.AsyncClient() as client, anyio.create_task_group() as tg:
                for channel in pending:
                    tg.start_soon(channel.flush, client)

    async def _beat(self, heartbeat: Heartbeat, client: httpx.AsyncClient) -> None:
        await beat(
            heartbeat,
            client,
            figures=self.log.figures_of(heartbeat.name),
            clock=self.context.clock,
            within=self.settings.heartbeat_timeout,
        )

    def handle(self, message: AlertsInbox) -> AlertsView | None:
        match message:
            case Alert():
                self._alert(message)
            case Sweep():
                self._repeats(self.dedup.due(self.context.clock.monotonic()))
            case DescribeAlerts(last=last):
                return self._view(last)
        return None

    def _alert(self, alert: Alert) -> None:
        log = self.log
        log.received += 1
        if alert.at_ns == 0:
            alert = attrs.evolve(alert, at_ns=self.context.clock.time_ns())
        entry = AlertEntry(alert=alert)
        sending, repeats = self.dedup.admit(alert, self.context.clock.monotonic(), entry)
        self._repeats(repeats)
        if sending is None:
            log.suppressed += 1
            return
        log.entries.append(entry)
        self._fan_out(alert, render(alert), entry)

    def _repeats(self, repeats: Sequence[Repeat]) -> None:
        for repeat in repeats:
            self._fan_out(repeat.alert, render(repeat.alert, repeat.count), None)

    def _fan_out(self, alert: Alert, text: str, entry: AlertEntry | None) -> None:
        for channel in self.channels:
            if not channel.wants(alert.severity.value):
                if entry is not None:
                    entry.delivery[channel.name] = Delivery.SKIPPED.value
                continue
            channel.offer(Outgoing(text=text, report=_Report(entry, channel.name)))

    def _view(self, last: int) -> AlertsView:
        entries = list(self.log.entries)[-last:] if last > 0 else []
        return AlertsView(
            alerts=tuple(
                AlertLine(
                    symbol=e.alert.symbol,
                    kind=e.alert.kind,
                    message=e.alert.message,
                    severity=e.alert.severity.value,
                    at_ns=e.alert.at_ns,
                    repeated=e.repeated,
                    delivery=dict(e.delivery),
                )
                for e in entries
            ),
            channels=tuple(
                ChannelView(
                    name=f.name,
                    queued=f.queued,
                    sent=f.sent,
                    retried=f.retried,
                    dropped=f.dropped,
                    failed=f.failed,
                    last_error=f.last_error,
                )
                for f in self.log.figures.values()
            ),
            received=self.log.received,
            suppressed=self.log.suppressed,
            dropped=self.context.self_ref.statistics().dropped,
        )


@attrs.frozen
class _Report:
    entry: AlertEntry | None
    channel: str

    def __call__(self, state: Delivery) -> None:
        if self.entry is not None:
            self.entry.delivery[self.channel] = state.value


class AlertHooks(SupervisorHooks):
    """Tells the alerts actor what the supervisors did about a child's exit: a restart
    (warning), an escalation, a child given up on or refused for good (critical). A symbol
    actor's exit names its symbol."""

    __slots__ = ("alerts", "time_ns")

    def __init__(
        self, alerts: ActorRef[AlertsInbox], time_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.alerts = alerts
        self.time_ns = time_ns

    def exit_handled(self, event: ExitHandled) -> None:
        child = f"{event.supervisor}/{event.child}"
        error = _described(event.error)
        match event.action:
            case "restart":
                kind = "restart"
                waited = f" after {event.backoff:.2g} s" if event.backoff else ""
                message = (
                    f"{child} exited ({event.reason}{error}), restarted{waited}: "
                    f"{', '.join(event.restarted) or 'nothing'}"
                )
            case "escalate":
                kind = "escalation"
                message = (
                    f"{child} restarted too often ({event.reason}{error}): {event.supervisor} "
                    "gives up and its parent handles it"
                )
            case "give_up":
                kind = "give-up"
                message = f"{child} keeps failing{error}: its supervisor gives up"
            case "unrecoverable":
                kind = "unrecoverable"
                message = f"{child} cannot go on{error}: the service stops"
            case _:
                return
        symbol = event.child.removeprefix("symbol.") if event.child.startswith("symbol.") else ""
        self.alerts.try_tell(
            Alert(
                symbol=symbol,
                kind=kind,
                message=message,
                severity=SEVERITY.get(kind, Severity.WARNING),
                at_ns=self.time_ns(),
                dedup_key=f"{kind}\x1f{child}",
            )
        )


def _described(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error)
    if len(text) > 300:
        text = text[:299] + "…"
    return f": {type(error).__name__}: {text}" if text else f": {type(error).__name__}"
