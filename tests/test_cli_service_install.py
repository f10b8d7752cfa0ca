"""``actorctl service install --user`` and ``uninstall``, as an operator runs them: the unit and
the env file written under ``$XDG_CONFIG_HOME`` with their modes, never over a unit without
``--force`` nor ever over the secrets, nothing written by ``--dry-run``, and removed again."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))
ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, config_home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACTORCTL, "service", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "XDG_CONFIG_HOME": str(config_home)},
    )


def _files(config_home: Path) -> tuple[Path, Path]:
    return (
        config_home / "systemd" / "user" / "actortrade.service",
        config_home / "actortrade" / "actortrade.env",
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_user_writes_the_unit_and_env_file_and_says_what_next(tmp_path: Path) -> None:
    """The unit (0644) runs this installation's actorctl on the given config; the env file
    (0600) holds commented names only; the output names the systemctl, loginctl and
    journalctl commands to run next."""
    unit, env_file = _files(tmp_path)
    config = ROOT / "config" / "actortrade.toml"
    result = run("install", "--user", "--config", str(config), config_home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _mode(unit) == 0o644
    assert _mode(env_file) == 0o600
    text = unit.read_text()
    assert f"ExecStart={ACTORCTL} start --config {config} --data-dir " in text
    assert f"EnvironmentFile=-{env_file}\n" in text
    assert "WantedBy=default.target\n" in text
    assert all(line.startswith("#") for line in env_file.read_text().splitlines() if line)
    out = result.stdout
    assert f"wrote {unit}\n" in out
    assert "systemctl --user daemon-reload && systemctl --user enable --now actortrade" in out
    assert "loginctl enable-linger $USER" in out
    assert "journalctl --user -u actortrade -f" in out


def test_install_refuses_to_overwrite_the_unit_and_never_overwrites_the_env_file(
    tmp_path: Path,
) -> None:
    """A second install exits 2 naming --force and leaves both files; --force writes the unit
    again and keeps the operator's secrets as they were."""
    unit, env_file = _files(tmp_path)
    assert run("install", "--user", config_home=tmp_path).returncode == 0
    unit.write_text("# edited\n")
    env_file.write_text("ALPACA_KEY=mine\n")

    again = run("install", "--user", config_home=tmp_path)
    assert again.returncode == 2
    assert "--force" in again.stderr
    assert unit.read_text() == "# edited\n"

    forced = run("install", "--user", "--force", config_home=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "Type=notify\n" in unit.read_text()
    assert env_file.read_text() == "ALPACA_KEY=mine\n"
    assert _mode(env_file) == 0o600
    assert f"kept {env_file}" in forced.stdout


def test_dry_run_prints_the_unit_and_writes_nothing(tmp_path: Path) -> None:
    """The unit on stdout; no file, no directory."""
    result = run("install", "--user", "--dry-run", config_home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# actortrade as a user service")
    assert "Type=notify\n" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_missing_config_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A unit naming a config that is not there would fail at every start."""
    result = run("install", "--user", "--config", str(tmp_path / "nope.toml"), config_home=tmp_path)
    assert result.returncode == 2
    assert "nope.toml" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_uninstall_removes_the_unit_and_purge_the_env_file(tmp_path: Path) -> None:
    """Without --purge the secrets stay (and it says so); with it they go too."""
    unit, env_file = _files(tmp_path)
    assert run("install", "--user", config_home=tmp_path).returncode == 0
    result = run("uninstall", "--user", config_home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not unit.exists()
    assert env_file.exists()
    assert f"kept {env_file}" in result.stdout
    assert "systemctl --user daemon-reload" in result.stdout

    purged = run("uninstall", "--user", "--purge", config_home=tmp_path)
    assert purged.returncode == 0, purged.stderr
    assert not env_file.exists()
    assert f"removed {env_file}" in purged.stdout


def test_live_is_refused_for_a_config_not_in_live_mode(tmp_path: Path) -> None:
    """A unit started with --live on a paper config would fail at every start."""
    result = run("install", "--user", "--live", config_home=tmp_path)
    assert result.returncode == 2
    assert 'mode = "paper"' in result.stderr
    assert list(tmp_path.iterdir()) == []
