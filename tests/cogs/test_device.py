"""/device through the real command tree: only the owner's own devices, confirmations for reboot
and update, and what the fake OpenShock hub shows afterwards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bot.cogs.device import DeviceCog
from bot.openshock.hub import HubConnection
from bot.services.devices import WatchTimings
from tests.cogs.test_account import options_of
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.discord_api import InteractionRecord
from tests.fakes.openshock_server import FakeDevice
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness

DEVICE_METHODS = {"Reboot", "OtaInstall", "EmergencyStop", "CaptivePortal"}


@dataclass
class World:
    h: Harness
    alice: DiscordUser  # owns `hub`
    bob: DiscordUser  # linked; Alice's collar is shared with his OpenShock account
    alice_os: OpenShockUser
    hub: FakeDevice
    alice_hub: HubConnection

    async def slash(self, command: str, user: DiscordUser, **options: Any) -> InteractionRecord:
        payload = self.h.ix.slash(command, options, user=user)
        await self.h.run(payload)
        reply = self.h.discord.replies_for(payload)
        assert reply.ephemeral
        return reply

    async def click(
        self, reply: InteractionRecord, custom_id: str, user: DiscordUser
    ) -> dict[str, Any]:
        (message,) = reply.messages
        await self.h.run(self.h.ix.button(custom_id, message=message, user=user))
        return message

    def content(self, message: dict[str, Any]) -> str:
        current = self.h.discord.message(message["id"])
        assert current is not None
        return str(current["content"])

    def sent(self) -> list[tuple[str, list[Any]]]:
        return [
            (i.target, i.arguments)
            for i in self.h.openshock.invocations
            if i.target in DEVICE_METHODS
        ]


@pytest.fixture
async def world(harness: Harness) -> World:
    os = harness.openshock
    alice_os = os.add_user("Alice")
    hub = os.add_device(alice_os, "Hub", firmware="1.4.0")
    collar = os.add_shocker(hub, "Collar")
    bob_os = os.add_user("Bob")
    os.add_device(bob_os, "Bob's hub")
    os.share_shocker(collar, bob_os)
    alice = harness.discord_user("alice")
    bob = harness.discord_user("bob")
    account = await harness.link(alice, alice_os)
    await harness.link(bob, bob_os)
    cog = harness.bot.get_cog("DeviceCog")
    assert isinstance(cog, DeviceCog)
    cog.confirm_timeout = 5.0
    cog.devices.timings = WatchTimings(reboot=3.0, update=3.0)
    alice_hub = harness.bot.hubs.get(account.id)
    assert alice_hub is not None
    return World(harness, alice, bob, alice_os, hub, alice_hub)


def device_cog(h: Harness) -> DeviceCog:
    cog = h.bot.get_cog("DeviceCog")
    assert isinstance(cog, DeviceCog)
    return cog


# -- list and autocomplete ------------------------------------------------------------------------


async def test_list_shows_own_devices_with_state_and_firmware(world: World) -> None:
    reply = await world.slash("device list", world.alice)
    assert "**Hub**: online, firmware 1.4.0 · shockers: Collar" in reply.text
    assert "Bob" not in reply.text


async def test_device_autocomplete_offers_only_own_devices(world: World) -> None:
    payload = world.h.ix.autocomplete("device reboot", "device", "", user=world.bob)
    await world.h.run(payload)
    choices = world.h.discord.replies_for(payload).choices or []
    assert [c["name"] for c in choices] == ["Bob's hub · online, firmware 1.4.0"]
    payload = world.h.ix.autocomplete("device estop", "device", "h", user=world.alice)
    await world.h.run(payload)
    assert world.h.discord.replies_for(payload).choices == [
        {"name": "Hub · online, firmware 1.4.0", "value": str(world.hub.id)}
    ]


# -- refusals: nothing is sent --------------------------------------------------------------------


@pytest.mark.parametrize("command", ["device reboot", "device estop", "device update"])
async def test_a_device_that_is_not_the_callers_is_refused_and_nothing_is_sent(
    world: World, command: str
) -> None:
    options: dict[str, Any] = {"device": str(world.hub.id)}
    if command == "device update":
        options["version"] = "1.5.0"
    # Bob sees Alice's hub (her collar is shared with him), but it is not his device.
    reply = await world.slash(command, world.bob, **options)
    assert reply.text == "That is not one of your devices; pick one from the list."
    assert reply.custom_ids() == []
    carol = world.h.discord_user("carol")
    reply = await world.slash(command, carol, **options)
    assert "no linked OpenShock account" in reply.text
    assert world.sent() == []


async def test_a_device_name_shared_by_two_of_the_callers_devices_is_refused(world: World) -> None:
    world.h.openshock.add_device(world.alice_os, "hub")
    await world.alice_hub.refresh_shockers()
    reply = await world.slash("device estop", world.alice, device="Hub")
    assert reply.text == "Several of your devices have that name; pick one from the list."
    reply = await world.slash("device estop", world.alice, device=str(world.hub.id))
    assert reply.text.startswith("🛑 Emergency stop sent to **Hub**.")
    assert world.sent() == [("EmergencyStop", [str(world.hub.id)])]


async def test_an_invalid_version_is_refused_before_anything_is_sent(world: World) -> None:
    for version in ("1.5", "latest", "01.2.3", "1.2.3 ; rm"):
        reply = await world.slash(
            "device update", world.alice, device=str(world.hub.id), version=version
        )
        assert "is not a valid firmware version" in reply.text, version
        assert reply.custom_ids() == []
    assert world.sent() == []


async def test_an_offline_device_is_not_rebooted(world: World) -> None:
    await world.h.openshock.set_device_online(world.hub, False)
    await world.h.openshock.wait_until(
        lambda: not world.alice_hub.device_state(world.hub.id).online, what="offline"
    )
    reply = await world.slash("device reboot", world.alice, device=str(world.hub.id))
    assert reply.text == "**Hub** is offline, so OpenShock cannot reach it; nothing was sent."
    assert world.sent() == []


async def test_nothing_is_sent_while_the_hub_is_not_connected(world: World) -> None:
    world.h.openshock.hub_upgrade_status = 503
    await world.h.openshock.drop_connections(world.alice_os)
    await world.h.openshock.wait_until(lambda: not world.alice_hub.connected, what="down")
    reply = await world.slash("device estop", world.alice, device=str(world.hub.id))
    assert reply.text.startswith("Your OpenShock connection is down right now")
    assert world.sent() == []


# -- reboot ---------------------------------------------------------------------------------------


async def test_confirmed_reboot_sends_reboot_and_reports_the_device_coming_back(
    world: World,
) -> None:
    reply = await world.slash("device reboot", world.alice, device="Hub")
    assert reply.text.startswith("Reboot **Hub**?")
    assert reply.custom_ids() == ["device:confirm", "device:cancel"]
    assert world.sent() == []  # nothing before the confirmation

    message = await world.click(reply, "device:confirm", world.alice)
    invocation = await world.h.openshock.wait_for_invocation("Reboot")
    assert invocation.arguments == [str(world.hub.id)]
    (command,) = world.h.openshock.device_commands
    assert (command.method, command.device) == ("Reboot", world.hub)
    await world.h.discord.wait_for(lambda: "✅" in world.content(message))
    text = world.content(message)
    assert text.startswith("✅ **Hub** rebooted: it went offline and came back online after ")
    assert text.endswith(" s (firmware 1.4.0).")
    assert world.h.discord.message(message["id"])["components"] == []  # type: ignore[index]


async def test_reboot_says_when_nothing_was_observed(world: World) -> None:
    world.h.openshock.simulate_reboot = False
    device_cog(world.h).devices.timings = WatchTimings(reboot=0.2)
    reply = await world.slash("device reboot", world.alice, device=str(world.hub.id))
    message = await world.click(reply, "device:confirm", world.alice)
    await world.h.discord.wait_for(lambda: "did not report" in world.content(message))
    assert world.content(message) == (
        "🔄 Reboot sent to **Hub**, but OpenShock did not report it going offline within "
        "0.2 s; the device may not have rebooted."
    )
    assert [target for target, _ in world.sent()] == ["Reboot"]


async def test_only_the_caller_can_confirm(world: World) -> None:
    reply = await world.slash("device reboot", world.alice, device=str(world.hub.id))
    (message,) = reply.messages
    click = world.h.ix.button("device:confirm", message=message, user=world.bob)
    await world.h.run(click)
    refusal = world.h.discord.replies_for(click)
    assert refusal.ephemeral and refusal.text == "Only the person who asked can confirm this."
    assert world.sent() == []
    assert world.content(message).startswith("Reboot **Hub**?")  # still waiting for Alice


async def test_cancel_sends_nothing(world: World) -> None:
    reply = await world.slash("device reboot", world.alice, device=str(world.hub.id))
    message = await world.click(reply, "device:cancel", world.alice)
    assert world.content(message) == "Cancelled; nothing was sent."
    assert world.sent() == []


async def test_an_expired_confirmation_sends_nothing(world: World) -> None:
    device_cog(world.h).confirm_timeout = 0.1
    reply = await world.slash("device reboot", world.alice, device=str(world.hub.id))
    (message,) = reply.messages
    await world.h.discord.wait_for(lambda: "expired" in world.content(message))
    assert world.content(message) == "This confirmation expired; nothing was sent."
    await world.h.run(world.h.ix.button("device:confirm", message=message, user=world.alice))
    assert world.sent() == []


# -- update ---------------------------------------------------------------------------------------


async def test_confirmed_update_sends_the_version_and_reports_that_it_started(
    world: World,
) -> None:
    reply = await world.slash(
        "device update", world.alice, device=str(world.hub.id), version="v1.5.0-rc.1"
    )
    assert reply.text.startswith("Install firmware **1.5.0-rc.1** on **Hub**?")
    message = await world.click(reply, "device:confirm", world.alice)
    invocation = await world.h.openshock.wait_for_invocation("OtaInstall")
    assert invocation.arguments == [str(world.hub.id), "1.5.0-rc.1"]
    await world.h.discord.wait_for(lambda: "has started" in world.content(message))
    assert world.content(message) == (
        "⬆️ The update of **Hub** to 1.5.0-rc.1 has started (update 1). "
        "The device reboots when it is done."
    )


async def test_update_says_when_it_was_not_seen_starting(world: World) -> None:
    world.h.openshock.simulate_ota = False
    device_cog(world.h).devices.timings = WatchTimings(update=0.2)
    reply = await world.slash("device update", world.alice, device="Hub", version="1.5.0")
    message = await world.click(reply, "device:confirm", world.alice)
    await world.h.discord.wait_for(lambda: "did not report" in world.content(message))
    assert "may not exist for it" in world.content(message)


async def _stop_alices_hub(world: World) -> None:
    account = await world.h.storage.accounts.by_discord_user(world.alice.id)
    assert account is not None
    await world.h.bot.hubs.stop(account.id)


async def test_reboot_watch_says_when_the_connection_closed_before_anything_was_seen(
    world: World,
) -> None:
    world.h.openshock.simulate_reboot = False
    device_cog(world.h).devices.timings = WatchTimings(reboot=30.0)
    reply = await world.slash("device reboot", world.alice, device=str(world.hub.id))
    message = await world.click(reply, "device:confirm", world.alice)
    await world.h.discord.wait_for(lambda: "watching" in world.content(message))
    await _stop_alices_hub(world)  # e.g. unlinked: the hub cancels what was waited for
    await world.h.discord.wait_for(lambda: "watching" not in world.content(message))
    assert world.content(message) == (
        "🔄 Reboot sent to **Hub**, but the connection to OpenShock closed before anything "
        "was observed."
    )
    cog = device_cog(world.h)
    await world.h.discord.wait_for(lambda: not cog._replies and not cog.devices._watches)


async def test_reboot_watch_says_when_the_connection_closed_after_the_device_went_offline(
    world: World,
) -> None:
    world.h.openshock.simulate_reboot = False
    device_cog(world.h).devices.timings = WatchTimings(reboot=30.0)
    reply = await world.slash("device reboot", world.alice, device=str(world.hub.id))
    message = await world.click(reply, "device:confirm", world.alice)
    await world.h.discord.wait_for(lambda: "watching" in world.content(message))
    await world.h.openshock.set_device_online(world.hub, False)
    await world.h.openshock.wait_until(
        lambda: not world.alice_hub.device_state(world.hub.id).online, what="offline"
    )
    await _stop_alices_hub(world)
    await world.h.discord.wait_for(lambda: "watching" not in world.content(message))
    assert world.content(message) == (
        "⚠️ **Hub** went offline after the reboot, but the connection to OpenShock closed "
        "before it was seen coming back."
    )


async def test_update_watch_says_when_the_connection_closed_before_anything_was_seen(
    world: World,
) -> None:
    world.h.openshock.simulate_ota = False
    device_cog(world.h).devices.timings = WatchTimings(update=30.0)
    reply = await world.slash("device update", world.alice, device="Hub", version="1.5.0")
    message = await world.click(reply, "device:confirm", world.alice)
    await world.h.discord.wait_for(lambda: "waiting for it" in world.content(message))
    await _stop_alices_hub(world)
    await world.h.discord.wait_for(lambda: "waiting for it" not in world.content(message))
    assert world.content(message) == (
        "⬆️ Update to 1.5.0 sent to **Hub**, but the connection to OpenShock closed before "
        "anything was observed."
    )


async def test_unloading_the_cog_ends_a_watch_without_editing_the_reply(world: World) -> None:
    world.h.openshock.simulate_reboot = False
    cog = device_cog(world.h)
    cog.devices.timings = WatchTimings(reboot=30.0)
    reply = await world.slash("device reboot", world.alice, device=str(world.hub.id))
    message = await world.click(reply, "device:confirm", world.alice)
    await world.h.discord.wait_for(lambda: "watching" in world.content(message))
    await cog.cog_unload()  # cancels the reply and the watch themselves
    assert cog._replies == set() and cog.devices._watches == set()
    assert "watching" in world.content(message)


# -- estop and portal: "sent", no more ------------------------------------------------------------


async def test_estop_and_portal_are_sent_to_the_right_device(world: World) -> None:
    reply = await world.slash("device estop", world.alice, device=str(world.hub.id))
    assert reply.text.startswith("🛑 Emergency stop sent to **Hub**.")
    reply = await world.slash("device portal", world.alice, device="Hub", enabled=True)
    assert reply.text.startswith("Captive portal on: sent to **Hub**.")
    await world.h.openshock.wait_until(lambda: len(world.h.openshock.device_commands) == 2)
    assert world.sent() == [
        ("EmergencyStop", [str(world.hub.id)]),
        ("CaptivePortal", [str(world.hub.id), True]),
    ]


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("device list", {}),
        ("device estop", {"device": "Hub"}),
        ("device portal", {"device": "Hub", "enabled": False}),
        ("device reboot", {"device": "Hub"}),
        ("device update", {"device": "Hub", "version": "1.5.0"}),
    ],
)
async def test_commands_that_wait_on_openshock_defer_first(
    world: World, command: str, options: dict[str, Any]
) -> None:
    # The device lists (up to 2 s) and the hub call (up to 10 s) can outlast Discord's 3 s.
    reply = await world.slash(command, world.alice, **options)
    assert reply.response_type == 5
    assert reply.callback is not None and reply.callback["data"]["flags"] == 64
    assert "Hub" in reply.text  # then answered through the follow-up


async def test_a_refusal_after_the_defer_is_still_ephemeral(world: World) -> None:
    carol = world.h.discord_user("carol")
    reply = await world.slash("device estop", carol, device="Hub")
    assert reply.response_type == 5
    assert "no linked OpenShock account" in reply.text


# -- registration ---------------------------------------------------------------------------------


async def test_device_commands_registration(harness: Harness) -> None:
    device = ("device", 3, True, True, None, None)
    assert options_of(harness, "device") == {
        "dm_permission": True,
        "subcommands": {
            "list": [],
            "estop": [device],
            "portal": [device, ("enabled", 5, True, False, None, None)],
            "reboot": [device],
            "update": [device, ("version", 3, True, False, None, None)],
        },
    }
