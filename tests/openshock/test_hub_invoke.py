"""Invoking hub methods: completions, errors, timeouts, and the server's control rules."""

from __future__ import annotations

import asyncio

import pytest

from bot.openshock.errors import (
    HubConnectionLost,
    HubInvocationFailed,
    HubInvocationTimeout,
    HubNotConnected,
)
from bot.openshock.hub import HubConnection
from bot.openshock.models import Control, ControlLogEvent, ControlType, OtaInstallStarted
from tests.fakes.openshock_server import FakeOpenShockServer, FakeShocker, FakeUser
from tests.openshock.conftest import MakeHub, World


def vibrate(shocker: FakeShocker, intensity: int = 50, duration: int = 2000) -> Control:
    return Control(id=shocker.id, type=ControlType.VIBRATE, intensity=intensity, duration=duration)


async def ready(make_hub: MakeHub, user: FakeUser) -> HubConnection:
    hub = make_hub(user)
    await hub.wait_connected(5)
    return hub


async def test_control_succeeds_and_is_confirmed_by_a_log_with_our_connection_id(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = await ready(make_hub, world.alice)
    confirmed = hub.expect(ControlLogEvent, lambda e: e.sender.connection_id == hub.connection_id)
    await hub.control([vibrate(world.cuff)], "Discord: dan")
    async with asyncio.timeout(5):
        log = await confirmed
    assert log.sender.custom_name == "Discord: dan"
    assert log.logs[0].type is ControlType.VIBRATE
    invocation = await openshock_server.wait_for_invocation("ControlV2")
    assert invocation.arguments == [
        [
            {
                "id": str(world.cuff.id),
                "type": 2,
                "intensity": 50,
                "duration": 2000,
                "exclusive": False,
            }
        ],
        "Discord: dan",
    ]


async def test_each_invocation_on_a_connection_has_its_own_id(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    """Unique on the connection, as SignalR asks (its own clients count from 1)."""
    hub = await ready(make_hub, world.alice)
    for _ in range(3):
        await hub.control([vibrate(world.cuff)], "Discord: dan")
    ids = [i.invocation_id for i in openshock_server.invocations if i.target == "ControlV2"]
    assert len(ids) == 3 and len(set(ids)) == 3 and None not in ids


async def test_custom_name_is_cut_to_64_characters(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = await ready(make_hub, world.alice)
    await hub.control([vibrate(world.cuff)], "n" * 100)
    invocation = await openshock_server.wait_for_invocation("ControlV2")
    assert invocation.arguments[1] == "n" * 64


async def test_a_completion_error_raises(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = await ready(make_hub, world.alice)
    with pytest.raises(HubInvocationFailed, match="An unexpected error occurred"):
        await hub.invoke("ControlV2", [vibrate(world.cuff)], "n" * 65)
    with pytest.raises(HubInvocationFailed, match="due to an error on the server") as error:
        await hub.invoke("ControlV2", [{"id": str(world.cuff.id)}], None)
    assert error.value.method == "ControlV2"
    assert hub.connected  # an error answer does not end the connection


async def test_an_unanswered_invocation_times_out(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = await ready(make_hub, world.alice)
    openshock_server.unanswered_methods.add("EmergencyStop")
    with pytest.raises(HubInvocationTimeout, match="did not answer EmergencyStop"):
        await hub.invoke("EmergencyStop", world.hub.id, timeout=0.1)
    await hub.reboot(world.hub.id)  # the connection is still usable


async def test_invoking_while_not_connected_raises(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = make_hub(world.alice, start=False)
    with pytest.raises(HubNotConnected) as error:
        await hub.control([vibrate(world.cuff)])
    assert not isinstance(error.value, HubConnectionLost)  # certainly not sent
    assert openshock_server.invocations == []


async def test_a_drop_while_waiting_fails_the_invocation(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = await ready(make_hub, world.alice)
    openshock_server.unanswered_methods.add("Reboot")
    call = asyncio.create_task(hub.reboot(world.hub.id))
    await openshock_server.wait_for_invocation("Reboot")
    await openshock_server.drop_connections(world.alice)
    # Sent, then the connection went: the caller must not read it as "not sent".
    with pytest.raises(HubConnectionLost, match="may or may not have been carried out"):
        await call
    assert issubclass(HubConnectionLost, HubNotConnected)  # still "the hub is not there"


async def test_stopping_while_waiting_fails_the_invocation_as_lost(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = await ready(make_hub, world.alice)
    openshock_server.unanswered_methods.add("ControlV2")
    call = asyncio.create_task(hub.control([vibrate(world.cuff)]))
    await openshock_server.wait_for_invocation("ControlV2")
    await hub.stop()
    with pytest.raises(HubConnectionLost):
        await call


async def test_a_batch_with_a_paused_shocker_is_dropped_without_a_log(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    hub = await ready(make_hub, world.alice)
    world.collar.paused = True
    await hub.control([vibrate(world.cuff), vibrate(world.collar)])  # completes normally
    with pytest.raises(TimeoutError):
        await hub.next_event(ControlLogEvent, timeout=0.2)
    assert openshock_server.executed_controls == []


async def test_share_limits_are_clamped_and_the_log_goes_to_the_owner(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    owner = await ready(make_hub, world.alice)
    guest = await ready(make_hub, world.bob)
    seen_by_owner = owner.expect(ControlLogEvent)
    await guest.control([vibrate(world.collar, intensity=90, duration=5000)], "Discord: eve")
    async with asyncio.timeout(5):
        log = await seen_by_owner
    assert (log.logs[0].intensity, log.logs[0].duration) == (30, 1000)
    assert log.sender.connection_id == guest.connection_id != owner.connection_id
    assert log.sender.name == "Bob"


async def test_device_methods_reach_the_server(
    openshock_server: FakeOpenShockServer, world: World, make_hub: MakeHub
) -> None:
    openshock_server.simulate_reboot = False
    hub = await ready(make_hub, world.alice)
    started = hub.expect(OtaInstallStarted)
    await hub.emergency_stop(world.hub.id)
    await hub.captive_portal(world.hub.id, True)
    await hub.reboot(world.hub.id)
    await hub.ota_install(world.hub.id, "1.5.0")
    async with asyncio.timeout(5):
        assert (await started).version == "1.5.0"
    assert [(c.method, c.arguments) for c in openshock_server.device_commands] == [
        ("EmergencyStop", [str(world.hub.id)]),
        ("CaptivePortal", [str(world.hub.id), True]),
        ("Reboot", [str(world.hub.id)]),
        ("OtaInstall", [str(world.hub.id), "1.5.0"]),
    ]
