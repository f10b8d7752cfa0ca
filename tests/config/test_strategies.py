"""The strategy of each ``[[symbols]]`` table and the bar-close strategies' parameter tables:
the grid stays the default, the examples load, every key has its range, and every error names
the file and the key path."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from actors.strategies.grid import GridKind
from actors.strategies.ma_cross import MaCrossKind
from actors.strategies.momentum import MomentumKind
from actors.strategies.registry import strategy_kind
from config.errors import ConfigFileError, InvalidSetting
from config.load import load_config, parse_config, render_config
from config.lotmap import load_lot_map
from config.schema import Config, SymbolConfig
from config.strategies import MaCrossConfig, MomentumConfig, StrategyName, bar_seconds

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "config"
EXAMPLES = CONFIG_DIR / "examples"
SOURCE = "bot.toml"


def parse(text: str) -> Config:
    return parse_config(text, source=SOURCE, base_dir=CONFIG_DIR)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        parse(text)
    return str(info.value).splitlines()


def symbol(strategy: str, table: str = "", lots: bool = False) -> str:
    text = f'[[symbols]]\nsymbol = "TQQQ"\nstrategy = "{strategy}"\n'
    if lots:
        text += 'lots = "lots/tqqq.csv"\n'
    if table:
        text += f"[symbols.{strategy}]\n{table}"
    return text


@pytest.mark.parametrize("name", ["grid", "ma_cross", "momentum"])
def test_each_example_config_loads_and_makes_its_strategy(name: str) -> None:
    """config/examples/<name>.toml validates, and its parameters make the strategy's kind."""
    config = load_config(EXAMPLES / f"{name}.toml")
    (entry,) = config.symbols
    assert entry.strategy.value == name
    lot_map = load_lot_map(entry.lots) if entry.lots is not None else None
    kind = strategy_kind(name, entry.symbol, entry.strategy_parameters(), lot_map=lot_map)
    assert kind.name == name
    assert kind.symbol == "TQQQ"
    assert isinstance(
        kind, {"grid": GridKind, "ma_cross": MaCrossKind, "momentum": MomentumKind}[name]
    )
    if isinstance(kind, MaCrossKind):
        assert (kind.params.fast, kind.params.slow, kind.params.bar_seconds) == (10, 30, 60)
        assert kind.needs.warmup == 30
    elif isinstance(kind, MomentumKind):
        assert (kind.params.lookback, kind.params.threshold) == (12, Decimal("0.002"))
        assert (kind.params.order_type, kind.params.bar_seconds) == ("market", 300)
        assert kind.needs.bars == (300,)
    assert parse_config(render_config(config), source="r", base_dir=EXAMPLES) == config


def test_the_grid_stays_the_default_strategy() -> None:
    """A [[symbols]] table without `strategy` is the grid, with its lot map, as before."""
    config = parse('[[symbols]]\nsymbol = "TQQQ"\nlots = "lots/tqqq.csv"\n')
    (entry,) = config.symbols
    assert entry.strategy is StrategyName.GRID
    assert (entry.ma_cross, entry.momentum) == (None, None)
    assert entry.strategy_parameters() == attrs.asdict(entry.grid)
    assert Config().symbols[0].strategy is StrategyName.GRID


