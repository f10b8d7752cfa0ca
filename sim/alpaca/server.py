"""The Alpaca market-data server: the sim venue's face for the unmodified alpaca-py client.

One ``AlpacaServer`` listens on one port and answers two things there (websockets' asyncio
server; plain HTTP requests are answered from its ``process_request`` hook):

**The v2 stock stream**, ``ws://host:port/v2/{iex,sip,delayed_sip,test}`` (any other path: HTTP
404). Each connection picks msgpack or JSON by its ``Content-Type`` (``sim.alpaca.messages``).
It is welcomed with ``connected``; then ``auth`` (key and secret from ``credentials``) is
answered ``authenticated`` or an error, and ``subscribe``/``unsubscribe`` (channels
``trades``, ``quotes``, ``bars``, ``updatedBars``, ``dailyBars``, ``statuses``, ``lulds``;
``*`` for every symbol) with the connection's whole subscription. Trades published here
(``publish_trade``, or every trade of the attached ``sim.engine.Engine``) go to the
connections subscribed to their symbol as a trade and a quote; each trade of a new minute
completes the symbol's previous minute bar, which goes out on ``bars`` and is kept for REST.
``updatedBars``, ``dailyBars``, ``statuses`` and ``lulds`` are accepted but never carry data.
Points queue per connection and leave in frames of at most ``batch_max``.

Errors it answers with (Alpaca's codes): 400 (undecodable, not an object, no or unknown
``action``, a channel that is not a list of strings), 401 (anything but auth before auth), 402
(wrong key or secret), 403 (a second auth), 404 (no auth within ``auth_timeout``; then closed,
1008), 405 (more than ``symbol_limit`` distinct trade and quote symbols; the subscription is
left as it was), 406 (more than ``connection_limit`` authenticated connections on one key, in
reply to auth), 407 (more than ``max_backlog`` points queued for a connection that does not
read; the queue is dropped and the connection closed, 1008), 409 (auth on a known feed this
account is not ``entitled`` to), 410 (an unknown channel, e.g. ``orderbooks``), 500 (a handler
failed). An auth error leaves the connection open, as alpaca-py closes it itself.

**Historical bars**, ``GET http://host:port/v2/stocks/bars`` (``sim.alpaca.rest``): the
``history`` bars and every bar completed here, paginated; ``APCA-API-KEY-ID`` and
``APCA-API-SECRET-KEY`` must match ``credentials`` (else 401).

Faults: ``drop_all`` (a close frame), ``abort_all`` (a TCP reset, no close frame), ``mute``
(connections stay open, no data), ``reject_handshakes`` (the next upgrades get an HTTP status),
``fail_next_rest`` (the next REST requests get an HTTP status), ``publish_raw`` (any point, a
malformed one included, on a symbol's trades), and the slow client (407) as it happens.
What happened is in ``events``; the secret is never recorded.
"""

from __future__ import annotations

import email.utils
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from http import HTTPStatus
from typing import Any, assert_never
from urllib.parse import parse_qs, urlsplit

import anyio
import anyio.abc
import attrs
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, ProtocolError
from websockets.frames import Close
from websockets.http11 import Request, Response

from actors.domain import Bar
from sim.engine import Engine

from . import messages as m
from .bars import MinuteBar, MinuteBars, from_replay
from .rest import RestError, bars_page, parse_bars_query

log = logging.getLogger("actortrade.sim.alpaca")

BARS_PATH = "/v2/stocks/bars"
POLICY_VIOLATION = 1008
"""Policy violation: how the 404 and 407 closes are coded."""


@attrs.frozen(kw_only=True)
class _Ending:
    code: int
    reason: str
    error: int | None = None
    """The error message sent before the close frame, if any."""


