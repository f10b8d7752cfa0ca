"""The typed TOML config, its loader and the secrets: defaults, strictness, and errors that name
the file and the key path."""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from config.errors import ConfigError, ConfigFileError, InvalidSetting
from config.load import DEFAULT_CONFIG, load_config, parse_config, render_config
from config.schema import (
    Backend,
    Config,
    ControlConfig,
    Durability,
    GridConfig,
    LedgerConfig,
    MarketHours,
    Mode,
    ReconcileConfig,
    RiskConfig,
    RuntimeConfig,
    SymbolConfig,
    VenueConfig,
)
from config.secrets import Secrets, load_secrets

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
SYMBOL = '[[symbols]]\nsymbol = "TQQQ"\nlots = "lots/tqqq.csv"\n'
SOURCE = "bot.toml"


def parse(text: str) -> Config:
    return parse_config(text, source=SOURCE, base_dir=CONFIG_DIR)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        parse(text)
    assert info.value.source == SOURCE
    return str(info.value).splitlines()


def write_config(folder: Path, text: str) -> Path:
    (folder / "lots").mkdir(parents=True, exist_ok=True)
    (folder / "lots" / "tqqq.csv").write_text("level,shares_to_buy\n0,94\n")
    path = folder / "bot.toml"
    path.write_text(text)
    return path


def toml_key(key: str) -> str:
    # A quoted TOML key that spells any string, whatever characters it holds.
    spelled = (c if c.isascii() and c.isalnum() else f"\\U{ord(c):08X}" for c in key)
    return '"' + "".join(spelled) + '"'


# The config as it is loaded


def test_the_shipped_config_loads_to_the_defaults() -> None:
    """config/actortrade.toml spells out Config(), lot map path included."""
    assert load_config(DEFAULT_CONFIG) == Config()


def test_the_defaults_are_todays_actorctl_start() -> None:
    """Paper, asyncio, a temporary ledger, the generated session at 1800x, the seed bot's grid."""
    config = Config()
    assert config.mode is Mode.PAPER
    assert config.data_dir is None
    assert config.runtime == RuntimeConfig(backend=Backend.ASYNCIO, stop_timeout=5.0)
    assert config.ledger == LedgerConfig(durability=Durability.CRASH_SAFE, map_size_mib=1024)
    assert config.control.socket is None
    assert (config.venue.replay, config.venue.seed, config.venue.speed) == (None, 14, 1800.0)
    assert config.reconcile.interval == 60.0
    (tqqq,) = config.symbols
    assert tqqq.symbol == "TQQQ"
    assert tqqq.lots == CONFIG_DIR / "lots" / "tqqq.csv"
    assert tqqq.grid == GridConfig(
        tick=Decimal("0.01"),
        level0_buffer=Decimal("0.0025"),
        step=Decimal("0.01"),
        profit=Decimal("0.01"),
        queue_depth=3,
        fill_timeout=120.0,
    )


def test_an_empty_file_is_the_defaults() -> None:
    """Every key is optional; no [[symbols]] means the shipped TQQQ map."""
    assert parse("") == Config()


def test_a_symbol_without_a_grid_table_gets_the_seed_bots_grid(tmp_path: Path) -> None:
    """[symbols.grid] and each of its keys are optional."""
    config = load_config(write_config(tmp_path, SYMBOL + "[symbols.grid]\nqueue_depth = 5\n"))
    assert config.symbols[0].grid == GridConfig(queue_depth=5)


def test_relative_paths_are_relative_to_the_config_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service's working directory is wherever it was started; the config's folder is fixed."""
    folder = tmp_path.resolve() / "etc"
    write_config(
        folder,
        'data_dir = "ledger"\n[control]\nsocket = "run/ctl.sock"\n'
        '[venue]\nreplay = "bars.csv"\n' + SYMBOL,
    )
    monkeypatch.chdir(tmp_path)
    config = load_config(Path("etc") / "bot.toml")
    assert config.data_dir == folder / "ledger"
    assert config.control.socket == folder / "run" / "ctl.sock"
    assert config.venue.replay == folder / "bars.csv"
    assert config.symbols[0].lots == folder / "lots" / "tqqq.csv"


def test_a_tilde_in_a_path_is_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data_dir = "~/..." is under $HOME."""
    monkeypatch.setenv("HOME", str(tmp_path))
    assert parse('data_dir = "~/.local/share/actortrade"').data_dir == (
        tmp_path / ".local" / "share" / "actortrade"
    )


def test_an_empty_optional_path_means_not_set() -> None:
    """socket = "" and replay = "" are the defaults, since TOML has no null."""
    config = parse('data_dir = ""\n[control]\nsocket = ""\n[venue]\nreplay = ""\n')
    assert (config.data_dir, config.control.socket, config.venue.replay) == (None, None, None)


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ('"0.05"', Decimal("0.05")),
        ("1", Decimal(1)),
        ("0.05", Decimal("0.05")),
        ("1e-2", Decimal("0.01")),
        ('"1E-2"', Decimal("0.01")),
    ],
)
def test_decimals_are_read_exactly_from_strings_integers_and_floats(
    written: str, expected: Decimal
) -> None:
    """A float goes through its shortest repr: 0.05 is Decimal("0.05"), not the binary fraction."""
    tick = parse(f"{SYMBOL}[symbols.grid]\ntick = {written}\n").symbols[0].grid.tick
    assert tick == expected
    assert str(tick) == str(expected)


