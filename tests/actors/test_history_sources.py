"""``HistoryBySymbol``: each symbol's warm-up from its own source, and a symbol without one
refused by name."""

from __future__ import annotations

from datetime import datetime

import pytest

from actors.domain.bars import SessionKind
from actors.history import HistoryBySymbol, HistoryError, ReplayHistory
from sim.replay import generated_days

pytestmark = pytest.mark.anyio


async def test_each_symbol_is_answered_by_its_own_source() -> None:
    """Two replays of two symbols behind one HistoryBySymbol: each symbol gets its own
    source's bars, as that source alone gives them."""
    tqqq = generated_days(seed=3, days=1, symbol="TQQQ")
    qqq = generated_days(seed=4, days=1, symbol="QQQ")
    last = max(tqqq[-1].start, qqq[-1].start)

    def until() -> datetime:
        return last

    sources = {"TQQQ": ReplayHistory(tqqq, until=until), "QQQ": ReplayHistory(qqq, until=until)}
    both = HistoryBySymbol(sources)
    sessions: SessionKind = "extended"
    for symbol, source in sources.items():
        got = await both.recent(symbol, seconds=300, count=7, sessions=sessions)
        assert got == await source.recent(symbol, seconds=300, count=7, sessions=sessions)
        assert len(got) == 7
        assert {b.symbol for b in got} == {symbol}
    assert both.name == "replay (QQQ, TQQQ)"


async def test_a_symbol_without_a_source_is_refused_by_name() -> None:
    """Asking for a symbol no source serves raises HistoryError naming it."""
    history = HistoryBySymbol({})
    with pytest.raises(HistoryError, match=r"^no history source serves SQQQ$"):
        await history.recent("SQQQ", seconds=60, count=3, sessions="regular")
