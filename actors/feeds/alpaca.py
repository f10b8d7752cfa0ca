"""Alpaca's real-time stock data through alpaca-py: the only module that imports alpaca-py.

``AlpacaStream`` is a ``market_data.TickSource`` on ``StockDataStream`` (Alpaca's stream, or the
sim venue's server through ``url``), ``AlpacaHistory`` the historical bars API on
``StockHistoricalDataClient``. What alpaca-py does and how this adapter copes
(ref/alpaca-otel.md A.1, A.3):

* The SDK awaits each handler inline, on our event loop (``run`` awaits its loop), so a slow
  handler backs the socket up until the server drops the connection (407 slow client) and the
  backlog is lost. The handler here only parses and hands the tick on without waiting: to the
  market-data actor's sink when one is installed (``deliver_to``; it puts the tick straight
  into the symbol actors' mailboxes, see ``market_data``) and nothing is buffered, else to a
  buffer the actor drains. When the actor falls behind by more than ``backlog`` ticks, the
  buffer keeps only the latest tick per symbol (counted as coalesced), and the symbol actors'
  mailboxes coalesce price ticks the same way.
* ``raw_data=True``: the SDK hands over the decoded msgpack dicts and we parse them ourselves
  (measured 233k against 87k trades/s with its pydantic models). A malformed point is counted
  and dropped alone; with models, one bad point made the SDK drop the rest of its frame.
* The SDK reconnects by itself after a close, a reset, an HTTP 429 or a mute connection
  (``data_timeout``) and subscribes again to the full set; it retries "auth failed" (402) and
  "connection limit exceeded" (406) forever. Its log tells what happened: this adapter reads
  it, keeps the counts for ``actorctl status``, and re-logs one short line per event (the SDK's
  own lines, with tracebacks, are not propagated). ``auth_failures`` consecutive refusals of the
  keys stop the service (``FeedRefused``, unrecoverable) instead of retrying forever.
* On "insufficient subscription" (409, a feed the plan does not include) the SDK's run loop
  returns silently and never reconnects: that is ``FeedRefused`` too.
* The SDK's ``stop()`` can take 5 s; closing here cancels its loop and closes the socket.

Ticks carry Alpaca's own timestamp (the exchange's, nanoseconds). The symbol actor's gate
(``ticks.TickGuard``) checks every tick before the strategy sees it.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import msgpack

from runtime import Unrecoverable

from ..domain import Bar, PriceTick, epoch_ns
from ..domain.bars import SessionKind
from ..history import HistoryError as HistoryError
from ..history import last_complete

with warnings.catch_warnings():
    # alpaca-py 0.44 connects with websockets' legacy client, deprecated since websockets 14;
    # the warning says nothing an operator can act on.
    warnings.filterwarnings("ignore", "websockets.legacy is deprecated", DeprecationWarning)
    from alpaca.common.exceptions import APIError
    from alpaca.data.enums import DataFeed
    from alpaca.data.historical import StockHistoricalDataClient
    from alpaca.data.live import StockDataStream
    from alpaca.data.models import BarSet
    from alpaca.data.requests import StockBarsRequest
    from alpaca.data.timeframe import TimeFrame

if TYPE_CHECKING:
    from ..market_data import Sink

log = logging.getLogger("actortrade.feeds.alpaca")

SDK_LOGGER = "alpaca.data.live.websocket"
WEBSOCKET_PARAMS: Mapping[str, Any] = {
    # alpaca-py replaces its defaults wholesale when given any: these are its own, plus a
    # larger frame limit (a batch over 1 MiB would close the connection with 1009 and be lost).
    "ping_interval": 10,
    "ping_timeout": 180,
    "max_queue": 1024,
    "max_size": 1 << 23,
}


class FeedRefused(Unrecoverable):
    """Raised by ``AlpacaStream.run`` when Alpaca refuses the feed for good: a plan without it
    (409 insufficient subscription), or keys refused ``auth_failures`` times in a row."""


class MalformedPoint(ValueError):
    """Raised by ``parse_trade`` for a data point that is not a valid trade; says what is
    wrong."""


def parse_trade(point: object) -> PriceTick:
    """A trade as Alpaca's stream sends it (``T`` "t", ``S`` symbol, ``p`` price, ``s`` size,
    ``t`` a msgpack Timestamp) as our ``PriceTick``; ``MalformedPoint`` otherwise. Whether the
    price makes sense (finite, positive, in order) is the symbol actor's gate's call."""
    if not isinstance(point, Mapping):
        raise MalformedPoint(f"not an object: {type(point).__name__}")
    symbol = point.get("S")
    if not isinstance(symbol, str) or not symbol:
        raise MalformedPoint(f"no symbol (S): {symbol!r}")
    price = point.get("p")
    if isinstance(price, bool) or not isinstance(price, int | float):
        raise MalformedPoint(f"{symbol}: price (p) is not a number: {price!r}")
    if not math.isfinite(price):
        raise MalformedPoint(f"{symbol}: price (p) is not finite: {price!r}")
    size = point.get("s", 0)
    if isinstance(size, bool) or not isinstance(size, int | float) or not math.isfinite(size):
        raise MalformedPoint(f"{symbol}: size (s) is not a number: {size!r}")
    stamp = point.get("t")
    if isinstance(stamp, msgpack.Timestamp):
        ts_event_ns = stamp.to_unix_nano()
    elif isinstance(stamp, datetime) and stamp.tzinfo is not None:
        ts_event_ns = epoch_ns(stamp)
    else:
        raise MalformedPoint(f"{symbol}: time (t) is not a timestamp: {stamp!r}")
    return PriceTick(
        symbol=symbol,
        price=_price(price),
        size=int(size),
        ts_event_ns=ts_event_ns,
    )


@attrs.define(kw_only=True)
class StreamStatistics:
    """What the stream did, for ``actorctl status`` and tests."""

    received: int = 0
    malformed: int = 0
    malformed_frames: int = 0
    """Frames alpaca-py could not handle (undecodable, or a point that is not an object); it
    drops the rest of such a frame."""
    coalesced: int = 0
    connects: int = 0
    """Authenticated connections (the first, then one per reconnect)."""
    subscriptions: int = 0
    """Subscriptions confirmed by the server (one per connection)."""
    reconnects: int = 0
    """Connections lost or deemed mute, after which the SDK reconnected."""
    refusals: Counter[str] = attrs.Factory(Counter)
    """Errors by message: at connect (auth failed, connection limit exceeded, ...) or sent by
    the server later (slow client, symbol limit exceeded, ...)."""
    last_error: str | None = None


class AlpacaStream:
    """Alpaca's trade stream for a set of symbols, as ``PriceTick``s."""

    name = "alpaca"

    def __init__(
        self,
        *,
        key: str,
        secret: str,
        feed: str = "iex",
        url: str | None = None,
        data_timeout: float | None = None,
        backlog: int = 10_000,
        auth_failures: int = 3,
        reconnect_backoff: tuple[float, float] | None = None,
    ) -> None:
        if backlog < 1 or auth_failures < 1:
            raise ValueError("backlog and auth_failures must be >= 1")
        self._key = key
        self._secret = secret
        self.feed = feed
        self.url = url
        self.data_timeout = data_timeout or None
        self.backlog = backlog
        self.auth_failures = auth_failures
        self.reconnect_backoff = reconnect_backoff
        self.statistics = StreamStatistics()
        self._stream: StockDataStream | None = None
        self._buffer: list[PriceTick] = []
        self._pending = anyio.Event()
        self._sink: Sink | None = None
        self._scope: anyio.CancelScope | None = None
        self._refusal: str | None = None
        self._failed_auths = 0
        self._listener: _SdkLog | None = None
        self._task: int | None = None
        self._subscribed = anyio.Event()
        self._sdk_propagate = True

    def __repr__(self) -> str:
        return f"AlpacaStream(feed={self.feed!r}, url={self.where!r})"

    @property
    def where(self) -> str:
        return self.url or f"Alpaca's {self.feed} stream"

    # -- TickSource ------------------------------------------------------------------------

    async def connect(self, symbols: list[str]) -> None:
        await self.close()  # a crashed feed's stream, if any
        self._buffer = []
        self._refusal = None
        self._failed_auths = 0
        self._subscribed = anyio.Event()
        stream = StockDataStream(
            self._key,
            self._secret,
            raw_data=True,
            feed=DataFeed(self.feed),
            url_override=self.url,
            data_timeout=self.data_timeout,
            websocket_params=dict(WEBSOCKET_PARAMS),
        )
        if self.reconnect_backoff is not None:
            # The SDK's own knobs (its __init__ sets them), not exposed as arguments.
            stream._reconnect_min_backoff, stream._reconnect_max_backoff = self.reconnect_backoff
        stream.subscribe_trades(self._on_trade, *symbols)
        self._stream = stream
        self._listen()
        log.info("alpaca: streaming trades of %s from %s", ", ".join(symbols), self.where)

    async def run(self) -> None:
        stream = self._stream
        if stream is None:
            raise RuntimeError("AlpacaStream.run before connect")
        # The SDK's log lines name no stream: those of this task are this stream's.
        self._task = anyio.get_current_task().id
        with anyio.CancelScope() as scope:
            self._scope = scope
            await stream._run_forever()  # run() would start a loop of its own
        self._scope = None
        self._task = None
        if self._refusal is not None:
            raise FeedRefused(self._refusal)
        if scope.cancel_called:
            return  # closed
        # The SDK's loop returns on its own only after "insufficient subscription" (409).
        reason = self.statistics.last_error or "the stream ended"
        raise FeedRefused(
            f"Alpaca refused the {self.feed} feed at {self.where}: {reason}; the account's "
            'market data plan does not include it (use [alpaca] feed = "iex", or subscribe to '
            "SIP)"
        )

    def describe(self) -> dict[str, Any]:
        stats = self.statistics
        return {
            "where": self.where,
            "subscribed": self._subscribed.is_set(),
            "received": stats.received,
            "malformed": stats.malformed,
            "malformed_frames": stats.malformed_frames,
            "coalesced": stats.coalesced,
            "connects": stats.connects,
            "reconnects": stats.reconnects,
            "refusals": dict(stats.refusals),
            "last_error": stats.last_error,
        }

    async def ready(self) -> None:
        # A lost connection replaces a set event only: whoever waits holds the current one.
        await self._subscribed.wait()

    async def next(self) -> list[PriceTick]:
        while not self._buffer:
            if self._stream is None:
                raise ConnectionError(f"alpaca: the stream from {self.where} is closed")
            await self._pending.wait()
            self._pending = anyio.Event()
        ticks, self._buffer = self._buffer, []
        return ticks

    def deliver_to(self, sink: Sink | None) -> None:
        """``market_data.DirectSource``: offer each new tick to ``sink`` in the handler first."""
        self._sink = sink

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if self._scope is not None:
            self._scope.cancel()
        self._pending.set()
        self._unlisten()
        if stream is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await stream.close()

    # -- the SDK's side ----------------------------------------------------------------------

    async def _on_trade(self, point: Any) -> None:
        # Awaited inline by the SDK for every point: hand on or append, and return.
        try:
            tick = parse_trade(point)
        except MalformedPoint as exc:
            self.statistics.malformed += 1
            if self.statistics.malformed % 1000 == 1:
                log.warning(
                    "alpaca: dropped a malformed point (%d so far): %s",
                    self.statistics.malformed,
                    exc,
                )
            return
        self.statistics.received += 1
        buffer = self._buffer
        sink = self._sink
        if sink is not None and not buffer and sink(tick):
            return
        buffer.append(tick)
        if len(buffer) > self.backlog:
            latest = {t.symbol: t for t in buffer}
            self.statistics.coalesced += len(buffer) - len(latest)
            self._buffer = list(latest.values())
        self._pending.set()

    def _listen(self) -> None:
        sdk = logging.getLogger(SDK_LOGGER)
        self._listener = _SdkLog(self)
        sdk.addHandler(self._listener)
        if sdk.level == logging.NOTSET or sdk.level > logging.INFO:
            sdk.setLevel(logging.INFO)
        self._sdk_propagate, sdk.propagate = sdk.propagate, False

    def _unlisten(self) -> None:
        if self._listener is None:
            return
        sdk = logging.getLogger(SDK_LOGGER)
        sdk.removeHandler(self._listener)
        sdk.propagate = self._sdk_propagate
        self._listener = None

    def _observe(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        stats = self.statistics
        if text.startswith("connected to "):
            stats.connects += 1
            self._failed_auths = 0
            if stats.connects > 1:
                log.info("alpaca: reconnected to %s", self.where)
        elif text.startswith("subscribed to "):
            stats.subscriptions += 1
            self._subscribed.set()
        elif text.startswith("error during websocket communication: "):
            reason = text.removeprefix("error during websocket communication: ")
            if self._stream is not None and self._stream._running:
                # Raised while reading data (a frame it could not decode, a point that is not
                # an object): the SDK dropped the rest of that frame and reads on.
                stats.malformed_frames += 1
                log.warning("alpaca: alpaca-py dropped the rest of a frame: %s", reason)
                return
            self._unsubscribed()
            stats.refusals[reason] += 1
            stats.last_error = reason
            log.warning("alpaca: %s refused the connection: %s", self.where, reason)
            if reason in ("auth failed", "failed to authenticate"):
                self._failed_auths += 1
                if self._failed_auths >= self.auth_failures and self._refusal is None:
                    self._refusal = (
                        f"Alpaca refused the keys from ALPACA_KEY / ALPACA_SECRET at "
                        f"{self.where}: {reason}, {self._failed_auths} times in a row"
                    )
                    if self._scope is not None:
                        self._scope.cancel()
        elif text.startswith("error: "):
            reason = text.removeprefix("error: ")
            stats.refusals[reason] += 1
            stats.last_error = reason
            log.warning("alpaca: the server at %s says: %s", self.where, reason)
        elif text.startswith(("data websocket error", "no data received")):
            self._unsubscribed()
            stats.reconnects += 1
            log.warning("alpaca: %s; reconnecting", text)

    def _unsubscribed(self) -> None:
        if self._subscribed.is_set():
            self._subscribed = anyio.Event()


class _SdkLog(logging.Handler):
    # The SDK reports its connection's life only in its log: read it.
    def __init__(self, stream: AlpacaStream) -> None:
        super().__init__(logging.INFO)
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream._task is not None and _current_task() == self.stream._task:
                self.stream._observe(record)
        except Exception:  # a logging handler must not raise into the SDK
            self.handleError(record)


def _current_task() -> int | None:
    try:
        return anyio.get_current_task().id
    except RuntimeError:  # not in the event loop's thread
        return None


class AlpacaHistory:
    """Alpaca's historical minute bars (``StockHistoricalDataClient``), as our ``Bar``s: ``bars``
    blocks (requests: run it in a thread); ``recent`` is the warm-up port
    (``actors.history.HistorySource``). alpaca-py follows ``next_page_token`` itself. Alpaca's
    bars always include the extended hours and its longer bars are its own, so ``recent``
    asks for minute bars and composes them here (``actors.domain.bars``), regular hours only
    when asked; ``clock`` is the time it asks up to (the venue's, for the sim's server)."""

    name = "alpaca"

    def __init__(
        self,
        *,
        key: str,
        secret: str,
        feed: str = "iex",
        url: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.feed = feed
        self.url = url
        self.clock = clock if clock is not None else lambda: datetime.now(UTC)
        self._client = StockHistoricalDataClient(key, secret, url_override=url)

    def __repr__(self) -> str:
        return f"AlpacaHistory(feed={self.feed!r}, url={self.url!r})"

    async def recent(
        self, symbol: str, *, seconds: int, count: int, sessions: SessionKind
    ) -> list[Bar]:
        """The last ``count`` complete bars (``actors.history.HistorySource``)."""
        if count <= 0:
            return []
        now = self.clock()
        if seconds % 60:
            raise HistoryError(f"alpaca: bars of {seconds} s are not made of minutes")
        # Calendar days that hold the sessions asked for (weekends, holidays), and a margin.
        per_day = 23_400 if sessions == "regular" else 57_600
        days = math.ceil(count * min(seconds, per_day) / per_day * 7 / 5) + 3
        while True:
            start = now - timedelta(days=days)
            minutes = await anyio.to_thread.run_sync(self.bars, symbol, start, now)
            complete = last_complete(
                minutes, seconds=seconds, count=count, sessions=sessions, until_ns=epoch_ns(now)
            )
            if len(complete) >= count or days > 5 * 366:
                return complete
            days *= 2  # days without prints: look further back

    def bars(
        self, symbol: str, start: datetime, end: datetime | None = None, limit: int | None = None
    ) -> list[Bar]:
        request = StockBarsRequest(
            symbol_or_symbols=symbol,
            timeframe=TimeFrame.Minute,
            start=start,
            end=end,
            limit=limit,
            feed=DataFeed(self.feed),
        )
        try:
            answer = self._client.get_stock_bars(request)
        except APIError as exc:
            raise HistoryError(
                f"alpaca: bars of {symbol} from {self.url or 'Alpaca'}: HTTP {exc.status_code}"
            ) from exc
        if not isinstance(answer, BarSet):
            raise HistoryError(f"alpaca: bars of {symbol}: unexpected answer {type(answer)}")
        rows = answer.data.get(symbol, [])
        return [
            Bar(
                symbol=symbol,
                start=row.timestamp,
                open=_price(row.open),
                high=_price(row.high),
                low=_price(row.low),
                close=_price(row.close),
                volume=int(row.volume),
            )
            for row in rows
        ]


def _price(value: float) -> Decimal:
    # Prices travel as floats: rounded to 1/100 of a cent, their shortest repr is the price.
    return Decimal(repr(round(float(value), 4)))
