"""The feeds of one bot: recording hub events, posting them, and what changes feeds.

`FeedService` is built from what it needs (storage, a hub lookup, the retention setting and a
`DiscordPort`), never from the bot. Changes of a feed go through it, so what is kept in memory
for a feed, a guild or an account is let go when they go away:

- `set_feed`: a feed moved to another channel takes its pending events along (waiting for the
  old channel's worker to finish the post it may be making, so nothing is posted in both);
- `remove_feed`: its pending events are dropped, its channel's worker ends when no feed is left
  there, and so does what the recorder and publisher remember for it;
- `forget_guild` (the bot left a guild), `forget_account` (an account is unlinked; also found by
  the periodic `sweep`, which expires what no longer throttles anything).
"""

from __future__ import annotations

import logging

from bot.openshock.models import HubEvent
from bot.services.feed_discord import DiscordPort
from bot.services.feed_recorder import FeedRecorder, HubLookup
from bot.services.feed_routes import FeedRoutes
from bot.services.feed_timings import FeedTimings
from bot.services.feeds import FeedPublisher
from bot.storage import Storage
from bot.storage.models import Feed, FeedKind, FeedSet

__all__ = ["DEFAULT_TIMINGS", "FeedService", "FeedTimings"]

log = logging.getLogger(__name__)

# Tests replace this (before the bot is built) to make the feeds fast.
DEFAULT_TIMINGS = FeedTimings()


class FeedService:
    """`on_hub_event` is its hub listener; `start`/`stop` its lifecycle."""

    def __init__(
        self,
        storage: Storage,
        hub_of: HubLookup,
        discord: DiscordPort,
        *,
        retention_days: int,
        timings: FeedTimings | None = None,
    ) -> None:
        self.storage = storage
        self.timings = timings or DEFAULT_TIMINGS
        routes = FeedRoutes(storage)  # where events go: read by both sides
        self.publisher = FeedPublisher(
            discord,
            storage,
            self.timings,
            retention_days=retention_days,
            on_sweep=self.sweep,
            routes=routes,
        )
        self.recorder = FeedRecorder(
            storage, hub_of, self.timings, on_stored=self.publisher.wake, routes=routes
        )

    def wants(self, account_id: int, event: HubEvent) -> bool:
        return self.recorder.wants(account_id, event)

    async def on_hub_event(self, account_id: int, event: HubEvent) -> None:
        await self.recorder.record(account_id, event)

    def start(self) -> None:
        self.publisher.start()

    async def stop(self) -> None:
        await self.recorder.close()  # what arrived is stored (and posted after a restart)
        await self.publisher.stop()

    # -- changes of feeds -------------------------------------------------------------------------

    async def set_feed(self, guild_id: int, kind: FeedKind, channel_id: int) -> FeedSet:
        before = await self.storage.feeds.get(guild_id, kind)
        if before is not None and before.channel_id != channel_id:
            async with self.publisher.posting_in(before.channel_id):
                result = await self.storage.feeds.place(guild_id, kind, channel_id)
            if result.carried:
                log.info(
                    "The %s feed of guild %d moved to channel %d with %d pending post(s)",
                    kind.value,
                    guild_id,
                    channel_id,
                    result.carried,
                )
            await self._release_unused([before.channel_id])
        else:
            result = await self.storage.feeds.place(guild_id, kind, channel_id)
        self.publisher.wake([channel_id])
        return result

    async def remove_feed(self, guild_id: int, kind: FeedKind) -> Feed | None:
        before = await self.storage.feeds.get(guild_id, kind)
        if before is None:
            return None
        async with self.publisher.posting_in(before.channel_id):
            removed = await self.storage.feeds.remove(guild_id, kind)
        if removed is not None:
            if kind is FeedKind.DEVICES:
                self.recorder.forget_guild(guild_id)
            await self._release_unused([removed.channel_id])
        return removed

    async def forget_guild(self, guild_id: int) -> None:
        """The bot left the guild: it can post none of the guild's pending events any more
        (its feeds stay set, for when it is invited back)."""
        feeds = await self.storage.feeds.in_guild(guild_id)
        dropped = await self.storage.events.drop_guild(guild_id)
        if dropped:
            log.info("Left guild %d: dropped %d pending feed post(s)", guild_id, dropped)
        self.recorder.forget_guild(guild_id)
        self.publisher.release({feed.channel_id for feed in feeds})

    def forget_account(self, account_id: int) -> None:
        """The account is gone (its stored events went with it)."""
        self.recorder.forget_account(account_id)
        self.publisher.forget_edits(account_id=account_id)

    async def sweep(self) -> None:
        """Let go of what no longer matters: expired throttles, and accounts unlinked since."""
        self.recorder.forget_expired()
        self.publisher.forget_expired()
        for account_id in self.recorder.accounts_in_memory() | self.publisher.accounts_in_memory():
            if await self.storage.accounts.get(account_id) is None:
                self.forget_account(account_id)

    async def _release_unused(self, channel_ids: list[int]) -> None:
        used = await self.storage.feeds.channels()
        self.publisher.release(c for c in channel_ids if c not in used)
