"""A backtest's two shortcuts leave every run as it was: the replay taking a bar's four trades at
once when none of them can make anything happen (``ReplayFeed._whole``), and its requests run
by its own task when the actor is idle (``ActorRef.request_inline``). The same runs with and
without them give the same orders, fills and equity, for the bar-close strategies (limits that
miss, time-outs and retries included), the grid, regular-session bars over extended-hours data,
and two symbols on one clock, on asyncio and trio; and the shortcut is taken for most bars."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors import replay_feed
from actors.domain import Bar
from app.backtest.run import Recorded
from config.load import load_config, parse_config
from sim.replay import generated_days
from tests.actors.test_lazy_timer import _config, _drive, gapping

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


TWO_SYMBOLS = """
[[symbols]]
symbol = "TQQQ"
strategy = "ma_cross"

[symbols.ma_cross]
bar = "1min"
sessions = "regular"
fast = 5
slow = 15
target_notional = "10000"
order_type = "limit"
slippage_bps = "5"
tif = "DAY"
fill_timeout = 60.0
retry_delay = 5.0
max_attempts = 3
tick = "0.01"

[[symbols]]
symbol = "QQQ"
strategy = "momentum"

[symbols.momentum]
bar = "5min"
sessions = "extended"
lookback = 6
threshold = "0.001"
target_notional = "10000"
order_type = "market"
tif = "DAY"
fill_timeout = 60.0
retry_delay = 5.0
max_attempts = 3
tick = "0.01"
"""
"""A regular-session crossover of TQQQ and an extended-hours momentum of QQQ, on one clock."""


def _bars(example: str, days: int) -> list[Bar]:
    if example.endswith("_tight"):
        return gapping(days)
    if example == "two_symbols":
        both = generated_days(seed=5, days=days, symbol="TQQQ") + generated_days(
            seed=6, days=days, symbol="QQQ", start_price=Decimal("400.00")
        )
        return sorted(both, key=lambda b: (b.start, b.symbol))
    return generated_days(seed=14, days=days, symbol="TQQQ")


async def _run(folder: Path, example: str, days: int, *, shortcuts: bool) -> Recorded:
    folder.mkdir()  # noqa: ASYNC240 (a test's tmp_path)
    if example == "two_symbols":
        settings = parse_config(TWO_SYMBOLS, source="<two symbols>", base_dir=ROOT / "config")
    else:
        settings = load_config(_config(folder, example))
    return await _drive(folder, settings, _bars(example, days), shortcuts=shortcuts)


@pytest.mark.parametrize(
    ("example", "days"),
    [("ma_cross_tight", 2), ("ma_cross", 2), ("momentum", 2), ("grid", 2), ("two_symbols", 2)],
)
async def test_the_same_run_with_and_without_the_shortcuts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str, days: int
) -> None:
    taken = 0
    whole = replay_feed.ReplayFeed._whole

    def counted(self: replay_feed.ReplayFeed, *args: Any) -> Any:
        nonlocal taken
        result = whole(self, *args)
        taken += result is not None
        return result

    monkeypatch.setattr(replay_feed.ReplayFeed, "_whole", counted)
    stepped = await _run(tmp_path / "stepped", example, days, shortcuts=False)
    assert taken == 0
    fast = await _run(tmp_path / "fast", example, days, shortcuts=True)
    assert len(stepped.fills) > 4, "nothing traded"
    assert fast.orders == stepped.orders
    assert fast.fills == stepped.fills
    assert fast.equity == stepped.equity
    assert fast.trades == stepped.trades
    if example == "grid":
        # The grid always has orders working: every bar goes trade by trade.
        assert taken == 0
    else:
        assert taken > stepped.bars / 2, f"only {taken} of {stepped.bars} bars taken whole"
