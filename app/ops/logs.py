"""The service's logs: text for a terminal, JSON lines for a collector, each line naming the run,
the actor and its symbol, and, while a decision is being handled, its trace and span (the ids
Jaeger shows), so that a line leads to its trace.

``configure_logging`` installs one handler on the root logger, writing to standard error:

* ``text`` (the default): ``2026-12-05 12:39:24,573 INFO actortrade.symbol: message``, and
  `` [trace <32 hex>]`` after the message while a trace is current.
* ``json``: one object per line, with ``time`` (ISO 8601, UTC, milliseconds, ``Z``), ``level``,
  ``logger``, ``message`` (formatted; an exception's traceback in ``exc_info``), and ``run_id``,
  ``actor``, ``symbol``, ``trace_id`` (32 hex digits), ``span_id`` (16) when known. A key whose
  value is not known is left out, never null: a line outside any actor has no ``actor``, one
  outside a decision no ``trace_id``.

The actor and the trace come from ``runtime.LOG_ACTOR`` and ``runtime.LOG_TRACE``, which the
runtime and the symbol actors set (``runtime/_logcontext.py``); the symbol is read from the actor's
name (``symbol.TQQQ``, ``symbol.TQQQ.scalp``).

What a first run used to be noisy with is quieted: a warning repeated (same logger, same message
template) within ``DEDUPE_WINDOW`` seconds is written once, and one line ``... repeated N times
in the last 60s`` follows when the window ends (``Dedupe``); IB's 202 notices for the cancels we
asked for, its farm-connection-OK notices and the per-fill lot lines (the fill printer's trade
lines say as much) are DEBUG (``actors/brokers/ib.py``, ``actors/symbol.py``). ``verbose`` brings
the detail back: 1 puts our loggers at DEBUG and ib_insync's at INFO, 2 everything at DEBUG.
"""

from __future__ import annotations

import enum
import logging
import secrets
import sys
import threading
import time
from collections.abc import Callable
from typing import Protocol

import msgspec

from runtime import LOG_ACTOR, LOG_TRACE

__all__ = [
    "DEDUPE_WINDOW",
    "FORMATS",
    "TEXT_FORMAT",
    "Dedupe",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "announce_run",
    "configure_logging",
    "flush_repeats",
    "new_run_id",
    "symbol_of",
]


class LogFormat(enum.Enum):
    """``--log-format``: what a line looks like."""

    TEXT = "text"
    JSON = "json"


FORMATS = tuple(f.value for f in LogFormat)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEDUPE_WINDOW = 60.0
"""Seconds a repeated warning is held back for, after the first, before its count is written."""
OURS = "actortrade"
"""The logger every one of ours is under (``actortrade.symbol``, ``actortrade.broker.ib``)."""

_NO_CONTEXT: tuple[str | None, object | None] = (None, None)
_run: list[str] = []
"""The run id ``configure_logging`` was given, for ``announce_run``."""


def new_run_id() -> str:
    """A run's id: 12 hex digits, drawn at each start."""
    return secrets.token_hex(6)


def announce_run() -> None:
    """Log the run's id (INFO ``run <id>``), once the service has said what it starts: the id
    every JSON line of the run carries, for a text log too."""
    if _run:
        logging.getLogger("actortrade.service").info("run %s", _run[-1])


def symbol_of(actor: str) -> str | None:
    """The symbol a symbol actor trades, from its name (``symbol.TQQQ``, ``symbol.TQQQ.scalp``):
    None for any other actor."""
    if not actor.startswith("symbol."):
        return None
    return actor[len("symbol.") :].split(".", 1)[0] or None


def _context(record: logging.LogRecord) -> tuple[str | None, object | None]:
    # A record made later, away from where its lines were logged (a dedupe summary), carries
    # its own context; any other is formatted in the task that logged it.
    carried: tuple[str | None, object | None] | None = getattr(record, "log_context", None)
    if carried is not None:
        return carried
    return LOG_ACTOR.get(), LOG_TRACE.get()


def _ids(trace: object | None) -> tuple[str | None, str | None]:
    if trace is None:
        return None, None
    trace_id = getattr(trace, "trace_id", None)
    span_id = getattr(trace, "span_id", None)
    return (
        f"{trace_id:032x}" if isinstance(trace_id, int) and trace_id > 0 else None,
        f"{span_id:016x}" if isinstance(span_id, int) and span_id > 0 else None,
    )


class TextFormatter(logging.Formatter):
    """The terminal's line, with `` [trace <id>]`` after the message while a trace is current."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        trace_id, _ = _ids(_context(record)[1])
        return line if trace_id is None else f"{line} [trace {trace_id}]"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (module doc): keys whose value is unknown are left out."""

    def __init__(self, run_id: str | None = None) -> None:
        super().__init__()
        self.run_id = run_id

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, str] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        if self.run_id:
            entry["run_id"] = self.run_id
        actor, trace = _context(record)
        if actor:
            symbol = symbol_of(actor)
            if symbol is not None:
                entry["symbol"] = symbol
            entry["actor"] = actor
        trace_id, span_id = _ids(trace)
        if trace_id is not None:
            entry["trace_id"] = trace_id
            if span_id is not None:
                entry["span_id"] = span_id
        return msgspec.json.encode(entry).decode()


