"""``python -m app.chaos``: run a chaos campaign and print what ran.

    python -m app.chaos --seeds 200 --kills 5 --bad-input   # the CI set (``make chaos``)
    python -m app.chaos --seeds 10000 --jobs 2               # a long campaign
    python -m app.chaos --seed 1234                          # rerun one scenario, verbosely
    python -m app.chaos --seeds 100 --strategies momentum    # every scenario with one set

A failure prints the one-line command that reproduces it; the exit status is 1 if anything
failed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import harness
from .campaign import simulate
from .plan import StrategySet, scenario


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.chaos", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=200, help="simulated scenarios to run")
    parser.add_argument("--first", type=int, default=0, help="the first scenario's seed")
    parser.add_argument("--seed", type=int, help="run this one scenario and describe it")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--strategies",
        choices=[str(s) for s in StrategySet],
        help="run every scenario with this strategy set rather than the one its seed draws",
    )
    parser.add_argument("--kills", type=int, default=0, help="SIGKILLs of actorctl start")
    parser.add_argument("--kill-seed", type=int, default=20261122, help="the kills' seed")
    parser.add_argument(
        "--bad-input", action="store_true", help="bad config, bad lot map, map full, 2nd start"
    )
    args = parser.parse_args(argv)
    failures: list[str] = []
    forced = StrategySet(args.strategies) if args.strategies else None
    if args.seed is not None:
        plan = scenario(args.seed, forced)
        print(
            f"scenario {args.seed}: sessions {', '.join(map(str, plan.days))}, "
            f"{len(plan.bars)} bars, gaps {[str(g) for g in plan.gaps]}, thin bars {plan.thin}"
        )
        print(f"  strategies: {plan.strategies}" + (f" ({plan.bar})" if plan.bar else ""))
        for fault in plan.faults:
            print(f"  {fault}")
        try:
            outcome = harness.run(args.seed, plan=plan)
        except harness.ChaosFailure as exc:
            print(exc, file=sys.stderr)
            return 1
        print(outcome)
        return 0
    if args.seeds:
        _, failed = simulate(
            range(args.first, args.first + args.seeds), jobs=args.jobs, strategies=forced
        )
        failures += failed
    if args.kills or args.bad_input:
        from . import process

        folder = Path(tempfile.mkdtemp(prefix="chaos-process-"))
        before = len(failures)
        if args.kills:
            try:
                result = process.run_campaign(
                    kills=args.kills, seed=args.kill_seed, workdir=folder / "kills"
                )
                print(f"process chaos: {result}")
            except process.ProcessChaosFailure as exc:
                failures.append(str(exc))
                print(exc, file=sys.stderr)
        if args.bad_input:
            try:
                result = process.run_bad_input(workdir=folder / "bad-input")
                print(f"bad input: {result}")
            except process.ProcessChaosFailure as exc:
                failures.append(str(exc))
                print(exc, file=sys.stderr)
        if len(failures) > before:
            print(f"the services' logs and data are kept in {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    if failures:
        print(f"chaos: {len(failures)} failed; each message above ends with its reproduction")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
