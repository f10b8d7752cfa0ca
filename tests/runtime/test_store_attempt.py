"""``Txn.attempt``: a nested transaction inside one write, kept or undone on its own, on a real
disk, for the store's inline and threaded writers."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.store import Store, StoreError, StoreFull, Txn

pytestmark = pytest.mark.anyio


def store(path: Path, **kwargs: object) -> Store:
    return Store(path, databases=("fills",), schema_version=1, **kwargs)  # type: ignore[arg-type]


def put(key: str, value: bytes = b"1") -> object:
    def write(txn: Txn) -> bool:
        return txn.put("fills", key.encode(), value)

    return write


def fails_after(key: str) -> object:
    def write(txn: Txn) -> None:
        txn.put("fills", key.encode(), b"1")
        raise ValueError(f"refused {key}")

    return write


def keys(txn: Txn) -> list[str]:
    return [k.decode() for k, _ in txn.items("fills")]


@pytest.mark.parametrize("inline", [False, True])
async def test_an_attempt_that_raises_is_undone_alone(tmp_path: Path, inline: bool) -> None:
    """Three attempts in one write: the one that raises keeps nothing, the others are kept, all
    in one commit; the exception reaches the caller unchanged."""
    errors: list[str] = []

    def batch(txn: Txn) -> list[object]:
        results: list[object] = []
        for attempt in (put("a"), fails_after("b"), put("c")):
            try:
                results.append(txn.attempt(attempt))  # type: ignore[arg-type]
            except ValueError as exc:
                errors.append(str(exc))
        return results

    with store(tmp_path, inline=inline) as s:
        assert await s.write(batch) == [True, True]
        assert s.commits == 1
    assert errors == ["refused b"]
    with store(tmp_path) as s:
        assert s.read(keys) == ["a", "c"]


async def test_an_attempt_that_does_not_fit_is_store_full_and_the_rest_is_kept(
    tmp_path: Path,
) -> None:
    """A nested write too big for the map raises ``StoreFull`` (not LMDB's own error); what the
    outer transaction wrote besides is committed."""
    outcome: list[object] = []

    def batch(txn: Txn) -> None:
        txn.attempt(put("small"))  # type: ignore[arg-type]
        try:
            txn.attempt(put("huge", b"x" * 400_000))  # type: ignore[arg-type]
        except StoreFull as exc:
            outcome.append(exc)

    with store(tmp_path, map_size=256 * 1024) as s:
        await s.write(batch)
        assert s.read(keys) == ["small"]
    assert len(outcome) == 1
    assert isinstance(outcome[0], StoreFull)


async def test_an_attempt_needs_a_write_transaction(tmp_path: Path) -> None:
    """A read transaction cannot nest a write: ``StoreError`` naming the store."""
    with store(tmp_path) as s, pytest.raises(StoreError, match=str(tmp_path)):
        s.read(lambda txn: txn.attempt(put("a")))  # type: ignore[arg-type]
