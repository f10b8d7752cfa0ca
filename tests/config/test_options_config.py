"""The options strategies' tables, ``[symbols.scalp]`` and ``[symbols.whale]`` with their
sub-tables: the example loads and makes an ``OptionsKind``, the defaults are the strategy's,
every key has the strategy's range, and every error names the file and the key path."""

from __future__ import annotations

import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from actors.options.choice import ContractParams, EntryParams, LiquidityParams, SizingParams
from actors.options.signals import ScalpParams, WhaleParams
from actors.strategies.options import OptionsKind, OptionsParams
from actors.strategies.registry import STRATEGIES, StrategyError, strategy_kind
from config.errors import ConfigFileError, InvalidSetting
from config.load import load_config, parse_config, render_config
from config.schema import Config, SymbolConfig
from config.strategies import (
    STRATEGY_TABLES,
    ContractConfig,
    EntryConfig,
    LiquidityConfig,
    OptionsConfig,
    ScalpConfig,
    SizingConfig,
    StrategyName,
    WhaleConfig,
)

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "config"
EXAMPLE = CONFIG_DIR / "examples" / "options.toml"
SOURCE = "bot.toml"
SUB_TABLES = {
    "contract": ContractConfig,
    "liquidity": LiquidityConfig,
    "entry": EntryConfig,
    "sizing": SizingConfig,
}


def parse(text: str) -> Config:
    return parse_config(text, source=SOURCE, base_dir=CONFIG_DIR)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        parse(text)
    return str(info.value).splitlines()


def symbol(strategy: str, table: str = "", sub_table: str = "", body: str = "") -> str:
    """A ``[[symbols]]`` table of TQQQ trading ``strategy``, with ``body`` in
    ``[symbols.<table>]`` (``table`` defaults to the strategy's) or in its ``sub_table``."""
    text = f'[[symbols]]\nsymbol = "TQQQ"\nstrategy = "{strategy}"\n'
    if body or table or sub_table:
        path = ".".join(filter(None, ("symbols", table or strategy, sub_table)))
        text += f"[{path}]\n{body}"
    return text


def kind_of(entry: SymbolConfig) -> OptionsKind:
    kind = strategy_kind(entry.strategy.value, entry.symbol, entry.strategy_parameters())
    assert isinstance(kind, OptionsKind)
    return kind


def test_the_options_example_loads_and_makes_a_scalp() -> None:
    """config/examples/options.toml trades a TQQQ scalp with the values that let the embedded
    venue's generated session trade."""
    config = load_config(EXAMPLE)
    (entry,) = config.symbols
    assert (entry.symbol, entry.strategy, entry.lots) == ("TQQQ", StrategyName.SCALP, None)
    assert entry.tick == Decimal("0.01")
    kind = kind_of(entry)
    assert (kind.name, kind.symbol) == ("scalp", "TQQQ")
    assert kind.needs.bars == (60,)
    params = kind.params
    assert params.entry == EntryParams(entry_price="ask", tp_pct=Decimal(20), sl_pct=Decimal(20))
    assert params.contract.min_dte == 1
    assert params.sizing == SizingParams(
        max_risk_pct_per_trade=Decimal(1), max_contracts=2, max_notional=None
    )
    assert params.cooldown == 120.0
    assert params.scalp == ScalpParams()


def test_the_commented_out_whale_of_the_example_is_a_whale() -> None:
    """Uncommented, the example's second [[symbols]] table loads and makes a whale."""
    text = EXAMPLE.read_text()
    commented = text[text.index("# [[symbols]]") :]
    uncommented = re.sub(r"^# ?", "", commented, flags=re.MULTILINE)
    config = parse(text + uncommented)
    assert [s.strategy for s in config.symbols] == [StrategyName.SCALP, StrategyName.WHALE]
    kind = kind_of(config.symbols[1])
    assert kind.name == "whale"
    assert kind.params.whale == WhaleParams()
    assert kind.params.entry.entry_price == "ask"