def test_an_integer_is_a_valid_float() -> None:
    """stop_timeout = 5 is 5.0 seconds."""
    assert parse("[runtime]\nstop_timeout = 5\n").runtime.stop_timeout == 5.0


def test_rendered_config_reads_back_unchanged() -> None:
    """`actorctl check`'s dump is TOML that loads to the same config."""
    config = Config(
        mode=Mode.LIVE,
        data_dir=Path("/var/lib/actortrade"),
        runtime=RuntimeConfig(backend=Backend.TRIO, stop_timeout=2.5),
        ledger=LedgerConfig(durability=Durability.POWER_SAFE_EACH, map_size_mib=64),
        control=ControlConfig(socket=Path('/run/a "quoted"\\dir/ctl.sock')),
        venue=VenueConfig(replay=Path("/data/bars.csv"), seed=-3, speed=0.0),
        reconcile=ReconcileConfig(interval=1.5),
        symbols=(
            SymbolConfig(symbol="TQQQ", lots=CONFIG_DIR / "lots" / "tqqq.csv"),
            SymbolConfig(
                symbol="BRK.B",
                lots=CONFIG_DIR / "lots" / "tqqq.csv",
                grid=GridConfig(tick=Decimal("0.0001"), step=Decimal("0.025"), queue_depth=1),
            ),
        ),
    )
    assert parse(render_config(config)) == config
    assert parse(render_config(Config())) == Config()


# Errors: each names the file and the key path


def test_an_unknown_top_level_key_is_named() -> None:
    """A typo at the top level is an error, not ignored."""
    assert problems('mdoe = "live"\n') == [f"{SOURCE}: extra field 'mdoe' @ (top level)"]


def test_an_unknown_key_in_a_symbols_grid_names_the_key_and_its_table() -> None:
    """The path names the array entry and the sub-table."""
    assert problems(f"{SYMBOL}[symbols.grid]\nprofits = 0.02\n") == [
        f"{SOURCE}: extra field 'profits' @ symbols[0].grid"
    ]


def test_a_secret_in_the_toml_is_refused_without_echoing_it() -> None:
    """Secrets only come from the environment; the value is not repeated in the error."""
    (problem,) = problems(f'alpaca_key = "PKSECRET123"\n{SYMBOL}')
    assert problem == f"{SOURCE}: extra field 'alpaca_key' @ (top level)"
    assert "PKSECRET123" not in problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[runtime]\nstop_timeout = "5"\n',
            "invalid value for type, expected float, got str @ runtime.stop_timeout",
        ),
        (
            f"{SYMBOL}[symbols.grid]\nqueue_depth = 2.5\n",
            "invalid value for type, expected int, got float @ symbols[0].grid.queue_depth",
        ),
        (
            f'{SYMBOL}[symbols.grid]\nstep = "one percent"\n',
            "invalid value for type, expected Decimal, got 'one percent' @ symbols[0].grid.step",
        ),
        ("[venue]\nseed = [1]\n", "invalid value for type, expected int, got list @ venue.seed"),
        (
            "[telemetry]\ntracing = 1\n",
            "invalid value for type, expected bool, got int @ telemetry.tracing",
        ),
        ("runtime = 3\n", "invalid value for type, expected a table, got int @ runtime"),
        (
            'symbols = "TQQQ"\n',
            "invalid value for type, expected an array of tables, got str @ symbols",
        ),
        ("symbols = [1]\n", "invalid value for type, expected a table, got int @ symbols[0]"),
        ('[[symbols]]\nsymbol = "TQQQ"\nlots = 7\n', "invalid value for type, expected Path, "),
        ('[[symbols]]\nlots = "lots/tqqq.csv"\n', "required field missing @ symbols[0].symbol"),
        (
            '[[symbols]]\nsymbol = "TQQQ"\n',
            "required field missing (the grid trades a lot map) @ symbols[0].lots",
        ),
    ],
)
def test_a_value_of_the_wrong_type_names_the_expected_type_and_the_key_path(
    text: str, problem: str
) -> None:
    """No silent conversion: "5" is not a float, 2.5 is not an int."""
    (line,) = problems(text)
    assert line.startswith(f"{SOURCE}: {problem}")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("[runtime]\nstop_timeout", "true"),
        ("[ledger]\nmap_size_mib", "true"),
        ("[venue]\nseed", "false"),
        ("[venue]\nspeed", "true"),
        (f"{SYMBOL}[symbols.grid]\ntick", "true"),
        (f"{SYMBOL}[symbols.grid]\nqueue_depth", "true"),
    ],
)
def test_a_bool_is_not_a_number(key: str, value: str) -> None:
    """Python's bool is an int; a config's is not."""
    (line,) = problems(f"{key} = {value}\n")
    assert line.startswith(f"{SOURCE}: invalid value for type, expected ")
    assert ", got bool @ " in line


