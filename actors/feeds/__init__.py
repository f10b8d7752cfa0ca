"""Market data feeds: one adapter module per vendor SDK, the only place that SDK is imported."""
