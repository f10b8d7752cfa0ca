"""``actorctl top``: a live view of the running service over its control socket, refreshed
every ``--interval`` seconds until q or Ctrl-C, or until the service stops.

Each frame is ``render(reply)`` of one ``Status`` reply (a pure function: testable without a
terminal): the actor tree with states, restarts, mailboxes and messages per second (from the
difference of two polls' handled counts; the first frame shows the service's own average),
each strategy of each symbol with its position, open lots or working bracket legs, P&L, last
price and last decision, and the last alerts. rich draws it on the terminal's alternate screen;
keys are read in cbreak mode, polled with ``select`` between refreshes, and the terminal is
restored however the view ends.
"""

from __future__ import annotations

import contextlib
import datetime
import signal
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import cli
from ._common import ConfigOption, SocketOption, ask, socket_path

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from app.control import StatusReply

ALERTS_SHOWN = 6
"""How many of the last alerts a frame shows."""

POLL_TIMEOUT = 10.0
"""Seconds a poll after the first may take before the frame says it failed."""


@cli.command()
def top(
    config: ConfigOption = None,
    socket: SocketOption = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between refreshes.")
    ] = 1.0,
    once: Annotated[
        bool, typer.Option("--once", help="Print one frame and exit (no live view).")
    ] = False,
) -> None:
    """A live view of the running service: its actors, symbols and alerts, refreshed until q
    or Ctrl-C (or until the service stops)."""
    from rich.console import Console

    from app.control import Status

    path = socket_path(socket, config)
    # No service at start: said as `actorctl status` says it, exit 1.
    first = ask(path, None, Status())
    console = Console(highlight=False)
    if once:
        console.print(render(first, live=False))
        return
    # SIGTERM (a `kill`) quits as Ctrl-C does: through the finally blocks that give the
    # terminal back.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        stopped = _watch(console, path, first, interval)
    except KeyboardInterrupt:
        stopped = False
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopped:
        print(f"actorctl top: the service stopped (pid {first.pid})", flush=True)


