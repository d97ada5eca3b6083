"""What the feeds keep in memory is let go when its feed, guild or account goes away, and stored
events written by an earlier version of the bot are still posted."""

from __future__ import annotations

import pytest

from bot.storage.feeds import DeliveryTarget
from bot.storage.models import FeedKind
from tests.fakes.interactions import load_guild
from tests.harness import Harness
from tests.services.feed_helpers import (
    all_posted,
    eventually,
    feed_channel,
    joined,
    linked_wearer,
    log_event,
    pending_count,
    texts,
)


def workers(h: Harness) -> set[int]:
    channels, _, _ = h.bot.feeds.publisher.in_memory()
    return channels


def locks(h: Harness) -> set[int]:
    _, locked, _ = h.bot.feeds.publisher.in_memory()
    return locked


def edited_messages(h: Harness) -> set[int]:
    _, _, messages = h.bot.feeds.publisher.in_memory()
    return messages


def device_posts(h: Harness) -> set[tuple[int, str]]:
    return h.bot.feeds.recorder.remembered_device_posts()


async def released(h: Harness, channel_id: int) -> None:
    async def gone() -> bool:
        return channel_id not in workers(h) and channel_id not in locks(h)

    await eventually(gone, f"the worker of channel {channel_id} to be released")


async def attempted(h: Harness, channel_id: int) -> None:
    await h.discord.wait_for(
        lambda: h.discord.requests_matching("POST", rf"^/channels/{channel_id}/messages$")
    )


async def test_a_channels_worker_leaves_when_nothing_is_pending(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)

    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name="u000x"))
    await h.discord.wait_for(lambda: "u000x" in joined(h, channel))

    await released(h, channel)
    await all_posted(h)


async def test_removing_a_feed_ends_its_retrying_worker_and_drops_its_pending(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    h.discord.fail_channel(channel, 429, count=None, retry_after=0.01)  # never accepted
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker))
    await attempted(h, channel)
    assert channel in workers(h)

    admin = h.discord_user("admin")
    remove = h.ix.slash("feed remove", {"kind": "controls"}, user=admin, admin=True)
    await h.run(remove)

    assert "is stopped" in h.discord.replies_for(remove).text
    await released(h, channel)
    assert await pending_count(h) == 0
    assert texts(h, channel) == []


async def test_removing_the_devices_feed_forgets_its_device_changes(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.DEVICES)
    await h.openshock.set_device_online(alice.device, False)
    await h.discord.wait_for(lambda: "went offline" in joined(h, channel))
    assert device_posts(h) == {(h.discord.guild_id, str(alice.device.id))}

    assert await h.bot.feeds.remove_feed(h.discord.guild_id, FeedKind.DEVICES) is not None

    assert device_posts(h) == set()
    await released(h, channel)


async def test_leaving_a_guild_drops_its_pending_posts_and_releases_what_it_held(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    controls = await feed_channel(h, FeedKind.CONTROLS)
    devices = await feed_channel(h, FeedKind.DEVICES)
    h.discord.fail_channel(controls, 429, count=None, retry_after=0.01)
    await h.openshock.set_device_online(alice.device, False)
    await h.discord.wait_for(lambda: "went offline" in joined(h, devices))
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker))
    await attempted(h, controls)
    assert device_posts(h) and controls in workers(h)

    # The gateway's GUILD_DELETE for a guild the bot was removed from.
    load_guild(h.bot, h.discord)
    h.bot._connection.parse_guild_delete({"id": str(h.discord.guild_id)})

    await released(h, controls)
    assert device_posts(h) == set()
    assert await pending_count(h) == 0
    assert texts(h, controls) == []
    # The feeds stay set, for when the bot is invited back.
    assert await h.storage.feeds.get(h.discord.guild_id, FeedKind.CONTROLS) is not None


async def test_unlinking_an_account_releases_its_devices_and_running_updates(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    devices = await feed_channel(h, FeedKind.DEVICES)
    updates = await feed_channel(h, FeedKind.UPDATES)
    device = str(alice.device.id)
    await h.openshock.set_device_online(alice.device, False)
    await h.openshock.push(alice.os_user, "OtaInstallStarted", device, 4, "1.5.0")
    await h.discord.wait_for(lambda: "went offline" in joined(h, devices))
    await h.discord.wait_for(lambda: "Updating **Hub**" in joined(h, updates))
    assert device_posts(h) and edited_messages(h)

    unlink = h.ix.slash("account unlink", user=alice.user)
    await h.run(unlink)
    assert "Unlinked" in h.discord.replies_for(unlink).text
    await h.bot.feeds.sweep()  # the publisher runs it with every prune of old events

    assert device_posts(h) == set()
    assert edited_messages(h) == set()


async def test_the_sweep_keeps_what_still_throttles(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    devices = await feed_channel(h, FeedKind.DEVICES)
    await h.openshock.set_device_online(alice.device, False)
    await h.discord.wait_for(lambda: "went offline" in joined(h, devices))

    await h.bot.feeds.sweep()

    assert device_posts(h) == {(h.discord.guild_id, str(alice.device.id))}


# -- payloads stored by the version before payloads had one ---------------------------------------

# Exactly what the bot wrote into hub_events.payload before stored payloads had a version.
OLD_CONTROLS = (
    '{"sender_name":"Alice","custom_name":"Bob","from_bot":false,"wearer_id":42,"controls":'
    '[{"shocker_id":"s1","shocker_name":"Collar","type":1,"intensity":30,"duration_ms":1000,'
    '"executed_at":1700000000.5}],"shockers_by_guild":{"%d":["s1"]}}'
)
OLD_DEVICE = (
    '{"device_id":"d1","device_name":"Hub","online_before":true,"online":false,'
    '"firmware_before":"1.4.0","firmware":"1.4.0","at":1700000001.0}'
)
OLD_OTA = (
    '{"phase":"progress","device_id":"d1","device_name":"Hub","update_id":7,"version":null,'
    '"task":2,"percent":40.0,"fatal":null,"message":null,"at":1700000002.0}'
)


@pytest.mark.parametrize(
    ("kind", "stored_kind", "payload", "expected"),
    [
        (FeedKind.CONTROLS, "controls", OLD_CONTROLS, "⚡ **Shock** 30 % · 1 s → **Collar**"),
        (FeedKind.DEVICES, "device", OLD_DEVICE, "🔴 **Hub** went offline"),
        (FeedKind.UPDATES, "ota", OLD_OTA, "Step 3/7: Flashing filesystem"),
    ],
)
async def test_events_stored_before_an_upgrade_are_posted_after_it(
    harness: Harness, kind: FeedKind, stored_kind: str, payload: str, expected: str
) -> None:
    h = harness
    alice = await linked_wearer(h)
    channel = await feed_channel(h, kind)
    guild = h.discord.guild_id
    await h.bot.feeds.stop()  # the old version: it stored the event and stopped
    text = payload % guild if "%d" in payload else payload
    await h.storage.events.store(
        alice.account.id, stored_kind, text, [DeliveryTarget(guild, kind, channel)]
    )

    await h.restart()  # the new version

    await h.discord.wait_for(lambda: expected in joined(h, channel))
    await all_posted(h)
