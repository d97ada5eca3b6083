"""The owner rules their shocker, end to end through the real command tree: Alice owns the collar
on OpenShock and shares it with Bob's OpenShock account; Bob shares it in guilds with
`/shockers share`. Alice's `/shockers list`, `pause`, `unshare`, `resume` and `/panic` reach
Bob's shares, and `/panic` pauses her shockers on OpenShock itself (the fake's REST pause)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from bot.domain.grants import GrantTarget
from bot.services.halts import Halt
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.interactions import Interactions
from tests.fakes.openshock_server import FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness

CONTROLS = ("shock", "vibrate", "sound")


@dataclass
class World:
    h: Harness
    alice: DiscordUser  # owns the collar and the leg on OpenShock
    bob: DiscordUser  # reaches the collar through an OpenShock share
    carl: DiscordUser  # a member with permission to control
    alice_os: OpenShockUser
    bob_os: OpenShockUser
    collar: FakeShocker
    leg: FakeShocker
    other_guild: int
    other: Interactions

    @property
    def guild(self) -> int:
        return self.h.discord.guild_id

    @property
    def collar_id(self) -> str:
        return str(self.collar.id)

    def ix(self, guild_id: int | None = None) -> Interactions:
        return self.other if guild_id == self.other_guild else self.h.ix

    async def slash(
        self, command: str, user: DiscordUser, *, guild_id: int | None = None, **options: Any
    ) -> str:
        payload = self.ix(guild_id).slash(command, options, user=user)
        await self.h.run(payload)
        return self.h.discord.replies_for(payload).text

    async def choices(self, command: str, user: DiscordUser) -> list[dict[str, Any]]:
        payload = self.h.ix.autocomplete(command, "shocker", "", user=user)
        await self.h.run(payload)
        return self.h.discord.replies_for(payload).choices or []

    async def control(
        self, kind: str, user: DiscordUser, guild_id: int | None = None, *, paused: bool = False
    ) -> tuple[str, bool]:
        """One control of the collar; returns the reply and whether it was answered privately.
        With `paused`, it must have been refused, privately, because of a pause."""
        options = {"shocker": self.collar_id, "intensity": 10, "duration": 1}
        payload = self.ix(guild_id).slash(kind, options, user=user)
        await self.h.run(payload)
        reply = self.h.discord.replies_for(payload)
        if paused:
            assert reply.ephemeral and "paused" in reply.text, (kind, user.name, reply.text)
        return reply.text, reply.ephemeral

    def firing_frames(self) -> list[dict[str, Any]]:
        """Every control other than Stop that reached the hub, from any connection."""
        return [
            control
            for invocation in self.h.openshock.invocations
            if invocation.target == "ControlV2"
            for control in invocation.arguments[0]
            if control["type"] != 0
        ]

    async def fired(self, count: int) -> None:
        """Wait until `count` firing controls reached the hub (an allowed control's frame may
        follow its first answer), and check there are no more."""
        await self.h.openshock.wait_until(
            lambda: len(self.firing_frames()) >= count, what=f"{count} firing frames"
        )
        assert len(self.firing_frames()) == count

    def pause_requests(self, shocker: FakeShocker) -> list[Any]:
        return [
            request.body
            for request in self.h.openshock.requests_to(f"/1/shockers/{shocker.id}/pause")
            if request.method == "POST"
        ]

    async def refresh(self, user: DiscordUser) -> None:
        account = await self.h.storage.accounts.by_discord_user(user.id)
        assert account is not None
        hub = self.h.bot.hubs.get(account.id)
        assert hub is not None
        await hub.refresh_shockers()


async def _grant_everyone(h: Harness, guild_id: int) -> None:
    await h.storage.grants.grant(
        guild_id=guild_id,
        target_kind=GrantTarget.ROLE,
        target_id=guild_id,
        shocker_id=None,
        max_intensity=None,
        max_duration_ms=None,
        cooldown_ms=None,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        created_by=1,
    )


@pytest.fixture
async def world(harness: Harness) -> World:
    h = harness
    os = h.openshock
    alice_os, bob_os = os.add_user("Alice"), os.add_user("Bob")
    device = os.add_device(alice_os, "Alice's hub")
    collar, leg = os.add_shocker(device, "Collar"), os.add_shocker(device, "Leg")
    os.share_shocker(collar, bob_os)  # Bob reaches the collar through an OpenShock share
    alice, bob, carl = h.discord_user("alice"), h.discord_user("bob"), h.discord_user("carl")
    other_guild = h.discord.add_guild(name="Other").id
    for guild_id in (h.discord.guild_id, other_guild):
        for user in (alice, bob, carl):
            h.discord.add_member(guild_id, user)
        await _grant_everyone(h, guild_id)
    await h.link(alice, alice_os)
    await h.link(bob, bob_os)
    other = Interactions(h.discord.app_id, other_guild, tree=h.bot.tree)
    return World(h, alice, bob, carl, alice_os, bob_os, collar, leg, other_guild, other)


async def _bob_shares_the_collar_in(world: World, *guild_ids: int) -> None:
    for guild_id in guild_ids:
        text = await world.slash(
            "shockers share", world.bob, guild_id=guild_id, shocker=world.collar_id
        )
        assert text.startswith("Shared **Collar** here"), text


async def test_panic_by_the_owner_leaves_no_way_to_make_a_reshared_collar_fire(
    world: World,
) -> None:
    h = world.h
    guilds = (world.guild, world.other_guild)
    await _bob_shares_the_collar_in(world, *guilds)
    # Carl can shock Alice's collar through Bob's share: the path works.
    await world.control("shock", world.carl)
    await world.fired(1)
    await h.openshock.wait_until(lambda: len(h.openshock.executed_controls) == 1, what="shock")

    text = await world.slash("panic", world.alice)

    assert "Shares of your shockers by others are paused in every server too: " in text
    assert f"**Collar** by <@{world.bob.id}> in 2 servers" in text
    assert "⏸️ Paused on OpenShock: **Collar**, **Leg**." in text
    # Stop reached the collar before OpenShock paused it (a paused shocker drops Stop too).
    stops = [c for c in h.openshock.executed_controls if c.type == 0]
    assert {c.shocker.name for c in stops} == {"Collar", "Leg"}
    assert world.pause_requests(world.collar) == [{"pause": True}]
    assert world.pause_requests(world.leg) == [{"pause": True}]
    assert world.collar.paused and world.leg.paused

    async def nothing_fires() -> None:
        for guild_id in guilds:
            for user in (world.carl, world.bob):
                for kind in CONTROLS:
                    reply, private = await world.control(kind, user, guild_id)
                    assert private and "paused" in reply, (kind, user.name, guild_id, reply)
        assert len(world.firing_frames()) == 1  # only Carl's shock from before the panic

    await nothing_fires()
    # Bob's own resume does not lift the owner's pause, in either guild.
    for guild_id in guilds:
        text = await world.slash("shockers resume", world.bob, guild_id=guild_id)
        assert "Still paused by their owner: **Collar**; only they can lift that." in text
    # Nor does a share again.
    await world.slash("shockers unshare", world.bob, shocker=world.collar_id)
    await _bob_shares_the_collar_in(world, world.guild)
    await _grant_everyone(h, world.guild)
    await nothing_fires()

    text = await world.slash("shockers resume", world.alice)
    assert "Resumed on OpenShock: **Collar**, **Leg**." in text
    assert "Lifted what /panic paused on your shockers in every server" in text
    assert world.pause_requests(world.collar) == [{"pause": True}, {"pause": False}]
    assert not world.collar.paused and not world.leg.paused
    # Everything /panic paused on Bob's shares is lifted, in both guilds.
    for guild_id in guilds:
        await world.control("vibrate", world.carl, guild_id)
    await world.fired(3)


async def test_panic_announces_a_halt_for_the_owners_shockers_shared_by_others(
    world: World,
) -> None:
    await _bob_shares_the_collar_in(world, world.guild)
    heard: list[Halt] = []
    world.h.bot.control.halts.subscribe(heard.append)
    await world.slash("panic", world.alice)
    assert Halt("panic", wearer_id=world.alice.id) in heard
    assert Halt("panic", shocker_id=world.collar_id) in heard
    assert Halt("panic", shocker_id=str(world.leg.id)) in heard
    # What waits to fire on Bob's share of the collar ends, in any guild.
    halt = Halt("panic", shocker_id=world.collar_id)
    assert halt.covers(
        guild_id=world.other_guild, wearer_id=world.bob.id, shocker_id=world.collar_id
    )


async def test_resume_lifts_only_the_openshock_pauses_panic_set(world: World) -> None:
    world.leg.paused = True  # paused by Alice on the website
    await world.refresh(world.alice)
    text = await world.slash("panic", world.alice)
    assert "⏸️ Paused on OpenShock: **Collar**." in text
    assert world.pause_requests(world.leg) == []
    text = await world.slash("shockers resume", world.alice)
    assert "Resumed on OpenShock: **Collar**." in text
    assert not world.collar.paused
    assert world.leg.paused  # still hers
    assert world.pause_requests(world.leg) == []
    # Nothing is left to lift.
    text = await world.slash("shockers resume", world.alice)
    assert "on OpenShock" not in text


async def test_a_token_without_the_pause_scope_still_pauses_every_guild_share(
    world: World,
) -> None:
    world.alice_os.permissions = ["shockers.use"]
    await _bob_shares_the_collar_in(world, world.guild, world.other_guild)
    text = await world.slash("panic", world.alice)
    assert "⚠️ Could not pause on OpenShock: no `shockers.pause` permission" in text
    assert "Paused on OpenShock" not in text
    assert world.pause_requests(world.collar) == []  # the token said so: nothing was tried
    assert not world.collar.paused
    for guild_id in (world.guild, world.other_guild):
        for user in (world.carl, world.bob):
            await world.control("shock", user, guild_id, paused=True)
    assert world.firing_frames() == []


async def test_a_refused_pause_is_told_when_the_permissions_could_not_be_read(
    world: World,
) -> None:
    world.alice_os.permissions = ["shockers.use"]
    # Read first since token scopes: by the list refresh, then by the pause itself.
    world.h.openshock.fail_rest("/2/tokens/self", 500, times=2)
    text = await world.slash("panic", world.alice)
    # Unknown permissions: tried, and OpenShock's 403 is told as the missing permission.
    assert len(world.pause_requests(world.collar)) == 1
    assert "⚠️ Could not pause on OpenShock: no `shockers.pause` permission" in text
    assert "🛑 All your shares are paused" in text


async def test_list_marks_the_owners_shocker_shared_by_someone_else(world: World) -> None:
    await _bob_shares_the_collar_in(world, world.guild)
    share = await world.h.storage.shares.get(world.guild, world.collar_id)
    assert share is not None and share.owner_openshock_id == str(world.alice_os.id)
    mark = f"↳ Your shocker, shared here by <@{world.bob.id}> through OpenShock"
    assert mark in await world.slash("shockers list", world.alice)
    assert "Your shocker" not in await world.slash("shockers list", world.carl)
    assert "Your shocker" not in await world.slash("shockers list", world.bob)
    assert await world.choices("shockers pause", world.alice) == [
        {"name": "Collar (yours, shared here by another member)", "value": world.collar_id}
    ]
    assert await world.choices("shockers pause", world.carl) == []


async def test_the_owner_pauses_and_resumes_a_share_made_by_someone_else(world: World) -> None:
    h = world.h
    await _bob_shares_the_collar_in(world, world.guild)
    heard: list[Halt] = []
    h.bot.control.halts.subscribe(heard.append)

    text = await world.slash("shockers pause", world.alice, shocker=world.collar_id)
    assert text.startswith(f"Paused **Collar** here, shared by <@{world.bob.id}> through OpenShock")
    assert heard == [Halt("pause", guild_id=world.guild, shocker_id=world.collar_id)]
    assert "⏸️ paused by its owner" in await world.slash("shockers list", world.carl)
    # Both are told the owner paused it: Bob did not ("You paused…" would mislead him).
    for user in (world.carl, world.bob):
        reply, private = await world.control("shock", user)
        assert (
            private
            and reply == "The shocker's owner has paused it; only Stop works until they resume it."
        )
    # Only here: the other guild is not paused.
    await _bob_shares_the_collar_in(world, world.other_guild)
    await world.control("shock", world.carl, world.other_guild)
    await world.fired(1)

    # Bob can neither resume it nor shake it off by sharing again.
    text = await world.slash("shockers resume", world.bob, shocker=world.collar_id)
    assert "Its owner has paused it too; only they can lift that." in text
    await world.slash("shockers unshare", world.bob, shocker=world.collar_id)
    text = await world.slash("shockers share", world.bob, shocker=world.collar_id)
    assert "Its owner has paused it here: only Stop works until they resume it." in text
    await _grant_everyone(h, world.guild)
    await world.control("shock", world.carl, paused=True)
    assert len(world.firing_frames()) == 1

    assert await world.slash("shockers resume", world.alice, shocker=world.collar_id) == (
        "Resumed **Collar** here."
    )
    await world.control("shock", world.carl)
    await world.fired(2)


async def test_the_owners_pause_of_everything_covers_shares_by_others_now_and_later(
    world: World,
) -> None:
    await _bob_shares_the_collar_in(world, world.guild)
    text = await world.slash("shockers pause", world.alice)
    assert f"Also paused here, as their owner: **Collar** (shared by <@{world.bob.id}>)" in text
    await world.control("shock", world.carl, paused=True)
    await world.slash("shockers unshare", world.bob, shocker=world.collar_id)
    await _bob_shares_the_collar_in(world, world.guild)
    await _grant_everyone(world.h, world.guild)
    await world.control("shock", world.carl, paused=True)
    assert world.firing_frames() == []
    assert await world.slash("shockers resume", world.alice) == "Resumed all your shockers here."
    await world.control("shock", world.carl)
    await world.fired(1)


async def test_the_owner_unshares_a_share_made_by_someone_else(world: World) -> None:
    h = world.h
    await _bob_shares_the_collar_in(world, world.guild)
    await h.storage.grants.grant(
        guild_id=world.guild,
        target_kind=GrantTarget.MEMBER,
        target_id=world.carl.id,
        shocker_id=world.collar_id,
        max_intensity=None,
        max_duration_ms=None,
        cooldown_ms=None,
        allow_shock=True,
        allow_vibrate=True,
        allow_sound=True,
        created_by=1,
    )
    heard: list[Halt] = []
    h.bot.control.halts.subscribe(heard.append)
    text = await world.slash("shockers unshare", world.alice, shocker=world.collar_id)
    assert text.startswith("**Collar** is no longer usable here")
    assert f"It was shared by <@{world.bob.id}> through OpenShock" in text
    assert heard == [Halt("unshare", guild_id=world.guild, shocker_id=world.collar_id)]
    assert await h.storage.shares.get(world.guild, world.collar_id) is None
    grants = await h.storage.grants.for_member(world.guild, world.carl.id, [])
    assert [g.shocker_id for g in grants] == [None]  # the collar's own grant went with it
    await world.control("shock", world.carl)
    assert world.firing_frames() == []


async def test_a_member_cannot_pause_or_unshare_a_share_of_a_shocker_they_do_not_own(
    world: World,
) -> None:
    """Bob reaches the collar but does not own it: Alice's own share of it is not his."""
    await world.slash("shockers share", world.alice, shocker=world.collar_id)
    for command in ("shockers pause", "shockers unshare", "shockers resume"):
        text = await world.slash(command, world.bob, shocker=world.collar_id)
        assert text.startswith("You have not shared that shocker in this server"), command
    (share,) = await world.h.storage.shares.in_guild(world.guild)
    assert not share.paused
