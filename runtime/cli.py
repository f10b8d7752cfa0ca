"""``actorctl``: the command line, and the one composition root.

It may import from every package, lazily, inside the commands, so that ``actorctl --help`` stays
fast and a broken subsystem cannot break unrelated commands.
"""

from __future__ import annotations

import enum
import logging
import sys
from typing import Annotated

import typer

app = typer.Typer(
    name="actorctl",
    help="actortrade: an actor-model, crash-safe trading runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"actorctl {version('actortrade')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """actortrade: an actor-model, crash-safe trading runtime."""


class Backend(enum.StrEnum):
    asyncio = "asyncio"
    trio = "trio"


@app.command()
def start(
    backend: Annotated[
        Backend, typer.Option(help="Event loop backend (asyncio uses uvloop when installed).")
    ] = Backend.asyncio,
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
    """Run the supervised service until SIGINT or SIGTERM.

    For now this is the example tree (a price feed, one actor per symbol under a one_for_one
    supervisor, and a reporter); the grid trading service replaces it.
    """
    from actors.demo import demo_tree
    from supervisors.service import run_service

    _configure_logging()

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


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def main() -> None:
    app()
