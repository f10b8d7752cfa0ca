"""``actorctl``: the command line, and the one composition root.

It may import from every package, lazily, inside the commands, so that ``actorctl --help`` stays
fast and a broken subsystem cannot break unrelated commands.
"""

from __future__ import annotations

import enum
import logging
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

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
    replay: Annotated[
        Path | None,
        typer.Option(help="1-minute bar CSV to replay (default: a generated TQQQ-like day)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated session.")] = 14,
    speed: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="Replay speed: times faster than the bars' clock; 0 = as fast as possible.",
        ),
    ] = 1800.0,
    symbol: Annotated[str, typer.Option(help="Symbol to trade.")] = "TQQQ",
    lots: Annotated[
        Path | None, typer.Option(help="Lot map CSV (default: the shipped config/lots/tqqq.csv).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Ledger directory (default: a temporary one, discarded at exit)."),
    ] = None,
    backend: Annotated[
        Backend, typer.Option(help="Event loop backend (asyncio uses uvloop when installed).")
    ] = Backend.asyncio,
    stop_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a graceful stop may take before cancelling.")
    ] = 5.0,
) -> None:
    """Trade the grid on the embedded sim venue until SIGINT or SIGTERM (paper, no account).

    Replays a session into the in-process venue and the grid's actors, printing every
    execution, and a summary when the replay ends and at stop.
    """
    import tempfile

    from actors.trading import sim_trading
    from config.errors import ConfigError
    from config.lotmap import load_lot_map
    from sim.replay import ReplayError, generated_session, load_bars
    from supervisors.service import run_service

    _configure_logging()
    lot_path = lots if lots is not None else Path(_config_dir()) / "lots" / "tqqq.csv"
    try:
        lot_map = load_lot_map(lot_path)
        bars = (
            [b for b in load_bars(replay) if b.symbol == symbol]
            if replay is not None
            else generated_session(seed=seed, symbol=symbol)
        )
    except (ConfigError, ReplayError) as exc:
        _fail(str(exc))
    if not bars:
        _fail(f"{replay}: no bars for {symbol}")
    if data_dir is not None and (data_dir / "data.mdb").exists():
        _fail(
            f"{data_dir} already holds a ledger: resuming one needs reconciliation with the "
            "venue, which this version does not do yet; use an empty --data-dir"
        )
    with tempfile.TemporaryDirectory(prefix="actortrade-") as scratch:
        ledger_dir = data_dir if data_dir is not None else Path(scratch) / "ledger"
        report = _Report(symbol)
        trading = sim_trading(
            data_dir=ledger_dir,
            bars=bars,
            lots={symbol: lot_map},
            speed=speed or None,
            on_finished=lambda: report.summary("replay finished"),
        )
        report.attach(trading)
        source = str(replay) if replay is not None else f"a generated session (seed {seed})"
        pace = "as fast as possible" if not speed else f"{speed:g}x"
        kept = "kept" if data_dir is not None else "discarded at exit"
        _say(
            f"trading {symbol} on the embedded sim venue (paper) replaying {source} at {pace}; "
            f"ledger in {ledger_dir} ({kept}); Ctrl-C or SIGTERM stops it"
        )
        code = run_service(trading.spec, backend=backend.value, stop_timeout=stop_timeout)
        report.summary("at stop")
    raise typer.Exit(code)


class _Report:
    """Prints each execution as the venue reports it, and summaries from the strategy."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.trading: Any = None

    def attach(self, trading: Any) -> None:
        from actors.messages import OrderFilled

        self.trading = trading
        engine = trading.engine

        def on_event(event: object) -> None:
            if isinstance(event, OrderFilled):
                execution = engine.executions[-1]
                when = execution.time.strftime("%Y-%m-%d %H:%M:%S")
                side = execution.side.value
                level = event.ref.split(":")[2]
                position = engine.positions[self.symbol].quantity
                print(
                    f"{when} {side:4} {event.quantity:>4} {self.symbol} @ {event.price} "
                    f"({level}) position {position}",
                    flush=True,
                )

        engine.listeners.append(on_event)

    def summary(self, when: str) -> None:
        strategy = self.trading.strategies[self.symbol]
        engine = self.trading.engine
        sells = sum(1 for e in engine.executions if e.side.value == "SELL")
        open_lots = strategy.open_lots()
        shares = sum(lot.open_shares for lot in open_lots)
        print(
            f"{when}: {len(engine.orders)} orders, {len(engine.executions) - sells} buy and "
            f"{sells} sell executions, {len(open_lots)} open lots ({shares} shares), "
            f"realized P&L {strategy.realized:.2f}",
            flush=True,
        )


def _config_dir() -> str:
    import config

    return str(Path(config.__file__).parent)


def _say(message: str) -> None:
    print(f"actorctl: {message}", file=sys.stderr, flush=True)


def _fail(message: str) -> NoReturn:
    _say(message)
    raise typer.Exit(2)


@app.command()
def demo(
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
    """Run the supervision example until SIGINT or SIGTERM (no trading).

    A price feed, one actor per symbol under a one_for_one supervisor, and a reporter;
    --crash-every shows actors crashing and being restarted.
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
