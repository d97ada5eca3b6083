"""HubConnection events and state: validation, subscribers, device status, shocker lists."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import pytest

from bot.openshock.hub import HubConnection
from bot.openshock.models import (
    ControlLogEvent,
    DeviceSnapshotApplied,
    DeviceState,
    DeviceStatusChanged,
    DeviceUpdate,
    DeviceUpdateType,
    HubEvent,
    OtaInstallProgress,
    OtaUpdateTask,
    ShockersRefreshed,
    Welcome,
)
from tests.fakes.openshock_server import FakeOpenShockServer
from tests.openshock.conftest import MakeHub, Recorder, World, eventually


def log_arguments(world: World, **overrides: Any) -> list[Any]:
    sender = {
        "id": str(world.bob.id),
        "name": "Bob",
        "image": "https://example.org/bob.png",
        "customName": "Discord: dan",
        "connectionId": "abc",
        "additionalItems": {},
    }
    entry = {
        "shocker": {"id": str(world.collar.id), "name": "Collar"},
        "type": 2,
        "intensity": 10,
        "duration": 500,
        "executedAt": "2024-05-01T12:00:00.123Z",
    }
    return [{**sender, **overrides.get("sender", {})}, [{**entry, **overrides.get("entry", {})}]]


async def connected(make_hub: MakeHub, world: World, recorder: Recorder) -> HubConnection:
    hub = make_hub(world.alice, start=False)
    hub.subscribe(recorder)
    hub.start()
    await hub.wait_connected(5)
    return hub


async def test_events_are_validated_into_models(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = await connected(make_hub, world, recorder)
    await openshock_server.push(world.alice, "Log", *log_arguments(world))
    log = await hub.next_event(ControlLogEvent, timeout=5)
    assert log.sender.custom_name == "Discord: dan"
    assert log.logs[0].shocker.id == world.collar.id
    assert log.logs[0].executed_at.year == 2024

    await openshock_server.push(world.alice, "OtaInstallProgress", str(world.hub.id), 7, 4, 0.5)
    progress = await hub.next_event(OtaInstallProgress, timeout=5)
    assert progress.task is OtaUpdateTask.FLASHING_APPLICATION
    assert progress.percent == 50.0
    welcome = recorder.of_type(Welcome)[0]
    assert welcome.connection_id == hub.connection_id


async def test_unknown_enum_values_do_not_break_events(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = await connected(make_hub, world, recorder)
    await openshock_server.push(world.alice, "DeviceUpdate", str(world.hub.id), 42)
    update = await hub.next_event(DeviceUpdate, timeout=5)
    assert update.type == 42
    assert update.type.name == "UNKNOWN_42"
    assert isinstance(update.type, DeviceUpdateType)


async def test_a_subscriber_that_raises_does_not_stop_following_events(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def explode(event: HubEvent) -> None:
        if isinstance(event, DeviceUpdate):
            raise RuntimeError("subscriber bug")

    hub = make_hub(world.alice, start=False)
    hub.subscribe(explode)
    hub.subscribe(recorder)
    hub.start()
    await hub.wait_connected(5)
    for update_type in (1, 2):
        await openshock_server.push(world.alice, "DeviceUpdate", str(world.hub.id), update_type)
    await eventually(lambda: len(recorder.of_type(DeviceUpdate)) == 2, what="both updates")
    await openshock_server.push(world.alice, "Log", *log_arguments(world))
    await hub.next_event(ControlLogEvent, timeout=5)
    assert "subscriber bug" in caplog.text
    assert len(openshock_server.connections_of(world.alice)) == 1


async def test_a_slow_subscriber_does_not_block_the_connection(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    release = asyncio.Event()

    async def stuck(event: HubEvent) -> None:
        await release.wait()

    hub = make_hub(world.alice, start=False)
    hub.subscribe(stuck)
    hub.start()
    await hub.wait_connected(5)
    await openshock_server.push(world.alice, "Log", *log_arguments(world))
    await hub.next_event(ControlLogEvent, timeout=5)
    release.set()


async def test_unsubscribe_stops_delivery(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = make_hub(world.alice, start=False)
    unsubscribe = hub.subscribe(recorder)
    hub.start()
    await hub.wait_connected(5)
    await unsubscribe()
    await openshock_server.push(world.alice, "Log", *log_arguments(world))
    await hub.next_event(ControlLogEvent, timeout=5)
    assert recorder.of_type(ControlLogEvent) == []


@pytest.mark.parametrize(
    "arguments",
    [
        ["not a sender", []],
        [{"id": "not-a-uuid", "name": "x"}, []],
        ["only one argument"],
    ],
)
async def test_a_malformed_log_is_skipped_and_logged(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    arguments: list[Any],
) -> None:
    hub = await connected(make_hub, world, recorder)
    await openshock_server.push(world.alice, "Log", *arguments)
    await openshock_server.push(world.alice, "Log", *log_arguments(world))
    await hub.next_event(ControlLogEvent, timeout=5)
    await eventually(lambda: len(recorder.of_type(ControlLogEvent)) == 1, what="the good Log")
    assert "Skipping a malformed Log event" in caplog.text
    assert len(openshock_server.connections_of(world.alice)) == 1


async def test_a_malformed_frame_is_skipped_and_logged(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = await connected(make_hub, world, recorder)
    caplog.set_level(logging.WARNING)
    good = f'{{"type":1,"target":"DeviceUpdate","arguments":["{world.hub.id}",1]}}\x1e'
    await openshock_server.push_raw(world.alice, '{not json\x1e{"type":99}\x1e[1,2]\x1e' + good)
    await hub.next_event(DeviceUpdate, timeout=5)
    assert caplog.text.count("Skipping a malformed hub message") == 3
    assert len(openshock_server.connections_of(world.alice)) == 1


async def test_unknown_event_targets_are_ignored(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = await connected(make_hub, world, recorder)
    await openshock_server.push(world.alice, "SomethingNew", 1, 2, 3)
    await openshock_server.push(world.alice, "DeviceUpdate", str(world.hub.id), 1)
    await hub.next_event(DeviceUpdate, timeout=5)
    assert hub.connected


# --- Device status -------------------------------------------------------------------------------


async def test_live_status_changes_carry_the_previous_state(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = await connected(make_hub, world, recorder)
    await eventually(lambda: bool(recorder.of_type(DeviceStatusChanged)), what="the snapshot")
    first = recorder.of_type(DeviceStatusChanged)[0]
    assert first.from_snapshot and first.previous is None and not first.is_change

    await openshock_server.set_device_online(world.hub, False)
    change = await hub.next_event(DeviceStatusChanged, timeout=5)
    assert change.previous == DeviceState(online=True, firmware_version="1.4.0")
    assert not change.current.online and change.is_change and not change.from_snapshot
    assert not hub.device_state(world.hub.id).online

    await openshock_server.set_device_online(world.hub, True, firmware="1.5.0")
    change = await hub.next_event(DeviceStatusChanged, timeout=5)
    assert change.is_change and hub.devices[world.hub.id].firmware_version == "1.5.0"


async def test_after_reconnect_devices_missing_from_the_snapshot_are_offline(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    second = openshock_server.add_device(world.alice, "Second hub")
    hub = await connected(make_hub, world, recorder)
    await eventually(lambda: len(recorder.of_type(DeviceStatusChanged)) == 2, what="snapshot")
    assert hub.device_state(second.id).online

    second.online = False  # goes offline while we are away: no event reaches us
    recorder.events.clear()
    await openshock_server.drop_connections(world.alice)
    await openshock_server.wait_for_connections(world.alice, 2)
    await eventually(lambda: len(recorder.of_type(DeviceStatusChanged)) == 2, what="snapshot")

    assert hub.device_state(world.hub.id).online
    assert not hub.device_state(second.id).online
    changes = {c.device_id: c for c in recorder.of_type(DeviceStatusChanged)}
    assert changes[second.id].is_change and changes[second.id].from_snapshot
    assert not changes[world.hub.id].is_change  # the snapshot repeats what we knew


async def test_each_snapshot_is_followed_by_a_marker_listing_the_online_devices(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    """Subscribers that keep device state of their own (e.g. across restarts) learn from the
    marker which devices the snapshot left out; live status changes bring no marker."""
    second = openshock_server.add_device(world.alice, "Second hub", online=False)
    hub = await connected(make_hub, world, recorder)
    await eventually(lambda: bool(recorder.of_type(DeviceSnapshotApplied)), what="the marker")
    (marker,) = recorder.of_type(DeviceSnapshotApplied)
    assert marker.online == {world.hub.id}
    kinds = [type(e) for e in recorder.events]
    assert kinds.index(DeviceSnapshotApplied) > kinds.index(DeviceStatusChanged)

    await openshock_server.set_device_online(second, True)
    await hub.next_event(DeviceStatusChanged, timeout=5)
    assert len(recorder.of_type(DeviceSnapshotApplied)) == 1
    world.hub.online = False  # silently, while the connection is down
    recorder.events.clear()
    await openshock_server.drop_connections(world.alice)
    await eventually(lambda: bool(recorder.of_type(DeviceSnapshotApplied)), what="the marker")
    (marker,) = recorder.of_type(DeviceSnapshotApplied)
    assert marker.online == {second.id}


async def test_reboot_is_observed_as_offline_then_online(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = await connected(make_hub, world, recorder)
    went_offline = hub.expect(DeviceStatusChanged, lambda c: not c.current.online)
    came_back = hub.expect(DeviceStatusChanged, lambda c: c.is_change and c.current.online)
    await hub.reboot(world.hub.id)
    async with asyncio.timeout(5):
        await went_offline
        await came_back
    assert [c.method for c in openshock_server.device_commands] == ["Reboot"]


# --- Shocker lists -------------------------------------------------------------------------------


async def test_shockers_are_loaded_after_connecting(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = make_hub(world.bob)
    refreshed = hub.expect(ShockersRefreshed)
    async with asyncio.timeout(5):
        await refreshed
    assert hub.shockers is not None
    (collar,) = hub.shockers.all()
    assert collar.id == world.collar.id and collar.owner_name == "Alice"
    assert collar.share is not None and not collar.share.shock and collar.share.vibrate
    assert collar.limits is not None and collar.limits.intensity == 30
    assert not collar.is_own


async def test_a_device_update_refreshes_the_shocker_list(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = await connected(make_hub, world, recorder)
    await eventually(lambda: hub.shockers is not None, what="the first refresh")
    new = openshock_server.add_shocker(world.hub, "Anklet")
    refreshed = hub.expect(ShockersRefreshed, lambda e: e.shockers.get(new.id) is not None)
    await openshock_server.push_device_update(world.hub, 2)
    async with asyncio.timeout(5):
        await refreshed
    assert hub.shockers is not None and hub.shockers.get(new.id) is not None


async def test_the_shocker_list_is_refreshed_after_a_reconnect(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    hub = await connected(make_hub, world, recorder)
    await eventually(lambda: hub.shockers is not None, what="the first refresh")
    world.cuff.paused = True  # changed while we were away (a missed DeviceUpdate)
    refreshed = hub.expect(ShockersRefreshed, lambda e: bool(e.shockers.get(world.cuff.id)))
    await openshock_server.drop_connections(world.alice)
    async with asyncio.timeout(5):
        event = await refreshed
    cuff = event.shockers.get(world.cuff.id)
    assert cuff is not None and cuff.is_paused


async def test_a_failed_refresh_is_logged_and_the_connection_stays(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hub = await connected(make_hub, world, recorder)
    await eventually(lambda: hub.shockers is not None, what="the first refresh")
    openshock_server.fail_rest("/1/shockers/own", 500)
    new = openshock_server.add_shocker(world.hub, "Anklet")
    await openshock_server.push_device_update(world.hub)
    await eventually(lambda: "Could not refresh the shockers" in caplog.text, what="the log")
    assert hub.connected
    await eventually(lambda: hub.shockers is not None and hub.shockers.get(new.id) is not None)


async def test_a_failed_first_refresh_is_retried_until_it_succeeds_without_a_reconnect(
    openshock_server: FakeOpenShockServer,
    world: World,
    make_hub: MakeHub,
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    openshock_server.fail_rest("/1/shockers/own", 500, times=2)
    hub = await connected(make_hub, world, recorder)
    await eventually(lambda: hub.shockers is not None, what="the lists, after two failures")
    assert hub.shockers is not None and hub.shockers.get(world.cuff.id) is not None
    assert len(openshock_server.requests_to("/1/shockers/own")) == 3
    assert len(openshock_server.connections_of(world.alice)) == 1  # no reconnect needed
    assert hub.connected
    assert caplog.text.count("Could not refresh the shockers") == 2
    await eventually(lambda: len(recorder.of_type(ShockersRefreshed)) == 1, what="the event")


async def test_a_rate_limited_first_refresh_is_retried(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    openshock_server.fail_rest("/1/shockers/shared", 429, times=5)  # no Retry-After: no wait
    hub = await connected(make_hub, world, recorder)
    await eventually(lambda: hub.shockers is not None, what="the lists, after 429s")
    assert len(openshock_server.connections_of(world.alice)) == 1


async def test_refresh_retries_end_with_the_connection(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub, recorder: Recorder
) -> None:
    openshock_server.fail_rest("/1/shockers/own", 500, times=1_000_000)
    hub = await connected(make_hub, world, recorder)
    await openshock_server.wait_until(
        lambda: len(openshock_server.requests_to("/1/shockers/own")) >= 3, what="retries"
    )
    await hub.stop()
    attempts = len(openshock_server.requests_to("/1/shockers/own"))
    await asyncio.sleep(0.1)  # many backoff periods (FAST caps them at 20 ms)
    assert len(openshock_server.requests_to("/1/shockers/own")) == attempts


def test_device_state_of_an_unknown_device_is_offline() -> None:
    hub = HubConnection("http://127.0.0.1:1", "token")
    assert hub.device_state(UUID(int=1)) == DeviceState(online=False)
    assert hub.shockers is None and not hub.connected
