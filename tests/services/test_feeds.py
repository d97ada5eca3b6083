"""The feeds end to end: hub events from the fake OpenShock server reach the fake Discord API."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable

import pytest

from bot.storage.models import FeedKind
from tests.fakes.discord_api import message_text
from tests.harness import Harness
from tests.services.feed_helpers import (
    all_posted,
    event_count,
    eventually,
    feed_channel,
    joined,
    linked_wearer,
    log_event,
    pending_count,
    settled,
    texts,
)


def creates(h: Harness, channel_id: int) -> int:
    return len(h.discord.requests_matching("POST", rf"^/channels/{channel_id}/messages$"))


async def push_burst(h: Harness, wearer_os: object, shocker: object, count: int) -> None:
    for i in range(count):
        await h.openshock.push(
            wearer_os,  # type: ignore[arg-type]
            "Log",
            *log_event(shocker, custom_name=f"u{i:03d}x"),  # type: ignore[arg-type]
        )


def assert_each_once(text: str, count: int) -> None:
    found = re.findall(r"u(\d{3})x", text)
    assert sorted(found) == [f"{i:03d}" for i in range(count)]


async def test_log_reaches_the_guild_where_the_shocker_is_shared_and_no_other(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    here = await feed_channel(h, FeedKind.CONTROLS)
    other_guild = h.discord.add_guild(name="Elsewhere")
    elsewhere = await feed_channel(h, FeedKind.CONTROLS, guild_id=other_guild.id)

    await h.openshock.push(
        alice.os_user, "Log", *log_event(alice.shocker, custom_name="Bob", intensity=30)
    )

    (text,) = await h.discord.wait_for(lambda: texts(h, here))
    assert "⚡ **Shock** 30 % · 1 s → **Collar**" in text
    assert f"(<@{alice.user.id}>)" in text  # the wearer
    assert "by **Bob**" in text
    assert re.search(r"<t:\d+:T>", text)  # when, in each reader's time zone
    # The event was stored with all its deliveries at once: none pending means none for elsewhere.
    await all_posted(h)
    assert texts(h, elsewhere) == []


async def test_a_guild_sees_only_the_controls_of_shockers_shared_there(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    second = h.openshock.add_shocker(alice.device, "Cuff")
    await h.bot.hubs.get(alice.account.id).refresh_shockers()  # type: ignore[union-attr]
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    sender, logs = log_event(alice.shocker, custom_name="Bob")
    logs += log_event(second, custom_name="Bob")[1]

    await h.openshock.push(alice.os_user, "Log", sender, logs)

    (text,) = await h.discord.wait_for(lambda: texts(h, channel))
    assert "Collar" in text
    assert "Cuff" not in text


async def test_the_bots_own_controls_are_marked_with_the_member(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    hub = h.bot.hubs.get(alice.account.id)
    assert hub is not None and hub.connection_id is not None

    own = log_event(alice.shocker, custom_name="Bob (Discord)", connection_id=hub.connection_id)
    await h.openshock.push(alice.os_user, "Log", *own)
    web = log_event(alice.shocker, custom_name=None, control_type=2)
    await h.openshock.push(alice.os_user, "Log", *web)

    await h.discord.wait_for(lambda: joined(h, channel).count("by ") == 2)
    text = joined(h, channel)
    assert "by **Bob** via Discord (this bot)" in text
    assert "〰️ **Vibrate** 20 % · 1 s → **Collar**" in text
    # No custom name: the Discord user who linked the sending account, never "Alice" (the
    # OpenShock account name).
    assert f"by <@{alice.user.id}>" in text
    assert "Alice" not in text


async def test_a_burst_is_combined_into_few_messages_with_every_log_once(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)

    await push_burst(h, alice.os_user, alice.shocker, 200)

    await h.discord.wait_for(lambda: joined(h, channel).count("by **") == 200, timeout=15)
    assert_each_once(joined(h, channel), 200)
    assert len(texts(h, channel)) <= 25, len(texts(h, channel))
    assert h.discord.count_429() == 0


async def test_429s_and_500s_delay_posts_but_lose_none(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    # Six 429s in a row: discord.py waits out five of them itself, then gives up and the
    # publisher backs off; then one 500 (discord.py retries it after a second).
    h.discord.fail_channel(channel, 429, count=6, retry_after=0.02)
    h.discord.fail_channel(channel, 500, count=1)

    await push_burst(h, alice.os_user, alice.shocker, 30)

    await h.discord.wait_for(lambda: joined(h, channel).count("by **") == 30, timeout=20)
    assert_each_once(joined(h, channel), 30)
    statuses = [r.status for r in h.discord.requests_matching(path_regex=f"/channels/{channel}")]
    assert statuses.count(429) == 6 and statuses.count(500) == 1
    await all_posted(h)


async def test_respecting_rate_limits_hits_no_429(harness: Harness) -> None:
    h = harness
    h.discord.enable_rate_limits(messages=2, per=0.5)
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)

    for i in range(8):
        await h.openshock.push(
            alice.os_user, "Log", *log_event(alice.shocker, custom_name=f"u{i:03d}x")
        )
        # One message each: the next event comes once this one is posted.
        await h.discord.wait_for(lambda i=i: f"u{i:03d}x" in joined(h, channel))

    await h.discord.wait_for(lambda: joined(h, channel).count("by **") == 8, timeout=15)
    assert_each_once(joined(h, channel), 8)
    assert h.discord.limiter_429s == 0


async def test_a_restart_mid_burst_posts_the_rest_exactly_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)

    # The second post reaches Discord but the process "dies" before recording it.
    record = h.storage.events.mark_posted
    died = asyncio.Event()
    calls = 0

    async def die_on_second_post(ids: list[int], message_id: int) -> None:
        nonlocal calls
        calls += 1
        if calls >= 2:
            died.set()
            await asyncio.Event().wait()  # never returns; cancelled by the shutdown
        await record(ids, message_id)

    monkeypatch.setattr(h.storage.events, "mark_posted", die_on_second_post)
    await push_burst(h, alice.os_user, alice.shocker, 200)
    await asyncio.wait_for(died.wait(), 10)

    async def all_stored() -> bool:
        return await event_count(h, "controls") == 200

    await eventually(all_stored, "the whole burst to be stored")
    assert 0 < await pending_count(h) < 200

    await h.restart()

    await h.discord.wait_for(lambda: joined(h, channel).count("by **") == 200, timeout=15)
    assert_each_once(joined(h, channel), 200)
    assert h.discord.nonce_dedupes >= 1  # the unrecorded post was created again: same message
    await all_posted(h)


async def test_a_reconnect_or_restart_posts_no_device_change_but_a_real_change_does(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.DEVICES)
    markers = await feed_channel(h, FeedKind.CONTROLS)
    device = str(alice.device.id)

    # A reconnect: the snapshot repeats the known state.
    moment = time.time()
    await h.openshock.drop_connections(alice.os_user)
    await device_saved_after(h, device, moment)
    await settled(h, markers, (alice.os_user, alice.shocker))
    # A restart: a new process, nothing in memory, the snapshot repeats the stored state.
    moment = time.time()
    await h.restart()
    await device_saved_after(h, device, moment)
    await settled(h, markers, (alice.os_user, alice.shocker))
    assert texts(h, channel) == []

    await h.openshock.set_device_online(alice.device, False)
    await h.discord.wait_for(lambda: "went offline" in joined(h, channel))
    await h.openshock.set_device_online(alice.device, True, firmware="1.5.0")
    await h.discord.wait_for(lambda: "is online" in joined(h, channel))
    await h.discord.wait_for(lambda: "firmware 1.4.0 → 1.5.0" in joined(h, channel))

    text = joined(h, channel)
    assert text.count("🔴 **Hub** went offline") == 1
    assert text.count("🟢 **Hub** is online (firmware 1.5.0)") == 1


async def test_a_device_going_offline_during_a_hub_outage_is_posted_on_reconnect(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.DEVICES)
    alice.device.online = False  # silently: the bot is not told until its snapshot

    await h.openshock.drop_connections(alice.os_user)

    await h.discord.wait_for(lambda: "went offline" in joined(h, channel))


async def device_saved_after(h: Harness, device_id: str, moment: float) -> None:
    """Wait until the bot stored the device's state after ``moment`` (it saw a snapshot)."""

    async def saved() -> bool:
        row = await h.storage.db.fetch_one(
            "SELECT updated_at FROM device_states WHERE device_id = ?", (device_id,)
        )
        return row is not None and row["updated_at"] > moment

    await eventually(saved, "the device state to be stored")