@pytest.mark.parametrize("name", ["scalp", "whale"])
def test_a_strategy_without_its_table_trades_the_strategy_defaults(name: str) -> None:
    """strategy = "scalp" (or "whale") alone: OptionsParams' own defaults, the tick 0.01."""
    (entry,) = parse(symbol(name)).symbols
    assert entry.tick == Decimal("0.01")
    assert kind_of(entry).params == OptionsParams(symbol="TQQQ")
    assert entry.strategy_parameters() == STRATEGY_TABLES[entry.strategy]().parameters()


def test_the_options_strategies_are_known_to_the_registry() -> None:
    """Every configurable strategy has a kind of that name."""
    assert [s.value for s in StrategyName] == list(STRATEGIES)


def test_parameters_are_the_plain_mapping_options_params_takes() -> None:
    """``{"scalp": {...}}``, a mapping per sub-table, the time rules; no tick, no enums."""
    parameters = ScalpConfig(
        sizing=SizingConfig(max_notional=Decimal(500)), entry=EntryConfig(entry_price="ask")
    ).parameters()
    assert set(parameters) == {
        "scalp",
        "contract",
        "liquidity",
        "entry",
        "sizing",
        "entry_timeout",
        "on_timeout",
        "max_replaces",
        "cooldown",
        "close_before_expiry",
    }
    assert parameters["scalp"] == attrs.asdict(ScalpParams())
    assert parameters["sizing"] == {
        "max_risk_pct_per_trade": Decimal(1),
        "max_contracts": 10,
        "max_notional": Decimal(500),
    }
    assert parameters["entry"] == {"entry_price": "ask", "tp_pct": 50, "sl_pct": 30}
    assert type(parameters["on_timeout"]) is str
    assert "whale" in WhaleConfig().parameters()


# Every key of an options table, none at its default; the rule's own keys by strategy.
RULE_BODY = {
    "scalp": (
        "rsi_period = 9\noversold = 25.5\noverbought = 80\nvolume_window = 5\n"
        'volume_factor = "1.5"\n'
    ),
    "whale": 'volume_multiple = "4"\nlookback_days = 10\ndebounce_days = 2\n',
}
RULE_PARAMS = {
    "scalp": ScalpParams(
        rsi_period=9, oversold=25.5, overbought=80.0, volume_window=5, volume_factor=Decimal("1.5")
    ),
    "whale": WhaleParams(volume_multiple=Decimal(4), lookback_days=10, debounce_days=2),
}
SHARED_BODY = """\
entry_timeout = 30.0
on_timeout = "replace"
max_replaces = 3
cooldown = 45.5
close_before_expiry = 30
tick = "0.05"
[symbols.{name}.contract]
min_dte = 0
strikes_out = -2
[symbols.{name}.liquidity]
max_spread_pct = "12.5"
min_volume = 0
min_open_interest = 1000
[symbols.{name}.entry]
entry_price = "mid"
tp_pct = "35"
sl_pct = "15.5"
[symbols.{name}.sizing]
max_risk_pct_per_trade = "2.5"
max_contracts = 7
max_notional = "1500"
"""


@pytest.mark.parametrize("name", ["scalp", "whale"])
def test_the_registry_makes_the_configured_options_params(name: str) -> None:
    """Every key given in the file arrives in OptionsParams, in its sub-table."""
    body = RULE_BODY[name] + SHARED_BODY.format(name=name)
    (entry,) = parse(symbol(name, body=body)).symbols
    assert entry.tick == Decimal("0.05")
    expected = OptionsParams(
        symbol="TQQQ",
        contract=ContractParams(min_dte=0, strikes_out=-2),
        liquidity=LiquidityParams(
            max_spread_pct=Decimal("12.5"), min_volume=0, min_open_interest=1000
        ),
        entry=EntryParams(entry_price="mid", tp_pct=Decimal(35), sl_pct=Decimal("15.5")),
        sizing=SizingParams(
            max_risk_pct_per_trade=Decimal("2.5"), max_contracts=7, max_notional=Decimal(1500)
        ),
        entry_timeout=30.0,
        on_timeout="replace",
        max_replaces=3,
        cooldown=45.5,
        close_before_expiry=30,
    )
    kind = kind_of(entry)
    assert kind.name == name
    assert kind.params == attrs.evolve(expected, **{name: RULE_PARAMS[name]})


