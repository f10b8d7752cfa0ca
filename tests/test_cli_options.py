"""The options bot through the real ``actorctl``, as subprocesses on the embedded venue (its
TWS API server and ib_insync, for orders and for the option chains and quotes): the example
config trades brackets on TQQQ's weekly options over a generated day, every entry with its
two exits at the venue, the venue's books agree with what was printed, ``status`` shows the
strategy, and ``check --what-if`` shows the bracket it would send, never placed."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from actors.domain import OptionSymbol, OrderRef, is_option_symbol
from tests.test_cli import ACTORCTL, ROOT, _env, run
from tests.test_cli_strategies import _start, _until_finished, _venue_books

CONFIG = ROOT / "config" / "examples" / "options.toml"
FILL = re.compile(
    r"^\S+ \S+ (?P<side>BUY|SELL) +(?P<quantity>\d+) (?P<option>TQQQ +\d{6}[CP]\d{8}) @ "
    r"(?P<price>[\d.]+) \((?P<tag>[^)]+)\) position (?P<position>\d+)$"
)
SUMMARY = re.compile(
    r"^replay finished: TQQQ (?P<orders>\d+) orders, (?P<buys>\d+) buy and (?P<sells>\d+) sell "
    r"executions, position (?P<position>\d+) contracts, realized P&L (?P<realized>-?[\d.]+)$"
)


def test_the_example_options_config_trades_brackets_over_the_wire(tmp_path: Path) -> None:
    socket = tmp_path / "ctl.sock"
    process = _start(CONFIG, tmp_path, "--days", "1", "--seed", "14")
    try:
        lines = _until_finished(process, 1)
        summary = SUMMARY.match(lines[-1])
        assert summary is not None, lines[-1]
        status = run("status", socket=socket)
        stop = run("stop", socket=socket)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert stop.returncode == 0, stop.stderr
    assert "Traceback" not in stderr
    assert f"at stop: {lines[-1].removeprefix('replay finished: ')}" in stdout
    assert lines[0].startswith("reconciled with the venue: TQQQ position 0 contracts, ")

    engine = _venue_books(tmp_path / "data")
    orders = list(engine.orders.values())
    assert len(orders) == int(summary["orders"])
    assert all(is_option_symbol(o.symbol) for o in orders), [o.symbol for o in orders]
    brackets: dict[str, dict[str, object]] = {}
    for order in orders:
        bracket, leg = OrderRef.parse(order.ref).tag.split(":")
        brackets.setdefault(bracket, {})[leg] = order
    assert brackets, "the generated day made no bracket"
    for bracket, legs in brackets.items():
        entry, tp, sl = legs["entry"], legs["tp"], legs["sl"]
        assert tp.parent == sl.parent == entry.ref, bracket  # type: ignore[attr-defined]
        assert tp.oca == sl.oca == f"scalp:TQQQ:{bracket}", bracket  # type: ignore[attr-defined]
        option = OptionSymbol.parse(entry.symbol)  # type: ignore[attr-defined]
        assert option.underlying == "TQQQ"
        assert 1 <= entry.quantity <= 2  # type: ignore[attr-defined]
        # Never more contracts out than the entry bought.
        sold = tp.filled + sl.filled  # type: ignore[attr-defined]
        assert sold <= entry.filled  # type: ignore[attr-defined]
    executions = [e for e in engine.executions if is_option_symbol(e.symbol)]
    fills = [m for m in map(FILL.match, lines[1:-1]) if m is not None]
    assert [(f["side"], int(f["quantity"]), f["option"]) for f in fills] == [
        (e.side.value, e.quantity, e.symbol) for e in executions
    ]
    assert any(f["tag"].endswith(":entry") for f in fills)
    assert any(f["tag"].endswith((":tp", ":sl", ":close")) for f in fills)
    held = sum(p.quantity for s, p in engine.positions.items() if is_option_symbol(s))
    assert held == int(summary["position"])

    assert status.returncode == 0, status.stderr
    line = next(s for s in status.stdout.splitlines() if s.startswith("TQQQ: "))
    assert f"realized P&L {summary['realized']}," in line
    assert line.startswith("TQQQ: 0 open positions (0 contracts), ") or held
    assert "; scalp " in line
    assert " signal scalp " in line
    assert re.search(r" state (flat|seeking|entering|protected|closing)", line)
    assert re.search(r" skips \d+", line)


def test_check_what_if_shows_the_bracket_it_would_send(tmp_path: Path) -> None:
    result = subprocess.run(
        [ACTORCTL, "check", "--config", str(CONFIG), "--what-if"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_env(tmp_path / "ctl.sock"),
    )
    assert result.returncode == 0, result.stderr
    found = re.search(
        r"TQQQ: scalp what-if bracket \(not placed\): BUY (\d) (TQQQ\d{6}C\d{8}) @ ([\d.]+), "
        r"take-profit ([\d.]+), stop ([\d.]+); the entry: initial margin change",
        result.stdout,
    )
    assert found is not None, result.stdout
    assert float(found[4]) > float(found[3]) > float(found[5])
    assert "commission" in result.stdout


def test_a_backtest_trades_the_options_and_marks_them_at_their_quotes(tmp_path: Path) -> None:
    """`actorctl backtest` on the options example: the same tree on the in-process venue,
    whose option data it also reads. An option held is marked at its quote, 100 shares a
    contract: the equity moves by about the commission as an entry fills (its cash paid for
    the contracts held), never by the premium, as it would with options marked at nothing."""
    from tests.test_cli_backtest import _backtest, _rows

    folder, _ = _backtest(tmp_path, "--config", str(CONFIG), "--days", "1", "--seed", "14")
    fills = _rows(folder, "fills")
    entries = [f for f in fills if f["ref"].split(":")[3] == "entry"]
    assert entries, "no entry in the backtest"
    assert all(is_option_symbol(f["symbol"]) for f in fills)
    equity = _rows(folder, "equity")
    for entry in entries:
        before = [p for p in equity if p["ts"] <= entry["ts"]][-1]
        after = next(p for p in equity if p["ts"] > entry["ts"])
        premium = entry["price"] * entry["quantity"] * 100
        assert after["positions"] > 0.5 * premium, (entry, after)
        assert abs(after["equity"] - before["equity"]) < 0.25 * premium, (entry, before, after)
