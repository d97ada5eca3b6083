"""Only members: a share works only while its wearer is a member of the guild. The bot has no
members intent, so it asks Discord's member endpoint (an answer at most a minute old)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.openshock_server import FakeShocker
from tests.harness import Harness


@dataclass
class Scene:
    h: Harness
    alice: DiscordUser
    bob: DiscordUser
    collar: FakeShocker
    now: list[float]

    def frames(self) -> list[Any]:
        return [i for i in self.h.openshock.invocations if i.target == "ControlV2"]

    async def command(self, name: str, **options: Any) -> str:
        payload = self.h.ix.slash(name, {"shocker": str(self.collar.id), **options}, user=self.bob)
        await self.h.run(payload)
        return self.h.discord.replies_for(payload).text

    def later(self, seconds: float) -> None:
        self.now[0] += seconds

    def leave(self, user: DiscordUser) -> None:
        del self.h.discord.guild(None).members[user.id]


@pytest.fixture
async def scene(harness: Harness) -> Scene:
    h = harness
    now = [1000.0]
    h.bot.members.clock = lambda: now[0]
    alice_os = h.openshock.add_user("Alice")
    collar = h.openshock.add_shocker(h.openshock.add_device(alice_os, "Hub", online=True), "Collar")
    alice, bob, admin = h.discord_user("alice"), h.discord_user("bob"), h.discord_user("admin")
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id))
    grant = h.ix.slash(
        "permissions grant",
        {"who": h.ix.everyone},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await h.run(grant)
    return Scene(h, alice, bob, collar, now)


def _member_requests(h: Harness, user: DiscordUser) -> list[Any]:
    return h.discord.requests_matching("GET", rf"/guilds/\d+/members/{user.id}$")


async def test_a_wearer_who_left_is_not_available_within_a_minute(scene: Scene) -> None:
    assert "delivered" in await scene.command("shock", intensity=10, duration=1)
    assert len(scene.frames()) == 1

    scene.leave(scene.alice)
    scene.later(61)  # the answer Discord gave is now too old to decide on
    text = await scene.command("shock", intensity=10, duration=1)
    assert text == "This shocker is not available here."
    assert "not available here" in await scene.command("stop")
    assert len(scene.frames()) == 1  # nothing more was sent
    assert _member_requests(scene.h, scene.alice)


async def test_a_fresh_answer_is_served_from_memory(scene: Scene) -> None:
    await scene.command("shock", intensity=10, duration=1)
    asked = len(_member_requests(scene.h, scene.alice))
    scene.later(10)
    await scene.command("vibrate", intensity=10, duration=1)
    assert len(_member_requests(scene.h, scene.alice)) == asked
    assert len(scene.frames()) == 2


async def test_lists_and_autocomplete_leave_out_a_wearer_who_left(scene: Scene) -> None:
    h = scene.h
    scene.leave(scene.alice)
    scene.later(61)
    listing = h.ix.slash("shockers list", user=scene.bob)
    await h.run(listing)
    assert "Collar" not in h.discord.replies_for(listing).text
    choices = h.ix.autocomplete("shock", "shocker", "", user=scene.bob)
    await h.run(choices)
    assert h.discord.replies_for(choices).choices == []


async def test_when_membership_cannot_be_checked_only_stop_goes_through(scene: Scene) -> None:
    h = scene.h
    h.discord.fail(403, count=None, method="GET", path=rf"/guilds/\d+/members/{scene.alice.id}$")
    scene.later(61)
    text = await scene.command("shock", intensity=10, duration=1)
    assert "still a member" in text
    assert scene.frames() == []
    await scene.command("stop")
    (frame,) = scene.frames()
    assert frame.arguments[0][0]["type"] == 0


async def test_the_wearers_own_command_needs_no_lookup(harness: Harness) -> None:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    collar = h.openshock.add_shocker(h.openshock.add_device(alice_os, "Hub", online=True), "Collar")
    alice = h.discord_user("alice")
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id))
    payload = h.ix.slash(
        "vibrate", {"shocker": str(collar.id), "intensity": 10, "duration": 1}, user=alice
    )
    await h.run(payload)
    assert "delivered" in h.discord.replies_for(payload).text
    assert _member_requests(h, alice) == []
