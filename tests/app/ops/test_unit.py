"""The systemd unit and its environment file: rendered for a system and a user manager, checked
by ``systemd-analyze verify``, written with the right modes and never over a secret."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from app.ops.unit import (
    Paths,
    UnitExists,
    UnitSettings,
    install,
    render_env_template,
    render_unit,
    system_paths,
    uninstall,
    user_paths,
)
from config.secrets import ENV_NAMES

ROOT = Path(__file__).resolve().parents[3]
ACTORCTL = Path(sys.executable).with_name("actorctl")
ME = pwd.getpwuid(os.getuid()).pw_name
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)


def _settings(*, user_unit: bool, config: Path = ROOT / "config/actortrade.toml") -> UnitSettings:
    return UnitSettings(
        user_unit=user_unit,
        actorctl=ACTORCTL,
        config=config,
        env_file=Path("/etc/actortrade/actortrade.env"),
        run_as="" if user_unit else ME,
    )


def _settings_of(text: str) -> dict[str, list[str]]:
    # Each setting's values, in order, of the unit's text (comments left out).
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def _verify(unit: Path, *, user: bool, runtime: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    # A user manager's checks look for its runtime directory: a private one of the test's.
    runtime.mkdir(mode=0o700, exist_ok=True)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, *(["--user"] if user else []), "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
    )
    assert result.returncode == 0, result.stderr
    # verify exits 0 on a setting it ignores (a bad value, an option it does not know): it
    # only says so, naming the file.
    complaints = [line for line in result.stderr.splitlines() if unit.name in line]
    assert complaints == []


def test_the_system_unit_runs_actorctl_start_as_a_hardened_notify_service() -> None:
    """Type=notify with a watchdog, restarts on failure, the state and runtime directories for
    the data and the control socket, the env file, the user, and the file system's sandbox."""
    settings = _settings_of(render_unit(_settings(user_unit=False)))
    (exec_start,) = settings["ExecStart"]
    assert exec_start == (
        f"{ACTORCTL} start --config {ROOT / 'config/actortrade.toml'} --data-dir "
        "${STATE_DIRECTORY} --socket ${RUNTIME_DIRECTORY}/actorctl.sock --log-format json"
    )
    expected = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "WatchdogSec": ["30"],
        "TimeoutStartSec": ["180"],
        "TimeoutStopSec": ["30"],
        "Restart": ["on-failure"],
        "RestartSec": ["5"],
        "KillSignal": ["SIGTERM"],
        "StateDirectory": ["actortrade"],
        "RuntimeDirectory": ["actortrade"],
        "EnvironmentFile": ["-/etc/actortrade/actortrade.env"],
        "User": [ME],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["read-only"],
        "PrivateTmp": ["yes"],
        "ProtectKernelTunables": ["yes"],
        "ProtectControlGroups": ["yes"],
        "RestrictSUIDSGID": ["yes"],
        "LockPersonality": ["yes"],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "UMask": ["0077"],
        "WantedBy": ["multi-user.target"],
    }
    assert {key: settings.get(key) for key in expected} == expected
    assert len(settings["Group"]) == 1


def test_the_user_unit_keeps_what_a_user_manager_can_apply() -> None:
    """No User=, no file system sandbox (it needs a user namespace: commented, to enable
    where allowed), the seccomp-based hardening kept, wanted by default.target."""
    text = render_unit(_settings(user_unit=True))
    settings = _settings_of(text)
    for key in ("User", "Group", "ProtectSystem", "ProtectHome", "ProtectControlGroups"):
        assert key not in settings
    assert "#ProtectSystem=strict" in text.splitlines()
    assert settings["WantedBy"] == ["default.target"]
    # Its state directory is under $XDG_CONFIG_HOME, beside the env file: a directory apart.
    assert settings["StateDirectory"] == ["actortrade/data"]
    assert settings["Type"] == ["notify"]
    assert settings["WatchdogSec"] == ["30"]
    for key in ("NoNewPrivileges", "RestrictSUIDSGID", "LockPersonality"):
        assert settings[key] == ["yes"]
    assert "#system:" not in text
    assert "#user:" not in text
    # Every @TOKEN@ of the template replaced (the one @ left is a system call set's).
    assert "@" not in text.replace("@system-service", "")


def test_live_starts_it_with_live() -> None:
    """Real money is asked for in the unit as on the command line: ``--live``."""
    settings = attrs.evolve(_settings(user_unit=False), live=True)
    (exec_start,) = _settings_of(render_unit(settings))["ExecStart"]
    assert exec_start.endswith(" --log-format json --live")


