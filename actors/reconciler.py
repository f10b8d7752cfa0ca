"""The reconciler: asks every symbol actor to reconcile with the broker, periodically and on
request (``actorctl reconcile``), and keeps the last report for ``actorctl status``.

The comparison and the repairs happen in each symbol actor (``SymbolActor`` handles
``Resync`` between two of its events, so reconciliation never races the strategy); every symbol
actor also reconciles when it starts, which covers the start of the service and every broker
reconnect (the broker actor's restart restarts the actors after it, rest_for_one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs

from runtime import Actor, ActorRef, Request

from .reconcile import Diff
from .symbol import Resync, SymbolInbox

log = logging.getLogger("actortrade.reconciler")


@attrs.frozen(kw_only=True)
class Reconcile(Request["ReconcileReport"]):
    """Reconcile every symbol now; replies with a ``ReconcileReport``. ``acknowledge``: an
    operator has looked at the execution conflicts on record (see ``Resync``)."""

    dry_run: bool = False
    acknowledge: bool = False


@attrs.frozen(kw_only=True)
class LastReport(Request["ReconcileReport | None"]):
    """Reply with the last (not dry-run) ``ReconcileReport``, or None."""


@attrs.frozen(kw_only=True)
class ReconcileReport:
    at_ns: int
    diffs: tuple[Diff, ...]
    dry_run: bool = False

    @property
    def clean(self) -> bool:
        return all(diff.clean for diff in self.diffs)


ReconcilerInbox = Reconcile | LastReport


class Reconciler(Actor[ReconcilerInbox]):
    """Reconciles each of ``symbols``: the symbol actors by route (``strategy:symbol``), one per
    strategy of a symbol, each its own orders (``reconcile.plan``)."""

    def __init__(
        self,
        symbols: Mapping[str, ActorRef[SymbolInbox]],
        *,
        interval: float = 60.0,
        request_timeout: float = 60.0,
    ) -> None:
        self.symbols = symbols
        self.interval = interval
        self.request_timeout = request_timeout
        self.last: ReconcileReport | None = None
        self.runs = 0

    async def background(self) -> None:
        while True:
            await self.context.clock.sleep(self.interval)
            await self.context.self_ref.send(Reconcile())

    async def handle(self, message: ReconcilerInbox) -> ReconcileReport | None:
        match message:
            case LastReport():
                return self.last
            case Reconcile(dry_run=dry_run, acknowledge=acknowledge):
                diffs = []
                for ref in self.symbols.values():
                    diff = await ref.request(
                        Resync(dry_run=dry_run, acknowledge=acknowledge),
                        timeout=self.request_timeout,
                    )
                    if not isinstance(diff, Diff):
                        raise TypeError(f"{ref.name} answered a Resync with {diff!r}")
                    diffs.append(diff)
                report = ReconcileReport(
                    at_ns=self.context.clock.time_ns(), diffs=tuple(diffs), dry_run=dry_run
                )
                if not dry_run:
                    self.runs += 1
                    self.last = report
                    if not report.clean:
                        log.warning("reconciliation found differences (see actorctl status)")
                return report