@pytest.mark.parametrize(
    ("name", "durability"),
    [
        ("crash-safe", Durability.CRASH_SAFE),
        ("power-safe", Durability.POWER_SAFE),
        ("group", Durability.POWER_SAFE),
        ("sync", Durability.POWER_SAFE_EACH),
        ("nosync", Durability.UNSAFE),
    ],
)
def test_the_durability_policies_read_by_their_names_and_by_their_old_ones(
    tmp_path: Path, name: str, durability: Durability
) -> None:
    """A config written for an earlier version (``group``, ``sync``, ``nosync``) still loads,
    as the policy that name meant."""
    path = tmp_path / "actortrade.toml"
    path.write_text(f'[ledger]\ndurability = "{name}"\n')
    assert load_config(path).ledger.durability is durability


@pytest.mark.parametrize(
    ("key", "choices"),
    [
        ("mode", "'paper', 'live', 'dry-run'"),
        ("[runtime]\nbackend", "'asyncio', 'trio'"),
        ("[ledger]\ndurability", "'crash-safe', 'power-safe', 'power-safe-each', 'unsafe'"),
        ("[venue]\nkind", "'sim'"),
    ],
)
def test_an_unknown_choice_lists_the_valid_ones(key: str, choices: str) -> None:
    """Enumerated settings name every accepted value."""
    (line,) = problems(f'{key} = "Paper"\n')
    assert f"expected one of {choices}, got 'Paper' @ " in line


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[runtime]\nstop_timeout = 0\n",
            "must be between 0.1 and 3600 seconds, got 0.0 @ runtime.stop_timeout",
        ),
        (
            "[ledger]\nmap_size_mib = 0\n",
            "must be between 1 and 1048576 MiB (1 TiB), got 0 @ ledger.map_size_mib",
        ),
        (
            "[venue]\nspeed = -1\n",
            "must be 0 (as fast as possible) or between 0.01 and 1000000, got -1.0 @ venue.speed",
        ),
        (
            "[reconcile]\ninterval = -0.5\n",
            "must be between 1 and 86400 seconds, got -0.5 @ reconcile.interval",
        ),
        (
            '[telemetry]\nendpoint = "localhost:4318"\n',
            "must be an http:// or https:// URL with a host, or \"\", got 'localhost:4318' @ "
            "telemetry.endpoint",
        ),
        (
            '[telemetry]\nmetrics_endpoint = "grpc://collector:4317"\n',
            'must be an http:// or https:// URL with a host, or "", got '
            "'grpc://collector:4317' @ telemetry.metrics_endpoint",
        ),
        (
            "[telemetry]\nmetrics_interval = 0\n",
            "must be between 1 and 86400 seconds, got 0.0 @ telemetry.metrics_interval",
        ),
        (
            f'{SYMBOL}[symbols.grid]\ntick = "0"\n',
            "must be between 0.0001 and 100, got 0 @ symbols[0].grid.tick",
        ),
        (
            f"{SYMBOL}[symbols.grid]\nlevel0_buffer = -0.01\n",
            "must be between 0 and 0.1, got -0.01 @ symbols[0].grid.level0_buffer",
        ),
        (
            f"{SYMBOL}[symbols.grid]\nstep = 1\n",
            "must be between 0.0001 and 0.5, got 1 @ symbols[0].grid.step",
        ),
        (
            f"{SYMBOL}[symbols.grid]\nprofit = 0\n",
            "must be between 0.0001 and 1, got 0 @ symbols[0].grid.profit",
        ),
        (
            f"{SYMBOL}[symbols.grid]\nqueue_depth = 0\n",
            "must be between 1 and 100, got 0 @ symbols[0].grid.queue_depth",
        ),
        (
            f"{SYMBOL}[symbols.grid]\nfill_timeout = 0\n",
            "must be between 1 and 86400 seconds, got 0.0 @ symbols[0].grid.fill_timeout",
        ),
        ("[venue]\nspeed = inf\n", "invalid value for type, expected float, got inf @ venue.speed"),
        (
            f"{SYMBOL}[symbols.grid]\nprofit = nan\n",
            "invalid value for type, expected Decimal, got nan @ symbols[0].grid.profit",
        ),
        (
            f'{SYMBOL}[symbols.grid]\nprofit = "Infinity"\n',
            "invalid value for type, expected Decimal, got 'Infinity' @ symbols[0].grid.profit",
        ),
        (
            '[[symbols]]\nsymbol = "tqqq"\nlots = "lots/tqqq.csv"\n',
            "must be an uppercase ticker matching ^[A-Z][A-Z0-9.]*$, got 'tqqq' (did you mean "
            "'TQQQ'?) @ symbols[0].symbol",
        ),
        (
            '[[symbols]]\nsymbol = "t-q"\nlots = "lots/tqqq.csv"\n',
            "must be an uppercase ticker matching ^[A-Z][A-Z0-9.]*$, got 't-q' @ symbols[0].symbol",
        ),
        (
            '[broker]\nhost = ""\n',
            "must be a host name or IP address, got '' @ broker.host",
        ),
        (
            '[alpaca]\nstream_url = "https://stream.data.alpaca.markets/v2/iex"\n',
            'must be a ws:// or wss:// URL with a host, or "", got '
            "'https://stream.data.alpaca.markets/v2/iex' @ alpaca.stream_url",
        ),
        (
            '[alpaca]\ndata_url = "https:///v2"\n',
            "must be an http:// or https:// URL with a host, or \"\", got 'https:///v2' @ "
            "alpaca.data_url",
        ),
    ],
)
def test_an_out_of_range_value_names_the_rule_and_the_key_path(text: str, problem: str) -> None:
    """Range checks are attrs validators, reported against their key."""
    assert problems(text) == [f"{SOURCE}: {problem}"]


