"""``[http]``: on and on loopback by default, off with ``enabled = false``, and a listen
address that is not HOST:PORT refused naming the file and ``http.listen``."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import ConfigFileError, InvalidSetting
from config.load import load_config, render_config
from config.options import OptionError, override
from config.schema import Config, HttpConfig, split_listen


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "bot.toml"
    path.write_text(text)
    return load_config(path)


def test_the_endpoints_are_on_and_on_loopback_by_default(tmp_path: Path) -> None:
    """No [http] table: on, 127.0.0.1:9464 (the OTel Prometheus exporter's port)."""
    config = _load(tmp_path, "")
    assert config.http == HttpConfig(enabled=True, listen="127.0.0.1:9464")
    assert split_listen(config.http.listen) == ("127.0.0.1", 9464)


def test_the_endpoints_can_be_turned_off_or_moved(tmp_path: Path) -> None:
    off = _load(tmp_path, "[http]\nenabled = false\n")
    assert off.http.enabled is False
    moved = _load(tmp_path, '[http]\nlisten = "[::1]:0"\n')
    assert split_listen(moved.http.listen) == ("::1", 0)
    assert _load(tmp_path, render_config(moved)) == moved


@pytest.mark.parametrize(
    "listen",
    ["127.0.0.1", ":9464", "127.0.0.1:65536", "127.0.0.1:-1", "::1:9464", "[nope]:1", "a b:1"],
)
def test_a_listen_value_that_is_not_host_port_names_the_file_and_key(
    tmp_path: Path, listen: str
) -> None:
    path = tmp_path / "bot.toml"
    path.write_text(f'[http]\nlisten = "{listen}"\n')
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{path}: must be HOST:PORT (127.0.0.1:9464; ")
    assert line.endswith(f"got '{listen}' @ http.listen")


def test_the_command_line_option_is_named_in_its_error() -> None:
    """``actorctl start --http`` has the key's range and says ``--http``."""
    assert override(HttpConfig(), {"listen": ("--http", "0.0.0.0:80")}).listen == "0.0.0.0:80"
    with pytest.raises(OptionError, match=r"^--http: must be HOST:PORT"):
        override(HttpConfig(), {"listen": ("--http", "localhost")})


@given(st.text(max_size=40))
def test_any_text_is_a_host_and_port_or_an_invalid_setting(listen: str) -> None:
    """Never another exception; what passes splits into a host and a port 0-65535."""
    try:
        host, port = split_listen(listen)
    except ValueError:
        with pytest.raises(InvalidSetting, match=r"^listen: must be HOST:PORT"):
            HttpConfig(listen=listen)
        return
    assert HttpConfig(listen=listen).listen == listen
    assert host
    assert 0 <= port <= 65535
