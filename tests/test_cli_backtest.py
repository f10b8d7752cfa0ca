"""``actorctl backtest`` as a user runs it (subprocesses): the run directory and its Parquet
ledgers, which agree with each other and with the venue's arithmetic; two runs of the same give
byte-identical files; every shipped strategy runs; bad input exits 2 and writes nothing."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from actors.domain.sessions import NEW_YORK
from tests.test_cli import ROOT, run

TABLES = ("bars", "orders", "fills", "equity")


def _backtest(tmp_path: Path, *args: str, out: str = "runs") -> tuple[Path, str]:
    result = run("backtest", "--quiet", "--out", str(tmp_path / out), *args, timeout=300)
    assert result.returncode == 0, result.stderr
    runs = sorted((tmp_path / out).iterdir())
    return runs[-1], result.stdout


def _rows(folder: Path, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(folder / f"{name}.parquet").to_pylist()
    return rows


def test_a_grid_backtest_writes_ledgers_that_agree_with_each_other(tmp_path: Path) -> None:
    """Generated days through the grid: every bar has its equity point at its close, the cash
    of the last point is the starting cash minus buys plus sells minus commissions of the
    fills, the positions' value is the net shares times the last close, and every fill
    belongs to an order that says it filled."""
    folder, out = _backtest(tmp_path, "--days", "2", "--cash", "50000")
    assert folder.name in out
    assert {p.name for p in folder.iterdir()} == {f"{t}.parquet" for t in TABLES} | {
        "summary.json",
        "config.toml",
        "report.html",
    }
    bars, orders, fills, equity = (_rows(folder, t) for t in TABLES)
    assert len(bars) == 1920  # two generated days of 16 h of minutes
    assert len(equity) == len(bars)
    assert [p["ts"] for p in equity] == sorted(p["ts"] for p in equity)
    assert fills, "the grid traded nothing in two generated days"
    cash = 50_000.0
    shares: dict[str, int] = defaultdict(int)
    for fill in fills:
        sign = 1 if fill["side"] == "BUY" else -1
        cash -= sign * fill["quantity"] * fill["price"] + fill["commission"]
        shares[fill["symbol"]] += sign * fill["quantity"]
    last = equity[-1]
    assert last["cash"] == pytest.approx(cash, abs=1e-6)
    assert last["positions"] == pytest.approx(shares["TQQQ"] * bars[-1]["close"], abs=1e-6)
    assert last["equity"] == pytest.approx(last["cash"] + last["positions"], abs=1e-6)
    assert last["invested"] == (shares["TQQQ"] != 0)
    by_ref = {o["ref"]: o for o in orders}
    for fill in fills:
        order = by_ref[fill["ref"]]
        assert order["filled"] > 0
        assert order["symbol"] == fill["symbol"]
    assert {o["status"] for o in orders} <= {"filled", "cancelled", "rejected", "working"}
    assert sum(o["filled"] for o in orders) == sum(f["quantity"] for f in fills)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["result"]["final_equity"] == pytest.approx(last["equity"])
    assert summary["result"]["fills"] == len(fills)
    assert summary["data"]["generated"] == {"days": 2, "seed": 14}
    assert len(summary["config"]["hash"]) == 64
    assert folder.name.endswith(summary["config"]["hash"][:8])
    assert summary["git"]["sha"] is None or len(summary["git"]["sha"]) == 40


def test_two_runs_of_the_same_backtest_write_identical_files(tmp_path: Path) -> None:
    """Apart from the summary's ``run`` section (id, wall-clock start, duration), byte for
    byte; and neither run overwrote the other."""
    config = ROOT / "config" / "examples" / "ma_cross.toml"
    first, _ = _backtest(tmp_path, "--config", str(config), "--days", "3")
    second, _ = _backtest(tmp_path, "--config", str(config), "--days", "3")
    assert first != second
    for table in TABLES:
        assert (first / f"{table}.parquet").read_bytes() == (
            second / f"{table}.parquet"
        ).read_bytes(), table
    summaries = [json.loads((f / "summary.json").read_text()) for f in (first, second)]
    for summary in summaries:
        del summary["run"]
    assert summaries[0] == summaries[1]
    assert summaries[0]["result"]["fills"] > 0
    reports = [(f / "report.html").read_text().replace(f.name, "RUN-ID") for f in (first, second)]
    assert reports[0] == reports[1]
    assert (first / "config.toml").read_bytes() == config.read_bytes()


def test_the_summary_holds_the_metrics_of_its_own_ledgers(tmp_path: Path) -> None:
    """summary.json's figures are those of the Parquet ledgers beside it: the end value is the
    last equity point, the round trips pair every sold share with a bought one, and
    buy-and-hold's end value is the starting cash grown by the symbol's close-to-close move."""
    folder, out = _backtest(tmp_path, "--days", "2")
    summary = json.loads((folder / "summary.json").read_text())
    metrics, benchmark = summary["metrics"], summary["benchmark"]
    equity, fills, bars = (_rows(folder, t) for t in ("equity", "fills", "bars"))
    assert metrics["end_value"] == pytest.approx(equity[-1]["equity"])
    assert metrics["start_value"] == pytest.approx(equity[0]["equity"])
    sold = sum(f["quantity"] for f in fills if f["side"] == "SELL")
    assert metrics["trades"] > 0
    assert sold > 0
    assert benchmark["end_value"] == pytest.approx(
        100_000 * bars[-1]["close"] / bars[0]["close"], rel=1e-9
    )
    assert f"{metrics['trades']} round trips" in out
    html = (folder / "report.html").read_text()
    assert "<svg" in html
    assert folder.name in html


def test_runs_lists_and_report_renders_again(tmp_path: Path) -> None:
    folder, _ = _backtest(tmp_path, "--days", "1")
    listed = run("runs", "--out", str(tmp_path / "runs"))
    assert listed.returncode == 0, listed.stderr
    assert folder.name in listed.stdout
    assert "TQQQ" in listed.stdout
    assert "sharpe" in listed.stdout
    before = (folder / "report.html").read_bytes()
    (folder / "report.html").unlink()
    again = run("report", folder.name, "--out", str(tmp_path / "runs"))
    assert again.returncode == 0, again.stderr
    assert (folder / "report.html").read_bytes() == before
    missing = run("report", "no-such-run", "--out", str(tmp_path / "runs"))
    assert missing.returncode == 2
    assert "no-such-run: not a run directory" in missing.stderr


@pytest.mark.parametrize("example", ["grid", "ma_cross", "momentum"])
def test_every_shipped_strategy_backtests(tmp_path: Path, example: str) -> None:
    folder, _ = _backtest(
        tmp_path, "--config", str(ROOT / "config" / "examples" / f"{example}.toml"), "--days", "3"
    )
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["result"]["orders"] > 0, summary


def test_from_and_to_pick_the_days_replayed(tmp_path: Path) -> None:
    folder, _ = _backtest(tmp_path, "--days", "3", "--from", "2026-11-24", "--to", "2026-11-24")
    bars = _rows(folder, "bars")
    days = {b["start"].astimezone(NEW_YORK).date().isoformat() for b in bars}
    assert len(bars) == 960
    assert days == {"2026-11-24"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", "2026-11-25", "--to", "2026-11-24"], "--from 2026-11-25 is after --to"),
        (["--from", "yesterday"], "--from: not a date"),
        (["--data", "/nonexistent/bars.csv"], "/nonexistent/bars.csv"),
        (["--days", "0"], "--days: must be between 1"),
        (["--cash", "-5"], "--cash: must be positive"),
        (["--from", "2030-01-01"], "no bars of TQQQ between --from and --to"),
    ],
)
def test_bad_input_exits_2_naming_it_and_writes_nothing(
    tmp_path: Path, args: list[str], says: str
) -> None:
    result = run("backtest", "--quiet", "--out", str(tmp_path / "runs"), *args, timeout=120)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert says in result.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_bad_bar_file_is_named_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "bars.csv"
    bad.write_text(
        "Datetime,Symbol,Open,High,Low,Close,Volume\n"
        "2026-11-23 14:30:00,TQQQ,52.00,52.10,51.90,52.05,1000\n"
        "2026-11-23 14:31:00,TQQQ,52.00,51.00,51.90,52.05,1000\n"
    )
    result = run("backtest", "--quiet", "--out", str(tmp_path / "runs"), "--data", str(bad))
    assert result.returncode == 2
    assert f"{bad}:3:" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_slow_machine_gets_the_same_run(tmp_path: Path) -> None:
    """The tree runs on the replay's virtual clock: a run slowed down (1 ms of real time at
    every bar's close, about 3 s in all) places the same orders at the same prices as a fast
    one, though the MA-crossover's fill timeout and retry delay are seconds long."""
    import time
    from decimal import Decimal

    from app import compose
    from app.backtest.run import run as run_backtest
    from config.load import load_config
    from sim.replay import generated_days

    settings = load_config(ROOT / "config" / "examples" / "ma_cross.toml")
    bars = generated_days(seed=14, days=3, symbol="TQQQ")

    def backtest(folder: Path, pause: float) -> list[Any]:
        recorded = run_backtest(
            bars=bars,
            ledger=folder,
            lots={},
            kinds=compose.strategy_kinds(settings),
            params={},
            risk=None,
            initial_cash=Decimal(100_000),
            progress=(lambda _done: time.sleep(pause)) if pause else None,
        )
        return [(f.ref, f.side, f.quantity, f.price, f.ts_ns) for f in recorded.fills]

    fast = backtest(tmp_path / "fast", 0.0)
    slow = backtest(tmp_path / "slow", 0.001)
    assert len(fast) > 10
    assert slow == fast


