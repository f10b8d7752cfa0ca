"""Typed configuration: schema, loader, shipped defaults and lot maps."""
