"""Fixtures for the fake OpenShock server (being written)."""
