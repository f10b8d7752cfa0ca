"""The service's logs (app/ops/logs.py): JSON lines that parse and name the run, the actor, its
symbol and the trace of the message being handled; repeated warnings written once and then
counted; IB's answer to our own cancels kept out of the INFO log."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import msgspec
import pytest

from actors.brokers.ib import IBPort
from actors.domain import OrderCancelled, PlaceOrder, Side, TimeInForce
from app.ops.logs import Dedupe, JsonFormatter, TextFormatter, configure_logging, symbol_of
from runtime import LOG_TRACE, Actor, ActorCell
from runtime.telemetry import TraceContext
from sim.engine import Engine
from tests.tws_venue import until, venue

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LOGGER = "actortrade.test.logs"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, {}


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """What ``LOGGER`` writes, as JSON lines of run ``r1``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(run_id="r1"))
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


def parsed(stream: io.StringIO) -> list[dict[str, str]]:
    return [msgspec.json.decode(line) for line in stream.getvalue().splitlines()]


def _fail() -> None:
    raise ValueError("bad\nprice")


def test_a_json_line_parses_and_has_the_time_level_logger_message_and_run() -> None:
    """One object per line; the time in UTC with ms; unknown keys (actor, trace) left out; an
    exception's traceback in ``exc_info``, the message still one line."""
    formatter = JsonFormatter(run_id="0123456789ab")
    try:
        _fail()
    except ValueError:
        record = logging.LogRecord(
            LOGGER, logging.ERROR, __file__, 1, "fill %s failed", ("E1",), sys.exc_info()
        )
    line = formatter.format(record)
    assert "\n" not in line
    entry = msgspec.json.decode(line)
    assert set(entry) == {"time", "level", "logger", "message", "exc_info", "run_id"}
    assert TIME.match(entry["time"])
    assert (entry["level"], entry["logger"], entry["message"]) == (
        "ERROR",
        LOGGER,
        "fill E1 failed",
    )
    assert entry["run_id"] == "0123456789ab"
    assert "ValueError: bad" in entry["exc_info"]


def test_the_symbol_is_read_from_a_symbol_actors_name() -> None:
    """``symbol.TQQQ`` and ``symbol.TQQQ.scalp`` trade TQQQ; other actors trade nothing."""
    assert symbol_of("symbol.TQQQ") == "TQQQ"
    assert symbol_of("symbol.TQQQ.scalp") == "TQQQ"
    assert symbol_of("broker") is None
    assert symbol_of("market-data.alpaca") is None


class Logging(Actor[str]):
    """Logs each message it handles."""

    def handle(self, message: str) -> None:
        logging.getLogger(LOGGER).info("handled %s", message)
        if message == "last":
            self.context.stop_self()


@pytest.mark.anyio
async def test_a_line_logged_while_an_actor_handles_a_traced_message_carries_its_trace(
    lines: io.StringIO,
) -> None:
    """Inside a real actor cell: every line names the actor and its symbol; the one logged
    while handling a message that came with a trace context carries its trace and span ids
    (as Jaeger shows them); the others, and lines outside the actor, carry none."""
    context = TraceContext(trace_id=0xABC << 100, span_id=0x1234)
    cell = ActorCell("symbol.TQQQ.scalp", Logging)
    cell.ref.tell("plain")
    cell.ref.tell("traced", trace=context)
    cell.ref.tell("last")
    with anyio.fail_after(5):
        await cell.run()
    logging.getLogger(LOGGER).info("outside")
    entries = parsed(lines)
    assert [e["message"] for e in entries] == [
        "handled plain",
        "handled traced",
        "handled last",
        "outside",
    ]
    for entry in entries[:3]:
        assert (entry["actor"], entry["symbol"]) == ("symbol.TQQQ.scalp", "TQQQ")
    assert entries[1]["trace_id"] == f"{0xABC << 100:032x}"
    assert re.fullmatch(r"[0-9a-f]{32}", entries[1]["trace_id"])
    assert entries[1]["span_id"] == "0000000000001234"
    assert "trace_id" not in entries[0]
    assert "trace_id" not in entries[2]
    assert not {"actor", "symbol", "trace_id", "span_id"} & set(entries[3])
    assert LOG_TRACE.get() is None


def test_the_text_line_ends_with_the_trace_while_one_is_current() -> None:
    """Today's format, plus `` [trace <id>]`` after the message inside a decision."""
    formatter = TextFormatter()
    record = logging.LogRecord(LOGGER, logging.INFO, __file__, 1, "placed %s", ("L1",), None)
    assert formatter.format(record).endswith(f"INFO {LOGGER}: placed L1")
    token = LOG_TRACE.set(TraceContext(trace_id=5, span_id=6))
    try:
        line = formatter.format(record)
    finally:
        LOG_TRACE.reset(token)
    assert line.endswith(f"placed L1 [trace {5:032x}]")


def warning(message: str, *args: object, name: str = LOGGER) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, message, args, None)