def test_defaults_fill_a_strategy_without_its_table() -> None:
    """strategy = "ma_cross" alone trades the defaults (10/30 on 1-minute bars)."""
    (entry,) = parse(symbol("ma_cross")).symbols
    assert entry.strategy_parameters() == MaCrossConfig().parameters()
    assert MaCrossConfig().parameters()["bar_seconds"] == 60


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            symbol("ma_cross", "fast = 30\nslow = 30\n"),
            "must be less than slow (30), got 30 @ symbols[0].ma_cross.fast",
        ),
        (symbol("ma_cross", "fats = 3\n"), "extra field 'fats' @ symbols[0].ma_cross"),
        (symbol("momentum", "lookback = 0\n"), "must be between 1 and 10000, got 0 @ symbols[0]"),
        (
            symbol("momentum", 'bar = "7 minutes"\n'),
            'must be a bar size like "1min", "5min", "1h" (1 minute to 8 hours, dividing the day) '
            "or \"1d\", got '7 minutes' @ symbols[0].momentum.bar",
        ),
        (
            symbol("ma_cross", 'order_type = "stop"\n'),
            "invalid value for type, expected one of 'limit', 'market', got 'stop' @ "
            "symbols[0].ma_cross.order_type",
        ),
        (
            symbol("momentum", 'tif = "day"\n'),
            "invalid value for type, expected one of 'DAY', 'GTC', got 'day' @ "
            "symbols[0].momentum.tif",
        ),
        (
            symbol("macd"),
            "invalid value for type, expected one of 'grid', 'ma_cross', 'momentum', 'scalp', "
            "'whale', got 'macd' @ symbols[0].strategy",
        ),
        (
            symbol("ma_cross", lots=True),
            'only the grid trades a lot map, not strategy = "ma_cross" @ symbols[0].lots',
        ),
        (
            '[[symbols]]\nsymbol = "TQQQ"\nlots = "lots/tqqq.csv"\n[symbols.momentum]\n',
            'a [symbols.momentum] table, but the symbol\'s strategy is "grid" @ '
            "symbols[0].momentum",
        ),
        (
            symbol("momentum") + "[symbols.ma_cross]\nfast = 3\n",
            'a [symbols.ma_cross] table, but the symbol\'s strategy is "momentum" @ '
            "symbols[0].ma_cross",
        ),
    ],
)
def test_a_bad_strategy_setting_names_the_file_and_the_key_path(text: str, problem: str) -> None:
    """One line per problem: ``file: problem @ symbols[i].<table>.<key>``."""
    (line,) = problems(text)
    assert line.startswith(f"{SOURCE}: ")
    assert problem in line


def test_the_key_path_names_the_right_symbol() -> None:
    """The second symbol's bad table is symbols[1]'s."""
    text = (
        '[[symbols]]\nsymbol = "TQQQ"\nlots = "lots/tqqq.csv"\n'
        '[[symbols]]\nsymbol = "QQQ"\nstrategy = "ma_cross"\n[symbols.ma_cross]\nfast = 40\n'
    )
    assert problems(text) == [
        f"{SOURCE}: must be less than slow (30), got 40 @ symbols[1].ma_cross.fast"
    ]


# Every numeric key of the strategy tables: its range's ends accepted, beyond them refused.
SHARED = [
    ("target_notional", ["1", '"1000000000"'], ["0", '"1000000000.01"', "nan", '"-5"']),
    ("slippage_bps", ["0", "1000"], ['"-0.1"', "1001", "inf"]),
    ("fill_timeout", ["1", "86400"], ["0.5", "86401", "nan"]),
    ("max_attempts", ["1", "100"], ["0", "101"]),
    ("retry_delay", ["0", "3600"], ["-1", "3601", "inf"]),
    ("tick", ['"0.0001"', "100"], ['"0.00009"', "101", '"sNaN"']),
]
RANGES = [
    *(("ma_cross", *row) for row in SHARED),
    *(("momentum", *row) for row in SHARED),
    ("ma_cross", "fast", ["1"], ["0", "-3"]),
    ("ma_cross", "slow", ["10000"], ["1", "10001"]),
    ("momentum", "lookback", ["1", "10000"], ["0", "10001"]),
    ("momentum", "threshold", ['"-0.99"', "10"], ['"-1"', "10.01", "nan"]),
]


def test_every_numeric_key_of_the_strategy_tables_has_a_range() -> None:
    """A new number in a strategy table comes with its range (and a row in RANGES)."""
    numeric = {
        (table, field.name)
        for table, cls in (("ma_cross", MaCrossConfig), ("momentum", MomentumConfig))
        for field in attrs.fields(attrs.resolve_types(cls))
        if field.type in (int, float, Decimal)
    }
    assert numeric == {(table, key) for table, key, *_ in RANGES}


@pytest.mark.parametrize(("table", "key", "accepted", "refused"), RANGES)
def test_every_strategy_key_takes_its_bounds_and_refuses_beyond_them(
    table: str, key: str, accepted: list[str], refused: list[str]
) -> None:
    """Both ends are accepted; beyond them the error names the key."""
    for value in accepted:
        parse(symbol(table, f"{key} = {value}\n"))
    for value in refused:
        (line,) = problems(symbol(table, f"{key} = {value}\n"))
        assert line.endswith(f" @ symbols[0].{table}.{key}"), line


