"""The simulated outside world: matching engine and venue servers."""
