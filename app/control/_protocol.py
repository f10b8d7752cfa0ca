"""What the control socket says: one tagged msgspec Struct per command and per reply, shared by
the server (``serve_control``) and the client (``request``), so that both sides are checked
against the same types (tractor's ``msg/types.py`` is the model).

Every line on the socket is one JSON object whose ``type`` names its Struct and whose
``version`` is ``PROTOCOL_VERSION``. A command's class names the reply it gets (``Command[R]``,
and ``reply`` at run time), so ``request(path, Status())`` returns a ``StatusReply``; an error
is the ``Failed`` reply, whatever the command. A peer speaking another version (an ``actorctl``
and a service from different installations) is told so by name, never misread.

Version 1 was ``{"command": str, "args": {...}}`` answered by ``{"ok": bool, "result": ...}``
(before issue 18); this is version 2.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Final, Generic, TypeVar

import msgspec

PROTOCOL_VERSION: Final = 2
"""Raised whenever a command or reply changes shape; both ends refuse another version."""

R = TypeVar("R", bound="Reply")


# -- replies --------------------------------------------------------------------------------------


class Reply(
    msgspec.Struct, frozen=True, kw_only=True, tag_field="type", forbid_unknown_fields=True
):
    """A reply of the running service; ``pid`` is the serving process's own (the client checks
    it against the kernel's word, ``SO_PEERCRED``), filled in by the server as it sends."""

    version: int = PROTOCOL_VERSION
    pid: int = 0


class Failed(Reply, frozen=True, kw_only=True, tag="failed"):
    """The command could not be carried out; ``error`` says why, naming what."""

    error: str


class Pong(Reply, frozen=True, kw_only=True, tag="pong"):
    """The answer to ``Ping``, from the server itself: it is up, and its pid."""


class TracingView(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The tracer as ``status`` shows it."""

    enabled: bool
    endpoint: str | None
    built: int
    waiting: int
    dropped: int
    exported: int | None
    failed: int | None


class ReconcileView(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One reconciliation's report (``reconcile``'s, and ``status``'s last one)."""

    at_ns: int
    dry_run: bool
    clean: bool
    lines: list[str]
    """The report's diffs, one readable line each."""
    diffs: list[dict[str, Any]]
    """``actors.reconcile``'s diffs as JSON values, per symbol."""


class Reconciled(Reply, frozen=True, kw_only=True, tag="reconciled"):
    """The reconciliation ``Reconcile`` asked for."""

    report: ReconcileView


class StatusReply(Reply, frozen=True, kw_only=True, tag="status"):
    """The service at a glance. The actors' own views (``actors.symbol.SymbolView``,
    ``actors.market_data.FeedView``, the supervisors' tree) travel as JSON values: the client
    prints them without importing the actors."""

    mode: str
    venue: str
    venue_time: str | None
    """ISO 8601: the last trade the embedded venue saw (None: no venue of ours, or no trade)."""
    tree: list[dict[str, Any]]
    restarts: int
    symbols: list[dict[str, Any]]
    feeds: list[dict[str, Any]]
    last_reconcile: ReconcileView | None
    alerts: list[dict[str, Any]]
    """The last alerts (``actors.alerts.AlertLine``), with what each channel did with them."""
    alerting: dict[str, Any] | None = None
    """The alerts actor's figures and channels (None: it did not answer, restarting)."""
    risk: dict[str, Any] | None = None
    """The risk actor's view (``actors.risk.RiskView``; None: no risk actor)."""
    dry_run: dict[str, Any] | None = None
    """In a dry run, the orders that would have been sent (None: not a dry run)."""
    metrics: dict[str, Any]
    tracing: TracingView


class Halts(Reply, frozen=True, kw_only=True, tag="halts"):
    """What the operator's halts and the daily loss guard are after ``halt`` or ``resume``."""

    halts: list[str]
    tripped: str | None


class LotsReply(Reply, frozen=True, kw_only=True, tag="lots"):
    """Each symbol actor's view, its open lots among them."""

    symbols: list[dict[str, Any]]


class Stopping(Reply, frozen=True, kw_only=True, tag="stopping"):
    """The service is stopping gracefully (GTC orders stay at the broker)."""


class BackedUp(Reply, frozen=True, kw_only=True, tag="backed_up"):
    """The ledger's consistent copy was written to ``path``."""

    path: str


Replies = Failed | Pong | StatusReply | LotsReply | Stopping | Reconciled | BackedUp | Halts


# -- commands -------------------------------------------------------------------------------------


class Command(
    msgspec.Struct,
    Generic[R],
    frozen=True,
    kw_only=True,
    tag_field="type",
    forbid_unknown_fields=True,
):
    """A command to the running service, answered by an ``R`` (or ``Failed``)."""

    version: int = PROTOCOL_VERSION
    reply: ClassVar[type[Reply]]


class Ping(Command[Pong], frozen=True, kw_only=True, tag="ping"):
    """Is it up, and what is its pid (answered by the server, not the handler)."""

    reply = Pong


class Status(Command[StatusReply], frozen=True, kw_only=True, tag="status"):
    """``actorctl status``."""

    reply = StatusReply


class Lots(Command[LotsReply], frozen=True, kw_only=True, tag="lots"):
    """``actorctl lots``."""

    reply = LotsReply


class Stop(Command[Stopping], frozen=True, kw_only=True, tag="stop"):
    """``actorctl stop``."""

    reply = Stopping


class Reconcile(Command[Reconciled], frozen=True, kw_only=True, tag="reconcile"):
    """``actorctl reconcile [--dry-run] [--acknowledge-conflicts]``."""

    reply = Reconciled
    dry_run: bool = False
    acknowledge_conflicts: bool = False


class Backup(Command[BackedUp], frozen=True, kw_only=True, tag="backup"):
    """``actorctl backup PATH``: a consistent compacted copy of the ledger at ``path``."""

    reply = BackedUp
    path: Annotated[str, msgspec.Meta(min_length=1)]


class Halt(Command[Halts], frozen=True, kw_only=True, tag="halt"):
    """``actorctl halt [SYMBOL]``: no new orders of ``symbol`` (None: of every symbol) until
    ``resume``; durable."""

    reply = Halts
    symbol: str | None = None


class Resume(Command[Halts], frozen=True, kw_only=True, tag="resume"):
    """``actorctl resume [SYMBOL]``: lift the operator's halt of ``symbol`` (None: every halt)."""

    reply = Halts
    symbol: str | None = None


Commands = Ping | Status | Lots | Stop | Reconcile | Backup | Halt | Resume


class Head(msgspec.Struct, frozen=True):
    """What is read of a line before anything else, unknown fields ignored: its version (None:
    a version 1 line, or not ours) and, in a reply, the server's pid."""

    version: int | None = None
    pid: int | None = None
