"""Where the deterministic simulation's faults live (``app.chaos.harness`` arms them):

* ``Arms``: faults armed to fire later (at an actor's n-th next message, the lot-keeper's n-th
  next write, the broker's n-th next order), which outlive restarts, like the plan;
* ``ChaosStore``: the ledger's store, committing inline, where the lot-keeper dies in the middle
  of a transaction or right after its commit;
* ``ChaosPort``: the in-process venue port, where the broker actor dies between submit and ack
  (an order's or a bracket's), and the connection drops in the middle of a bracket;
* ``wrap``: an actor cell whose incarnations die at the message the plan says
  (``KILL_AT_MESSAGE``: before handling it, during, or after), and the lot-keeper's, whose
  commit of a bracket kills the symbol actor waiting for it (``KILL_AFTER_COMMIT``).
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from actors import ledger
from actors.brokers.sim import SimPort
from actors.domain import BrokerEvent, PlaceBracket, PlaceOrder
from runtime import ActorCell
from runtime.store import Durability, Store, Txn
from sim.engine import Engine

from .plan import Kind, Scenario


class ChaosKill(Exception):
    """How the plan kills an actor from inside (the supervisor sees a crash)."""


@attrs.define
class Arms:
    """Faults armed to fire later: at an actor's n-th next message, the lot-keeper's n-th
    next write, the broker's n-th next order. They outlive restarts, like the plan."""

    messages: dict[str, tuple[int, str, str]] = attrs.Factory(dict)
    """Cell name -> (messages left, flavour, message type or "")."""
    writes: tuple[int, Kind] | None = None
    places: int | None = None
    release_at: int | None = None
    after_commit: tuple[int, str] | None = None
    """(Brackets committed left, the path of the symbol actor to kill then)."""
    brackets: int | None = None
    """Brackets sent left until the connection drops in the middle of one."""
    exit_cancel: bool = False
    """The next cancel of an options exit is lost with the connection."""
    exit_operator: int | None = None
    """Someone cancels an options exit as soon as one works (which, by this number)."""
    fired: Counter[str] = attrs.Factory(Counter)
    """The armed faults that went off, by kind."""

    def clear(self) -> None:
        self.messages.clear()
        self.writes = None
        self.places = None
        self.after_commit = None
        self.brackets = None
        self.exit_cancel = False
        self.exit_operator = None

    def message(self, cell: str, message: object) -> str | None:
        """Count a message to ``cell``; the flavour if this is the armed one."""
        armed = self.messages.get(cell)
        if armed is None:
            return None
        left, flavour, kind = armed
        if kind and type(message).__name__ != kind:
            return None
        if left > 1:
            self.messages[cell] = (left - 1, flavour, kind)
            return None
        del self.messages[cell]
        self.fired[f"kill-at-message:{cell}:{flavour}"] += 1
        return flavour

    def write(self) -> Kind | None:
        if self.writes is None:
            return None
        left, kind = self.writes
        self.writes = (left - 1, kind) if left > 1 else None
        if left > 1:
            return None
        self.fired[str(kind)] += 1
        return kind

    def committed(self, cell: str, message: object) -> str | None:
        """Count a message ``cell`` handled; the path of the actor to kill if it was the
        armed bracket's commit."""
        if self.after_commit is None or cell != "lot-keeper":
            return None
        if type(message).__name__ != "CommitBracket":
            return None
        left, target = self.after_commit
        if left > 1:
            self.after_commit = (left - 1, target)
            return None
        self.after_commit = None
        self.fired[f"kill-after-commit:{cell_name(target)}"] += 1
        return target

    def bracket(self) -> bool:
        """Count a bracket sent; True if the connection drops in the middle of this one."""
        if self.brackets is None:
            return False
        self.brackets -= 1
        if self.brackets > 0:
            return False
        self.brackets = None
        self.fired["disconnect-mid-bracket"] += 1
        return True

    def place(self) -> bool:
        if self.places is None:
            return False
        self.places -= 1
        if self.places > 0:
            return False
        self.places = None
        self.fired[str(Kind.SUBMIT_CRASH)] += 1
        return True


