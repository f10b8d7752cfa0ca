"""Money never moves by accident (SPEC 11): paper by default, live only with both the config's
mode and --live; IB's live ports refused otherwise."""

from __future__ import annotations

import pytest

from config.schema import BrokerConfig, BrokerKind, Config, Mode, live_problem, masked


def config(kind: BrokerKind = BrokerKind.IB, port: int = 7497, mode: Mode = Mode.PAPER) -> Config:
    return Config(mode=mode, broker=BrokerConfig(kind=kind, port=port))


def test_the_defaults_are_paper_and_allowed() -> None:
    """The shipped defaults start: embedded venue, paper."""
    assert live_problem(Config(), live_flag=False) is None
    assert live_problem(config(port=4002), live_flag=False) is None


@pytest.mark.parametrize("port", [7496, 4001])
def test_live_ports_are_refused_without_both_mode_and_flag(port: int) -> None:
    """7496/4001 need mode = "live" and --live; either alone is refused, naming the port."""
    for mode, flag in ((Mode.PAPER, False), (Mode.PAPER, True), (Mode.LIVE, False)):
        problem = live_problem(config(port=port, mode=mode), live_flag=flag)
        assert problem is not None
        assert str(port) in problem
    assert live_problem(config(port=port, mode=Mode.LIVE), live_flag=True) is None


def test_live_intent_on_one_side_only_is_refused() -> None:
    """--live without mode = "live" (or the reverse) is refused, saying what is missing."""
    assert "mode" in (live_problem(config(), live_flag=True) or "")
    assert "--live" in (live_problem(config(mode=Mode.LIVE), live_flag=False) or "")


@pytest.mark.parametrize("kind", [BrokerKind.EMBEDDED, BrokerKind.INPROCESS])
def test_the_sim_venue_is_paper_only(kind: BrokerKind) -> None:
    """Asking for live on the embedded venue is refused."""
    assert live_problem(config(kind=kind, mode=Mode.LIVE), live_flag=True) is not None


def test_account_ids_are_masked() -> None:
    """Only the last three characters of an account id are ever printed."""
    assert masked("DU1234567") == "******567"
    assert masked("") == "(none)"