def test_a_system_unit_needs_its_user_and_absolute_paths() -> None:
    """Refused, naming what is missing, rather than a unit systemd would refuse."""
    with pytest.raises(ValueError, match="run_as"):
        render_unit(UnitSettings(user_unit=False, actorctl=ACTORCTL, config=ROOT, env_file=ROOT))
    with pytest.raises(ValueError, match="absolute"):
        render_unit(
            UnitSettings(user_unit=True, actorctl=ACTORCTL, config=Path("x.toml"), env_file=ROOT)
        )


@needs_systemd_analyze
def test_systemd_analyze_verifies_the_system_unit(tmp_path: Path) -> None:
    """``systemd-analyze verify``: no error and no setting ignored."""
    unit = tmp_path / "actortrade.service"
    unit.write_text(render_unit(_settings(user_unit=False)))
    _verify(unit, user=False, runtime=tmp_path / "run")


@needs_systemd_analyze
def test_systemd_analyze_verifies_the_user_unit(tmp_path: Path) -> None:
    """``systemd-analyze --user verify``: no error and no setting ignored."""
    unit = tmp_path / "actortrade.service"
    unit.write_text(render_unit(_settings(user_unit=True)))
    _verify(unit, user=True, runtime=tmp_path / "run")


@needs_systemd_analyze
def test_a_config_path_with_a_space_and_specifier_characters_stays_one_word(
    tmp_path: Path,
) -> None:
    """Quoted in ExecStart, ``%`` and ``$`` escaped: systemd reads the path back as it is."""
    config = tmp_path / "my configs" / "100% $HOME.toml"
    unit = tmp_path / "actortrade.service"
    unit.write_text(render_unit(_settings(user_unit=True, config=config)))
    (exec_start,) = _settings_of(unit.read_text())["ExecStart"]
    assert f'"{tmp_path}/my configs/100%% $$HOME.toml"' in exec_start
    _verify(unit, user=True, runtime=tmp_path / "run")


def test_the_env_template_names_every_secret_and_holds_no_value() -> None:
    """Every variable of config.secrets, commented, with nothing after its ``=``."""
    lines = render_env_template().splitlines()
    assert all(not line or line.startswith("#") for line in lines)
    for variable in ENV_NAMES.values():
        assert f"#{variable}=" in lines


def test_the_user_paths_follow_xdg_config_home(tmp_path: Path) -> None:
    """``$XDG_CONFIG_HOME/systemd/user`` and ``$XDG_CONFIG_HOME/actortrade``; /etc for a
    system unit."""
    paths = user_paths({"XDG_CONFIG_HOME": str(tmp_path)})
    assert paths.unit == tmp_path / "systemd/user/actortrade.service"
    assert paths.env_file == tmp_path / "actortrade/actortrade.env"
    assert system_paths().unit == Path("/etc/systemd/system/actortrade.service")
    assert system_paths().env_file == Path("/etc/actortrade/actortrade.env")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_writes_the_unit_and_a_private_env_file_and_never_a_secret_over(
    tmp_path: Path,
) -> None:
    """The unit 0644 and the env file 0600 (its directory 0700); a second install is refused
    without ``force``, and with it the unit is written again but the env file kept."""
    paths = user_paths({"XDG_CONFIG_HOME": str(tmp_path)})
    done = install(paths, "[Unit]\n")
    assert (done.replaced, done.env_written) == (False, True)
    assert paths.unit.read_text() == "[Unit]\n"
    assert _mode(paths.unit) == 0o644
    assert _mode(paths.env_file) == 0o600
    assert _mode(paths.env_file.parent) == 0o700
    assert paths.env_file.read_text() == render_env_template()

    paths.env_file.write_text("ALPACA_KEY=mine\n")
    with pytest.raises(UnitExists, match="--force"):
        install(paths, "[Unit]\nDescription=again\n")
    assert paths.unit.read_text() == "[Unit]\n"
    again = install(paths, "[Unit]\nDescription=again\n", force=True)
    assert (again.replaced, again.env_written) == (True, False)
    assert paths.unit.read_text() == "[Unit]\nDescription=again\n"
    assert paths.env_file.read_text() == "ALPACA_KEY=mine\n"
    assert sorted(p.name for p in paths.unit.parent.iterdir()) == ["actortrade.service"]


def test_uninstall_removes_the_unit_and_the_env_file_only_when_purged(tmp_path: Path) -> None:
    """The secrets stay unless asked for; a second uninstall finds nothing to remove."""
    paths = Paths(unit=tmp_path / "u.service", env_file=tmp_path / "a.env", user_unit=True)
    install(paths, "[Unit]\n")
    assert uninstall(paths) == [paths.unit]
    assert paths.env_file.exists()
    install(paths, "[Unit]\n")
    assert uninstall(paths, purge=True) == [paths.unit, paths.env_file]
    assert uninstall(paths, purge=True) == []
