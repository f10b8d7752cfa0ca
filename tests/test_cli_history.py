"""Where a bar strategy's warm-up comes from, through the real ``actorctl start``: on the embedded
venue from the replay or, with ``--history broker``, from IB's ``reqHistoricalData`` through
ib_insync over the venue's TWS API socket; through IB (a TWS API server on loopback standing in
for TWS) over the same socket; and a start refused, before anything runs, when no source can
warm a strategy that needs it."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import anyio.from_thread
import attrs
import pytest

from actors.domain import Bar, Instrument, Side
from actors.domain.sessions import NEW_YORK, is_trading_day
from sim.alpaca.server import BARS_PATH, AlpacaServer
from sim.engine import Engine
from sim.journal import Journal, open_engine
from sim.replay import generated_days, trades
from sim.tws.server import TwsServer
from tests.actors.test_bar_strategies import plain_ma_cross
from tests.test_cli import ACTORCTL, _env, run

FAST, SLOW, NOTIONAL = 3, 6, Decimal(10000)
CROSSOVER = f"""
[[symbols]]
symbol = "TQQQ"
strategy = "ma_cross"

[symbols.ma_cross]
bar = "1min"
sessions = "extended"
fast = {FAST}
slow = {SLOW}
target_notional = "{NOTIONAL}"
"""
REQ_HISTORICAL_DATA = 20


def _days() -> tuple[list[Bar], list[Bar]]:
    # Two generated days (seed 14), split at New York's midnight.
    bars = generated_days(seed=14, days=2)
    first = bars[0].start.astimezone(NEW_YORK).date()
    day1 = [b for b in bars if b.start.astimezone(NEW_YORK).date() == first]
    return day1, bars[len(day1) :]


def _venue_that_printed(day: list[Bar], data: Path) -> None:
    # The venue's journal as a run that replayed `day` leaves it: every trade printed, no order.
    data.mkdir()
    engine = open_engine(data / "venue.journal")
    for t in trades(day):
        engine.on_trade(t.symbol, t.price, t.size, t.at)
    journal = engine.recorder
    assert isinstance(journal, Journal)
    journal.close()


def _first_order(data: Path) -> tuple[str, Side, int]:
    engine = open_engine(data / "venue.journal")
    journal = engine.recorder
    assert isinstance(journal, Journal)
    journal.close()
    first = next(iter(engine.orders.values()))  # in the order they were placed
    return first.ref, first.side, first.quantity


def _expected(warm: list[Bar], live: list[Bar]) -> tuple[int, tuple[str, Side, int]]:
    # The plain crossover over the warm-up then the live bars: the first signal on a live bar
    # (none on a warm-up bar, whose decision is not taken) as the order's ref, side and size.
    signals = plain_ma_cross([b.close for b in [*warm, *live]], FAST, SLOW, NOTIONAL)
    assert signals
    assert signals[0][0] >= len(warm), signals[:1]
    index, side, quantity = signals[0]
    bar = live[index - len(warm)]
    return index - len(warm), (f"ma_cross:TQQQ:E.{int(bar.start.timestamp())}:1", side, quantity)


@contextmanager
def _killed_after(process: subprocess.Popen[str], seconds: float) -> Iterator[None]:
    # A start that never gets where the test waits for is killed, so that the test fails
    # instead of hanging on its output.
    timer = threading.Timer(seconds, process.kill)
    timer.start()
    try:
        yield
    finally:
        # Whatever the test saw, the process ends (stopped, or killed by the timer).
        process.communicate()
        timer.cancel()


def _line_starting(process: subprocess.Popen[str], prefix: str) -> tuple[str, list[str]]:
    assert process.stdout is not None
    seen: list[str] = []
    for line in process.stdout:
        seen.append(line.rstrip("\n"))
        if line.startswith(prefix):
            return seen[-1], seen
    stderr = process.stderr.read() if process.stderr else ""
    raise AssertionError(f"no line starting {prefix!r}: {seen[-5:]}; stderr: {stderr[-3000:]}")


@pytest.mark.parametrize(
    ("options", "at_the_clock"),
    [
        (["--history", "broker"], True),
        (["--history", "auto"], False),
        (["--history", "feed", "--feed", "alpaca"], True),
    ],
)
def test_a_resumed_embedded_run_warms_up_from_the_bars_the_venue_printed(
    tmp_path: Path, options: list[str], at_the_clock: bool
) -> None:
    """On a venue whose journal holds day 1, `actorctl start --days 2 --history broker` warms
    the crossover with day 1's bars through IBHistory, ib_insync and the venue's TWS API
    server's reqHistoricalData, `--history feed --feed alpaca` through AlpacaHistory, alpaca-py
    and the venue's Alpaca server (both less the bar in progress at the venue's clock, its last
    trade), and `auto` from the replay (that bar included): the first order is the plain
    crossover's over each warm-up then day 2, on a bar before it could have decided cold."""
    day1, day2 = _days()
    data = tmp_path / "data"
    _venue_that_printed(day1, data)
    config = tmp_path / "crossover.toml"
    config.write_text(CROSSOVER)
    socket = tmp_path / "ctl.sock"
    process = subprocess.Popen(
        [
            ACTORCTL,
            "start",
            "--config",
            str(config),
            "--days",
            "2",
            "--seed",
            "14",
            "--speed",
            "0",
            "--no-tracing",
            *options,
            "--data-dir",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(socket),
    )
    with _killed_after(process, 120):
        _line_starting(process, "reconciled with the venue: TQQQ position 0 shares")
        fill, _ = _line_starting(process, "20")
        stop = run("stop", socket=socket)
        assert stop.returncode == 0, stop.stderr
    assert process.returncode == 0
    # IB's and Alpaca's answers end before the bar of the venue's last trade (in progress at
    # its clock); the replay's includes it whole.
    from_ib, from_replay = _expected(day1[:-1][-SLOW:], day2), _expected(day1[-SLOW:], day2)
    at, expected = from_ib if at_the_clock else from_replay
    assert from_ib != from_replay  # the order tells which history warmed it
    assert at < SLOW  # cold, the crossover needs SLOW live bars before its first signal
    assert _first_order(data) == expected
    assert f"({expected[0].split(':')[2]})" in fill


def _history_bars() -> list[Bar]:
    # Six falling minutes, Monday 23 November 2026 from 10:00 New York: warm, the crossover
    # is flat (fast below slow).
    start = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)
    closes = ["60.00", "59.50", "59.00", "58.50", "58.00", "57.50"]
    return [
        Bar(
            symbol="TQQQ",
            start=start + timedelta(minutes=i),
            open=Decimal(c),
            high=Decimal(c),
            low=Decimal(c),
            close=Decimal(c),
            volume=1000,
        )
        for i, c in enumerate(closes)
    ]