def render(
    reply: StatusReply,
    rates: Mapping[str, float] | None = None,
    problem: str | None = None,
    *,
    live: bool = True,
) -> RenderableType:
    """One frame of ``reply``: the header, the actors, the symbols, the alerts. ``rates`` are
    each actor's messages per second (by actor id; missing: the service's average since it
    started); ``problem`` a line saying the last poll failed; ``live``: a frame of the live
    view, which says how to quit it."""
    from rich.console import Group
    from rich.text import Text

    parts: list[RenderableType] = [_header(reply), _actors(reply, rates or {})]
    parts.append(_symbols(reply))
    parts.append(_alerts(reply))
    footer = Text("q quits" if live else "", style="dim")
    if problem is not None:
        footer = Text.assemble(("last poll failed: ", "bold red"), problem, "  ", footer)
    if footer:
        parts.append(footer)
    return Group(*parts)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class Rates:
    """Each actor's messages per second, from the handled counts of two successive polls."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, int]] | None = None

    def update(self, reply: StatusReply, at: float) -> dict[str, float]:
        """The rates since the previous reply (``at``: monotonic seconds when ``reply`` came);
        none on the first, nor for an actor whose count went back (it restarted)."""
        counts = dict(_processed(reply.tree))
        rates: dict[str, float] = {}
        if self._last is not None:
            then, before = self._last
            elapsed = at - then
            if elapsed > 0:
                for actor, count in counts.items():
                    previous = before.get(actor)
                    if previous is not None and count >= previous:
                        rates[actor] = (count - previous) / elapsed
        self._last = (at, counts)
        return rates


# -- the live loop --------------------------------------------------------------------------------


def _watch(console: Console, path: Path, first: StatusReply, interval: float) -> bool:
    # Refreshes until q (False) or the service is gone (True); Ctrl-C raises KeyboardInterrupt.
    import sys

    from rich.live import Live

    from app.control import ControlError, ControlUnavailable, Status, request

    rates = Rates()
    frame = render(first, rates.update(first, time.monotonic()))
    stdin = sys.stdin.fileno() if sys.stdin.isatty() else None
    live = None
    if console.is_terminal:
        live = Live(
            frame,
            console=console,
            screen=True,
            auto_refresh=False,
            redirect_stdout=False,
            redirect_stderr=False,
        )
    else:
        # Not a terminal: one frame after another, as a log.
        console.print(frame)
    with _cbreak(stdin), live if live is not None else contextlib.nullcontext():
        last = first
        while True:
            if _quit_pressed(stdin, time.monotonic() + interval):
                return False
            try:
                last = request(path, Status(), timeout=POLL_TIMEOUT)
            except ControlUnavailable:
                return True
            except ControlError as exc:
                # A service that is stopping may fail a poll before its socket goes: the next
                # one tells. Meanwhile the last frame stands, saying so.
                frame = render(last, None, str(exc))
            else:
                frame = render(last, rates.update(last, time.monotonic()))
            if live is not None:
                live.update(frame, refresh=True)
            else:
                console.print(frame)


@contextlib.contextmanager
def _cbreak(fd: int | None) -> Iterator[None]:
    # Keys as they are typed, without echo; Ctrl-C still interrupts. Restored however it ends.
    if fd is None:
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _quit_pressed(fd: int | None, until: float) -> bool:
    # Waits until `until` (monotonic), reading keys meanwhile: True at q or Q.
    import os
    import select

    while (left := until - time.monotonic()) > 0:
        if fd is None:
            time.sleep(left)
            return False
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            keys = os.read(fd, 64)
            if not keys:  # end of input: no more keys, only the clock
                time.sleep(max(until - time.monotonic(), 0))
                return False
            if b"q" in keys or b"Q" in keys:
                return True
    return False


# -- the parts of a frame -------------------------------------------------------------------------


def _header(reply: StatusReply) -> RenderableType:
    from rich.text import Text

    uptime = _duration(float(reply.metrics.get("uptime_s") or 0))
    header = Text.assemble(
        ("actortrade ", "bold"),
        f"pid {reply.pid}  ",
        ("mode ", "dim"),
        (reply.mode, "bold"),
        ("  venue ", "dim"),
        reply.venue,
        "\n",
        ("venue time ", "dim"),
        (_venue_time(reply.venue_time), "bold"),
        ("  up ", "dim"),
        uptime,
        ("  restarts at the root ", "dim"),
        str(reply.restarts),
    )
    risk = reply.risk
    if risk is not None and (risk.get("tripped") or risk.get("halts")):
        tripped = f"TRIPPED: {risk['tripped']}  " if risk.get("tripped") else ""
        halts = f"HALTED: {', '.join(risk['halts'])}" if risk.get("halts") else ""
        header.append(f"\n{tripped}{halts}", style="bold red")
    if reply.dry_run is not None:
        header.append("\nDRY RUN: no order reaches the venue", style="bold yellow")
    return header


def _actors(reply: StatusReply, rates: Mapping[str, float]) -> RenderableType:
    from rich.table import Table

    average = {
        str(row["actor"]): float(row.get("per_second") or 0)
        for row in reply.metrics.get("actors", [])
    }
    table = Table(title="actors", title_justify="left", expand=False, box=None, pad_edge=False)
    table.add_column("actor", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("restarts", justify="right")
    table.add_column("mailbox", justify="right")
    table.add_column("peak", justify="right")
    table.add_column("handled", justify="right")
    table.add_column("msg/s", justify="right")

    def add(nodes: list[dict[str, Any]], depth: int) -> None:
        for node in nodes:
            box = node.get("mailbox") or {}
            name = node["id"]
            rate = rates.get(name, average.get(name))
            state = str(node["state"])
            table.add_row(
                "  " * depth + name,
                f"[green]{state}[/]" if state == "running" else f"[bold red]{state}[/]",
                f"[bold red]{node['restarts']}[/]" if node["restarts"] else "0",
                str(box.get("depth", "")),
                str(box.get("high_water_mark", "")),
                str(box.get("processed", "")),
                "" if not box or rate is None else f"{rate:.1f}",
            )
            add(node.get("children") or [], depth + 1)

    add(reply.tree, 0)
    return table


def _symbols(reply: StatusReply) -> RenderableType:
    from rich.table import Table

    table = Table(title="symbols", title_justify="left", box=None, pad_edge=False, expand=True)
    table.add_column("symbol", no_wrap=True)
    table.add_column("strategy", no_wrap=True)
    table.add_column("position", justify="right", no_wrap=True)
    table.add_column("open", overflow="fold", min_width=10)
    table.add_column("realized", justify="right", no_wrap=True)
    table.add_column("last", justify="right", no_wrap=True)
    table.add_column("working", justify="right", no_wrap=True)
    table.add_column("last decision", overflow="fold", ratio=1)
    zone = _zone(reply.venue_time)
    for view in reply.symbols:
        detail = view.get("detail") or {}
        options = detail.get("kind") == "options"
        lots = view.get("lots") or []
        held = sum(int(lot["shares"]) for lot in lots)
        if options:
            legs = detail.get("legs") or []
            open_ = f"{len(legs)} legs: {' '.join(legs)}" if legs else "no legs"
            if detail.get("option"):
                open_ = f"{detail['option']}, {open_}"
        else:
            open_ = (
                f"{len(lots)} {'lot' if len(lots) == 1 else 'lots'}: "
                + " ".join(str(lot["label"]) for lot in lots)
                if lots
                else "no lots"
            )
        realized = str(view["realized"])
        decision = view.get("last_decision")
        if decision:
            at = view.get("last_decision_ns") or 0
            decision = f"{_clock(at, zone)} {decision}" if at else decision
        elif options and detail.get("last_signal"):
            decision = f"signal {detail['last_signal']}"
        halted = view.get("halted")
        table.add_row(
            f"[bold]{view['symbol']}[/]",
            str(view["strategy"]),
            f"{held} {'ct' if options else 'sh'}",
            open_,
            f"[red]{realized}[/]" if realized.startswith("-") else f"[green]{realized}[/]",
            str(view.get("last_price") or "-"),
            f"{view['live_buys']} buy {view['live_sells']} sell",
            (f"[bold red]HALTED: {halted}[/] " if halted else "") + (decision or "-"),
        )
    return table


def _alerts(reply: StatusReply) -> RenderableType:
    from rich.table import Table

    table = Table(
        title="alerts",
        title_justify="left",
        box=None,
        pad_edge=False,
        show_header=False,
        expand=True,
    )
    table.add_column("at", no_wrap=True, style="dim", min_width=8)
    table.add_column("severity", no_wrap=True, min_width=8)
    table.add_column("symbol", no_wrap=True, min_width=4)
    table.add_column("kind", no_wrap=True, min_width=8)
    table.add_column("message", overflow="ellipsis", no_wrap=True, ratio=1)
    styles = {"critical": "bold red", "error": "red", "warning": "yellow"}
    shown = reply.alerts[-ALERTS_SHOWN:]
    for alert in reversed(shown):
        at = int(alert.get("at_ns") or 0)
        severity = str(alert.get("severity") or "-")
        repeats = f" (+{alert['repeated']} repeats)" if alert.get("repeated") else ""
        table.add_row(
            _clock(at, None) if at else "-",
            f"[{styles.get(severity, 'default')}]{severity}[/]",
            str(alert.get("symbol") or "-"),
            str(alert["kind"]),
            f"{alert['message']}{repeats}",
        )
    if not shown:
        table.add_row("", "", "", "", "[dim]none[/]")
    return table


def _processed(nodes: list[dict[str, Any]]) -> Iterator[tuple[str, int]]:
    for node in nodes:
        box = node.get("mailbox")
        if box:
            yield node["id"], int(box.get("processed", 0))
        yield from _processed(node.get("children") or [])


def _venue_time(iso: str | None) -> str:
    if not iso:
        return "-"
    return datetime.datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S")


def _zone(iso: str | None) -> datetime.tzinfo | None:
    # The venue's own offset, for the decisions' exchange times (None: this machine's).
    return datetime.datetime.fromisoformat(iso).tzinfo if iso else None


def _clock(at_ns: int, zone: datetime.tzinfo | None) -> str:
    return datetime.datetime.fromtimestamp(at_ns / 1e9, tz=zone).strftime("%H:%M:%S")


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
