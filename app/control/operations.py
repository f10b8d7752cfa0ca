"""What the running service answers on its control socket (``actorctl status``, ``stop``,
``lots``, ``reconcile``, ``backup``, ``halt``, ``resume``): each command (``app.control``'s
protocol) becomes requests to the actors, and their answers one reply Struct.

Not imported by ``app.control`` itself: the client side (``actorctl status``) loads no actor.

Everything goes through the actors' mailboxes (``Describe``, ``Reconcile``, ``Backup``), so an
operator's question is handled between two events like any other message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, assert_never

import msgspec

from actors.alerts import AlertsView, DescribeAlerts
from actors.brokers.dry import DryPort
from actors.lot_keeper import Backup as BackupLedger
from actors.lot_keeper import Refused
from actors.market_data import DescribeFeed, FeedView
from actors.reconciler import LastReport, ReconcileReport
from actors.reconciler import Reconcile as ReconcileActor
from actors.risk import DescribeRisk, HaltTrading, ResumeTrading, RiskView
from actors.symbol import Describe, SymbolView
from app.compose import LiveTrading, SimTrading
from runtime import ActorRuntimeError, Request
from runtime.telemetry import Tracer
from supervisors import Supervisor

from ._errors import ControlError
from ._protocol import (
    BackedUp,
    Backup,
    Commands,
    Halt,
    Halts,
    Lots,
    LotsReply,
    Ping,
    Pong,
    Reconcile,
    Reconciled,
    ReconcileView,
    Reply,
    Resume,
    Status,
    StatusReply,
    Stop,
    Stopping,
    TracingView,
)

R = TypeVar("R")


class Operations:
    """The control socket's handler for one running ``SimTrading`` tree."""

    def __init__(
        self,
        trading: SimTrading | LiveTrading,
        root: Supervisor,
        stop: Callable[[str], None],
        *,
        mode: str = "paper",
        venue: str = "embedded sim venue",
        timeout: float = 30.0,
    ) -> None:
        self.trading = trading
        self.root = root
        self.stop = stop
        self.mode = mode
        self.venue = venue
        self.timeout = timeout

    async def __call__(self, command: Commands) -> Reply:
        match command:
            case Status():
                return await self.status()
            case Lots():
                return LotsReply(symbols=[_json(view) for view in await self.views()])
            case Stop():
                self.stop("actorctl stop")
                return Stopping()
            case Reconcile(dry_run=dry_run, acknowledge_conflicts=acknowledge):
                report = await self._request(
                    "reconciler", ReconcileActor(dry_run=dry_run, acknowledge=acknowledge)
                )
                return Reconciled(report=_report(report))
            case Backup(path=target):
                done = await self._request("lot-keeper", BackupLedger(target=str(Path(target))))
                if isinstance(done, Refused):
                    raise ControlError(done.reason)
                return BackedUp(path=done)
            case Halt(symbol=symbol) | Resume(symbol=symbol):
                # Cells symbol.<SYM>, and symbol.<SYM>.<strategy> for a symbol's other
                # strategies: a halt is of the symbol, every strategy of it.
                traded = sorted(
                    {
                        cell.name.removeprefix("symbol.").split(".", 1)[0]
                        for cell in self.trading.cells.values()
                        if cell.name.startswith("symbol.")
                    }
                )
                if symbol is not None and symbol not in traded:
                    raise ControlError(
                        f"{command.__struct_config__.tag}: {symbol!r} is not traded here "
                        f"(traded: {', '.join(traded)})"
                    )
                message = (
                    HaltTrading(symbol=symbol)
                    if isinstance(command, Halt)
                    else ResumeTrading(symbol=symbol)
                )
                view = await self._request("risk", message)
                return Halts(halts=list(view.halts), tripped=view.tripped)
            case Ping():
                return Pong()  # the server answers it first; here for completeness of the match
            case _:
                assert_never(command)

    async def views(self) -> list[SymbolView]:
        views = []
        for cell in self.trading.cells.values():
            if cell.name.startswith("symbol."):
                view = await cell.ref.request(Describe(), timeout=self.timeout)
                if isinstance(view, SymbolView):
                    views.append(view)
        return views

    async def feeds(self) -> list[FeedView]:
        views = []
        for cell in self.trading.cells.values():
            if cell.name.startswith("market-data."):
                view = await cell.ref.request(DescribeFeed(), timeout=self.timeout)
                if isinstance(view, FeedView):
                    views.append(view)
        return views

    async def status(self) -> StatusReply:
        report = await self._request("reconciler", LastReport())
        engine = self.trading.engine if isinstance(self.trading, SimTrading) else None
        venue_time = engine.last_trade_at if engine is not None else None
        return StatusReply(
            mode=self.mode,
            venue=self.venue,
            venue_time=venue_time.isoformat() if venue_time else None,
            tree=_json(self.root.status()),
            restarts=self.root.restarts,
            symbols=[_json(view) for view in await self.views()],
            feeds=[_json(view) for view in await self.feeds()],
            last_reconcile=_report(report) if isinstance(report, ReconcileReport) else None,
            **await self._alerts(),
            risk=_json(await self._risk()),
            dry_run=_dry(self.trading.port),
            metrics=self.trading.telemetry.metrics.snapshot(),
            tracing=_tracing(self.trading.telemetry.tracer),
        )

    async def _risk(self) -> RiskView | None:
        if "risk" not in self.trading.cells:
            return None
        return await self._request("risk", DescribeRisk())

    async def _alerts(self) -> dict[str, Any]:
        # The alerts actor's view; if it does not answer (restarting), what it last kept.
        try:
            view = await self._request("alerts", DescribeAlerts(last=20))
        except ActorRuntimeError:
            view = None
        if not isinstance(view, AlertsView):
            return {"alerts": [_json(alert) for alert in list(self.trading.alerts)[-20:]]}
        shown = _json(view)
        return {"alerts": shown.pop("alerts"), "alerting": shown}

    async def _request(self, cell: str, message: Request[R]) -> R:
        return await self.trading.cells[cell].ref.request(message, timeout=self.timeout)


def _dry(port: object) -> dict[str, Any] | None:
    # A dry run's port: the orders that would have been sent.
    if not isinstance(port, DryPort):
        return None
    return {
        "sent": port.sent,
        "cancelled": port.cancelled,
        "working": _json(list(port.orders.values())),
        "latest": _json(list(port.placed)[-20:]),
    }


def _tracing(tracer: Tracer) -> TracingView:
    watch = tracer.watch
    return TracingView(
        enabled=tracer.enabled,
        endpoint=tracer.endpoint,
        built=tracer.flushed,
        waiting=tracer.pending,
        dropped=tracer.dropped,
        exported=watch.exported if watch is not None else None,
        failed=watch.failed if watch is not None else None,
    )


def _report(report: ReconcileReport) -> ReconcileView:
    return ReconcileView(
        at_ns=report.at_ns,
        dry_run=report.dry_run,
        clean=report.clean,
        lines=[line for diff in report.diffs for line in diff.lines()],
        diffs=_json(report.diffs),
    )


def _json(value: object) -> Any:
    return msgspec.to_builtins(value)
