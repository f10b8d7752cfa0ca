"""Chaos and deterministic simulation: seeded scenarios of faults run against the whole trading
tree (``harness``), the invariants they must keep (``invariants``), and the process-level
campaign that SIGKILLs ``actorctl start`` (``process``). ``python -m app.chaos`` runs a
campaign; ``docs/chaos.md`` describes the fault model and what is guaranteed."""