class AlpacaConnection:
    """One stream connection: who it is, what it asked for, what is queued for it."""

    def __init__(
        self,
        server: AlpacaServer,
        ws: ServerConnection,
        *,
        id: int,
        feed: str,
        fmt: m.Format,
        user_agent: str,
    ) -> None:
        self.server = server
        self.ws = ws
        self.id = id
        self.feed = feed
        self.format = fmt
        self.user_agent = user_agent
        self.key: str | None = None
        self.subscription = m.Subscription()
        self.backlog: deque[Any] = deque()
        self.frames_sent = 0
        self.points_sent = 0
        self.ending: _Ending | None = None
        self.closed = False
        self._wake = anyio.Event()
        self._authenticated = anyio.Event()
        self._ended = anyio.Event()
        self._sender = anyio.CancelScope()

    @property
    def authenticated(self) -> bool:
        return self.key is not None

    @property
    def live(self) -> bool:
        """Neither closed nor being closed: it holds a connection slot and takes data."""
        return self.ending is None and not self.closed

    # -- data ----------------------------------------------------------------------------------

    def push(self, point: Any) -> None:
        """Queue a point; never raises (it runs inside the engine's trade listeners)."""
        if not self.live or self.server.muted:
            return
        self.backlog.append(point)
        if len(self.backlog) > self.server.max_backlog:
            self.end(code=POLICY_VIOLATION, reason="slow client", error=407)
        elif not self._wake.is_set():
            self._wake.set()

    def abort(self) -> None:
        """Reset the TCP stream now: no close frame; what was queued is lost."""
        if self.ending is None:
            self.ending = _Ending(code=1006, reason="aborted")
            self.backlog.clear()
        self.ws.transport.abort()

    def end(self, *, code: int, reason: str, error: int | None = None) -> None:
        """Close this connection soon (``error`` first, if given); its queue is dropped."""
        if self.ending is not None:
            return
        self.ending = _Ending(code=code, reason=reason, error=error)
        self.backlog.clear()
        if error is not None:
            self.server._record_error(self, error)
        self._ended.set()

    # -- tasks ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Welcome the client, then answer its messages until the connection closes."""
        try:
            await self._send([m.CONNECTED])
            async for data in self.ws:
                try:
                    replies = self._answer(data)
                except Exception:
                    log.exception(
                        "%s: connection %d: failed on %r", self.server.name, self.id, data
                    )
                    replies = [self._error(500)]
                for reply in replies:
                    await self._send([reply])
        except ConnectionClosed:
            pass
        finally:
            self.closed = True

    async def send_data(self) -> None:
        with self._sender:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self.backlog:
                    count = min(len(self.backlog), self.server.batch_max)
                    batch = [self.backlog.popleft() for _ in range(count)]
                    try:
                        await self._send(batch)
                    except ConnectionClosed:
                        return
                    self.frames_sent += 1
                    self.points_sent += count
                    self.server.points_sent += count
                    self.server.frames_sent += 1

    async def close_when_ended(self) -> None:
        await self._ended.wait()
        self._sender.cancel()
        ending = self.ending
        assert ending is not None  # _ended is set only with it
        # A client that does not read blocks our writes: bound them, then cut it off.
        with anyio.move_on_after(self.server.close_timeout) as scope:
            try:
                if ending.error is not None:
                    await self._send([m.error(ending.error)])
                await self.ws.close(ending.code, ending.reason)
            except ConnectionClosed:
                pass
        if scope.cancelled_caught:
            log.info("%s: connection %d: close timed out, aborting", self.server.name, self.id)
            self.ws.transport.abort()

    async def expect_auth(self) -> None:
        with anyio.move_on_after(self.server.auth_timeout):
            await self._authenticated.wait()
            return
        self.end(code=POLICY_VIOLATION, reason="auth timeout", error=404)

    async def _send(self, messages: list[Any]) -> None:
        await self.ws.send(m.encode(messages, self.format))

    # -- the client's messages -----------------------------------------------------------------

    def _answer(self, data: bytes | str) -> list[dict[str, Any]]:
        try:
            action = m.parse_action(data)
            match action:
                case m.Auth():
                    return [self._auth(action)]
                case m.Subscribe() | m.Unsubscribe() if not self.authenticated:
                    return [self._error(401)]
                case m.Subscribe():
                    return [self._subscribe(self.subscription.add(action.channels), "subscribe")]
                case m.Unsubscribe():
                    gone = self.subscription.remove(action.channels)
                    return [self._subscribe(gone, "unsubscribe")]
                case _:
                    assert_never(action)
        except m.StreamError as exc:
            log.info("%s: connection %d: %s", self.server.name, self.id, exc)
            return [self._error(exc.code)]

    def _auth(self, auth: m.Auth) -> dict[str, Any]:
        server = self.server
        if self.authenticated:
            return self._error(403)
        if server.credentials.get(auth.key) != auth.secret:
            return self._error(402)
        if self.feed not in server.entitled:
            return self._error(409)
        if server.sessions(auth.key) >= server.connection_limit:
            return self._error(406)
        self.key = auth.key
        self._authenticated.set()
        server._record("auth", {"id": self.id, "key": auth.key, "feed": self.feed})
        return m.AUTHENTICATED

    def _subscribe(self, subscription: m.Subscription, kind: str) -> dict[str, Any]:
        if subscription.symbol_count() > self.server.symbol_limit:
            return self._error(405)
        self.subscription = subscription
        self.server._record(kind, {"id": self.id, **subscription.as_dict()})
        return subscription.message()

    def _error(self, code: int) -> dict[str, Any]:
        self.server._record_error(self, code)
        return m.error(code)