# Every numeric key of the options tables: its range's ends accepted, beyond them refused.
# (table: the strategy table, then the sub-table if any.)
SHARED = [
    ("", "entry_timeout", ["0.001", "86400"], ["0", "86400.5", "-1", "nan"]),
    ("", "max_replaces", ["0", "390"], ["-1", "391"]),
    ("", "cooldown", ["0.001", "86400"], ["0", "86401", "inf"]),
    ("", "close_before_expiry", ["0", "390"], ["-1", "391"]),
    ("", "tick", ['"0.0001"', "100"], ['"0.00009"', "101", '"NaN"']),
    ("contract", "min_dte", ["0", "1000"], ["-1", "1001"]),
    ("contract", "strikes_out", ["-100", "100"], ["-101", "101"]),
    ("liquidity", "max_spread_pct", ['"0.01"', "200"], ["0", '"-1"', "200.5"]),
    ("liquidity", "min_volume", ["0", "1000000000"], ["-1", "1000000001"]),
    ("liquidity", "min_open_interest", ["0", "1000000000"], ["-1", "1000000001"]),
    ("entry", "tp_pct", ['"0.01"', "10000"], ["0", "10000.01", '"-5"']),
    ("entry", "sl_pct", ['"0.01"', '"99.99"'], ["0", "100", "-1"]),
    ("sizing", "max_risk_pct_per_trade", ['"0.01"', "100"], ["0", "100.01"]),
    ("sizing", "max_contracts", ["1", "10000"], ["0", "10001"]),
    ("sizing", "max_notional", ["0", "1", '"1000000000"'], ['"0.5"', '"-1"', "1000000001"]),
]
RANGES = [
    *(("scalp", *row) for row in SHARED),
    *(("whale", *row) for row in SHARED),
    ("scalp", "", "rsi_period", ["1", "10000"], ["0", "10001"]),
    ("scalp", "", "oversold", ["0.01"], ["0", "-1", "nan"]),
    ("scalp", "", "overbought", ["99.99"], ["100", "101", "inf"]),
    ("scalp", "", "volume_window", ["1", "10000"], ["0", "10001"]),
    ("scalp", "", "volume_factor", ['"0.001"', "1000"], ["0", '"-1"', "1000.5"]),
    ("whale", "", "volume_multiple", ['"0.001"', "1000"], ["0", '"-1"', "1001"]),
    ("whale", "", "lookback_days", ["1", "1000"], ["0", "1001"]),
    ("whale", "", "debounce_days", ["1", "365"], ["0", "366"]),
]


def test_every_numeric_key_of_the_options_tables_has_a_range() -> None:
    """A new number in an options table comes with its range (and a row in RANGES)."""
    numeric = set()
    for name, cls in (("scalp", ScalpConfig), ("whale", WhaleConfig)):
        tables: dict[str, type] = {"": cls, **SUB_TABLES}
        for sub_table, table_class in tables.items():
            numeric |= {
                (name, sub_table, field.name)
                for field in attrs.fields(attrs.resolve_types(table_class))
                if field.type in (int, float, Decimal)
            }
    assert numeric == {(name, sub_table, key) for name, sub_table, key, *_ in RANGES}