class ChaosStore(Store):
    """The ledger's store, crash-safe (its redo journal, committing into LMDB inline), where the
    lot-keeper dies mid-transaction."""

    def __init__(self, path: Path, arms: Arms) -> None:
        super().__init__(
            path,
            databases=ledger.DATABASES,
            schema_version=ledger.SCHEMA_VERSION,
            migrations=ledger.MIGRATIONS,
            durability=Durability.CRASH_SAFE,
            map_size=64 << 20,
            inline=True,
        )
        self.arms = arms

    async def write(self, fn: Callable[[Txn], Any]) -> Any:
        fault = self.arms.write()
        if fault is Kind.STORE_ABORT:

            def doomed(txn: Txn) -> Any:
                fn(txn)
                raise ChaosKill("lot-keeper killed in the middle of a transaction")

            return await super().write(doomed)
        result = await super().write(fn)
        if fault is Kind.STORE_AFTER_COMMIT:
            raise ChaosKill("lot-keeper killed after its commit, before replying")
        return result


class ChaosPort(SimPort):
    """The in-process venue port, where the broker actor dies between submit and ack."""

    def __init__(self, engine: Engine, scenario: Scenario, arms: Arms) -> None:
        super().__init__(engine, scenario.bars[0].start)
        self.arms = arms

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        events = await super().place(order)
        if self.arms.place():
            raise ChaosKill(f"broker killed after {order.ref} reached the venue, before its ack")
        return events

    async def place_bracket(self, bracket: PlaceBracket) -> list[BrokerEvent]:
        if self.link.connected and self.arms.bracket():
            # The entry's acknowledgement is the next event: lost, and the link drops before
            # the exits are sent (the port then cancels the entry at the venue).
            self.link.disconnect_after(1)
        events = await super().place_bracket(bracket)
        if self.arms.place():
            raise ChaosKill(
                f"broker killed after bracket {bracket.entry.ref} reached the venue, before its ack"
            )
        return events


def wrap(cell: ActorCell[Any], arms: Arms, kill: Callable[[str], None]) -> None:
    """Make ``cell``'s actors die where ``arms`` says (KILL_AT_MESSAGE); ``kill`` kills an
    actor by its path under the root (a ``during`` death lands at the handler's first await)."""
    make = cell.factory
    name = cell.name

    def factory() -> Any:
        actor = make()
        handle = actor.handle
        if not inspect.iscoroutinefunction(handle):

            def plain(message: Any) -> Any:
                flavour = arms.message(name, message)
                if flavour == "before":
                    raise ChaosKill(f"{name} killed before handling {message!r}")
                result = handle(message)
                doomed = arms.committed(name, message)
                if doomed is not None:
                    kill(doomed)
                if flavour is not None:  # during or after: a plain handler has no await
                    raise ChaosKill(f"{name} killed after handling {message!r}")
                return result

            actor.handle = plain  # type: ignore[method-assign]
            return actor

        async def chaotic(message: Any) -> Any:
            flavour = arms.message(name, message)
            if flavour == "before":
                raise ChaosKill(f"{name} killed before handling {message!r}")
            if flavour == "during":
                kill(target_of(name))  # lands at the first await
            result = await handle(message)
            doomed = arms.committed(name, message)
            if doomed is not None:
                kill(doomed)  # lands as it waits for this answer: nothing of it sent
            if flavour == "after":
                raise ChaosKill(f"{name} killed after handling {message!r}")
            return result

        actor.handle = chaotic  # type: ignore[method-assign]
        return actor

    cell.factory = factory


def cell_name(target: str) -> str:
    """The cell of a kill target (an actor path under the root)."""
    return target.rpartition("/")[2]


def target_of(cell: str) -> str:
    """The path under the root of the cell named ``cell``."""
    return f"symbols/{cell}" if cell.startswith("symbol.") else cell
