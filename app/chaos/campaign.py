"""A campaign of simulated scenarios, run in worker processes, summed up in one report."""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence

from . import harness
from .plan import StrategySet, scenario


def _one(job: tuple[int, StrategySet | None]) -> tuple[int, harness.Outcome | None, str]:
    seed, strategies = job
    try:
        return seed, harness.run(seed, plan=scenario(seed, strategies)), ""
    except harness.ChaosFailure as exc:
        return seed, None, str(exc)


def simulate(
    seeds: Sequence[int],
    *,
    jobs: int,
    progress: bool = True,
    strategies: StrategySet | None = None,
) -> tuple[int, list[str]]:
    """Run the scenarios of ``seeds`` (each with ``strategies`` rather than the set it draws,
    if given); print the summary; return (scenarios run, failures)."""
    work = [(seed, strategies) for seed in seeds]
    faults: Counter[str] = Counter()
    fired: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    sets: Counter[str] = Counter()
    """Scenarios per strategy set."""
    by_strategy: Counter[str] = Counter()
    """Orders and executions per strategy, and the scenarios in which each traded."""
    brackets: Counter[str] = Counter()
    """What the options strategy's brackets did, and the scenarios in which it bought."""
    failures: list[str] = []
    started = time.monotonic()
    done = 0
    with contextlib.ExitStack() as stack:
        results: Iterable[tuple[int, harness.Outcome | None, str]] = map(_one, work)
        if jobs > 1:
            pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(jobs))
            results = pool.imap_unordered(_one, work, chunksize=4)
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
                sets[outcome.strategies] += 1
                by_strategy.update(outcome.by_strategy)
                brackets.update(outcome.options)
                if outcome.options["entries filled"]:
                    brackets["scenarios with an entry filled"] += 1
                for key, count in outcome.by_strategy.items():
                    if key.startswith("executions:") and count:
                        by_strategy[f"traded:{key.partition(':')[2]}"] += 1
                for kind, count in scenario(seed, strategies).shape().items():
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
    print("  strategy sets: " + ", ".join(f"{k} {n}" for k, n in sorted(sets.items())))
    names = sorted({key.partition(":")[2] for key in by_strategy})
    print(
        "  per strategy: "
        + "; ".join(
            f"{name} {by_strategy[f'orders:{name}']} orders, "
            f"{by_strategy[f'executions:{name}']} executions, "
            f"traded in {by_strategy[f'traded:{name}']} scenarios"
            for name in names
        )
    )
    if brackets:
        print("  option brackets: " + ", ".join(f"{k} {n}" for k, n in sorted(brackets.items())))
    print("  armed faults fired: " + ", ".join(f"{k} {n}" for k, n in sorted(fired.items())))
    return done, failures
