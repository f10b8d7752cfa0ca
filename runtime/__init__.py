"""The actor runtime: actors, refs, typed bounded mailboxes, envelopes, lifecycle and clocks.

Runs unchanged on anyio's asyncio backend (the production default, with uvloop when installed)
and on trio. Supervisors report to ``SupervisorHooks``; tracing is one, in ``runtime.telemetry``,
which loads OpenTelemetry: importing ``runtime`` does not.
"""

from ._actor import Actor as Actor
from ._actor import ActorCell as ActorCell
from ._actor import ActorContext as ActorContext
from ._actor import ActorRef as ActorRef
from ._actor import Request as Request
from ._actor import all_idle as all_idle
from ._backend import Backend as Backend
from ._clock import BackendClock as BackendClock
from ._clock import Clock as Clock
from ._clock import VirtualClock as VirtualClock
from ._envelope import Envelope as Envelope
from ._errors import ActorCrashed as ActorCrashed
from ._errors import ActorRuntimeError as ActorRuntimeError
from ._errors import ActorStopped as ActorStopped
from ._errors import InvalidTransition as InvalidTransition
from ._errors import MailboxClosed as MailboxClosed
from ._errors import MailboxFull as MailboxFull
from ._errors import RequestTimeout as RequestTimeout
from ._errors import Unrecoverable as Unrecoverable
from ._hooks import Action as Action
from ._hooks import ExitHandled as ExitHandled
from ._hooks import Hooks as Hooks
from ._hooks import SupervisorHooks as SupervisorHooks
from ._lifecycle import TRANSITIONS as TRANSITIONS
from ._lifecycle import Lifecycle as Lifecycle
from ._lifecycle import LifecycleEvent as LifecycleEvent
from ._lifecycle import LifecycleState as LifecycleState
from ._logcontext import LOG_ACTOR as LOG_ACTOR
from ._logcontext import LOG_TRACE as LOG_TRACE
from ._mailbox import FAIRNESS_BUDGET as FAIRNESS_BUDGET
from ._mailbox import Backpressure as Backpressure
from ._mailbox import Coalesce as Coalesce
from ._mailbox import Mailbox as Mailbox
from ._mailbox import MailboxConfig as MailboxConfig
from ._mailbox import MailboxInterrupted as MailboxInterrupted
from ._mailbox import MailboxStatistics as MailboxStatistics
from ._mailbox import Policy as Policy

__all__ = [
    "Request",
    "Backend",
    "Actor",
    "ActorCell",
    "ActorContext",
    "ActorRef",
    "all_idle",
    "Envelope",
    "Mailbox",
    "MailboxConfig",
    "MailboxStatistics",
    "MailboxInterrupted",
    "Backpressure",
    "Coalesce",
    "Policy",
    "FAIRNESS_BUDGET",
    "Lifecycle",
    "LifecycleEvent",
    "LifecycleState",
    "TRANSITIONS",
    "Clock",
    "BackendClock",
    "VirtualClock",
    "ActorRuntimeError",
    "ActorCrashed",
    "ActorStopped",
    "InvalidTransition",
    "MailboxClosed",
    "Unrecoverable",
    "MailboxFull",
    "RequestTimeout",
    "SupervisorHooks",
    "Hooks",
    "ExitHandled",
    "Action",
    "LOG_ACTOR",
    "LOG_TRACE",
]