class _Window:
    __slots__ = ("start", "count", "last")

    def __init__(self, start: float, record: logging.LogRecord) -> None:
        self.start = start
        self.count = 0
        self.last = record


class Dedupe(logging.Filter):
    """Lets the first of a warning (``level`` and above) through and holds back the same
    logger's same message template for ``window`` seconds after it, counting them; once the
    window has ended, one line ``<the last one> ... repeated N times in the last <window>s``
    goes to ``emit``, before the next record that passes (no timer: it is checked as records
    pass, and at ``drain``). Lines below ``level``
    pass untouched. ``clock`` (seconds, monotonic) is injectable for tests."""

    def __init__(
        self,
        window: float = DEDUPE_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        level: int = logging.WARNING,
        emit: Callable[[logging.LogRecord], object] | None = None,
    ) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self.level = level
        self.emit = emit
        self._open: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "deduped", False):
            return True  # a summary of ours
        if record.levelno < self.level and not self._open:
            return True
        now = self.clock()
        passes = True
        with self._lock:
            due = self._expired(now) if self._open else []
            if record.levelno >= self.level:
                key = (record.name, str(record.msg))
                window = self._open.get(key)
                if window is None:
                    self._open[key] = _Window(now, record)
                else:
                    window.count += 1
                    window.last = record
                    passes = False
        # Outside the lock: emitting goes through the handler, and its filters, again.
        for summary in due:
            self._deliver(summary)
        return passes

    def drain(self) -> None:
        """Write the counts of every window still open (at exit), and forget them."""
        with self._lock:
            windows = list(self._open.values())
            self._open.clear()
        for window in windows:
            if window.count:
                self._deliver(self._summary(window))

    def _expired(self, now: float) -> list[logging.LogRecord]:
        due = []
        for key, window in list(self._open.items()):
            if now - window.start >= self.window:
                del self._open[key]
                if window.count:
                    due.append(self._summary(window))
        return due

    def _summary(self, window: _Window) -> logging.LogRecord:
        last = window.last
        try:
            message = last.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: the template
            message = str(last.msg)
        summary = logging.makeLogRecord(
            {
                "name": last.name,
                "levelno": last.levelno,
                "levelname": last.levelname,
                "pathname": last.pathname,
                "lineno": last.lineno,
                "funcName": last.funcName,
                "msg": "%s ... repeated %d %s in the last %ss",
                "args": (
                    message,
                    window.count,
                    "time" if window.count == 1 else "times",
                    f"{self.window:g}",
                ),
                "deduped": True,
                "log_context": _NO_CONTEXT,
            }
        )
        return summary

    def _deliver(self, summary: logging.LogRecord) -> None:
        if self.emit is not None:
            self.emit(summary)


class Writable(Protocol):
    """Where the log goes: standard error, or something that writes there (``write`` and
    ``flush``)."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


class _Handler(logging.StreamHandler[Writable]):
    """Standard error, deduplicated; what is held back when it closes (at exit) is counted."""

    def __init__(self, stream: Writable, dedupe: Dedupe) -> None:
        super().__init__(stream)
        self.dedupe = dedupe
        dedupe.emit = self.handle
        self.addFilter(dedupe)

    def close(self) -> None:
        self.dedupe.drain()
        super().close()


def flush_repeats() -> None:
    """Write the counts of the repeated warnings held back so far (``Dedupe.drain``): before a
    line the command writes itself (``actorctl: ...``), so that the log's last word on what led
    to it comes first."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            handler.dedupe.drain()


def configure_logging(
    format: str = "text",
    verbose: int = 0,
    run_id: str | None = None,
    *,
    stream: Writable | None = None,
) -> None:
    """Log to standard error in ``format`` (``text`` or ``json``), at INFO (``verbose`` 1: ours
    at DEBUG and ib_insync's at INFO; 2: everything at DEBUG), with repeated warnings
    deduplicated; to ``stream`` instead when given (something with ``write`` and ``flush``).
    Called again, it replaces the handler it installed (and leaves others)."""
    if format not in FORMATS:
        raise ValueError(f"log format: must be one of {', '.join(FORMATS)}, got {format!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
        old.close()
    handler = _Handler(stream if stream is not None else sys.stderr, Dedupe())
    handler.setFormatter(JsonFormatter(run_id) if format == "json" else TextFormatter())
    root.addHandler(handler)
    _run[:] = [run_id] if run_id else []
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)
    logging.getLogger(OURS).setLevel(logging.DEBUG if verbose >= 1 else logging.NOTSET)
    # ib_insync logs every order event at INFO with its whole repr; ours say what matters.
    logging.getLogger("ib_insync").setLevel(
        logging.DEBUG if verbose >= 2 else logging.INFO if verbose == 1 else logging.WARNING
    )
    # The embedded venue is the simulated outside world: its own comings and goings (listening,
    # handshakes) are what `actorctl start` tells as its story; its warnings still show.
    logging.getLogger("actortrade.sim").setLevel(logging.DEBUG if verbose >= 1 else logging.WARNING)
