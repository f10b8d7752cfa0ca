"""A hostile operator's inputs to `actorctl start` (and `check`), through the real CLI: each is
refused with exit 2 and one line naming the file and line, the option or the key path, with no
traceback and nothing created (no data directory, no ledger, no control socket)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))
HEADER = "Datetime,Symbol,Open,High,Low,Close,Volume\n"
BAR = "2025-05-01 14:00:00,TQQQ,50.00,50.10,49.90,50.05,1000\n"
LOTS = Path(__file__).resolve().parents[1] / "config" / "lots" / "tqqq.csv"


@attrs.frozen
class Refused:
    stderr: str
    stdout: str

    @property
    def line(self) -> str:
        (line,) = self.stderr.splitlines()
        return line


def refused(
    tmp_path: Path, *args: str, data: bool = True, env: dict[str, str] | None = None
) -> Refused:
    """Run actorctl, check that it refused cleanly, and return what it said."""
    data_dir = tmp_path / "data"
    socket = tmp_path / "ctl.sock"
    result = subprocess.run(
        [ACTORCTL, *args, *(["--data-dir", str(data_dir)] if data else [])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ACTORTRADE_SOCKET": str(socket), **(env or {})},
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not data_dir.exists()
    assert not socket.exists()
    return Refused(stderr=result.stderr, stdout=result.stdout)


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def big_field(tmp_path: Path, name: str, head: bytes, size: int = 50 << 20) -> Path:
    """A file whose last field is ``size`` bytes of x after an opening quote (built fast)."""
    path = tmp_path / name
    with path.open("wb") as file:
        file.write(head + b'"')
        file.write(b"x" * size)
        file.write(b'"\n')
    return path


def fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


# The config


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("[ledger]\nmap_size_mib = 99999999999999\n", "@ ledger.map_size_mib"),
        ("[broker]\ntimeout = 1e-300\n", "@ broker.timeout"),
        ("[reconcile]\ninterval = 1e-300\n", "@ reconcile.interval"),
        ("[runtime]\nstop_timeout = 1e300\n", "@ runtime.stop_timeout"),
        ("[venue]\nspeed = nan\n", "@ venue.speed"),
        ("[alpaca]\nbacklog = 0\n", "@ alpaca.backlog"),
        ("[telemetry]\nmetrics_interval = 1e-300\n", "@ telemetry.metrics_interval"),
        ('[telemetry]\nendpoint = "ftp://x"\n', "@ telemetry.endpoint"),
        ('[alpaca]\nstream_url = "ws://"\n', "@ alpaca.stream_url"),
        (
            f'[[symbols]]\nsymbol = "TQQQ"\nlots = "{LOTS}"\n[symbols.grid]\nstep = 1e-9\n',
            "@ symbols[0].grid.step",
        ),
        ("[venue]\nseed = " + "9" * 5000 + "\n", "invalid TOML at line 2: a number of more than"),
        ("a = " + "[" * 100_000, "invalid TOML: too deeply nested"),
    ],
    ids=[
        "map-size-huge",
        "broker-timeout-1e-300",
        "reconcile-interval-1e-300",
        "stop-timeout-1e300",
        "speed-nan",
        "backlog-0",
        "metrics-interval-1e-300",
        "otlp-endpoint-ftp",
        "stream-url-no-host",
        "grid-step-tiny",
        "5000-digit-integer",
        "nested-100k-deep",
    ],
)
def test_start_refuses_a_bad_config_naming_the_file_and_key(
    tmp_path: Path, text: str, where: str
) -> None:
    """Absurd values, nan, 5,000 digits, 100k nesting: one line naming the file and the key."""
    config = write(tmp_path, "bot.toml", text)
    line = refused(tmp_path, "start", "--config", str(config)).line
    assert line.startswith(f"actorctl: {config}: ")
    assert where in line


def test_regression_a_huge_map_size_creates_no_ledger(tmp_path: Path) -> None:
    """map_size_mib = 99999999999999 was an OverflowError after ledger/ had been created."""
    config = write(tmp_path, "bot.toml", "[ledger]\nmap_size_mib = 99999999999999\n")
    line = refused(tmp_path, "start", "--config", str(config)).line
    assert line == (
        f"actorctl: {config}: must be between 1 and 1048576 MiB (1 TiB), got 99999999999999 "
        "@ ledger.map_size_mib"
    )


def test_regression_a_map_over_the_address_space_limit_creates_no_ledger(tmp_path: Path) -> None:
    """Under `ulimit -v`, the default 1 GiB map was an lmdb.MemoryError once ledger/ existed."""
    data = tmp_path / "data"
    result = subprocess.run(
        ["sh", "-c", 'ulimit -v 900000 && exec "$0" start --data-dir "$1"', ACTORCTL, str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "ACTORTRADE_SOCKET": str(tmp_path / "ctl.sock")},
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        "actorctl: {}: must be at most 878 MiB, what this process may map (ulimit -v), got 1024 "
        "@ ledger.map_size_mib".format(LOTS.parent.parent / "actortrade.toml")
    ]
    assert not data.exists()


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: Path("/dev/zero"), "a device, not a regular file"),
        (lambda tmp: fifo(tmp, "bot.toml"), "a FIFO, not a regular file"),
        (lambda tmp: tmp, "a directory, not a regular file"),
        (lambda tmp: write(tmp, "big.toml", "#" * (2 << 20)), "larger than 1 MiB"),
    ],
    ids=["dev-zero", "fifo", "directory", "over-1-MiB"],
)
def test_start_refuses_a_config_that_is_not_a_small_regular_file(
    tmp_path: Path, make: Callable[[Path], Path], problem: str
) -> None:
    """Before reading a byte: a FIFO would block, a device would fill the memory."""
    config = make(tmp_path)
    line = refused(tmp_path, "start", "--config", str(config)).line
    assert line == f"actorctl: {config}: cannot read the config: {problem}"


# Lot maps


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (
            lambda tmp: write(tmp, "lots.csv", "level,shares_to_buy\n0," + "9" * 5000 + "\n"),
            ":2: shares_to_buy is too large: '9999",
        ),
        (
            lambda tmp: big_field(tmp, "lots.csv", b"level,shares_to_buy\n0,", 200_000),
            ":2: not CSV: field larger than field limit (131072)",
        ),
        (
            lambda tmp: big_field(tmp, "lots.csv", b"level,shares_to_buy\n0,"),
            ":0: cannot read the lot map: larger than 1 MiB",
        ),
        (lambda tmp: Path("/dev/zero"), ":0: cannot read the lot map: a device, not a regular"),
        (lambda tmp: fifo(tmp, "lots.csv"), ":0: cannot read the lot map: a FIFO, not a regular"),
    ],
    ids=["5000-digit-count", "200-KB-field", "50-MB-field", "dev-zero", "fifo"],
)
def test_start_refuses_a_bad_lot_map_naming_the_file_and_line(
    tmp_path: Path, make: Callable[[Path], Path], problem: str
) -> None:
    """Each was a traceback (ValueError, _csv.Error, MemoryError) or a hang."""
    lots = make(tmp_path)
    line = refused(tmp_path, "start", "--lots", str(lots)).line
    assert line.startswith(f"actorctl: {lots}{problem}")


# Bar files


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda tmp: write(tmp, "bars.csv", b"\xff\xfe" + os.urandom(500)), ":1: not UTF-8"),
        (lambda tmp: big_field(tmp, "bars.csv", HEADER.encode()), ":2: a line longer than 1024"),
        (lambda tmp: fifo(tmp, "bars.csv"), ":0: a FIFO, not a regular file"),
        (lambda tmp: Path("/dev/zero"), ":0: a device, not a regular file"),
        (lambda tmp: tmp, ":0: a directory, not a regular file"),
        (
            lambda tmp: write(
                tmp,
                "bars.csv",
                HEADER
                + BAR.replace("14:00", "14:05")
                + BAR.replace("TQQQ", "SPY")
                + BAR.replace("50.05,1000", "50.06,1000"),
            ),
            ":3: bars out of order ('2025-05-01 14:00:00' after 2025-05-01 14:05:00",
        ),
        (lambda tmp: write(tmp, "bars.csv", HEADER + BAR + BAR), ":3: a second 'TQQQ' bar at"),
        (
            lambda tmp: write(tmp, "bars.csv", HEADER + BAR.replace("50.10", "1e999999")),
            ":2: prices must be positive numbers below 10000000",
        ),
        (
            lambda tmp: write(tmp, "bars.csv", HEADER + BAR.replace("1000\n", "1e10000\n")),
            ":2: volume must be a whole number >= 0 and below 1,000,000,000,000",
        ),
        (
            lambda tmp: write(tmp, "bars.csv", HEADER + BAR.replace("2025", "0001")),
            ":2: Datetime must be in the years 1970 to 2100",
        ),
        (
            lambda tmp: write(
                tmp,
                "bars.csv",
                HEADER + BAR + "2025-05-01 14:01:00,TQQQ,0.005,0.006,0.004,0.005,1000\n",
            ),
            ":3: price 0.004 is below the tick 0.01 of TQQQ",
        ),
    ],
    ids=[
        "binary-garbage",
        "50-MB-field",
        "fifo",
        "dev-zero",
        "directory",
        "interleaved-symbols",
        "repeated-minute",
        "price-1e999999",
        "volume-1e10000",
        "year-0001",
        "below-the-tick",
    ],
)
def test_start_refuses_a_bad_bar_file_naming_the_file_and_line(
    tmp_path: Path, make: Callable[[Path], Path], problem: str
) -> None:
    """Tracebacks, a hang on a FIFO, and bars the loader let through to crash the service or
    run the venue's clock backwards: each is one line naming the file and line."""
    bars = make(tmp_path)
    line = refused(tmp_path, "start", "--replay", str(bars)).line
    assert line.startswith(f"actorctl: {bars}{problem}")


