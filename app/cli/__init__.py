"""``actorctl``: the command line, one module per command group.

``start`` (start.py) runs the service; ``status``, ``lots``, ``reconcile`` and ``stop``
(service.py) ask it over its control socket, and ``top`` (top.py) watches it live; ``halt``
and ``resume`` (risk.py) the operator's halts; ``backup`` and ``restore`` (ledger.py) copy its
ledger; ``check`` (check.py) tries the config and the connections; ``demo`` and ``bench`` run
the examples. Every command imports what it needs inside its body, so that ``actorctl --help``
stays fast and a broken subsystem cannot break unrelated commands.
"""

from __future__ import annotations

# Imported for the commands they add to `cli`, in the order `actorctl --help` lists them.
# isort: off
from . import start as start
from . import service as service
from . import top as top
from . import risk as risk
from . import ledger as ledger
from . import check as check
from . import demo as demo
from . import bench as bench
from . import backtest as backtest
from . import data as data
from . import sweep as sweep
from . import systemd as systemd

# isort: on
from ._app import cli as cli

__all__ = ["cli", "main"]


def main() -> None:
    cli()
