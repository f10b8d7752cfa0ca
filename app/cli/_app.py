"""The ``actorctl`` typer application: each command module of this package adds its commands."""

from __future__ import annotations

from typing import Annotated

import typer

cli = typer.Typer(
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


@cli.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """actortrade: an actor-model, crash-safe trading runtime."""
