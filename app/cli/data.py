"""``actorctl data fetch``: history from IB or Alpaca into the bar cache (``app.data.fetch``)."""

from __future__ import annotations

import functools
import os
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from ._app import cli
from ._common import fail, say

data = typer.Typer(
    name="data",
    help="Historical bars: fetch them from a broker into the cache.",
    no_args_is_help=True,
)
cli.add_typer(data)

PAPER_PORT = 7497
CLIENT_ID = 71


@data.command()
def fetch(
    source: Annotated[str, typer.Option(help="Where from: ib or alpaca.")],
    symbol: Annotated[list[str], typer.Option(help="A symbol to fetch; repeat for more.")],
    interval: Annotated[str, typer.Option(help="The bars' interval: 1min, 1h or 1d.")],
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (New York).")],
    end: Annotated[str, typer.Option("--to", help="Last day, YYYY-MM-DD (New York).")],
    cache: Annotated[
        Path | None,
        typer.Option(help="The bar cache (backtest's --cache) [$XDG_CACHE_HOME/actortrade/bars]."),
    ] = None,
    host: Annotated[str, typer.Option(help="IB: TWS or IB Gateway's host.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(help="IB: its API port, a paper one (TWS paper 7497, IB Gateway paper 4002)."),
    ] = PAPER_PORT,
    client_id: Annotated[int, typer.Option(help="IB: the API clientId.")] = (CLIENT_ID),
    alpaca_url: Annotated[
        str | None,
        typer.Option(help="Alpaca: another REST base URL (a sim's) [Alpaca's data API]."),
    ] = None,
    feed: Annotated[str, typer.Option(help="Alpaca: the data feed (iex is free).")] = "iex",
) -> None:
    """Fetch SYMBOL's bars of the days --from to --to (both included) into the cache, as
    <cache>/fetched/<source>-<SYM>-<interval>-<from>-<to>.parquet listed in
    <cache>/fetched/manifest.json: from IB (TRADES bars of the regular sessions, raw, requests
    paced to IB's limits) or from Alpaca (REST bars, raw, every page). Alpaca's keys come from
    $ALPACA_KEY and $ALPACA_SECRET. Nothing is written unless every symbol was fetched."""
    import anyio

    from app.data.fetch import (
        FEEDS,
        SOURCES,
        FetchError,
        IBPacer,
        fetch_alpaca,
        fetch_ib,
        store_fetched,
    )
    from config.schema import LIVE_PORTS
    from sim.data import INTERVALS, BarTable

    if source not in SOURCES:
        fail(f"--source: {source!r} is not one of {', '.join(SOURCES)}")
    if interval not in INTERVALS:
        fail(f"--interval: {interval!r} is not one of {', '.join(INTERVALS)}")
    first, last = _day("--from", start), _day("--to", end)
    if first > last:
        fail(f"--from {first} is after --to {last}")
    for name in symbol:
        if not name or not name.replace(".", "").isalnum() or len(name) > 32:
            fail(f"--symbol: {name!r} is not a symbol (letters, digits and dots)")
    if source == "ib" and port in LIVE_PORTS:
        fail(
            f"--port {port} is IB's {LIVE_PORTS[port]} port: fetching history needs no live "
            f"port; use a paper one ({PAPER_PORT} TWS, 4002 IB Gateway)"
        )
    if source == "alpaca" and feed not in FEEDS:
        fail(f"--feed: {feed!r} is not one of {', '.join(FEEDS)}")
    key, secret = os.environ.get("ALPACA_KEY", ""), os.environ.get("ALPACA_SECRET", "")
    if source == "alpaca" and not (key and secret):
        fail("alpaca: set ALPACA_KEY and ALPACA_SECRET in the environment (the API keys)")
    root = cache or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
        "actortrade/bars"
    )
    symbols = list(dict.fromkeys(s.upper() for s in symbol))
    tables: list[BarTable] = []
    pacer = IBPacer()  # IB paces the login's requests, whatever their symbol
    try:
        for name in symbols:
            if source == "ib":
                ask = functools.partial(
                    fetch_ib,
                    host,
                    port,
                    client_id,
                    name,
                    interval,
                    first,
                    last,
                    pacer=pacer,
                    progress=say,
                )
                tables.append(anyio.run(ask))
            else:
                tables.append(
                    fetch_alpaca(
                        alpaca_url,
                        key,
                        secret,
                        name,
                        interval,
                        first,
                        last,
                        feed=feed,
                        progress=say,
                    )
                )
    except FetchError as exc:
        fail(f"{exc} (nothing written)")
    for table in tables:
        path = store_fetched(root, source, table, first, last)
        say(f"{table.symbol}: {len(table)} bars -> {path}")


def _day(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option}: {text!r} is not a date (YYYY-MM-DD)")
