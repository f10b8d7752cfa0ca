"""Backtests (issue 21): the figures of a run (``app.backtest.metrics``) and its self-contained
HTML report (``app.backtest.report``). ``docs/backtest.md`` defines every figure."""
