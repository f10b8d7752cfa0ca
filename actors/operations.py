"""What the running service answers on its control socket (``actorctl status``, ``stop``,
``lots``, ``reconcile``, ``backup``, ``halt``, ``resume``): requests to the actors, replies as
JSON-able values.

Everything goes through the actors' mailboxes (``Describe``, ``Reconcile``, ``Backup``), so an
operator's question is handled between two events like any other message.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from runtime.control import ControlError
from runtime.telemetry import Tracer
from supervisors import Supervisor

from .brokers.dry import DryPort
from .lot_keeper import Backup, Refused
from .market_data import DescribeFeed, FeedView
from .reconciler import LastReport, Reconcile, ReconcileReport
from .risk import DescribeRisk, HaltTrading, ResumeTrading, RiskView
from .symbol import Describe, SymbolView
from .trading import LiveTrading, SimTrading


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

    async def __call__(self, command: str, args: dict[str, Any]) -> Any:
        match command:
            case "status":
                return await self.status()
            case "lots":
                return {"symbols": [_json(view) for view in await self.views()]}
            case "stop":
                self.stop("actorctl stop")
                return {"stopping": True, "pid": os.getpid()}
            case "reconcile":
                dry_run = args.get("dry_run", False)
                acknowledge = args.get("acknowledge_conflicts", False)
                for name, value in (("dry_run", dry_run), ("acknowledge_conflicts", acknowledge)):
                    if not isinstance(value, bool):
                        raise ControlError(
                            f"reconcile: {name} must be true or false, got {value!r}"
                        )
                report = await self._request(
                    "reconciler", Reconcile(dry_run=dry_run, acknowledge=acknowledge)
                )
                return _report(report)
            case "backup":
                target = args.get("path")
                if not isinstance(target, str) or not target:
                    raise ControlError("backup: needs a target directory path")
                done = await self._request("lot-keeper", Backup(target=str(Path(target))))
                if isinstance(done, Refused):
                    raise ControlError(done.reason)
                return {"path": done}
            case "halt" | "resume":
                symbol = args.get("symbol")
                traded = sorted(
                    cell.name.removeprefix("symbol.")
                    for cell in self.trading.cells.values()
                    if cell.name.startswith("symbol.")
                )
                if symbol is not None and symbol not in traded:
                    raise ControlError(
                        f"{command}: {symbol!r} is not traded here (traded: {', '.join(traded)})"
                    )
                message = (
                    HaltTrading(symbol=symbol)
                    if command == "halt"
                    else ResumeTrading(symbol=symbol)
                )
                return _json(await self._request("risk", message))
            case _:
                raise ControlError(
                    f"unknown command {command!r} (status, lots, stop, reconcile, backup, halt, "
                    "resume)"
                )

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

    async def status(self) -> dict[str, Any]:
        report = await self._request("reconciler", LastReport())
        engine = self.trading.engine if isinstance(self.trading, SimTrading) else None
        venue_time = engine.last_trade_at if engine is not None else None
        return {
            "pid": os.getpid(),
            "mode": self.mode,
            "venue": self.venue,
            "venue_time": venue_time.isoformat() if venue_time else None,
            "tree": _json(self.root.status()),
            "restarts": self.root.restarts,
            "symbols": [_json(view) for view in await self.views()],
            "feeds": [_json(view) for view in await self.feeds()],
            "last_reconcile": _report(report) if isinstance(report, ReconcileReport) else None,
            "alerts": [_json(alert) for alert in self.trading.alerts[-20:]],
            "risk": _json(await self._risk()),
            "dry_run": _dry(self.trading.port),
            "metrics": self.trading.telemetry.metrics.snapshot(),
            "tracing": _tracing(self.trading.telemetry.tracer),
        }

    async def _risk(self) -> RiskView | None:
        if "risk" not in self.trading.cells:
            return None
        view = await self._request("risk", DescribeRisk())
        return view if isinstance(view, RiskView) else None

    async def _request(self, cell: str, message: object) -> Any:
        return await self.trading.cells[cell].ref.request(message, timeout=self.timeout)


def _tracing(tracer: Tracer) -> dict[str, Any]:
    watch = tracer.watch
    return {
        "enabled": tracer.enabled,
        "endpoint": tracer.endpoint,
        "built": tracer.flushed,
        "waiting": tracer.pending,
        "dropped": tracer.dropped,
        "exported": watch.exported if watch is not None else None,
        "failed": watch.failed if watch is not None else None,
    }


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


def _report(report: ReconcileReport) -> dict[str, Any]:
    return {
        "at_ns": report.at_ns,
        "dry_run": report.dry_run,
        "clean": report.clean,
        "lines": [line for diff in report.diffs for line in diff.lines()],
        "diffs": _json(report.diffs),
    }


def _json(value: object) -> Any:
    return msgspec.to_builtins(value)