@given(
    table=st.sampled_from(["ma_cross", "momentum"]),
    extra=st.dictionaries(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.integers(), min_size=1
    ),
)
def test_any_unknown_key_in_a_strategy_table_is_refused_and_named(
    table: str, extra: dict[str, int]
) -> None:
    """Whatever the keys, one line naming each of them and the table."""
    cls = MaCrossConfig if table == "ma_cross" else MomentumConfig
    assume(not extra.keys() & {field.name for field in attrs.fields(cls)})
    body = "".join(f"{key} = {value}\n" for key, value in extra.items())
    (line,) = problems(symbol(table, body))
    assert line.endswith(f" @ symbols[0].{table}")
    for key in extra:
        assert repr(key) in line


@pytest.mark.parametrize(
    ("text", "seconds"), [("1min", 60), ("5min", 300), ("90min", 5400), ("1h", 3600), ("1d", 86400)]
)
def test_bar_sizes_read_as_seconds(text: str, seconds: int) -> None:
    """The strategies take bar sizes in seconds."""
    assert bar_seconds(text) == seconds
    assert MomentumConfig(bar=text).parameters()["bar_seconds"] == seconds


@pytest.mark.parametrize(
    "text", ["0min", "2d", "9h", "7min", "25min", "7h", "1m", "min", "01min", " 1min"]
)
def test_bar_sizes_that_do_not_divide_a_trading_day_are_refused(text: str) -> None:
    """Minutes up to 8 hours, or one day."""
    with pytest.raises(InvalidSetting, match="bar size"):
        MaCrossConfig(bar=text)


def test_built_in_code_the_cross_field_rule_holds_too() -> None:
    """A config built in code (the command line's overrides) is checked the same way."""
    with pytest.raises(InvalidSetting, match="must be less than slow"):
        MaCrossConfig(fast=5, slow=5)
    with pytest.raises(InvalidSetting, match="lots: required field missing"):
        SymbolConfig(symbol="TQQQ")
    assert SymbolConfig(symbol="TQQQ", strategy=StrategyName.MOMENTUM).lots is None


def test_the_config_layer_imports_nothing_of_actors() -> None:
    """Plain typed values: loading a config with strategies imports no actors module."""
    code = (
        "import sys; from config.load import load_config; "
        "from pathlib import Path; load_config(Path('config/examples/ma_cross.toml')); "
        "print(sorted(m for m in sys.modules if m == 'actors' or m.startswith('actors.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_corporate_actions_load_and_bad_ones_are_named() -> None:
    """``[[corporate_actions]]``: the TQQQ example's eight splits load and render back; a bad
    date, ratio or amount, or both or neither of split and dividend, names the key path."""
    config = load_config(EXAMPLES / "grid_tqqq_daily.toml")
    assert [(a.date, a.split) for a in config.corporate_actions][4] == ("2018-05-24", "3")
    assert len(config.corporate_actions) == 8
    assert parse_config(render_config(config), source="r", base_dir=EXAMPLES) == config
    base = symbol("grid", lots=True) + '[[corporate_actions]]\nsymbol = "TQQQ"\n'
    for text, problem in [
        ('date = "2025-11-2"\nsplit = "2"', "must be a date YYYY-MM-DD, got 2025-11-2"),
        ('date = "2025-11-20"\nsplit = "0:1"', 'must be new shares per old, "2" or "3:2"'),
        ('date = "2025-11-20"\ndividend = -1', "@ corporate_actions[0].dividend"),
        ('date = "2025-11-20"\nsplit = "2"\ndividend = 1', "give exactly one of the two"),
        ('date = "2025-11-20"', "give exactly one of the two"),
    ]:
        with pytest.raises(ConfigFileError) as info:
            parse_config(base + text, source="c.toml", base_dir=CONFIG_DIR)
        assert problem in str(info.value)
        assert "corporate_actions[0]" in str(info.value)
