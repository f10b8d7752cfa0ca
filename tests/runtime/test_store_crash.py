"""SIGKILL a process in the middle of writing, many times: no acknowledged write is lost, the
store always reopens, and the directory lock dies with the process."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.store import Durability, Store

WRITER = """
import sys, anyio
from runtime.store import Durability, Store

path, policy, start = sys.argv[1], Durability(sys.argv[2]), int(sys.argv[3])

async def writer(store, first, step):
    n = first
    while True:
        key = n.to_bytes(8, "big")
        await store.write(lambda txn, key=key: txn.put("fills", key, b"x" * 200))
        print(n, flush=True)  # acknowledged: the write returned
        n += step

async def main():
    with Store(path, databases=("fills",), schema_version=1, durability=policy) as store:
        print("ready", flush=True)
        async with anyio.create_task_group() as tg:
            for w in range(8):
                tg.start_soon(writer, store, start + w, 8)

anyio.run(main)
"""

ROUNDS = int(os.environ.get("ACTORTRADE_CRASH_ROUNDS", "8"))


def stored_keys(path: Path) -> set[int]:
    with Store(path, databases=("fills",), schema_version=1) as store:
        return store.read(lambda txn: {int.from_bytes(k, "big") for k, _ in txn.items("fills")})


@pytest.mark.parametrize("policy", list(Durability))
def test_no_acknowledged_write_is_lost_when_the_process_is_killed(
    tmp_path: Path, policy: Durability
) -> None:
    """Each round: write from 8 tasks, SIGKILL at a random moment, reopen, check."""
    rng = random.Random(f"{policy}")
    acknowledged: set[int] = set()
    for round_ in range(ROUNDS):
        start = (round_ + 1) * 1_000_000
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), policy.value, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.02, 0.3))
        child.send_signal(signal.SIGKILL)
        out, _ = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL
        acknowledged.update(int(line) for line in out.split())
        missing = acknowledged - stored_keys(tmp_path)
        assert not missing, f"round {round_}: {len(missing)} acknowledged writes lost"
    assert len(acknowledged) > ROUNDS  # the writers really wrote before each kill