# Every numeric key: values at the ends of its range (accepted) and just beyond them (refused).
# TOML spells nan and inf; a Decimal may also be a string.
RANGES = [
    ("runtime", "stop_timeout", ["0.1", "3600"], ["0.09", "3601", "nan", "inf", "1e-300"]),
    ("ledger", "map_size_mib", ["1", "1048576"], ["0", "1048577", "-1"]),
    (
        "venue",
        "seed",
        ["-9223372036854775808", "9223372036854775807"],
        ["9223372036854775808", "-9223372036854775809"],
    ),
    ("venue", "speed", ["0", "0.01", "1000000"], ["0.009", "1000001", "-1", "nan", "inf"]),
    ("broker", "port", ["1", "65535"], ["0", "65536", "99999"]),
    ("broker", "client_id", ["0", "2147483646"], ["-1", "2147483647"]),
    ("broker", "market_data_type", ["0", "4"], ["-1", "5"]),
    ("broker", "timeout", ["0.5", "3600"], ["0.49", "3601", "1e-300", "nan", "-inf"]),
    ("history", "client_id", ["0", "3", "2147483647"], ["-1", "2147483648"]),
    ("reconcile", "interval", ["1", "86400"], ["0.99", "86401", "1e-300", "nan", "inf"]),
    ("alpaca", "data_timeout", ["0", "1", "86400"], ["0.5", "86401", "-1", "nan", "inf"]),
    ("alpaca", "backlog", ["1", "1000000"], ["0", "1000001"]),
    ("alpaca", "auth_failures", ["1", "100"], ["0", "101"]),
    ("telemetry", "metrics_interval", ["1", "86400"], ["0.5", "86401", "nan", "inf"]),
    ("symbols.grid", "tick", ['"0.0001"', "100"], ['"0.00009"', "101", "nan", '"sNaN"']),
    ("symbols.grid", "level0_buffer", ["0", '"0.1"'], ['"-0.0001"', '"0.1001"', "inf"]),
    ("symbols.grid", "step", ['"0.0001"', '"0.5"'], ['"0.00009"', '"0.51"', '"1e-999999"']),
    ("symbols.grid", "profit", ['"0.0001"', "1"], ['"0.00009"', '"1.01"', '"-Infinity"']),
    ("symbols.grid", "queue_depth", ["1", "100"], ["0", "101"]),
    ("symbols.grid", "fill_timeout", ["1", "86400"], ["0.5", "86401", "nan", "inf"]),
    ("alerts", "dedup_window", ["0", "1", "86400"], ["0.5", "86401", "-1", "nan", "inf"]),
    ("alerts", "queue_size", ["1", "1000000"], ["0", "1000001"]),
    ("alerts", "history", ["1", "1000000"], ["0", "1000001"]),
    ("alerts", "timeout", ["0.5", "300"], ["0.49", "301", "nan", "inf"]),
    ("alerts", "attempts", ["1", "100"], ["0", "101"]),
    ("alerts", "backoff_initial", ["0.01", "3600"], ["0.009", "3601", "nan"]),
    ("alerts", "backoff_maximum", ["0.01", "86400"], ["0.009", "86401", "inf"]),
    *(
        row
        for channel in ("slack", "discord", "telegram")
        for row in (
            (f"alerts.{channel}", "rate", ["0.01", "100"], ["0.009", "101", "nan", "inf"]),
            (f"alerts.{channel}", "burst", ["1", "100"], ["0", "101"]),
            (f"alerts.{channel}", "queue_size", ["1", "100000"], ["0", "100001"]),
        )
    ),
    ("alerts.heartbeat", "interval", ["1", "86400"], ["0.5", "86401", "nan", "inf"]),
    ("risk", "equity", ["0", '"0.01"', "1e15"], ['"0.001"', "1.1e15", "-1", "nan"]),
    ("risk", "max_notional_per_symbol", ["0", '"0.01"', "1e15"], ['"0.009"', "-1", "inf"]),
    ("risk", "max_gross_exposure", ["0", '"0.01"', "1e15"], ['"0.009"', "1.1e15", '"NaN"']),
    ("risk", "max_open_orders", ["0", "1", "100000"], ["-1", "100001"]),
    ("risk", "max_positions", ["0", "1", "100000"], ["-1", "100001"]),
    ("risk", "max_risk_pct_per_trade", ["0", '"0.0001"', "100"], ['"0.00009"', "101", "nan"]),
    ("risk", "max_daily_loss_pct", ["0", '"0.0001"', "100"], ['"0.00009"', "100.5", "-1"]),
]


