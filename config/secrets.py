"""Secrets: broker and data-feed credentials and the alert channels' webhook URLs and bot
token, from the environment or a ``.env`` file only.

They are never in the TOML config (a key such as ``alpaca_key`` there is an unknown-key error),
and never in a repr, a log line, a trace or a config dump (SPEC 11).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs
from dotenv import dotenv_values

from .errors import ConfigError

__all__ = ["ENV_NAMES", "Secrets", "load_secrets"]

# Field name -> environment variable.
ENV_NAMES: Mapping[str, str] = {
    "alpaca_key": "ALPACA_KEY",
    "alpaca_secret": "ALPACA_SECRET",
    "ib_account": "IB_ACCOUNT",
    "slack_webhook_url": "ACTORTRADE_SLACK_WEBHOOK_URL",
    "discord_webhook_url": "ACTORTRADE_DISCORD_WEBHOOK_URL",
    "telegram_bot_token": "ACTORTRADE_TELEGRAM_BOT_TOKEN",
    "telegram_chat_id": "ACTORTRADE_TELEGRAM_CHAT_ID",
    "heartbeat_url": "ACTORTRADE_HEARTBEAT_URL",
}


@attrs.frozen(kw_only=True)
class Secrets:
    """Credentials; ``None`` when not set. The repr shows only which ones are set."""

    alpaca_key: str | None = attrs.field(default=None, repr=False)
    alpaca_secret: str | None = attrs.field(default=None, repr=False)
    ib_account: str | None = attrs.field(default=None, repr=False)
    # The alert channels' (config.schema.ALERT_SECRETS): a webhook's URL is its credential.
    slack_webhook_url: str | None = attrs.field(default=None, repr=False)
    discord_webhook_url: str | None = attrs.field(default=None, repr=False)
    telegram_bot_token: str | None = attrs.field(default=None, repr=False)
    telegram_chat_id: str | None = attrs.field(default=None, repr=False)
    heartbeat_url: str | None = attrs.field(default=None, repr=False)

    def redacted(self) -> dict[str, bool]:
        """Which secrets are set, by field name: safe to print."""
        return {name: getattr(self, name) is not None for name in ENV_NAMES}

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'<set>' if is_set else '<unset>'}" for name, is_set in self.redacted().items()
        )
        return f"Secrets({shown})"


def load_secrets(env: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> Secrets:
    """Read the secrets from ``env`` (default ``os.environ``), falling back to the ``.env`` file
    at ``dotenv_path`` (default ``./.env``; a missing file is no fallback); the environment wins.

    The ``.env`` file is only read: ``os.environ`` is never modified. An empty value counts as
    not set. An unreadable ``.env`` file raises ``ConfigError`` naming it.
    """
    environment = os.environ if env is None else env
    path = Path(".env") if dotenv_path is None else dotenv_path
    try:
        # A missing file reads as empty. No ${VAR} interpolation: a secret is taken literally.
        file_values = dotenv_values(path, interpolate=False)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the secrets file: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: the secrets file is not UTF-8 text") from exc
    return Secrets(
        **{
            field: environment.get(variable) or file_values.get(variable) or None
            for field, variable in ENV_NAMES.items()
        }
    )
