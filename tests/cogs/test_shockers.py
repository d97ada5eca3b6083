"""/shockers through the real command tree, with a linked wearer on the fake OpenShock server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bot.domain.decision import GrantTarget
from bot.services.halts import Halt
from bot.storage.models import FeedKind
from tests.cogs.test_account import options_of
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.openshock_server import FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness


@dataclass
class World:
    h: Harness
    alice: DiscordUser  # the wearer
    bob: DiscordUser  # a member
    alice_os: OpenShockUser
    collar: FakeShocker
    cuff: FakeShocker
    bobs_belt: FakeShocker  # Bob's OpenShock shocker, not shared with Alice

    async def slash(self, command: str, user: DiscordUser, **options: Any) -> str:
        payload = self.h.ix.slash(command, options, user=user)
        await self.h.run(payload)
        reply = self.h.discord.replies_for(payload)
        assert reply.ephemeral
        return reply.text

    async def choices(self, command: str, user: DiscordUser, value: str) -> list[dict[str, Any]]:
        payload = self.h.ix.autocomplete(command, "shocker", value, user=user)
        await self.h.run(payload)
        return self.h.discord.replies_for(payload).choices or []


@pytest.fixture
async def world(harness: Harness) -> World:
    os = harness.openshock
    alice_os = os.add_user("Alice")
    hub = os.add_device(alice_os, "Hub")
    collar = os.add_shocker(hub, "Collar")
    cuff = os.add_shocker(hub, "Cuff")
    bob_os = os.add_user("Bob")
    belt = os.add_shocker(os.add_device(bob_os, "Bob's hub"), "Belt")
    alice = harness.discord_user("alice")
    bob = harness.discord_user("bob")
    await harness.link(alice, alice_os)
    return World(harness, alice, bob, alice_os, collar, cuff, belt)


async def grant_everyone(h: Harness) -> None:
    await h.storage.grants.grant(
        guild_id=h.discord.guild_id,
        target_kind=GrantTarget.ROLE,
        target_id=h.discord.guild_id,
        shocker_id=None,
        max_intensity=None,
        max_duration_ms=None,
        cooldown_ms=None,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        created_by=1,
    )


# -- share ---------------------------------------------------------------------------------------


async def test_share_autocompletes_own_shockers_and_uses_the_defaults(world: World) -> None:
    h = world.h
    assert await world.choices("shockers share", world.alice, "col") == [
        {"name": "Collar · Hub", "value": str(world.collar.id)}
    ]
    text = await world.slash("shockers share", world.alice, shocker=str(world.collar.id))
    assert text.startswith("Shared **Collar** here: up to 25 % and 3 s; shock, vibrate, sound.")
    assert "controls feed" not in text
    (share,) = await h.storage.shares.in_guild(h.discord.guild_id)
    assert (share.shocker_id, share.wearer_id, share.shocker_name) == (
        str(world.collar.id),
        world.alice.id,
        "Collar",
    )
    assert (share.max_intensity, share.max_duration_ms) == (25, 3000)
    assert share.allow_shock and share.allow_vibrate and share.allow_sound


async def test_share_by_exact_name_and_updating_the_caps(world: World) -> None:
    h = world.h
    await world.slash("shockers share", world.alice, shocker="cuff")
    text = await world.slash(
        "shockers share",
        world.alice,
        shocker="Cuff",
        max_intensity=60,
        max_duration=1.5,
        shock=False,
    )
    assert text.startswith("Updated **Cuff** here: up to 60 % and 1.5 s; vibrate, sound.")
    (share,) = await h.storage.shares.in_guild(h.discord.guild_id)
    assert (share.max_intensity, share.max_duration_ms, share.allow_shock) == (60, 1500, False)


async def test_share_above_the_operators_caps_is_refused_with_the_allowed_range(
    world: World,
) -> None:
    h = world.h
    account = await h.storage.accounts.by_discord_user(world.alice.id)
    assert account is not None
    await h.restart(max_intensity=50, max_duration_ms=10_000)
    await h.ready(account.id)
    collar = str(world.collar.id)
    text = await world.slash("shockers share", world.alice, shocker=collar, max_intensity=80)
    assert text == "`max_intensity` must be between 1 and 50 % (this bot's limit)."
    text = await world.slash("shockers share", world.alice, shocker=collar, max_duration=20.0)
    assert text == "`max_duration` must be between 0.3 s and 10 s (this bot's limit)."
    assert await h.storage.shares.in_guild(h.discord.guild_id) == []
    text = await world.slash("shockers share", world.alice, shocker=collar, max_intensity=50)
    assert text.startswith("Shared **Collar** here: up to 50 % and 3 s")


async def test_a_forged_shocker_value_is_refused(world: World) -> None:
    h = world.h
    for forged in (str(world.bobs_belt.id), "Belt", "not-a-shocker"):
        text = await world.slash("shockers share", world.alice, shocker=forged)
        assert text.startswith("That is not one of your shockers"), forged
    assert await h.storage.shares.in_guild(h.discord.guild_id) == []
    # Nor can Bob unshare, pause or resume Alice's shocker by typing its id.
    await world.slash("shockers share", world.alice, shocker=str(world.collar.id))
    for command in ("shockers unshare", "shockers pause", "shockers resume"):
        text = await world.slash(command, world.bob, shocker=str(world.collar.id))
        assert text.startswith("You have not shared that shocker in this server"), command
    (share,) = await h.storage.shares.in_guild(h.discord.guild_id)
    assert not share.paused


async def test_share_without_a_linked_account_points_to_link(world: World) -> None:
    text = await world.slash("shockers share", world.bob, shocker=str(world.bobs_belt.id))
    assert "`/account link`" in text
    assert await world.choices("shockers share", world.bob, "") == []


async def test_a_shocker_shared_with_the_wearers_account_can_be_shared(world: World) -> None:
    h = world.h
    carol_os = h.openshock.add_user("Carol")
    leash = h.openshock.add_shocker(h.openshock.add_device(carol_os, "Carol's hub"), "Leash")
    h.openshock.share_shocker(leash, world.alice_os, max_intensity=40)
    account = await h.storage.accounts.by_discord_user(world.alice.id)
    assert account is not None
    hub = h.bot.hubs.get(account.id)
    assert hub is not None
    await hub.refresh_shockers()

    choices = await world.choices("shockers share", world.alice, "lea")
    assert choices == [
        {"name": "Leash · Carol's hub (shared with you by Carol)", "value": str(leash.id)}
    ]
    text = await world.slash("shockers share", world.alice, shocker=str(leash.id))
    assert "Its OpenShock share also limits it to 40 %." in text


async def test_share_of_a_shocker_shared_with_the_wearer_says_the_feed_will_not_show_it(
    world: World,
) -> None:
    h = world.h
    channel = h.discord.add_channel("controls")
    await h.storage.feeds.set(h.discord.guild_id, FeedKind.CONTROLS, channel.id)
    carol_os = h.openshock.add_user("Carol")
    leash = h.openshock.add_shocker(h.openshock.add_device(carol_os, "Carol's hub"), "Leash")
    h.openshock.share_shocker(leash, world.alice_os)
    account = await h.storage.accounts.by_discord_user(world.alice.id)
    assert account is not None
    hub = h.bot.hubs.get(account.id)
    assert hub is not None
    await hub.refresh_shockers()
    text = await world.slash("shockers share", world.alice, shocker=str(leash.id))
    assert "only to its owner, Carol, so it is not posted there" in text
    assert "will be posted" not in text


async def test_share_defers_before_reading_the_shocker_lists(world: World) -> None:
    payload = world.h.ix.slash(
        "shockers share", {"shocker": str(world.collar.id)}, user=world.alice
    )
    await world.h.run(payload)
    reply = world.h.discord.replies_for(payload)
    assert reply.response_type == 5 and reply.ephemeral
    assert reply.text.startswith("Shared **Collar** here")


async def test_share_reply_tells_about_the_controls_feed(world: World) -> None:
    h = world.h
    channel = h.discord.add_channel("controls")
    await h.storage.feeds.set(h.discord.guild_id, FeedKind.CONTROLS, channel.id)
    text = await world.slash("shockers share", world.alice, shocker=str(world.collar.id))
    assert "This server has a controls feed" in text
    assert f"<#{channel.id}>" in text


async def test_share_with_every_type_disallowed_is_refused(world: World) -> None:
    text = await world.slash(
        "shockers share",
        world.alice,
        shocker=str(world.collar.id),
        shock=False,
        vibrate=False,
        sound=False,
    )
    assert text.startswith("Allow at least one of shock, vibrate or sound.")


# -- list, and everything that changes it -------------------------------------------------------


async def test_share_unshare_pause_and_block_change_what_list_shows(world: World) -> None:
    h = world.h
    await grant_everyone(h)
    collar = str(world.collar.id)

    async def listing(user: DiscordUser) -> str:
        return await world.slash("shockers list", user)

    assert "No shocker is shared here yet" in await listing(world.bob)

    await world.slash("shockers share", world.alice, shocker=collar)
    text = await listing(world.bob)
    assert (
        f"**Collar** · <@{world.alice.id}> · 🟢 online · ≤ 25 %, 3 s, shock, vibrate, sound\n"
        "↳ You may: shock, vibrate, sound, stop · up to 25 %, 3 s." in text
    )
    assert "You are the wearer: shock, vibrate, sound, stop" in await listing(world.alice)

    assert await world.choices("shockers pause", world.alice, "") == [
        {"name": "Collar", "value": collar}
    ]
    await world.slash("shockers pause", world.alice, shocker=collar)
    text = await listing(world.bob)
    assert "⏸️ paused" in text and "Right now: The wearer has paused this shocker here" in text
    await world.slash("shockers resume", world.alice, shocker=collar)
    assert "paused" not in await listing(world.bob)

    assert "including any you share later" in await world.slash("shockers pause", world.alice)
    assert "⏸️ paused" in await listing(world.bob)
    assert await world.slash("shockers resume", world.alice) == "Resumed all your shockers here."
    assert "paused" not in await listing(world.bob)

    text = await world.slash("shockers block", world.alice, member=world.bob)
    assert text.startswith(f"Blocked <@{world.bob.id}>")
    assert "Right now: The wearer has blocked you" in await listing(world.bob)
    text = await world.slash("shockers unblock", world.alice, member=world.bob)
    assert text.startswith(f"Unblocked <@{world.bob.id}>")
    assert "Right now" not in await listing(world.bob)

    text = await world.slash("shockers unshare", world.alice, shocker=collar)
    assert text.startswith("**Collar** is no longer usable here")
    assert "No shocker is shared here yet" in await listing(world.bob)


async def test_list_shows_offline_devices_and_members_without_permission(world: World) -> None:
    h = world.h
    await world.slash("shockers share", world.alice, shocker=str(world.collar.id))
    await h.openshock.set_device_online(world.collar.device, False)
    account = await h.storage.accounts.by_discord_user(world.alice.id)
    assert account is not None
    hub = h.bot.hubs.get(account.id)
    assert hub is not None
    await h.openshock.wait_until(
        lambda: not hub.device_state(world.collar.device.id).online, what="offline"
    )
    text = await world.slash("shockers list", world.bob)
    assert "⚫ offline" in text
    assert "↳ You do not have permission to control this shocker here." in text


async def test_list_never_pings_the_wearers(world: World) -> None:
    h = world.h
    await world.slash("shockers share", world.alice, shocker=str(world.collar.id))
    payload = h.ix.slash("shockers list", user=world.bob)
    await h.run(payload)
    (request,) = [
        r for r in h.discord.requests_matching("POST", r"/webhooks/") if payload["token"] in r.path
    ]
    assert request.json["allowed_mentions"] == {"parse": []}


async def test_resuming_one_shocker_says_when_everything_is_still_paused(world: World) -> None:
    collar = str(world.collar.id)
    await world.slash("shockers share", world.alice, shocker=collar)
    await world.slash("shockers pause", world.alice)
    text = await world.slash("shockers resume", world.alice, shocker=collar)
    assert "All your shockers here are still paused" in text
    assert await world.slash("shockers resume", world.alice) == "Resumed all your shockers here."
    assert await world.slash("shockers resume", world.alice) == "Nothing of yours was paused here."


async def test_blocking_yourself_is_refused(world: World) -> None:
    text = await world.slash("shockers block", world.alice, member=world.alice)
    assert text.startswith("You cannot block yourself")
    assert await world.slash("shockers unblock", world.alice, member=world.bob) == (
        f"<@{world.bob.id}> was not blocked."
    )


async def test_shockers_commands_only_work_in_a_server(world: World) -> None:
    payload = world.h.ix.dm().slash("shockers list", user=world.alice)
    await world.h.run(payload)
    assert "only works in a server" in world.h.discord.replies_for(payload).text


async def test_a_failing_autocomplete_shows_an_empty_list(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database on fire")

    monkeypatch.setattr(world.h.storage.accounts, "by_discord_user", broken)
    monkeypatch.setattr(world.h.storage.shares, "of_wearer", broken)
    assert await world.choices("shockers share", world.alice, "") == []
    assert await world.choices("shockers unshare", world.alice, "") == []


# -- registration -------------------------------------------------------------------------------


async def test_shockers_commands_registration(harness: Harness) -> None:
    shocker = ("shocker", 3, True, True, None, None)
    optional_shocker = ("shocker", 3, False, True, None, None)
    member = ("member", 6, True, False, None, None)
    assert options_of(harness, "shockers") == {
        "dm_permission": False,
        "subcommands": {
            "share": [
                shocker,
                ("max_intensity", 4, False, False, 1, 100),
                ("max_duration", 10, False, False, 0.3, 65.535),
                ("shock", 5, False, False, None, None),
                ("vibrate", 5, False, False, None, None),
                ("sound", 5, False, False, None, None),
                ("approval", 5, False, False, None, None),
            ],
            "unshare": [shocker],
            "pause": [optional_shocker],
            "resume": [optional_shocker],
            "block": [member],
            "unblock": [member],
            "list": [],
        },
    }


async def test_pause_and_unshare_announce_a_halt_for_pending_controls(world: World) -> None:
    h = world.h
    collar = str(world.collar.id)
    guild = h.discord.guild_id
    heard: list[Halt] = []
    h.bot.control.halts.subscribe(heard.append)
    await world.slash("shockers share", world.alice, shocker=collar)
    await world.slash("shockers pause", world.alice, shocker=collar)
    await world.slash("shockers pause", world.alice)
    await world.slash("shockers unshare", world.alice, shocker=collar)
    assert heard == [
        Halt("pause", guild_id=guild, shocker_id=collar),
        Halt("pause", guild_id=guild, wearer_id=world.alice.id),
        Halt("unshare", guild_id=guild, shocker_id=collar),
    ]
