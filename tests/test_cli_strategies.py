"""The research plan's bar-close strategies through the real ``actorctl start``, as subprocesses
on the embedded venue (its TWS API server and ib_insync): each shipped example config trades a
generated day, the venue's own books say so, and ``status`` / ``lots`` show the strategy; bad
parameters are refused naming the key."""

from __future__ import annotations

import re
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from sim.engine import Engine
from sim.journal import Journal, open_engine
from tests.test_cli import ACTORCTL, ROOT, _env, run

FILL = re.compile(
    r"^\S+ \S+ (?P<side>BUY|SELL) +(?P<quantity>\d+) TQQQ @ (?P<price>[\d.]+) "
    r"\((?P<tag>[^)]+)\) position (?P<position>\d+)$"
)
SUMMARY = re.compile(
    r"^replay finished: TQQQ (?P<orders>\d+) orders, (?P<buys>\d+) buy and (?P<sells>\d+) sell "
    r"executions, position (?P<position>\d+) shares, realized P&L (?P<realized>-?[\d.]+)$"
)


def _start(config: Path, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    # As fast as possible, its data kept in tmp_path/data for the venue's books to be read.
    data = ["--data-dir", str(tmp_path / "data")]
    return subprocess.Popen(
        [ACTORCTL, "start", "--config", str(config), "--speed", "0", "--no-tracing", *args, *data],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path / "ctl.sock"),
    )


def _until_finished(process: subprocess.Popen[str], symbols: int) -> list[str]:
    # Its standard output up to the replay's end (one summary line per symbol).
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if sum(1 for s in lines if s.startswith("replay finished")) == symbols:
            return lines
    stderr = process.stderr.read() if process.stderr else ""
    raise AssertionError(f"the replay never finished: {lines[-5:]}; stderr: {stderr}")


def _venue_books(data: Path) -> Engine:
    engine = open_engine(data / "venue.journal")
    journal = engine.recorder
    assert isinstance(journal, Journal)
    journal.close()
    return engine


def _average_cost_pnl(executions: list[tuple[str, int, Decimal]]) -> tuple[int, Decimal]:
    # A plain long-only average-cost book, kept apart from the strategies' own.
    shares, cost, realized = 0, Decimal(0), Decimal(0)
    for side, quantity, price in executions:
        if side == "BUY":
            shares += quantity
            cost += price * quantity
            continue
        basis = cost * quantity / shares
        realized += price * quantity - basis
        shares -= quantity
        cost = cost - basis if shares else Decimal(0)
    return shares, realized


