"""The systemd unit that runs ``actorctl start`` as a service, and the environment file that
holds its secrets: rendering them (``render_unit``, ``render_env_template``), where they go
(``user_paths``, ``system_paths``), writing and removing them (``install``, ``uninstall``).

One template, ``systemd/actortrade.service.in``, renders both variants: a system unit (in
``/etc/systemd/system``, run as a chosen user, with the file system's sandbox) and a user unit
(in ``$XDG_CONFIG_HOME/systemd/user``, for ``systemctl --user``), which keeps the hardening a
user manager can apply without privileges. The unit never holds a secret: the environment file
does (``config.secrets`` names them), mode 0600, and is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import attrs

from config.secrets import ENV_NAMES

__all__ = [
    "UNIT_NAME",
    "Installed",
    "Paths",
    "UnitExists",
    "UnitSettings",
    "install",
    "render_env_template",
    "render_unit",
    "system_paths",
    "uninstall",
    "user_paths",
]

UNIT_NAME = "actortrade.service"
ENV_FILE_NAME = "actortrade.env"


class UnitExists(FileExistsError):
    """Raised by ``install`` when the unit file is there already and ``force`` is not given."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path} exists: --force to write it again")
        self.path = path


@attrs.frozen(kw_only=True)
class UnitSettings:
    """What a unit is rendered from."""

    user_unit: bool
    """A user unit (``systemctl --user``), else a system unit."""
    actorctl: Path
    """The ``actorctl`` executable, absolute (a virtualenv's, say)."""
    config: Path
    """The TOML config, absolute."""
    env_file: Path
    """The environment file of secrets, absolute."""
    run_as: str = ""
    """A system unit's ``User=``."""
    group: str = ""
    """A system unit's ``Group=``."""
    live: bool = False
    """``actorctl start --live``: real money (the config's ``mode = "live"`` too)."""


@attrs.frozen(kw_only=True)
class Paths:
    """Where a variant's files go."""

    unit: Path
    env_file: Path
    user_unit: bool


def user_paths(env: Mapping[str, str] | None = None) -> Paths:
    """The user unit's files, under ``$XDG_CONFIG_HOME`` (``~/.config`` when unset)."""
    env = os.environ if env is None else env
    config_home = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return Paths(
        unit=config_home / "systemd" / "user" / UNIT_NAME,
        env_file=config_home / "actortrade" / ENV_FILE_NAME,
        user_unit=True,
    )


def system_paths(root: Path = Path("/")) -> Paths:
    """The system unit's files, under ``/etc`` (of ``root``)."""
    return Paths(
        unit=root / "etc" / "systemd" / "system" / UNIT_NAME,
        env_file=root / "etc" / "actortrade" / ENV_FILE_NAME,
        user_unit=False,
    )


def render_unit(settings: UnitSettings) -> str:
    """The unit's text."""
    if not settings.user_unit and not settings.run_as:
        raise ValueError("a system unit needs the user it runs as (run_as)")
    for path in (settings.actorctl, settings.config, settings.env_file):
        if not path.is_absolute():
            raise ValueError(f"{path}: a unit names absolute paths only")
    # The service's own directories, made by systemd for it (StateDirectory=, RuntimeDirectory=).
    exec_start = " ".join(
        [
            _quote(str(settings.actorctl)),
            "start",
            "--config",
            _quote(str(settings.config)),
            "--data-dir",
            "${STATE_DIRECTORY}",
            "--socket",
            "${RUNTIME_DIRECTORY}/actorctl.sock",
            "--log-format",
            "json",
            *(["--live"] if settings.live else []),
        ]
    )
    values = {
        "@VARIANT@": "user" if settings.user_unit else "system",
        "@FLAGS@": " --user" if settings.user_unit else "",
        "@EXEC_START@": exec_start,
        "@ENV_FILE@": _setting(str(settings.env_file)),
        "@USER@": _setting(settings.run_as),
        "@GROUP@": _setting(settings.group or settings.run_as),
    }
    keep, drop = ("#user: ", "#system: ") if settings.user_unit else ("#system: ", "#user: ")
    lines = []
    template = resources.files("app.ops").joinpath("systemd/actortrade.service.in")
    for line in template.read_text(encoding="utf-8").splitlines():
        if line.startswith((drop, "## ")):
            continue
        line = line.removeprefix(keep)
        for token, value in values.items():
            line = line.replace(token, value)
        lines.append(line)
    return "\n".join(lines) + "\n"


