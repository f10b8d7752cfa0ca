"""``actorctl demo``: the supervision example (no trading)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from runtime import Backend

from ._app import cli
from ._common import configure_logging


@cli.command()
def demo(
    backend: Annotated[
        Backend, typer.Option(help="Event loop backend (asyncio uses uvloop when installed).")
    ] = Backend.ASYNCIO,
    report_every: Annotated[
        float, typer.Option(min=0.05, help="Seconds between report lines.")
    ] = 1.0,
    crash_every: Annotated[
        float,
        typer.Option(
            min=0.0, help="Crash a random symbol actor this often, in seconds (0: never)."
        ),
    ] = 0.0,
    stop_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a graceful stop may take before cancelling.")
    ] = 5.0,
    seed: Annotated[int | None, typer.Option(help="Seed for the demo price walk.")] = None,
) -> None:
    """Run the supervision example until SIGINT or SIGTERM (no trading).

    A price feed, one actor per symbol under a one_for_one supervisor, and a reporter;
    --crash-every shows actors crashing and being restarted.
    """
    from actors.demo import demo_tree
    from supervisors.service import run_service

    configure_logging()

    def out(line: str) -> None:
        print(line, flush=True)

    spec = demo_tree(report_interval=report_every, crash_every=crash_every, seed=seed, out=out)
    print(
        f"actorctl: example tree running on {backend.value} "
        f"(feed, symbols: TQQQ QQQ SPY, reporter); Ctrl-C or SIGTERM stops it",
        file=sys.stderr,
        flush=True,
    )
    code = run_service(spec, backend=backend.value, stop_timeout=stop_timeout)
    raise typer.Exit(code)