def test_a_repeated_warning_passes_once_then_is_counted_when_its_window_ends() -> None:
    """Same logger and template within the window: the first passes, the rest are held and
    counted; the next line after the window brings one summary; other templates, other
    loggers and INFO lines pass untouched."""
    now = [0.0]
    summaries: list[logging.LogRecord] = []
    dedupe = Dedupe(60, clock=lambda: now[0], emit=summaries.append)
    assert dedupe.filter(warning("IB error %d", 1))
    now[0] = 10
    assert not dedupe.filter(warning("IB error %d", 2))
    assert not dedupe.filter(warning("IB error %d", 3))
    assert dedupe.filter(warning("IB error %d", 4, name="actortrade.other"))
    assert dedupe.filter(warning("lost %s", "x"))
    info = logging.LogRecord(LOGGER, logging.INFO, __file__, 1, "IB error %d", (5,), None)
    assert dedupe.filter(info)
    assert summaries == []
    now[0] = 60
    assert dedupe.filter(info)  # the window has ended: its count goes out first
    assert [s.getMessage() for s in summaries] == [
        "IB error 3 ... repeated 2 times in the last 60s"
    ]
    assert summaries[0].levelno == logging.WARNING
    assert dedupe.filter(summaries[0])  # a summary passes its own filter
    assert dedupe.filter(warning("IB error %d", 6))  # a new window
    assert not dedupe.filter(warning("IB error %d", 7))
    dedupe.drain()
    assert [s.getMessage() for s in summaries][1:] == [
        "IB error 7 ... repeated 1 time in the last 60s"
    ]


def test_a_warning_seen_once_leaves_no_summary() -> None:
    """A window that held nothing back ends silently."""
    now = [0.0]
    summaries: list[logging.LogRecord] = []
    dedupe = Dedupe(60, clock=lambda: now[0], emit=summaries.append)
    assert dedupe.filter(warning("once"))
    now[0] = 120
    assert dedupe.filter(warning("other"))
    dedupe.drain()
    assert summaries == []


def test_configure_logging_replaces_its_handler_and_sets_the_levels(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Called twice, one handler of ours; -v: our DEBUG lines and ib_insync's INFO come back;
    by default neither does."""
    root = logging.getLogger()
    level = root.level
    try:
        configure_logging("json", 0, "r0")
        configure_logging("json", 1, "r1")
        ours = [h for h in root.handlers if type(h).__name__ == "_Handler"]
        assert len(ours) == 1
        assert logging.getLogger("actortrade.symbol").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("ib_insync.wrapper").isEnabledFor(logging.INFO)
        assert not logging.getLogger("ib_insync.wrapper").isEnabledFor(logging.DEBUG)
        configure_logging("text", 0)
        assert not logging.getLogger("actortrade.symbol").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("ib_insync.wrapper").isEnabledFor(logging.INFO)
        configure_logging("text", 2)
        assert logging.getLogger("ib_insync.wrapper").isEnabledFor(logging.DEBUG)
        assert logging.getLogger("asyncio").isEnabledFor(logging.DEBUG)
        with pytest.raises(ValueError, match="log format"):
            configure_logging("xml")
    finally:
        for handler in [h for h in root.handlers if type(h).__name__ == "_Handler"]:
            root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("actortrade").setLevel(logging.NOTSET)
        logging.getLogger("ib_insync").setLevel(logging.NOTSET)


def test_held_back_counts_are_written_before_a_line_actorctl_writes_itself(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``actorctl: ...`` (a stop's reason) comes after the count of the warnings that led to
    it, not before."""
    from app.cli._common import say

    root = logging.getLogger()
    try:
        configure_logging("text", 0)
        for attempt in range(3):
            logging.getLogger(LOGGER).warning("crashed (%d)", attempt)
        say("the service stopped")
    finally:
        for handler in [h for h in root.handlers if type(h).__name__ == "_Handler"]:
            root.removeHandler(handler)
        logging.getLogger("ib_insync").setLevel(logging.NOTSET)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(": ", 1)[1] for line in lines[:2]] == [
        "crashed (0)",
        "crashed (2) ... repeated 2 times in the last 60s",
    ]
    assert lines[2:] == ["actorctl: the service stopped"]


def _notices(caplog: pytest.LogCaptureFixture, code: int) -> list[int]:
    return [
        r.levelno
        for r in caplog.records
        if r.name == "actortrade.broker.ib" and r.args and r.args[0] == code  # type: ignore[index]
    ]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # ib_insync is asyncio-native
@pytest.mark.anyio
async def test_ibs_202_for_our_own_cancel_is_debug_and_for_another_stays_a_notice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Over the wire with ib_insync: the 202 TWS answers our cancel with is logged at DEBUG;
    a 202 for an order we did not ask to cancel stays an INFO notice."""
    caplog.set_level(logging.DEBUG, logger="actortrade.broker.ib")
    engine = Engine()
    async with venue(engine) as server:
        assert server.port is not None
        port = IBPort(host="127.0.0.1", port=server.port, client_id=3, timeout=5)
        await port.connect()
        ref = "grid:TQQQ:L2:BUY:3:1"
        await port.place(
            PlaceOrder(
                ref=ref,
                symbol="TQQQ",
                side=Side.BUY,
                quantity=94,
                limit=Decimal("40.00"),
                tif=TimeInForce.GTC,
            )
        )
        await port.cancel(ref)
        await until(lambda: any(isinstance(e, OrderCancelled) for e in port._events))
        await until(lambda: _notices(caplog, 202))
        port._on_error(9999, 202, "Order Canceled - reason:", None)
        await port.close()
    assert _notices(caplog, 202) == [logging.DEBUG, logging.INFO]
