"""Feed routing is kept in memory: it must follow every change of shares and feeds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest

from bot.openshock.models import ControlLogEvent, DeviceStatusChanged, HubEvent
from bot.services import feed_recorder
from bot.services.feed_recorder import FeedRecorder
from bot.storage.models import FeedKind
from tests.harness import Harness
from tests.services.feed_helpers import (
    FAST_FEEDS,
    all_posted,
    event_count,
    eventually,
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


async def test_a_log_no_controls_feed_can_show_is_turned_away_before_it_is_queued(
    harness: Harness,
) -> None:
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    recorder = h.bot.feeds.recorder
    seen: list[str] = []
    record = recorder.record

    async def spy(account_id: int, event: HubEvent) -> None:
        if isinstance(event, ControlLogEvent):
            seen.append(event.sender.custom_name or "")
        elif isinstance(event, DeviceStatusChanged) and not event.current.online:
            seen.append("offline")
        await record(account_id, event)

    recorder.record = spy  # type: ignore[method-assign]
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name="first"))
    await eventually(is_(lambda: seen == ["first"]), "the first Log")  # routed, to nowhere
    for label in ("second", "third"):
        await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name=label))
    await h.openshock.set_device_online(alice.device, False)  # wanted: queued after them
    await eventually(is_(lambda: "offline" in seen), "the device event")
    assert seen == ["first", "offline"]  # the two Logs never reached the feeds

    channel = await feed_channel(h, FeedKind.CONTROLS)  # the routing moves on: asked again
    await h.openshock.push(alice.os_user, "Log", *log_event(alice.shocker, custom_name="shown"))
    await h.discord.wait_for(lambda: "shown" in joined(h, channel))
    assert "second" not in joined(h, channel) and "third" not in joined(h, channel)


def is_(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def checked() -> bool:
        return check()

    return checked


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


async def test_the_writer_lets_the_loop_run_between_two_batches(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backlog is stored a batch per turn of the loop, not in one go that holds the loop."""
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    await feed_channel(h, FeedKind.CONTROLS)
    monkeypatch.setattr(feed_recorder, "_BATCH", 2)
    recorder = FeedRecorder(h.storage, lambda _: None, FAST_FEEDS, on_stored=lambda _: None)
    seen: list[int] = []

    async def watch() -> None:
        while not seen or seen[-1] < 10:
            row = await h.storage.db.fetch_one("SELECT count(*) AS n FROM hub_events")
            seen.append(row["n"] if row is not None else 0)
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    for n in range(10):  # all queued before the writer's first turn
        sender, logs = log_event(alice.shocker, custom_name=f"n{n}")
        await recorder.record(
            alice.account.id, ControlLogEvent.model_validate({"sender": sender, "logs": logs})
        )
    async with asyncio.timeout(5):
        await watcher
    await recorder.close()
    assert len({n for n in seen if 0 < n < 10}) >= 3  # stored two by two, the loop running


async def test_recorded_events_are_stored_in_order_in_batches_and_a_close_stores_the_rest(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A small backlog, so that `record` may have to wait for room; the hub awaits each
    `record`, as here."""
    h = harness
    alice = await linked_wearer(h)
    await h.share(alice.user, str(alice.shocker.id))
    channel = await feed_channel(h, FeedKind.CONTROLS)
    monkeypatch.setattr(feed_recorder, "_BATCH", 2)
    monkeypatch.setattr(feed_recorder, "_BACKLOG", 3)
    woken: set[int] = set()
    recorder = FeedRecorder(h.storage, lambda _: None, FAST_FEEDS, on_stored=woken.update)

    for n in range(10):
        sender, logs = log_event(alice.shocker, custom_name=f"n{n}")
        await recorder.record(
            alice.account.id, ControlLogEvent.model_validate({"sender": sender, "logs": logs})
        )
    await recorder.close()

    rows = await h.storage.db.fetch_all("SELECT payload FROM hub_events ORDER BY id")
    assert [json.loads(row["payload"])["custom_name"] for row in rows] == [
        f"n{n}" for n in range(10)
    ]
    assert woken == {channel}
    row = await h.storage.db.fetch_one(
        "SELECT count(*) AS n FROM feed_deliveries WHERE channel_id = ?", (channel,)
    )
    assert row is not None and row["n"] == 10  # (the bot's own publisher may post them)
