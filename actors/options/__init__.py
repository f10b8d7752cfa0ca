"""The options bot's pure parts: signals, contract choice, liquidity and sizing."""
