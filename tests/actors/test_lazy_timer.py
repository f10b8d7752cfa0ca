"""A backtest's symbol actors deliver only the timer ticks their strategies want
(``Wakes.next_wake``, ``SymbolActor.background``): the same runs with every tick and with only
those give the same orders, fills and equity, tick for tick, for the bar-close strategies
(whose fill time-outs and retries run on the timer) and the grid (its level-0 time-out), with
most ticks spared."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import symbol
from actors.domain import Bar
from actors.domain.sessions import NEW_YORK
from app.backtest.run import Recorded, drive
from app.compose import grid_params, strategy_kinds
from config.load import load_config
from config.lotmap import load_lot_map
from sim.replay import generated_days

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


TIGHT = {'slippage_bps = "10"': 'slippage_bps = "0"', "retry_delay = 5.0": "retry_delay = 40.0"}
"""The MA-crossover's example with its limits at the close and a 40 s retry delay, on bars that
gap in their trend's direction (``gapping``): its limits miss and time out, and their retries
wait out the delay over several ticks, until it gives up."""


def gapping(days: int) -> list[Bar]:
    """Regular-session minute bars in trends of 45 bars, up and down in turn, each bar opening
    0.1 % beyond the last close in the trend's direction; two bars in five trade back to it."""
    rng = random.Random(3)
    bars: list[Bar] = []
    close = Decimal(50)
    step = Decimal("1.001")
    for day in range(days):
        start = datetime(2026, 11, 23 + day, 9, 30, tzinfo=NEW_YORK)
        for minute in range(390):
            up = (len(bars) // 45) % 2 == 0
            factor = step if up else 1 / step
            before = close
            open_ = (close * factor).quantize(Decimal("0.01"))
            close = (open_ * factor).quantize(Decimal("0.01"))
            back = rng.random() < 0.4
            bars.append(
                Bar(
                    symbol="TQQQ",
                    start=start + timedelta(minutes=minute),
                    open=open_,
                    high=max(open_, close, before if back else open_),
                    low=min(open_, close, before if back else open_),
                    close=close,
                    volume=1000,
                )
            )
    return bars


def _config(folder: Path, example: str) -> Path:
    text = (ROOT / "config" / "examples" / f"{example.removesuffix('_tight')}.toml").read_text()
    if example.endswith("_tight"):
        for old, new in TIGHT.items():
            assert old in text
            text = text.replace(old, new)
    path = ROOT / "config" / "examples" / f"{example}.toml"
    if example.endswith("_tight"):
        path = folder / f"{example}.toml"
        path.write_text(text)
    return path


async def _run(
    folder: Path, example: str, days: int, *, lazy: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[Recorded, int]:
    folder.mkdir()  # noqa: ASYNC240 (a test's tmp_path)
    settings = load_config(_config(folder, example))
    ticks = 0
    made = symbol.TimerTick

    class Counted(made):  # type: ignore[misc,valid-type]
        def __init__(self) -> None:
            nonlocal ticks
            ticks += 1

    monkeypatch.setattr(symbol, "TimerTick", Counted)
    bars = (
        gapping(days)
        if example.endswith("_tight")
        else generated_days(seed=14, days=days, symbol="TQQQ")
    )
    recorded = await _drive(folder, settings, bars, lazy_timer=lazy)
    monkeypatch.setattr(symbol, "TimerTick", made)
    return recorded, ticks


async def _drive(folder: Path, settings: Any, bars: list[Bar], **options: bool) -> Recorded:
    """``drive`` over ``bars`` with the config's strategies; ``options``: its switches
    (``lazy_timer``, ``shortcuts``)."""
    lots = {s.symbol: load_lot_map(s.lots) for s in settings.symbols if s.lots is not None}
    with anyio.fail_after(900):
        return await drive(
            bars=bars,
            ledger=folder,
            lots=lots,
            kinds=strategy_kinds(settings),
            params=grid_params(settings),
            risk=None,
            initial_cash=Decimal(100_000),
            **options,
        )


@pytest.mark.parametrize(
    ("example", "days"), [("ma_cross_tight", 3), ("ma_cross", 3), ("momentum", 3), ("grid", 2)]
)
async def test_the_same_run_with_every_tick_and_with_only_the_wanted_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, example: str, days: int
) -> None:
    every, all_ticks = await _run(
        tmp_path / "every", example, days, lazy=False, monkeypatch=monkeypatch
    )
    wanted, few_ticks = await _run(
        tmp_path / "wanted", example, days, lazy=True, monkeypatch=monkeypatch
    )
    assert len(every.fills) > (4 if example.endswith("_tight") else 10), "nothing traded"
    assert wanted.orders == every.orders
    assert wanted.fills == every.fills
    assert wanted.equity == every.equity
    assert few_ticks < all_ticks / 3
    if example == "ma_cross_tight":
        # The timer's own work happened in both: fill time-outs (cancels) and retries.
        assert sum(o.status == "cancelled" for o in every.orders) > 10
        assert sum(o.ref.endswith(":3") for o in every.orders) > 3


MINUTES = ROOT.parent / "shared" / "marketdata" / "tqqq_1min" / "TQQQ_60day_1min_data.csv"


@pytest.mark.skipif(not MINUTES.exists(), reason="../shared/marketdata is not on this machine")
async def test_the_grid_on_45_real_sessions_is_the_same_with_prices_and_ticks_held_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: Any
) -> None:
    """The real TQQQ minutes: with every timer tick and every price delivered, and with the
    ticks the grid does not want spared and its quiet prices held back (``PRICES_QUIET``),
    the same 1,126 orders, 693 fills and equity."""
    if anyio_backend[0] == "trio":
        pytest.skip("one backend is enough for 42,228 bars (the generated runs cover trio)")
    from sim.data import load_table

    bars = load_table(MINUTES, "TQQQ", "1min").to_bars()
    settings = load_config(ROOT / "config" / "examples" / "grid.toml")
    runs = []
    for lazy in (False, True):
        folder = tmp_path / str(lazy)
        folder.mkdir()
        runs.append(await _drive(folder, settings, bars, lazy_timer=lazy))
    every, held = runs
    assert (len(every.orders), len(every.fills)) == (1126, 693)
    assert held.orders == every.orders
    assert held.fills == every.fills
    assert held.equity == every.equity
