"""What every group of the bench suite shares: rows, same-run ratios and interleaved rounds.

A group measures variants interleaved in rounds (A, B, C, then B, C, A, ...) in one process, so
that a noisy neighbour hits every variant alike. Each row reports the median over rounds of each
round's p50 / p99 / p99.9 (or of its rate), the max over rounds of each round's max, and its
ratio to a baseline row of the same group: computed within each round, then medianed
(ref/perf-baselines.md section 1).

bench/ is not a package: the scripts import this module by name (Python puts the script's
folder on ``sys.path``), and ``bench/suite.py`` runs the groups.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import attrs

Unit = Literal["us", "ms", "/s", "count"]


@attrs.frozen(kw_only=True)
class Target:
    """A SPEC 13 target on one figure of a row: its ratio to ``baseline``, its p50 or p99 (in
    the row's unit) or its ``value`` (a rate)."""

    on: Literal["ratio", "p50", "p99", "value"]
    op: Literal["<=", ">="]
    limit: float
    baseline: str | None = None

    def figure(self, row: Row) -> float | None:
        if self.on == "ratio":
            return row.ratios.get(self.baseline or "")
        return {"p50": row.p50, "p99": row.p99, "value": row.value}[self.on]

    def met(self, row: Row) -> bool | None:
        figure = self.figure(row)
        if figure is None:
            return None
        return figure <= self.limit if self.op == "<=" else figure >= self.limit

    def text(self) -> str:
        what = f"x {self.baseline}" if self.on == "ratio" else self.on
        return f"{what} {self.op} {self.limit:g}"


@attrs.frozen(kw_only=True)
class Row:
    """One figure of the suite. Latency and durations fill p50/p99/p999/max (in ``unit``); rates
    fill ``value`` (per second). ``ratios`` maps baseline rows of the same group to this row's
    ratio to each (p50 over p50, or rate over rate)."""

    group: str
    name: str
    unit: Unit
    p50: float | None = None
    p99: float | None = None
    p999: float | None = None
    max: float | None = None
    value: float | None = None
    ratios: dict[str, float] = attrs.field(factory=dict)
    targets: tuple[Target, ...] = ()
    rounds: int = 0
    samples: int = 0
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.group}: {self.name}"

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self, recurse=True)
        data["targets"] = [{**attrs.asdict(t), "met": t.met(self)} for t in self.targets]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Row:
        fields = dict(data)
        fields["targets"] = tuple(
            Target(**{k: v for k, v in t.items() if k != "met"}) for t in data.get("targets", ())
        )
        return cls(**fields)


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted sequence."""
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def spread(samples: Iterable[float], scale: float = 1.0) -> dict[str, float]:
    """p50 / p99 / p99.9 / max of one round's samples, each divided by ``scale``."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("a round produced no samples")
    return {
        "p50": percentile(ordered, 0.50) / scale,
        "p99": percentile(ordered, 0.99) / scale,
        "p999": percentile(ordered, 0.999) / scale,
        "max": ordered[-1] / scale,
        "n": float(len(ordered)),
    }


def interleave(
    variants: Mapping[str, Callable[[], Any]], rounds: int, *, on_run: Callable[[str], None] = print
) -> dict[str, list[Any]]:
    """Run every variant once per round, the order rotated each round; each variant's results
    by round."""
    names = list(variants)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            on_run(f"  round {r + 1}/{rounds}: {name}")
            results[name].append(variants[name]())
    return results


def latency_row(
    group: str,
    name: str,
    per_round: Sequence[dict[str, float]],
    *,
    unit: Unit = "us",
    baselines: Mapping[str, Sequence[dict[str, float]]] | None = None,
    targets: Sequence[Target] = (),
    note: str = "",
) -> Row:
    """A row from per-round ``spread`` dicts; each ratio is p50 over that baseline's p50, round
    by round, medianed."""
    ratios = {
        name: statistics.median(
            row["p50"] / base["p50"] for row, base in zip(per_round, base_rounds, strict=True)
        )
        for name, base_rounds in (baselines or {}).items()
    }
    return Row(
        group=group,
        name=name,
        unit=unit,
        p50=statistics.median(r["p50"] for r in per_round),
        p99=statistics.median(r["p99"] for r in per_round),
        p999=statistics.median(r["p999"] for r in per_round),
        max=max(r["max"] for r in per_round),
        ratios=ratios,
        targets=tuple(targets),
        rounds=len(per_round),
        samples=int(sum(r["n"] for r in per_round)),
        note=note,
    )


def rate_row(
    group: str,
    name: str,
    per_round: Sequence[float],
    *,
    baselines: Mapping[str, Sequence[float]] | None = None,
    targets: Sequence[Target] = (),
    note: str = "",
) -> Row:
    """A row of a rate (per second): the median over rounds, and each ratio to a baseline's
    rate round by round, medianed."""
    ratios = {
        name: statistics.median(
            value / base for value, base in zip(per_round, base_rounds, strict=True)
        )
        for name, base_rounds in (baselines or {}).items()
    }
    return Row(
        group=group,
        name=name,
        unit="/s",
        value=statistics.median(per_round),
        ratios=ratios,
        targets=tuple(targets),
        rounds=len(per_round),
        samples=len(per_round),
        note=note,
    )


def figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit in ("/s", "count"):
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"


def render(rows: Sequence[Row]) -> str:
    """The suite's table: one section per group, each row with its ratios and targets."""
    lines = []
    group = None
    header = (
        f"{'figure':62} {'unit':>4} {'p50':>9} {'p99':>9} {'p99.9':>9} {'value':>10}  "
        "ratio to baseline (same run) / target"
    )
    for row in rows:
        if row.group != group:
            group = row.group
            lines += ["", f"== {group}", header]
        rate = figure(row.value, row.unit)
        ratios = "; ".join(f"{v:.2f}x {k}" for k, v in row.ratios.items())
        verdicts = [
            f"{t.text()}: {'met' if t.met(row) else 'MISSED'}"
            for t in row.targets
            if t.met(row) is not None
        ]
        tail = "  ".join(x for x in (ratios, *verdicts) if x)
        name = row.name if len(row.name) <= 62 else row.name[:59] + "..."
        unit = "" if row.unit in ("/s", "count") else row.unit
        lines.append(
            f"{name:62} {unit:>4} {figure(row.p50, row.unit):>9} {figure(row.p99, row.unit):>9} "
            f"{figure(row.p999, row.unit):>9} {rate:>10}  {tail}"
        )
        if row.note and row.unit != "/s":
            lines.append(f"{'':66}{row.note}")
    return "\n".join(lines)


def write_rows(path: Path, rows: Sequence[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([row.to_json() for row in rows], indent=2) + "\n")


def standalone(
    doc: str | None,
    suite_rows: Callable[..., list[Row]],
    *,
    rounds: int,
    quick: str,
    argv: list[str] | None,
) -> int:
    """``main`` of a group's script: ``[--rounds N] [--quick] [--json PATH]``, the group's
    rows printed as the suite prints them and written as JSON."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = suite_rows(rounds=args.rounds, quick=args.quick, log=lambda _line: None)
    print(render(rows))
    if args.json:
        write_rows(args.json, rows)
    return 0
