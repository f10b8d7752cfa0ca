"""``actorctl backtest`` across corporate actions, as a user runs it: a grid holding lots
through a 2-for-1 split listed in the config (Yahoo's split-adjusted prices turned back to as
traded), and on real data QQQ's 2000 split from LEAN's factor files, against the same run on
split-adjusted prices."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from actors.domain.sessions import NEW_YORK
from app.backtest import results
from tests.test_cli import ROOT, run
from tests.test_cli_backtest import MARKETDATA, _backtest, _daily_config, _rows

EX_DATE = dt.date(2024, 1, 23)
GRID_TOML = """
[[symbols]]
symbol = "XYZ"
strategy = "grid"
lots = "lots.csv"

[symbols.grid]
tick = "0.01"
step = "0.01"
profit = "0.01"
queue_depth = 3

[[corporate_actions]]
symbol = "XYZ"
date = "{ex_date}"
split = "2"
"""


def _cent(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _yahoo_file(path: Path) -> None:
    """40 weekdays from 2024-01-02, as traded: down 1 % a day from 100 for 15 days, a 2-for-1
    split on EX_DATE (the day opens at half the close before), then up 1.2 % a day. Written as
    Yahoo does: every price before the ex-date divided by 2 (split-adjusted)."""
    rows = ["date,open,high,low,close,volume"]
    day, close, n = dt.date(2024, 1, 2), Decimal(100), 0
    while n < 41:
        if day.weekday() < 5:
            open_ = close / 2 if day == EX_DATE else close
            close = _cent(open_ * (Decimal("0.99") if n < 15 else Decimal("1.012")))
            high, low = (
                _cent(max(open_, close) * Decimal("1.002")),
                _cent(min(open_, close) * Decimal("0.998")),
            )
            factor = Decimal(2) if day < EX_DATE else Decimal(1)
            o, h, lo, c = (v / factor for v in (open_, high, low, close))
            rows.append(f"{day},{o},{h},{lo},{c},{1_000_000 * int(factor)}")
            n += 1
        day += dt.timedelta(days=1)
    path.write_text("\n".join(rows) + "\n")  # the last row is dropped (a download mid-session)


def test_a_grid_holds_its_lots_through_a_split_listed_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "lots.csv").write_text(
        "level,shares_to_buy\n" + "".join(f"{i},{10 + i}\n" for i in range(40))
    )
    config = tmp_path / "grid.toml"
    config.write_text(GRID_TOML.format(ex_date=EX_DATE))
    data = tmp_path / "XYZ.csv"
    _yahoo_file(data)
    run, _ = _backtest(tmp_path, "--config", str(config), "--data", str(data))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"]["corporate_actions"] == [
        {"symbol": "XYZ", "ex_date": str(EX_DATE), "kind": "split", "ratio": "2"}
    ]
    assert any("1 splits (2024-01-23 2:1)" in n for n in summary["data"]["notes"])
    bars = _rows(run, "bars")
    before = [b for b in bars if b["start"].astimezone(NEW_YORK).date() < EX_DATE]
    assert before[0]["open"] == pytest.approx(100.0)  # as traded again, not Yahoo's 50

    fills = _rows(run, "fills")
    ex_ns = results.ex_date_ns(str(EX_DATE))
    by_lot: dict[str, list[dict[str, object]]] = {}
    for fill in fills:
        by_lot.setdefault(str(fill["ref"]).split(":")[4], []).append(fill)
    spanning = 0
    for lot in by_lot.values():
        buys = [f for f in lot if f["side"] == "BUY"]
        sells = [f for f in lot if f["side"] == "SELL"]
        bought_before = [f for f in buys if int(f["ts"].timestamp() * 1e9) < ex_ns]
        if not bought_before or not sells:
            continue
        spanning += 1
        # A lot bought before the split is sold after it: twice the shares, at its +1 % of
        # half the purchase price (to a tick), by its first sell: the split moved no order.
        assert all(int(f["ts"].timestamp() * 1e9) >= ex_ns for f in sells)
        assert sum(int(f["quantity"]) for f in sells) == 2 * sum(int(f["quantity"]) for f in buys)
        purchase = sum(float(f["price"]) * int(f["quantity"]) for f in buys) / sum(
            int(f["quantity"]) for f in buys
        )
        assert float(sells[0]["price"]) >= purchase / 2 * 1.01 - 0.011
        assert {str(f["ref"]).rsplit(":", 1)[1] for f in sells} == {"1"}
    assert spanning >= 8

    # No crash on the ex-date: the equity moves by the day's 1.2 %, not by half the position.
    equity = _rows(run, "equity")
    [last_before] = [
        p for p in equity if p["ts"].astimezone(NEW_YORK).date() == EX_DATE - dt.timedelta(days=1)
    ]
    [on_ex] = [p for p in equity if p["ts"].astimezone(NEW_YORK).date() == EX_DATE]
    assert last_before["positions"] > 5_000
    assert abs(on_ex["equity"] - last_before["equity"]) < 0.03 * last_before["positions"]

    # Round trips restate the lots bought before the split: one per lot, all closed lots.
    found = results.figures(results.read_run(run))
    assert len(found.trips) == sum(1 for f in fills if f["side"] == "SELL")
    assert all(trip.pnl > 0 for trip in found.trips)


@pytest.mark.skipif(not MARKETDATA.exists(), reason="../shared/marketdata is not on this machine")
def test_lean_raw_prices_across_qqqs_split_trade_as_split_adjusted_ones(tmp_path: Path) -> None:
    """QQQ's 2000-03-20 2:1 split from LEAN's factor file, applied at its ex-date to raw
    prices: the MA-crossover (its windows over bars restated by the split) trades on the same
    days as on split-adjusted prices, the same shares after the split and half as many before,
    at the same prices after and twice them before; a position bought before the split is sold
    after it with twice its shares; the dividend is paid."""
    config = _daily_config(tmp_path, "QQQ")
    daily = MARKETDATA / "spy_lean" / "daily" / "qqq.zip"
    common = ["--config", str(config), "--data", str(daily), "--cache", str(tmp_path / "cache")]
    common += ["--to", "2003-12-31"]
    raw, _ = _backtest(tmp_path, *common, out="raw")
    adjusted, _ = _backtest(tmp_path, *common, "--prices", "split-adjusted", out="adjusted")
    summary = json.loads((raw / "summary.json").read_text())
    assert summary["data"]["corporate_actions"][0] == {
        "symbol": "QQQ",
        "ex_date": "2000-03-20",
        "kind": "split",
        "ratio": "2",
    }
    [paid] = summary["result"]["dividends_paid"]
    assert (paid["ex_date"], paid["amount_per_share"]) == ("2003-12-24", 0.014)
    assert paid["cash"] == pytest.approx(paid["shares"] * 0.014)
    split_ns = results.ex_date_ns("2000-03-20")
    ours, theirs = _rows(raw, "fills"), _rows(adjusted, "fills")
    assert len(ours) == len(theirs) > 40
    spanned = 0
    for mine, other in zip(ours, theirs, strict=True):
        assert (mine["ts"], mine["side"]) == (other["ts"], other["side"])
        if int(mine["ts"].timestamp() * 1e9) < split_ns:
            assert mine["price"] == pytest.approx(other["price"] * 2)
            assert abs(mine["quantity"] * 2 - other["quantity"]) <= 1
        else:
            assert mine["price"] == pytest.approx(other["price"])
            assert mine["quantity"] == other["quantity"]
    for before, after in itertools.pairwise(ours):
        crossing = (
            int(before["ts"].timestamp() * 1e9) < split_ns <= int(after["ts"].timestamp() * 1e9)
        )
        if crossing and (before["side"], after["side"]) == ("BUY", "SELL"):
            assert after["quantity"] == 2 * before["quantity"]
            spanned += 1
    assert spanned == 1
    ours_figures = results.figures(results.read_run(raw))
    assert ours_figures.benchmark is not None
    assert len(ours_figures.trips) == len(results.figures(results.read_run(adjusted)).trips)


def test_slippage_and_a_volume_cap_cost_what_they_say(tmp_path: Path) -> None:
    """Momentum's market orders: with 10 bps of slippage every fill is 0.1 % worse than the
    same run's without (buys above, sells below) and the run ends poorer; with a volume cap of
    1 % of each trade, orders fill in parts over several trades; bad values exit 2."""
    config = ["--config", str(ROOT / "config" / "examples" / "momentum.toml"), "--days", "3"]
    plain, _ = _backtest(tmp_path, *config, out="plain")
    slipped, _ = _backtest(tmp_path, *config, "--slippage-bps", "10", out="slipped")
    capped, _ = _backtest(tmp_path, *config, "--volume-cap", "1", out="capped")
    ours, theirs = _rows(slipped, "fills"), _rows(plain, "fills")
    assert len(ours) == len(theirs) > 10
    for mine, other in zip(ours, theirs, strict=True):
        assert (mine["ts"], mine["side"], mine["quantity"]) == (
            other["ts"],
            other["side"],
            other["quantity"],
        )
        factor = 1.001 if mine["side"] == "BUY" else 0.999
        assert mine["price"] == pytest.approx(other["price"] * factor, abs=0.0001)
    summary = json.loads((slipped / "summary.json").read_text())
    assert (summary["config"]["slippage_bps"], summary["config"]["volume_cap_pct"]) == (10, None)
    plain_summary = json.loads((plain / "summary.json").read_text())
    assert summary["result"]["final_equity"] < plain_summary["result"]["final_equity"]
    assert summary["config"]["hash"] != plain_summary["config"]["hash"]
    capped_orders = _rows(capped, "orders")
    capped_fills = _rows(capped, "fills")
    assert len(capped_fills) > len([o for o in capped_orders if o["filled"]])
    for bad, problem in [
        (["--slippage-bps", "-1"], "--slippage-bps: must be between 0 and 1000, got -1"),
        (["--volume-cap", "0"], "--volume-cap: must be above 0 and at most 100"),
    ]:
        result = run("backtest", "--quiet", "--out", str(tmp_path / "bad"), *config, *bad)
        assert result.returncode == 2
        assert problem in result.stderr
    assert not (tmp_path / "bad").exists()
