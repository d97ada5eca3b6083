"""Feed routing is kept in memory: it must follow every change of shares and feeds."""

from __future__ import annotations

from bot.storage.models import FeedKind
from tests.harness import Harness
from tests.services.feed_helpers import (
    all_posted,
    event_count,
    feed_channel,
    joined,
    linked_wearer,
    log_event,
    settled,
)


async def test_routing_follows_shares_and_feeds_changed_between_events(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    marker = h.openshock.add_shocker(alice.device, "Marker")
    await h.bot.hubs.get(alice.account.id).refresh_shockers()  # type: ignore[union-attr]
    await h.share(alice.user, str(alice.shocker.id))
    here = await feed_channel(h, FeedKind.CONTROLS)
    other = h.discord.add_guild(name="Elsewhere")
    await h.share(alice.user, str(marker.id), guild_id=other.id)
    markers = await feed_channel(h, FeedKind.CONTROLS, guild_id=other.id, name="markers")

    async def push(label: str) -> None:
        await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name=label))
        await settled(h, markers, (alice.os_user, marker))

    await push("first")  # the routes are now known (and kept)
    assert "first" in joined(h, here)

    # Shared in the other guild too: it gets the next events.
    await h.share(alice.user, str(alice.shocker.id), guild_id=other.id)
    await push("second")
    assert "second" in joined(h, here) and "second" in joined(h, markers)

    # Unshared here: only the other guild.
    assert await h.storage.shares.unshare(h.discord.guild_id, alice.user.id, str(alice.shocker.id))
    await push("third")
    assert "third" not in joined(h, here) and "third" in joined(h, markers)

    # Shared here again, but the feed removed: nothing here; moved: to the new channel.
    await h.share(alice.user, str(alice.shocker.id))
    await h.bot.feeds.remove_feed(h.discord.guild_id, FeedKind.CONTROLS)
    await push("fourth")
    assert "fourth" not in joined(h, here)
    moved = await feed_channel(h, FeedKind.CONTROLS, name="moved")
    await push("fifth")
    assert "fifth" in joined(h, moved) and "fifth" not in joined(h, here)


async def test_an_event_no_feed_shows_stores_nothing(harness: Harness) -> None:
    h = harness
    alice = await linked_wearer(h)
    marker = h.openshock.add_shocker(alice.device, "Marker")
    await h.bot.hubs.get(alice.account.id).refresh_shockers()  # type: ignore[union-attr]
    await h.share(alice.user, str(alice.shocker.id))
    other = h.discord.add_guild(name="Elsewhere")
    await h.share(alice.user, str(marker.id), guild_id=other.id)
    markers = await feed_channel(h, FeedKind.CONTROLS, guild_id=other.id, name="markers")
    for n in range(3):
        await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name=f"{n}"))
    await settled(h, markers, (alice.os_user, marker))  # the three were routed: nowhere

    channel = await feed_channel(h, FeedKind.CONTROLS)
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name="shown"))
    await h.discord.wait_for(lambda: "shown" in joined(h, channel))
    await all_posted(h)

    assert await event_count(h, "controls") == 2  # the marker and "shown"
    assert joined(h, channel).count("by **") == 1
