"""Parameter sweeps (``actorctl sweep``, ``docs/sweep.md``): the cartesian grid of a config's
strategy parameters (``grid``), each combination one deterministic backtest, run as Dask tasks
on a local or a remote cluster (``run``), their results as Parquet and an offline HTML page
(``page``)."""
