"""``actorctl status``, ``lots``, ``reconcile`` and ``stop``: questions to the running service,
over its control socket (``app.control``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import msgspec
import typer

from ._app import cli
from ._common import ConfigOption, JsonOption, SocketOption, ask, fail

if TYPE_CHECKING:
    from app.control import TracingView


def _print_json(reply: msgspec.Struct) -> None:
    # The reply's own fields, without the protocol's (its type tag and version).
    import json

    value = msgspec.to_builtins(reply)
    for key in ("type", "version"):
        value.pop(key, None)
    print(json.dumps(value, indent=2, sort_keys=True))


@cli.command()
def status(
    config: ConfigOption = None, socket: SocketOption = None, json: JsonOption = False
) -> None:
    """Show the running service: actor tree with states, restarts and mailboxes, each
    symbol's lots and P&L, and the last reconciliation."""
    from app.control import Status

    reply = ask(socket, config, Status())
    if json:
        _print_json(reply)
        return
    print(
        f"actortrade pid {reply.pid}: {reply.mode} on the {reply.venue}, venue time "
        f"{reply.venue_time or '-'}, {reply.restarts} restarts at the root"
    )
    print(f"{'actor':<28} {'state':<10} {'restarts':>8} {'mailbox':>8} {'peak':>6} {'handled':>9}")

    def tree(nodes: list[dict[str, Any]], depth: int) -> None:
        for node in nodes:
            box = node.get("mailbox") or {}
            name = "  " * depth + node["id"]
            print(
                f"{name:<28} {node['state']:<10} {node['restarts']:>8} "
                f"{box.get('depth', ''):>8} {box.get('high_water_mark', ''):>6} "
                f"{box.get('processed', ''):>9}"
            )
            tree(node.get("children") or [], depth + 1)

    tree(reply.tree, 1)
    for view in reply.symbols:
        shares = sum(lot["shares"] for lot in view["lots"])
        halted = f"  HALTED: {view['halted']}" if view["halted"] else ""
        detail = view.get("detail") or {}
        brackets = detail.get("kind") == "options"
        own = "".join(
            f" {key} {'-' if value is None else value}"
            for key, value in detail.items()
            if key != "kind" and not (brackets and key in ("legs", "last_signal", "last_skip"))
        )
        held = (
            f"{len(view['lots'])} open positions ({shares} contracts)"
            if brackets
            else f"{len(view['lots'])} open lots ({shares} shares)"
        )
        print(
            f"{view['symbol']}: {held}, realized P&L "
            f"{view['realized']}, last price {view['last_price'] or '-'}; {view['strategy']}"
            f"{own}; {view['live_buys']} buys and {view['live_sells']} sells working{halted}"
        )
        if brackets:
            # An options strategy: its bracket's legs, its last signal and skip, one a line.
            for ref in detail.get("legs") or []:
                print(f"  leg working: {ref}")
            for key in ("last_signal", "last_skip"):
                if detail.get(key):
                    print(f"  {key.replace('_', ' ')}: {detail[key]}")
        for event in view.get("lot_events", [])[-3:]:
            if "realized" in event:
                print(
                    f"  lot {event['lot']} (L{event['level']}) closed: {event['shares']} shares, "
                    f"realized {event['realized']}"
                )
            else:
                print(
                    f"  lot {event['lot']} (L{event['level']}) opened: {event['shares']} @ "
                    f"{float(event['purchase_price']):.4f}, selling at {event['sell_price']}"
                )
        dropped = view.get("ticks_dropped") or {}
        if dropped:
            print(f"  bad ticks dropped: {dropped}")
        diff = view.get("last_diff")
        if diff is not None:
            _print_diff_lines(_diff_lines(diff), "  last reconcile: clean")
    for feed in reply.feeds:
        c = feed["connection"]
        figures = (
            f"{c['received']} trades received, {c['malformed']} malformed, {c['coalesced']} "
            f"coalesced, {c['connects']} connects, {c['reconnects']} reconnects"
            if feed["feed"] == "alpaca"
            else f"clientId {c.get('client_id')}, connected {c.get('connected')}"
        )
        print(
            f"feed {feed['feed']} ({c.get('where')}) for {', '.join(feed['symbols'])}: "
            f"{feed['ticks']} ticks handed on; {figures}"
        )
        if c.get("last_error"):
            print(f"  last error: {c['last_error']} (all: {c.get('refusals')})")
    _print_alerts(reply.alerts, reply.alerting)
    _print_risk(reply.risk, reply.dry_run)
    last = reply.last_reconcile
    if last is None:
        print("periodic reconcile: not run yet")
    else:
        _print_diff_lines(last.lines, "periodic reconcile: clean")
    _print_metrics(reply.metrics, reply.tracing)