def _numeric_keys(cls: type, prefix: str) -> set[str]:
    keys = set()
    for field in attrs.fields(attrs.resolve_types(cls)):
        if field.type in (int, float, Decimal):
            keys.add(f"{prefix}{field.name}")
        elif field.type == tuple[SymbolConfig, ...]:
            keys |= _numeric_keys(SymbolConfig, f"{prefix}{field.name}.")
        elif attrs.has(field.type):
            keys |= _numeric_keys(field.type, f"{prefix}{field.name}.")
    return keys


def test_every_numeric_key_has_a_range() -> None:
    """A new number in the schema comes with its range (and a row in RANGES)."""
    assert _numeric_keys(Config, "") == {f"{table}.{key}" for table, key, *_ in RANGES}


def _setting(table: str, key: str, value: str) -> str:
    if table == "symbols.grid":
        return f"{SYMBOL}[symbols.grid]\n{key} = {value}\n"
    if table == "risk" and "_pct" in key:
        # A percentage needs an equity to be of.
        return f"[{table}]\nequity = 100000\n{key} = {value}\n"
    return f"[{table}]\n{key} = {value}\n"


@pytest.mark.parametrize(("table", "key", "accepted", "refused"), RANGES)
def test_every_numeric_key_takes_its_bounds_and_refuses_beyond_them(
    table: str, key: str, accepted: list[str], refused: list[str]
) -> None:
    """Both ends are accepted; beyond them (nan and inf too) the error names the key."""
    for value in accepted:
        parse(_setting(table, key, value))
    path = f"symbols[0].grid.{key}" if table == "symbols.grid" else f"{table}.{key}"
    for value in refused:
        (line,) = problems(_setting(table, key, value))
        assert line.endswith(f" @ {path}"), line


def test_command_line_floats_are_checked_for_nan_and_inf_like_the_files() -> None:
    """Built in code (as the command line's overrides are), nan and inf are refused too."""
    for build in (
        lambda: RuntimeConfig(stop_timeout=math.inf),
        lambda: VenueConfig(speed=math.nan),
        lambda: GridConfig(step=Decimal("NaN")),
        lambda: GridConfig(tick=Decimal("sNaN")),
        lambda: ReconcileConfig(interval=1e-300),
    ):
        with pytest.raises(InvalidSetting):
            build()


def test_a_duplicate_symbol_and_strategy_names_the_second_entry_and_the_first() -> None:
    """Two grids on one symbol would run twice on the same orders; the second is at fault."""
    assert problems(SYMBOL + SYMBOL) == [
        f"{SOURCE}: duplicate symbol 'TQQQ' with strategy 'grid' (first at symbols[0]) "
        "@ symbols[1].symbol"
    ]


def test_two_strategies_may_trade_one_symbol() -> None:
    """A symbol may be listed once per strategy: each trades its own orders of it."""
    second = '[[symbols]]\nsymbol = "TQQQ"\nstrategy = "ma_cross"\n'
    config = parse(SYMBOL + second)
    assert [(s.symbol, s.strategy.value) for s in config.symbols] == [
        ("TQQQ", "grid"),
        ("TQQQ", "ma_cross"),
    ]
    twice = second + '[[symbols]]\nsymbol = "TQQQ"\nstrategy = "ma_cross"\n'
    assert problems(SYMBOL + twice) == [
        f"{SOURCE}: duplicate symbol 'TQQQ' with strategy 'ma_cross' (first at symbols[1]) "
        "@ symbols[2].symbol"
    ]


def test_the_strategies_of_one_symbol_share_its_feed() -> None:
    """One market-data actor delivers a symbol: two tables of it naming two feeds are refused."""
    second = '[[symbols]]\nsymbol = "TQQQ"\nstrategy = "ma_cross"\nfeed = "alpaca"\n'
    (line,) = problems(SYMBOL + second)
    assert line.endswith(" @ symbols[1].feed"), line
    assert "symbols[0]" in line


def test_an_empty_symbol_list_is_refused() -> None:
    """A config that trades nothing is a mistake."""
    assert problems("symbols = []\n") == [
        f"{SOURCE}: needs at least one [[symbols]] table @ symbols"
    ]


def test_a_missing_lot_map_names_the_key_path_and_the_resolved_path(tmp_path: Path) -> None:
    """The lot map is looked for next to the config file, and the error says where."""
    path = write_config(tmp_path, SYMBOL + '[[symbols]]\nsymbol = "SOXL"\nlots = "lots/soxl.csv"\n')
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}: lot map {tmp_path.resolve() / 'lots' / 'soxl.csv'}: "
        "No such file or directory @ symbols[1].lots"
    )


