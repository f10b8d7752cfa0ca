"""The alerts actor's channels (``actors.alerts``): Slack and Discord incoming webhooks, a
Telegram bot's ``sendMessage`` and a Healthchecks-style heartbeat URL, over httpx.

Each channel has its own bounded queue and its own task, so a dead endpoint slows nobody
else: a request has a deadline, a failed one is retried with exponential backoff and jitter
(a Discord or Slack 429 after the ``retry_after`` it asks for), requests are spaced by a token
bucket, and a full queue drops the newest message, counted. Outcomes are counted in
``ChannelFigures`` for ``actorctl status``.

Webhook URLs, the bot token and the heartbeat URL are secrets (the URL is the credential):
they come from the environment, are ``repr=False`` here, and an error names the channel and
what failed (``slack: HTTP 500``, ``discord: ReadTimeout``), never the URL. httpx itself logs
each request's URL at INFO: its loggers are raised to WARNING by this module.
"""

from __future__ import annotations

import collections
import enum
import logging
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import attrs

from runtime import Clock

if TYPE_CHECKING:
    # httpx is imported where a client is made (``actors.alerts``): a service with no channel
    # and no heartbeat never loads it (about 60 ms of every start, docs/performance.md).
    import httpx

log = logging.getLogger("actortrade.alerts")

for _name in ("httpx", "httpcore"):
    # "HTTP Request: POST https://hooks.slack.com/services/<secret> ..." at INFO, and
    # httpcore's traces at DEBUG: a secret in the logs the moment someone turns them up.
    _logger = logging.getLogger(_name)
    if _logger.level < logging.WARNING:
        _logger.setLevel(logging.WARNING)

DISCORD_LIMIT = 2000
"""Characters in a Discord message's content."""
TELEGRAM_LIMIT = 4096
"""Characters in a Telegram message's text."""
TELEGRAM_API = "https://api.telegram.org"


@attrs.frozen(kw_only=True)
class HttpRequest:
    method: str
    url: str = attrs.field(repr=False)
    json: dict[str, Any] | None = None


class Endpoint(Protocol):
    """Where one channel's messages go, and in what form."""

    @property
    def name(self) -> str: ...

    def request(self, text: str) -> HttpRequest: ...


@attrs.frozen(kw_only=True)
class SlackWebhook:
    """A Slack incoming webhook: POST ``{"text": ...}``."""

    url: str = attrs.field(repr=False)
    name: str = "slack"

    def request(self, text: str) -> HttpRequest:
        return HttpRequest(method="POST", url=self.url, json={"text": text})


@attrs.frozen(kw_only=True)
class DiscordWebhook:
    """A Discord webhook: POST ``{"content": ...}`` (at most 2000 characters)."""

    url: str = attrs.field(repr=False)
    name: str = "discord"

    def request(self, text: str) -> HttpRequest:
        return HttpRequest(method="POST", url=self.url, json={"content": _cut(text, DISCORD_LIMIT)})


@attrs.frozen(kw_only=True)
class TelegramBot:
    """A Telegram bot: POST ``<api_url>/bot<token>/sendMessage`` with the chat id and text."""

    token: str = attrs.field(repr=False)
    chat_id: str = attrs.field(repr=False)
    api_url: str = TELEGRAM_API
    name: str = "telegram"

    def request(self, text: str) -> HttpRequest:
        return HttpRequest(
            method="POST",
            url=f"{self.api_url.rstrip('/')}/bot{self.token}/sendMessage",
            json={"chat_id": self.chat_id, "text": _cut(text, TELEGRAM_LIMIT)},
        )


@attrs.frozen(kw_only=True)
class Heartbeat:
    """A Healthchecks-style ping URL: a GET (or POST) every ``interval`` seconds while the
    alerts actor runs; the service monitoring it raises the alarm when the pings stop."""

    url: str = attrs.field(repr=False)
    interval: float = 60.0
    method: str = "GET"
    name: str = "heartbeat"

    def request(self, text: str) -> HttpRequest:
        return HttpRequest(method=self.method, url=self.url)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@attrs.frozen(kw_only=True)