def _print_risk(risk: dict[str, Any] | None, dry: dict[str, Any] | None) -> None:
    if risk is not None:
        refused = ", ".join(f"{n} {rule}" for rule, n in sorted(risk["refused"].items()))
        state = f"TRIPPED: {risk['tripped']}" if risk["tripped"] else "daily loss guard armed"
        halts = f"; HALTED by the operator: {', '.join(risk['halts'])}" if risk["halts"] else ""
        print(
            f"risk: {risk['allowed']} orders allowed, refused {refused or 'none'}; "
            f"{risk['open_orders']} working, exposure {risk['exposure']}; session "
            f"{risk['session'] or '-'} from equity {risk['start_equity'] or '-'}; {state}{halts}"
        )
        for refusal in risk["last_refusals"][-3:]:
            print(f"  refused {refusal['ref']} ({refusal['rule']}): {refusal['reason']}")
    if dry is not None:
        print(
            f"DRY RUN: {dry['sent']} orders would have been sent (none was); "
            f"{len(dry['working'])} working:"
        )
        for order in dry["working"]:
            print(
                f"  {order['ref']} {order['side']} {order['quantity']} @ "
                f"{order['limit'] or 'MKT'} {order['tif']}"
            )


def _print_alerts(alerts: list[dict[str, Any]], alerting: dict[str, Any] | None) -> None:
    """The last alerts (with what each channel did with them) and the channels' figures."""
    import datetime

    for alert in alerts[-5:]:
        at = alert.get("at_ns") or 0
        when = datetime.datetime.fromtimestamp(at / 1e9).strftime("%H:%M:%S") if at else "-"
        more = f" (+{alert['repeated']} repeats)" if alert.get("repeated") else ""
        sent = ", ".join(f"{k} {v}" for k, v in (alert.get("delivery") or {}).items())
        print(
            f"alert {when} {alert.get('severity', '-')} {alert['symbol'] or '-'} "
            f"{alert['kind']}: {alert['message']}{more}{f' [{sent}]' if sent else ''}"
        )
    if alerting:
        channels = "; ".join(
            f"{c['name']} {c['sent']} sent, {c['retried']} retried, {c['failed']} failed, "
            f"{c['dropped']} dropped, {c['queued']} queued"
            + (f" (last error: {c['last_error']})" if c["last_error"] else "")
            for c in alerting["channels"]
        )
        print(
            f"alerts: {alerting['received']} received, {alerting['suppressed']} repeats "
            f"counted, {alerting['dropped']} dropped; {channels or 'no channel configured'}"
        )


