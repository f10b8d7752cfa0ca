"""History fetched from brokers into the bar cache (``actorctl data fetch``): ``fetch``."""