class AlpacaServer:
    """The stream and REST faces on one port (see the module docstring). Its methods are
    called on the event loop's thread, the engine's trade listener included."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        credentials: Mapping[str, str] | None = None,
        entitled: Iterable[str] = ("iex", "test"),
        connection_limit: int = 1,
        symbol_limit: int = 30,
        max_backlog: int = 10_000,
        batch_max: int = 100,
        auth_timeout: float = 10.0,
        close_timeout: float = 2.0,
        page_size: int = 10_000,
        history: Iterable[Bar] = (),
        name: str = "alpaca",
    ) -> None:
        """``credentials``: key -> secret, for the stream's auth and REST's headers.
        ``entitled``: the feeds this account may stream (auth on another known one is 409).
        ``connection_limit``: authenticated connections per key (Alpaca's default is 1).
        ``symbol_limit``: distinct trade and quote symbols per connection.
        ``max_backlog``: points queued for one connection beyond which it is a slow client.
        ``batch_max``: points per data frame at most.
        ``auth_timeout``: seconds from connecting to authenticating.
        ``close_timeout``: seconds a close may take (a client that does not read is then cut).
        ``page_size``: bars per REST page at most (besides the request's ``limit``).
        ``history``: bars REST serves besides those completed from published trades."""
        self.credentials = dict(credentials or {})
        self.entitled = frozenset(entitled)
        unknown = sorted(self.entitled - set(m.FEEDS))
        if unknown:
            raise ValueError(f"entitled: unknown feeds {unknown}, expected some of {m.FEEDS}")
        for label, value in (
            ("connection_limit", connection_limit),
            ("symbol_limit", symbol_limit),
            ("max_backlog", max_backlog),
            ("batch_max", batch_max),
            ("page_size", page_size),
        ):
            if value < 1:
                raise ValueError(f"{label} must be at least 1, got {value}")
        self.connection_limit = connection_limit
        self.symbol_limit = symbol_limit
        self.max_backlog = max_backlog
        self.batch_max = batch_max
        self.auth_timeout = auth_timeout
        self.close_timeout = close_timeout
        self.page_size = page_size
        self.name = name
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.events: list[tuple[str, dict[str, Any]]] = []
        """What happened, in order: (kind, details); kinds are connect, auth, error,
        subscribe, unsubscribe, close, abort, reject (an upgrade refused), rest."""
        self.points_sent = 0
        self.frames_sent = 0
        self.muted = False
        self._connections: dict[int, AlpacaConnection] = {}
        self._next_id = 1
        self._trade_ids: dict[str, int] = {}
        self._open_bars: dict[str, MinuteBars] = {}
        self._bars: dict[tuple[str, datetime], MinuteBar] = {}
        for bar in history:
            kept = from_replay(bar)
            self._bars[kept.symbol, kept.start] = kept
        self._handshake_rejects: deque[int] = deque()
        self._rest_failures: deque[int] = deque()
        if engine is not None:
            engine.trade_listeners.append(self._on_engine_trade)

    # -- addresses and state -------------------------------------------------------------------

    def url(self, feed: str = "iex") -> str:
        """The stream's address for ``feed``, e.g. ``ws://127.0.0.1:PORT/v2/iex``."""
        return f"ws://{self.host}:{self._port()}/v2/{feed}"

    @property
    def rest_url(self) -> str:
        """The bare REST base (alpaca-py appends ``/v2`` itself)."""
        return f"http://{self.host}:{self._port()}"

    def _port(self) -> int:
        if self.port is None:
            raise RuntimeError(f"{self.name}: not serving yet (start serve() first)")
        return self.port

    @property
    def connections(self) -> list[AlpacaConnection]:
        """The open connections, oldest first."""
        return list(self._connections.values())

    def sessions(self, key: str) -> int:
        """Live authenticated connections on ``key``: what the connection limit counts."""
        return sum(1 for c in self._connections.values() if c.key == key and c.live)

    def bars(self, symbol: str) -> list[MinuteBar]:
        """The bars REST serves for ``symbol``, oldest first."""
        return sorted((b for b in self._bars.values() if b.symbol == symbol), key=_start)

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        return [details for k, details in self.events if k == kind]

    async def wait_for(self, predicate: Callable[[], object], deadline: float = 5.0) -> None:
        """Wait until ``predicate()`` holds (polled); ``TimeoutError`` after ``deadline`` s."""
        with anyio.fail_after(deadline):
            while not predicate():  # noqa: ASYNC110 - its effect is all there is to wait on
                await anyio.sleep(0.005)

    def _record(self, kind: str, details: dict[str, Any]) -> None:
        self.events.append((kind, details))

    def _record_error(self, connection: AlpacaConnection, code: int) -> None:
        self._record("error", {"id": connection.id, "code": code, "msg": m.ERRORS[code]})

    # -- serving -------------------------------------------------------------------------------

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (0: any free port, reported through ``task_status``).
        Needs the asyncio backend (websockets' server is asyncio's)."""
        server = await serve(
            self._connection,
            host,
            port,
            process_request=self._process_request,
            close_timeout=self.close_timeout,
            logger=log.getChild("websockets"),
        )
        try:
            self.host = host
            self.port = int(server.sockets[0].getsockname()[1])
            log.info("%s: Alpaca server listening on %s:%d", self.name, host, self.port)
            task_status.started(self.port)
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.close_timeout + 1):
                server.close()
                await server.wait_closed()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if "websocket" not in request.headers.get("Upgrade", "").lower():
            return self._rest(url.path, url.query, request.headers)
        if _feed(url.path) is None:
            self._record("reject", {"path": url.path, "status": 404})
            return connection.respond(HTTPStatus.NOT_FOUND, f"no stream at {url.path}\n")
        if self._handshake_rejects:
            status = self._handshake_rejects.popleft()
            self._record("reject", {"path": url.path, "status": status})
            return connection.respond(status, f"{HTTPStatus(status).phrase}\n")
        return None

    async def _connection(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None  # the handler runs after the handshake
        feed = _feed(urlsplit(request.path).path) or ""
        conn = AlpacaConnection(
            self,
            ws,
            id=self._next_id,
            feed=feed,
            fmt=m.Format.for_content_type(request.headers.get("Content-Type")),
            user_agent=request.headers.get("User-Agent", ""),
        )
        self._next_id += 1
        self._connections[conn.id] = conn
        self._record(
            "connect",
            {
                "id": conn.id,
                "feed": feed,
                "format": conn.format.value,
                "user_agent": conn.user_agent,
            },
        )
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(conn.send_data)
                tg.start_soon(conn.close_when_ended)
                tg.start_soon(conn.expect_auth)
                await conn.run()
                tg.cancel_scope.cancel()
        finally:
            conn.closed = True
            del self._connections[conn.id]
            with anyio.CancelScope(shield=True), anyio.move_on_after(self.close_timeout):
                await ws.wait_closed()
            self._record("close", {"id": conn.id, "code": ws.close_code, "reason": ws.close_reason})

    # -- market data ---------------------------------------------------------------------------

    def _on_engine_trade(self, symbol: str, price: Decimal, size: int, at: datetime) -> None:
        try:
            self.publish_trade(symbol, price, size, at)
        except Exception:
            # Whoever moved the engine must never hear of this face's trouble.
            log.exception("%s: could not publish %s %s x %d", self.name, symbol, price, size)

    def publish_trade(self, symbol: str, price: Decimal, size: int, at: datetime) -> None:
        """A trade at ``at`` (aware, any zone; naive is a ``ValueError``): its trade and quote
        go to the connections subscribed to them, and it counts in the symbol's minute bar
        (completing the last one, which then goes out on ``bars``)."""
        stamp = m.timestamp(at)
        trade_id = self._trade_ids[symbol] = self._trade_ids.get(symbol, 0) + 1
        trade = m.trade(symbol, trade_id, price, size, stamp)
        quote = m.quote(symbol, price, size, stamp)
        for conn in list(self._connections.values()):
            if conn.authenticated:
                if conn.subscription.wants("trades", symbol):
                    conn.push(trade)
                if conn.subscription.wants("quotes", symbol):
                    conn.push(quote)
        bars = self._open_bars.get(symbol)
        if bars is None:
            bars = self._open_bars[symbol] = MinuteBars(symbol)
        completed = bars.add(price, size, at)
        if completed is not None:
            self._complete(completed)

    def complete_bars(self) -> None:
        """Complete every symbol's open bar now (the session is over, say)."""
        for bars in self._open_bars.values():
            completed = bars.complete()
            if completed is not None:
                self._complete(completed)

    def _complete(self, bar: MinuteBar) -> None:
        self._bars[bar.symbol, bar.start] = bar
        point = bar.point()
        for conn in list(self._connections.values()):
            if conn.authenticated and conn.subscription.wants("bars", bar.symbol):
                conn.push(point)

    def publish_raw(self, symbol: str, point: Any) -> None:
        """Send ``point`` as it is (malformed, even) to every connection subscribed to
        ``symbol``'s trades, queued and batched like any point."""
        for conn in list(self._connections.values()):
            if conn.authenticated and conn.subscription.wants("trades", symbol):
                conn.push(point)

    # -- faults --------------------------------------------------------------------------------

    def drop_all(self, code: int = 1011, reason: str = "") -> None:
        """Close every connection with a close frame (``code``, ``reason``)."""
        try:
            Close(code, reason).check()
        except ProtocolError:
            raise ValueError(f"a close frame cannot carry code {code}") from None
        if len(reason.encode()) > 123:
            raise ValueError(f"a close reason is 123 bytes at most, got {reason!r}")
        for conn in list(self._connections.values()):
            conn.end(code=code, reason=reason)

    def abort_all(self) -> None:
        """Reset every connection's TCP stream: no close frame, whatever was queued is lost."""
        for conn in list(self._connections.values()):
            self._record("abort", {"id": conn.id})
            conn.abort()

    def mute(self, on: bool = True) -> None:
        """Keep the connections open but send them no data (what is queued is dropped);
        control messages are still answered."""
        self.muted = on
        if on:
            for conn in self._connections.values():
                conn.backlog.clear()

    def reject_handshakes(self, n: int, status: int = 429) -> None:
        """Answer the next ``n`` stream upgrade requests with HTTP ``status``."""
        self._handshake_rejects.extend([status] * n)

    def fail_next_rest(self, n: int, status: int = 429) -> None:
        """Answer the next ``n`` REST requests with HTTP ``status`` (a JSON error body)."""
        self._rest_failures.extend([status] * n)

    # -- REST ----------------------------------------------------------------------------------

    def _rest(self, path: str, query: str, headers: Headers) -> Response:
        params = parse_qs(query, keep_blank_values=True)
        status, body = self._rest_answer(path, params, headers)
        self._record(
            "rest",
            {"path": path, "params": {k: v[-1] for k, v in params.items()}, "status": status},
        )
        data = json.dumps(body).encode()
        return Response(
            status,
            HTTPStatus(status).phrase,
            Headers(
                [
                    ("Date", email.utils.formatdate(usegmt=True)),
                    ("Connection", "close"),
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(data))),
                ]
            ),
            data,
        )

    def _rest_answer(
        self, path: str, params: dict[str, list[str]], headers: Headers
    ) -> tuple[int, dict[str, Any]]:
        if self._rest_failures:
            status = self._rest_failures.popleft()
            message = "too many requests." if status == 429 else HTTPStatus(status).phrase
            return status, {"message": message}
        single = _single_symbol(path)
        if path != BARS_PATH and single is None:
            return 404, {"message": f"no endpoint at {path}"}
        key = headers.get("APCA-API-KEY-ID")
        if key is None or self.credentials.get(key) != headers.get("APCA-API-SECRET-KEY"):
            return 401, {"code": 40110000, "message": "request is not authorized"}
        if single is not None:
            if "symbols" in params:
                return 400, {"message": "unknown parameter: symbols"}
            params = {**params, "symbols": [single]}
        try:
            query = parse_bars_query(params)
        except RestError as exc:
            return exc.status, {"message": exc.message}
        page = bars_page(self._bars.values(), query, self.page_size)
        if single is None:
            return 200, page
        # The single-symbol form: the symbol's bars as a list, and the symbol.
        return 200, {
            "bars": page["bars"].get(single, []),
            "symbol": single,
            "next_page_token": page["next_page_token"],
        }


def _single_symbol(path: str) -> str | None:
    # /v2/stocks/{symbol}/bars
    parts = path.split("/")
    if len(parts) == 5 and parts[:3] == ["", "v2", "stocks"] and parts[4] == "bars" and parts[3]:
        return parts[3] if parts[3] != "bars" else None
    return None


def _feed(path: str) -> str | None:
    for feed in m.FEEDS:
        if path == f"/v2/{feed}":
            return feed
    return None


def _start(bar: MinuteBar) -> datetime:
    return bar.start