async def stored_online(h: Harness, device_id: str) -> list[bool]:
    rows = await h.storage.db.fetch_all(
        "SELECT online FROM device_states WHERE device_id = ?", (device_id,)
    )
    return [bool(row["online"]) for row in rows]


async def test_a_device_going_offline_while_the_bot_is_down_is_posted_after_the_restart(
    harness: Harness,
) -> None:
    """The snapshot after a restart lists online devices only, and the new process remembers
    nothing: the stored state is what tells that the device was online before."""
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.DEVICES)
    markers = await feed_channel(h, FeedKind.CONTROLS)
    device = str(alice.device.id)
    await eventually(
        lambda: _true_when(stored_online(h, device), [True]), "the device stored online"
    )

    await h.stop()
    alice.device.online = False  # nobody is connected to be told
    await h.start()

    await h.discord.wait_for(lambda: "went offline" in joined(h, channel))
    assert await stored_online(h, device) == [False]
    await h.openshock.set_device_online(alice.device, True)
    await h.discord.wait_for(lambda: "is online" in joined(h, channel))
    await settled(h, markers, (alice.os_user, alice.shocker))

    text = joined(h, channel)
    assert text.count("🔴 **Hub** went offline") == 1
    assert text.count("🟢 **Hub** is online") == 1
    assert await event_count(h, "device") == 2


