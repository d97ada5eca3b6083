"""/feed through the real command tree, with and without the guild cache."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from typing import Any

import discord
import pytest

from bot.cogs.feed import compute_permissions
from bot.services import feed_service as feeds
from bot.storage.models import FeedKind
from tests.fakes.discord_api import FakeChannel, overwrite
from tests.fakes.interactions import load_guild
from tests.harness import Harness
from tests.services.feed_helpers import (
    FAST_FEEDS,
    all_posted,
    eventually,
    joined,
    linked_wearer,
    log_event,
    pending_count,
    texts,
)

VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
EMBED_LINKS = 1 << 14


@pytest.fixture(autouse=True)
def fast_feeds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds, "DEFAULT_TIMINGS", FAST_FEEDS)


def channel_requests(h: Harness, channel: FakeChannel) -> int:
    return len(h.discord.requests_matching("GET", rf"^/channels/{channel.id}$"))


async def set_feed(h: Harness, kind: str, channel: FakeChannel, **kwargs: object) -> str:
    admin = h.discord_user("admin")
    payload = h.ix.slash(
        "feed set", {"kind": kind, "channel": channel}, user=admin, admin=True, **kwargs
    )
    await h.run(payload)
    reply = h.discord.replies_for(payload)
    assert reply.ephemeral
    return reply.text


async def test_members_without_manage_server_cannot_set_a_feed(harness: Harness) -> None:
    h = harness
    channel = h.discord.add_channel("feed")
    bob = h.discord_user("bob")
    payload = h.ix.slash("feed set", {"kind": "controls", "channel": channel}, user=bob)
    await h.run(payload)
    assert "Manage Server" in h.discord.replies_for(payload).text
    assert await h.storage.feeds.in_guild(h.discord.guild_id) == []


async def test_set_checks_the_bots_permissions_over_rest_without_a_cache(
    harness: Harness,
) -> None:
    h = harness
    channel = h.discord.add_channel("controls")

    text = await set_feed(h, "controls", channel)

    assert "The **controls** feed" in text and f"<#{channel.id}>" in text
    assert "consent" in text
    assert channel_requests(h, channel) == 1  # computed from the channel, guild and member
    feed = await h.storage.feeds.get(h.discord.guild_id, FeedKind.CONTROLS)
    assert feed is not None and feed.channel_id == channel.id and feed.enabled


async def test_set_is_refused_over_rest_naming_the_missing_permission(harness: Harness) -> None:
    h = harness
    everyone_cannot_send = overwrite(h.discord.guild_id, deny=SEND_MESSAGES)
    channel = h.discord.add_channel("quiet", permission_overwrites=[everyone_cannot_send])

    text = await set_feed(h, "devices", channel)

    assert "I need the Send Messages permission there" in text
    assert await h.storage.feeds.get(h.discord.guild_id, FeedKind.DEVICES) is None


async def test_set_uses_the_guild_cache_when_present(harness: Harness) -> None:
    h = harness
    channel = h.discord.add_channel("updates")
    load_guild(h.bot, h.discord)

    text = await set_feed(h, "updates", channel)

    assert "The **updates** feed" in text
    assert channel_requests(h, channel) == 0
    assert await h.storage.feeds.get(h.discord.guild_id, FeedKind.UPDATES) is not None


async def test_set_is_refused_from_the_cache_naming_the_missing_permission(
    harness: Harness,
) -> None:
    h = harness
    bot_cannot_embed = overwrite(h.discord.bot_user, deny=EMBED_LINKS)
    channel = h.discord.add_channel("plain", permission_overwrites=[bot_cannot_embed])
    load_guild(h.bot, h.discord)

    text = await set_feed(h, "controls", channel)

    assert "I need the Embed Links permission there" in text
    assert channel_requests(h, channel) == 0
    assert await h.storage.feeds.get(h.discord.guild_id, FeedKind.CONTROLS) is None


async def test_a_channel_the_bot_cannot_see_is_refused(harness: Harness) -> None:
    h = harness
    hidden = overwrite(h.discord.guild_id, deny=VIEW_CHANNEL)
    channel = h.discord.add_channel("secret", permission_overwrites=[hidden])

    text = await set_feed(h, "controls", channel)

    assert "View Channel" in text


async def test_remove_and_list(harness: Harness) -> None:
    h = harness
    admin = h.discord_user("admin")
    controls = h.discord.add_channel("controls")
    devices = h.discord.add_channel("devices")
    await h.storage.feeds.set(h.discord.guild_id, FeedKind.CONTROLS, controls.id)
    await h.storage.feeds.set(h.discord.guild_id, FeedKind.DEVICES, devices.id)
    await h.storage.feeds.disable_channel(devices.id, "Missing Permissions")

    listing = h.ix.slash("feed list", user=admin, admin=True)
    await h.run(listing)
    text = h.discord.replies_for(listing).text
    assert f"controls: <#{controls.id}>" in text
    assert f"devices: Stopped: I lost access to <#{devices.id}> (Missing Permissions)" in text
    assert "updates: Off." in text

    remove = h.ix.slash("feed remove", {"kind": "controls"}, user=admin, admin=True)
    await h.run(remove)
    assert "The **controls** feed is stopped." in h.discord.replies_for(remove).text
    assert await h.storage.feeds.get(h.discord.guild_id, FeedKind.CONTROLS) is None

    again = h.ix.slash("feed remove", {"kind": "updates"}, user=admin, admin=True)
    await h.run(again)
    assert "not set" in h.discord.replies_for(again).text


async def test_setting_a_stopped_feed_again_turns_it_back_on(harness: Harness) -> None:
    h = harness
    channel = h.discord.add_channel("controls")
    await h.storage.feeds.set(h.discord.guild_id, FeedKind.CONTROLS, channel.id)
    await h.storage.feeds.disable_channel(channel.id, "Missing Permissions")

    await set_feed(h, "controls", channel)

    feed = await h.storage.feeds.get(h.discord.guild_id, FeedKind.CONTROLS)
    assert feed is not None and feed.enabled


def test_the_feed_group_is_for_admins_in_guilds_only(harness: Harness) -> None:
    group = harness.bot.tree.get_command("feed")
    assert isinstance(group, discord.app_commands.Group)
    assert group.guild_only
    assert group.default_permissions == discord.Permissions(manage_guild=True)
    assert sorted(c.name for c in group.commands) == ["list", "remove", "set"]
    kind = group.get_command("set").get_parameter("kind")  # type: ignore[union-attr]
    assert [c.value for c in kind.choices] == ["controls", "devices", "updates"]


def test_permissions_follow_discords_overwrite_order() -> None:
    guild, role, bot = 1, 2, 3
    roles = {guild: VIEW_CHANNEL | SEND_MESSAGES, role: EMBED_LINKS}

    def perms(*overwrites: dict[str, object], member_roles: tuple[int, ...] = (role,)) -> int:
        return compute_permissions(
            guild_id=guild,
            owner_id=99,
            member_id=bot,
            member_role_ids=member_roles,
            role_permissions=roles,
            overwrites=list(overwrites),
        ).value

    everything = VIEW_CHANNEL | SEND_MESSAGES | EMBED_LINKS
    assert perms() == everything
    assert perms(overwrite(guild, deny=SEND_MESSAGES)) == VIEW_CHANNEL | EMBED_LINKS
    # A role's allow beats @everyone's deny; the member's own deny beats both.
    assert perms(overwrite(guild, deny=SEND_MESSAGES), overwrite(role, allow=SEND_MESSAGES)) == (
        everything
    )
    assert (
        perms(overwrite(role, allow=SEND_MESSAGES), overwrite(bot, deny=SEND_MESSAGES, member=True))
        == VIEW_CHANNEL | EMBED_LINKS
    )
    roles[role] |= 1 << 3  # administrator
    assert perms(overwrite(bot, deny=everything, member=True)) == discord.Permissions.all().value


async def test_moving_a_feed_carries_its_pending_events_to_the_new_channel(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    old = h.discord.add_channel("old-controls")
    new = h.discord.add_channel("new-controls")
    await set_feed(h, "controls", old)
    h.discord.fail_channel(old, 429, count=None, retry_after=0.01)  # Discord keeps refusing
    for i in range(3):
        await h.openshock.push(
            alice.os_user, "Log", *log_event(alice.shocker, custom_name=f"u{i:03d}x")
        )

    async def three_pending() -> bool:
        return await pending_count(h) == 3

    await eventually(three_pending, "the three events to wait for the old channel")

    text = await set_feed(h, "controls", new)

    assert f"It moved from <#{old.id}>. 3 events not yet posted there" in text
    await h.discord.wait_for(lambda: joined(h, new.id).count("by **") == 3)
    await all_posted(h)
    assert sorted(re.findall(r"u(\d{3})x", joined(h, new.id))) == ["000", "001", "002"]
    assert texts(h, old.id) == []

    async def old_released() -> bool:
        channels, locked, _ = h.bot.feeds.publisher.in_memory()
        return old.id not in channels | locked

    await eventually(old_released, "the old channel's worker to be released")


async def test_setting_a_feed_in_its_own_channel_again_moves_nothing(harness: Harness) -> None:
    h = harness
    channel = h.discord.add_channel("controls")
    await set_feed(h, "controls", channel)

    text = await set_feed(h, "controls", channel)

    assert "moved" not in text


async def test_a_move_waits_for_the_post_the_old_channel_is_making(harness: Harness) -> None:
    """The old channel's worker has sent a post Discord has not answered yet: the move waits for
    it, so that event is posted there once and not carried to the new channel too."""
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    old = h.discord.add_channel("old-controls")
    new = h.discord.add_channel("new-controls")
    await set_feed(h, "controls", old)
    sending, answer = asyncio.Event(), asyncio.Event()
    publisher = h.bot.feeds.publisher
    real_channel = publisher.discord.channel

    class Slow:
        def __init__(self, channel: discord.PartialMessageable) -> None:
            self.channel = channel

        async def send(self, *args: Any, **kwargs: Any) -> discord.Message:
            sending.set()
            await answer.wait()
            return await self.channel.send(*args, **kwargs)

    publisher.discord = dataclasses.replace(
        publisher.discord,
        channel=lambda cid: Slow(real_channel(cid)) if cid == old.id else real_channel(cid),
    )
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name="u000x"))
    await asyncio.wait_for(sending.wait(), 10)

    read_feed = h.storage.feeds.get
    moving = asyncio.Event()

    async def get_then_signal(guild_id: int, kind: FeedKind) -> Any:
        feed = await read_feed(guild_id, kind)
        moving.set()  # set_feed goes on to wait for the old channel without yielding before
        return feed

    h.storage.feeds.get = get_then_signal  # type: ignore[method-assign]
    move = asyncio.create_task(set_feed(h, "controls", new))
    await asyncio.wait_for(moving.wait(), 10)
    answer.set()
    text = await asyncio.wait_for(move, 10)

    assert "It moved from" in text and "not yet posted" not in text
    await all_posted(h)
    assert joined(h, old.id).count("u000x") == 1
    assert texts(h, new.id) == []
