"""The alerts actor: its channels' requests as Slack, Discord, Telegram and a heartbeat service
receive them (local HTTP servers that record them; httpx over real sockets), retries and
backoff, Discord's 429 ``retry_after``, rate limits, dedup, a dead endpoint, secrets kept out
of logs and status, and a full mailbox. Its timers run on a ``VirtualClock`` the tests move."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.alerts import (
    AlertHooks,
    AlertLog,
    AlertsActor,
    AlertSettings,
    AlertsView,
    ChannelSpec,
    Deduper,
    DescribeAlerts,
    Repeat,
    render,
)
from actors.alerts_http import (
    ChannelSettings,
    DiscordWebhook,
    Endpoint,
    Heartbeat,
    Retry,
    SlackWebhook,
    TelegramBot,
    TokenBucket,
)
from actors.messages import Alert, Severity
from runtime import ActorCell, ExitHandled, MailboxConfig, VirtualClock
from tests.http_recorder import Answer, Recorder, Request

pytestmark = pytest.mark.anyio

SEED = 7
FAST = Retry(attempts=4, initial=2.0, maximum=10.0)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks on both backends: the requests cross real sockets, and an autojumping
    MockClock would jump past them to their deadlines. The actor's own timers run on a
    ``VirtualClock`` each test moves by hand."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


def alert(message: str, *, kind: str = "ladder-end", symbol: str = "TQQQ", **more: Any) -> Alert:
    return Alert(symbol=symbol, kind=kind, message=message, **more)


def channel(endpoint: Endpoint, **limits: Any) -> ChannelSpec:
    limits = {"rate": 1000.0, "burst": 1000, "retry": FAST, "timeout": 30.0, **limits}
    return ChannelSpec(endpoint=endpoint, settings=ChannelSettings(**limits))


@asynccontextmanager
async def running(
    settings: AlertSettings, *, clock: VirtualClock | None = None, capacity: int = 1024
) -> AsyncIterator[tuple[ActorCell[Any], AlertLog, VirtualClock]]:
    clock = clock if clock is not None else VirtualClock()
    log = AlertLog(settings.history)
    cell: ActorCell[Any] = ActorCell(
        "alerts",
        lambda: AlertsActor(settings, log),
        mailbox=MailboxConfig(capacity=capacity),
        clock=clock,
    )
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(cell.run)
            yield cell, log, clock
            cell.request_stop()


async def view(cell: ActorCell[Any]) -> AlertsView:
    reply = await cell.ref.request(DescribeAlerts(), timeout=10)
    assert isinstance(reply, AlertsView)
    return reply


def texts(requests: list[Request], key: str = "text") -> list[str]:
    return [r.json()[key] for r in requests]


# -- the pure parts -----------------------------------------------------------------------------


@given(
    rate=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
    gaps=st.lists(st.floats(min_value=0, max_value=3), min_size=1, max_size=60),
)
def test_a_token_bucket_never_lets_more_through_than_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """Whatever the arrival times, waiting as the bucket says lets at most burst + rate * T
    requests through in any span of T seconds, and never makes anyone wait when a token is
    there."""
    bucket = TokenBucket(rate, burst, 0.0)
    now, taken = 0.0, []
    for gap in gaps:
        now += gap
        wait = bucket.wait(now)
        assert wait >= 0
        now += wait
        assert bucket.wait(now) == pytest.approx(0.0, abs=1e-9)
        bucket.take(now)
        taken.append(now)
    for i, start in enumerate(taken):
        for j in range(i, len(taken)):
            assert j - i + 1 <= burst + rate * (taken[j] - start) + 1e-6


def test_retry_delays_grow_to_the_maximum_and_repeat_under_a_seeded_rng() -> None:
    """Exponential, capped, shortened by at most the jitter, and the same for the same seed."""
    retry = Retry(initial=1.0, maximum=8.0, jitter=0.2)
    first = [retry.delay(n, random.Random(SEED)) for n in range(1, 7)]
    assert first == [retry.delay(n, random.Random(SEED)) for n in range(1, 7)]
    for n, delay in enumerate(first, start=1):
        base = min(8.0, 2.0 ** (n - 1))
        assert 0.8 * base <= delay <= base


def test_repeats_are_counted_and_told_with_the_next_distinct_alert_or_at_the_window_end() -> None:
    """Within the window only the first of a key is sent; its repeats come out as one Repeat
    before the next distinct alert, and again once the window has ended."""
    dedup = Deduper(window=10.0)
    a, b = alert("the ladder ends"), alert("an order was rejected", kind="order-rejected")
    assert dedup.admit(a, 0.0)[1] == []
    assert dedup.admit(a, 1.0)[0] is None
    assert dedup.admit(a, 2.0)[0] is None
    _sent, repeats = dedup.admit(b, 3.0, entry=None)
    assert repeats == [Repeat(alert=a, count=2)]
    assert dedup.admit(a, 4.0)[0] is None
    assert dedup.due(9.9) == []
    assert dedup.due(10.0) == [Repeat(alert=a, count=1)]
    # The window has ended: the next one is sent again.
    assert dedup.admit(a, 10.5)[1] == []
    assert render(a, 3).endswith("the ladder ends (repeated 3 times)")


def test_a_zero_window_sends_every_alert() -> None:
    dedup = Deduper(window=0.0)
    entry = object()
    for at in range(3):
        assert dedup.admit(alert("same"), float(at), entry)[0] is entry  # type: ignore[arg-type]


# -- the channels over HTTP ---------------------------------------------------------------------


async def test_each_channel_posts_its_own_request_format() -> None:
    """Slack gets {"text"}, Discord {"content"}, Telegram POST /bot<token>/sendMessage with
    chat_id and text; each one the rendered alert."""
    async with (
        Recorder.serving() as slack,
        Recorder.serving() as discord,
        Recorder.serving() as telegram,
    ):
        settings = AlertSettings(
            channels=(
                channel(SlackWebhook(url=f"{slack.url}/services/T1/B2/abc")),
                channel(DiscordWebhook(url=f"{discord.url}/api/webhooks/1/xyz")),
                channel(TelegramBot(token="123:TOKEN", chat_id="-1009", api_url=telegram.url)),
            ),
        )
        async with running(settings) as (cell, log, _clock):
            cell.ref.try_tell(alert("no further buys", severity=Severity.WARNING))
            (s,) = await slack.wait_for(1)
            (d,) = await discord.wait_for(1)
            (t,) = await telegram.wait_for(1)
            status = await _settled(cell, lambda v: all(c.sent for c in v.channels))
        expected = "actortrade WARNING TQQQ ladder-end: no further buys"
        assert (s.method, s.path, s.json()) == ("POST", "/services/T1/B2/abc", {"text": expected})
        assert s.headers["content-type"] == "application/json"
        assert (d.method, d.path, d.json()) == (
            "POST",
            "/api/webhooks/1/xyz",
            {"content": expected},
        )
        assert (t.method, t.path) == ("POST", "/bot123:TOKEN/sendMessage")
        assert t.json() == {"chat_id": "-1009", "text": expected}
        (line,) = status.alerts
        assert line.delivery == {"slack": "sent", "discord": "sent", "telegram": "sent"}
        assert line.at_ns > 0
        assert {c.name: c.sent for c in status.channels} == {
            "slack": 1,
            "discord": 1,
            "telegram": 1,
        }
        assert [a.message for a in log] == ["no further buys"]


async def test_a_discord_message_is_cut_to_its_limit() -> None:
    """Discord refuses content over 2000 characters: it is cut, not refused."""
    async with Recorder.serving() as discord:
        settings = AlertSettings(channels=(channel(DiscordWebhook(url=discord.url)),))
        async with running(settings) as (cell, _log, _clock):
            cell.ref.try_tell(alert("x" * 5000))
            (request,) = await discord.wait_for(1)
    assert len(request.json()["content"]) == 2000


async def test_server_errors_are_retried_with_seeded_exponential_backoff() -> None:
    """Two 500s, then a 200: the retries wait FAST's delays for SEED exactly (on the actor's
    clock), and the figures count two retries and one message sent."""
    answers = iter([Answer(status=500), Answer(status=503), Answer()])
    async with Recorder.serving(lambda _r: next(answers)) as slack:
        settings = AlertSettings(
            channels=(channel(SlackWebhook(url=slack.url)),), seed=SEED, dedup_window=0
        )
        rng = random.Random(SEED)
        first, second = FAST.delay(1, rng), FAST.delay(2, rng)
        async with running(settings) as (cell, _log, clock):
            cell.ref.try_tell(alert("rejected"))
            await slack.wait_for(1)
            await resting(clock)
            await clock.advance(first - 0.001)
            assert len(slack.requests) == 1
            await clock.advance(0.001)
            await slack.wait_for(2)
            await resting(clock)
            await clock.advance(second)
            await slack.wait_for(3)
            status = await _settled(cell, lambda v: v.channels[0].sent == 1)
    (figures,) = status.channels
    assert (figures.sent, figures.retried, figures.failed) == (1, 2, 0)
    assert status.alerts[0].delivery == {"slack": "sent"}


async def test_a_refusal_is_not_retried_and_exhausted_attempts_fail() -> None:
    """A 404 (a deleted webhook) fails at once; 500s fail after FAST.attempts requests."""
    async with (
        Recorder.serving(lambda _r: Answer(status=404)) as gone,
        Recorder.serving(lambda _r: Answer(status=500)) as broken,
    ):
        settings = AlertSettings(
            channels=(
                channel(SlackWebhook(url=gone.url)),
                channel(DiscordWebhook(url=broken.url)),
            ),
            seed=SEED,
            dedup_window=0,
        )
        async with running(settings) as (cell, _log, clock):
            cell.ref.try_tell(alert("halted"))
            await gone.wait_for(1)
            rng = random.Random(SEED)
            for tries in range(2, FAST.attempts + 1):
                await broken.wait_for(tries - 1)
                await resting(clock)
                # Exactly the seeded delay: further, the next retry could fall in the same step.
                await clock.advance(FAST.delay(tries - 1, rng))
            await broken.wait_for(FAST.attempts)
            status = await _settled(cell, lambda v: all(c.failed == 1 for c in v.channels))
            await clock.advance(FAST.maximum * 3)
    assert len(gone.requests) == 1
    assert len(broken.requests) == FAST.attempts
    figures = {c.name: c for c in status.channels}
    assert (figures["slack"].retried, figures["slack"].last_error) == (0, "slack: HTTP 404")
    assert figures["discord"].retried == FAST.attempts - 1
    assert status.alerts[0].delivery == {"slack": "failed", "discord": "failed"}


async def test_discord_429_waits_the_retry_after_it_asks_for() -> None:
    """A 429 with {"retry_after": 7.5} is retried 7.5 s later (not at the backoff's 2 s)."""
    answers = iter([Answer(status=429, body=json.dumps({"retry_after": 7.5}).encode()), Answer()])
    async with Recorder.serving(lambda _r: next(answers)) as discord:
        settings = AlertSettings(
            channels=(channel(DiscordWebhook(url=discord.url)),), dedup_window=0
        )
        async with running(settings) as (cell, _log, clock):
            cell.ref.try_tell(alert("rate limited"))
            await discord.wait_for(1)
            await resting(clock)
            await clock.advance(7.4)
            assert len(discord.requests) == 1
            await clock.advance(0.1)
            await discord.wait_for(2)
            status = await _settled(cell, lambda v: v.channels[0].sent == 1)
    assert status.channels[0].retried == 1


async def test_slack_429_retry_after_header_is_honoured() -> None:
    """Slack says it in the Retry-After header."""
    answers = iter([Answer(status=429, headers={"retry-after": "30"}), Answer()])
    async with Recorder.serving(lambda _r: next(answers)) as slack:
        settings = AlertSettings(channels=(channel(SlackWebhook(url=slack.url)),), dedup_window=0)
        async with running(settings) as (cell, _log, clock):
            cell.ref.try_tell(alert("rate limited"))
            await slack.wait_for(1)
            await resting(clock)
            await clock.advance(29.9)
            assert len(slack.requests) == 1
            await clock.advance(0.1)
            await slack.wait_for(2)


async def test_a_burst_is_spaced_by_the_rate_limit_in_order() -> None:
    """Rate 1/s, burst 2: five alerts at once arrive two at once, then one per second of the
    actor's clock, in the order they were raised."""
    async with Recorder.serving() as slack:
        settings = AlertSettings(
            channels=(channel(SlackWebhook(url=slack.url), rate=1.0, burst=2),),
            dedup_window=0,
        )
        async with running(settings) as (cell, _log, clock):
            for n in range(5):
                cell.ref.try_tell(alert(f"alert {n}"))
            await slack.wait_for(2)
            await resting(clock)
            await clock.advance(0.99)
            assert len(slack.requests) == 2
            for arrived in (3, 4, 5):
                await clock.advance(0.01 if arrived == 3 else 0.99)
                await slack.wait_for(arrived)
                if arrived < 5:
                    await resting(clock)
                    await clock.advance(0.01)
                    assert len(slack.requests) == arrived
    assert [t.rsplit(": ", 1)[1] for t in texts(slack.requests)] == [f"alert {n}" for n in range(5)]


async def test_repeats_are_sent_once_with_their_count() -> None:
    """Three of one alert and then another: the first, its count, the other; two more repeats
    then come out when the window ends. Status shows the repeats on the first's line."""
    async with Recorder.serving() as slack:
        settings = AlertSettings(
            channels=(channel(SlackWebhook(url=slack.url)),), dedup_window=60.0, sweep=10.0
        )
        async with running(settings) as (cell, log, clock):
            for _ in range(3):
                cell.ref.try_tell(alert("no further buys"))
            cell.ref.try_tell(alert("sell refused", kind="sell-refused"))
            await slack.wait_for(3)
            cell.ref.try_tell(alert("no further buys"))
            cell.ref.try_tell(alert("no further buys"))
            await clock.advance(59.0)
            assert len(slack.requests) == 3
            await clock.advance(1.0)
            await slack.wait_for(4)
            status = await view(cell)
    assert [
        t.split("ladder-end: ")[-1].split("sell-refused: ")[-1] for t in texts(slack.requests)
    ] == [
        "no further buys",
        "no further buys (repeated 2 times)",
        "sell refused",
        "no further buys (repeated 2 times)",
    ]
    assert [(a.kind, a.repeated) for a in status.alerts] == [("ladder-end", 4), ("sell-refused", 0)]
    assert (status.received, status.suppressed) == (6, 4)
    assert len(log) == 2


async def test_a_dead_endpoint_slows_neither_the_other_channels_nor_the_senders() -> None:
    """Discord accepts and never answers (a long timeout): Slack still gets every alert at
    once, and try_tell never waits; Discord's first message stays in flight, the rest queued."""
    async with (
        Recorder.serving(lambda _r: Answer(hang=True)) as dead,
        Recorder.serving() as slack,
    ):
        settings = AlertSettings(
            channels=(
                channel(DiscordWebhook(url=dead.url), timeout=3600.0),
                channel(SlackWebhook(url=slack.url)),
            ),
            flush_timeout=0.1,
        )
        async with running(settings) as (cell, _log, _clock):
            told = [cell.ref.try_tell(alert(f"alert {n}")) for n in range(10)]
            await slack.wait_for(10)
            await dead.wait_for(1)
            status = await _settled(cell, lambda v: v.channels[1].sent == 10)
            in_flight = len(dead.requests)
    assert told == [True] * 10
    figures = {c.name: c for c in status.channels}
    assert figures["slack"].sent == 10
    assert (figures["discord"].sent, figures["discord"].queued) == (0, 10)
    assert in_flight == 1
    assert {a.delivery["discord"] for a in status.alerts} == {"queued"}


async def test_a_full_channel_queue_drops_and_counts() -> None:
    """Behind a dead endpoint, a channel keeps queue_size messages and drops the rest."""
    async with Recorder.serving(lambda _r: Answer(hang=True)) as dead:
        settings = AlertSettings(
            channels=(channel(SlackWebhook(url=dead.url), timeout=3600.0, queue_size=3),),
            flush_timeout=0.1,
        )
        async with running(settings) as (cell, _log, _clock):
            for n in range(5):
                cell.ref.try_tell(alert(f"alert {n}"))
            await dead.wait_for(1)
            status = await view(cell)
    (figures,) = status.channels
    assert (figures.queued, figures.dropped) == (3, 2)
    assert [a.delivery["slack"] for a in status.alerts] == ["queued"] * 3 + ["dropped"] * 2


async def test_a_full_mailbox_drops_alerts_and_counts_them() -> None:
    """The alerts actor's bounded mailbox: what finds it full is dropped (the sender goes on)
    and status counts it."""
    settings = AlertSettings()
    log = AlertLog()
    cell: ActorCell[Any] = ActorCell(
        "alerts", lambda: AlertsActor(settings, log), mailbox=MailboxConfig(capacity=2)
    )
    told = [cell.ref.try_tell(alert(f"alert {n}")) for n in range(5)]
    assert told == [True, True, False, False, False]
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(cell.run)
            status = await view(cell)
            cell.request_stop()
    assert (status.received, status.dropped) == (2, 3)
    assert [a.message for a in log] == ["alert 0", "alert 1"]


async def test_the_heartbeat_pings_each_interval_only_while_the_actor_runs() -> None:
    """A ping at start, one per interval of the actor's clock, none once it has stopped."""
    async with Recorder.serving() as checks:
        clock = VirtualClock()
        settings = AlertSettings(
            heartbeat=Heartbeat(url=f"{checks.url}/ping/abc", interval=30.0), dedup_window=0
        )
        async with running(settings, clock=clock) as (cell, _log, _clock):
            await checks.wait_for(1)
            await resting(clock)
            await clock.advance(29.0)
            assert len(checks.requests) == 1
            await clock.advance(1.0)
            await checks.wait_for(2)
            await resting(clock)
            await clock.advance(30.0)
            await checks.wait_for(3)
            status = await _settled(cell, lambda v: v.channels[0].sent == 3)
        await clock.advance(300.0)
    assert len(checks.requests) == 3
    assert {(r.method, r.path) for r in checks.requests} == {("GET", "/ping/abc")}
    assert [(c.name, c.sent, c.failed) for c in status.channels] == [("heartbeat", 3, 0)]


async def test_a_post_heartbeat_posts() -> None:
    async with Recorder.serving() as checks:
        settings = AlertSettings(heartbeat=Heartbeat(url=checks.url, method="POST"))
        async with running(settings) as (_cell, _log, _clock):
            (request,) = await checks.wait_for(1)
    assert request.method == "POST"


async def test_secrets_never_reach_the_logs_nor_status(caplog: pytest.LogCaptureFixture) -> None:
    """With every logger at DEBUG and every channel failing (refused, 500s, a dead one, a port
    nobody listens on), neither the log records nor status hold a webhook path or the token:
    a failing endpoint is named by its channel."""
    caplog.set_level(logging.DEBUG)
    closed = await _closed_port()
    async with (
        Recorder.serving(lambda _r: Answer(status=500)) as broken,
        Recorder.serving(lambda _r: Answer(status=404)) as gone,
    ):
        settings = AlertSettings(
            channels=(
                channel(SlackWebhook(url=f"{broken.url}/services/SECRETSLACK")),
                channel(DiscordWebhook(url=f"{gone.url}/api/webhooks/SECRETDISCORD")),
                channel(
                    TelegramBot(
                        token="42:SECRETTOKEN",
                        chat_id="SECRETCHAT",
                        api_url=f"http://127.0.0.1:{closed}",
                    ),
                    retry=Retry(attempts=1),
                ),
            ),
            heartbeat=Heartbeat(url=f"http://127.0.0.1:{closed}/SECRETPING"),
            seed=SEED,
        )
        async with running(settings) as (cell, _log, clock):
            cell.ref.try_tell(alert("missing shares", kind="halted"))
            for _ in range(FAST.attempts):
                await clock.advance(FAST.maximum)
            status = await _settled(
                cell, lambda v: sum(c.failed for c in v.channels) >= 4, clock=clock
            )
    shown = msgspec.json.encode(status).decode() + repr(settings) + repr(status)
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    for secret in ("SECRETSLACK", "SECRETDISCORD", "SECRETTOKEN", "SECRETCHAT", "SECRETPING"):
        assert secret not in shown
        assert secret not in logged
    errors = {c.name: c.last_error for c in status.channels}
    assert errors["slack"] == "slack: HTTP 500"
    assert errors["discord"] == "discord: HTTP 404"
    assert errors["telegram"] == "telegram: ConnectError"
    assert errors["heartbeat"] == "heartbeat: ConnectError"


async def test_a_restart_becomes_an_alert_through_the_supervisor_hook() -> None:
    """AlertHooks turns a supervisor's restart into a warning naming the child (and the
    symbol of a symbol actor), an escalation into a critical one."""
    settings = AlertSettings()
    async with running(settings) as (cell, log, _clock):
        hooks = AlertHooks(cell.ref, time_ns=lambda: 1_000)
        hooks.exit_handled(_exit("symbol.TQQQ", "restart", error=RuntimeError("boom")))
        hooks.exit_handled(_exit("broker", "escalate", error=ConnectionError("gone")))
        hooks.exit_handled(_exit("market-data.alpaca", "none"))
        status = await view(cell)
    restart, escalation = list(log)
    assert (restart.symbol, restart.kind, restart.severity) == ("TQQQ", "restart", "warning")
    assert "root/symbols/symbol.TQQQ exited (error: RuntimeError: boom)" in restart.message
    assert (escalation.symbol, escalation.kind, escalation.severity) == (
        "",
        "escalation",
        Severity.CRITICAL,
    )
    assert escalation.at_ns == 1_000
    assert status.received == 2


def _exit(child: str, action: Any, error: BaseException | None = None) -> ExitHandled:
    return ExitHandled(
        supervisor="root/symbols",
        child=child,
        incarnation=1,
        reason="error" if error else "normal",
        action=action,
        restarted=(child,) if action == "restart" else (),
        error=error,
        started_ns=0,
        ended_ns=1,
    )


async def _settled(
    cell: ActorCell[Any],
    holds: Callable[[AlertsView], bool],
    clock: VirtualClock | None = None,
) -> AlertsView:
    # The figures change when a response has been read, a moment after the server sent it.
    while True:
        status = await view(cell)
        if holds(status):
            return status
        if clock is not None:
            await clock.advance(FAST.maximum)
        await anyio.wait_all_tasks_blocked()


async def resting(clock: VirtualClock, sleepers: int = 1) -> None:
    """Until ``sleepers`` tasks sleep on the actor's clock: a channel that read its answer and
    now waits (a backoff, a token, the next heartbeat) before the test moves time."""
    while clock.sleepers < sleepers:
        await anyio.wait_all_tasks_blocked()


async def _closed_port() -> int:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port: int = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    return port


async def test_alerts_told_as_it_stops_are_still_delivered() -> None:
    """A graceful stop (the service stopping, or giving up just after an "unrecoverable"
    alert) drains the mailbox and gives the channels time to deliver, repeats' counts too; a
    dead channel does not hold the stop beyond that time."""
    async with (
        Recorder.serving() as slack,
        Recorder.serving(lambda _r: Answer(hang=True)) as dead,
    ):
        settings = AlertSettings(
            channels=(
                channel(SlackWebhook(url=slack.url)),
                channel(DiscordWebhook(url=dead.url), timeout=3600.0),
            ),
            flush_timeout=0.5,
        )
        log = AlertLog()
        cell: ActorCell[Any] = ActorCell(
            "alerts", lambda: AlertsActor(settings, log), clock=VirtualClock()
        )
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                await tg.start(cell.run)
                cell.ref.try_tell(alert("the keys are refused", kind="unrecoverable"))
                cell.ref.try_tell(alert("the keys are refused", kind="unrecoverable"))
                cell.request_stop()
            await slack.wait_for(2)
    assert [t.split(": ", 1)[1] for t in texts(slack.requests)] == [
        "the keys are refused",
        "the keys are refused (repeated 1 times)",
    ]
    assert len(dead.requests) == 1
    assert [a.kind for a in log] == ["unrecoverable"]
