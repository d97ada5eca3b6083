"""Shared set-up for the OpenShock client tests: a small world on the fake server, fast timings,
hub connections that are always stopped, and a check that none of our tasks outlive a test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import pytest

from bot.openshock.event_bus import DEFAULT_EVENT_BACKLOG
from bot.openshock.hub import HubConnection, HubTimings, InvalidCallback
from tests.fakes.openshock_server import FakeDevice, FakeOpenShockServer, FakeShocker, FakeUser

# Tiny backoffs so that reconnect tests take milliseconds; the rest stays realistic.
FAST = HubTimings(
    backoff_initial=0.005,
    backoff_max=0.02,
    stable_after=60.0,
    connect_timeout=2.0,
    invoke_timeout=2.0,
)


class World:
    """Alice owns a hub with a collar (shared with Bob: no shock, max 30 %, 1 s) and a cuff."""

    def __init__(self, server: FakeOpenShockServer) -> None:
        self.alice: FakeUser = server.add_user("Alice")
        self.bob: FakeUser = server.add_user("Bob")
        self.hub: FakeDevice = server.add_device(self.alice, "Alice's hub")
        self.collar: FakeShocker = server.add_shocker(self.hub, "Collar")
        self.cuff: FakeShocker = server.add_shocker(self.hub, "Cuff")
        self.share = server.share_shocker(
            self.collar, self.bob, shock=False, max_intensity=30, max_duration=1000
        )


@pytest.fixture
def world(openshock_server: FakeOpenShockServer) -> World:
    return World(openshock_server)


class MakeHub(Protocol):
    def __call__(
        self,
        user: FakeUser | str,
        *,
        base_url: str | None = None,
        timings: HubTimings = FAST,
        on_invalid: InvalidCallback | None = None,
        start: bool = True,
        event_backlog: int = DEFAULT_EVENT_BACKLOG,
    ) -> HubConnection: ...


@pytest.fixture
async def make_hub(openshock_server: FakeOpenShockServer) -> AsyncIterator[MakeHub]:
    """Build (and start) a HubConnection for a fake user or a raw token; stopped at teardown."""
    hubs: list[HubConnection] = []

    def make(
        user: FakeUser | str,
        *,
        base_url: str | None = None,
        timings: HubTimings = FAST,
        on_invalid: InvalidCallback | None = None,
        start: bool = True,
        event_backlog: int = DEFAULT_EVENT_BACKLOG,
    ) -> HubConnection:
        token = user if isinstance(user, str) else user.token
        hub = HubConnection(
            base_url or openshock_server.base_url,
            token,
            timings=timings,
            on_invalid=on_invalid,
            name="test",
            event_backlog=event_backlog,
        )
        hubs.append(hub)
        if start:
            hub.start()
        return hub

    yield make
    for hub in hubs:
        await hub.stop()


class Recorder:
    """An async event callback that keeps what it receives."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, event: Any) -> None:
        self.events.append(event)

    def of_type(self, event_type: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, event_type)]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


async def eventually(
    predicate: Callable[[], bool],
    timeout: float = 5.0,  # noqa: ASYNC109 - fails the test with a message saying what
    what: str = "a condition",
) -> None:
    """Poll a client-side condition: for state (or a subscriber's record) that has no event of
    its own to wait on. Returns as soon as it holds."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():  # noqa: ASYNC110 - nothing to wait on but the state itself
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


@pytest.fixture(autouse=True)
async def no_leaked_client_tasks() -> AsyncIterator[None]:
    """Every task the OpenShock client started (they are all named openshock-…) is gone."""
    yield
    for _ in range(3):
        await asyncio.sleep(0)
    leaked = [
        t.get_name()
        for t in asyncio.all_tasks()
        if t.get_name().startswith("openshock-") and not t.done()
    ]
    assert leaked == [], f"tasks left running: {leaked}"