# Each secret's variable (config.secrets.ENV_NAMES), under the heading of what it is for.
_SECRET_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ('Alpaca\'s market data (a symbol with feed = "alpaca")', ("alpaca_key", "alpaca_secret")),
    ("IB: the account to trade (the one TWS / IB Gateway reports when unset)", ("ib_account",)),
    (
        "The alert channels of [alerts]: a webhook's URL is its credential",
        (
            "slack_webhook_url",
            "discord_webhook_url",
            "telegram_bot_token",
            "telegram_chat_id",
            "heartbeat_url",
        ),
    ),
)


def render_env_template() -> str:
    """The environment file's first text: every secret's variable, commented, no value."""
    grouped = {field for _, fields in _SECRET_GROUPS for field in fields}
    others = tuple(field for field in ENV_NAMES if field not in grouped)
    groups = (*_SECRET_GROUPS, *((("Other secrets", others),) if others else ()))
    lines = [
        "# actortrade's secrets: systemd reads this file into the service's environment",
        "# (EnvironmentFile= in actortrade.service). Keep it mode 0600. One KEY=value a line,",
        "# no quotes and no `export`; uncomment the ones you use. Never put them in the config.",
    ]
    for heading, fields in groups:
        lines.extend(["", f"# {heading}"])
        lines.extend(f"#{ENV_NAMES[field]}=" for field in fields)
    return "\n".join(lines) + "\n"


@attrs.frozen(kw_only=True)
class Installed:
    """What ``install`` did."""

    unit: Path
    replaced: bool
    """The unit was there and has been written again (``force``)."""
    env_file: Path
    env_written: bool
    """False: the environment file was there and has been kept as it was."""


def install(paths: Paths, unit_text: str, *, force: bool = False) -> Installed:
    """Write the unit (mode 0644) and, unless it exists, the environment file's template (mode
    0600, in a directory of mode 0700 when made here). Raises ``UnitExists`` if the unit is there
    and not ``force``; ``OSError`` if a file cannot be written."""
    existed = paths.unit.exists()
    if existed and not force:
        raise UnitExists(paths.unit)
    paths.env_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    env_written = _create_private(paths.env_file, render_env_template())
    paths.unit.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    _replace(paths.unit, unit_text, mode=0o644)
    return Installed(
        unit=paths.unit, replaced=existed, env_file=paths.env_file, env_written=env_written
    )


def uninstall(paths: Paths, *, purge: bool = False) -> list[Path]:
    """Remove the unit and, with ``purge``, the environment file; return those removed."""
    removed = []
    for path in (paths.unit, *((paths.env_file,) if purge else ())):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def _create_private(path: Path, text: str) -> bool:
    # O_EXCL: an existing file (with the operator's secrets in it) is never touched.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        os.fchmod(file.fileno(), 0o600)  # whatever the umask
        file.write(text)
    return True


def _replace(path: Path, text: str, *, mode: int) -> None:
    # Whole or not at all: a unit half written would be read by a daemon-reload.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), mode)
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _setting(value: str) -> str:
    # A setting's value: "%" starts a specifier (systemd.unit(5)), which a path must not.
    return value.replace("%", "%%")


def _quote(word: str) -> str:
    # One word of ExecStart= (systemd.service(5), "Command lines"): quoted when it must be,
    # "%" and "$" escaped so that a path is never expanded as a specifier or a variable.
    word = _setting(word).replace("$", "$$")
    if word and not any(c in word for c in " \t\n\"'\\;"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
