"""Shared set-up for the feed tests: a wearer with a shocker shared in a guild with feeds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bot.services.feed_timings import FeedTimings
from bot.storage.models import Account, FeedKind
from tests.fakes.discord_api import FakeUser as DiscordUser
from tests.fakes.discord_api import message_text
from tests.fakes.openshock_server import FakeDevice, FakeShocker
from tests.fakes.openshock_server import FakeUser as OpenShockUser
from tests.harness import Harness

FAST_FEEDS = FeedTimings(
    batch_window=0.05,
    edit_interval=0.05,
    retry_initial=0.05,
    retry_max=0.2,
    poll_interval=0.5,
    directory_wait=2.0,
)


@dataclass
class Wearer:
    os_user: OpenShockUser
    device: FakeDevice
    shocker: FakeShocker
    user: DiscordUser
    account: Account


async def linked_wearer(
    h: Harness, name: str = "Alice", *, device: str = "Hub", shocker: str = "Collar"
) -> Wearer:
    os_user = h.openshock.add_user(name)
    fake_device = h.openshock.add_device(os_user, device)
    fake_shocker = h.openshock.add_shocker(fake_device, shocker)
    user = h.discord_user(name.lower())
    account = await h.link(user, os_user)
    return Wearer(os_user, fake_device, fake_shocker, user, account)


async def feed_channel(
    h: Harness, kind: FeedKind, *, guild_id: int | None = None, name: str | None = None
) -> int:
    """A new text channel in the guild, set as its `kind` feed (straight through storage)."""
    guild = guild_id if guild_id is not None else h.discord.guild_id
    channel = h.discord.add_channel(name or f"{kind.value}-feed", guild_id=guild)
    await h.storage.feeds.set(guild, kind, channel.id)
    return channel.id


def log_event(
    shocker: FakeShocker,
    *,
    sender: OpenShockUser | None = None,
    custom_name: str | None = None,
    connection_id: str = "someone-else",
    control_type: int = 1,
    intensity: int = 20,
    duration: int = 1000,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The two arguments of a `Log` hub event for one control of `shocker`."""
    who = sender or shocker.owner
    sender_json = {
        "id": str(who.id),
        "name": who.name,
        "image": who.image,
        "customName": custom_name,
        "connectionId": connection_id,
        "additionalItems": {},
    }
    logs = [
        {
            "shocker": {"id": str(shocker.id), "name": shocker.name},
            "type": control_type,
            "intensity": intensity,
            "duration": duration,
            "executedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
    ]
    return sender_json, logs


def texts(h: Harness, channel_id: int) -> list[str]:
    return [message_text(m) for m in h.discord.channel_messages(channel_id)]


def joined(h: Harness, channel_id: int) -> str:
    return "\n".join(texts(h, channel_id))


async def pending_count(h: Harness) -> int:
    row = await h.storage.db.fetch_one(
        "SELECT count(*) AS n FROM feed_deliveries WHERE state = 'pending'"
    )
    assert row is not None
    return int(row["n"])


async def event_count(h: Harness, kind: str) -> int:
    row = await h.storage.db.fetch_one(
        "SELECT count(*) AS n FROM hub_events WHERE kind = ?", (kind,)
    )
    assert row is not None
    return int(row["n"])


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (at most 10 s) until the async ``check`` holds: for state the fakes do not see."""
    try:
        async with asyncio.timeout(10):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def all_posted(h: Harness) -> None:
    """Wait until no delivery is pending (Discord has the message before the bot records it)."""

    async def none_pending() -> bool:
        return await pending_count(h) == 0

    await eventually(none_pending, "every delivery to be posted")


async def settled(h: Harness, markers: int, *senders: tuple[OpenShockUser, FakeShocker]) -> None:
    """Wait until every hub event the bot received so far (from these accounts) is recorded and
    posted: push a marker ``Log`` through each account, wait for it in the ``markers`` controls
    feed (an account's events are recorded in order, so all before it are stored), then for no
    delivery to be pending. After this, "nothing was posted" means nothing will be."""
    for index, (os_user, shocker) in enumerate(senders):
        label = f"marker{index}-{len(texts(h, markers))}"
        await h.openshock.push(os_user, "Log", *log_event(shocker, custom_name=label))
        await h.discord.wait_for(lambda label=label: label in joined(h, markers))  # type: ignore[misc]
    await all_posted(h)
