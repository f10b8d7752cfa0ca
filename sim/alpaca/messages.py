"""What the Alpaca stream face reads and writes, without I/O: the client's actions parsed
strictly, a connection's subscription, the server's messages, and their two encodings.

Every server message is sent inside an array (a control message as an array of one). The
encoding is the client's choice, made once per connection by its ``Content-Type``: msgpack
(binary frames; ``t`` is a msgpack Timestamp, ext type -1, which alpaca-py requires) or JSON
(text frames, Alpaca's documented default; ``t`` is RFC-3339 with nanoseconds and ``Z``).
Field names follow alpaca-py 0.44.0's ``data/mappings.py`` (ref/alpaca-otel.md A.1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

import attrs
import msgpack

FEEDS = ("iex", "sip", "delayed_sip", "test")
"""The stream paths served, ``/v2/{feed}``."""
CHANNELS = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")
"""What a client may subscribe to; ``corrections`` and ``cancelErrors`` follow ``trades``."""
FOLLOW_TRADES = ("corrections", "cancelErrors")
WILDCARD = "*"

ERRORS = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    409: "insufficient subscription",
    410: "invalid subscribe action for this feed",
    500: "internal error",
}
"""Alpaca's stream error codes (docs, "Streaming market data"; 410 from the Go SDK)."""

CONNECTED = {"T": "success", "msg": "connected"}
AUTHENTICATED = {"T": "success", "msg": "authenticated"}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CENT = Decimal("0.01")


class Format(Enum):
    MSGPACK = "msgpack"
    JSON = "json"

    @classmethod
    def for_content_type(cls, content_type: str | None) -> Format:
        """msgpack if the client asked for it, else JSON (Alpaca's default)."""
        media = (content_type or "").split(";")[0].strip().lower()
        return cls.MSGPACK if media == "application/msgpack" else cls.JSON


class StreamError(Exception):
    """Raised by ``parse_action`` and ``Subscription`` for what the stream refuses; ``code`` is
    the Alpaca error code the client is answered with."""

    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"{code} {ERRORS[code]}: {detail}")
        self.code = code


# -- what the client sends ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Auth:
    key: str
    secret: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class Subscribe:
    channels: Mapping[str, tuple[str, ...]]
    """As sent: a name that is no channel is refused later, with 410, once authenticated."""


@attrs.frozen(kw_only=True)
class Unsubscribe:
    channels: Mapping[str, tuple[str, ...]]


Action = Auth | Subscribe | Unsubscribe


def decode(data: bytes | str) -> Any:
    """A client frame's content: JSON in a text frame; msgpack (or JSON) in a binary one."""
    try:
        if isinstance(data, str):
            return json.loads(data)
        try:
            return msgpack.unpackb(data)
        except Exception:
            return json.loads(data)
    except Exception as exc:  # every decoder's failure is the client's malformed message
        raise StreamError(400, f"undecodable message ({type(exc).__name__})") from None


def parse_action(data: bytes | str) -> Action:
    """Parse one client frame strictly: an object with a known ``action`` (else 400)."""
    message = decode(data)
    if not isinstance(message, dict):
        raise StreamError(400, f"expected an object, got {type(message).__name__}")
    action = message.get("action")
    match action:
        case "auth":
            key, secret = message.get("key"), message.get("secret")
            if not isinstance(key, str) or not isinstance(secret, str):
                raise StreamError(400, "auth needs a string key and secret")
            return Auth(key=key, secret=secret)
        case "subscribe" | "unsubscribe":
            channels: dict[str, tuple[str, ...]] = {}
            for name, symbols in message.items():
                if name == "action":
                    continue
                if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                    raise StreamError(400, f"{name} must be a list of symbols")
                channels[str(name)] = tuple(symbols)
            if action == "subscribe":
                return Subscribe(channels=channels)
            return Unsubscribe(channels=channels)
        case _:
            raise StreamError(400, f"unknown action {action!r}")


# -- a connection's subscription ------------------------------------------------------------


def _no_channels() -> dict[str, tuple[str, ...]]:
    return {channel: () for channel in CHANNELS}