async def test_a_device_coming_online_while_the_bot_is_down_is_posted_after_the_restart(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.DEVICES)
    await h.openshock.set_device_online(alice.device, False)
    await h.discord.wait_for(lambda: "went offline" in joined(h, channel))

    await h.stop()
    alice.device.online = True
    await h.start()

    await h.discord.wait_for(lambda: "is online" in joined(h, channel))
    await all_posted(h)
    assert joined(h, channel).count("is online") == 1


async def test_a_restart_without_changes_posts_nothing(harness: Harness) -> None:
    """One device stays online, another stays offline across the restart."""
    h = harness
    alice = await linked_wearer(h)
    spare = h.openshock.add_device(alice.os_user, "Spare")
    spare_shocker = h.openshock.add_shocker(spare, "Cuff")
    hub = h.bot.hubs.get(alice.account.id)
    assert hub is not None
    await hub.refresh_shockers()
    await h.share(alice.user, str(alice.shocker.id))
    await h.share(alice.user, str(spare_shocker.id))
    channel = await feed_channel(h, FeedKind.DEVICES)
    markers = await feed_channel(h, FeedKind.CONTROLS)
    await h.openshock.set_device_online(spare, False)
    await h.discord.wait_for(lambda: "**Spare** went offline" in joined(h, channel))
    await all_posted(h)
    before = texts(h, channel)
    events = await event_count(h, "device")

    moment = time.time()
    await h.restart()
    await device_saved_after(h, str(alice.device.id), moment)
    await settled(h, markers, (alice.os_user, alice.shocker))

    assert texts(h, channel) == before
    assert await event_count(h, "device") == events
    assert await stored_online(h, str(alice.device.id)) == [True]
    assert await stored_online(h, str(spare.id)) == [False]


async def test_a_device_two_accounts_see_going_offline_during_downtime_is_posted_once(
    harness: Harness,
) -> None:
    """Alice shared one shocker of her device in the guild, and Bob, who reached the device's
    other shocker through an OpenShock share, shared that one: both accounts report the device
    to the guild."""
    h = harness
    alice = await linked_wearer(h)
    cuff = h.openshock.add_shocker(alice.device, "Cuff")
    bob_os = h.openshock.add_user("Bob")
    h.openshock.share_shocker(cuff, bob_os)
    bob = h.discord_user("bob")
    await h.link(bob, bob_os)
    await h.share(alice.user, str(alice.shocker.id))
    await h.share(bob, str(cuff.id))
    channel = await feed_channel(h, FeedKind.DEVICES)
    markers = await feed_channel(h, FeedKind.CONTROLS)
    both = ((alice.os_user, alice.shocker), (bob_os, cuff))
    device = str(alice.device.id)
    await eventually(
        lambda: _true_when(stored_online(h, device), [True, True]), "both accounts' states"
    )

    await h.stop()
    alice.device.online = False
    await h.start()

    await h.discord.wait_for(lambda: "went offline" in joined(h, channel))
    await eventually(
        lambda: _true_when(stored_online(h, device), [False, False]), "both stored offline"
    )
    await settled(h, markers, *both)
    assert joined(h, channel).count("went offline") == 1

    await h.openshock.set_device_online(alice.device, True)
    await h.discord.wait_for(lambda: "is online" in joined(h, channel))
    await settled(h, markers, *both)
    assert joined(h, channel).count("is online") == 1


