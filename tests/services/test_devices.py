"""DeviceService without Discord: device methods sent over a real hub connection to the fake
OpenShock server, and the sentences for what was (or was not) observed afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from uuid import uuid4

import pytest

from bot.errors import UserError
from bot.openshock.errors import HubInvocationTimeout
from bot.openshock.hub import HubConnection
from bot.openshock.manager import HubAccount, HubManager
from bot.openshock.models import OwnDevice
from bot.services.devices import (
    AccountDevice,
    DeviceService,
    WatchTimings,
    find_own_device,
    parse_version,
)
from tests.fakes.openshock_server import FakeDevice, FakeOpenShockServer
from tests.openshock.conftest import FAST, eventually

ACCOUNT = 1


@dataclass
class Scene:
    server: FakeOpenShockServer
    device: FakeDevice  # Alice's hub, online, firmware 1.4.0
    manager: HubManager
    hub: HubConnection
    service: DeviceService
    target: AccountDevice

    def sent(self) -> list[str]:
        return [i.target for i in self.server.invocations if i.target != "ControlV2"]


@pytest.fixture
async def scene(openshock_server: FakeOpenShockServer) -> AsyncIterator[Scene]:
    alice = openshock_server.add_user("Alice")
    device = openshock_server.add_device(alice, "Hub", firmware="1.4.0")
    openshock_server.add_shocker(device, "Collar")
    manager = HubManager(timings=FAST)
    hub = await manager.start(HubAccount(ACCOUNT, openshock_server.base_url, alice.token))
    await hub.wait_connected(5)
    (own,) = (await hub.refresh_shockers()).own
    await eventually(lambda: hub.device_state(device.id).online, what="the device online")
    service = DeviceService(manager, WatchTimings(reboot=5.0, update=5.0))
    try:
        yield Scene(openshock_server, device, manager, hub, service, AccountDevice(ACCOUNT, own))
    finally:
        await service.close()
        await manager.stop_all()


# -- reboot ---------------------------------------------------------------------------------------


async def test_reboot_reports_the_device_going_offline_and_coming_back(scene: Scene) -> None:
    ticket = await scene.service.reboot(scene.target)
    assert ticket.sentence == (
        "🔄 Reboot sent to **Hub**; watching for it to go offline and come back (up to 5 s)…"
    )
    outcome = await asyncio.wait_for(ticket.outcome, 5)
    assert outcome.startswith("✅ **Hub** rebooted: it went offline and came back online after ")
    assert outcome.endswith(" s (firmware 1.4.0).")
    assert scene.sent() == ["Reboot"]


async def test_reboot_says_when_nothing_was_observed(scene: Scene) -> None:
    scene.server.simulate_reboot = False
    scene.service.timings = WatchTimings(reboot=0.2)
    ticket = await scene.service.reboot(scene.target)
    assert await asyncio.wait_for(ticket.outcome, 5) == (
        "🔄 Reboot sent to **Hub**, but OpenShock did not report it going offline within 0.2 s; "
        "the device may not have rebooted."
    )


async def test_reboot_says_when_the_device_went_offline_and_did_not_come_back(
    scene: Scene,
) -> None:
    scene.server.simulate_reboot = False
    scene.service.timings = WatchTimings(reboot=0.5)
    ticket = await scene.service.reboot(scene.target)
    await scene.server.set_device_online(scene.device, False)
    assert await asyncio.wait_for(ticket.outcome, 5) == (
        "⚠️ **Hub** went offline after the reboot but was not seen coming back within 0.5 s."
    )


async def test_reboot_says_when_the_connection_closed_before_anything_was_seen(
    scene: Scene,
) -> None:
    scene.server.simulate_reboot = False
    ticket = await scene.service.reboot(scene.target)
    await scene.manager.stop(ACCOUNT)  # e.g. unlinked: the hub cancels what was waited for
    assert await asyncio.wait_for(ticket.outcome, 5) == (
        "🔄 Reboot sent to **Hub**, but the connection to OpenShock closed before anything was "
        "observed."
    )


async def test_reboot_says_when_the_connection_closed_after_the_device_went_offline(
    scene: Scene,
) -> None:
    scene.server.simulate_reboot = False
    ticket = await scene.service.reboot(scene.target)
    await scene.server.set_device_online(scene.device, False)
    await eventually(lambda: not scene.hub.device_state(scene.device.id).online, what="offline")
    await scene.manager.stop(ACCOUNT)
    assert await asyncio.wait_for(ticket.outcome, 5) == (
        "⚠️ **Hub** went offline after the reboot, but the connection to OpenShock closed "
        "before it was seen coming back."
    )


# -- update ---------------------------------------------------------------------------------------


async def test_update_reports_that_it_started(scene: Scene) -> None:
    ticket = await scene.service.update(scene.target, "1.5.0-rc.1")
    assert ticket.sentence == (
        "⬆️ Update to 1.5.0-rc.1 sent to **Hub**; waiting for it to start (up to 5 s)…"
    )
    assert await asyncio.wait_for(ticket.outcome, 5) == (
        "⬆️ The update of **Hub** to 1.5.0-rc.1 has started (update 1). "
        "The device reboots when it is done."
    )
    (invocation,) = [i for i in scene.server.invocations if i.target == "OtaInstall"]
    assert invocation.arguments == [str(scene.device.id), "1.5.0-rc.1"]


async def test_update_says_when_it_was_not_seen_starting(scene: Scene) -> None:
    scene.server.simulate_ota = False
    scene.service.timings = WatchTimings(update=0.2)
    ticket = await scene.service.update(scene.target, "1.5.0")
    assert await asyncio.wait_for(ticket.outcome, 5) == (
        "⬆️ Update to 1.5.0 sent to **Hub**, but OpenShock did not report it starting within "
        "0.2 s; the device may be offline, or that version may not exist for it."
    )


async def test_update_says_when_the_connection_closed_before_anything_was_seen(
    scene: Scene,
) -> None:
    scene.server.simulate_ota = False
    ticket = await scene.service.update(scene.target, "1.5.0")
    await scene.manager.stop(ACCOUNT)
    assert await asyncio.wait_for(ticket.outcome, 5) == (
        "⬆️ Update to 1.5.0 sent to **Hub**, but the connection to OpenShock closed before "
        "anything was observed."
    )


# -- not sent -------------------------------------------------------------------------------------


async def test_nothing_is_sent_or_watched_while_the_connection_is_down(scene: Scene) -> None:
    scene.server.hub_upgrade_status = 503
    await scene.server.drop_connections()
    await eventually(lambda: not scene.hub.connected, what="the connection down")
    for send in (
        lambda: scene.service.reboot(scene.target),
        lambda: scene.service.update(scene.target, "1.5.0"),
        lambda: scene.service.emergency_stop(scene.target),
    ):
        with pytest.raises(UserError, match="Your OpenShock connection is down right now"):
            await send()
    assert scene.sent() == []
    assert scene.service._watches == set()


async def test_a_send_that_fails_starts_no_watch(scene: Scene) -> None:
    manager = HubManager(timings=replace(FAST, invoke_timeout=0.1))
    hub = await manager.start(HubAccount(2, scene.server.base_url, scene.device.owner.token))
    service = DeviceService(manager)
    try:
        await hub.wait_connected(5)
        scene.server.unanswered_methods.add("Reboot")
        with pytest.raises(HubInvocationTimeout):
            await service.reboot(AccountDevice(2, scene.target.device))
        assert service._watches == set()
    finally:
        await service.close()
        await manager.stop_all()


async def test_an_offline_device_is_not_reachable(scene: Scene) -> None:
    await scene.server.set_device_online(scene.device, False)
    await eventually(lambda: not scene.hub.device_state(scene.device.id).online, what="offline")
    with pytest.raises(UserError) as refused:
        scene.service.reachable_hub(scene.target)
    assert refused.value.message == (
        "**Hub** is offline, so OpenShock cannot reach it; nothing was sent."
    )
    with pytest.raises(UserError, match="offline"):
        await scene.service.captive_portal(scene.target, True)
    assert scene.sent() == []


async def test_closing_the_service_ends_its_watches(scene: Scene) -> None:
    scene.server.simulate_reboot = False
    ticket = await scene.service.reboot(scene.target)
    await scene.service.close()
    with pytest.raises(asyncio.CancelledError):
        await ticket.outcome
    assert scene.service._watches == set()


# -- estop and portal -----------------------------------------------------------------------------


async def test_estop_and_portal_say_sent_and_reach_the_device(scene: Scene) -> None:
    assert (await scene.service.emergency_stop(scene.target)).startswith(
        "🛑 Emergency stop sent to **Hub**. OpenShock does not report"
    )
    assert (await scene.service.captive_portal(scene.target, False)).startswith(
        "Captive portal off: sent to **Hub**."
    )
    assert [c.method for c in scene.server.device_commands] == ["EmergencyStop", "CaptivePortal"]


# -- finding a device and a version ---------------------------------------------------------------


def own(name: str) -> OwnDevice:
    return OwnDevice(id=uuid4(), name=name)


def test_a_device_is_found_by_id_or_unique_name_and_anything_else_refused() -> None:
    hub, lamp, twin_a, twin_b = own("Hub"), own("Lamp"), own("Twin"), own("twin")
    devices = [hub, lamp, twin_a, twin_b]
    assert find_own_device(devices, str(lamp.id)) is lamp
    assert find_own_device(devices, " hub ") is hub
    with pytest.raises(UserError, match="Several of your devices have that name"):
        find_own_device(devices, "Twin")
    with pytest.raises(UserError, match="That is not one of your devices"):
        find_own_device(devices, str(uuid4()))


def test_versions_follow_semantic_versioning() -> None:
    assert parse_version(" v1.5.0-rc.1 ") == "1.5.0-rc.1"
    assert parse_version("1.2.3+build.7") == "1.2.3+build.7"
    for bad in ("1.5", "latest", "01.2.3", "1.2.3 ; rm", ""):
        with pytest.raises(UserError, match="is not a valid firmware version"):
            parse_version(bad)
