"""The journal: the sim venue's books survive the death of the process hosting it."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.domain import BrokerEvent, PlaceOrder, PriceCondition, Side, TimeInForce
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine, EngineError
from sim.journal import Journal, JournalError, open_engine
from tests.sim.killed_child import first_line_then_sigkill

START = datetime(2026, 11, 23, 9, 30, tzinfo=NEW_YORK)
TEN = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)


def close(engine: Engine) -> None:
    journal = engine.recorder
    assert isinstance(journal, Journal)
    journal.close()


def books(engine: Engine) -> dict[str, Any]:
    return {
        "orders": [(ref, attrs.asdict(o)) for ref, o in engine.orders.items()],
        "executions": [attrs.asdict(x) for x in engine.executions],
        "positions": {s: attrs.asdict(p) for s, p in engine.positions.items()},
        "last": engine.last,
        "last_trade_at": engine.last_trade_at,
        "next_ids": (engine.next_order_id, engine.next_perm_id, engine.next_exec_seq),
    }


def buy(ref: str, qty: int = 100, tif: TimeInForce = TimeInForce.GTC) -> PlaceOrder:
    return PlaceOrder(
        ref=ref, symbol="TQQQ", side=Side.BUY, quantity=qty, limit=Decimal("99.50"), tif=tif
    )


# -- a random session: steps applied to an engine with a clock that trades move on --------------

prices = st.integers(9_500, 10_500).map(lambda cents: Decimal(cents).scaleb(-2))


@attrs.frozen
class Placing:
    order: PlaceOrder


@attrs.frozen
class Cancelling:
    ref: str


@attrs.frozen
class Trading:
    price: Decimal
    size: int
    after: timedelta


@attrs.frozen
class Fault:
    kind: str


refs = st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"])
conditions = st.none() | st.builds(PriceCondition, trigger=prices, is_more=st.booleans())
orders = st.builds(
    PlaceOrder,
    ref=refs,
    symbol=st.just("TQQQ"),
    side=st.sampled_from(Side),
    quantity=st.integers(1, 300),
    limit=st.none() | prices,
    tif=st.sampled_from(TimeInForce),
    outside_rth=st.booleans(),
    condition=conditions,
)
# Mostly a quarter-minute, sometimes hours or days: sessions open and close, DAY orders expire,
# and the weekend and Thanksgiving come round.
gaps = st.sampled_from([15, 15, 15, 15, 7 * 60, 3 * 3600, 24 * 3600, 72 * 3600]).map(
    lambda s: timedelta(seconds=s)
)
trading = st.builds(Trading, price=prices, size=st.integers(1, 400), after=gaps)
steps = st.one_of(
    st.builds(Placing, orders),
    trading,
    st.builds(Placing, orders),
    trading,
    st.builds(Cancelling, refs),
    st.builds(Fault, st.sampled_from(["restart", "reject_next", "duplicate_next_fill"])),
)


def drive(engine: Engine, session: list[Any], clock: datetime = START) -> datetime:
    for step in session:
        match step:
            case Placing(order=order):
                engine.place(order, clock)
            case Cancelling(ref=ref):
                if ref in engine.orders:
                    engine.cancel(ref, "test")
            case Trading(price=price, size=size, after=after):
                clock += after
                engine.on_trade("TQQQ", price, size, clock)
            case Fault(kind="restart"):
                engine.restart()
            case Fault(kind="reject_next"):
                engine.reject_next()
            case Fault(kind="duplicate_next_fill"):
                engine.duplicate_next_fill()
            case _:
                raise AssertionError(step)
    return clock


@settings(max_examples=60, deadline=None)
@given(
    session=st.lists(steps, min_size=10, max_size=60),
    further=st.lists(steps, min_size=1, max_size=6),
)
def test_a_reopened_journal_has_the_same_books_and_behaves_the_same(
    tmp_path_factory: pytest.TempPathFactory, session: list[Any], further: list[Any]
) -> None:
    """Orders, executions, positions, last prices and next ids survive; further inputs give
    the same events on the original and on the reopened engine, and are journalled too."""
    path = tmp_path_factory.mktemp("journal") / "venue.jsonl"
    original = open_engine(path)
    clock = drive(original, session)
    close(original)
    original.recorder = original.durable = None
    reopened = open_engine(path)
    assert books(reopened) == books(original)
    assert reopened.listeners == []
    seen: tuple[list[BrokerEvent], list[BrokerEvent]] = ([], [])
    original.listeners.append(seen[0].append)
    reopened.listeners.append(seen[1].append)
    drive(original, further, clock)
    drive(reopened, further, clock)
    assert seen[0] == seen[1]
    assert books(reopened) == books(original)
    close(reopened)
    again = open_engine(path)
    assert books(again) == books(original)
    close(again)


def test_no_event_leaves_the_venue_before_the_journal_is_on_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a real broker's books: every acknowledgement, fill and cancel is told only after an
    fsync of the journal that holds its input; a trade that fills nothing costs no fsync."""
    path = tmp_path / "venue.jsonl"
    engine = open_engine(path)
    journal = engine.recorder
    assert isinstance(journal, Journal)
    synced: list[int] = []  # the journal's size at each fsync
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    told: list[tuple[str, bool]] = []
    engine.listeners.append(
        lambda event: told.append((type(event).__name__, synced[-1] == path.stat().st_size))
    )
    engine.place(buy("a", tif=TimeInForce.DAY), TEN)
    engine.on_trade("TQQQ", Decimal("101.00"), 30, datetime.fromisoformat("2026-11-23T15:01Z"))
    quiet = len(synced)
    engine.on_trade("TQQQ", Decimal("99.40"), 30, datetime.fromisoformat("2026-11-23T15:02Z"))
    engine.cancel("a")
    close(engine)
    assert told == [
        ("OrderAccepted", True),
        ("OrderFilled", True),
        ("OrderCancelled", True),
    ]
    assert quiet == 1, "a trade that filled nothing was fsynced"
    assert len(synced) == journal.syncs - 1 == 3  # and one when the journal was begun


