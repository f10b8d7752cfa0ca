"""The alerts actor in the trading tree: a dead alert endpoint slows no trading."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors.alerts import AlertSettings, ChannelSpec, DescribeAlerts
from actors.alerts_http import ChannelSettings, DiscordWebhook, SlackWebhook
from actors.lot_keeper import LedgerState, LoadLedger
from app.compose import sim_trading
from config.lotmap import load_lot_map
from sim.replay import generated_session
from supervisors import Supervisor
from tests.http_recorder import Answer, Recorder

from .test_trading_loop import cross_check
from .trading_checks import check_agreement

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks: real sockets, and the lot-keeper's writer thread."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


async def test_a_dead_alert_endpoint_leaves_the_trading_day_unchanged(tmp_path: Path) -> None:
    """Discord accepts and never answers: the generated day still trades to the plain model's
    outcome in lockstep, Slack gets the symbol's "trading" notice, and the alert stays in
    flight to Discord the whole day."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    async with (
        Recorder.serving(lambda _r: Answer(hang=True)) as dead,
        Recorder.serving() as slack,
    ):
        trading = sim_trading(
            data_dir=tmp_path / "ledger",
            bars=bars,
            lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
            alerting=AlertSettings(
                channels=(
                    ChannelSpec(
                        endpoint=DiscordWebhook(url=dead.url),
                        settings=ChannelSettings(timeout=3600.0),
                    ),
                    ChannelSpec(endpoint=SlackWebhook(url=slack.url)),
                ),
                flush_timeout=0.1,
            ),
        )
        root = Supervisor("root", trading.spec, hooks=trading.hooks)
        with anyio.fail_after(600):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await trading.finished.wait()
                keeper = trading.cells["lot-keeper"].ref
                ledger: LedgerState = await keeper.request(LoadLedger(symbol="TQQQ"), timeout=30)
                (notice,) = await slack.wait_for(1)
                status = await trading.cells["alerts"].ref.request(DescribeAlerts(), timeout=30)
                in_flight = len(dead.requests)
                root.stop()
    assert root.restarts == 0
    check_agreement(trading, ledger, "TQQQ")
    cross_check(trading, ledger, bars)
    assert notice.json()["text"].startswith("actortrade INFO TQQQ trading: grid reconciled")
    assert in_flight == 1
    figures = {c.name: c for c in status.channels}
    assert (figures["discord"].sent, figures["discord"].failed) == (0, 0)
    assert figures["discord"].queued == len(trading.alerts)
    assert next(a.kind for a in trading.alerts) == "trading"


async def test_a_killed_symbol_actor_is_a_restart_alert_on_slack(tmp_path: Path) -> None:
    """Through the tree's hooks: a symbol actor killed mid-day is restarted, and Slack is told
    which child exited and what was restarted, naming its symbol."""
    bars = generated_session(seed=11, day=date(2026, 11, 23))
    async with Recorder.serving() as slack:
        trading = sim_trading(
            data_dir=tmp_path / "ledger",
            bars=bars,
            lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
            alerting=AlertSettings(channels=(ChannelSpec(endpoint=SlackWebhook(url=slack.url)),)),
        )
        root = Supervisor("root", trading.spec, hooks=trading.hooks)
        with anyio.fail_after(600):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                await slack.wait_for(1)
                symbols = root.child("symbols")
                assert isinstance(symbols, Supervisor)
                symbols.kill("symbol.TQQQ")
                while not any(KILLED in t for t in _texts(slack.requests)):
                    await slack.wait_for(len(slack.requests) + 1)
                await trading.finished.wait()
                root.stop()
    (told,) = [t for t in _texts(slack.requests) if KILLED in t]
    assert told.startswith(f"actortrade WARNING TQQQ {KILLED} (killed)")
    assert told.endswith("restarted: symbol.TQQQ")
    assert any(a.kind == "restart" and a.symbol == "TQQQ" for a in trading.alerts)


KILLED = "restart: root/symbols/symbol.TQQQ exited"


def _texts(requests: list[Any]) -> list[str]:
    return [r.json()["text"] for r in requests]
