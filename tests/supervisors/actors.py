"""Test actors shared by the supervisor tests: a probe that records its life in a journal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import attrs

from runtime import Actor, ActorCell, Unrecoverable


@attrs.frozen
class Work:
    n: int


@attrs.frozen
class Crash:
    unrecoverable: bool = False


@attrs.frozen
class Quit:
    pass


@attrs.frozen
class Query:
    pass


ProbeInbox = Work | Crash | Quit | Query


class ProbeCrash(Exception):
    """Raised by a probe on ``Crash``."""


class ProbeRefused(Unrecoverable):
    """Raised by a probe on ``Crash(unrecoverable=True)``."""


@attrs.define
class Journal:
    """What every probe did, in order, across incarnations."""

    events: list[tuple[str, str, int]] = attrs.Factory(list)
    work: dict[str, list[int]] = attrs.Factory(dict)

    def record(self, actor: str, event: str, incarnation: int) -> None:
        self.events.append((actor, event, incarnation))

    def of(self, event: str) -> list[str]:
        return [actor for actor, kind, _ in self.events if kind == event]


class Probe(Actor[ProbeInbox]):
    def __init__(self, name: str, journal: Journal, *, stop_delay: float = 0.0) -> None:
        self.name = name
        self.journal = journal
        self.stop_delay = stop_delay

    async def on_start(self) -> None:
        self.journal.record(self.name, "start", self.context.incarnation)

    def handle(self, message: ProbeInbox) -> object:
        match message:
            case Work(n=n):
                self.journal.work.setdefault(self.name, []).append(n)
            case Crash(unrecoverable=True):
                raise ProbeRefused(f"{self.name} was refused for good")
            case Crash():
                raise ProbeCrash(f"{self.name} crashed on purpose")
            case Quit():
                self.context.stop_self()
            case Query():
                return self.context.incarnation
        return None

    async def on_stop(self) -> None:
        self.journal.record(self.name, "stop", self.context.incarnation)
        if self.stop_delay:
            await anyio.sleep(self.stop_delay)


def probe_cell(name: str, journal: Journal, **kwargs: Any) -> ActorCell[ProbeInbox]:
    factory: Callable[[], Probe] = lambda: Probe(name, journal, **kwargs)  # noqa: E731
    return ActorCell(name, factory)