MARKETDATA = ROOT.parent / "shared" / "marketdata"
SPY_TOML = """
[[symbols]]
symbol = "{symbol}"
strategy = "ma_cross"

[symbols.ma_cross]
bar = "1d"
sessions = "regular"
fast = 5
slow = 20
target_notional = "10000"
order_type = "market"
tif = "GTC"
tick = "0.01"
"""


def _daily_config(tmp_path: Path, symbol: str) -> Path:
    config = tmp_path / f"{symbol}.toml"
    config.write_text(SPY_TOML.format(symbol=symbol))
    return config


def test_a_yahoo_daily_file_backtests_through_the_cache(tmp_path: Path) -> None:
    """A daily CSV of Yahoo's shape: one equity point per day at the 16:00 close, the data
    cached as Parquet by content hash (the second run reads the cache), the file's hash in the
    summary."""
    import datetime as dt
    import random

    rng = random.Random(5)
    rows = ["date,open,high,low,close,volume"]
    price, day = 100.0, dt.date(2024, 1, 2)
    while len(rows) < 121:
        if day.weekday() < 5:
            close = price * (1 + rng.gauss(0, 0.015))
            high, low = max(price, close) * 1.004, min(price, close) * 0.996
            rows.append(
                f"{day},{price:.2f},{high:.2f},{low:.2f},{close:.2f},{rng.randint(1, 9)}000"
            )
            price = close
        day += dt.timedelta(days=1)
    data = tmp_path / "XYZ.csv"
    data.write_text("\n".join([*rows, rows[-1].replace(rows[-1][:10], str(day))]) + "\n")
    config = _daily_config(tmp_path, "XYZ")
    cache = tmp_path / "cache"
    args = ["--config", str(config), "--data", str(data), "--cache", str(cache)]
    first, _ = _backtest(tmp_path, *args)
    cached = sorted(p.name for p in cache.iterdir())
    assert len(cached) == 1
    assert cached[0].endswith("-XYZ-1d.parquet")
    second, _ = _backtest(tmp_path, *args)
    assert (first / "fills.parquet").read_bytes() == (second / "fills.parquet").read_bytes()
    equity = _rows(first, "equity")
    assert len(equity) == 120  # of 121 rows: the last dropped (a download during a session)
    closes = {p["ts"].astimezone(NEW_YORK).strftime("%H:%M") for p in equity}
    assert closes == {"16:00"}
    summary = json.loads((first / "summary.json").read_text())
    assert summary["data"]["files"] == {str(data): summary["data"]["files"][str(data)]}
    assert any("dropped" in note for note in summary["data"]["notes"])
    assert summary["result"]["orders"] > 0