@contextmanager
def _tws(history: list[Bar], now: datetime) -> Iterator[TwsServer]:
    # Our TWS API server on loopback, standing in for TWS, in a thread of its own (the test
    # body waits on a subprocess).
    server = TwsServer(
        Engine(),
        instruments=[Instrument(symbol="TQQQ", con_id=900001)],
        clock=lambda: now,
        history=history,
    )
    with anyio.from_thread.start_blocking_portal() as portal:
        future, _port = portal.start_task(server.serve)
        try:
            yield server
        finally:
            future.cancel()


def _sma(closes: list[Decimal], n: int) -> Fraction:
    return sum((Fraction(c) for c in closes[-n:]), Fraction(0)) / n


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_live_ib_config_warms_up_through_req_historical_data_over_the_socket(
    tmp_path: Path, dry_run: bool
) -> None:
    """With `[broker] kind = "ib"`, `actorctl start` (and `--dry-run` alike) warms the
    crossover with IB's reqHistoricalData through ib_insync on a clientId of its own, beside
    the broker's and IB market data's: warm as it starts, its averages the history's."""
    bars = _history_bars()
    with _tws(bars, now=bars[-1].start + timedelta(minutes=30)) as server:
        config = tmp_path / "live.toml"
        config.write_text(f'[broker]\nkind = "ib"\nport = {server.port}\n{CROSSOVER}')
        socket = tmp_path / "ctl.sock"
        process = subprocess.Popen(
            [
                ACTORCTL,
                "start",
                "--config",
                str(config),
                "--no-tracing",
                *(["--dry-run"] if dry_run else []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(socket),
        )
        with _killed_after(process, 60):
            line, _ = _line_starting(process, "reconciled with the venue: TQQQ")
            assert line.endswith("trading"), line
            status = run("status", socket=socket)
            stop = run("stop", socket=socket)
            assert stop.returncode == 0, stop.stderr
        assert process.returncode == 0
        assert server.requests[REQ_HISTORICAL_DATA] == 1
    assert status.returncode == 0, status.stderr
    shown = next(s for s in status.stdout.splitlines() if s.startswith("TQQQ: "))
    assert "warm True" in shown, shown
    closes = [b.close for b in bars]
    fast, slow = _sma(closes, FAST), _sma(closes, SLOW)
    assert fast < slow
    assert f"fast {Decimal(fast.numerator) / Decimal(fast.denominator):.4f}" in shown, shown


def _last_trading_day_before(day: date) -> date:
    day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def test_a_live_config_with_an_alpaca_fed_symbol_warms_up_from_alpacas_bars(
    tmp_path: Path,
) -> None:
    """Through IB with the symbol fed by Alpaca, `actorctl start` warms the crossover from
    Alpaca's REST bars through alpaca-py, with the keys from the environment (as the feed),
    not from IB: warm as it starts, its averages those of the bars Alpaca served."""
    # Alpaca's bars are asked for up to now (the wall clock, as live): the last trading day's.
    day = _last_trading_day_before(datetime.now(NEW_YORK).date())
    start = datetime.combine(day, datetime.min.time(), tzinfo=NEW_YORK).replace(hour=10)
    bars = [
        attrs.evolve(b, start=start + (b.start - _history_bars()[0].start)) for b in _history_bars()
    ]
    key, secret = "PKHISTORYTEST", "history-test-secret"
    alpaca = AlpacaServer(credentials={key: secret}, history=bars)
    tws = TwsServer(
        Engine(),
        instruments=[Instrument(symbol="TQQQ", con_id=900001)],
        clock=lambda: bars[-1].start + timedelta(minutes=30),
    )
    with anyio.from_thread.start_blocking_portal() as portal:
        tws_serving, _ = portal.start_task(tws.serve)
        alpaca_serving, _ = portal.start_task(alpaca.serve)
        config = tmp_path / "hybrid.toml"
        config.write_text(
            f'[broker]\nkind = "ib"\nport = {tws.port}\n'
            f'[alpaca]\nstream_url = "{alpaca.url("iex")}"\ndata_url = "{alpaca.rest_url}"\n'
            + CROSSOVER.replace(
                'strategy = "ma_cross"\n', 'strategy = "ma_cross"\nfeed = "alpaca"\n'
            )
        )
        socket = tmp_path / "ctl.sock"
        process = subprocess.Popen(
            [ACTORCTL, "start", "--config", str(config), "--no-tracing"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**_env(socket), "ALPACA_KEY": key, "ALPACA_SECRET": secret},
        )
        try:
            with _killed_after(process, 60):
                line, _ = _line_starting(process, "reconciled with the venue: TQQQ")
                assert line.endswith("trading"), line
                status = run("status", socket=socket)
                stop = run("stop", socket=socket)
                assert stop.returncode == 0, stop.stderr
        finally:
            tws_serving.cancel()
            alpaca_serving.cancel()
    assert process.returncode == 0
    assert tws.requests[REQ_HISTORICAL_DATA] == 0
    asked = [e for e in alpaca.events_of("rest") if e["path"] == BARS_PATH]
    assert asked
    assert all(e["status"] == 200 for e in asked)
    shown = next(s for s in status.stdout.splitlines() if s.startswith("TQQQ: "))
    assert "warm True" in shown, shown
    fast = _sma([b.close for b in bars], FAST)
    assert f"fast {Decimal(fast.numerator) / Decimal(fast.denominator):.4f}" in shown, shown


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (
            ["--history", "none"],
            'symbols[0] (TQQQ): ma_cross needs 6 bars of warm-up, but history.source = "none" '
            "gives it no history: refusing to trade it cold",
        ),
        (
            ["--history", "replay", "--broker", "ib"],
            "history.source = 'replay': a replay is the embedded venue's only, not IB's",
        ),
        (
            ["--history", "broker", "--broker", "inprocess"],
            "history.source = 'broker': IB's reqHistoricalData needs [broker] kind = \"embedded\"",
        ),
        (["--history", "ib"], "Invalid value for '--history'"),
    ],
)
def test_a_start_no_history_can_warm_is_refused_before_anything_runs(
    tmp_path: Path, args: list[str], problem: str
) -> None:
    """A crossover that needs warm-up with no history source (or a source its broker cannot
    serve) is refused with one line naming the symbol, the strategy and why; exit 2, nothing
    written."""
    config = tmp_path / "crossover.toml"
    config.write_text(CROSSOVER)
    data = tmp_path / "data"
    result = run(
        "start", "--config", str(config), "--data-dir", str(data), *args, socket=tmp_path / "s"
    )
    assert result.returncode == 2, result.stderr
    assert problem in result.stderr
    assert "Traceback" not in result.stderr
    assert not data.exists()
    assert result.stdout == ""


def test_the_history_table_of_a_config_is_refused_naming_its_key(tmp_path: Path) -> None:
    """A bad `[history]` table stops `actorctl start` with the file and the key path."""
    config = tmp_path / "crossover.toml"
    config.write_text('[history]\nsource = "tws"\n' + CROSSOVER)
    result = run("start", "--config", str(config), socket=tmp_path / "s")
    assert result.returncode == 2
    assert f"{config}: " in result.stderr
    assert "got 'tws' @ history.source" in result.stderr
