"""Backtests (issue 21): the trading tree on history, recorded (``run.py``), its run directory
(``artifacts.py``), the figures computed from it (``metrics.py``) and the offline HTML report
(``report.py``, ``templates/``)."""
