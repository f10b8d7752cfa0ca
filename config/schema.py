"""The typed configuration of ``actorctl start``: frozen attrs classes, one per TOML table.

Every default reproduces the behaviour of ``actorctl start`` without a config file, so
``Config()`` is the shipped ``config/actortrade.toml``. Validators raise ``InvalidSetting``
naming the field; ``config.load`` turns that into an error naming the file and key path.
Secrets are not here: they come from the environment (``config.secrets``).
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
import sys
from collections.abc import Callable
from datetime import date as _date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

# Defined by the layer that runs them (one definition each); here, the keys that choose them.
from runtime import Backend as Backend
from runtime.store import Durability as Durability

from .errors import InvalidSetting
from .strategies import (
    STRATEGY_TABLES,
    BarOrdersConfig,
    MaCrossConfig,
    MomentumConfig,
    OptionsConfig,
    ScalpConfig,
    StrategyName,
    WhaleConfig,
    strategy_problem,
)

# The shipped lot map; the default symbol trades it, as `actorctl start` does without --lots.
SHIPPED_TQQQ_LOTS = Path(__file__).resolve().parent / "lots" / "tqqq.csv"

SYMBOL_PATTERN = re.compile(r"[A-Z][A-Z0-9.]*")

# TOML's integers are 64-bit; tomllib reads bigger ones, which nothing here means.
INT64 = (-(1 << 63), (1 << 63) - 1)
# IB's clientId is a 32-bit signed integer on the wire, and market data connects as
# client_id + 1, which must be one too.
MAX_CLIENT_ID = (1 << 31) - 2
MAX_MAP_SIZE_MIB = 1 << 20
"""1 TiB: a ledger of lots and intents is megabytes; a bigger map is a typo."""

_Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def shown(value: object, limit: int = 60) -> str:
    """``value`` as an error message may show it: a hostile value can be megabytes long."""
    if isinstance(value, int) and value.bit_length() > 64:
        # str() of a big enough int raises (the int conversion limit): no digits are needed.
        return f"an integer of {value.bit_length()} bits"
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _must(holds: Callable[[Any], bool], requirement: str) -> _Validator:
    # attrs' own validators raise bare ValueErrors; ours carry the field name so that the
    # loader can report the full key path (see InvalidSetting).
    def validate(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not holds(value):
            got = shown(repr(value) if isinstance(value, str) else value)
            raise InvalidSetting(attribute.name, f"must be {requirement}, got {got}")

    return validate


def _finite(value: Any) -> bool:
    # A Decimal NaN raises on comparison instead of comparing false, so test it first; floats
    # from the command line never went through the loader's finiteness check.
    if isinstance(value, Decimal):
        return value.is_finite()
    return isinstance(value, int) or math.isfinite(value)


def _in_range(low: Any, high: Any, unit: str = "") -> _Validator:
    return _must(lambda v: _finite(v) and low <= v <= high, f"between {low} and {high}{unit}")


def _zero_or_in_range(low: Any, high: Any, zero: str, unit: str = "") -> _Validator:
    return _must(
        lambda v: _finite(v) and (v == 0 or low <= v <= high),
        f"0 ({zero}) or between {low} and {high}{unit}",
    )


def _map_size(_instance: Any, attribute: attrs.Attribute[Any], value: int) -> None:
    # The map is reserved as address space at open: more than the platform can address fails
    # there (OverflowError), after ledger/ has been created. The process's own limit (ulimit -v)
    # is the start's to check: it belongs to the machine, not to the file.
    most = min(MAX_MAP_SIZE_MIB, sys.maxsize >> 20)
    if not 1 <= value <= most:
        why = "1 TiB" if most == MAX_MAP_SIZE_MIB else "the platform's address space"
        raise InvalidSetting(
            attribute.name, f"must be between 1 and {most} MiB ({why}), got {shown(value)}"
        )


def is_url(url: str, schemes: tuple[str, ...]) -> bool:
    """Whether ``url`` has one of ``schemes``, a host, a port of 0-65535 if it names one, and
    no spaces or control characters (an exporter or a client would refuse it later, when the
    service is already running)."""
    if any(char.isspace() or not char.isprintable() for char in url):
        return False
    try:
        parts = urlsplit(url)
        _ = parts.port  # a port out of range or not a number raises
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)


HTTP_URL = "an http:// or https:// URL with a host"
WS_URL = "a ws:// or wss:// URL with a host"


def _url_or_empty(requirement: str, *schemes: str) -> _Validator:
    return _must(lambda v: v == "" or is_url(v, schemes), f'{requirement}, or ""')


_http_url_or_empty = _url_or_empty(HTTP_URL, "http", "https")

_HOSTNAME = re.compile(
    r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
LISTEN = "HOST:PORT (127.0.0.1:9464; [::1]:9464; 0.0.0.0:9464 for every interface), port 0-65535"


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` as a host (an IPv6 address without its brackets) and a port (0: any free
    one); ``ValueError`` naming what is wrong otherwise."""
    host, colon, port = listen.rpartition(":")
    if not colon or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError("no port, or a port not 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        ipaddress.IPv6Address(host)  # a ValueError names what is wrong
    elif ":" in host:
        raise ValueError("an IPv6 address goes in brackets")
    elif not _HOSTNAME.fullmatch(host) or len(host) > 253:
        raise ValueError("no host, or not a hostname or an IPv4 address")
    return host, int(port)


def _listen(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        split_listen(value)
    except ValueError:
        raise InvalidSetting(
            attribute.name, f"must be {LISTEN}, got {shown(repr(value))}"
        ) from None


class Mode(enum.StrEnum):
    """Paper or live trading; live also needs ``--live`` on the command line (SPEC 11). A dry
    run decides, checks, commits (intents marked dry), traces and alerts, and sends nothing to
    the broker (``actorctl start --dry-run`` says the same)."""

    PAPER = "paper"
    LIVE = "live"
    DRY_RUN = "dry-run"


class VenueKind(enum.StrEnum):
    """Where orders go: only the embedded simulated venue for now."""

    SIM = "sim"


@attrs.frozen(kw_only=True)
class RuntimeConfig:
    """``[runtime]``: how the service runs."""

    backend: Backend = Backend.ASYNCIO
    stop_timeout: float = attrs.field(default=5.0, validator=_in_range(0.1, 3600, " seconds"))


@attrs.frozen(kw_only=True)
class LedgerConfig:
    """``[ledger]``: the LMDB environment the lot-keeper owns."""

    durability: Durability = Durability.CRASH_SAFE
    map_size_mib: int = attrs.field(default=1024, validator=_map_size)


@attrs.frozen(kw_only=True)
class ControlConfig:
    """``[control]``: the local control socket; ``None`` means the per-user default,
    ``$ACTORTRADE_SOCKET``, else ``$XDG_RUNTIME_DIR/actortrade-<uid>/actorctl.sock`` (the
    temporary directory when ``XDG_RUNTIME_DIR`` is unset; ``actortrade-<uid>`` is made mode
    0700 and must be this user's alone). ``actorctl start`` refuses a socket whose directory
    another user owns (root excepted) or may write to (a sticky one like ``/tmp`` excepted)."""

    socket: Path | None = None


@attrs.frozen(kw_only=True)
class VenueConfig:
    """``[venue]``: the venue and the market data replayed into it."""

    kind: VenueKind = VenueKind.SIM
    # A 1-minute bar CSV; None replays the generated session of `seed`.
    replay: Path | None = None
    seed: int = attrs.field(default=14, validator=_in_range(*INT64))
    # Times faster than the bars' clock; 0 means as fast as possible.
    speed: float = attrs.field(
        default=1800.0, validator=_zero_or_in_range(0.01, 1_000_000, "as fast as possible")
    )


class BrokerKind(enum.StrEnum):
    """How the broker actor reaches the venue."""

    EMBEDDED = "embedded"
    """The embedded sim venue through its TWS API socket server, with ib_insync: the production
    broker path, on loopback, with no account."""
    INPROCESS = "inprocess"
    """The embedded sim venue called directly (no socket): the fastest, for backtests."""
    IB = "ib"
    """A real TWS or IB Gateway at ``host:port``."""


_host_name = _must(
    # A DNS name is at most 253 characters; an address has no spaces or control characters.
    lambda v: 0 < len(v) <= 253 and all(c.isprintable() and not c.isspace() for c in v),
    "a host name or IP address",
)


PAPER_PORTS = {7497: "TWS paper", 4002: "IB Gateway paper"}
LIVE_PORTS = {7496: "TWS live", 4001: "IB Gateway live"}


@attrs.frozen(kw_only=True)
class BrokerConfig:
    """``[broker]``: the connection to Interactive Brokers (or the embedded venue's face)."""

    kind: BrokerKind = BrokerKind.EMBEDDED
    host: str = attrs.field(default="127.0.0.1", validator=_host_name)
    # TWS paper 7497, IB Gateway paper 4002; the live ports 7496 and 4001 are refused unless
    # mode = "live" and the command line says --live.
    port: int = attrs.field(default=7497, validator=_in_range(1, 65535))
    # IB's clientId; market data connects as client_id + 1.
    client_id: int = attrs.field(default=1, validator=_in_range(0, MAX_CLIENT_ID))
    # Market data type to request after connecting: 1 live, 3 delayed (a paper account without
    # a subscription), 0 to not ask.
    market_data_type: int = attrs.field(
        default=3, validator=_must(lambda v: v in (0, 1, 2, 3, 4), "one of 0, 1, 2, 3, 4")
    )
    timeout: float = attrs.field(default=10.0, validator=_in_range(0.5, 3600, " seconds"))


class FeedKind(enum.StrEnum):
    """Where a symbol's prices come from (SPEC 3: one market-data actor per feed)."""

    AUTO = "auto"
    """The venue's own: the replay on the embedded venue, IB's market data through IB."""
    REPLAY = "replay"
    """The embedded venue's replay, handed straight to the symbol actor (no socket)."""
    ALPACA = "alpaca"
    """Alpaca's real-time stream through alpaca-py (the seed bot's choice). On the embedded
    venue, its Alpaca stream server on loopback, publishing the replay the venue trades on."""
    IB = "ib"
    """IB's streaming market data through ib_insync, on a clientId of its own."""


class AlpacaFeed(enum.StrEnum):
    """Alpaca's stock data feeds: IEX (free plans) or SIP (all exchanges; a paid plan)."""

    IEX = "iex"
    SIP = "sip"


class HistorySource(enum.StrEnum):
    """Where a strategy's warm-up bars come from (``[history] source``; ``docs/bars.md``)."""

    AUTO = "auto"
    """The replay on the embedded venue; through IB, Alpaca's REST bars for a symbol Alpaca
    feeds, else IB's ``reqHistoricalData``."""
    REPLAY = "replay"
    """The replay's bars the embedded venue has printed (the embedded venue only)."""
    BROKER = "broker"
    """IB's ``reqHistoricalData`` through ib_insync, on a clientId of its own: a real TWS / IB
    Gateway, or the embedded venue's TWS API server (not the in-process venue)."""
    FEED = "feed"
    """The symbol's feed's: Alpaca's REST bars for an Alpaca-fed symbol, IB's
    ``reqHistoricalData`` for an IB-fed one, the replay for a replay-fed one."""
    NONE = "none"
    """No warm-up: a strategy that needs one is refused at start."""


class HistoryFrom(enum.StrEnum):
    """Where one symbol's warm-up comes from once ``HistorySource`` is resolved
    (``history_of``)."""

    REPLAY = "replay"
    IB = "ib"
    ALPACA = "alpaca"
    NONE = "none"


@attrs.frozen(kw_only=True)
class HistoryConfig:
    """``[history]``: the warm-up history of bar strategies (``docs/bars.md``)."""

    source: HistorySource = HistorySource.AUTO
    # The clientId IB's reqHistoricalData connects with; 0 is the broker's client_id + 2 (the
    # broker has client_id, IB market data client_id + 1).
    client_id: int = attrs.field(
        default=0,
        validator=_zero_or_in_range(1, MAX_CLIENT_ID + 1, "the broker's client_id + 2"),
    )


@attrs.frozen(kw_only=True)
class AlpacaConfig:
    """``[alpaca]``: Alpaca's market data (keys from ALPACA_KEY / ALPACA_SECRET, never here)."""

    feed: AlpacaFeed = AlpacaFeed.IEX
    # The stream's URL; "" is Alpaca's (wss://stream.data.alpaca.markets/v2/<feed>). The
    # embedded venue always uses its own server.
    stream_url: str = attrs.field(default="", validator=_url_or_empty(WS_URL, "ws", "wss"))
    # The historical data API's base URL (without /v2); "" is Alpaca's.
    data_url: str = attrs.field(default="", validator=_http_url_or_empty)
    # Seconds without a trade after which the connection is deemed mute and reconnected; 0
    # never.
    data_timeout: float = attrs.field(
        default=300.0, validator=_zero_or_in_range(1, 86_400, "never", " seconds")
    )
    # Ticks the feed buffers while its actor is behind before it keeps only the latest per
    # symbol.
    backlog: int = attrs.field(default=10_000, validator=_in_range(1, 1_000_000))
    # Consecutive "auth failed" answers after which the keys count as refused and the service
    # stops (a restart cannot fix them).
    auth_failures: int = attrs.field(default=3, validator=_in_range(1, 100))


@attrs.frozen(kw_only=True)
class TelemetryConfig:
    """``[telemetry]``: traces over OTLP/HTTP (to Jaeger, say) and metrics (SPEC 10)."""

    # Export a trace per trading decision (tick to fill) and spans for reconciliation,
    # supervisor restarts and broker connections.
    tracing: bool = True
    # The OTLP/HTTP base URL (the exporter appends /v1/traces); "": $OTEL_EXPORTER_OTLP_ENDPOINT,
    # else http://localhost:4318 (Jaeger's OTLP port).
    endpoint: str = attrs.field(default="", validator=_http_url_or_empty)
    # The service.name of every span and metric; "": $OTEL_SERVICE_NAME, else "actortrade".
    service_name: str = ""
    # Where metrics are exported over OTLP/HTTP (/v1/metrics appended): an OpenTelemetry
    # collector, say; Jaeger takes no metrics. "": not exported (`actorctl status` shows them).
    metrics_endpoint: str = attrs.field(default="", validator=_http_url_or_empty)
    # Seconds between metric exports (> 0).
    metrics_interval: float = attrs.field(default=10.0, validator=_in_range(1, 86_400, " seconds"))


@attrs.frozen(kw_only=True)
class HttpConfig:
    """``[http]``: ``/healthz``, ``/readyz`` and ``/metrics`` (Prometheus) over HTTP
    (``app.ops.http``)."""

    enabled: bool = True
    # HOST:PORT; loopback unless said otherwise (a non-loopback address is logged as exposed).
    # Port 0: any free one (the start line names it).
    listen: str = attrs.field(default="127.0.0.1:9464", validator=_listen)


@attrs.frozen(kw_only=True)
class ReconcileConfig:
    """``[reconcile]``: the broker-vs-ledger comparison (SPEC 6)."""

    # Faster than once a second, a reconciliation compares books still moving from the last
    # one and reports differences that are not there.
    interval: float = attrs.field(default=60.0, validator=_in_range(1, 86_400, " seconds"))


class AlertSeverity(enum.StrEnum):
    """The least severe alert a channel sends."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class HeartbeatMethod(enum.StrEnum):
    GET = "GET"
    POST = "POST"


ALERT_SECRETS: dict[str, tuple[str, ...]] = {
    "slack": ("ACTORTRADE_SLACK_WEBHOOK_URL",),
    "discord": ("ACTORTRADE_DISCORD_WEBHOOK_URL",),
    "telegram": ("ACTORTRADE_TELEGRAM_BOT_TOKEN", "ACTORTRADE_TELEGRAM_CHAT_ID"),
    "heartbeat": ("ACTORTRADE_HEARTBEAT_URL",),
}
"""Each alert channel's secrets: environment variables only (a webhook's URL is its
credential), never keys of the config file."""


@attrs.frozen(kw_only=True)
class AlertChannelConfig:
    """``[alerts.slack]``, ``[alerts.discord]``: one channel. It sends only when its secret is
    set in the environment (``ALERT_SECRETS``)."""

    enabled: bool = True
    # Requests per second, sustained, and how many may go at once after a quiet spell.
    rate: float = attrs.field(default=1.0, validator=_in_range(0.01, 100, " per second"))
    burst: int = attrs.field(default=1, validator=_in_range(1, 100))
    # Messages waiting for the channel before a new one is dropped (counted).
    queue_size: int = attrs.field(default=100, validator=_in_range(1, 100_000))
    min_severity: AlertSeverity = AlertSeverity.INFO


@attrs.frozen(kw_only=True)
class TelegramConfig(AlertChannelConfig):
    """``[alerts.telegram]``: a bot's sendMessage to one chat."""

    # The Bot API's base URL; "": https://api.telegram.org.
    api_url: str = attrs.field(default="", validator=_http_url_or_empty)


@attrs.frozen(kw_only=True)
class HeartbeatConfig:
    """``[alerts.heartbeat]``: a Healthchecks-style URL pinged while the service runs."""

    enabled: bool = True
    interval: float = attrs.field(default=60.0, validator=_in_range(1, 86_400, " seconds"))
    method: HeartbeatMethod = HeartbeatMethod.GET


@attrs.frozen(kw_only=True)
class AlertsConfig:
    """``[alerts]``: the alerts actor (SPEC 12): where operator-facing events go."""

    # Seconds during which repeats of an alert are counted, not sent; 0: send every one.
    dedup_window: float = attrs.field(
        default=300.0, validator=_zero_or_in_range(1, 86_400, "off", " seconds")
    )
    # Alerts waiting for the alerts actor before a new one is dropped (counted).
    queue_size: int = attrs.field(default=1024, validator=_in_range(1, 1_000_000))
    # Alerts kept for `actorctl status`.
    history: int = attrs.field(default=1000, validator=_in_range(1, 1_000_000))
    # Seconds one request may take, all of it.
    timeout: float = attrs.field(default=10.0, validator=_in_range(0.5, 300, " seconds"))
    # Requests per message in all, the first included; retries back off exponentially from
    # backoff_initial to backoff_maximum seconds, with jitter.
    attempts: int = attrs.field(default=5, validator=_in_range(1, 100))
    backoff_initial: float = attrs.field(default=1.0, validator=_in_range(0.01, 3600, " seconds"))
    backoff_maximum: float = attrs.field(
        default=60.0, validator=_in_range(0.01, 86_400, " seconds")
    )
    slack: AlertChannelConfig = AlertChannelConfig()
    discord: AlertChannelConfig = AlertChannelConfig()
    telegram: TelegramConfig = TelegramConfig()
    heartbeat: HeartbeatConfig = HeartbeatConfig()


class MarketHours(enum.StrEnum):
    """When the risk actor lets new orders go, by the New York session at the event's time."""

    ANY = "any"
    EXTENDED = "extended"
    REGULAR = "regular"


_MONEY = Decimal(10) ** 15
"""A bound on amounts of money: a thousand trillion is a typo."""


def _amount(what: str) -> _Validator:
    return _zero_or_in_range(Decimal("0.01"), _MONEY, what)


def _percent(what: str) -> _Validator:
    return _zero_or_in_range(Decimal("0.0001"), Decimal(100), what, " (percent)")


@attrs.frozen(kw_only=True)
class RiskConfig:
    """``[risk]``: the risk actor's limits (SPEC 12); each 0 means no such limit, the default."""

    # The account's equity, in dollars, that the percentages are of (needed by them).
    equity: Decimal = attrs.field(default=Decimal(0), validator=_amount("unknown"))
    max_notional_per_symbol: Decimal = attrs.field(default=Decimal(0), validator=_amount("none"))
    max_gross_exposure: Decimal = attrs.field(default=Decimal(0), validator=_amount("none"))
    max_open_orders: int = attrs.field(default=0, validator=_zero_or_in_range(1, 100_000, "none"))
    max_positions: int = attrs.field(default=0, validator=_zero_or_in_range(1, 100_000, "none"))
    market_hours: MarketHours = MarketHours.ANY
    max_risk_pct_per_trade: Decimal = attrs.field(default=Decimal(0), validator=_percent("none"))
    max_daily_loss_pct: Decimal = attrs.field(default=Decimal(0), validator=_percent("none"))

    def __attrs_post_init__(self) -> None:
        for name in ("max_daily_loss_pct", "max_risk_pct_per_trade"):
            if getattr(self, name) and not self.equity:
                raise InvalidSetting(
                    "equity", f"must be set (> 0) when {name} is, got {shown(self.equity)}"
                )


@attrs.frozen(kw_only=True)
class GridConfig:
    """``[symbols.grid]``: the grid's parameters; the defaults are the seed bot's (SPEC 4)."""

    # 0.0001 is the finest tick US stocks trade in (below $1). A step or a profit under 0.01%
    # rounds to the same price as its level at any tick that makes sense for the price.
    tick: Decimal = attrs.field(
        default=Decimal("0.01"), validator=_in_range(Decimal("0.0001"), Decimal(100))
    )
    level0_buffer: Decimal = attrs.field(
        default=Decimal("0.0025"), validator=_in_range(Decimal(0), Decimal("0.1"))
    )
    step: Decimal = attrs.field(
        default=Decimal("0.01"), validator=_in_range(Decimal("0.0001"), Decimal("0.5"))
    )
    profit: Decimal = attrs.field(
        default=Decimal("0.01"), validator=_in_range(Decimal("0.0001"), Decimal(1))
    )
    queue_depth: int = attrs.field(default=3, validator=_in_range(1, 100))
    fill_timeout: float = attrs.field(default=120.0, validator=_in_range(1, 86_400, " seconds"))


def _symbol_name(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not SYMBOL_PATTERN.fullmatch(value):
        # Not upper-cased silently: a lower-case symbol is a typo until the operator says so.
        hint = (
            f" (did you mean {value.upper()!r}?)" if SYMBOL_PATTERN.fullmatch(value.upper()) else ""
        )
        raise InvalidSetting(
            attribute.name,
            f"must be an uppercase ticker matching ^{SYMBOL_PATTERN.pattern}$, got "
            f"{shown(repr(value))}{hint}",
        )


@attrs.frozen(kw_only=True)
class SymbolConfig:
    """``[[symbols]]``: one traded symbol and its strategy (``config.strategies``): the grid
    with its lot map (the default), or a bar-close or options strategy with its parameter
    table."""

    symbol: str = attrs.field(validator=_symbol_name)
    # Relative paths are relative to the config file's directory (resolved by the loader).
    # Required by the grid, refused by the others.
    lots: Path | None = None
    feed: FeedKind = FeedKind.AUTO
    strategy: StrategyName = StrategyName.GRID
    grid: GridConfig = GridConfig()
    ma_cross: MaCrossConfig | None = None
    momentum: MomentumConfig | None = None
    scalp: ScalpConfig | None = None
    whale: WhaleConfig | None = None

    def __attrs_post_init__(self) -> None:
        problem = strategy_problem(
            self.strategy,
            has_lots=self.lots is not None,
            ma_cross=self.ma_cross,
            momentum=self.momentum,
            scalp=self.scalp,
            whale=self.whale,
        )
        if problem is not None:
            raise problem

    def _strategy_table(self) -> BarOrdersConfig | OptionsConfig | None:
        # Its strategy's parameter table, the defaults when not given; None for the grid's.
        kind = STRATEGY_TABLES.get(self.strategy)
        if kind is None:
            return None
        table: BarOrdersConfig | OptionsConfig | None = getattr(self, self.strategy.value)
        return table if table is not None else kind()

    def strategy_parameters(self) -> dict[str, object]:
        """The parameters of its strategy as plain values (for
        ``actors.strategies.registry.strategy_kind``)."""
        table = self._strategy_table()
        return attrs.asdict(self.grid, recurse=False) if table is None else table.parameters()

    @property
    def tick(self) -> Decimal:
        """Its instrument's price increment, from its strategy's table (an options
        strategy's: the underlying's)."""
        table = self._strategy_table()
        return self.grid.tick if table is None else table.tick


def _symbol_list(
    _instance: Any, attribute: attrs.Attribute[Any], value: tuple[SymbolConfig, ...]
) -> None:
    if not value:
        raise InvalidSetting(attribute.name, "needs at least one [[symbols]] table")
    first: dict[tuple[str, str], int] = {}
    feeds: dict[str, tuple[FeedKind, int]] = {}
    for index, entry in enumerate(value):
        # Several strategies may trade one symbol (each its own orders and ledger facts, routed
        # by strategy:symbol); one strategy twice on a symbol would run two copies of it on
        # the same orders.
        key = (entry.symbol, entry.strategy.value)
        if (earlier := first.setdefault(key, index)) != index:
            raise InvalidSetting(
                f"{attribute.name}[{index}].symbol",
                f"duplicate symbol {entry.symbol!r} with strategy {entry.strategy.value!r} "
                f"(first at {attribute.name}[{earlier}])",
            )
        # One market-data actor delivers a symbol to all its strategies.
        if (feed := feeds.setdefault(entry.symbol, (entry.feed, index)))[0] is not entry.feed:
            raise InvalidSetting(
                f"{attribute.name}[{index}].feed",
                f"{entry.symbol!r} is fed by {entry.feed.value!r} here but by "
                f"{feed[0].value!r} at {attribute.name}[{feed[1]}]: one feed per symbol",
            )


def _history_table(instance: Any, attribute: attrs.Attribute[Any], value: HistoryConfig) -> None:
    # The history's own connection must not take the broker's or IB market data's clientId: TWS
    # refuses a second connection with a clientId in use (error 326).
    taken = {instance.broker.client_id: "broker.client_id"}
    taken.setdefault(instance.broker.client_id + 1, "broker.client_id + 1 (IB market data)")
    if value.client_id and value.client_id in taken:
        raise InvalidSetting(
            f"{attribute.name}.client_id",
            f"must differ from the clientIds of the broker and of IB market data, got "
            f"{value.client_id}, which is {taken[value.client_id]}",
        )


_SPLIT_RATIO = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?::\s*(\d+(?:\.\d+)?)\s*)?")


def _iso_date(_instance: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        valid = len(value) == 10 and _date.fromisoformat(value) is not None
    except ValueError:
        valid = False
    if not valid:
        raise InvalidSetting(attribute.name, f"must be a date YYYY-MM-DD, got {shown(value)}")


def _split_ratio(_instance: Any, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is None:
        return
    match = _SPLIT_RATIO.fullmatch(value)
    if match is None or any(part is not None and Decimal(part) <= 0 for part in match.groups()):
        raise InvalidSetting(
            attribute.name,
            f'must be new shares per old, "2" or "3:2", both positive, got {shown(value)}',
        )


@attrs.frozen(kw_only=True)
class CorporateActionConfig:
    """``[[corporate_actions]]``: a split or a dividend a backtest applies at its ex-date
    (``actorctl backtest``; docs/backtest.md), beside those of LEAN's factor files."""

    symbol: str
    date: str = attrs.field(validator=_iso_date)
    """The ex-date, YYYY-MM-DD."""
    split: str | None = attrs.field(default=None, validator=_split_ratio)
    """New shares per old: "2" (2-for-1), "3:2", "1:10" (a reverse split)."""
    dividend: Decimal | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(_in_range(Decimal("0.0001"), _MONEY)),
    )
    """Cash per share held at the close before the ex-date."""

    def __attrs_post_init__(self) -> None:
        if (self.split is None) == (self.dividend is None):
            raise InvalidSetting("split", "or dividend: give exactly one of the two")


@attrs.frozen(kw_only=True)
class Config:
    """The whole ``actortrade.toml``."""

    mode: Mode = Mode.PAPER
    # The ledger directory; None means a temporary one, discarded at exit.
    data_dir: Path | None = None
    runtime: RuntimeConfig = RuntimeConfig()
    ledger: LedgerConfig = LedgerConfig()
    control: ControlConfig = ControlConfig()
    venue: VenueConfig = VenueConfig()
    broker: BrokerConfig = BrokerConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    alpaca: AlpacaConfig = AlpacaConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    http: HttpConfig = HttpConfig()
    alerts: AlertsConfig = AlertsConfig()
    risk: RiskConfig = RiskConfig()
    history: HistoryConfig = attrs.field(default=HistoryConfig(), validator=_history_table)
    symbols: tuple[SymbolConfig, ...] = attrs.field(
        default=(SymbolConfig(symbol="TQQQ", lots=SHIPPED_TQQQ_LOTS),), validator=_symbol_list
    )
    corporate_actions: tuple[CorporateActionConfig, ...] = ()


def live_problem(config: Config, *, live_flag: bool) -> str | None:
    """Why this configuration may not start, as far as real money goes (SPEC 11), or None.

    Paper by default: live trading needs the config's ``mode = "live"`` *and* ``--live`` on the
    command line, and IB's live ports (TWS 7496, Gateway 4001) are refused without both.
    """
    broker = config.broker
    both = config.mode is Mode.LIVE and live_flag
    if broker.kind is not BrokerKind.IB:
        if config.mode is Mode.LIVE or live_flag:
            return (
                f'live trading needs [broker] kind = "ib": the {broker.kind.value} sim venue is '
                "paper only"
            )
        return None
    if broker.port in LIVE_PORTS and not both:
        return (
            f"port {broker.port} is IB's {LIVE_PORTS[broker.port]} port: refused unless the "
            'config says mode = "live" and the command line says --live'
        )
    if (config.mode is Mode.LIVE or live_flag) and not both:
        missing = "--live on the command line" if not live_flag else 'mode = "live" in the config'
        return f'live trading needs both mode = "live" and --live; {missing} is missing'
    return None


def feed_of(config: Config, symbol: SymbolConfig) -> FeedKind:
    """The feed ``symbol`` trades on, with ``auto`` resolved for the configured broker."""
    if symbol.feed is not FeedKind.AUTO:
        return symbol.feed
    return FeedKind.IB if config.broker.kind is BrokerKind.IB else FeedKind.REPLAY


def symbols_by_feed(config: Config) -> dict[FeedKind, frozenset[str]]:
    """Each feed in use (``auto`` resolved) and the symbols it carries."""
    fed: dict[FeedKind, frozenset[str]] = {}
    for entry in config.symbols:
        kind = feed_of(config, entry)
        fed[kind] = fed.get(kind, frozenset()) | {entry.symbol}
    return fed


def feed_problem(config: Config) -> str | None:
    """Why a symbol's feed cannot work with the configured broker, or None."""
    for index, symbol in enumerate(config.symbols):
        feed = feed_of(config, symbol)
        where = f"symbols[{index}].feed = {feed.value!r} ({symbol.symbol})"
        if feed is FeedKind.REPLAY and config.broker.kind is BrokerKind.IB:
            return f"{where}: a replay drives only the embedded venue, not IB"
        if feed is FeedKind.IB and config.broker.kind is BrokerKind.INPROCESS:
            return (
                f'{where}: IB market data needs [broker] kind = "embedded" (the venue\'s TWS '
                'API server) or "ib"'
            )
    return None


def masked(account: str) -> str:
    """An account id as it may be printed: its last three characters."""
    return "*" * max(len(account) - 3, 0) + account[-3:] if account else "(none)"


OPTION_STRATEGIES = frozenset({"scalp", "whale"})
"""The strategies that trade options (``actors.strategies.options``)."""


def trades_options(config: Config) -> bool:
    """Whether a symbol of ``config`` runs an options strategy."""
    return any(str(s.strategy) in OPTION_STRATEGIES for s in config.symbols)


def options_client_id(config: Config) -> int:
    """The clientId the options strategies' chains and quotes connect with (their own
    connection, as history's): the broker's + 3 (the broker's - 2 when that would not fit
    IB's 32 bits)."""
    broker = config.broker.client_id
    return broker + 3 if broker + 3 <= MAX_CLIENT_ID + 1 else broker - 2


def history_client_id(config: Config) -> int:
    """The clientId IB's ``reqHistoricalData`` connects with: ``[history] client_id``, else the
    broker's + 2 (the broker's - 1 when that would not fit IB's 32 bits)."""
    if config.history.client_id:
        return config.history.client_id
    broker = config.broker.client_id
    return broker + 2 if broker + 2 <= MAX_CLIENT_ID + 1 else broker - 1


def history_of(config: Config, symbol: SymbolConfig) -> HistoryFrom:
    """Where ``symbol``'s warm-up comes from, with ``[history] source`` resolved for the
    configured broker and the symbol's feed (``history_problem`` says when it cannot be)."""
    source = config.history.source
    feed = feed_of(config, symbol)
    on_ib = config.broker.kind is BrokerKind.IB
    if source is HistorySource.AUTO:
        if not on_ib:
            return HistoryFrom.REPLAY
        return HistoryFrom.ALPACA if feed is FeedKind.ALPACA else HistoryFrom.IB
    if source is HistorySource.FEED:
        return {
            FeedKind.REPLAY: HistoryFrom.REPLAY,
            FeedKind.IB: HistoryFrom.IB,
            FeedKind.ALPACA: HistoryFrom.ALPACA,
        }[feed]
    return {
        HistorySource.REPLAY: HistoryFrom.REPLAY,
        HistorySource.BROKER: HistoryFrom.IB,
        HistorySource.NONE: HistoryFrom.NONE,
    }[source]


def history_problem(config: Config) -> str | None:
    """Why ``[history] source`` cannot work with the configured broker, or None."""
    source = config.history.source
    kind = config.broker.kind
    where = f"history.source = {source.value!r}"
    if source is HistorySource.REPLAY and kind is BrokerKind.IB:
        return f"{where}: a replay is the embedded venue's only, not IB's"
    if source is HistorySource.BROKER and kind is BrokerKind.INPROCESS:
        return (
            f"{where}: IB's reqHistoricalData needs [broker] kind = \"embedded\" (the venue's "
            'TWS API server) or "ib"'
        )
    return None