async def _true_when(value: Awaitable[object], expected: object) -> bool:
    return await value == expected


async def test_an_update_is_one_message_edited_to_its_end(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.UPDATES)
    device = str(alice.device.id)

    await h.openshock.push(alice.os_user, "OtaInstallStarted", device, 7, "1.5.0")
    await h.discord.wait_for(lambda: "Updating **Hub** to **1.5.0**" in joined(h, channel))
    progress_events = 0
    for task in range(7):
        for percent in (0.0, 0.5, 1.0):
            await h.openshock.push(alice.os_user, "OtaInstallProgress", device, 7, task, percent)
            progress_events += 1
    await h.discord.wait_for(lambda: "Step 7/7: Rebooting" in joined(h, channel))
    await h.openshock.push(alice.os_user, "OtaInstallSucceeded", device, 7)

    await h.discord.wait_for(lambda: "✅ **Hub** was updated to **1.5.0**." in joined(h, channel))
    assert len(h.discord.channel_messages(channel)) == 1
    assert creates(h, channel) == 1
    edits = h.discord.requests_matching("PATCH", rf"^/channels/{channel}/messages/\d+$")
    assert 1 <= len(edits) <= progress_events + 1
    await all_posted(h)


async def test_progress_shows_a_bar_with_the_tasks_name(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.UPDATES)
    device = str(alice.device.id)

    await h.openshock.push(alice.os_user, "OtaInstallStarted", device, 3, "1.5.0")
    await h.openshock.push(alice.os_user, "OtaInstallProgress", device, 3, 2, 0.5)

    await h.discord.wait_for(lambda: "Flashing filesystem" in joined(h, channel))
    assert "Step 3/7: Flashing filesystem\n`██████████░░░░░░░░░░` 50 %" in joined(h, channel)


async def test_a_failed_update_says_why_and_whether_it_was_fatal(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.UPDATES)
    device = str(alice.device.id)

    await h.openshock.push(alice.os_user, "OtaInstallStarted", device, 9, "1.5.0")
    await h.openshock.push(alice.os_user, "OtaInstallProgress", device, 9, 4, 40)
    await h.openshock.push(
        alice.os_user, "OtaInstallFailed", device, 9, True, "Flash write @everyone failed"
    )

    await h.discord.wait_for(lambda: "failed (fatal)" in joined(h, channel))
    text = joined(h, channel)
    assert "Flash write @\u200beveryone failed" in text
    assert len(h.discord.channel_messages(channel)) == 1

    await h.openshock.push(alice.os_user, "OtaRollback", device, 9)
    await h.discord.wait_for(lambda: "rolled back" in joined(h, channel))
    assert len(h.discord.channel_messages(channel)) == 1


async def test_a_forbidden_channel_stops_its_feed_tells_the_owner_once_and_others_flow(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    other_guild = h.discord.add_guild(name="Elsewhere")
    await h.share(alice.user, str(alice.shocker.id))
    await h.share(alice.user, str(alice.shocker.id), guild_id=other_guild.id)
    broken = await feed_channel(h, FeedKind.CONTROLS)
    working = await feed_channel(h, FeedKind.CONTROLS, guild_id=other_guild.id)
    h.discord.fail_channel(broken, 403, count=None)

    for i in range(3):
        await h.openshock.push(
            alice.os_user, "Log", *log_event(alice.shocker, custom_name=f"u{i:03d}x")
        )
        await h.discord.wait_for(lambda i=i: f"u{i:03d}x" in joined(h, working))

    feed = await h.storage.feeds.get(h.discord.guild_id, FeedKind.CONTROLS)
    assert feed is not None and not feed.enabled and feed.disabled_reason
    (notice,) = h.discord.dms(h.discord.owner.id)
    assert f"<#{broken}>" in notice["content"] and "`controls`" in notice["content"]
    assert "/feed set" in notice["content"]
    assert texts(h, broken) == []
    assert_each_once(joined(h, working), 3)
    await all_posted(h)


async def test_a_deleted_channel_stops_its_feed(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.DEVICES)
    h.discord.delete_channel(channel)

    await h.openshock.set_device_online(alice.device, False)

    await h.discord.wait_for(lambda: h.discord.dms(h.discord.owner.id))
    feed = await h.storage.feeds.get(h.discord.guild_id, FeedKind.DEVICES)
    assert feed is not None and not feed.enabled


async def test_names_from_outside_are_posted_inert(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h, shocker="__Collar__ @here")
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)

    await h.openshock.push(
        alice.os_user,
        "Log",
        *log_event(alice.shocker, custom_name="@everyone **boss** <@123456789012345678>"),
    )

    (message,) = await h.discord.wait_for(lambda: h.discord.channel_messages(channel))
    text = message_text(message)
    assert "@\u200beveryone \\*\\*boss\\*\\* <@\u200b123456789012345678>" in text
    assert "\\_\\_Collar\\_\\_ @\u200bhere" in text
    assert message["content"] == ""
    assert message["allowed_mentions"] == {"parse": []}


