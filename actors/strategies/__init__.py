"""Trading strategies as pure logic."""
