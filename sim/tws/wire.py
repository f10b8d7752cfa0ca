"""The TWS API wire format, both directions (ref/ib-wire.md section 1.1).

Every message is a 4-byte big-endian length and then fields, each ended by ``\\0``. The client
says hello with ``API\\0`` and a framed version range; everything after that is framed.

Encoding follows what ib_insync sends and expects: ``None`` is the empty field, booleans are
``1``/``0``, floats ``str(float)``; an "unset" number (IB's ``UNSET_INTEGER``/``UNSET_DOUBLE``) is
the empty field too. Parsing is strict: ``Fields`` hands out one field at a time by type and
``done()`` raises ``ProtocolError`` for a leftover field, as reading past the end does for a
missing one.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from decimal import Decimal

HELLO = b"API\0"
MAX_FRAME = 1 << 24
"""A frame longer than this (16 MiB) is a protocol error, not an allocation."""


class ProtocolError(ValueError):
    """A message that does not follow the protocol: names the message and the field."""


def encode_field(value: object) -> str:
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]  # the type was just checked
    if kind is int or kind is Decimal:
        return str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return "Infinite" if value == float("inf") else str(value)
    return str(value)


def frame(fields: Iterable[object]) -> bytes:
    """One framed message of ``fields``."""
    encoded = [encode_field(field) for field in fields]
    encoded.append("")
    body = "\0".join(encoded).encode()
    return struct.pack(">I", len(body)) + body


class FrameReader:
    """Splits a byte stream into messages (lists of fields), whatever the TCP segmentation."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[list[str]]:
        self._buffer += data
        messages = []
        while len(self._buffer) >= 4:
            (size,) = struct.unpack(">I", self._buffer[:4])
            if size > MAX_FRAME:
                raise ProtocolError(f"a frame of {size} bytes is larger than {MAX_FRAME}")
            if len(self._buffer) < 4 + size:
                break
            body = bytes(self._buffer[4 : 4 + size])
            del self._buffer[: 4 + size]
            text = body.decode(errors="backslashreplace")
            if not text.endswith("\0"):
                raise ProtocolError(f"a frame does not end with a field terminator: {text[-40:]!r}")
            messages.append(text[:-1].split("\0"))
        return messages


class Fields:
    """A strict cursor over one message's fields, for the message called ``name``."""

    def __init__(self, name: str, fields: Sequence[str], start: int = 0) -> None:
        self.name = name
        self._fields = fields
        self._at = start

    @property
    def position(self) -> int:
        return self._at

    def remaining(self) -> int:
        return len(self._fields) - self._at

    def text(self, what: str = "field") -> str:
        if self._at >= len(self._fields):
            raise ProtocolError(
                f"{self.name}: missing field {self._at} ({what}); the message has "
                f"{len(self._fields)}"
            )
        value = self._fields[self._at]
        self._at += 1
        return value

    def integer(self, what: str = "field", *, empty: int | None = None) -> int:
        value = self.optional_integer(what)
        if value is None:
            if empty is None:
                raise ProtocolError(f"{self.name}: field {self._at - 1} ({what}) is empty")
            return empty
        return value

    def optional_integer(self, what: str = "field") -> int | None:
        text = self.text(what)
        if text == "":
            return None
        try:
            return int(text)
        except ValueError:
            raise ProtocolError(
                f"{self.name}: field {self._at - 1} ({what}) is not an integer: {text!r}"
            ) from None

    def number(self, what: str = "field") -> float | None:
        """A number, or None for the empty field (IB's unset)."""
        text = self.text(what)
        if text == "":
            return None
        try:
            return float(text)
        except ValueError:
            raise ProtocolError(
                f"{self.name}: field {self._at - 1} ({what}) is not a number: {text!r}"
            ) from None

    def decimal(self, what: str = "field") -> Decimal | None:
        value = self.number(what)
        return None if value is None else Decimal(repr(value))

    def flag(self, what: str = "field") -> bool:
        text = self.text(what)
        if text in ("", "0"):
            return False
        if text == "1":
            return True
        raise ProtocolError(f"{self.name}: field {self._at - 1} ({what}) is not 0/1: {text!r}")

    def skip(self, count: int, what: str = "fields") -> None:
        for _ in range(count):
            self.text(what)

    def done(self) -> None:
        """Raise if any field is left over."""
        if self._at != len(self._fields):
            leftover = list(self._fields[self._at : self._at + 5])
            raise ProtocolError(
                f"{self.name}: {len(self._fields) - self._at} leftover field(s) from field "
                f"{self._at}: {leftover}"
            )