def test_a_lot_map_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    """Only a regular file can be a lot map."""
    path = write_config(tmp_path, '[[symbols]]\nsymbol = "TQQQ"\nlots = "lots"\n')
    with pytest.raises(ConfigFileError, match=r"lot map .*lots: not a file @ symbols\[0\]\.lots"):
        load_config(path)


def test_a_toml_syntax_error_names_the_file_line_and_column() -> None:
    """The position comes from the TOML parser."""
    assert problems('mode = "paper"\n[runtime]\nstop_timeout = \n') == [
        f"{SOURCE}: invalid TOML at line 3, column 16: invalid value"
    ]


def test_a_toml_error_at_the_end_of_the_file_names_the_last_line() -> None:
    """An unterminated string is reported where the document ends."""
    assert problems('mode = "paper"\n[runtime]\nbackend = "trio') == [
        f"{SOURCE}: invalid TOML at line 3, column 16: unterminated string"
    ]


def test_a_missing_config_file_names_the_path(tmp_path: Path) -> None:
    """The path as given is in the error."""
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read the config: No such file or directory"


def test_a_config_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    """Bytes that are not text are named, not decoded as something else."""
    path = tmp_path / "bot.toml"
    path.write_bytes(b'mode = "p\xe4per"\n')
    with pytest.raises(ConfigFileError, match=r"not UTF-8 text \(byte 9\)"):
        load_config(path)


def test_regression_a_config_nested_100k_deep_is_refused_not_a_recursion_error(
    tmp_path: Path,
) -> None:
    """100,000 nested arrays were a RecursionError traceback from tomllib; now one line."""
    path = tmp_path / "bot.toml"
    path.write_text("a = " + "[" * 100_000)
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: invalid TOML: too deeply nested (arrays or inline tables)"


def test_regression_a_5000_digit_integer_is_refused_naming_its_line() -> None:
    """int() refuses 4,300 digits and more: that ValueError was a traceback."""
    assert problems("mode = 'paper'\n[venue]\nseed = " + "9" * 5000 + "\n") == [
        f"{SOURCE}: invalid TOML at line 3: a number of more than 4300 digits"
    ]


