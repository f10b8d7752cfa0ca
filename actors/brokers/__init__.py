"""Broker ports: what the broker actor drives (the in-process sim venue now; IB later)."""