def test_an_unknown_data_shape_and_a_bad_prices_choice_exit_2(tmp_path: Path) -> None:
    odd = tmp_path / "bars.txt"
    odd.write_text("hello\n")
    result = run("backtest", "--quiet", "--out", str(tmp_path / "runs"), "--data", str(odd))
    assert result.returncode == 2
    assert "cannot tell its interval" in result.stderr
    result = run("backtest", "--quiet", "--prices", "adjusted")
    assert result.returncode == 2
    assert "--prices: 'adjusted' is not one of raw, split-adjusted" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_symbol_replaces_the_symbol_of_a_one_symbol_config(tmp_path: Path) -> None:
    config = ROOT / "config" / "examples" / "ma_cross.toml"
    folder, _ = _backtest(tmp_path, "--config", str(config), "--symbol", "XYZ", "--days", "1")
    assert {b["symbol"] for b in _rows(folder, "bars")} == {"XYZ"}
    assert {f["symbol"] for f in _rows(folder, "fills")} <= {"XYZ"}
    assert json.loads((folder / "summary.json").read_text())["data"]["symbols"] == ["XYZ"]
    bad = run("backtest", "--quiet", "--symbol", "not a symbol", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2
    assert "--symbol" in bad.stderr


def test_a_fetched_table_backtests_and_a_bad_one_is_refused(tmp_path: Path) -> None:
    """What `actorctl data fetch` stored (a Parquet bar table under the cache's fetched/) is
    --data for a backtest; a .parquet that is not one exits 2 naming it."""
    import datetime as dt

    from app.data.fetch import store_fetched
    from sim.data import load_minute_csv
    from sim.replay import generated_days

    csv = tmp_path / "bars.csv"
    lines = ["Datetime,Symbol,Open,High,Low,Close,Volume"]
    for bar in generated_days(seed=3, days=1, symbol="TQQQ"):
        start = bar.start.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{start},TQQQ,{bar.open},{bar.high},{bar.low},{bar.close},{bar.volume}")
    csv.write_text("\n".join(lines) + "\n")
    table = load_minute_csv(csv)["TQQQ"]
    day = dt.date(2026, 11, 23)
    stored = store_fetched(tmp_path / "cache", "ib", table, day, day)
    folder, _ = _backtest(tmp_path, "--data", str(stored))
    assert len(_rows(folder, "bars")) == len(table)
    bad = tmp_path / "not-bars.parquet"
    bad.write_bytes(b"PAR1 nothing")
    result = run("backtest", "--quiet", "--out", str(tmp_path / "bad"), "--data", str(bad))
    assert result.returncode == 2
    assert f"{bad}:0: not a Parquet file of bars" in result.stderr
