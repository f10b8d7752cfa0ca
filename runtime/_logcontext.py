"""What a log line knows of where it was written: the actor, and the trace of the decision being
handled, as context variables that a log formatter (``app.ops.logs``) reads.

Each actor runs in a task of its own, and a task has a context of its own: ``LOG_ACTOR`` is set
once when an incarnation starts (``ActorCell.run``), nothing per message. ``LOG_TRACE`` is set
for the handling of a message whose envelope carries a trace context (``_message_loop``), and by
an actor for the time it carries out a decision it traces (``actors/symbol.py``); a message
without one (a tick, nearly always) sets nothing.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["LOG_ACTOR", "LOG_TRACE"]

LOG_ACTOR: ContextVar[str | None] = ContextVar("actortrade_log_actor", default=None)
"""The name of the actor whose task is running (``symbol.TQQQ``), None outside any actor."""

LOG_TRACE: ContextVar[object | None] = ContextVar("actortrade_log_trace", default=None)
"""The trace context of the decision being handled: an envelope's ``trace`` slot as it came
(a ``TraceContext``: ``trace_id`` and ``span_id`` ints), None when there is none."""
