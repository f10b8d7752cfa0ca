"""Actors: the trading runtime's concrete actors (the demo tree for now)."""