@pytest.mark.parametrize(("name", "sub_table", "key", "accepted", "refused"), RANGES)
def test_every_options_key_takes_its_bounds_and_refuses_beyond_them(
    name: str, sub_table: str, key: str, accepted: list[str], refused: list[str]
) -> None:
    """Both ends are accepted, by the config and by the strategy; beyond them the error names
    the key path."""
    for value in accepted:
        (entry,) = parse(symbol(name, sub_table=sub_table, body=f"{key} = {value}\n")).symbols
        kind_of(entry)
    path = ".".join(filter(None, (f"symbols[0].{name}", sub_table, key)))
    for value in refused:
        (line,) = problems(symbol(name, sub_table=sub_table, body=f"{key} = {value}\n"))
        assert line.startswith(f"{SOURCE}: ")
        assert line.endswith(f" @ {path}"), line


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            symbol("scalp", body="oversold = 70\noverbought = 70\n"),
            "must be less than overbought (70), got 70 @ symbols[0].scalp.oversold",
        ),
        (
            symbol("scalp", sub_table="entry", body='entry_price = "bid"\n'),
            "invalid value for type, expected one of 'mid', 'ask', got 'bid' @ "
            "symbols[0].scalp.entry.entry_price",
        ),
        (
            symbol("whale", body='on_timeout = "retry"\n'),
            "invalid value for type, expected one of 'cancel', 'replace', got 'retry' @ "
            "symbols[0].whale.on_timeout",
        ),
        (
            symbol("scalp", sub_table="sizing", body="max_notional = 0.5\n"),
            "must be 0 (no cap) or between 1 and 1000000000, got 0.5 @ "
            "symbols[0].scalp.sizing.max_notional",
        ),
        (
            symbol("scalp", body="contract = 3\n"),
            "invalid value for type, expected a table, got int @ symbols[0].scalp.contract",
        ),
        (
            symbol("scalp", table="whale"),
            'a [symbols.whale] table, but the symbol\'s strategy is "scalp" @ symbols[0].whale',
        ),
        (
            symbol("whale", table="scalp", sub_table="entry", body="tp_pct = 10\n"),
            'a [symbols.scalp] table, but the symbol\'s strategy is "whale" @ symbols[0].scalp',
        ),
        (
            symbol("momentum", table="scalp"),
            'a [symbols.scalp] table, but the symbol\'s strategy is "momentum" @ symbols[0].scalp',
        ),
        (
            symbol("scalp", table="momentum", body="lookback = 3\n"),
            'a [symbols.momentum] table, but the symbol\'s strategy is "scalp" @ '
            "symbols[0].momentum",
        ),
        (
            symbol("scalp", body="lookback_days = 3\n"),
            "extra field 'lookback_days' @ symbols[0].scalp",
        ),
        (
            symbol("whale", sub_table="exits", body="tp_pct = 3\n"),
            "extra field 'exits' @ symbols[0].whale",
        ),
        (
            symbol("whale", sub_table="entry", body="tp = 3\nsl = 2\n"),
            "extra fields 'sl', 'tp' @ symbols[0].whale.entry",
        ),
        (
            symbol("scalp") + 'lots = "lots/tqqq.csv"\n',
            'only the grid trades a lot map, not strategy = "scalp" @ symbols[0].lots',
        ),
    ],
)
def test_a_bad_options_setting_names_the_file_and_the_key_path(text: str, problem: str) -> None:
    """One line per problem: ``file: problem @ symbols[i].<table>[.<sub-table>].<key>``."""
    (line,) = problems(text)
    assert line == f"{SOURCE}: {problem}"


@given(
    name=st.sampled_from(["scalp", "whale"]),
    sub_table=st.sampled_from(sorted(SUB_TABLES)),
    extra=st.dictionaries(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True), st.integers(), min_size=1
    ),
)
def test_any_unknown_key_in_an_options_sub_table_is_refused_and_named(
    name: str, sub_table: str, extra: dict[str, int]
) -> None:
    """Whatever the keys, one line naming each of them and the sub-table."""
    assume(not extra.keys() & {field.name for field in attrs.fields(SUB_TABLES[sub_table])})
    body = "".join(f"{key} = {value}\n" for key, value in extra.items())
    (line,) = problems(symbol(name, sub_table=sub_table, body=body))
    assert line.endswith(f" @ symbols[0].{name}.{sub_table}")
    for key in extra:
        assert repr(key) in line


