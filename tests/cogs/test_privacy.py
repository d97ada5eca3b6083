"""Privacy: public text shows people by their Discord identity (a mention, or their display name
where a mention cannot render), never by their OpenShock account name."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.openshock_server import FakeShocker
from tests.harness import Harness

REAL_NAME = "jane.doe.realname"


@dataclass
class Scene:
    h: Harness
    jane: DiscordUser
    bob: DiscordUser
    collar: FakeShocker


@pytest.fixture
async def scene(harness: Harness) -> Scene:
    h = harness
    jane_os = h.openshock.add_user(REAL_NAME)
    collar = h.openshock.add_shocker(h.openshock.add_device(jane_os, "Hub", online=True), "Collar")
    jane = DiscordUser.make("jane", global_name="Jane")
    h.discord.add_member(None, jane, nick="Janie")
    bob, admin = h.discord_user("bob"), h.discord_user("admin")
    await h.link(jane, jane_os)
    await h.share(jane, str(collar.id))
    grant = h.ix.slash(
        "permissions grant",
        {"who": h.ix.everyone},
        user=admin,
        admin=True,
        types={"who": "mentionable"},
    )
    await h.run(grant)
    return Scene(h, jane, bob, collar)


async def test_a_public_control_reply_mentions_the_wearer_without_pinging(scene: Scene) -> None:
    h = scene.h
    payload = h.ix.slash(
        "shock", {"shocker": str(scene.collar.id), "intensity": 10, "duration": 1}, user=scene.bob
    )
    await h.run(payload)
    record = h.discord.replies_for(payload)
    assert not record.ephemeral
    assert f"→ Collar (<@{scene.jane.id}>)" in record.text
    assert "realname" not in str(record.callbacks)
    callback = record.callback
    assert callback is not None
    assert callback["data"]["allowed_mentions"] == {"parse": []}


async def test_autocomplete_names_the_wearer_by_display_name(scene: Scene) -> None:
    h = scene.h
    payload = h.ix.autocomplete("shock", "shocker", "", user=scene.bob)
    await h.run(payload)
    names = [c["name"] for c in h.discord.replies_for(payload).choices or []]
    assert names == ["Collar (Janie)"]  # the nickname in this guild, fetched from Discord


async def test_autocomplete_falls_back_to_a_member_when_discord_cannot_say(scene: Scene) -> None:
    h = scene.h
    h.discord.fail(403, count=None, method="GET", path=rf"/guilds/\d+/members/{scene.jane.id}$")
    payload = h.ix.autocomplete("stop", "shocker", "", user=scene.bob)
    await h.run(payload)
    names = [c["name"] for c in h.discord.replies_for(payload).choices or []]
    assert names == ["Collar (a member)"]


async def test_the_shockers_list_shows_the_wearer_by_mention(scene: Scene) -> None:
    h = scene.h
    listing = h.ix.slash("shockers list", user=scene.bob)
    await h.run(listing)
    text = h.discord.replies_for(listing).text
    assert f"<@{scene.jane.id}>" in text
    assert "realname" not in text