# Options


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--symbol", "tqqq"],
            "--symbol: must be an uppercase ticker matching ^[A-Z][A-Z0-9.]*$, got 'tqqq' (did "
            "you mean 'TQQQ'?)",
        ),
        (["--port", "99999"], "--port: must be between 1 and 65535, got 99999"),
        (["--port", "0"], "--port: must be between 1 and 65535, got 0"),
        (["--client-id", "-1"], "--client-id: must be between 0 and 2147483646, got -1"),
        (["--host", ""], "--host: must be a host name or IP address, got ''"),
        (
            ["--otlp-endpoint", "ftp://x"],
            '--otlp-endpoint: must be an http:// or https:// URL with a host, or "", got '
            "'ftp://x'",
        ),
        (
            ["--speed", "inf"],
            "--speed: must be 0 (as fast as possible) or between 0.01 and 1000000, got inf",
        ),
        (
            ["--speed", "nan"],
            "--speed: must be 0 (as fast as possible) or between 0.01 and 1000000, got nan",
        ),
        (
            ["--speed", "-1"],
            "--speed: must be 0 (as fast as possible) or between 0.01 and 1000000, got -1.0",
        ),
        (
            ["--stop-timeout", "nan"],
            "--stop-timeout: must be between 0.1 and 3600 seconds, got nan",
        ),
        (
            ["--stop-timeout", "inf"],
            "--stop-timeout: must be between 0.1 and 3600 seconds, got inf",
        ),
        (["--days", "0"], "--days: must be between 1 and 1000, got 0"),
        (["--days", "100000000"], "--days: must be between 1 and 1000, got 100000000"),
        (
            ["--seed", "99999999999999999999"],
            "--seed: must be between -9223372036854775808 and 9223372036854775807, got an "
            "integer of 67 bits",
        ),
    ],
    ids=lambda value: "=".join(value) if isinstance(value, list) else "",
)
def test_start_refuses_an_option_out_of_range_naming_the_option(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """Options have the ranges of the keys they override; the error names the option."""
    assert refused(tmp_path, "start", *args).line == f"actorctl: {message}"


def test_start_refuses_an_otlp_endpoint_from_the_environment_that_is_not_http(
    tmp_path: Path,
) -> None:
    """$OTEL_EXPORTER_OTLP_ENDPOINT is input too: the exporter refused it once running."""
    line = refused(tmp_path, "start", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x"}).line
    assert line == (
        "actorctl: $OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL with a host, "
        "got 'ftp://x'"
    )


# The data directory


def test_start_refuses_a_data_dir_that_is_a_file_or_under_one(tmp_path: Path) -> None:
    """It was a NotADirectoryError traceback from mkdir."""
    afile = write(tmp_path, "afile", "")
    line = refused(tmp_path, "start", "--data-dir", str(afile), data=False).line
    assert line == f"actorctl: --data-dir {afile}: not a directory"
    deeper = afile / "x" / "y"
    line = refused(tmp_path, "start", "--data-dir", str(deeper), data=False).line
    assert line == f"actorctl: --data-dir {deeper}: cannot be created in {afile}: not a directory"
    assert afile.read_text() == ""


def test_start_refuses_a_data_dir_from_the_config_naming_the_file_and_key(
    tmp_path: Path,
) -> None:
    """The config's data_dir is checked the same way, named as a key of that file."""
    write(tmp_path, "afile", "")
    config = write(tmp_path, "bot.toml", 'data_dir = "afile"\n')
    line = refused(tmp_path, "start", "--config", str(config), data=False).line
    assert line == f"actorctl: {config}: data_dir {tmp_path / 'afile'}: not a directory"


@pytest.fixture
def read_only_mount(tmp_path: Path) -> Iterator[Path]:
    """A read-only tmpfs (needs root and mount; skipped otherwise)."""
    where = tmp_path / "ro"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_start_refuses_a_data_dir_on_a_read_only_mount(
    tmp_path: Path, read_only_mount: Path
) -> None:
    """Even as root (who may write anywhere else), before anything is created."""
    line = refused(tmp_path, "start", "--data-dir", str(read_only_mount), data=False).line
    assert line == f"actorctl: --data-dir {read_only_mount}: on a read-only file system"
    new = read_only_mount / "data"
    line = refused(tmp_path, "start", "--data-dir", str(new), data=False).line
    assert line == (
        f"actorctl: --data-dir {new}: cannot be created in {read_only_mount}: on a read-only "
        "file system"
    )
    assert list(read_only_mount.iterdir()) == []


# actorctl check reads the same inputs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "--port: must be between 1 and 65535, got 99999"),
        (["--config", "/dev/zero"], "/dev/zero: cannot read the config: a device, not a regular"),
    ],
    ids=["port", "config-dev-zero"],
)
def test_check_refuses_the_same_bad_input_the_same_way(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """`actorctl check` loads the config through the same checks."""
    assert refused(tmp_path, "check", *args, data=False).line.startswith(f"actorctl: {message}")


def test_check_reports_a_bad_lot_map_in_the_config_and_exits_2(tmp_path: Path) -> None:
    """A lot map with a 5,000-digit count is one report line naming file and line, exit 2."""
    lots = write(tmp_path, "lots.csv", "level,shares_to_buy\n0," + "9" * 5000 + "\n")
    config = write(tmp_path, "bot.toml", f'[[symbols]]\nsymbol = "TQQQ"\nlots = "{lots}"\n')
    result = refused(
        tmp_path, "check", "--config", str(config), "--broker", "inprocess", data=False
    )
    assert f"lot map for TQQQ: {lots}:2: shares_to_buy is too large" in result.stdout
