"""``[history]``: where bar strategies' warm-up comes from, resolved per symbol for the broker
and the symbol's feed, and its errors named by key path."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from config.errors import ConfigFileError, InvalidSetting
from config.load import parse_config
from config.schema import (
    MAX_CLIENT_ID,
    BrokerConfig,
    BrokerKind,
    Config,
    FeedKind,
    HistoryConfig,
    HistoryFrom,
    HistorySource,
    SymbolConfig,
    history_client_id,
    history_of,
    history_problem,
)
from config.strategies import StrategyName

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
SOURCE = "bot.toml"
SYMBOLS = '[[symbols]]\nsymbol = "TQQQ"\nstrategy = "ma_cross"\n'


def parse(text: str) -> Config:
    return parse_config(text, source=SOURCE, base_dir=CONFIG_DIR)


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigFileError) as info:
        parse(text + SYMBOLS)
    return str(info.value).splitlines()


def config(kind: BrokerKind, source: HistorySource, *feeds: FeedKind) -> Config:
    return Config(
        broker=BrokerConfig(kind=kind),
        history=HistoryConfig(source=source),
        symbols=tuple(
            SymbolConfig(symbol=f"S{i}", strategy=StrategyName.MA_CROSS, feed=feed)
            for i, feed in enumerate(feeds)
        ),
    )


def test_the_history_table_reads_its_source_and_client_id() -> None:
    """`[history] source` and `client_id` are read; the defaults are auto and the broker's + 2."""
    settings = parse('[history]\nsource = "broker"\nclient_id = 17\n' + SYMBOLS)
    assert settings.history == HistoryConfig(source=HistorySource.BROKER, client_id=17)
    assert history_client_id(settings) == 17
    default = parse(SYMBOLS)
    assert default.history == HistoryConfig()
    assert history_client_id(default) == default.broker.client_id + 2 == 3


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[history]\nsource = "ib"\n',
            "invalid value for type, expected one of 'auto', 'replay', 'broker', 'feed', "
            "'none', got 'ib' @ history.source",
        ),
        ("[history]\nclient = 4\n", "extra field 'client' @ history"),
        (
            "[history]\nclient_id = -1\n",
            f"must be 0 (the broker's client_id + 2) or between 1 and {MAX_CLIENT_ID + 1}, "
            "got -1 @ history.client_id",
        ),
        (
            '[history]\nclient_id = "3"\n',
            "invalid value for type, expected int, got str @ history.client_id",
        ),
        (
            "[broker]\nclient_id = 5\n[history]\nclient_id = 5\n",
            "must differ from the clientIds of the broker and of IB market data, got 5, which "
            "is broker.client_id @ history.client_id",
        ),
        (
            "[broker]\nclient_id = 5\n[history]\nclient_id = 6\n",
            "must differ from the clientIds of the broker and of IB market data, got 6, which "
            "is broker.client_id + 1 (IB market data) @ history.client_id",
        ),
        ("history = 1\n", "invalid value for type, expected a table, got int @ history"),
    ],
)
def test_a_bad_history_setting_is_named_by_its_key_path(text: str, problem: str) -> None:
    """Each bad `[history]` value is one line naming the file and the key path."""
    assert problems(text) == [f"{SOURCE}: {problem}"]


def test_a_client_id_option_that_takes_the_historys_is_refused() -> None:
    """Changing the broker's clientId afterwards (--client-id) is checked against the history's."""
    settings = parse("[history]\nclient_id = 8\n" + SYMBOLS)
    with pytest.raises(InvalidSetting, match=r"^history\.client_id: must differ"):
        attrs.evolve(settings, broker=BrokerConfig(client_id=7))


def test_the_default_history_client_id_never_leaves_ibs_32_bits() -> None:
    """A broker at the top clientId gets a history clientId below it, never above the range."""
    top = Config(broker=BrokerConfig(client_id=MAX_CLIENT_ID))
    assert history_client_id(top) == MAX_CLIENT_ID - 1
    below = Config(broker=BrokerConfig(client_id=MAX_CLIENT_ID - 1))
    assert history_client_id(below) == MAX_CLIENT_ID + 1 == (1 << 31) - 1


@pytest.mark.parametrize(
    ("kind", "source", "expected"),
    [
        # auto: the replay on the sim venue; through IB, Alpaca's for Alpaca-fed, else IB's.
        (BrokerKind.EMBEDDED, HistorySource.AUTO, ["replay", "replay", "replay"]),
        (BrokerKind.IB, HistorySource.AUTO, ["ib", "alpaca", "ib"]),
        (BrokerKind.EMBEDDED, HistorySource.BROKER, ["ib", "ib", "ib"]),
        (BrokerKind.IB, HistorySource.BROKER, ["ib", "ib", "ib"]),
        (BrokerKind.EMBEDDED, HistorySource.FEED, ["replay", "alpaca", "ib"]),
        (BrokerKind.IB, HistorySource.FEED, ["ib", "alpaca", "ib"]),
        (BrokerKind.EMBEDDED, HistorySource.NONE, ["none", "none", "none"]),
        (BrokerKind.EMBEDDED, HistorySource.REPLAY, ["replay", "replay", "replay"]),
    ],
)
def test_each_symbols_history_follows_the_source_the_broker_and_its_feed(
    kind: BrokerKind, source: HistorySource, expected: list[str]
) -> None:
    """history_of resolves `[history] source` per symbol, by the broker and the symbol's feed."""
    feeds = (FeedKind.AUTO, FeedKind.ALPACA, FeedKind.IB)
    settings = config(kind, source, *feeds)
    assert [history_of(settings, s).value for s in settings.symbols] == expected
    assert all(isinstance(history_of(settings, s), HistoryFrom) for s in settings.symbols)


def test_a_source_the_broker_cannot_serve_is_a_problem_naming_the_key() -> None:
    """A replay through IB and IB's history on the in-process venue are refused, naming the key."""
    assert history_problem(config(BrokerKind.IB, HistorySource.REPLAY, FeedKind.IB)) == (
        "history.source = 'replay': a replay is the embedded venue's only, not IB's"
    )
    inprocess = config(BrokerKind.INPROCESS, HistorySource.BROKER, FeedKind.REPLAY)
    problem = history_problem(inprocess)
    assert problem is not None
    assert problem.startswith("history.source = 'broker': IB's reqHistoricalData needs [broker]")
    for fine in HistorySource:
        if fine is not HistorySource.REPLAY:
            assert history_problem(config(BrokerKind.IB, fine, FeedKind.IB)) is None
