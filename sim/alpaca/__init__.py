"""The Alpaca market-data face of the sim venue: the v2 stock stream (``/v2/{feed}``, JSON or
msgpack) and the historical bars endpoint (``GET /v2/stocks/bars``) on one port, for the
unmodified alpaca-py client, backed by ``sim.engine.Engine``'s trades."""
