"""The envelope every message travels in."""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

if TYPE_CHECKING:
    from ._actor import ActorRef
    from ._reply import ReplySlot

M = TypeVar("M")

# Process-unique message ids; a counter is ~20x cheaper than a uuid on the hot path.
next_message_id = itertools.count(1).__next__


class Envelope(msgspec.Struct, Generic[M]):
    """A message plus its routing and timing metadata.

    ``ts_init_ns`` is a ``time.perf_counter_ns()`` stamp taken when the message entered a mailbox
    (monotonic, for latency measurement; not wall time). ``trace`` is an opaque slot for trace
    context that the telemetry layer fills and reads; the runtime only carries it.
    ``correlation_id`` ties a reply, or a chain of follow-up messages, to the message that
    caused it.

    A mutable ``msgspec.Struct``: built once per message on the hot path, where it costs half of a
    slotted Python class (measured 156 vs 293 ns), and a coalescing mailbox overwrites a queued
    envelope in place. Not a domain message: it is never serialized.
    """

    message: M
    message_id: int
    sender: ActorRef[Any] | None
    correlation_id: int | None
    ts_init_ns: int
    trace: object | None = None
    reply: ReplySlot | None = None
    coalesce_key: Hashable | None = None