class Retry:
    """How a failed delivery is retried: ``attempts`` requests in all; the n-th retry waits
    ``min(maximum, initial * multiplier**(n-1))`` seconds, shortened by up to ``jitter`` of
    itself at random (so that many bots do not retry in step)."""

    attempts: int = 5
    initial: float = 1.0
    maximum: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def delay(self, retry: int, rng: random.Random) -> float:
        """The wait before retry ``retry`` (1 for the first)."""
        base = min(self.maximum, self.initial * self.multiplier ** (retry - 1))
        return base * (1.0 - self.jitter * rng.random())


class TokenBucket:
    """At most ``burst`` requests at once, refilled at ``rate`` per second: the channel waits
    ``wait(now)`` seconds, then ``take(now)``s a token."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if not (rate > 0 and math.isfinite(rate)) or burst < 1:
            raise ValueError(f"a token bucket needs rate > 0 and burst >= 1, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now

    def wait(self, now: float) -> float:
        """Seconds until a token is there (0: one is)."""
        self._refill(now)
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self._tokens -= 1.0


@attrs.frozen(kw_only=True)
class ChannelSettings:
    """One channel's limits."""

    rate: float = 1.0
    """Requests per second, sustained."""
    burst: int = 1
    """Requests that may go at once after a quiet spell."""
    queue_size: int = 100
    timeout: float = 10.0
    """Seconds one request may take, all of it (connect, send, answer)."""
    retry: Retry = Retry()
    min_severity: str = "info"
    """The least severe alert the channel sends: info, warning or critical."""


@attrs.define(kw_only=True)
class ChannelFigures:
    """What became of a channel's messages (kept across the alerts actor's restarts)."""

    name: str
    queued: int = 0
    """Waiting now (in the queue or being delivered)."""
    sent: int = 0
    retried: int = 0
    """Requests that failed and were tried again."""
    dropped: int = 0
    """Messages that found the queue full."""
    failed: int = 0
    """Messages given up on: a refusal a retry cannot mend (4xx), or every attempt failed."""
    last_error: str | None = None


class Delivery(enum.StrEnum):
    QUEUED = "queued"
    RETRYING = "retrying"
    SENT = "sent"
    FAILED = "failed"
    DROPPED = "dropped"
    SKIPPED = "skipped"
    """Below the channel's ``min_severity``."""


@attrs.define(kw_only=True)
class Outgoing:
    """One message for one channel; ``report`` is told each change of its delivery state."""

    text: str
    report: Callable[[Delivery], None] = lambda _state: None


_RETRYABLE = {408, 425, 429}


async def attempt(
    client: httpx.AsyncClient, request: HttpRequest, *, name: str, within: float
) -> tuple[bool, bool, float | None, str | None]:
    """One request, given ``within`` seconds: ``(sent, retryable, retry_after, error)``. The
    error names the channel and what went wrong (a status code, an exception's class), never
    the URL."""
    import httpx  # loaded already: the caller holds a client

    try:
        with anyio.fail_after(within):
            response = await client.request(request.method, request.url, json=request.json)
            await response.aread()
    except TimeoutError:
        return False, True, None, f"{name}: no answer within {within:g} s"
    except httpx.HTTPError as exc:
        # Not str(exc): httpx puts the URL (the secret) into some of its messages.
        return False, True, None, f"{name}: {type(exc).__name__}"
    status = response.status_code
    if 200 <= status < 300:
        return True, False, None, None
    retryable = status >= 500 or status in _RETRYABLE
    after = _retry_after(response) if status == 429 else None
    return False, retryable, after, f"{name}: HTTP {status}"


