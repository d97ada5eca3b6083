"""`EventBus.expect`: waiters get the next matching event of their type; a claiming waiter
takes the event, so one event answers at most one claiming waiter (the oldest it matches)."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from bot.openshock.event_bus import EventBus
from bot.openshock.event_parsing import PASS_THROUGH_EVENTS
from bot.openshock.models import ControlLogEvent, HubEvent, ShockerDirectory, ShockersRefreshed

COLLAR, CUFF = uuid4(), uuid4()


def log_of(shocker: object) -> HubEvent:
    sender = {"id": str(uuid4()), "name": "Bob", "connectionId": "abc"}
    entry = {
        "shocker": {"id": str(shocker), "name": "Collar"},
        "type": 2,
        "intensity": 10,
        "duration": 500,
        "executedAt": "2024-05-01T12:00:00Z",
    }
    return PASS_THROUGH_EVENTS["Log"]([sender, [entry]])


def on(shocker: object) -> object:
    return lambda e: any(log.shocker.id == shocker for log in e.logs)


async def test_one_event_answers_the_oldest_claiming_waiter_only() -> None:
    bus = EventBus("test")
    first = bus.expect(ControlLogEvent, on(COLLAR), claims=True)
    second = bus.expect(ControlLogEvent, on(COLLAR), claims=True)
    elsewhere = bus.expect(ControlLogEvent, on(CUFF), claims=True)
    watching = bus.expect(ControlLogEvent)  # not claiming: sees every Log
    event = log_of(COLLAR)
    await bus.publish(event)
    assert first.done() and first.result() is event
    assert not second.done() and not elsewhere.done()
    assert watching.done() and watching.result() is event
    later = log_of(COLLAR)
    await bus.publish(later)
    assert second.result() is later and not elsewhere.done()
    await bus.close()
    assert elsewhere.cancelled()


async def test_a_cancelled_claiming_waiter_leaves_the_event_to_the_next() -> None:
    bus = EventBus("test")
    gone = bus.expect(ControlLogEvent, claims=True)
    waiting = bus.expect(ControlLogEvent, claims=True)
    gone.cancel()
    await asyncio.sleep(0)  # its done callback takes it off
    event = log_of(COLLAR)
    await bus.publish(event)
    assert waiting.result() is event
    await bus.close()


async def test_waiters_get_only_their_type_and_are_let_go_once_done() -> None:
    bus = EventBus("test")
    refreshed = bus.expect(ShockersRefreshed)
    logged = bus.expect(ControlLogEvent)
    await bus.publish(log_of(COLLAR))
    assert logged.done() and not refreshed.done()
    await bus.publish(ShockersRefreshed(shockers=ShockerDirectory()))
    assert refreshed.done()
    await asyncio.sleep(0)
    assert bus._waiters == {} and bus._claiming == {}
    await bus.close()


async def test_a_subscriber_gets_only_the_events_it_wants_in_order() -> None:
    bus = EventBus("test")
    got: list[HubEvent] = []
    arrived = asyncio.Event()

    async def callback(event: HubEvent) -> None:
        got.append(event)
        arrived.set()

    unsubscribe = bus.subscribe(callback, wants=lambda e: not isinstance(e, ControlLogEvent))
    everything: list[HubEvent] = []

    async def all_of_them(event: HubEvent) -> None:
        everything.append(event)

    unsubscribe_all = bus.subscribe(all_of_them)
    refreshed = ShockersRefreshed(shockers=ShockerDirectory())
    logged = log_of(COLLAR)
    await bus.publish(logged)
    bus.publish_nowait(refreshed)
    await asyncio.wait_for(arrived.wait(), 5)
    for _ in range(3):
        await asyncio.sleep(0)
    assert got == [refreshed]
    assert everything == [logged, refreshed]
    await unsubscribe()
    await unsubscribe_all()
    await bus.close()
