"""Where the alerts actor delivers (``actors.alerts.AlertSettings``): the channels enabled in
``[alerts]`` whose secrets are set in the environment (or ``.env``)."""

from __future__ import annotations

from typing import Any

from actors.alerts import AlertSettings, ChannelSpec
from actors.alerts_http import (
    ChannelSettings,
    DiscordWebhook,
    Heartbeat,
    Retry,
    SlackWebhook,
    TelegramBot,
)
from config.errors import ConfigError
from config.schema import HTTP_URL, Config, is_url
from config.secrets import ENV_NAMES, load_secrets

from ._service import CompositionError


def alerting(settings: Config) -> AlertSettings:
    """The alerts actor's channels and heartbeat. A variable set to something that is not a
    URL, or a Telegram token without its chat (or the other way round), is a
    ``CompositionError`` naming the variable, never showing its value."""
    a = settings.alerts
    try:
        keys = load_secrets()
    except ConfigError as exc:
        raise CompositionError(str(exc)) from exc
    for field in ("slack_webhook_url", "discord_webhook_url", "heartbeat_url"):
        url = getattr(keys, field)
        if url is not None and not is_url(url, ("http", "https")):
            raise CompositionError(
                f"${ENV_NAMES[field]}: must be {HTTP_URL} (its value is not shown)"
            )
    retry = Retry(attempts=a.attempts, initial=a.backoff_initial, maximum=a.backoff_maximum)

    def limits(channel: Any) -> ChannelSettings:
        return ChannelSettings(
            rate=channel.rate,
            burst=channel.burst,
            queue_size=channel.queue_size,
            timeout=a.timeout,
            retry=retry,
            min_severity=channel.min_severity.value,
        )

    channels = []
    if a.slack.enabled and keys.slack_webhook_url:
        channels.append(
            ChannelSpec(endpoint=SlackWebhook(url=keys.slack_webhook_url), settings=limits(a.slack))
        )
    if a.discord.enabled and keys.discord_webhook_url:
        channels.append(
            ChannelSpec(
                endpoint=DiscordWebhook(url=keys.discord_webhook_url), settings=limits(a.discord)
            )
        )
    if a.telegram.enabled and (keys.telegram_bot_token or keys.telegram_chat_id):
        if not (keys.telegram_bot_token and keys.telegram_chat_id):
            raise CompositionError(
                "Telegram alerts need both $ACTORTRADE_TELEGRAM_BOT_TOKEN and "
                "$ACTORTRADE_TELEGRAM_CHAT_ID (or enabled = false in [alerts.telegram])"
            )
        bot = TelegramBot(
            token=keys.telegram_bot_token,
            chat_id=keys.telegram_chat_id,
            api_url=a.telegram.api_url or "https://api.telegram.org",
        )
        channels.append(ChannelSpec(endpoint=bot, settings=limits(a.telegram)))
    heartbeat = None
    if a.heartbeat.enabled and keys.heartbeat_url:
        heartbeat = Heartbeat(
            url=keys.heartbeat_url, interval=a.heartbeat.interval, method=a.heartbeat.method.value
        )
    return AlertSettings(
        channels=tuple(channels),
        heartbeat=heartbeat,
        heartbeat_timeout=a.timeout,
        dedup_window=a.dedup_window,
        mailbox=a.queue_size,
        history=a.history,
    )


def describe(settings: AlertSettings) -> str:
    """Where alerts go, for the start banner."""
    names = [c.endpoint.name for c in settings.channels]
    if settings.heartbeat is not None:
        names.append(f"a heartbeat every {settings.heartbeat.interval:g} s")
    return f"alerts: {', '.join(names) if names else 'kept for actorctl status only'}"
