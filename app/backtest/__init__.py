"""Backtests (issue 21): the trading tree on history, recorded (run.py), and its run
directory (artifacts.py)."""