def _print_metrics(metrics: dict[str, Any], tracing: TracingView) -> None:
    """The figures the OTel SDK collects (and exports, when configured)."""
    print(f"metrics (OpenTelemetry SDK, over {metrics['uptime_s']} s):")

    def by(name: str, key: str) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {}
        for row in metrics["counts"].get(name, []):
            rows.setdefault(str(row["attributes"].get(key, "")), []).append(row)
        return rows

    labels = {
        "actortrade.tick_to_order.duration": "tick-to-order",
        "actortrade.store.commit.duration": "LMDB commit",
    }
    for name, label in labels.items():
        for row in metrics["durations"].get(name, []):
            symbol = row["attributes"].get("trading.symbol")
            what = f"{label} {symbol}" if symbol else label
            if row["count"]:
                print(
                    f"  {what}: {row['count']} samples, p50 {row['p50_us']:g} µs, p99 "
                    f"{row['p99_us']:g} µs, max {row['max_us']:g} µs"
                )
    for symbol, rows in by("actortrade.ticks", "trading.symbol").items():
        outcomes = {row["attributes"]["outcome"]: row["value"] for row in rows}
        submitted = {
            row["attributes"]["trading.side"]: row["value"]
            for row in metrics["counts"].get("actortrade.orders.submitted", [])
            if row["attributes"].get("trading.symbol") == symbol
        }
        print(
            f"  ticks {symbol}: {outcomes.get('decided', 0)} decided, "
            f"{outcomes.get('no_decision', 0)} without a decision, {outcomes.get('rejected', 0)} "
            f"rejected; orders submitted: {submitted.get('BUY', 0)} buys, "
            f"{submitted.get('SELL', 0)} sells"
        )
    runs = {s: r[0]["value"] for s, r in by("actortrade.reconcile.runs", "trading.symbol").items()}
    diffs = {
        s: r[0]["value"] for s, r in by("actortrade.reconcile.diffs", "trading.symbol").items()
    }
    for symbol, count in runs.items():
        print(f"  reconciles {symbol}: {count} runs, {diffs.get(symbol, 0)} differences repaired")
    reconnects = sum(r["value"] for r in metrics["counts"].get("actortrade.broker.reconnects", []))
    print(f"  broker reconnects: {reconnects}")
    print("  actor                  depth  processed      msg/s  restarts")
    for row in metrics["actors"]:
        print(
            f"  {row['actor']:<22} {row.get('depth', 0):>5} {row.get('processed', 0):>10} "
            f"{row['per_second']:>10} {row.get('restarts', 0):>9}"
        )
    if tracing.enabled:
        exported = tracing.exported if tracing.exported is not None else "-"
        print(
            f"tracing: to {tracing.endpoint}: {tracing.built} spans built, {exported} "
            f"exported, {tracing.failed or 0} failed; {tracing.waiting} decisions waiting "
            f"for the flush, {tracing.dropped} dropped"
        )
    else:
        print("tracing: off")


def _diff_lines(diff: dict[str, Any]) -> list[str]:
    from cattrs import Converter

    from actors.reconcile import Diff

    return Converter().structure(diff, Diff).lines()


def _print_diff_lines(lines: list[str], clean: str) -> None:
    if not lines:
        print(clean)
    for line in lines:
        print(f"  {line}")


@cli.command()
def stop(config: ConfigOption = None, socket: SocketOption = None) -> None:
    """Stop the running service gracefully (GTC orders stay at the broker)."""
    from app.control import Stop

    reply = ask(socket, config, Stop())
    print(f"actortrade pid {reply.pid} is stopping")


@cli.command(name="lots")
def lots_command(
    config: ConfigOption = None, socket: SocketOption = None, json: JsonOption = False
) -> None:
    """List the open lots of the running service, with their sells."""
    from app.control import Lots

    reply = ask(socket, config, Lots())
    if json:
        _print_json(reply)
        return
    print(
        f"{'symbol':<8} {'strategy':<10} {'lot':>5} {'level':>5} {'shares':>7} {'bought at':>10} "
        f"{'sell at':>9}"
    )
    for view in reply.symbols:
        for lot in view["lots"]:
            print(
                f"{view['symbol']:<8} {view['strategy']:<10} {lot['id']:>5} {lot['label']:>5} "
                f"{lot['shares']:>7} {float(lot['purchase_price']):>10.4f} "
                f"{lot['sell_price'] or '-':>9}"
            )
        print(f"{view['symbol']:<8} {view['strategy']:<10} realized P&L {view['realized']}")


@cli.command()
def reconcile(
    config: ConfigOption = None,
    socket: SocketOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
    ] = False,
    acknowledge_conflicts: Annotated[
        bool,
        typer.Option(
            "--acknowledge-conflicts",
            help="You have looked at the execution conflicts on record (an execId the broker "
            "reported with other facts than the ledger holds): lift the halt they caused. "
            "They stay on record.",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Reconcile the running service's ledger with the broker now, and print the diff."""
    if dry_run and acknowledge_conflicts:
        fail("--acknowledge-conflicts changes the ledger: it cannot go with --dry-run")
    from app.control import Reconcile

    reply = ask(
        socket,
        config,
        Reconcile(dry_run=dry_run, acknowledge_conflicts=acknowledge_conflicts),
    )
    if json:
        _print_json(reply.report)
        return
    _print_diff_lines(reply.report.lines, "clean: the ledger and the broker agree")
