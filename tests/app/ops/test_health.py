"""The service's health read from a real tree on the embedded venue: starting, ready once
reconciled, not ready while the operator halts a symbol (and why), stuck when an actor with
messages waiting handles none, and stopping at once."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from actors.risk import HaltTrading, ResumeTrading
from app.compose import sim_trading
from app.ops.health import Health, Reading, as_json
from config.lotmap import load_lot_map
from runtime import Actor, ActorCell
from sim.replay import generated_session
from supervisors import Supervisor

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, {}


class Hangs(Actor[str]):
    """Blocks forever in its first message: its mailbox fills and nothing is handled."""

    async def handle(self, message: str) -> None:
        await anyio.sleep_forever()


async def _until(health: Health, wanted: Any, *, within: float = 60) -> Reading:
    with anyio.fail_after(within):
        while True:
            reading = await health.read()
            if wanted(reading):
                return reading
            await anyio.sleep(0.02)


async def test_ready_once_reconciled_not_ready_while_halted_and_stopping_at_once(
    tmp_path: Path,
) -> None:
    trading = sim_trading(
        data_dir=tmp_path / "ledger",
        bars=generated_session(seed=11, day=date(2026, 11, 23)),
        lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
        speed=300,
    )
    health = Health(trading, ["grid:TQQQ"], interval=0.05)
    seen: list[Reading] = []
    health.listeners.append(seen.append)
    first = await health.read()
    assert (first.alive, first.ready, first.reasons) == (False, False, ("starting",))
    assert as_json(None)["reasons"] == ["starting"]
    root = Supervisor("root", trading.spec, hooks=trading.hooks)
    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            tg.start_soon(health.run, root, lambda _by: None)
            ready = await _until(health, lambda r: r.ready)
            assert ready.alive
            assert ready.tree_healthy
            assert ready.reasons == ()
            assert ready.summary.startswith("trading: TQQQ ")
            assert "P&L" in ready.summary
            assert health.fresh(5.0)

            risk = trading.cells["risk"].ref
            await risk.request(HaltTrading(symbol="TQQQ"), timeout=30)
            halted = await _until(health, lambda r: not r.ready)
            assert halted.alive
            assert halted.tree_healthy
            assert any(
                reason.startswith("halted by the operator: TQQQ") for reason in halted.reasons
            ), halted.reasons
            assert halted.summary.startswith("not ready (halted by the operator: TQQQ")
            shown = as_json(halted)
            assert shown["ready"] is False
            assert shown["reasons"] == list(halted.reasons)

            await risk.request(ResumeTrading(symbol="TQQQ"), timeout=30)
            await _until(health, lambda r: r.ready)

            health.stopping("SIGTERM")
            assert health.latest is not None
            assert health.latest.stopping
            assert not health.latest.alive
            assert health.latest.reasons == ("stopping",)
            # Later readings stay stopping: the tree stopping is not "starting" again.
            assert (await health.read()).stopping
            root.stop()
            tg.cancel_scope.cancel()
    assert seen, "the listeners heard the readings"
    assert seen[-1].stopping
    assert any(r.ready for r in seen)


async def test_an_actor_that_handles_nothing_with_messages_waiting_is_stuck(
    tmp_path: Path,
) -> None:
    """A real actor blocked in its handler with a message waiting: after ``stall_after`` the
    tree is not healthy and the reading names it; an idle actor never counts as stuck."""
    trading = sim_trading(
        data_dir=tmp_path / "ledger",
        bars=generated_session(seed=11, day=date(2026, 11, 23)),
        lots={"TQQQ": load_lot_map(ROOT / "config/lots/tqqq.csv")},
        speed=300,
    )
    now = [0.0]
    stuck = ActorCell("hangs", Hangs)
    idle = ActorCell("idle", Hangs)
    watched = attrs.evolve(trading, cells={**trading.cells, "hangs": stuck, "idle": idle})
    health = Health(watched, ["grid:TQQQ"], stall_after=30, clock=lambda: now[0])
    root = Supervisor("root", trading.spec, hooks=trading.hooks)
    with anyio.fail_after(300):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await tg.start(stuck.run)
            await tg.start(idle.run)
            health.root = root
            stuck.ref.tell("first")  # taken, and never finished
            stuck.ref.tell("second")  # waits
            await _until(health, lambda r: r.ready)
            now[0] = 29.0
            assert (await health.read()).tree_healthy
            now[0] = 31.0
            reading = await health.read()
            assert not reading.tree_healthy
            assert not reading.ready
            assert reading.reasons == ("hangs stuck",)
            root.stop()
            tg.cancel_scope.cancel()
