"""A campaign of simulated scenarios, run in worker processes, summed up in one report."""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence

from . import harness
from .plan import scenario


def _one(seed: int) -> tuple[int, harness.Outcome | None, str]:
    try:
        return seed, harness.run(seed), ""
    except harness.ChaosFailure as exc:
        return seed, None, str(exc)


def simulate(seeds: Sequence[int], *, jobs: int, progress: bool = True) -> tuple[int, list[str]]:
    """Run the scenarios of ``seeds``; print the summary; return (scenarios run, failures)."""
    faults: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    failures: list[str] = []
    started = time.monotonic()
    done = 0
    with contextlib.ExitStack() as stack:
        results: Iterable[tuple[int, harness.Outcome | None, str]] = map(_one, seeds)
        if jobs > 1:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(jobs))
            results = pool.imap_unordered(_one, seeds, chunksize=4)
        for seed, outcome, failure in results:
            done += 1
            if outcome is None:
                failures.append(failure)
                print(failure, file=sys.stderr, flush=True)
            else:
                faults.update(outcome.faults)
                fired.update(outcome.fired)
                totals.update(
                    steps=outcome.steps,
                    checks=outcome.checks,
                    settles=outcome.settles,
                    processes=outcome.processes,
                    stops=len(outcome.stops),
                    executions=outcome.executions,
                    orders=outcome.orders,
                )
                for kind, count in scenario(seed).shape().items():
                    faults[kind] += count
            if progress and done % 100 == 0:
                rate = done / (time.monotonic() - started)
                print(
                    f"  {done}/{len(seeds)} scenarios ({rate:.1f}/s)", file=sys.stderr, flush=True
                )
    elapsed = time.monotonic() - started
    print(
        f"deterministic simulation: {done} scenarios, {sum(faults.values())} faults, "
        f"{totals['checks']} invariant checks, {len(failures)} failed ({elapsed:.0f} s)"
    )
    print(
        f"  {totals['steps']} replay steps, {totals['settles']} settle points, "
        f"{totals['orders']} orders, {totals['executions']} executions, "
        f"{totals['processes']} service starts, {totals['stops']} stops on restart intensity"
    )
    print("  faults injected: " + ", ".join(f"{k} {n}" for k, n in sorted(faults.items())))
    print("  armed faults fired: " + ", ".join(f"{k} {n}" for k, n in sorted(fired.items())))
    return done, failures
