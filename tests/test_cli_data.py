"""``actorctl data fetch`` as a user runs it (subprocesses), against our TWS API server and our
Alpaca server running in this process: the bars land in the cache's ``fetched/`` folder, equal
to the venue's, listed in the manifest, with a progress line per request; bad input exits 2,
names what is wrong and writes nothing."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from actors.domain.sessions import NEW_YORK
from app.data.fetch import read_fetched
from sim.alpaca.server import AlpacaServer
from sim.tws.server import TwsServer
from tests.app.data.test_fetch import DAYS, KEY, SECRET, alpaca, expected, regular, rows, tws
from tests.test_cli import ACTORCTL, _env

FROM, TO = "2026-11-23", "2026-11-24"
TWO_DAYS = [b for b in DAYS if str(b.start.astimezone(NEW_YORK).date()) <= TO]


def fetch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACTORCTL, "data", "fetch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**_env(), **(env or {})},
    )


@contextmanager
def running_tws() -> Iterator[TwsServer]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(tws(DAYS)) as server,
    ):
        yield server


@contextmanager
def running_alpaca(page_size: int) -> Iterator[AlpacaServer]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(alpaca(DAYS, page_size)) as server,
    ):
        yield server


def test_fetch_from_ib_writes_the_venues_bars_into_the_cache(tmp_path: Path) -> None:
    """Two days of minute bars for TQQQ: one request a day, each a progress line; the Parquet
    file holds the venue's regular-hours bars exactly and the manifest lists it."""
    with running_tws() as server:
        result = fetch(
            "--source", "ib", "--symbol", "tqqq", "--interval", "1min",
            "--from", FROM, "--to", TO, "--cache", str(tmp_path),
            "--port", str(server.port), "--client-id", "9",
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    path = tmp_path / "fetched" / f"ib-TQQQ-1min-{FROM}-{TO}.parquet"
    assert f"TQQQ: 780 bars -> {path}" in result.stderr
    assert result.stderr.count("request ") == 2
    assert rows(read_fetched(path)) == expected(regular(TWO_DAYS))
    manifest: list[dict[str, Any]] = json.loads((path.parent / "manifest.json").read_text())[
        "fetched"
    ]
    assert [(e["file"], e["bars"]) for e in manifest] == [(path.name, 780)]


def test_fetch_from_alpaca_follows_every_page_with_the_keys_of_the_environment(
    tmp_path: Path,
) -> None:
    """Alpaca's bars of two days, served 700 a page: every page followed, every bar (extended
    hours included) in the file; the keys come from ALPACA_KEY and ALPACA_SECRET."""
    with running_alpaca(page_size=700) as server:
        result = fetch(
            "--source", "alpaca", "--symbol", "TQQQ", "--interval", "1min",
            "--from", FROM, "--to", TO, "--cache", str(tmp_path),
            "--alpaca-url", server.rest_url,
            env={"ALPACA_KEY": KEY, "ALPACA_SECRET": SECRET},
        )  # fmt: skip
        pages = len(server.events_of("rest"))
    assert result.returncode == 0, result.stderr
    assert pages == -(-len(TWO_DAYS) // 700) > 1
    table = read_fetched(tmp_path / "fetched" / f"alpaca-TQQQ-1min-{FROM}-{TO}.parquet")
    assert rows(table) == expected(TWO_DAYS)
    assert KEY not in result.stderr + result.stdout
    assert SECRET not in result.stderr + result.stdout


WHOLE = ["--symbol", "TQQQ", "--interval", "1d", "--from", FROM, "--to", TO]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--source", "yahoo", *WHOLE], "--source: 'yahoo' is not one of ib, alpaca"),
        (["--source", "ib", *WHOLE[:-1], "2026-13-01"], "--to: '2026-13-01' is not a date"),
        (["--source", "ib", *WHOLE[:3], "5min", *WHOLE[4:]], "--interval: '5min' is not one"),
        (
            ["--source", "ib", *WHOLE[:-1], "2026-11-20"],
            "--from 2026-11-23 is after --to 2026-11-20",
        ),
        (["--source", "ib", *WHOLE, "--port", "7496"], "--port 7496 is IB's TWS live port"),
        (["--source", "ib", *WHOLE, "--port", "4001"], "IB Gateway live port"),
        (["--source", "ib", *WHOLE, "--port", "1"], "cannot reach TWS at 127.0.0.1:1"),
        (["--source", "alpaca", *WHOLE], "set ALPACA_KEY and ALPACA_SECRET"),
        (["--source", "ib", *WHOLE, "--symbol", "A B"], "--symbol: 'A B' is not a symbol"),
    ],
)
def test_bad_input_exits_2_naming_it_and_writes_nothing(
    tmp_path: Path, args: list[str], says: str
) -> None:
    """Each refusal names the option or the host, exits 2, and the cache stays empty."""
    env = {k: "" for k in ("ALPACA_KEY", "ALPACA_SECRET")}
    result = fetch(*args, "--cache", str(tmp_path / "cache"), env=env)
    assert result.returncode == 2, result.stderr
    assert says in result.stderr
    assert not (tmp_path / "cache").exists()
    assert "Traceback" not in result.stderr


def test_alpaca_keys_the_server_refuses_exit_2_and_write_nothing(tmp_path: Path) -> None:
    """Keys the server refuses: HTTP 401, exit 2, nothing written."""
    with running_alpaca(page_size=10_000) as server:
        result = fetch(
            "--source", "alpaca", *WHOLE, "--cache", str(tmp_path),
            "--alpaca-url", server.rest_url,
            env={"ALPACA_KEY": KEY, "ALPACA_SECRET": "wrong"},
        )  # fmt: skip
    assert result.returncode == 2
    assert "HTTP 401" in result.stderr
    assert "nothing written" in result.stderr
    assert list(tmp_path.iterdir()) == []