@pytest.mark.parametrize("strategy", ["ma_cross", "momentum"])
def test_start_trades_the_example_config_on_a_generated_day_over_the_wire(
    tmp_path: Path, strategy: str
) -> None:
    """`actorctl start --config config/examples/<strategy>.toml` trades a generated day on the
    embedded venue: every order the venue got is the strategy's, each fill it printed is one
    the venue made, the summary's position and P&L are the venue's executions', status and lots
    show the strategy, and the service stops cleanly on `actorctl stop`."""
    socket = tmp_path / "ctl.sock"
    config = ROOT / "config" / "examples" / f"{strategy}.toml"
    process = _start(config, tmp_path, "--days", "1", "--seed", "14")
    try:
        lines = _until_finished(process, 1)
        summary = SUMMARY.match(lines[-1])
        assert summary is not None, lines[-1]
        status = run("status", socket=socket)
        lots = run("lots", socket=socket)
        stop = run("stop", socket=socket)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert stop.returncode == 0, stop.stderr
    assert "Traceback" not in stderr
    assert "stopped by actorctl stop" in stderr
    assert f"at stop: {lines[-1].removeprefix('replay finished: ')}" in stdout
    assert lines[0].startswith("reconciled with the venue: TQQQ position 0 shares, ")
    assert lines[0].endswith("in agreement; trading")

    engine = _venue_books(tmp_path / "data")
    orders = list(engine.orders.values())
    assert orders
    assert all(o.ref.startswith(f"{strategy}:TQQQ:") for o in orders), [o.ref for o in orders]
    assert len(orders) == int(summary["orders"])
    executions = [e for e in engine.executions if e.symbol == "TQQQ"]
    fills = [m for m in map(FILL.match, lines[1:-1]) if m is not None]
    # Nothing else was printed between but the session's progress line.
    assert len(fills) == len(lines) - 3
    assert lines[-2].startswith("session 1/1 "), lines[-2]
    assert [(f["side"], int(f["quantity"]), Decimal(f["price"])) for f in fills] == [
        (e.side.value, e.quantity, e.price) for e in executions
    ]
    # The printed label is the order's tag: E.<bar> enters, X.<bar> exits.
    assert [f["tag"] for f in fills] == [e.ref.split(":")[2] for e in executions]
    assert {f["tag"][0] + f["side"] for f in fills} == {"EBUY", "XSELL"}
    buys = sum(1 for e in executions if e.side.value == "BUY")
    assert (buys, len(executions) - buys) == (int(summary["buys"]), int(summary["sells"]))
    assert buys >= 2  # it traded, more than once
    position, realized = _average_cost_pnl(
        [(e.side.value, e.quantity, e.price) for e in executions]
    )
    assert position == engine.positions["TQQQ"].quantity == int(summary["position"])
    assert f"{realized:.2f}" == summary["realized"]

    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    line = next(s for s in status.stdout.splitlines() if s.startswith("TQQQ: "))
    assert f"realized P&L {summary['realized']}," in line
    assert f"; {strategy} " in line
    assert "warm True" in line
    assert lots.returncode == 0, lots.stderr
    rows = [row.split() for row in lots.stdout.splitlines() if row.startswith("TQQQ ")]
    held = [["TQQQ", strategy, "1", "long", str(position)]] if position else []
    assert [row[:5] for row in rows[:-1]] == held
    assert rows[-1] == ["TQQQ", strategy, "realized", "P&L", summary["realized"]]


def test_a_grid_and_a_crossover_trade_side_by_side_each_on_its_own_route(tmp_path: Path) -> None:
    """One config, two symbols: the grid on TQQQ trades exactly as it does alone (the default
    run's day: 3 sells, realized P&L 150.40) while the crossover trades QQQ; every order at the
    venue is its symbol's strategy's, each fill is printed with its own label."""
    config = tmp_path / "mixed.toml"
    config.write_text(
        f"""
[[symbols]]
symbol = "TQQQ"
lots = "{ROOT / "config" / "lots" / "tqqq.csv"}"

[[symbols]]
symbol = "QQQ"
strategy = "ma_cross"

[symbols.ma_cross]
sessions = "extended"
"""
    )
    socket = tmp_path / "ctl.sock"
    process = _start(config, tmp_path)
    try:
        lines = _until_finished(process, 2)
        stop = run("stop", socket=socket)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert stop.returncode == 0, stop.stderr
    assert "Traceback" not in stderr
    assert "starting TQQQ, QQQ in PAPER mode" in stderr
    assert lines[0] == (
        "reconciled with the venue: TQQQ 0 open lots, 0 sells and 0 buys working, in agreement; "
        "QQQ position 0 shares, 0 sells and 0 buys working, in agreement; trading"
    )
    finished = [s for s in lines if s.startswith("replay finished")]
    assert finished[0].startswith("replay finished: TQQQ ")
    assert (
        "5 buy and 3 sell executions, 2 open lots (189 shares), realized P&L 150.40"
        in (finished[0])
    )
    assert finished[1].startswith("replay finished: QQQ ")
    labels = {
        (m["symbol"], m["tag"].split(".")[0])
        for m in map(re.compile(r".* (?P<symbol>T?QQQ) @ .* \((?P<tag>[^)]+)\)").match, lines)
        if m is not None
    }
    assert labels == {("TQQQ", "L0"), ("TQQQ", "L1"), ("QQQ", "E"), ("QQQ", "X")}
    engine = _venue_books(tmp_path / "data")
    routes = {(o.symbol, o.ref.split(":")[0]) for o in engine.orders.values()}
    assert routes == {("TQQQ", "grid"), ("QQQ", "ma_cross")}
    assert all(o.ref.split(":")[1] == o.symbol for o in engine.orders.values())