def test_a_new_journal_begins_with_how_the_engine_was_made(tmp_path: Path) -> None:
    """The file is created with a begin line; the engine starts at the given order id."""
    path = tmp_path / "venue.jsonl"
    engine = open_engine(path, first_order_id=500)
    close(engine)
    assert path.read_text() == '["begin",500]\n'
    reopened = open_engine(path, first_order_id=500)
    assert reopened.next_order_id == 500
    close(reopened)


def test_entries_are_compact_and_on_disk_before_the_input_takes_effect(tmp_path: Path) -> None:
    """Each input is a JSON array line, written before any event it causes is emitted."""
    path = tmp_path / "venue.jsonl"
    engine = open_engine(path)
    lines_at_event: list[int] = []
    engine.listeners.append(lambda _: lines_at_event.append(len(path.read_text().splitlines())))
    engine.place(buy("a", tif=TimeInForce.DAY), TEN)
    engine.on_trade("TQQQ", Decimal("99.40"), 30, datetime.fromisoformat("2026-11-23T15:01Z"))
    engine.restart()
    close(engine)
    assert lines_at_event == [2, 3, 4]
    assert path.read_text().splitlines()[1:] == [
        '["place",{"condition":null,"limit":"99.50","oca":null,"outside_rth":true,'
        '"parent":null,"quantity":100,"ref":"a","side":"BUY","stop":null,"symbol":"TQQQ",'
        '"tif":"DAY"},"2026-11-23T10:00:00-05:00","",[]]',
        '["trade","TQQQ","99.40",30,"2026-11-23T10:01:00-05:00"]',
        '["restart","venue restarted"]',
    ]


def test_a_refused_call_is_not_journalled(tmp_path: Path) -> None:
    """An unknown cancel raises and leaves the journal as it was."""
    path = tmp_path / "venue.jsonl"
    engine = open_engine(path)
    with pytest.raises(EngineError):
        engine.cancel("nope")
    close(engine)
    assert path.read_text() == '["begin",1]\n'


