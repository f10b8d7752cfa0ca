"""``actorctl bench``: the bench suite of a source checkout."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ._app import cli
from ._common import fail


@cli.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context) -> None:
    """Run the bench suite (bench/suite.py; `actorctl bench --help` lists its options).

    Needs a source checkout: bench/ is not part of an installed package.
    """
    import subprocess

    suite = Path(__file__).resolve().parents[2] / "bench" / "suite.py"
    if not suite.is_file():
        fail(
            f"the bench suite is not installed with the package ({suite} does not exist): run "
            "it from a source checkout with `make bench`"
        )
    raise typer.Exit(
        subprocess.run([sys.executable, str(suite), *ctx.args], check=False).returncode
    )
