"""``actorctl service install`` and ``uninstall``: the systemd unit that runs ``actorctl start``
as a service, and its environment file of secrets (``app.ops.unit``, ``docs/deploy.md``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._app import cli
from ._common import ConfigOption, fail, load_config

if TYPE_CHECKING:
    from app.ops.unit import Paths

service_app = typer.Typer(
    name="service",
    help="Run actortrade under systemd: install or remove its unit.",
    no_args_is_help=True,
)
cli.add_typer(service_app, name="service")

UserOption = Annotated[
    bool,
    typer.Option(
        "--user",
        help="A user unit (systemctl --user, in $XDG_CONFIG_HOME/systemd/user), not a system "
        "unit (in /etc/systemd/system, which needs root).",
    ),
]


@service_app.command()
def install(
    user: UserOption = False,
    config: ConfigOption = None,
    run_as: Annotated[
        str | None,
        typer.Option(
            help="The user a system unit runs as (default: the one who ran sudo, else this one)."
        ),
    ] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live", help='Start it with --live: real money (needs mode = "live" in the config).'
        ),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Write the unit again if it exists.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the unit; write nothing.")
    ] = False,
) -> None:
    """Write the systemd unit that runs `actorctl start` as a service, and a template of its
    environment file of secrets (mode 0600, never overwritten); then say what to run next."""
    from app.ops.unit import UnitExists, UnitSettings, render_unit, system_paths, user_paths
    from config.load import DEFAULT_CONFIG

    paths = user_paths() if user else system_paths()
    config_path = (config if config is not None else DEFAULT_CONFIG).resolve()
    if not config_path.is_file():
        fail(f"--config: {config_path} is not a file")
    # A config that does not load would fail every start: refused now, saying why.
    settings = load_config(config_path)
    if live and settings.mode.value != "live":
        fail(f'--live: {config_path} says mode = "{settings.mode.value}", not "live"')
    run_as_user, group = ("", "") if user else _account(run_as)
    text = render_unit(
        UnitSettings(
            user_unit=user,
            actorctl=_actorctl(),
            config=config_path,
            env_file=paths.env_file,
            run_as=run_as_user,
            group=group,
            live=live,
        )
    )
    if dry_run:
        sys.stdout.write(text)
        print(f"actorctl: dry run: {paths.unit} and {paths.env_file} not written", file=sys.stderr)
        return
    if not user and os.geteuid() != 0:
        fail(f"a system unit goes to {paths.unit}, which needs root: sudo, or --user")
    from app.ops.unit import install as write

    try:
        done = write(paths, text, force=force)
    except UnitExists as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write {exc.filename}: {exc.strerror or exc}")
    print(f"{'rewrote' if done.replaced else 'wrote'} {done.unit}")
    if done.env_written:
        print(f"wrote {done.env_file} (mode 0600): put the secrets you use there")
    else:
        print(f"kept {done.env_file} as it was")
    if not user and run_as_user == "root":
        print("note: it runs as root; --run-as names a less privileged user")
    print(_next_steps(paths, run_as_user))


@service_app.command()
def uninstall(
    user: UserOption = False,
    purge: Annotated[
        bool, typer.Option("--purge", help="Remove the environment file of secrets too.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Remove the unit even if it is enabled or running.")
    ] = False,
) -> None:
    """Remove the systemd unit (and, with --purge, its environment file). Refuses while the
    unit is enabled or running, naming the `systemctl disable --now` to run first."""
    from app.ops.unit import system_paths, user_paths
    from app.ops.unit import uninstall as remove

    paths = user_paths() if user else system_paths()
    systemctl = "systemctl --user" if user else "systemctl"
    standing = _standing(user)
    if standing and not force:
        fail(
            f"actortrade is {' and '.join(standing)}: first `{systemctl} disable --now "
            "actortrade` (or --force)"
        )
    try:
        removed = remove(paths, purge=purge)
    except OSError as exc:
        fail(f"cannot remove {exc.filename}: {exc.strerror or exc}")
    for path in removed:
        print(f"removed {path}")
    if paths.unit not in removed:
        print(f"no unit at {paths.unit}")
    if not purge and paths.env_file.exists():
        print(f"kept {paths.env_file} (--purge removes it)")
    if paths.unit in removed:
        print(f"then: {systemctl} daemon-reload")


def _actorctl() -> Path:
    # This installation's actorctl (a virtualenv's, say): the unit runs what was installed.
    beside = Path(sys.executable).with_name("actorctl")
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("actorctl") or sys.argv[0]
    return Path(found).resolve()


def _account(run_as: str | None) -> tuple[str, str]:
    # A system unit's User= and Group=: the one asked for, else who ran sudo, else this one.
    import grp
    import pwd

    name = run_as or os.environ.get("SUDO_USER") or pwd.getpwuid(os.getuid()).pw_name
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        fail(f"--run-as: no user {name!r} on this machine")
    try:
        group = grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        group = str(entry.pw_gid)
    return entry.pw_name, group


def _standing(user: bool) -> list[str]:
    # "enabled", "active": what systemctl says of the unit, if it can say (none: no systemd).
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return []
    standing = []
    scope = ["--user"] if user else []
    for question, states in (
        ("is-enabled", {"enabled", "enabled-runtime", "linked", "linked-runtime"}),
        ("is-active", {"active", "activating", "reloading", "deactivating"}),
    ):
        try:
            answer = subprocess.run(
                [systemctl, *scope, question, "actortrade"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if answer in states:
            standing.append(answer)
    return standing


def _next_steps(paths: Paths, run_as: str) -> str:
    if paths.user_unit:
        return "\n".join(
            [
                "next:",
                "  systemctl --user daemon-reload && systemctl --user enable --now actortrade",
                "  loginctl enable-linger $USER    # to run it at boot, without a login",
                "  systemctl --user status actortrade    # its STATUS line: how it stands",
                "  journalctl --user -u actortrade -f",
                "  actorctl status --socket $XDG_RUNTIME_DIR/actortrade/actorctl.sock",
            ]
        )
    return "\n".join(
        [
            "next:",
            "  systemctl daemon-reload && systemctl enable --now actortrade",
            "  systemctl status actortrade    # its STATUS line: how it stands",
            "  journalctl -u actortrade -f",
            f"  actorctl status --socket /run/actortrade/actorctl.sock    # as {run_as}",
        ]
    )