@pytest.mark.parametrize(
    ("strategy", "change", "message"),
    [
        (
            "ma_cross",
            ("fast = 10\nslow = 30\n", "fast = 30\nslow = 10\n"),
            "must be less than slow (10), got 30 @ symbols[0].ma_cross.fast",
        ),
        (
            "momentum",
            ('bar = "5min"\n', 'bar = "7min"\n'),
            "(1 minute to 8 hours, dividing the day) or \"1d\", got '7min' @ "
            "symbols[0].momentum.bar",
        ),
    ],
    ids=["ma_cross-fast-above-slow", "momentum-bar-not-dividing-the-day"],
)
def test_start_refuses_bad_strategy_parameters_naming_the_key(
    tmp_path: Path, strategy: str, change: tuple[str, str], message: str
) -> None:
    """A parameter the strategy cannot take exits 2 before anything starts, naming the config
    file and the key (a bar size that does not divide the day included: it used to pass the
    config and crash the composition)."""
    example = (ROOT / "config" / "examples" / f"{strategy}.toml").read_text()
    assert change[0] in example
    config = tmp_path / f"{strategy}.toml"
    config.write_text(example.replace(change[0], change[1]))
    result = run("start", "--config", str(config), "--speed", "0", socket=tmp_path / "ctl.sock")
    assert result.returncode == 2, result.stderr
    assert f"{config}: " in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "starting" not in result.stderr
    assert not (tmp_path / "ctl.sock").exists()


TWO = f"""\
[venue]
seed = 14

[[symbols]]
symbol = "TQQQ"
strategy = "grid"
lots = "{ROOT / "config" / "lots" / "tqqq.csv"}"

[[symbols]]
symbol = "TQQQ"
strategy = "ma_cross"

[symbols.ma_cross]
sessions = "extended"
fast = 10
slow = 30
"""


def test_start_trades_the_grid_and_ma_cross_on_one_symbol(tmp_path: Path) -> None:
    """A config with TQQQ twice, a grid and an MA-crossover: `actorctl start` trades both on
    the embedded venue, each under its own orderRefs; the summaries split the venue's orders
    and executions between them; status and lots show both; it stops cleanly."""
    socket = tmp_path / "ctl.sock"
    config = tmp_path / "two.toml"
    config.write_text(TWO)
    process = _start(config, tmp_path, "--days", "1")
    try:
        lines = _until_finished(process, 2)
        status = run("status", socket=socket)
        lots = run("lots", socket=socket)
        stop = run("stop", socket=socket)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert stop.returncode == 0, stop.stderr
    assert "Traceback" not in stderr
    assert "at stop: TQQQ (grid) " in stdout
    assert "at stop: TQQQ (ma_cross) " in stdout
    assert lines[0].startswith("reconciled with the venue: TQQQ (grid) 0 open lots, ")
    assert "; TQQQ (ma_cross) position 0 shares, " in lines[0]
    assert lines[0].endswith("in agreement; trading")

    engine = _venue_books(tmp_path / "data")
    summaries = {}
    for line in lines:
        found = re.match(r"^replay finished: TQQQ \((\w+)\) (\d+) orders, (\d+) buy and", line)
        if found is not None:
            summaries[found[1]] = (int(found[2]), int(found[3]))
    for strategy in ("grid", "ma_cross"):
        orders = [o for o in engine.orders.values() if o.ref.startswith(f"{strategy}:TQQQ:")]
        buys = [
            e
            for e in engine.executions
            if e.ref.startswith(f"{strategy}:TQQQ:") and e.side.value == "BUY"
        ]
        assert orders, strategy
        assert buys, strategy
        assert summaries[strategy] == (len(orders), len(buys))
    assert sum(n for n, _ in summaries.values()) == len(engine.orders)

    assert status.returncode == 0, status.stderr
    assert "Traceback" not in status.stderr
    shown = [s for s in status.stdout.splitlines() if s.startswith("TQQQ: ")]
    assert len(shown) == 2
    assert "; grid " in shown[0]
    assert "; ma_cross " in shown[1]
    assert "symbol.TQQQ.ma_cross" in status.stdout
    assert lots.returncode == 0, lots.stderr
    rows = [row.split() for row in lots.stdout.splitlines() if row.startswith("TQQQ ")]
    assert {row[1] for row in rows} == {"grid", "ma_cross"}