def _retry_after(response: httpx.Response) -> float | None:
    # Discord answers a 429 with {"retry_after": seconds} (and a header); Slack with the
    # Retry-After header alone.
    seconds: object = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        seconds = body.get("retry_after")
    if seconds is None:
        seconds = response.headers.get("retry-after")
    try:
        value = float(seconds)  # type: ignore[arg-type]  # checked by the except below
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class Channel:
    """One endpoint's bounded queue and the task that empties it (``run``)."""

    def __init__(
        self,
        endpoint: Endpoint,
        settings: ChannelSettings,
        *,
        figures: ChannelFigures,
        clock: Clock,
        rng: random.Random,
    ) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self.figures = figures
        self.clock = clock
        self.rng = rng
        self._queue: collections.deque[Outgoing] = collections.deque()
        self._news = anyio.Event()
        self._failures = 0

    @property
    def name(self) -> str:
        return self.endpoint.name

    def wants(self, severity: str) -> bool:
        return _SEVERITY_RANK.get(severity, 1) >= _SEVERITY_RANK.get(self.settings.min_severity, 0)

    def offer(self, message: Outgoing) -> bool:
        """Queue ``message`` without waiting; False (counted, reported dropped) when full."""
        if len(self._queue) >= self.settings.queue_size:
            self.figures.dropped += 1
            message.report(Delivery.DROPPED)
            return False
        self._queue.append(message)
        self.figures.queued = len(self._queue)
        message.report(Delivery.QUEUED)
        self._news.set()
        return True

    @property
    def pending(self) -> int:
        return len(self._queue)

    async def run(self, client: httpx.AsyncClient) -> None:
        """Deliver the queue, oldest first, forever."""
        bucket = self._bucket()
        while True:
            while not self._queue:
                self._news = anyio.Event()
                await self._news.wait()
            await self._next(client, bucket)

    async def flush(self, client: httpx.AsyncClient) -> None:
        """Deliver what is queued, then return (the caller bounds how long it may take)."""
        bucket = self._bucket()
        while self._queue:
            await self._next(client, bucket)

    def _bucket(self) -> TokenBucket:
        return TokenBucket(self.settings.rate, self.settings.burst, self.clock.monotonic())

    async def _next(self, client: httpx.AsyncClient, bucket: TokenBucket) -> None:
        # Taken off the queue once delivered (or given up on): a message whose delivery was
        # cancelled by a stop stays first, for the stop's flush.
        await self._deliver(client, bucket, self._queue[0])
        self._queue.popleft()
        self.figures.queued = len(self._queue)

    async def _deliver(
        self, client: httpx.AsyncClient, bucket: TokenBucket, message: Outgoing
    ) -> None:
        settings, figures, clock = self.settings, self.figures, self.clock
        request = self.endpoint.request(message.text)
        retry = settings.retry
        for number in range(1, retry.attempts + 1):
            wait = bucket.wait(clock.monotonic())
            if wait > 0:
                await clock.sleep(wait)
            bucket.take(clock.monotonic())
            sent, retryable, after, error = await attempt(
                client, request, name=self.name, within=settings.timeout
            )
            if sent:
                figures.sent += 1
                message.report(Delivery.SENT)
                return
            figures.last_error = error
            if not retryable or number == retry.attempts:
                break
            figures.retried += 1
            message.report(Delivery.RETRYING)
            await clock.sleep(after if after is not None else retry.delay(number, self.rng))
        figures.failed += 1
        message.report(Delivery.FAILED)
        self._failures += 1
        if self._failures % 100 == 1:
            log.warning(
                "alerts: %s gave up on a message (%d so far): %s",
                self.name,
                self._failures,
                figures.last_error,
            )


async def beat(
    heartbeat: Heartbeat,
    client: httpx.AsyncClient,
    *,
    figures: ChannelFigures,
    clock: Clock,
    within: float,
) -> None:
    """Ping ``heartbeat`` now and every ``interval`` seconds, forever, each ping given
    ``within`` seconds. A failed ping is not retried: the next one is due anyway."""
    failures = 0
    while True:
        sent, _retryable, _after, error = await attempt(
            client, heartbeat.request(""), name=heartbeat.name, within=within
        )
        if sent:
            figures.sent += 1
        else:
            figures.failed += 1
            figures.last_error = error
            failures += 1
            if failures % 100 == 1:
                log.warning("alerts: heartbeat ping failed (%d so far): %s", failures, error)
        await clock.sleep(heartbeat.interval)