@attrs.frozen
class Subscription:
    """The symbols a connection wants, per channel, in the order first asked for."""

    channels: Mapping[str, tuple[str, ...]] = attrs.field(factory=_no_channels)
    _lookup: dict[str, frozenset[str]] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        lookup = {name: frozenset(self.channels.get(name, ())) for name in CHANNELS}
        object.__setattr__(self, "_lookup", lookup)

    def wants(self, channel: str, symbol: str) -> bool:
        symbols = self._lookup[channel]
        return symbol in symbols or WILDCARD in symbols

    def symbol_count(self) -> int:
        """Distinct symbols on trades and quotes: what Alpaca's symbol limit counts."""
        return len(self._lookup["trades"] | self._lookup["quotes"])

    def add(self, channels: Mapping[str, Iterable[str]]) -> Subscription:
        _check_channels(channels)
        merged = {
            name: tuple(dict.fromkeys((*self.channels[name], *channels.get(name, ()))))
            for name in CHANNELS
        }
        return Subscription(merged)

    def remove(self, channels: Mapping[str, Iterable[str]]) -> Subscription:
        _check_channels(channels)
        kept = {}
        for name in CHANNELS:
            gone = set(channels.get(name, ()))
            kept[name] = tuple(s for s in self.channels[name] if s not in gone)
        return Subscription(kept)

    def message(self) -> dict[str, Any]:
        """The ``subscription`` reply: every channel, the ones following trades included."""
        reply: dict[str, Any] = {"T": "subscription"}
        reply.update({name: list(self.channels[name]) for name in CHANNELS})
        reply.update({name: list(self.channels["trades"]) for name in FOLLOW_TRADES})
        return reply

    def as_dict(self) -> dict[str, list[str]]:
        return {name: list(symbols) for name, symbols in self.channels.items()}


def _check_channels(channels: Mapping[str, Iterable[str]]) -> None:
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise StreamError(410, f"no such channel on a stock feed: {', '.join(unknown)}")


# -- what the server sends ------------------------------------------------------------------


def error(code: int) -> dict[str, Any]:
    return {"T": "error", "code": code, "msg": ERRORS[code]}


def timestamp(at: datetime) -> msgpack.Timestamp:
    """An aware time as the stream's ``t``: nanoseconds since the epoch (whole microseconds)."""
    if at.tzinfo is None:
        raise ValueError(f"a stream timestamp needs an aware time, got naive {at.isoformat()}")
    return msgpack.Timestamp.from_unix_nano(((at - _EPOCH) // _MICROSECOND) * 1000)


def rfc3339(nanoseconds: int) -> str:
    """``2026-11-23T14:30:00.123456789Z``: Alpaca's JSON times, always nine fraction digits."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    whole = _EPOCH + timedelta(seconds=seconds)
    return f"{whole:%Y-%m-%dT%H:%M:%S}.{fraction:09d}Z"


def trade(
    symbol: str, trade_id: int, price: Decimal, size: int, at: msgpack.Timestamp
) -> dict[str, Any]:
    """A regular-sale print (condition ``@``) on IEX (``V``), tape C."""
    return {
        "T": "t",
        "S": symbol,
        "i": trade_id,
        "x": "V",
        "p": float(price),
        "s": size,
        "c": ["@"],
        "z": "C",
        "t": at,
    }


def quote(symbol: str, price: Decimal, size: int, at: msgpack.Timestamp) -> dict[str, Any]:
    """The quote around a print: a cent below and above it, its size on each side."""
    return {
        "T": "q",
        "S": symbol,
        "bx": "V",
        "bp": float(price - _CENT),
        "bs": size,
        "ax": "V",
        "ap": float(price + _CENT),
        "as": size,
        "c": ["R"],
        "z": "C",
        "t": at,
    }


def _json_default(value: object) -> object:
    if isinstance(value, msgpack.Timestamp):
        return rfc3339(value.to_unix_nano())
    return str(value)  # an injected odd point still goes out, as text


def _msgpack_default(value: object) -> object:
    return str(value)


def encode(messages: list[Any], fmt: Format) -> bytes | str:
    """One frame's payload: the messages as an array, in the connection's format."""
    if fmt is Format.MSGPACK:
        data: bytes = msgpack.packb(messages, default=_msgpack_default)
        return data
    return json.dumps(messages, default=_json_default, separators=(",", ":"))