async def test_removing_a_feed_drops_what_it_had_pending(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    h.discord.fail_channel(channel, 429, count=1, retry_after=0.3)  # hold the first post

    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker))
    await h.discord.wait_for(
        lambda: h.discord.requests_matching("POST", rf"^/channels/{channel}/messages$")
    )
    await h.bot.feeds.remove_feed(h.discord.guild_id, FeedKind.CONTROLS)
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker))

    await all_posted(h)
    assert len(texts(h, channel)) <= 1  # at most the post that was already on its way


async def test_old_posted_events_are_pruned(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker))
    await h.discord.wait_for(lambda: texts(h, channel))
    await h.storage.db.execute("UPDATE hub_events SET received_at = ?", (time.time() - 31 * 86400,))

    assert await h.bot.feeds.publisher.prune() == 1
    assert await event_count(h, "controls") == 0


async def test_a_guild_gets_only_what_the_account_that_shared_there_received(
    harness: Harness,
) -> None:
    """Alice's collar reached Bob's account through an OpenShock share, and Bob shared it in
    this guild; Alice shared it only elsewhere. Her controls and her firmware updates, which
    only her account receives, must not appear here: she never agreed to this guild's feeds.
    The device's online state, which Bob's account receives itself, does."""
    h = harness
    alice = await linked_wearer(h)
    bob_os = h.openshock.add_user("Bob")
    h.openshock.share_shocker(alice.shocker, bob_os)
    bob = h.discord_user("bob")
    await h.link(bob, bob_os)
    other_guild = h.discord.add_guild(name="Elsewhere")
    await h.share(bob, str(alice.shocker.id))  # this guild: by Bob
    await h.share(alice.user, str(alice.shocker.id), guild_id=other_guild.id)  # by Alice
    controls_here = await feed_channel(h, FeedKind.CONTROLS)
    controls_there = await feed_channel(h, FeedKind.CONTROLS, guild_id=other_guild.id)
    devices_here = await feed_channel(h, FeedKind.DEVICES)
    devices_there = await feed_channel(h, FeedKind.DEVICES, guild_id=other_guild.id)
    updates_here = await feed_channel(h, FeedKind.UPDATES)
    updates_there = await feed_channel(h, FeedKind.UPDATES, guild_id=other_guild.id)

    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name="u000x"))
    await h.openshock.push(alice.os_user, "OtaInstallStarted", str(alice.device.id), 3, "1.5.0")
    await h.openshock.set_device_online(alice.device, False)  # to Alice and to Bob

    await h.discord.wait_for(lambda: "u000x" in joined(h, controls_there))
    await h.discord.wait_for(lambda: "Updating **Hub**" in joined(h, updates_there))
    await h.discord.wait_for(lambda: "went offline" in joined(h, devices_there))
    await h.discord.wait_for(lambda: "went offline" in joined(h, devices_here))
    await all_posted(h)
    assert texts(h, controls_here) == []
    assert texts(h, updates_here) == []
    assert joined(h, devices_here).count("went offline") == 1  # once, though both accounts saw it


async def test_a_sender_from_outside_discord_is_never_named_by_their_openshock_account(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    stranger = h.openshock.add_user("jane.doe.realname")  # not linked to this bot
    bob_os = h.openshock.add_user("bob.realname")
    bob = h.discord_user("bob")
    await h.link(bob, bob_os)

    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, sender=stranger))
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, sender=bob_os))

    await h.discord.wait_for(lambda: joined(h, channel).count("by ") == 2)
    text = joined(h, channel)
    assert "by an OpenShock user" in text
    assert f"by <@{bob.id}>" in text
    assert "realname" not in text