def test_built_in_code_the_options_tables_are_checked_too() -> None:
    """A table built in code (the command line's overrides) is checked the same way."""
    with pytest.raises(InvalidSetting, match=r"^oversold: must be less than overbought"):
        ScalpConfig(oversold=80.0)
    with pytest.raises(InvalidSetting, match=r"^sl_pct: must be above 0 and under 100 %"):
        EntryConfig(sl_pct=Decimal(100))
    with pytest.raises(InvalidSetting, match=r"^whale: a \[symbols\.whale\] table"):
        SymbolConfig(symbol="TQQQ", strategy=StrategyName.SCALP, whale=WhaleConfig())
    entry = SymbolConfig(symbol="TQQQ", strategy=StrategyName.WHALE, whale=WhaleConfig())
    assert entry.strategy_parameters()["whale"] == attrs.asdict(WhaleParams())
    assert issubclass(STRATEGY_TABLES[StrategyName.WHALE], OptionsConfig)


@pytest.mark.parametrize(
    ("name", "parameters", "message"),
    [
        (
            "scalp",
            {"contract": {"min_dte": 1, "max_dte": 9}},
            "TQQQ: scalp: the contract table takes no parameter 'max_dte' (it takes min_dte, "
            "strikes_out)",
        ),
        (
            "whale",
            {"whale": {"lookback": 3}},
            "TQQQ: whale: the whale rule takes no parameter 'lookback' (it takes "
            "debounce_days, lookback_days, volume_multiple)",
        ),
        ("scalp", {"whale": {}}, "TQQQ: the scalp strategy takes no parameter 'whale'"),
        ("whale", {"bar": "1min"}, "TQQQ: the whale strategy takes no parameter 'bar'"),
        (
            "scalp",
            {"liquidity": {"min_volume": -1}},
            "TQQQ: scalp: liquidity: min_volume must be 0 or more, got -1",
        ),
        (
            "scalp",
            {"entry": {"tp_pct": "lots"}},
            "TQQQ: scalp: entry: tp_pct must be a decimal number, got 'lots'",
        ),
        (
            "scalp",
            {"scalp": {"oversold": 0}},
            "TQQQ: scalp: oversold must be an RSI level strictly between 0 and 100, got 0",
        ),
        (
            "whale",
            {"cooldown": 0},
            "TQQQ: whale: cooldown must be between 0 and 86400 seconds, got 0",
        ),
        (
            "whale",
            {"sizing": 3},
            "TQQQ: whale: expected a table of SizingParams settings, got 3",
        ),
    ],
)
def test_the_registry_names_the_symbol_strategy_and_key_of_bad_options_parameters(
    name: str, parameters: dict[str, object], message: str
) -> None:
    """Unknown keys, in the strategy or in a sub-table, and bad values are StrategyErrors."""
    with pytest.raises(StrategyError) as info:
        strategy_kind(name, "TQQQ", parameters)
    assert str(info.value) == message


def test_the_options_example_renders_back_unchanged() -> None:
    """``actorctl check`` prints the example as a file that reads back as the same config."""
    config = load_config(EXAMPLE)
    assert parse_config(render_config(config), source="r", base_dir=EXAMPLE.parent) == config


def test_loading_the_options_example_imports_nothing_of_actors() -> None:
    """Plain typed values: the config layer checks the options tables itself."""
    code = (
        "import sys; from config.load import load_config; "
        "from pathlib import Path; load_config(Path('config/examples/options.toml')); "
        "print(sorted(m for m in sys.modules if m == 'actors' or m.startswith('actors.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