def test_a_torn_last_line_is_cut_away_and_the_rest_loads(tmp_path: Path) -> None:
    """A kill mid-write leaves a line without its newline: its input never took effect."""
    path = tmp_path / "venue.jsonl"
    engine = open_engine(path)
    engine.place(buy("a"), TEN)
    engine.place(buy("b"), TEN)
    close(engine)
    whole = path.read_bytes()
    with path.open("ab") as file:
        file.write(b'["trade","TQQQ","99.00",100,"2026-11-23T10:0')
    reopened = open_engine(path)
    assert list(reopened.orders) == ["a", "b"]
    assert reopened.executions == []
    assert path.read_bytes() == whole
    reopened.on_trade("TQQQ", Decimal("99.00"), 100, TEN)
    close(reopened)
    again = open_engine(path)
    assert [x.ref for x in again.executions] == ["a"]
    close(again)


def test_a_torn_begin_line_starts_the_journal_afresh(tmp_path: Path) -> None:
    """Killed while creating the journal: it begins again."""
    path = tmp_path / "venue.jsonl"
    path.write_bytes(b'["beg')
    engine = open_engine(path)
    close(engine)
    assert path.read_text() == '["begin",1]\n'


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b'["trade","TQQQ","99.00",100]', "at least length 5"),
        (b'["trade","TQQQ","99.00",100,"2026-11-23T10:00:00"]', "timezone"),
        (b'["refund","TQQQ"]', "Invalid value 'refund'"),
        (b"", "an empty line"),
        (b'["trade","TQQQ","99.0', "truncated"),
        (b'["restart","x"]junk', "malformed"),
        (b'["begin",1]', "a second begin entry"),
        (b'["cancel","zzz","x"]', "the engine refuses this input: no order 'zzz'"),
    ],
)
def test_a_corrupt_middle_line_is_an_error_naming_the_file_and_line(
    tmp_path: Path, line: bytes, problem: str
) -> None:
    """Anything but a torn last line is refused: the books would be wrong."""
    path = tmp_path / "venue.jsonl"
    engine = open_engine(path)
    engine.place(buy("a"), TEN)
    close(engine)
    with path.open("ab") as file:
        file.write(line + b"\n" + b'["restart","venue restarted"]\n')
    with pytest.raises(JournalError, match=f"^{path}:3: ") as raised:
        open_engine(path)
    assert problem in str(raised.value)


def test_a_journal_must_start_with_its_begin_line(tmp_path: Path) -> None:
    """A file of inputs without the begin line is not a journal."""
    path = tmp_path / "venue.jsonl"
    path.write_text('["restart","x"]\n')
    with pytest.raises(JournalError, match=r":1: the journal must start with its begin entry"):
        open_engine(path)


def test_reopening_with_other_order_ids_is_refused(tmp_path: Path) -> None:
    """The ids a journal's engine hands out are fixed when it begins."""
    path = tmp_path / "venue.jsonl"
    close(open_engine(path))
    with pytest.raises(JournalError, match="starts order ids at 1, not 7"):
        open_engine(path, first_order_id=7)


CHILD = """
import sys
from datetime import datetime
from decimal import Decimal
from actors.domain import Side, TimeInForce
from actors.messages import PlaceOrder
from sim.journal import open_engine
from actors.domain.sessions import NEW_YORK

engine = open_engine(sys.argv[1])
ten = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)
for i in range(20):
    order = PlaceOrder(
        ref=f"o{i}", symbol="TQQQ", side=Side.BUY, quantity=100, limit=Decimal("99.50"),
        tif=TimeInForce.DAY if i % 2 else TimeInForce.GTC,
    )
    engine.place(order, ten)
engine.on_trade("TQQQ", Decimal("99.00"), 1234, ten)
engine.restart()
print(engine.next_order_id, engine.next_exec_seq, engine.positions["TQQQ"].quantity, flush=True)
sys.stdin.read()
"""


def test_the_books_survive_a_sigkill_of_the_process_hosting_the_venue(tmp_path: Path) -> None:
    """No close, no exit handlers: what the venue did before the kill is what it reopens with."""
    path = tmp_path / "venue.jsonl"
    reported = first_line_then_sigkill(CHILD, str(path))
    engine = open_engine(path)
    assert reported == ["21", "14", "1234"]
    assert [engine.next_order_id, engine.next_exec_seq] == [21, 14]
    assert engine.positions["TQQQ"].quantity == 1234
    assert [o.ref for o in engine.open_orders()] == ["o12", "o14", "o16", "o18"]
    close(engine)
