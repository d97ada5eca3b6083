"""Expiring grants end to end: `/permissions grant … expires:1h` works until its end and is refused
from then on (the decision checks it, also after a restart), `/permissions list` shows the end,
a wrong duration gets one sentence, and ended grants are deleted by a timer and at start-up."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

import pytest

from bot.domain.grants import GrantTarget
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.openshock_server import FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness

HOUR = 3600


@dataclass
class Scene:
    h: Harness
    alice: DiscordUser  # the wearer
    bob: DiscordUser
    admin: DiscordUser
    alice_os: OpenShockUser
    collar: FakeShocker

    async def admin_command(self, name: str, **options: Any) -> str:
        payload = self.h.ix.slash(name, options, user=self.admin, admin=True)
        await self.h.run(payload)
        return self.h.discord.replies_for(payload).text

    async def shock(self) -> str:
        payload = self.h.ix.slash(
            "shock", {"shocker": str(self.collar.id), "intensity": 10, "duration": 1}, user=self.bob
        )
        await self.h.run(payload)
        return self.h.discord.replies_for(payload).text

    def shift_clock(self, seconds: float) -> None:
        """The pipeline's clock, `seconds` ahead of the real one."""
        self.h.bot.control.facts.clock = lambda: time.time() + seconds

    async def reconnect(self) -> None:
        account = await self.h.storage.accounts.by_discord_user(self.alice.id)
        assert account is not None
        await self.h.ready(account.id)

    async def after_the_clean_up_at(self, moment: float) -> list[Any]:
        """The grants left once the clean-up timer due at `moment` has run."""
        # The scheduler's timer fires at `moment`, before this later wake-up; then wait for it.
        await asyncio.sleep(max(0.0, moment - time.time()) + 0.05)
        async with asyncio.timeout(5):
            await self.h.bot.scheduler.idle()
        return await self.h.storage.grants.in_guild(self.h.discord.guild_id)

    async def grant_ending_at(self, expires_at: float) -> None:
        """A grant for bob written to storage (shorter than the command's one-minute minimum)."""
        await self.h.storage.grants.grant(
            guild_id=self.h.discord.guild_id,
            target_kind=GrantTarget.MEMBER,
            target_id=self.bob.id,
            shocker_id=None,
            max_intensity=None,
            max_duration_ms=None,
            cooldown_ms=None,
            allow_shock=True,
            allow_vibrate=True,
            allow_sound=True,
            created_by=self.admin.id,
            expires_at=expires_at,
        )


@pytest.fixture
async def scene(harness: Harness) -> Scene:
    h = harness
    alice_os = h.openshock.add_user("Alice")
    collar = h.openshock.add_shocker(h.openshock.add_device(alice_os, "Hub"), "Collar")
    alice, bob, admin = h.discord_user("alice"), h.discord_user("bob"), h.discord_user("admin")
    await h.link(alice, alice_os)
    await h.share(alice, str(collar.id))
    return Scene(h, alice, bob, admin, alice_os, collar)


async def stored_grants(h: Harness) -> list[Any]:
    return await h.storage.grants.in_guild(h.discord.guild_id)


async def test_a_grant_works_until_it_ends_and_not_after_also_across_a_restart(
    scene: Scene,
) -> None:
    h = scene.h
    before = time.time()
    text = await scene.admin_command("permissions grant", who=scene.bob, expires="1h")
    assert text.startswith(f"Granted: <@{scene.bob.id}> → all shockers: ")
    (grant,) = await stored_grants(h)
    assert grant.expires_at is not None
    assert before + HOUR <= grant.expires_at <= time.time() + HOUR
    assert f"ends <t:{int(grant.expires_at)}:R>" in text
    listed = await scene.admin_command("permissions list")
    assert f"<@{scene.bob.id}> → all shockers: shock, vibrate, sound, ends <t:" in listed

    assert "✅ delivered" in await scene.shock()
    scene.shift_clock(HOUR - 5)
    assert "✅ delivered" in await scene.shock()
    scene.shift_clock(HOUR + 1)
    assert "You do not have permission" in await scene.shock()

    await h.restart()
    await scene.reconnect()
    assert len(await stored_grants(h)) == 1  # not yet ended by the real clock: kept
    scene.shift_clock(HOUR + 1)
    assert "You do not have permission" in await scene.shock()
    frames = [i for i in h.openshock.invocations if i.target == "ControlV2"]
    assert len(frames) == 2


async def test_an_ended_grant_is_deleted_by_the_timer(scene: Scene) -> None:
    h = scene.h
    ends = time.time() + 0.3
    await scene.grant_ending_at(ends)
    # A grant with an end (re)arms the clean-up at the earliest end of all.
    await scene.admin_command("permissions grant", who=scene.admin, expires="2h")
    assert len(await stored_grants(h)) == 2
    (left,) = await scene.after_the_clean_up_at(ends)
    assert left.target_id == scene.admin.id
    assert "You do not have permission" in await scene.shock()


async def test_the_clean_up_is_armed_again_at_start(scene: Scene) -> None:
    h = scene.h
    ends = time.time() + 1.5
    await scene.grant_ending_at(ends)
    await h.restart()
    assert "grant-expiry" in h.bot.scheduler  # armed by the start-up sweep
    assert await scene.after_the_clean_up_at(ends) == []


async def test_grants_that_ended_while_the_bot_was_down_are_deleted_at_start(
    scene: Scene,
) -> None:
    h = scene.h
    await scene.grant_ending_at(time.time() - 1)
    assert "You do not have permission" in await scene.shock()  # the decision, before the sweep
    await h.restart()
    assert await stored_grants(h) == []


@pytest.mark.parametrize(
    ("value", "sentence"),
    [
        ("30s", "`expires`: `30s` is not a duration such as `30m`, `2h`, `1d`, `1w` or `1h30m`."),
        ("0m", "`expires`: A duration must be at least 1 minute."),
        ("400d", "`expires`: A duration can be at most a year."),
        ("tomorrow", "`expires`: `tomorrow` is not a duration such as `30m`, `2h`, `1d`, `1w`"),
    ],
)
async def test_a_wrong_duration_gets_one_sentence_and_grants_nothing(
    scene: Scene, value: str, sentence: str
) -> None:
    text = await scene.admin_command("permissions grant", who=scene.bob, expires=value)
    assert text.startswith(sentence)
    assert await stored_grants(scene.h) == []


async def test_a_grant_without_expires_never_ends(scene: Scene) -> None:
    text = await scene.admin_command("permissions grant", who=scene.bob)
    assert re.search(r"ends <t:", text) is None
    (grant,) = await stored_grants(scene.h)
    assert grant.expires_at is None
    scene.shift_clock(400 * 86_400)
    assert "✅ delivered" in await scene.shock()
