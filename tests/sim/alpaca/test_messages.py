"""The stream's messages without a socket: strict parsing, subscriptions, points, encodings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.domain.sessions import NEW_YORK
from sim.alpaca import messages as m

symbols = st.lists(st.sampled_from(["TQQQ", "SQQQ", "SPY", "QQQ", "*"]), max_size=4)
requests = st.dictionaries(st.sampled_from(m.CHANNELS), symbols, max_size=4)


@given(st.binary(max_size=64))
def test_any_bytes_parse_to_an_action_or_a_400(data: bytes) -> None:
    """Garbage never escapes as anything but the 400 the client is answered with."""
    code = None
    try:
        m.parse_action(data)
    except m.StreamError as exc:
        code = exc.code
    assert code in (None, 400)


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never used in msgpack
        "{not json",
        msgpack.packb([{"action": "auth"}]),
        json.dumps("auth"),
        json.dumps({"key": "k", "secret": "s"}),
        json.dumps({"action": "listen"}),
        json.dumps({"action": "auth", "key": "k"}),
        json.dumps({"action": "subscribe", "trades": "TQQQ"}),
        json.dumps({"action": "subscribe", "trades": [1]}),
    ],
)
def test_malformed_actions_are_invalid_syntax(data: bytes | str) -> None:
    """Undecodable, not an object, no or unknown action, ill-typed fields: all 400."""
    with pytest.raises(m.StreamError) as caught:
        m.parse_action(data)
    assert caught.value.code == 400


def test_actions_parse_from_msgpack_and_from_json_in_either_frame_type() -> None:
    """alpaca-py sends msgpack binary frames; a JSON client text (or binary) frames."""
    auth = {"action": "auth", "key": "k", "secret": "s"}
    for data in (msgpack.packb(auth), json.dumps(auth), json.dumps(auth).encode()):
        assert m.parse_action(data) == m.Auth(key="k", secret="s")
    subscribe = {"trades": ["TQQQ"], "action": "subscribe", "bars": []}
    assert m.parse_action(msgpack.packb(subscribe)) == m.Subscribe(
        channels={"trades": ("TQQQ",), "bars": ()}
    )


def test_the_secret_stays_out_of_an_auths_repr() -> None:
    """Actions get logged; the secret must not be."""
    assert "hunter2" not in repr(m.Auth(key="k", secret="hunter2"))


def test_an_unknown_channel_is_410_and_corrections_follow_trades() -> None:
    """orderbooks are not on stock feeds; corrections and cancelErrors are not asked for, they
    come with trades (and are echoed with them)."""
    empty = m.Subscription()
    for channel in ("orderbooks", "news", "corrections"):
        with pytest.raises(m.StreamError) as caught:
            empty.add({channel: ["TQQQ"]})
        assert caught.value.code == 410
    reply = empty.add({"trades": ["TQQQ", "SQQQ"], "quotes": ["TQQQ"]}).message()
    assert reply == {
        "T": "subscription",
        "trades": ["TQQQ", "SQQQ"],
        "quotes": ["TQQQ"],
        "bars": [],
        "updatedBars": [],
        "dailyBars": [],
        "statuses": [],
        "lulds": [],
        "corrections": ["TQQQ", "SQQQ"],
        "cancelErrors": ["TQQQ", "SQQQ"],
    }


@given(requests, requests)
def test_subscribing_then_unsubscribing_the_same_leaves_what_was_there_before(
    before: dict[str, list[str]], extra: dict[str, list[str]]
) -> None:
    """add/remove are set operations per channel that keep the order first asked for."""
    start = m.Subscription().add(before)
    grown = start.add(extra)
    for channel in m.CHANNELS:
        assert set(grown.channels[channel]) == set(before.get(channel, [])) | set(
            extra.get(channel, [])
        )
        assert len(set(grown.channels[channel])) == len(grown.channels[channel])
    shrunk = grown.remove(extra)
    for channel in m.CHANNELS:
        assert set(shrunk.channels[channel]) == set(before.get(channel, [])) - set(
            extra.get(channel, [])
        )


def test_the_wildcard_wants_every_symbol_and_counts_as_one() -> None:
    """``*`` on a channel matches any symbol; the symbol limit counts trade+quote symbols."""
    sub = m.Subscription().add({"trades": ["*"], "quotes": ["TQQQ", "SQQQ"], "bars": ["SPY"]})
    assert sub.wants("trades", "ANYTHING")
    assert sub.wants("quotes", "TQQQ")
    assert not sub.wants("quotes", "SPY")
    assert not sub.wants("bars", "TQQQ")
    assert sub.symbol_count() == 3


@given(st.integers(min_value=0, max_value=2**62))
def test_rfc3339_keeps_every_nanosecond(nanoseconds: int) -> None:
    """JSON clients get the same instant msgpack clients get, to the nanosecond."""
    text = m.rfc3339(nanoseconds)
    assert text.endswith("Z")
    whole, fraction = text[:-1].split(".")
    assert len(fraction) == 9
    at = datetime.fromisoformat(whole).replace(tzinfo=UTC)
    assert int(at.timestamp()) * 1_000_000_000 + int(fraction) == nanoseconds


def test_timestamps_are_utc_instants_whatever_the_zone() -> None:
    """New York 10:00 on 23 Nov 2026 is 15:00 UTC; naive times are refused."""
    at = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=NEW_YORK)
    stamp = m.timestamp(at)
    assert stamp.to_datetime() == datetime(2026, 11, 23, 15, 0, 0, 123456, tzinfo=UTC)
    assert stamp.to_unix_nano() % 1000 == 0
    with pytest.raises(ValueError, match="naive"):
        m.timestamp(datetime(2026, 11, 23, 10, 0))


def test_points_encode_to_msgpack_timestamps_or_rfc3339_strings() -> None:
    """The same trade: ``t`` is ext type -1 in msgpack, a string in JSON."""
    at = m.timestamp(datetime(2026, 11, 23, 15, 0, 1, tzinfo=UTC) + timedelta(microseconds=5))
    trade = m.trade("TQQQ", 7, Decimal("50.05"), 100, at)
    quote = m.quote("TQQQ", Decimal("50.05"), 100, at)
    packed = m.encode([trade, quote], m.Format.MSGPACK)
    assert isinstance(packed, bytes)
    assert b"\xd7\xff" in packed  # fixext 8 of type -1: a 64-bit msgpack Timestamp
    assert isinstance(msgpack.unpackb(packed)[0]["t"], msgpack.Timestamp)
    assert msgpack.unpackb(packed) == [trade, quote]
    text = m.encode([trade, quote], m.Format.JSON)
    assert isinstance(text, str)
    decoded = json.loads(text)
    assert decoded[0] == {**trade, "t": "2026-11-23T15:00:01.000005000Z"}
    assert (decoded[1]["bp"], decoded[1]["ap"]) == (50.04, 50.06)


def test_the_format_follows_the_content_type() -> None:
    """msgpack only when asked for (alpaca-py always asks); JSON is the default."""
    assert m.Format.for_content_type("application/msgpack") is m.Format.MSGPACK
    assert m.Format.for_content_type("Application/MsgPack; charset=x") is m.Format.MSGPACK
    assert m.Format.for_content_type("application/json") is m.Format.JSON
    assert m.Format.for_content_type(None) is m.Format.JSON