def test_a_huge_hexadecimal_integer_is_refused_without_printing_its_digits() -> None:
    """Hex has no conversion limit, but printing the value in the error would."""
    assert problems("[venue]\nseed = 0x" + "f" * 5000 + "\n") == [
        f"{SOURCE}: must be between -9223372036854775808 and 9223372036854775807, got an "
        "integer of 20000 bits @ venue.seed"
    ]


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda path: path.mkdir(), "a directory, not a regular file"),
        (lambda path: os.mkfifo(path), "a FIFO, not a regular file"),
        (lambda path: path.write_bytes(b"#" * (1 << 20) + b"\n"), "larger than 1 MiB"),
    ],
    ids=["directory", "fifo", "over-1-MiB"],
)
def test_a_config_that_is_not_a_small_regular_file_is_refused_before_reading(
    tmp_path: Path, make: Callable[[Path], object], problem: str
) -> None:
    """A FIFO would block the read, a device or a huge file would fill the memory."""
    path = tmp_path / "bot.toml"
    make(path)
    with pytest.raises(ConfigFileError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: cannot read the config: {problem}"


def test_a_device_as_the_config_is_refused() -> None:
    """/dev/zero never ends: it was read until MemoryError."""
    with pytest.raises(ConfigFileError) as info:
        load_config(Path("/dev/zero"))
    assert str(info.value) == "/dev/zero: cannot read the config: a device, not a regular file"


# Pieces of TOML and of this schema, so that generated files get past the parser sometimes.
_TOML_PIECES = st.sampled_from(
    [
        *["\n", "[", "]", "[[", "]]", "{", "}", "=", " = ", ",", ".", '"', "'", "#", "-", "_"],
        *["0", "1", "9" * 30, "1e999", "0x7f", "nan", "inf", "true", "1979-05-27", "\\u0000"],
        *["runtime", "ledger", "venue", "broker", "symbols", "grid", "telemetry", "alpaca"],
        *["stop_timeout", "map_size_mib", "speed", "seed", "port", "tick", "step", "endpoint"],
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=400)
    | st.text(max_size=400).map(str.encode)
    | st.lists(_TOML_PIECES, max_size=60).map(lambda pieces: "".join(pieces).encode())
)
def test_any_bytes_as_a_config_give_a_config_or_a_config_error(data: bytes) -> None:
    """Whatever the file holds, the loader answers a Config or a ConfigError, nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bot.toml"
        path.write_bytes(data)
        with contextlib.suppress(ConfigError):
            load_config(path)


def test_every_problem_is_reported_at_once_one_line_each() -> None:
    """Fixing a config is one round trip, not one per mistake."""
    text = f'typo = 1\n[runtime]\nstop_timeout = "x"\n{SYMBOL}[symbols.grid]\nqueue_depth = 1.5\n'
    assert sorted(problems(text)) == sorted(
        [
            f"{SOURCE}: extra field 'typo' @ (top level)",
            f"{SOURCE}: invalid value for type, expected float, got str @ runtime.stop_timeout",
            f"{SOURCE}: invalid value for type, expected int, got float "
            "@ symbols[0].grid.queue_depth",
        ]
    )


def test_config_errors_are_value_errors() -> None:
    """Callers may catch ConfigError, or ValueError."""
    with pytest.raises(ValueError, match="extra field"):
        parse("x = 1\n")
    assert issubclass(ConfigFileError, ConfigError)


def test_the_schema_validates_when_built_in_code_too() -> None:
    """The validators are the schema's, not the loader's."""
    with pytest.raises(InvalidSetting, match=r"step: must be between 0.0001 and 0.5, got 1"):
        GridConfig(step=Decimal(1))
    with pytest.raises(InvalidSetting, match="needs at least one"):
        Config(symbols=())


TABLES = {
    "": (Config, "(top level)"),
    "runtime": (RuntimeConfig, "runtime"),
    "ledger": (LedgerConfig, "ledger"),
    "control": (ControlConfig, "control"),
    "venue": (VenueConfig, "venue"),
    "reconcile": (ReconcileConfig, "reconcile"),
    "symbols": (SymbolConfig, "symbols[0]"),
    "symbols.grid": (GridConfig, "symbols[0].grid"),
}


@given(
    table=st.sampled_from(sorted(TABLES)),
    extra=st.dictionaries(st.text(min_size=1, max_size=12), st.integers(), min_size=1, max_size=4),
)
def test_any_unknown_keys_in_any_table_are_refused_and_named(
    table: str, extra: dict[str, int]
) -> None:
    """Whatever the keys, the error is one line naming each of them and the table."""
    cls, where = TABLES[table]
    assume(not extra.keys() & {field.name for field in attrs.fields(cls)})
    sections = {
        name: [f"{toml_key(k)} = {v}" for k, v in extra.items()] if name == table else []
        for name in TABLES
    }
    sections["symbols"][:0] = ['symbol = "TQQQ"', 'lots = "lots/tqqq.csv"']
    lines = sections.pop("")
    for name, body in sections.items():
        header = "[[symbols]]" if name == "symbols" else f"[{name}]"
        lines += [header, *body]
    (line,) = problems("\n".join(lines) + "\n")
    assert line.startswith(f"{SOURCE}: extra field")
    assert line.endswith(f" @ {where}")
    for key in extra:
        assert repr(key) in line


# Secrets


def test_secrets_from_the_environment_beat_the_dotenv_file(tmp_path: Path) -> None:
    """The .env file only fills in what the environment does not set."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("ALPACA_KEY=file-key\nALPACA_SECRET=file-secret\n")
    secrets = load_secrets({"ALPACA_KEY": "env-key", "IB_ACCOUNT": "DU123"}, dotenv)
    assert secrets == Secrets(alpaca_key="env-key", alpaca_secret="file-secret", ib_account="DU123")


def test_an_empty_environment_value_counts_as_unset(tmp_path: Path) -> None:
    """ALPACA_KEY= in the environment does not hide the .env file's value."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("ALPACA_KEY=file-key\n")
    assert load_secrets({"ALPACA_KEY": ""}, dotenv).alpaca_key == "file-key"
    assert load_secrets({"ALPACA_KEY": ""}, tmp_path / "none.env").alpaca_key is None


def test_secrets_default_to_os_environ_which_is_never_modified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading the .env file does not export it."""
    monkeypatch.setenv("IB_ACCOUNT", "DU999")
    monkeypatch.delenv("ALPACA_KEY", raising=False)
    monkeypatch.delenv("ALPACA_SECRET", raising=False)
    dotenv = tmp_path / ".env"
    dotenv.write_text("ALPACA_KEY=file-key\nIB_ACCOUNT=U000\n")
    before = dict(os.environ)
    secrets = load_secrets(dotenv_path=dotenv)
    assert dict(os.environ) == before
    assert (secrets.alpaca_key, secrets.alpaca_secret, secrets.ib_account) == (
        "file-key",
        None,
        "DU999",
    )


def test_dotenv_values_are_taken_literally(tmp_path: Path) -> None:
    """A secret that contains ${...} is not interpolated from the environment."""
    dotenv = tmp_path / ".env"
    dotenv.write_text("ALPACA_SECRET=a${HOME}b\n")
    assert load_secrets({"HOME": "/root"}, dotenv).alpaca_secret == "a${HOME}b"


def test_the_default_dotenv_file_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """./.env is used when there is one, and its absence is not an error."""
    monkeypatch.chdir(tmp_path)
    assert load_secrets({}) == Secrets()
    (tmp_path / ".env").write_text("ALPACA_SECRET=s3\n")
    assert load_secrets({}).alpaca_secret == "s3"


def test_secrets_never_appear_in_repr_or_str() -> None:
    """A logged or printed Secrets shows which are set, never a value."""
    secrets = Secrets(alpaca_key="PKVALUE1", alpaca_secret="SKVALUE2")
    for shown in (repr(secrets), str(secrets), f"{secrets}", repr([secrets])):
        assert "PKVALUE1" not in shown
        assert "SKVALUE2" not in shown
    assert repr(secrets).startswith(
        "Secrets(alpaca_key=<set>, alpaca_secret=<set>, ib_account=<unset>, "
    )
    assert secrets.redacted() == {
        "alpaca_key": True,
        "alpaca_secret": True,
        "ib_account": False,
        "slack_webhook_url": False,
        "discord_webhook_url": False,
        "telegram_bot_token": False,
        "telegram_chat_id": False,
        "heartbeat_url": False,
    }


def test_alert_channel_secrets_come_from_the_environment_and_stay_out_of_reprs() -> None:
    """The webhook URLs, the bot token and chat id and the heartbeat URL are read from their
    ACTORTRADE_* variables, and a repr shows only that they are set."""
    env = {
        "ACTORTRADE_SLACK_WEBHOOK_URL": "https://hooks.example/services/T0/B0/XSLACKSECRET",
        "ACTORTRADE_DISCORD_WEBHOOK_URL": "https://discord.example/api/webhooks/1/XDISCORD",
        "ACTORTRADE_TELEGRAM_BOT_TOKEN": "123456:XTELEGRAMTOKEN",
        "ACTORTRADE_TELEGRAM_CHAT_ID": "-100777",
        "ACTORTRADE_HEARTBEAT_URL": "https://hc.example/ping/XHEARTBEAT",
    }
    secrets = load_secrets(env, Path("/nonexistent/.env"))
    assert secrets.slack_webhook_url == env["ACTORTRADE_SLACK_WEBHOOK_URL"]
    assert secrets.discord_webhook_url == env["ACTORTRADE_DISCORD_WEBHOOK_URL"]
    assert secrets.telegram_bot_token == env["ACTORTRADE_TELEGRAM_BOT_TOKEN"]
    assert secrets.telegram_chat_id == "-100777"
    assert secrets.heartbeat_url == env["ACTORTRADE_HEARTBEAT_URL"]
    for value in env.values():
        assert value not in repr(secrets)


@pytest.mark.parametrize(
    ("toml", "path", "variable"),
    [
        (
            '[alerts.slack]\nwebhook_url = "https://hooks.x/T/B/SECRETX"\n',
            "alerts.slack.webhook_url",
            "ACTORTRADE_SLACK_WEBHOOK_URL",
        ),
        (
            '[alerts.discord]\nurl = "https://d.x/api/webhooks/SECRETX"\n',
            "alerts.discord.url",
            "ACTORTRADE_DISCORD_WEBHOOK_URL",
        ),
        (
            '[alerts.telegram]\ntoken = "1:SECRETX"\n',
            "alerts.telegram.token",
            "ACTORTRADE_TELEGRAM_BOT_TOKEN and ACTORTRADE_TELEGRAM_CHAT_ID",
        ),
        (
            '[alerts]\nheartbeat_url = "https://hc.x/SECRETX"\n',
            "alerts.heartbeat_url",
            "ACTORTRADE_HEARTBEAT_URL",
        ),
    ],
)
def test_an_alert_secret_in_the_config_file_is_refused_naming_its_variable(
    toml: str, path: str, variable: str
) -> None:
    """A webhook URL or token pasted into the file is an error that says which environment
    variable it belongs in, at its key path, and never shows the value."""
    (line,) = problems(toml)
    assert line.endswith(f" @ {path}"), line
    assert variable in line
    assert "SECRETX" not in line


def test_the_alerts_table_checks_its_kinds_and_urls() -> None:
    """A bad severity, method or Telegram base URL names its key path."""
    assert problems('[alerts.slack]\nmin_severity = "loud"\n')[0].endswith(
        " @ alerts.slack.min_severity"
    )
    assert problems('[alerts.heartbeat]\nmethod = "PUT"\n')[0].endswith(
        " @ alerts.heartbeat.method"
    )
    assert problems('[alerts.telegram]\napi_url = "ftp://x"\n')[0].endswith(
        " @ alerts.telegram.api_url"
    )
    assert problems("[alerts.slack]\nlevel = 3\n")[0].endswith(" @ alerts.slack")


def test_a_risk_percentage_without_an_equity_names_the_equity() -> None:
    """The daily loss guard and trade sizing are percentages of an equity that must be set."""
    for key in ("max_daily_loss_pct", "max_risk_pct_per_trade"):
        (line,) = problems(f"[risk]\n{key} = 2\n")
        assert line.endswith(f"must be set (> 0) when {key} is, got 0 @ risk.equity"), line
    assert parse(
        '[risk]\nequity = 50000\nmax_daily_loss_pct = 2\nmarket_hours = "regular"\n'
    ).risk == RiskConfig(
        equity=Decimal(50000), max_daily_loss_pct=Decimal(2), market_hours=MarketHours.REGULAR
    )
