"""Options for the sim venue: listed contracts and chains (``sim.options.chain``) and their
quotes and greeks from Black-Scholes-Merton with a smile (``sim.options.pricing``).

Pure modules (no clock reads, no I/O) over ``actors.domain``; docs/options-venue.md.
"""
