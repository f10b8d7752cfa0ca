"""The TWS API socket face of the sim venue: a server the unmodified ib_insync client connects
to over loopback and trades against, backed by ``sim.engine.Engine``."""
