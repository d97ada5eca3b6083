"""A server that floods the hub connection: what queues for a slow subscriber stays bounded,
superseded events are dropped oldest first, and no ``Log`` is ever dropped (reading from the
server waits for room instead)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.openshock.hub import HubConnection
from bot.openshock.manager import HubAccount, HubManager
from bot.openshock.models import ControlLogEvent, HubEvent, OtaInstallProgress
from tests.fakes.openshock_server import FakeOpenShockServer
from tests.openshock.conftest import FAST, MakeHub, World, eventually
from tests.openshock.test_hub_events import log_arguments

BACKLOG = 10


def number_of(event: HubEvent) -> int | None:
    """The number a flood record was made with (``log_record``, ``progress_record``)."""
    if isinstance(event, ControlLogEvent) and event.sender.custom_name:
        return int(event.sender.custom_name.removeprefix("log "))
    if isinstance(event, OtaInstallProgress):
        return round(event.progress * 1000)
    return None


class Blocked:
    """A subscriber stuck on its first event until released, then recording everything."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.events: list[HubEvent] = []

    async def __call__(self, event: HubEvent) -> None:
        await self.release.wait()
        self.events.append(event)

    def logs(self) -> list[str | None]:
        return [e.sender.custom_name for e in self.events if isinstance(e, ControlLogEvent)]


def log_record(world: World, number: int) -> dict[str, Any]:
    arguments = log_arguments(world, sender={"customName": f"log {number}"})
    return {"type": 1, "target": "Log", "arguments": arguments}


def progress_record(world: World, number: int) -> dict[str, Any]:
    arguments = [str(world.hub.id), 1, 4, number / 1000]
    return {"type": 1, "target": "OtaInstallProgress", "arguments": arguments}


async def flood(
    server: FakeOpenShockServer, world: World, records: list[dict[str, Any]], per_message: int
) -> None:
    """Send ``records`` over Alice's connection, ``per_message`` SignalR records per WebSocket
    message (the server side blocks once the bot stops reading)."""
    (connection,) = server.open_connections(world.alice)
    for start in range(0, len(records), per_message):
        await connection.send(*records[start : start + per_message])


async def quiet_hub(make_hub: MakeHub, world: World, subscriber: Blocked) -> HubConnection:
    """Connected, with the shocker lists loaded, before ``subscriber`` starts listening."""
    hub = make_hub(world.alice, event_backlog=BACKLOG)
    await hub.wait_connected(5)
    await eventually(lambda: hub.shockers is not None, what="the shocker lists")
    hub.subscribe(subscriber)
    return hub


def backlog_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "bot.openshock.event_bus" and r.levelno == logging.WARNING
    ]


async def test_superseded_events_are_dropped_oldest_first_without_pausing_reading(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscriber = Blocked()
    hub = await quiet_hub(make_hub, world, subscriber)
    confirmed = hub.expect(ControlLogEvent)
    records = [progress_record(world, n) for n in range(1, 1001)] + [log_record(world, 1)]
    await flood(openshock_server, world, records, per_message=100)

    # Reading went on past 1,000 progress events while the subscriber was stuck: the Log
    # behind them reached its waiter, and no more than the bound queued up meanwhile.
    await asyncio.wait_for(confirmed, 5)
    assert hub.event_backlog <= BACKLOG
    (warning,) = backlog_warnings(caplog)  # one line for the whole flood, not one per event
    assert "dropped the oldest superseded events" in warning
    assert "OtaInstallProgress" in warning

    subscriber.release.set()
    await eventually(lambda: subscriber.logs() == ["log 1"], what="the Log")
    progress = [e.progress for e in subscriber.events if isinstance(e, OtaInstallProgress)]
    # At most the bound (and the one being delivered) survive, the newest among them.
    assert len(progress) <= BACKLOG + 1
    assert progress[-1] == 1.0
    assert progress == sorted(progress)
    assert len(backlog_warnings(caplog)) == 1


async def test_a_flood_of_logs_pauses_reading_and_loses_none(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscriber = Blocked()
    hub = await quiet_hub(make_hub, world, subscriber)
    read: list[str | None] = []

    def count(event: ControlLogEvent) -> bool:
        read.append(event.sender.custom_name)
        return False

    counter = hub.expect(ControlLogEvent, count)  # sees every Log the connection reads
    pushing = asyncio.create_task(
        flood(openshock_server, world, [log_record(world, n) for n in range(300)], 50)
    )
    try:
        await eventually(lambda: backlog_warnings(caplog) != [], what="the back-pressure warning")
        (warning,) = backlog_warnings(caplog)
        assert "paused reading from the server" in warning
        # Reading stopped at the bound: one Log being delivered, the bound queued, one waiting.
        assert len(read) <= BACKLOG + 2
        assert hub.event_backlog <= BACKLOG
        assert hub.connected

        subscriber.release.set()
        await eventually(lambda: len(subscriber.logs()) == 300, what="every Log")
        await pushing
    finally:
        subscriber.release.set()
        counter.cancel()
    assert subscriber.logs() == [f"log {n}" for n in range(300)]  # none lost, in order
    assert hub.event_backlog == 0
    assert len(backlog_warnings(caplog)) == 1  # the rest of the flood waits for the interval


async def test_a_subscriber_leaving_while_reading_waits_for_it_lets_reading_go_on(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    subscriber = Blocked()
    hub = make_hub(world.alice, event_backlog=BACKLOG)
    await hub.wait_connected(5)
    await eventually(lambda: hub.shockers is not None, what="the shocker lists")
    unsubscribe = hub.subscribe(subscriber)
    last = hub.expect(ControlLogEvent, lambda e: e.sender.custom_name == "log 99")
    pushing = asyncio.create_task(
        flood(openshock_server, world, [log_record(world, n) for n in range(100)], 10)
    )
    await eventually(lambda: hub.event_backlog == BACKLOG, what="a full queue")
    assert not last.done()
    await unsubscribe()
    await asyncio.wait_for(last, 5)  # reading went on to the end of the flood
    await pushing
    assert subscriber.events == []


@pytest.fixture
async def slow_manager() -> AsyncIterator[tuple[HubManager, list[tuple[int, HubEvent]]]]:
    received: list[tuple[int, HubEvent]] = []

    async def store_slowly(account_id: int, event: HubEvent) -> None:
        await asyncio.sleep(0.001)  # a storage write
        received.append((account_id, event))

    manager = HubManager(on_event=store_slowly, timings=FAST, event_backlog=BACKLOG)
    yield manager, received
    await manager.stop_all()


async def test_the_managers_event_callback_gets_every_log_of_a_flood(
    openshock_server: FakeOpenShockServer,
    world: World,
    slow_manager: tuple[HubManager, list[tuple[int, HubEvent]]],
) -> None:
    manager, received = slow_manager
    hub = await manager.start(HubAccount(7, openshock_server.base_url, world.alice.token))
    await hub.wait_connected(5)
    records = [
        record
        for n in range(200)
        for record in (progress_record(world, n), progress_record(world, n), log_record(world, n))
    ]
    await flood(openshock_server, world, records, per_message=60)

    def logs() -> list[str | None]:
        return [e.sender.custom_name for _, e in received if isinstance(e, ControlLogEvent)]

    await eventually(lambda: len(logs()) == 200, what="every Log")
    assert logs() == [f"log {n}" for n in range(200)]
    assert {account_id for account_id, _ in received} == {7}
    # What was kept of the progress events arrived in order with the Logs around them.
    numbers = [n for _, event in received if (n := number_of(event)) is not None]
    assert numbers == sorted(numbers)
