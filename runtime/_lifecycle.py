"""The actor lifecycle as an explicit state table.

One ``Lifecycle`` belongs to an actor cell and spans its incarnations: a restart moves a
``FAILED``, ``KILLED`` or ``STOPPED`` cell back to ``STARTING`` with a fresh actor instance.

    NEW      --start-->   STARTING
    STARTING --started--> RUNNING      STARTING --fail--> FAILED    STARTING --kill--> KILLED
    STARTING --stop-->    STOPPING
    RUNNING  --stop-->    STOPPING     RUNNING  --fail--> FAILED    RUNNING  --kill--> KILLED
    STOPPING --stopped--> STOPPED      STOPPING --fail--> FAILED    STOPPING --kill--> KILLED
    FAILED | KILLED | STOPPED --restart--> STARTING
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from ._errors import InvalidTransition


class LifecycleState(enum.Enum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    KILLED = "killed"


class LifecycleEvent(enum.Enum):
    START = "start"
    STARTED = "started"
    STOP = "stop"
    STOPPED = "stopped"
    FAIL = "fail"
    KILL = "kill"
    RESTART = "restart"


_S = LifecycleState
_E = LifecycleEvent

TRANSITIONS: Final[Mapping[tuple[LifecycleState, LifecycleEvent], LifecycleState]] = (
    MappingProxyType(
        {
            (_S.NEW, _E.START): _S.STARTING,
            (_S.STARTING, _E.STARTED): _S.RUNNING,
            (_S.STARTING, _E.STOP): _S.STOPPING,
            (_S.STARTING, _E.FAIL): _S.FAILED,
            (_S.STARTING, _E.KILL): _S.KILLED,
            (_S.RUNNING, _E.STOP): _S.STOPPING,
            (_S.RUNNING, _E.FAIL): _S.FAILED,
            (_S.RUNNING, _E.KILL): _S.KILLED,
            (_S.STOPPING, _E.STOPPED): _S.STOPPED,
            (_S.STOPPING, _E.FAIL): _S.FAILED,
            (_S.STOPPING, _E.KILL): _S.KILLED,
            (_S.FAILED, _E.RESTART): _S.STARTING,
            (_S.KILLED, _E.RESTART): _S.STARTING,
            (_S.STOPPED, _E.RESTART): _S.STARTING,
        }
    )
)
"""Every allowed (state, event) pair and the state it leads to; anything else is an error."""


class Lifecycle:
    """The current state of one actor cell, moved only through ``TRANSITIONS``."""

    __slots__ = ("owner", "state", "history")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.state = LifecycleState.NEW
        self.history: list[tuple[LifecycleState, LifecycleEvent, LifecycleState]] = []

    def fire(self, event: LifecycleEvent) -> LifecycleState:
        """Apply ``event``; raise ``InvalidTransition`` if the table does not allow it here."""
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise InvalidTransition(self.owner, self.state.value, event.value)
        # Bounded: a long-lived cell restarting many times must not grow without limit.
        if len(self.history) >= 64:
            del self.history[:32]
        self.history.append((self.state, event, target))
        self.state = target
        return target
