"""``actorctl halt`` and ``resume``: the operator's halts, kept by the risk actor (durable,
``docs/risk.md``), over the control socket (``app.control``)."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import cli
from ._common import ConfigOption, SocketOption, ask

SymbolArgument = Annotated[
    str | None, typer.Argument(help="The symbol (default: every symbol).", show_default=False)
]


@cli.command()
def halt(
    symbol: SymbolArgument = None, config: ConfigOption = None, socket: SocketOption = None
) -> None:
    """Stop new orders of SYMBOL (or of every symbol) until `actorctl resume`; survives
    restarts. Working orders stay; sells that reduce a position still go."""
    from app.control import Halt

    reply = ask(socket, config, Halt(symbol=symbol))
    print(f"halted: {', '.join(reply.halts) or '-'} (`actorctl resume` lifts it)")


@cli.command()
def resume(
    symbol: SymbolArgument = None, config: ConfigOption = None, socket: SocketOption = None
) -> None:
    """Lift the operator's halt of SYMBOL (or every halt). A tripped daily loss guard lifts
    only at the next session."""
    from app.control import Resume

    reply = ask(socket, config, Resume(symbol=symbol))
    print(f"halted: {', '.join(reply.halts) or 'nothing'}")
    if reply.tripped:
        print(f"the daily loss guard stays tripped until the next session: {reply.tripped}")
