"""Errors raised by the actor runtime.

Every error says which actor or mailbox it concerns, so that a log line alone tells the operator
where to look.
"""

from __future__ import annotations


class ActorRuntimeError(Exception):
    """Base class for errors raised by the actor runtime."""


class MailboxFull(ActorRuntimeError):
    """Raised by ``tell()`` when a backpressure message meets a full mailbox.

    Nothing is dropped: the caller still holds the message and decides (``await send()`` waits).
    """

    def __init__(self, mailbox: str, capacity: int) -> None:
        super().__init__(f"mailbox {mailbox!r} is full ({capacity} messages); use 'await send()'")
        self.mailbox = mailbox
        self.capacity = capacity


class MailboxClosed(ActorRuntimeError):
    """Raised when sending to, or receiving from, a mailbox whose actor was stopped for good."""

    def __init__(self, mailbox: str) -> None:
        super().__init__(f"mailbox {mailbox!r} is closed: its actor was stopped for good")
        self.mailbox = mailbox


class ActorStopped(ActorRuntimeError):
    """Raised to a requester whose request was still queued when the actor stopped for good."""

    def __init__(self, actor: str) -> None:
        super().__init__(f"actor {actor!r} stopped before answering")
        self.actor = actor


class ActorCrashed(ActorRuntimeError):
    """Raised to a requester when the handler answering its request raised; ``__cause__`` is why."""

    def __init__(self, actor: str, message_type: str) -> None:
        super().__init__(f"actor {actor!r} crashed while handling {message_type}")
        self.actor = actor
        self.message_type = message_type


class RequestTimeout(ActorRuntimeError, TimeoutError):
    """Raised by ``ActorRef.request()`` when no reply arrived within the timeout."""

    def __init__(self, actor: str, message_type: str, timeout: float) -> None:
        super().__init__(f"actor {actor!r} did not answer {message_type} within {timeout:g} s")
        self.actor = actor
        self.message_type = message_type
        self.timeout = timeout


class InvalidTransition(ActorRuntimeError):
    """Raised by the lifecycle state machine on an event its table does not allow."""

    def __init__(self, actor: str, state: str, event: str) -> None:
        super().__init__(f"actor {actor!r}: event {event!r} is not allowed in state {state!r}")
        self.actor = actor
        self.state = state
        self.event = event


class Unrecoverable(Exception):
    """Raised by an actor when a restart cannot help: the outside world refused it for a reason
    that only the operator can fix (a market-data plan that lacks the feed asked for, keys the
    venue keeps refusing). Its supervisor does not restart it: it stops its children and
    escalates at once (``supervisors.ChildUnrecoverable``), so the service stops with this
    error instead of retrying forever or running blind."""
