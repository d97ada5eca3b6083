"""Pytest fixtures for the fake OpenShock server (registered as a plugin in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.openshock_server import FakeOpenShockServer


@pytest.fixture
async def openshock_server() -> AsyncIterator[FakeOpenShockServer]:
    """A running fake OpenShock server on 127.0.0.1, empty: add users and devices in the test."""
    server = FakeOpenShockServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def prefixed_openshock_server() -> AsyncIterator[FakeOpenShockServer]:
    """The same fake, mounted under /api (as some self-hosted servers are)."""
    server = FakeOpenShockServer(prefix="/api")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
