"""Fixtures for the fake Discord REST API (being written)."""
