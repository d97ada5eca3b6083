"""HubManager: one connection per account, callbacks keyed by account id, clean shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.openshock.hub import HubState
from bot.openshock.manager import HubAccount, HubManager
from bot.openshock.models import DeviceUpdate, HubEvent
from tests.fakes.openshock_server import FakeOpenShockServer
from tests.openshock.conftest import FAST, World, eventually


class Calls:
    def __init__(self) -> None:
        self.events: list[tuple[int, HubEvent]] = []
        self.invalid: list[tuple[int, str]] = []
        self.invalid_seen = asyncio.Event()

    async def on_event(self, account_id: int, event: HubEvent) -> None:
        self.events.append((account_id, event))

    async def on_invalid(self, account_id: int, reason: str) -> None:
        self.invalid.append((account_id, reason))
        self.invalid_seen.set()


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
async def manager(calls: Calls) -> AsyncIterator[HubManager]:
    manager = HubManager(on_event=calls.on_event, on_invalid=calls.on_invalid, timings=FAST)
    yield manager
    await manager.stop_all()


def account(server: FakeOpenShockServer, account_id: int, token: str) -> HubAccount:
    return HubAccount(account_id=account_id, api_url=server.base_url, token=token)


async def test_events_are_forwarded_with_the_account_id(
    openshock_server: FakeOpenShockServer, world: World, manager: HubManager, calls: Calls
) -> None:
    alice = await manager.start(account(openshock_server, 1, world.alice.token))
    bob = await manager.start(account(openshock_server, 2, world.bob.token))
    await alice.wait_connected(5)
    await bob.wait_connected(5)
    await openshock_server.push_device_update(world.hub)

    def updates() -> set[int]:
        return {i for i, e in calls.events if isinstance(e, DeviceUpdate)}

    await eventually(lambda: updates() == {1, 2}, what="both accounts' updates")
    assert manager.get(1) is alice and manager.get(2) is bob and len(manager) == 2


async def test_an_invalid_token_is_reported_with_the_account_id(
    openshock_server: FakeOpenShockServer, world: World, manager: HubManager, calls: Calls
) -> None:
    connection = await manager.start(account(openshock_server, 7, "bad token"))
    await asyncio.wait_for(calls.invalid_seen.wait(), 5)
    assert calls.invalid[0][0] == 7
    assert connection.state is HubState.INVALID
    assert manager.get(7) is connection  # kept, so its state can be shown


async def test_start_replaces_and_stop_removes(
    openshock_server: FakeOpenShockServer, world: World, manager: HubManager
) -> None:
    first = await manager.start(account(openshock_server, 1, world.alice.token))
    await first.wait_connected(5)
    second = await manager.start(account(openshock_server, 1, world.alice.token))
    assert first.state is HubState.STOPPED and manager.get(1) is second
    await second.wait_connected(5)
    await manager.stop(1)
    assert manager.get(1) is None and second.state is HubState.STOPPED
    await manager.stop(1)  # stopping twice is harmless


async def test_stop_all_closes_connections_and_the_session(
    openshock_server: FakeOpenShockServer, world: World, calls: Calls
) -> None:
    manager = HubManager(on_event=calls.on_event, timings=FAST)
    connection = await manager.start(account(openshock_server, 1, world.alice.token))
    await connection.wait_connected(5)
    await connection.refresh_shockers()
    session: Any = connection.rest._session
    await manager.stop_all()
    assert session.closed
    assert len(manager) == 0
    (server_side,) = openshock_server.connections_of(world.alice)
    await asyncio.wait_for(server_side.closed.wait(), 5)


def test_the_token_is_not_in_the_account_repr() -> None:
    assert "s3cret" not in repr(HubAccount(1, "https://api.openshock.app", "s3cret-token"))
